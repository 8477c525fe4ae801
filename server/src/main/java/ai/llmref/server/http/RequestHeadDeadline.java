package ai.llmref.server.http;

import io.helidon.common.buffers.BufferData;
import io.helidon.http.DirectHandler;
import io.helidon.http.Headers;
import io.helidon.http.RequestException;
import io.helidon.http.Status;
import io.helidon.webserver.ConnectionContext;
import io.helidon.webserver.http1.Http1ConnectionListener;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Cuts off a client that sends a request's line and headers too slowly (slow loris). The socket
 * read timeout alone does not: a client that sends one byte just before each timeout holds the
 * connection forever. Here the clock starts at the first byte of a request head; a byte that
 * arrives after {@code limit} while the head is still incomplete ends the connection with 408.
 * Gaps longer than the read timeout end it in the socket. Once the headers are in, the body
 * size limit and the request timeout take over; the next head's clock starts after the response.
 */
public final class RequestHeadDeadline {
    private static final long AWAITING = 0;
    private static final long HEAD_DONE = -1;

    private final long limitNanos;
    private final long limitMillis;
    /** Per connection: when its current head started, AWAITING its first byte, or HEAD_DONE. Weak: closed connections go. */
    private final Map<ConnectionContext, long[]> heads = Collections.synchronizedMap(new WeakHashMap<>());

    public RequestHeadDeadline(long limitMillis) {
        this.limitMillis = limitMillis;
        this.limitNanos = TimeUnit.MILLISECONDS.toNanos(limitMillis);
    }

    /** Listens to what the connection receives: starts and checks the clock, stops it at the end of the headers. */
    public Http1ConnectionListener receiving() {
        return new Http1ConnectionListener() {
            @Override
            public void data(ConnectionContext ctx, BufferData data) {
                arrived(ctx);
            }

            @Override
            public void data(ConnectionContext ctx, byte[] bytes, int offset, int length) {
                arrived(ctx);
            }

            @Override
            public void headers(ConnectionContext ctx, Headers headers) {
                state(ctx)[0] = HEAD_DONE;
            }
        };
    }

    /** Listens to what the connection sends: a final response status re-arms the clock for the next request. */
    public Http1ConnectionListener sending() {
        return new Http1ConnectionListener() {
            @Override
            public void status(ConnectionContext ctx, Status status) {
                if (status.code() >= 200) {
                    state(ctx)[0] = AWAITING;
                }
            }
        };
    }

    private long[] state(ConnectionContext ctx) {
        return heads.computeIfAbsent(ctx, c -> new long[] {AWAITING});
    }

    private void arrived(ConnectionContext ctx) {
        long[] s = state(ctx);
        long now = System.nanoTime();
        if (s[0] == AWAITING) {
            s[0] = now == AWAITING || now == HEAD_DONE ? now + 2 : now;
        } else if (s[0] != HEAD_DONE && now - s[0] > limitNanos) {
            s[0] = HEAD_DONE;
            throw RequestException.builder()
                    .type(DirectHandler.EventType.OTHER)
                    .status(Status.REQUEST_TIMEOUT_408)
                    .setKeepAlive(false)
                    .message("the request line and headers took longer than " + limitMillis + " ms to arrive")
                    .build();
        }
    }
}
