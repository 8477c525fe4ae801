package ai.llmref.server.http;

import io.helidon.common.buffers.BufferData;
import io.helidon.common.buffers.Bytes;
import io.helidon.http.Status;
import io.helidon.webserver.ConnectionContext;
import io.helidon.webserver.spi.ServerConnection;
import io.helidon.webserver.spi.ServerConnectionSelector;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Answers a request line of another HTTP version than 1.1 (HTTP/1.0, HTTP/2.0 without a
 * preface, ...) with {@code 505} and a JSON error, then closes the connection.
 *
 * <p>Helidon 4.5 serves HTTP/1.1 only, and its HTTP/1 connection selector does not claim a
 * connection whose request line ends in another version; with no selector claiming it the
 * connection was closed without a byte ("empty reply"). HTTP/1.0 is what nginx sends to an
 * upstream unless {@code proxy_http_version 1.1} is set, so the answer names the fix. A line
 * that does not end in an HTTP version at all is not claimed (not HTTP: closed as before).
 */
public final class HttpVersionRefusal implements ServerConnectionSelector {
    private static final Pattern OTHER_VERSION = Pattern.compile(".* HTTP/[0-9](\\.[0-9])?\r");
    private static final String SERVED = " HTTP/1.1\r";
    private static final byte[] RESPONSE;

    static {
        // the same body Helidon's own 505 gets from TransportErrors
        byte[] body = TransportErrors.body(Status.HTTP_VERSION_NOT_SUPPORTED_505);
        byte[] head = ("HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: application/json\r\nContent-Length: "
                + body.length + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
        RESPONSE = new byte[head.length + body.length];
        System.arraycopy(head, 0, RESPONSE, 0, head.length);
        System.arraycopy(body, 0, RESPONSE, head.length, body.length);
    }

    @Override
    public int bytesToIdentifyConnection() {
        return 0;
    }

    @Override
    public Support supports(BufferData request) {
        int lf = request.indexOf(Bytes.LF_BYTE);
        if (lf == -1) {
            return Support.UNKNOWN; // the request line is not complete yet
        }
        String line = request.readString(lf, StandardCharsets.ISO_8859_1);
        return !line.endsWith(SERVED) && OTHER_VERSION.matcher(line).matches() ? Support.SUPPORTED : Support.UNSUPPORTED;
    }

    @Override
    public Set<String> supportedApplicationProtocols() {
        return Set.of();
    }

    @Override
    public ServerConnection connection(ConnectionContext ctx) {
        return new ServerConnection() {
            @Override
            public void handle(io.helidon.common.concurrency.limits.Limit limit) {
                ctx.dataWriter().writeNow(BufferData.create(RESPONSE));
            }

            @Override
            public Duration idleTime() {
                return Duration.ZERO;
            }

            @Override
            public void close(boolean interrupt) {
            }
        };
    }
}
