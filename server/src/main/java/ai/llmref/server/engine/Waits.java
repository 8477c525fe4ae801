package ai.llmref.server.engine;

import java.time.Duration;

/**
 * Waits that go on past interrupts: stopping frees native memory only once what uses it has
 * ended, so a stop on an interrupted thread (a shutdown hook's, say) must still wait. The
 * interrupt is put back for the caller when the wait is over.
 */
public final class Waits {
    private Waits() {}

    /** One bounded wait, which an interrupt may cut short. */
    @FunctionalInterface
    public interface Wait {
        /** Waits at most {@code nanos}; true once what is waited for has happened. */
        boolean await(long nanos) throws InterruptedException;
    }

    /** Waits up to {@code timeout} for {@code wait} to report done, interrupts notwithstanding; whether it did. */
    public static boolean pastInterrupts(Duration timeout, Wait wait) {
        long end = System.nanoTime() + timeout.toNanos();
        boolean interrupted = false;
        boolean done = false;
        try {
            while (!done && System.nanoTime() < end) {
                try {
                    done = wait.await(Math.max(1, end - System.nanoTime()));
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        return done;
    }
}
