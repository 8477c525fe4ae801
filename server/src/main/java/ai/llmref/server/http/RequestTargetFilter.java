package ai.llmref.server.http;

import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.http.Filter;
import io.helidon.webserver.http.FilterChain;
import io.helidon.webserver.http.RoutingRequest;
import io.helidon.webserver.http.RoutingResponse;
import ai.llmref.server.observe.AccessLog;
import ai.llmref.server.observe.ServerMetrics;
import java.nio.charset.StandardCharsets;

/**
 * Refuses a request whose target has no usable path before routing sees it. Found by fuzzing: an
 * absolute-form target with a malformed scheme (e.g. {@code GET http:\xf2//host/x HTTP/1.1})
 * reaches Helidon's router with a null path, whose matcher then throws and the client gets a 500.
 */
public final class RequestTargetFilter implements Filter {
    private final ServerMetrics metrics;

    /** On the admin port: refusals are not counted (nor are the probes' and scrapes' requests). */
    public RequestTargetFilter() {
        this(null);
    }

    /** On the API port: a refusal is counted and logged like every request, under the route {@code (unmatched)}. */
    public RequestTargetFilter(ServerMetrics metrics) {
        this.metrics = metrics;
    }

    private static final byte[] BODY = ("{\"error\":{\"message\":\"the request target is not a valid path\","
            + "\"type\":\"invalid_request_error\",\"code\":\"invalid_request\",\"param\":null}}").getBytes(StandardCharsets.UTF_8);

    @Override
    public void filter(FilterChain chain, RoutingRequest req, RoutingResponse res) {
        String path;
        try {
            path = req.prologue().uriPath().path();
        } catch (RuntimeException e) {
            path = null;
        }
        if (path == null || !path.startsWith("/")) {
            AccessLog.Entry entry = RequestIdFilter.refusal(req, OpenAiService.UNMATCHED, "invalid_request");
            res.status(Status.BAD_REQUEST_400);
            res.header(HeaderNames.CONTENT_TYPE, "application/json");
            res.send(BODY);
            if (metrics != null) {
                metrics.refused(entry, 400);
            }
            return;
        }
        chain.proceed();
    }
}
