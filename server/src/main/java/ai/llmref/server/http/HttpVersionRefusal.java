package ai.llmref.server.http;

import io.helidon.common.buffers.BufferData;
import io.helidon.common.buffers.Bytes;
import io.helidon.http.Status;
import ai.llmref.server.observe.ServerMetrics;
import io.helidon.webserver.ConnectionContext;
import io.helidon.webserver.spi.ServerConnection;
import io.helidon.webserver.spi.ServerConnectionSelector;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Answers a request line of another HTTP version than 1.1 (HTTP/1.0, HTTP/2.0 without a
 * preface, ...) with {@code 505} and a JSON error, and a request line longer than
 * {@code limits.max-request-line-bytes} that the HTTP/1 selector let go with {@code 414}; then
 * closes the connection.
 *
 * <p>Helidon 4.5 serves HTTP/1.1 only, and its HTTP/1 connection selector does not claim a
 * connection whose request line ends in another version; with no selector claiming it the
 * connection was closed without a byte ("empty reply"). HTTP/1.0 is what nginx sends to an
 * upstream unless {@code proxy_http_version 1.1} is set, so the answer names the fix. A line
 * that does not end in an HTTP version at all is not claimed (not HTTP: closed as before).
 *
 * <p>The 414: Helidon identifies a connection from its first bytes, asking each selector again
 * with one byte more each round. The HTTP/1 selector drops out when the bytes hold no line end and
 * exceed the request-line limit (a first read of 8 KiB does, with the default 4 KiB limit); this
 * selector, seeing no line end either, used to answer "not yet", and Helidon then waited for one
 * byte more than the client had sent: a client whose request line was 8 KiB or more got no answer
 * at all and its connection stayed open (found by fuzzing, docs/reliability.md finding 8). Past the
 * limit without a line end this selector now claims the connection and answers 414.
 */
public final class HttpVersionRefusal implements ServerConnectionSelector {
    private static final Pattern OTHER_VERSION = Pattern.compile(".* HTTP/[0-9](\\.[0-9])?\r");
    private static final String SERVED = " HTTP/1.1\r";
    private static final byte[] VERSION = response(Status.HTTP_VERSION_NOT_SUPPORTED_505);
    private static final byte[] TOO_LONG = response(Status.REQUEST_URI_TOO_LONG_414);
    private final int maxRequestLine;
    private final ServerMetrics metrics;

    /**
     * @param maxRequestLine the request-line limit (Helidon's max prologue length)
     * @param metrics        where each refusal is counted and logged ({@link TransportErrors#record}); null: neither
     */
    public HttpVersionRefusal(int maxRequestLine, ServerMetrics metrics) {
        this.maxRequestLine = maxRequestLine;
        this.metrics = metrics;
    }

    /** The status with the same body Helidon's own errors get from TransportErrors, then close. */
    private static byte[] response(Status status) {
        byte[] body = TransportErrors.body(status);
        byte[] head = ("HTTP/1.1 " + status.code() + " " + status.reasonPhrase() + "\r\nContent-Type: application/json\r\nContent-Length: "
                + body.length + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
        byte[] out = new byte[head.length + body.length];
        System.arraycopy(head, 0, out, 0, head.length);
        System.arraycopy(body, 0, out, head.length, body.length);
        return out;
    }

    @Override
    public int bytesToIdentifyConnection() {
        return 0;
    }

    @Override
    public Support supports(BufferData request) {
        int lf = request.indexOf(Bytes.LF_BYTE);
        if (lf == -1) {
            // past the limit: too long (414); else the request line is not complete yet
            return request.available() > maxRequestLine ? Support.SUPPORTED : Support.UNKNOWN;
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
                // what was claimed: a line end within the limit means another version, none a line too long
                var reader = ctx.dataReader();
                BufferData line = reader.getBuffer(reader.available());
                int lf = line.indexOf(Bytes.LF_BYTE);
                boolean version = lf >= 0 && lf <= maxRequestLine;
                ctx.dataWriter().writeNow(BufferData.create(version ? VERSION : TOO_LONG));
                int sp = line.indexOf((byte) ' ');
                TransportErrors.record(metrics, sp > 0 && sp <= 16 ? line.readString(sp, StandardCharsets.ISO_8859_1) : "",
                        version ? 505 : 414);
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
