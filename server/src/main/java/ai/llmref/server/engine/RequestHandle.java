package ai.llmref.server.engine;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * The HTTP handler's side of one generation: events arrive in order on {@link #poll}; {@link
 * #cancel()} (client gone, timeout) frees the slot at the next decode step.
 */
public final class RequestHandle {
    private static final AtomicLong IDS = new AtomicLong();

    final GenerationRequest request;
    /** The request's DRY stage, made before it was queued (Engine#dryStage), or null. */
    final ai.llmref.llama.DryStage dry;
    final long submittedNanos = System.nanoTime();
    private final long id = IDS.incrementAndGet();
    private final LinkedBlockingQueue<GenerationEvent> events = new LinkedBlockingQueue<>();
    private volatile boolean cancelled;
    private volatile Thread waiter;

    RequestHandle(GenerationRequest request, ai.llmref.llama.DryStage dry) {
        this.request = request;
        this.dry = dry;
    }

    public long id() {
        return id;
    }

    /** The next event if there is one, else null; {@link #notify(Thread)} wakes a waiting handler when one comes. */
    public GenerationEvent poll() {
        return events.poll();
    }

    /** Each later event also unparks {@code thread} (a handler waiting on the events of several handles). */
    public void notify(Thread thread) {
        waiter = thread;
    }

    /** Stops the generation; the engine frees its slot within one decode step. Idempotent. */
    public void cancel() {
        cancelled = true;
    }

    public boolean isCancelled() {
        return cancelled;
    }

    void emit(GenerationEvent e) {
        events.add(e);
        Thread w = waiter;
        if (w != null) {
            LockSupport.unpark(w);
        }
    }
}
