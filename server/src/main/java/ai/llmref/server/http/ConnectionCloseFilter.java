package ai.llmref.server.http;

import io.helidon.http.HeaderNames;
import io.helidon.http.ServerRequestHeaders;
import io.helidon.webserver.CloseConnectionException;
import io.helidon.webserver.http.FilterChain;
import io.helidon.webserver.http.RoutingRequest;
import io.helidon.webserver.http.RoutingResponse;
import java.util.Locale;

/**
 * Closes the connection after the response to a request that sent {@code Connection: close}
 * (RFC 9112, 9.6). Helidon 4.5.0 answers such a request with {@code Connection: close} and then
 * keeps the socket open, waiting for another request until the idle timeout (helidon-io/helidon
 * #12324, fixed in later 4.x releases that are not on Maven Central here): a client that reads to
 * the end of the stream, as HTTP/1.0-style clients and some proxies do, waits that long.
 *
 * <p>Once the response is sent, this ends the connection the way Helidon's own handlers do
 * ({@link CloseConnectionException}, which its connection handler takes as a quiet close). The
 * request's body must have been read to its end first: closing a socket with unread input makes
 * the kernel send a reset, which can destroy the response before the client has read it. A body
 * the answer did not need (a 404, a refusal) is read and dropped here when it declares at most
 * {@link #MAX_DRAIN_BYTES}; a larger or chunked one leaves the connection to the idle timeout, as
 * before.
 */
public final class ConnectionCloseFilter implements io.helidon.webserver.http.Filter {
    /** The largest unread body read and dropped so that the connection can close cleanly. */
    static final long MAX_DRAIN_BYTES = 65_536;

    @Override
    public void filter(FilterChain chain, RoutingRequest req, RoutingResponse res) {
        chain.proceed();
        if (res.isSent() && asksToClose(req.headers()) && bodyRead(req)) {
            throw new CloseConnectionException("the client asked to close the connection");
        }
    }

    /** True when the request has no body or it has been read to its end (a small unread one is read now). */
    private static boolean bodyRead(RoutingRequest req) {
        if (!req.content().hasEntity() || req.content().consumed()) {
            return true;
        }
        long declared = req.headers().contentLength().orElse(-1);
        if (declared < 0 || declared > MAX_DRAIN_BYTES) {
            return false;
        }
        try {
            req.content().consume();
            return true;
        } catch (RuntimeException e) {
            return false; // the connection is broken or the body short: Helidon ends it
        }
    }

    /** True when a {@code Connection} header lists the {@code close} option (a comma-separated list of tokens, any case). */
    static boolean asksToClose(ServerRequestHeaders headers) {
        if (!headers.contains(HeaderNames.CONNECTION)) {
            return false;
        }
        for (String value : headers.get(HeaderNames.CONNECTION).allValues()) {
            for (String option : value.split(",")) {
                if (option.strip().toLowerCase(Locale.ROOT).equals("close")) {
                    return true;
                }
            }
        }
        return false;
    }
}
