package ai.llmref.server.http;

import ai.llmref.server.observe.AccessLog;
import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;
import io.helidon.webserver.http.FilterChain;
import io.helidon.webserver.http.RoutingRequest;
import io.helidon.webserver.http.RoutingResponse;
import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;

/**
 * Every API request gets an id: the client's {@code X-Request-Id} when it is a plain token of at
 * most 128 characters (letters, digits and {@code . _ ~ : + / = -}; a proxy's or a client's own
 * id, so that its logs and ours meet), else a new random one ({@code req_} and 32 hex digits). The
 * id is echoed in the response's {@code X-Request-Id} header, on errors too, and written in the
 * request's access line; anything else the client sent in the header is not (it could forge log
 * fields or carry a secret), and the new id replaces it.
 */
public final class RequestIdFilter implements io.helidon.webserver.http.Filter {
    public static final HeaderName HEADER = HeaderNames.create("X-Request-Id");
    private static final Pattern PLAIN = Pattern.compile("[A-Za-z0-9._~:+/=-]{1,128}");

    /** The request's id, registered in its context. */
    public record RequestId(String value) {}

    @Override
    public void filter(FilterChain chain, RoutingRequest req, RoutingResponse res) {
        RequestId id = new RequestId(of(req.headers().first(HEADER).orElse(null)));
        req.context().register(id);
        res.header(HEADER, id.value());
        chain.proceed();
    }

    /**
     * The access-log entry of a request a filter answers itself (before any handler): its method,
     * the route it is logged and counted under, its error code and its id. Record it with
     * {@link ai.llmref.server.observe.ServerMetrics#refused} once the answer is sent.
     */
    static AccessLog.Entry refusal(RoutingRequest req, String route, String errorCode) {
        AccessLog.Entry entry = new AccessLog.Entry(AccessLog.method(req.prologue().method().text()), route);
        entry.errorCode = errorCode;
        req.context().get(RequestId.class).ifPresent(id -> entry.requestId = id.value());
        return entry;
    }

    /** The client's id when it is a plain token, else a new one. */
    static String of(String given) {
        if (given != null && PLAIN.matcher(given).matches()) {
            return given;
        }
        byte[] b = new byte[16];
        ThreadLocalRandom.current().nextBytes(b);
        return "req_" + HexFormat.of().formatHex(b);
    }
}
