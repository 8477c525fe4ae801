package ai.llmref.llama;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Samples the sequences of one decode together. With many sequences on a large vocabulary the
 * picks dominate the time between two decodes while a GPU waits: an argmax over 128k logits is
 * some tens of microseconds per sequence, and a llama.cpp chain that draws with a temperature is a
 * pass of {@code exp} over the whole vocabulary (about 0.9 ms on the development machine; with a
 * top-p and no top-k, a sort of it: about 8 ms). This pool spreads both over helper platform
 * threads. The calling thread, the context's owner, fetches every logits row (a call into the
 * context) and reads back the tokens of chains attached to the device; the helpers run only the
 * argmax over a row (putting back the biased logits they changed in place) or a chain over
 * candidates filled from a row ({@code llama_sampler_apply} and {@code llama_sampler_accept} on
 * that chain alone, as {@code llama_sampler_sample} does, without the context). Each sampler
 * appears once per call, so each chain is used by one thread at a time; the rows of the last
 * decode are not touched by anyone else until the calling thread, which picks too, has waited for
 * every row. The rows are taken one at a time by whichever thread is free, the chains first (they
 * cost most), so a helper that is slow to wake (after a GPU decode of some milliseconds a parked
 * thread can take hundreds of microseconds to run again in a virtual machine) takes fewer rows
 * rather than delaying the step. With fewer chains than threads, a plain draw (a temperature and
 * perhaps a logit bias, {@link SoftmaxDraw}) is cut into chunks of {@value #DRAW_CHUNK} tokens that
 * the threads take the same way, and the calling thread combines them and picks: a single
 * stream's draw is shared too.
 *
 * <p>Where the rows come from a device that computes while the calling thread waits, the caller can
 * say when it expects them ({@link #wakeAhead}): the helpers are woken then, while the device still
 * works, sleep until shortly before the expected time and then wait spinning, so that they take rows
 * as soon as {@link #sample} hands them out instead of some hundreds of microseconds later.
 *
 * <p>With {@code threads == 1} there are no helpers and {@link #sample} is the same as calling
 * {@link Sampler#sample} for each sequence in turn. Create, use and close a pool on one thread.
 */
public final class SamplingPool implements AutoCloseable {
    /** Less work than this many argmaxes is done on the calling thread (waking a helper costs more). */
    static final int MIN_PARALLEL_ROWS = 4;
    /** What one llama.cpp chain over the whole vocabulary counts as, in argmaxes, when deciding how many helpers to wake. */
    static final int CHAIN_UNITS = 8;
    /**
     * Tokens per chunk when a plain draw (a temperature over the whole vocabulary, {@link SoftmaxDraw})
     * is split over the threads: 16 chunks on a 128k vocabulary, each some tens of microseconds.
     */
    static final int DRAW_CHUNK = 8192;
    /** What one chunk of a plain draw counts as, in argmaxes (a pass of {@code exp} over 8192 logits against a comparison over 128k). */
    static final int CHUNK_UNITS = 2;
    /**
     * How long before the expected rows a helper woken ahead stops sleeping and spins: a timed sleep
     * ends some tens of microseconds late, more in a virtual machine.
     */
    static final long SPIN_LEAD_NANOS = 150_000;
    /**
     * How long past the expected rows a helper woken ahead keeps waiting for them before it goes back
     * to sleep: this, or a quarter of the time it was woken ahead, whichever is longer.
     */
    static final long GIVE_UP_NANOS = 1_000_000;
    /** With less time than this before the rows, waking ahead gains nothing over waking with them. */
    static final long MIN_AHEAD_NANOS = 200_000;
    private static final AtomicInteger POOLS = new AtomicInteger();

    private final int threads;
    private final int drawChunk;
    private final ExecutorService helpers;
    private final Map<Sampler, Boolean> seen = new IdentityHashMap<>();
    private Sampler[] rowSamplers = new Sampler[0];
    private MemorySegment[] rows = new MemorySegment[0];
    private int[] rowSlots = new int[0];
    private MemorySegment[] fetched = new MemorySegment[0];
    /**
     * One call's work: task {@code t} is row {@code taskRow[t]} whole, or, where {@code taskChunk[t] >= 0},
     * that chunk of its plain draw. The chunk tasks come first, draw after draw, so a chunk task's
     * results go to slot {@code t} of {@link #chunkMax} and {@link #chunkSum}, and split draw
     * {@code s}'s chunks start at slot {@code s * chunks}.
     */
    private int[] taskRow = new int[0];
    private int[] taskChunk = new int[0];
    private float[] chunkMax = new float[0];
    private double[] chunkSum = new double[0];
    /** The rows of the plain draws the call split into chunks. */
    private int[] splitRows = new int[0];
    private int lastRows;
    private int lastSplitDraws;
    private int lastHelpers;
    private long lastPickNanos;
    private long lastHelperStartNanos;
    private int lastHelpersAhead;
    private volatile boolean closed;
    /** Helpers woken by {@link #wakeAhead} that have not yet joined a round or given up. */
    private final AtomicInteger standingCount = new AtomicInteger();
    private final Set<Thread> standing = ConcurrentHashMap.newKeySet();
    /** The last round handed to the helpers woken ahead, and its number (rounds are numbered from 1 by the calling thread). */
    private volatile Round current;
    private long published;

    /** @param threads threads that sample rows (argmaxes and chains), the calling thread included (1..256) */
    public SamplingPool(int threads) {
        this(threads, DRAW_CHUNK);
    }

    /** With plain draws split into chunks of {@code drawChunk} tokens (the tests use a small vocabulary). */
    SamplingPool(int threads, int drawChunk) {
        if (threads < 1 || threads > 256) {
            throw new IllegalArgumentException("threads must be 1..256, got " + threads);
        }
        if (drawChunk < 1) {
            throw new IllegalArgumentException("drawChunk must be >= 1, got " + drawChunk);
        }
        this.threads = threads;
        this.drawChunk = drawChunk;
        int pool = POOLS.incrementAndGet();
        AtomicInteger n = new AtomicInteger();
        this.helpers = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1,
                r -> Thread.ofPlatform().daemon(true).name("llama-sampling-" + pool + "-" + n.incrementAndGet()).unstarted(r));
    }

    public int threads() {
        return threads;
    }

    /**
     * For {@code i < count}: {@code tokens[i]} is what {@code samplers[i].sample(context, indices[i])}
     * returns, or, where that throws, {@code tokens[i] = -1} and {@code errors[i]} is the exception
     * (the others are still sampled). Each sampler may appear once.
     *
     * @throws IllegalArgumentException on arrays shorter than {@code count} or a sampler given twice
     * @throws IllegalStateException    when the pool is closed or the context is used off its thread
     */
    public void sample(LlamaContext context, Sampler[] samplers, int[] indices, int count, int[] tokens,
                       RuntimeException[] errors) {
        if (closed) {
            throw new IllegalStateException("sampling pool is closed");
        }
        if (count < 0 || count > samplers.length || count > indices.length || count > tokens.length || count > errors.length) {
            throw new IllegalArgumentException("count " + count + " does not fit the arrays (samplers " + samplers.length
                    + ", indices " + indices.length + ", tokens " + tokens.length + ", errors " + errors.length + ")");
        }
        context.checkOpen();
        seen.clear();
        for (int i = 0; i < count; i++) {
            if (seen.put(samplers[i], Boolean.TRUE) != null) {
                throw new IllegalArgumentException("sampler " + i + " was given twice: a sampler samples one sequence");
            }
        }
        if (rows.length < count) {
            rows = new MemorySegment[count];
            rowSamplers = new Sampler[count];
            rowSlots = new int[count];
        }
        if (fetched.length < count) {
            fetched = new MemorySegment[count];
        }
        int chains = 0;
        int m = 0;
        for (int i = 0; i < count; i++) {
            tokens[i] = -1;
            errors[i] = null;
            try {
                MemorySegment row = samplers[i].hostRow(context, indices[i]);
                if (row == null) {
                    tokens[i] = samplers[i].sample(context, indices[i]); // picked on the device: read back
                } else {
                    fetched[i] = row;
                    m++;
                    chains += samplers[i].argmaxOnly() ? 0 : 1;
                }
            } catch (RuntimeException e) {
                errors[i] = e;
            }
        }
        // The llama.cpp chains and plain draws first: each is a pass (or a sort) over the whole
        // vocabulary, many times an argmax, so they are the rows to hand out while the others can
        // still fill in around them.
        int next = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < count; i++) {
                if (fetched[i] != null && samplers[i].argmaxOnly() == (pass == 1)) {
                    rows[next] = fetched[i];
                    rowSamplers[next] = samplers[i];
                    rowSlots[next++] = i;
                }
            }
        }
        Arrays.fill(fetched, 0, count, null);
        // Fewer draws and chains than threads: the plain draws among them are cut into chunks, so
        // that a single stream's draw over 128k logits is shared too.
        int chunks = helpers == null || chains >= threads ? 0 : SoftmaxDraw.chunks(context.vocabSize(), drawChunk);
        int tasks = planTasks(m, chunks < 2 ? 0 : chunks);
        int units = 0;
        for (int t = 0; t < tasks; t++) {
            units += taskChunk[t] >= 0 ? CHUNK_UNITS : rowSamplers[taskRow[t]].argmaxOnly() ? 1 : CHAIN_UNITS;
        }
        int wake = helpers == null || units < MIN_PARALLEL_ROWS ? 0 : Math.min(Math.min(threads, (units + 1) / 2), tasks) - 1;
        Round round = new Round(tasks, tokens, errors);
        int ahead = standingCount.get();
        if (ahead > 0) {
            publish(round); // the helpers woken ahead take part; fewer need waking now
        }
        for (int h = ahead; h < wake; h++) {
            helpers.execute(() -> round.take(this, true, false));
        }
        try {
            round.take(this, false, false);
        } finally {
            // Every task claimed by a helper is finished before the rows are let go: the caller's
            // next decode overwrites them. (A helper that wakes after the last task was claimed
            // finds none and touches nothing.)
            round.awaitRows();
        }
        for (int s = 0; s < splits; s++) {
            finishDraw(s, s * chunks, tokens, errors);
        }
        lastRows = m;
        lastSplitDraws = splits;
        lastHelpers = round.helpersJoined.get();
        lastPickNanos = round.pickNanos.get();
        lastHelperStartNanos = round.latestHelperStart.get();
        lastHelpersAhead = round.helpersAhead.get();
        Throwable failed = round.failed;
        Arrays.fill(rows, 0, m, null);
        Arrays.fill(rowSamplers, 0, m, null);
        if (failed != null) {
            throw new IllegalStateException("a sampling helper failed: " + failed, failed);
        }
    }

    /**
     * Wakes helpers for a {@link #sample} call whose rows are expected at {@code rowsAtNanos} (a
     * {@link System#nanoTime} value), with about {@code rows} rows on the host: as many as that
     * call would wake for that many argmaxes, less those still waiting from an earlier call. They
     * sleep until {@link #SPIN_LEAD_NANOS} before that time, then spin until a call hands out its
     * rows; a helper that has seen none {@link #GIVE_UP_NANOS} (or a quarter of the time ahead, if
     * longer) after that time goes back to sleep (the next call wakes helpers as usual). Nothing is woken with less than
     * {@link #MIN_AHEAD_NANOS} to go (a decode on the CPU has returned by the time it is done),
     * without helpers, or for fewer rows than are worth a helper. A {@link #forEachRow} call sends
     * the helpers waiting back first. Returns the number of helpers woken.
     *
     * @throws IllegalStateException when the pool is closed
     */
    public int wakeAhead(long rowsAtNanos, int rows) {
        if (closed) {
            throw new IllegalStateException("sampling pool is closed");
        }
        if (helpers == null || rows < MIN_PARALLEL_ROWS || rowsAtNanos - System.nanoTime() < MIN_AHEAD_NANOS) {
            return 0;
        }
        int n = Math.min(threads, (rows + 1) / 2) - 1 - standingCount.get();
        long after = published;
        long giveUp = rowsAtNanos + Math.max(GIVE_UP_NANOS, (rowsAtNanos - System.nanoTime()) / 4);
        for (int h = 0; h < n; h++) {
            standingCount.incrementAndGet();
            helpers.execute(() -> stand(after, rowsAtNanos, giveUp));
        }
        return Math.max(0, n);
    }

    /**
     * A helper woken ahead: waits for a round numbered after {@code after} and takes part in it. It
     * stops counting as waiting as soon as it joins, before it takes rows: the caller, back from a
     * call that this helper picked rows in, sees it gone and wakes helpers ahead again for the next.
     */
    private void stand(long after, long rowsAtNanos, long giveUp) {
        Thread me = Thread.currentThread();
        standing.add(me);
        boolean waiting = true;
        try {
            long spinFrom = rowsAtNanos - SPIN_LEAD_NANOS;
            while (!closed && !me.isInterrupted()) {
                Round r = current;
                if (r != null && r.number > after) {
                    waiting = false;
                    standing.remove(me);
                    standingCount.decrementAndGet();
                    r.take(this, true, true);
                    return;
                }
                long now = System.nanoTime();
                if (now - giveUp > 0) {
                    return;
                }
                if (spinFrom - now > 0) {
                    LockSupport.parkNanos(this, spinFrom - now); // until shortly before the rows, or a publish
                } else {
                    Thread.onSpinWait();
                }
            }
        } finally {
            if (waiting) {
                standing.remove(me);
                standingCount.decrementAndGet();
            }
        }
    }

    /** Hands {@code round} to the helpers woken ahead and wakes those still asleep (calling thread only). */
    private void publish(Round round) {
        round.number = ++published;
        current = round;
        for (Thread t : standing) {
            LockSupport.unpark(t);
        }
    }

    /** Helpers woken ahead that have not yet taken part in a call or given up (for the tests). */
    int standingHelpers() {
        return standingCount.get();
    }

    /** Of the helpers that took part in the last {@link #sample} call, how many were woken ahead ({@link #wakeAhead}). */
    public int lastHelpersAhead() {
        return lastHelpersAhead;
    }

    /** Rows the last {@link #sample} call sampled on the host, argmaxes and chains (not those read back from the device). */
    public int lastRows() {
        return lastRows;
    }

    /** Plain draws the last {@link #sample} call cut into chunks (0: every row was one thread's). */
    int lastSplitDraws() {
        return lastSplitDraws;
    }

    /**
     * Helper threads that took part in the last {@link #sample} call (0: the calling thread picked
     * every row; a woken helper that starts after the last row was taken does not count).
     */
    public int lastHelpers() {
        return lastHelpers;
    }

    /** The last {@link #sample} call's time spent picking rows (argmaxes and chains), summed over the threads that picked. */
    public long lastPickNanos() {
        return lastPickNanos;
    }

    /**
     * How long after the work was handed out the last helper that took part in the last
     * {@link #sample} call started (0 without one): what waking the pool's threads costs.
     */
    public long lastHelperStartNanos() {
        return lastHelperStartNanos;
    }

    /** Work on one logits row (see {@link #forEachRow}). */
    @FunctionalInterface
    public interface RowTask {
        /** @param row the logits of the row's batch position, read-only, valid during the call only */
        void run(int i, LogitsRow row);
    }

    /**
     * Runs {@code task.run(i, row)} for each {@code i < count}, where {@code row} is the logits of
     * batch index {@code indices[i]} of the context's last decode: work over whole rows (a
     * log-softmax over a 128k vocabulary is a pass of {@code exp} per row) spread over the helper
     * threads and the calling thread, which fetches the rows (a call into llama.cpp on the
     * context's thread) and returns when every task is done. The rows are read-only and valid
     * during this call only: a row kept and used afterwards throws instead of reading memory the
     * next decode reuses. Tasks must not call into the context. The first task failure is rethrown
     * once all are done.
     *
     * @throws IllegalStateException when the pool is closed or the context is used off its thread
     */
    public void forEachRow(LlamaContext context, int[] indices, int count, RowTask task) {
        if (closed) {
            throw new IllegalStateException("sampling pool is closed");
        }
        if (count < 0 || count > indices.length) {
            throw new IllegalArgumentException("count " + count + " does not fit the indices (" + indices.length + ")");
        }
        if (count == 0) {
            return;
        }
        context.checkOpen();
        if (standingCount.get() > 0) {
            publish(new Round(0, null, null)); // a round without tasks: helpers waiting ahead go back, their threads are needed here
        }
        try (Arena call = Arena.ofShared()) {
            LogitsRow[] rows = new LogitsRow[count];
            for (int i = 0; i < count; i++) {
                // the row where llama.cpp keeps it, seen through a segment of this call's arena
                MemorySegment row = context.logitsRow(indices[i], MemorySegment.NULL, "llama_get_logits_ith");
                rows[i] = new LogitsRow(row.reinterpret(call, null).asReadOnly());
            }
            int parts = helpers == null || count < 2 ? 1 : Math.min(threads, count);
            List<Future<?>> running = new ArrayList<>(parts - 1);
            for (int part = 1; part < parts; part++) {
                int from = count * part / parts, to = count * (part + 1) / parts;
                running.add(helpers.submit(() -> {
                    for (int i = from; i < to; i++) {
                        task.run(i, rows[i]);
                    }
                }));
            }
            RuntimeException failed = null;
            try {
                for (int i = 0; i < count / parts; i++) {
                    task.run(i, rows[i]);
                }
            } catch (RuntimeException e) {
                failed = e;
            }
            // every helper is waited for, even when interrupted: the arena closes after them
            Throwable helper = awaitAll(running);
            if (failed == null && helper != null) {
                failed = helper instanceof RuntimeException r ? r : new IllegalStateException(helper);
            }
            if (failed != null) {
                throw failed;
            }
        }
    }

    /**
     * Waits for every future, interrupted or not (the flag is set again afterwards); the first
     * failure's cause, or null.
     */
    private static Throwable awaitAll(List<Future<?>> futures) {
        boolean interrupted = false;
        Throwable failed = null;
        for (Future<?> f : futures) {
            while (true) {
                try {
                    f.get();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                } catch (ExecutionException e) {
                    failed = failed == null ? e.getCause() : failed;
                    break;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return failed;
    }

    /**
     * One {@link #sample} call's host rows, claimed one at a time by the calling thread and by
     * the helpers it woke: a helper that starts late (a parked thread can take hundreds of
     * microseconds to run again, in a virtual machine especially) takes fewer rows instead of
     * holding the whole step back by its delay.
     */
    private static final class Round {
        final int tasks;
        final int[] tokens;
        final RuntimeException[] errors;
        final long handedOut = System.nanoTime();
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger finished = new AtomicInteger();
        final AtomicInteger helpersJoined = new AtomicInteger();
        final AtomicInteger helpersAhead = new AtomicInteger();
        final AtomicLong pickNanos = new AtomicLong();
        final AtomicLong latestHelperStart = new AtomicLong();
        volatile Throwable failed;
        /** Set before the round is handed to helpers woken ahead ({@link #publish}). */
        long number;

        Round(int tasks, int[] tokens, RuntimeException[] errors) {
            this.tasks = tasks;
            this.tokens = tokens;
            this.errors = errors;
        }

        /** Does tasks (rows, chunks) until none is left; a task that throws an Error stops this thread, recorded for the caller. */
        void take(SamplingPool pool, boolean helper, boolean ahead) {
            long start = System.nanoTime();
            int r = next.getAndIncrement();
            if (r >= tasks) {
                return; // nothing left: this call's arrays may already belong to the next call
            }
            if (helper) {
                helpersJoined.incrementAndGet();
                if (ahead) {
                    helpersAhead.incrementAndGet();
                }
                latestHelperStart.accumulateAndGet(start - handedOut, Math::max);
            }
            try {
                do {
                    try {
                        pool.pickTask(r, tokens, errors);
                    } finally {
                        finished.incrementAndGet(); // publishes the token to the caller
                    }
                } while ((r = next.getAndIncrement()) < tasks);
            } catch (Throwable t) {
                failed = t;
                if (!helper) {
                    throw t;
                }
            } finally {
                pickNanos.addAndGet(System.nanoTime() - start);
            }
        }

        /**
         * Returns once every task is finished. Tasks nobody claimed (the calling thread stopped on an
         * Error) are claimed here and left undone; a task a helper is doing takes tens of
         * microseconds (an argmax, a chunk of a draw) to milliseconds (a chain over the whole
         * vocabulary), so this spins, then yields.
         */
        void awaitRows() {
            while (next.getAndIncrement() < tasks) {
                finished.incrementAndGet();
            }
            for (int spins = 0; finished.get() < tasks; spins++) {
                if (spins < 10_000) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield(); // the helper lost its core
                }
            }
        }
    }

    /** Plain draws split this call (their rows in {@link #splitRows}). */
    private int splits;

    /**
     * Fills the task arrays for the call's {@code m} rows (chains and draws first, then argmaxes): a
     * task per row, except that with {@code chunks > 0} each plain draw becomes that many chunk
     * tasks, handed out before everything else. Returns the number of tasks.
     */
    private int planTasks(int m, int chunks) {
        splits = 0;
        if (chunks > 0) {
            for (int r = 0; r < m; r++) {
                if (rowSamplers[r].plainDraw() != null) {
                    splits++;
                }
            }
        }
        int tasks = m - splits + splits * chunks;
        if (taskRow.length < tasks) {
            taskRow = new int[tasks];
            taskChunk = new int[tasks];
        }
        if (splitRows.length < splits) {
            splitRows = new int[splits];
        }
        if (chunkMax.length < splits * chunks) {
            chunkMax = new float[splits * chunks];
            chunkSum = new double[splits * chunks];
        }
        int t = 0;
        int s = 0;
        for (int r = 0; r < m && splits > 0; r++) {
            if (rowSamplers[r].plainDraw() != null) {
                splitRows[s++] = r;
                for (int k = 0; k < chunks; k++, t++) {
                    taskRow[t] = r;
                    taskChunk[t] = k;
                }
            }
        }
        for (int r = 0; r < m; r++) {
            if (splits == 0 || rowSamplers[r].plainDraw() == null) {
                taskRow[t] = r;
                taskChunk[t++] = -1;
            }
        }
        return t;
    }

    private void pickTask(int t, int[] tokens, RuntimeException[] errors) {
        int r = taskRow[t];
        int i = rowSlots[r];
        try {
            if (taskChunk[t] >= 0) {
                rowSamplers[r].plainDraw().chunk(rows[r], drawChunk, taskChunk[t], chunkMax, chunkSum, t);
            } else {
                tokens[i] = rowSamplers[r].sampleRow(rows[r]);
            }
        } catch (RuntimeException e) {
            errors[i] = e;
        }
    }

    /** The token of split draw {@code s}, from its chunks' results (from slot {@code first}), unless a chunk failed. */
    private void finishDraw(int s, int first, int[] tokens, RuntimeException[] errors) {
        int r = splitRows[s];
        int i = rowSlots[r];
        if (errors[i] != null) {
            return;
        }
        try {
            tokens[i] = rowSamplers[r].plainDraw().finish(rows[r], drawChunk, chunkMax, chunkSum, first);
        } catch (RuntimeException e) {
            errors[i] = e;
        }
    }

    /** Stops the helper threads. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            if (helpers != null) {
                helpers.shutdownNow();
            }
        }
    }
}
