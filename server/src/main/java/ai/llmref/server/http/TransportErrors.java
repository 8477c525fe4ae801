package ai.llmref.server.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.helidon.http.DirectHandler;
import io.helidon.http.HeaderNames;
import io.helidon.http.ServerResponseHeaders;
import io.helidon.http.Status;
import ai.llmref.server.observe.AccessLog;
import ai.llmref.server.observe.ServerMetrics;

/**
 * The errors Helidon answers before any route runs (a malformed request line or header, oversize
 * request line or headers, an oversize declared body, an unsupported protocol) in the OpenAI error
 * shape. The text is ours, chosen by status: Helidon's own message may quote parser internals.
 */
public final class TransportErrors implements DirectHandler {
    private static final ObjectMapper JSON = new ObjectMapper();
    /**
     * The metrics and access-log route of these answers: no route ran, and the path (when Helidon
     * read one) is whatever the client sent.
     */
    public static final String ROUTE = "(transport)";
    private final ServerMetrics metrics;

    /** @param metrics where each answer is counted (and an access line logged); null: neither */
    public TransportErrors(ServerMetrics metrics) {
        this.metrics = metrics;
    }

    /** Errors escaping routing (Helidon's error handlers pass the exception): the status stands. */
    @Override
    public TransportResponse handle(TransportRequest request, EventType eventType, Status status,
            ServerResponseHeaders headers, Throwable thrown) {
        return respond(status, headers, request);
    }

    @Override
    public TransportResponse handle(TransportRequest request, EventType eventType, Status status,
            ServerResponseHeaders headers, Throwable thrown, System.Logger logger) {
        return respond(status, headers, request);
    }

    /**
     * Errors of the connection itself, before any route: the request line or headers could not be
     * read. Helidon answers 500 when its parser throws on the client's bytes (a control or non-ASCII
     * character in the method token: IllegalArgumentException); that is a malformed request, a 400.
     * (Helidon still logs the cause at WARNING.)
     */
    @Override
    public TransportResponse handle(TransportRequest request, EventType eventType, Status status,
            ServerResponseHeaders headers, String message) {
        return respond(status.code() == 500 ? Status.BAD_REQUEST_400 : status, headers, request);
    }

    private TransportResponse respond(Status status, ServerResponseHeaders headers, TransportRequest request) {
        String method;
        try {
            method = request.method();
        } catch (RuntimeException e) {
            method = ""; // the request line could not be read
        }
        record(metrics, method, status.code());
        headers.set(HeaderNames.CONTENT_TYPE, "application/json");
        return TransportResponse.builder().status(status).headers(headers).entity(body(status)).build();
    }

    /**
     * Counts an answer given before any route (llmref_requests_total and the duration histogram,
     * route {@link #ROUTE}) and logs its access line with its error code: these requests were
     * neither counted nor logged, so a client sending malformed requests left no trace.
     */
    static void record(ServerMetrics metrics, String method, int status) {
        if (metrics == null) {
            return;
        }
        AccessLog.Entry entry = new AccessLog.Entry(AccessLog.method(method == null ? "" : method), ROUTE);
        entry.errorCode = what(status)[0];
        metrics.refused(entry, status);
    }

    /** The error-shape body for a transport-level status (also {@link HttpVersionRefusal}'s 505). */
    static byte[] body(Status status) {
        int code = status.code();
        String[] what = what(code);
        ObjectNode body = JSON.createObjectNode();
        ObjectNode error = body.putObject("error");
        error.put("message", what[1]);
        // 505 and 501 answer the client's protocol version and transfer coding, not a server fault
        error.put("type", code >= 500 && code != 505 && code != 501 ? "server_error" : "invalid_request_error");
        error.put("code", what[0]);
        error.putNull("param");
        try {
            return JSON.writeValueAsBytes(body);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The error code and message of a transport-level status. */
    private static String[] what(int code) {
        return switch (code) {
            // Helidon gives no detail here: oversize headers (limits.max-header-bytes) are a 400 too
            case 400 -> new String[] {"invalid_request", "the request is not valid HTTP/1.1 or its headers are too large"};
            case 408 -> new String[] {"request_timeout", "the request line and headers did not arrive in time"};
            case 413 -> new String[] {"request_too_large", "the request body is too large"};
            case 414 -> new String[] {"uri_too_long", "the request line is too long"};
            case 505 -> new String[] {"http_version_not_supported", "only HTTP/1.1 is supported (behind nginx: proxy_http_version 1.1)"};
            // Helidon's answer to a transfer coding other than chunked (RFC 9112 section 6.1: 501)
            case 501 -> new String[] {"unsupported_transfer_encoding", "the request's Transfer-Encoding is not supported: only chunked is"};
            default -> new String[] {code >= 500 ? "internal_error" : "invalid_request", Status.create(code).reasonPhrase()};
        };
    }
}
