package ai.llmref.server.http;

import io.helidon.http.Headers;
import io.helidon.http.HttpPrologue;
import io.helidon.webserver.CloseConnectionException;
import io.helidon.webserver.ConnectionContext;
import io.helidon.webserver.http1.Http1ConnectionListener;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Cuts off a client that sends its headers too slowly (slow loris): once the request line is in,
 * the headers must be complete within {@code limit}, else the connection is closed. Helidon reads
 * accepted sockets without a read timeout and its idle-connection check only ends connections that
 * wait for a request line, so a client trickling one header byte at a time would otherwise hold
 * its connection (and a thread) forever.
 *
 * <p>The connection's own thread reads the head; at the request line it arms a timer, at the end
 * of the headers it disarms it. A timer that fires interrupts that thread, which, blocked in a
 * socket read on a virtual thread, closes the socket (the mechanism Helidon's idle check uses).
 */
public final class RequestHeadDeadline implements Http1ConnectionListener {
    private static final System.Logger LOG = System.getLogger(RequestHeadDeadline.class.getName());
    /** The timers of head deadlines, and of body deadlines ({@link BodyDeadline}). */
    static final ScheduledThreadPoolExecutor TIMERS = timers();

    private final long limitMillis;
    /** The armed timer of the head this thread is reading, if any. */
    private final ThreadLocal<Armed> armed = new ThreadLocal<>();

    /** Guarded by itself: a timer interrupts only while the head is still incomplete. */
    private static final class Armed {
        ScheduledFuture<?> timer;
        boolean done;
        boolean expired;
    }

    public RequestHeadDeadline(long limitMillis) {
        this.limitMillis = limitMillis;
    }

    @Override
    public void prologue(ConnectionContext ctx, HttpPrologue prologue) {
        Thread reader = Thread.currentThread();
        Armed a = new Armed();
        synchronized (a) {
            a.timer = TIMERS.schedule(() -> expire(a, reader), limitMillis, TimeUnit.MILLISECONDS);
        }
        disarm();
        armed.set(a);
    }

    @Override
    public void headers(ConnectionContext ctx, Headers headers) {
        if (disarm()) {
            // the timer fired as the last header byte arrived: do not route with the interrupt pending
            Thread.interrupted();
            throw new CloseConnectionException("the headers took longer than " + limitMillis + " ms");
        }
    }

    /** Stops this thread's timer; true when it had already fired. */
    private boolean disarm() {
        Armed a = armed.get();
        if (a == null) {
            return false;
        }
        armed.remove();
        synchronized (a) {
            a.done = true;
            a.timer.cancel(false);
            return a.expired;
        }
    }

    private void expire(Armed a, Thread reader) {
        synchronized (a) {
            if (a.done) {
                return;
            }
            a.done = true;
            a.expired = true;
        }
        LOG.log(System.Logger.Level.DEBUG, "closing a connection whose headers took longer than " + limitMillis + " ms");
        reader.interrupt();
    }

    private static ScheduledThreadPoolExecutor timers() {
        ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1,
                Thread.ofPlatform().name("request-head-deadline").daemon(true).factory());
        t.setRemoveOnCancelPolicy(true);
        return t;
    }
}
