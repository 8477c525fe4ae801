package ai.llmref.server.http;

import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Cuts off a client that sends its headers and then its body too slowly, or not at all: the
 * handler's read of the body must end within {@code limits.body-timeout-ms}, else the timer
 * interrupts the handler's thread, which, blocked in a socket read on a virtual thread, closes the
 * socket (as {@link RequestHeadDeadline} does for the headers). Without it a client that declared
 * 100 bytes and sent 8 held its connection and handler for good: the head deadline is disarmed
 * once the headers are in, and Helidon's idle check only ends connections waiting for a request line.
 */
final class BodyDeadline {
    private final Thread reader = Thread.currentThread();
    private ScheduledFuture<?> timer;
    /** Guarded by this. */
    private boolean done;
    private boolean fired;

    private BodyDeadline() {}

    /** Starts the deadline of the calling thread's body read. */
    static BodyDeadline arm(long millis) {
        BodyDeadline d = new BodyDeadline();
        synchronized (d) {
            d.timer = RequestHeadDeadline.TIMERS.schedule(d::fire, millis, TimeUnit.MILLISECONDS);
        }
        return d;
    }

    private synchronized void fire() {
        if (!done) {
            fired = true;
            reader.interrupt();
        }
    }

    /** Ends the deadline (again: no effect); true when it fired, and the connection is closed or the thread interrupted. */
    synchronized boolean disarm() {
        if (!done) {
            done = true;
            timer.cancel(false);
        }
        return fired;
    }
}
