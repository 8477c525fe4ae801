package ai.llmref.server.engine;

import ai.llmref.llama.Batch;
import ai.llmref.llama.ContextMemory;
import ai.llmref.llama.DecodeAbortedException;
import ai.llmref.llama.DryStage;
import ai.llmref.llama.GrammarException;
import ai.llmref.llama.LlamaContext;
import ai.llmref.llama.LlamaException;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.Sampler;
import ai.llmref.llama.SamplingPool;
import ai.llmref.llama.StreamingDetokenizer;
import ai.llmref.llama.Vocabulary;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;

/**
 * Continuous batching over one llama.cpp context. A single platform thread (the scheduler) owns
 * the context: each step it admits queued requests into free slots (reusing the longest cached
 * prompt prefix), builds one batch holding the next token of every generating slot plus chunks
 * of pending prompts, decodes it once, samples every slot that produced an output and streams
 * the text to the request's handle. HTTP handlers only {@link #submit} and read their handle.
 */
public final class Engine implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Engine.class.getName());
    private static final long IDLE_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

    private final LlamaModel model;
    private final Vocabulary vocab;
    private final EngineConfig config;
    private final EngineObserver observer;
    private final ArrayBlockingQueue<RequestHandle> queue;
    /**
     * Requests accepted and not yet ended: queued or in a slot. At most slots + queue capacity, so
     * that {@code engine.queue-capacity} bounds the requests waiting for a busy slot, not those the
     * scheduler has not yet moved into free slots (a burst, or the choices of one request).
     */
    private final AtomicInteger accepted = new AtomicInteger();
    private final java.util.concurrent.LinkedBlockingQueue<EmbeddingJob> embeddingJobs = new java.util.concurrent.LinkedBlockingQueue<>();
    /**
     * Embedding jobs accepted and not yet ended: waiting, or the one the embeddings context works
     * on. At most queue capacity + 1, so that {@code engine.queue-capacity} bounds the jobs waiting
     * for the embeddings context, not one the scheduler has not yet taken to an idle context. A
     * job ends when its future completes, however: done, failed, or given up by its caller.
     */
    private final AtomicInteger embeddingAccepted = new AtomicInteger();
    /** The embeddings context's work in progress (scheduler thread; null when embeddings are off). */
    private EmbeddingWork embedding;
    /** Set before the scheduler takes an embedding job and cleared once none is left: for {@link #idle}. */
    private volatile boolean embeddingBusy;
    /** Most tokens of one embedding input: what the embeddings context decodes in one micro-batch. */
    private volatile int embeddingLimit;
    private final Thread scheduler;
    private final CountDownLatch started = new CountDownLatch(1);
    private volatile Throwable startFailure;
    private volatile boolean running = true;
    private volatile boolean draining;
    private volatile long heartbeatNanos = System.nanoTime();
    private volatile int busySlots;
    private volatile int kvCellsUsed;
    private volatile int slotContext;
    /** Set once by the scheduler when it has created the contexts. */
    private volatile Map<String, ContextMemory> memoryUse = Map.of();
    /** The scheduler's contexts while it runs, for {@link #close} to abort a decode under way; else null. */
    private volatile LlamaContext liveContext;
    private volatile LlamaContext liveEmbeddingContext;
    private volatile long stalledUntilNanos;
    /**
     * Most prompt tokens per step for a request that wants the prompt's log-probabilities (each is
     * an output row, a vocabulary of floats). ggml's CPU flash attention takes its tiled kernel only
     * for at least {@code GGML_FA_TILE_Q} (64) query rows of a sequence in a ubatch, and attends row
     * by row below that, three times as slow on long prompts. One more than the tile because with a
     * KV stream per slot llama.cpp splits a step into ubatches of equal tokens per sequence: the
     * generating slots' single tokens take one position of the chunk into a first ubatch, and the
     * other 64 stay together. 7,000 tokens on tiny-128k: 39.5 s at 32 alone; with a stream
     * generating beside it 40.8 s at 64, 14.7 s at 65 (docs/benchmarks.md). The step's batch size
     * bounds the rows of all slots together.
     */
    static final int PROMPT_LOGPROBS_CHUNK = 65;
    /** Fewest prompt tokens a cached prefix in another slot must save to be copied into the lowest free slot. */
    static final int MIGRATE_MIN_TOKENS = 16;
    /** The scheduler's sampling arrays. */
    private final Picks picks;
    /** The context's count of reused compute graphs after the last step ({@link LlamaContext#graphsReused}; scheduler thread). */
    private long graphsReusedSeen;
    /**
     * By a step's batch size: how long its decode took until the device had finished, averaged over
     * the last steps of that size (0: none yet). Tells the sampling pool when to wake its helpers.
     */
    private long[] decodeEstimate = new long[0];

    private record EmbeddingJob(List<int[]> inputs, CompletableFuture<List<float[]>> result) {}

    private Engine(LlamaModel model, EngineConfig config, EngineObserver observer) {
        this.model = model;
        this.observer = observer;
        this.vocab = model.vocabulary();
        this.config = config;
        this.queue = new ArrayBlockingQueue<>(config.slots() + config.queueCapacity());
        this.picks = new Picks(config.slots());
        this.scheduler = Thread.ofPlatform().name("llama-scheduler").daemon(false).unstarted(this::run);
    }

    /** Starts the scheduler, which creates the context; fails if the context cannot be created. */
    public static Engine start(LlamaModel model, EngineConfig config) {
        return start(model, config, EngineObserver.NONE);
    }

    /** As {@link #start(LlamaModel, EngineConfig)}, reporting tokens and finished requests to {@code observer}. */
    public static Engine start(LlamaModel model, EngineConfig config, EngineObserver observer) {
        Engine e = new Engine(model, config, observer);
        e.scheduler.start();
        try {
            e.started.await();
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            e.close();
            throw new EngineException(EngineException.Kind.UNAVAILABLE, "interrupted while starting the engine");
        }
        if (e.startFailure != null) {
            throw new EngineException(EngineException.Kind.INTERNAL, "cannot start the engine: " + e.startFailure.getMessage(), e.startFailure);
        }
        return e;
    }

    /**
     * Queues a generation.
     *
     * @throws EngineException QUEUE_FULL (429), CONTEXT_LENGTH (400), INVALID_REQUEST (400) or
     *                         UNAVAILABLE (503, draining or stopped)
     */
    public RequestHandle submit(GenerationRequest r) {
        if (!running || draining) {
            throw new EngineException(EngineException.Kind.UNAVAILABLE, "the server is shutting down");
        }
        int[] prompt = r.prompt();
        if (prompt.length == 0) {
            throw new EngineException(EngineException.Kind.INVALID_REQUEST, "the prompt is empty");
        }
        for (int t : prompt) {
            if (t < 0 || t >= vocab.size()) {
                throw new EngineException(EngineException.Kind.INVALID_REQUEST, "prompt token " + t + " is outside the vocabulary");
            }
        }
        if (r.maxTokens() < 0) {
            throw new EngineException(EngineException.Kind.INVALID_REQUEST, "max_tokens must be at least 0");
        }
        if ((long) prompt.length + r.maxTokens() > slotContext) {
            throw new EngineException(EngineException.Kind.CONTEXT_LENGTH, "the prompt (" + prompt.length + " tokens) plus max_tokens ("
                    + r.maxTokens() + ") exceeds the context of a slot (" + slotContext + " tokens)");
        }
        // the DRY stage is made before the queue: the scheduler only copies it
        RequestHandle h = new RequestHandle(r, dryStage(r.sampling()));
        acceptOne(accepted, config.slots() + config.queueCapacity(), () -> "all " + config.slots() + " slots are busy and "
                + config.queueCapacity() + " requests are waiting; retry later");
        queue.add(h); // room for every accepted request: at most slots + capacity are
        if (!running && queue.remove(h)) {
            // the scheduler stopped (and failed what was queued) between the check above and the offer
            accepted.decrementAndGet();
            throw new EngineException(EngineException.Kind.UNAVAILABLE, "the server is shutting down");
        }
        LockSupport.unpark(scheduler);
        return h;
    }

    /**
     * Pooled, L2-normalised embeddings of each input (one decode each, one input between two
     * generation steps). The scheduler skips what is left of a job whose future was completed or
     * cancelled meanwhile (a caller that gave up).
     */
    public CompletableFuture<List<float[]>> embed(List<int[]> inputs) {
        if (!config.embeddings()) {
            throw new EngineException(EngineException.Kind.INVALID_REQUEST, "embeddings are disabled on this server (engine.embeddings)");
        }
        if (!running || draining) {
            throw new EngineException(EngineException.Kind.UNAVAILABLE, "the server is shutting down");
        }
        for (int[] in : inputs) {
            if (in.length == 0) {
                throw new EngineException(EngineException.Kind.INVALID_REQUEST, "an embedding input is empty");
            }
            if (in.length > embeddingLimit) {
                throw new EngineException(EngineException.Kind.CONTEXT_LENGTH, "an embedding input has " + in.length
                        + " tokens; the limit is " + embeddingLimit);
            }
        }
        EmbeddingJob job = new EmbeddingJob(inputs, new CompletableFuture<>());
        int limit = config.queueCapacity() + 1;
        acceptOne(embeddingAccepted, limit, () -> config.queueCapacity() + " embedding requests are waiting; retry later");
        job.result().whenComplete((r, e) -> embeddingAccepted.decrementAndGet());
        if (embeddingJobs.size() >= limit) {
            embeddingJobs.removeIf(j -> j.result().isDone()); // jobs whose callers gave up, not yet reached
        }
        embeddingJobs.add(job);
        if (!running && embeddingJobs.remove(job)) {
            job.result().cancel(false);
            throw new EngineException(EngineException.Kind.UNAVAILABLE, "the server is shutting down");
        }
        LockSupport.unpark(scheduler);
        return job.result();
    }

    /** Counts one more piece of work as accepted in {@code count}, or refuses it (429) when {@code limit} are. */
    private static void acceptOne(AtomicInteger count, int limit, java.util.function.Supplier<String> refusal) {
        if (count.getAndUpdate(n -> n < limit ? n + 1 : n) >= limit) {
            throw new EngineException(EngineException.Kind.QUEUE_FULL, refusal.get());
        }
    }

    // --- scheduler thread ------------------------------------------------------------------------

    private void run() {
        LlamaContext ctx = null;
        LlamaContext embeddingCtx = null;
        Batch batch = null;
        SamplingPool sampling = null;
        Slot[] slots = new Slot[config.slots()];
        try {
            try {
                ctx = model.newContext(config.contextParams());
                liveContext = ctx;
                sampling = new SamplingPool(config.samplingThreads());
                batch = ctx.newBatch(ctx.batchSize());
                slotContext = ctx.sequenceContextSize();
                readVocabulary(); // here, not in the first grammar request's step (a pass over 128k tokens)
                if (config.embeddings()) {
                    // as many positions as a generation slot has (llama.cpp may round the configured size up)
                    embeddingCtx = model.newContext(config.embeddingParams(slotContext));
                    liveEmbeddingContext = embeddingCtx;
                    embedding = new EmbeddingWork(embeddingCtx);
                    embeddingLimit = Math.min(embeddingCtx.sequenceContextSize(), embeddingCtx.batchSize());
                }
                memoryUse = embeddingCtx == null ? Map.of("generation", ctx.memoryUse())
                        : Map.of("generation", ctx.memoryUse(), "embeddings", embeddingCtx.memoryUse());
                for (int i = 0; i < slots.length; i++) {
                    slots[i] = new Slot(i);
                }
            } catch (RuntimeException e) {
                startFailure = e;
                running = false;
                return;
            } finally {
                started.countDown();
            }
            loop(ctx, batch, slots, sampling);
        } catch (Throwable t) {
            LOG.log(Level.ERROR, "the scheduler stopped on an unexpected error", t);
        } finally {
            running = false;
            liveContext = null;
            liveEmbeddingContext = null;
            failAll(slots, "the engine stopped");
            for (Slot s : slots) {
                if (s != null) {
                    s.release();
                    s.dropDeviceSampler();
                }
            }
            if (sampling != null) {
                sampling.close();
            }
            if (batch != null) {
                batch.close();
            }
            if (embedding != null) {
                embedding.close();
            }
            if (embeddingCtx != null) {
                embeddingCtx.close();
            }
            if (ctx != null) {
                ctx.close();
            }
        }
    }

    private void loop(LlamaContext ctx, Batch batch, Slot[] slots, SamplingPool sampling) {
        while (running) {
            heartbeatNanos = System.nanoTime();
            while (System.nanoTime() < stalledUntilNanos && running) {
                LockSupport.parkNanos(IDLE_PARK_NANOS); // test hook: a stalled scheduler stops its heartbeat
            }
            if (embedding != null) {
                embedding.next(); // one input at most: the steps and the heartbeat go on between inputs
            }
            long stepStart = System.nanoTime();
            for (Slot s : slots) {
                if (s.busy() && s.handle.isCancelled()) {
                    finish(s, FinishReason.CANCELLED);
                }
            }
            admit(ctx, slots);
            updateGauges(slots);
            if (busySlots == 0) {
                if (embedding == null || !embedding.pending()) {
                    LockSupport.parkNanos(IDLE_PARK_NANOS);
                }
                continue;
            }
            step(ctx, batch, slots, sampling, stepStart);
        }
    }

    private void admit(LlamaContext ctx, Slot[] slots) {
        while (!queue.isEmpty()) {
            Slot free = null;
            RequestHandle h = queue.peek();
            if (h == null) {
                return;
            }
            if (h.isCancelled()) {
                queue.poll();
                endCancelled(h);
                continue;
            }
            // The request runs in the lowest free slot, so that the busy slots stay together at the
            // low end: with per-sequence KV streams llama.cpp splits a batch into one micro-batch
            // per run of consecutive sequence ids (llama_batch_allocr::split_equal, sequential),
            // and requests spread over the slots would cost a device pass per run, every step.
            // A longer cached prefix in another free slot is copied into it first (one stream
            // copy) when it saves at least MIGRATE_MIN_TOKENS prompt tokens.
            Slot best = null;
            int bestCommon = -1;
            int freeCommon = 0;
            for (Slot s : slots) {
                if (!s.busy()) {
                    int common = s.commonPrefix(h.request.prompt());
                    if (free == null) {
                        free = s;
                        freeCommon = common;
                    }
                    if (common > bestCommon) {
                        bestCommon = common;
                        best = s;
                    }
                }
            }
            if (free == null) {
                dropCancelledQueued();
                return;
            }
            // counted busy before it leaves the queue, so that idle() never misses it in between
            busySlots++;
            queue.poll();
            // (a request for the prompt's log-probabilities decodes the whole prompt anyway)
            if (best != free && !h.request.promptLogprobs() && bestCommon - freeCommon >= MIGRATE_MIN_TOKENS) {
                free = migrate(ctx, best, free);
            }
            start(ctx, free, h);
        }
    }

    /**
     * Ends the queued requests whose callers gave up: one behind a request still waiting would
     * otherwise keep its place in the queue (and new requests would get 429) until admitted.
     */
    private void dropCancelledQueued() {
        for (RequestHandle h : queue) { // weakly consistent: submissions meanwhile are seen or not
            if (h.isCancelled() && queue.remove(h)) {
                endCancelled(h);
            }
        }
    }

    private void endCancelled(RequestHandle h) {
        accepted.decrementAndGet(); // before its end is seen: a caller that saw it may submit again
        h.emit(new GenerationEvent.Done(FinishReason.CANCELLED, h.request.prompt().length, 0, 0, new GenerationEvent.Timings(0, 0, 0, 0)));
    }

    /**
     * Copies {@code from}'s cached prefix into the free slot {@code to} (its own cache is dropped)
     * and returns {@code to}; if llama.cpp refuses the copy, returns {@code from}, whose cache is
     * then used where it is.
     */
    private Slot migrate(LlamaContext ctx, Slot from, Slot to) {
        try {
            ctx.removeTokens(to.sequence, -1, -1);
            to.cachedLength = 0;
            ctx.copySequence(from.sequence, to.sequence, -1, -1);
        } catch (LlamaException e) {
            LOG.log(Level.WARNING, "copying the cached prefix of slot " + from.sequence + " to slot " + to.sequence
                    + " failed (" + e.getMessage() + "); the request runs in slot " + from.sequence);
            return from;
        }
        to.cached = Arrays.copyOf(from.cached, from.cachedLength);
        to.cachedLength = from.cachedLength;
        observer.prefixCopied();
        return to;
    }

    private void start(LlamaContext ctx, Slot slot, RequestHandle h) {
        int[] prompt = h.request.prompt();
        int common = slot.commonPrefix(prompt);
        if (common >= prompt.length) {
            common = prompt.length - 1; // the last prompt token is decoded again to get its logits
        }
        if (h.request.promptLogprobs()) {
            common = 0; // every position's logits are wanted
        }
        if (!ctx.removeTokens(slot.sequence, common, -1)) {
            ctx.removeTokens(slot.sequence, -1, -1);
            common = 0;
        }
        slot.cachedLength = common;
        slot.handle = h;
        slot.prompt = prompt;
        slot.prefillNext = common;
        slot.reusedPrefix = common;
        slot.position = common;
        slot.generated = 0;
        slot.countedTokens = 0;
        slot.outputIndex = -1;
        slot.startedNanos = System.nanoTime();
        slot.prefillDoneNanos = 0;
        slot.firstTokenNanos = 0;
        slot.detokenizer = new StreamingDetokenizer(vocab, false);
        slot.stops = new StopMatcher(h.request.stop());
        slot.late = h.request.late();
        slot.lateText = slot.late == null ? null : new StringBuilder();
        slot.latePreamble = slot.late == null || slot.late.preamble() == null ? null : slot.late.preamble().get();
        slot.budget = h.request.budget();
        slot.budgetTracker = slot.budget == null ? null : slot.budget.tracker().get();
        slot.lines = h.request.lines() == null ? null : new LineLimits.Tracker(h.request.lines());
        slot.forced = null;
        slot.logprobs = h.request.logprobs() < 0 ? null : new LogprobTrack(h.request.logprobs(), vocab);
        if (h.request.promptLogprobs()) {
            slot.promptLogprobs = new ArrayList<>(prompt.length);
            slot.promptLogprobs.add(new TokenLogprob(prompt[0], vocab.tokenBytes(prompt[0], false), -1, Float.NaN, List.of()));
        }
        try {
            LateGrammar late = h.request.late();
            if (late != null && late.required()) {
                // made now, so that a grammar llama.cpp cannot compile is refused at once; it takes over later (constrain)
                slot.lateChain = sampler(h.request.sampling().withGrammar(late.grammar()), false, h.dry, h.request);
            }
            slot.sampler = sampler(h.request.sampling(), late != null && late.required(), h.dry, h.request);
            // llama.cpp's repetition penalty and DRY see the prompt's last tokens, as llama-server feeds them
            for (int i = Math.max(0, prompt.length - h.request.sampling().llama().promptWindow()); i < prompt.length; i++) {
                slot.sampler.acceptOutsideGrammar(prompt[i]);
            }
            if (config.deviceSampling()) {
                placeOnDevice(ctx, slot, h.request);
            }
        } catch (GrammarException e) {
            fail(slot, new EngineException(EngineException.Kind.INVALID_REQUEST, e.detail(), e));
        } catch (LlamaException e) {
            fail(slot, new EngineException(EngineException.Kind.INVALID_REQUEST, e.detail(), e));
        }
    }

    /**
     * Backend sampling ({@code engine.device-sampling}): a greedy request with at most a logit bias,
     * and no log-probabilities, has its token picked on the device that computes the logits, so
     * its logits are neither copied out nor scanned here. The slot keeps its attached chain while
     * requests with the same bias follow (each attach or detach makes llama.cpp reserve its compute
     * buffers again); a request that needs the logits detaches it. Afterwards the slot's
     * {@code deviceSampler} is set exactly when this request samples on the device.
     */
    private void placeOnDevice(LlamaContext ctx, Slot slot, GenerationRequest r) {
        SamplingParams p = r.sampling();
        // a late grammar replaces the chain part-way, after the device may have picked with the old one
        boolean fits = slot.sampler.offloadable() && r.logprobs() < 0 && !r.promptLogprobs() && r.late() == null;
        if (fits && slot.deviceSampler != null && slot.deviceBias.equals(p.logitBias())) {
            return; // the attached chain applies this bias already
        }
        slot.dropDeviceSampler();
        if (!fits) {
            return;
        }
        Sampler chain = sampler(p, false, slot.handle.dry, r);
        if (!ctx.attachSampler(slot.sequence, chain)) {
            chain.close();
            return;
        }
        slot.deviceSampler = chain;
        slot.deviceBias = Map.copyOf(p.logitBias());
        observer.deviceSamplerAttached();
    }

    /** A DRY stage's settings (its window as the engine uses it). */
    private record DryKey(float multiplier, float base, int allowedLength, int window, List<String> breakers) {}

    /** DRY stages by their settings, the most recently used kept ({@link #DRY_STAGES_KEPT}); one dropped is freed once no request holds it. */
    private final Map<DryKey, DryStage> dryStages = java.util.Collections.synchronizedMap(new java.util.LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<DryKey, DryStage> eldest) {
            return size() > DRY_STAGES_KEPT;
        }
    });
    private static final int DRY_STAGES_KEPT = 16;
    /**
     * Makes DRY stages: llama.cpp goes over the whole vocabulary for each sequence breaker (35 ms
     * for llama-server's four on a 128k vocabulary, 300 ms for sixteen long ones), which must not
     * stall the scheduler's steps nor pin a request's virtual thread. One platform thread: the
     * requests that need a new stage wait for it in turn.
     */
    private final java.util.concurrent.ExecutorService dryMaker = java.util.concurrent.Executors.newSingleThreadExecutor(
            Thread.ofPlatform().name("llmref-dry-stages").daemon(true).factory());

    /** The DRY stage a request's chains copy, made (on {@link #dryMaker}) unless one with its settings is kept; null without DRY. */
    private DryStage dryStage(SamplingParams p) {
        SamplingParams.LlamaStages x = p.llama();
        if (!(x.dryMultiplier() > 0) || x.dryWindow() == 0 || !x.order().contains(Sampler.Stage.DRY)) {
            return null;
        }
        DryKey key = new DryKey(x.dryMultiplier(), x.dryBase(), x.dryAllowedLength(), Math.min(x.dryWindow(), slotContext), x.dryBreakers());
        DryStage kept = dryStages.get(key);
        if (kept != null) {
            return kept;
        }
        try {
            return dryMaker.submit(() -> {
                DryStage made = dryStages.get(key); // made meanwhile for a request queued before this one
                if (made == null) {
                    made = DryStage.create(vocab, key.multiplier(), key.base(), key.allowedLength(), key.window(), key.breakers());
                    dryStages.put(key, made);
                }
                return made;
            }).get();
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof LlamaException le) {
                throw new EngineException(EngineException.Kind.INVALID_REQUEST, le.detail(), le);
            }
            throw new EngineException(EngineException.Kind.INTERNAL, "the DRY stage could not be made", e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new EngineException(EngineException.Kind.UNAVAILABLE, "interrupted while the DRY stage was made");
        } catch (java.util.concurrent.RejectedExecutionException e) {
            throw new EngineException(EngineException.Kind.UNAVAILABLE, "the server is shutting down");
        }
    }

    /** @param noEnd the output may not end yet: end-of-generation tokens are banned (a required late grammar not yet applied) */
    private Sampler sampler(SamplingParams p, boolean noEnd, DryStage dry, GenerationRequest request) {
        Sampler.Builder b = Sampler.builder(vocab);
        if (p.grammar() != null) {
            b.grammar(p.grammar(), "root");
        }
        for (Map.Entry<Integer, Float> e : p.logitBias().entrySet()) {
            b.logitBias(e.getKey(), e.getValue());
        }
        if (noEnd) {
            for (int t : endsOfGeneration) {
                b.logitBias(t, Float.NEGATIVE_INFINITY);
            }
        }
        if (p.grammar() != null) {
            for (int t : unseenByGrammars) {
                if (!request.preserves(t)) { // a preserved token shows as the text the grammar reads
                    b.logitBias(t, Float.NEGATIVE_INFINITY);
                }
            }
        }
        SamplingParams.LlamaStages x = p.llama();
        if (x.ignoreEos() && !noEnd) {
            for (int t : endsOfGeneration) {
                b.logitBias(t, Float.NEGATIVE_INFINITY);
            }
        }
        // a window no longer than the slot's context: the history cannot be longer
        if (p.presencePenalty() != 0 || p.frequencyPenalty() != 0 || x.repeatPenalty() != 1f) {
            b.penalties(Math.min(x.penaltyWindow(), slotContext), x.repeatPenalty(), p.frequencyPenalty(), p.presencePenalty());
        }
        if (dry != null) { // made when the request was submitted (dryStage)
            b.dry(dry);
        }
        b.order(x.order());
        if (!p.isGreedy()) {
            if (p.topK() > 0) {
                b.topK(p.topK());
            }
            if (p.topP() < 1) {
                b.topP(p.topP());
            }
            if (p.minP() > 0) {
                b.minP(p.minP());
            }
            if (x.typicalP() < 1) {
                b.typical(x.typicalP());
            }
            b.topNSigma(x.topNSigma()).xtc(x.xtcProbability(), x.xtcThreshold()).mirostat(x.mirostat(), x.mirostatTau(), x.mirostatEta())
                    .dynamicTemperature(x.dynatempRange(), x.dynatempExponent()).minKeep(x.minKeep());
            b.temperature(p.temperature());
            b.seed(p.seed() != null ? p.seed() : (System.nanoTime() & 0xFFFFFFFFL));
        }
        return b.build();
    }

    /**
     * Tokens a grammar reads otherwise than the output shows them, banned where a grammar applies:
     * llama.cpp's grammar reads a token's text with special tokens rendered, the output renders
     * them as nothing, so a control token such as {@code <s>} inside a string counted three
     * characters toward its {@code minLength} and left none. End-of-generation tokens stay (the
     * grammar decides when they may come). Found by {@link #readVocabulary}.
     */
    private int[] unseenByGrammars;
    /** The end-of-generation tokens (banned while a required late grammar has not applied). Found by {@link #readVocabulary}. */
    private int[] endsOfGeneration;

    /** Finds {@link #unseenByGrammars} and {@link #endsOfGeneration}: scheduler thread, one pass over the vocabulary, at start. */
    private void readVocabulary() {
        List<Integer> unseen = new ArrayList<>();
        List<Integer> ends = new ArrayList<>();
        for (int t = 0; t < vocab.size(); t++) {
            if (vocab.isEndOfGeneration(t)) {
                ends.add(t);
            } else if (!Arrays.equals(vocab.tokenBytes(t, true), vocab.tokenBytes(t, false))) {
                unseen.add(t);
            }
        }
        unseenByGrammars = unseen.stream().mapToInt(Integer::intValue).toArray();
        endsOfGeneration = ends.stream().mapToInt(Integer::intValue).toArray();
    }

    /** A slot whose next step decodes its last sampled token. */
    private static boolean generating(Slot s) {
        return s.busy() && !s.prefilling() && s.generated > 0;
    }

    private void step(LlamaContext ctx, Batch batch, Slot[] slots, SamplingPool sampling, long stepStart) {
        batch.clear();
        // Generating slots get their token first; prompts share what is left of the batch. The
        // tokens go in slot order, so that consecutive busy slots form one run of sequence ids
        // (one micro-batch with per-sequence KV streams; see admit).
        int generating = 0;
        for (Slot s : slots) {
            s.outputIndex = -1;
            if (generating(s)) {
                generating++;
            }
        }
        int tokenBudget = Math.min(generating, batch.capacity());
        int budget = batch.capacity() - tokenBudget;
        int runs = 0;
        int lastSequence = -2;
        int hostPicks = 0; // this step's tokens to pick on the host, as far as known before the decode
        int promptTokens = 0;
        for (Slot s : slots) {
            int before = batch.size();
            if (generating(s)) {
                if (tokenBudget == 0) {
                    continue;
                }
                hostPicks += s.deviceSampler == null ? 1 : 0;
                s.outputIndex = batch.size();
                batch.add(s.lastToken, s.position, s.sequence, true);
                s.remember(s.lastToken, s.position);
                s.position++;
                tokenBudget--;
            } else if (s.prefilling() && budget > 0) {
                // with the prompt's log-probabilities every position is an output: smaller chunks
                // bound the logits llama.cpp keeps (positions x vocabulary floats)
                int chunk = s.promptLogprobs != null ? PROMPT_LOGPROBS_CHUNK : config.prefillChunk();
                int n = Math.min(Math.min(s.prompt.length - s.prefillNext, budget), chunk);
                s.chunkBatchIndex = batch.size();
                s.chunkPromptIndex = s.prefillNext;
                s.chunkLength = n;
                for (int i = 0; i < n; i++) {
                    int idx = s.prefillNext + i;
                    boolean last = idx == s.prompt.length - 1;
                    if (last) {
                        s.outputIndex = batch.size();
                        hostPicks += s.deviceSampler == null ? 1 : 0;
                    }
                    batch.add(s.prompt[idx], s.position, s.sequence, last || s.promptLogprobs != null);
                    s.remember(s.prompt[idx], s.position);
                    s.position++;
                }
                s.prefillNext += n;
                budget -= n;
                promptTokens += n;
            }
            if (batch.size() > before) {
                if (s.sequence != lastSequence + 1) {
                    runs++;
                }
                lastSequence = s.sequence;
            }
        }
        if (batch.isEmpty()) {
            emitPending(slots);
            return;
        }
        long decodeStart = System.nanoTime();
        try {
            ctx.decode(batch);
        } catch (LlamaException e) {
            if (!running && e instanceof DecodeAbortedException) {
                return; // close() stopped it: the loop ends and every request fails as "the engine stopped"
            }
            LOG.log(Level.ERROR, "decode failed: " + e.getMessage());
            for (Slot s : slots) {
                if (s.busy() && s.outputIndex >= 0 || s.prefilling()) {
                    ctx.removeTokens(s.sequence, -1, -1);
                    s.cachedLength = 0;
                    fail(s, new EngineException(EngineException.Kind.INTERNAL, "decoding failed: " + e.detail(), e));
                }
            }
            return;
        }
        long decodeCallNanos = System.nanoTime() - decodeStart; // the host's part of the decode
        // On a GPU llama_decode returns while the device computes: the sampling pool's helpers are
        // woken now, to be running when the rows come, and the text of the last step's tokens is
        // made and handed out in that window (emit during decode, see accept).
        int size = batch.size();
        if (decodeEstimate.length <= size) {
            decodeEstimate = new long[batch.capacity() + 1]; // once: a batch holds at most its capacity
        }
        if (config.samplingWakeAhead() && decodeEstimate[size] > 0) {
            sampling.wakeAhead(decodeStart + decodeEstimate[size], hostPicks);
        }
        long pendingStart = System.nanoTime();
        emitPending(slots);
        long emitNanos = System.nanoTime() - pendingStart;
        ctx.synchronize(); // wait for the device here, so that the phases are timed apart
        long now = System.nanoTime();
        long decodeNanos = now - decodeStart - emitNanos;
        // until the device had finished (or, when the text took longer, until the text was done: an
        // estimate on the late side wakes the helpers late, as without it)
        long est = decodeEstimate[size];
        decodeEstimate[size] = est == 0 ? now - decodeStart : est + (now - decodeStart - est) / 4;
        long reusedTotal = ctx.graphsReused();
        int graphsReused = (int) Math.max(0, reusedTotal - graphsReusedSeen);
        graphsReusedSeen = reusedTotal;
        Picks p = picks;
        int n = 0;
        promptLogprobs(ctx, slots, sampling);
        for (Slot s : slots) {
            if (!s.busy() || s.outputIndex < 0) {
                continue;
            }
            if (s.prefillDoneNanos == 0) {
                s.prefillDoneNanos = now;
            }
            if (s.handle.request.maxTokens() == 0) {
                finish(s, FinishReason.LENGTH); // the prompt alone was asked for
                continue;
            }
            p.slots[n] = s;
            p.samplers[n] = s.deviceSampler != null ? s.deviceSampler : s.sampler; // the device's pick is read back
            p.indices[n++] = s.outputIndex;
        }
        int sampled = forcedLast(p, n);
        // every other slot's next token, picked on the sampling pool's threads together (argmaxes and chains)
        try {
            sampling.sample(ctx, p.samplers, p.indices, sampled, p.tokens, p.errors);
        } catch (RuntimeException e) {
            // not one row's error (those come back in p.errors) but the pool's: this step's requests
            // fail, the engine and the other requests go on
            LOG.log(Level.ERROR, "sampling failed unexpectedly; failing this step's " + n + " requests", e);
            for (int i = 0; i < n; i++) {
                p.slots[i].dropDeviceSampler();
                fail(p.slots[i], new EngineException(EngineException.Kind.INTERNAL, "sampling failed unexpectedly", e));
                p.slots[i] = null;
            }
            return;
        }
        long emitStart = System.nanoTime();
        if (sampling.lastRows() > 0) {
            observer.samplingCompleted(sampling.lastRows(), sampling.lastHelpers(), sampling.lastHelpersAhead(),
                    sampling.lastPickNanos(), sampling.lastHelperStartNanos());
        }
        force(p, sampled, n);
        tokenLogprobs(ctx, sampling, n);
        for (int i = 0; i < n; i++) {
            Slot s = p.slots[i];
            RuntimeException error = p.errors[i]; // the pool resets errors[0..n) on every call
            if (error instanceof GrammarException e) {
                // the request's own constraints (response_format's grammar with logit_bias bans) allow no token
                fail(s, new EngineException(EngineException.Kind.INVALID_REQUEST,
                        "response_format and logit_bias together leave no token the output may continue with", e));
            } else if (error instanceof LlamaException e) {
                s.dropDeviceSampler(); // a device chain that failed is not kept for the slot's next request
                fail(s, new EngineException(EngineException.Kind.INTERNAL, "sampling failed: " + e.detail(), e));
            } else if (error != null) {
                // a failure no request caused: this request fails, the engine goes on
                LOG.log(Level.ERROR, "sampling failed unexpectedly for slot " + s.sequence, error);
                s.dropDeviceSampler();
                fail(s, new EngineException(EngineException.Kind.INTERNAL, "sampling failed unexpectedly", error));
            } else {
                if (p.logprobs[i] != null) {
                    s.logprobs.add(p.logprobs[i]);
                    p.logprobs[i] = null;
                }
                accept(s, p.tokens[i]);
            }
        }
        observer.stepCompleted(new EngineObserver.Step(batch.size(), promptTokens, n, runs, graphsReused, decodeStart - stepStart,
                decodeNanos, decodeCallNanos, emitStart - now, emitNanos + System.nanoTime() - emitStart));
    }

    /**
     * Decides which slots' tokens this step are a spent reasoning budget's: a slot whose output has
     * taken its budget and is still reasoning gets the budget's tokens, one a step, in the model's
     * place (the tracker knows the text of the tokens before this step's). Those whose chain is on
     * the host are not sampled: they go after the others in the picks, from the returned count on.
     */
    private int forcedLast(Picks p, int n) {
        int sampled = n;
        for (int i = 0; i < sampled; ) {
            Slot s = p.slots[i];
            if (s.budget != null && s.generated >= s.budget.tokens() && s.budgetTracker.reasoning()) {
                s.forced = s.budget.forced();
                s.forcedNext = 0;
                s.budget = null;
                observer.reasoningBudgetSpent();
            }
            if (s.forced == null || s.deviceSampler != null) {
                i++;
                continue;
            }
            sampled--; // swapped with the last of the others
            Slot slot = p.slots[sampled];
            Sampler sampler = p.samplers[sampled];
            int index = p.indices[sampled];
            p.slots[sampled] = s;
            p.samplers[sampled] = p.samplers[i];
            p.indices[sampled] = p.indices[i];
            p.slots[i] = slot;
            p.samplers[i] = sampler;
            p.indices[i] = index;
        }
        return sampled;
    }

    /**
     * Writes the forced tokens ({@link #forcedLast}): those not sampled are given to their chains
     * as the output's, so that a penalty counts what was written (their log-probabilities, where
     * asked for, are the model's for them); a device-sampled slot's pick is replaced (its greedy
     * chain keeps no history).
     */
    private void force(Picks p, int sampled, int n) {
        for (int i = 0; i < n; i++) {
            Slot s = p.slots[i];
            if (i >= sampled) {
                p.errors[i] = null; // the pool set only the sampled ones'
            } else if (p.errors[i] != null || s.forced == null) {
                continue;
            }
            int token = s.forced[s.forcedNext++];
            if (s.forcedNext == s.forced.length) {
                s.forced = null;
                s.budgetTracker = null;
            }
            p.tokens[i] = token;
            if (i >= sampled) {
                try {
                    s.sampler.accept(token);
                } catch (RuntimeException e) {
                    p.errors[i] = e;
                }
            }
        }
    }

    /**
     * The log-probabilities of the sampled tokens of the requests that asked for them, computed
     * from this step's logits (the next decode overwrites them) on the sampling pool's threads.
     */
    private void tokenLogprobs(LlamaContext ctx, SamplingPool sampling, int n) {
        Picks p = picks;
        int m = 0;
        for (int i = 0; i < n; i++) {
            Slot s = p.slots[i];
            if (s.logprobs != null && p.errors[i] == null && !vocab.isEndOfGeneration(p.tokens[i])) {
                p.rowPick[m] = i;
                p.rowIndices[m++] = p.indices[i];
            }
        }
        if (m == 0) {
            return;
        }
        sampling.forEachRow(ctx, p.rowIndices, m, (r, row) -> {
            int i = p.rowPick[r];
            p.logprobs[i] = LogprobTrack.of(row, p.tokens[i], p.slots[i].logprobs.top(), vocab);
        });
    }

    /**
     * The log-probability of each prompt token of this step's chunks given those before it (from
     * the logits of the position before; on the sampling pool's threads), and a request's whole list
     * to it once its prompt is done, before any of its text.
     */
    private void promptLogprobs(LlamaContext ctx, Slot[] slots, SamplingPool sampling) {
        List<int[]> rows = null; // {batch index, slot, next prompt index}
        for (Slot s : slots) {
            if (s.busy() && s.promptLogprobs != null && s.chunkLength > 0) {
                if (rows == null) {
                    rows = new ArrayList<>();
                }
                for (int k = 0; k < s.chunkLength; k++) {
                    int next = s.chunkPromptIndex + k + 1;
                    if (next < s.prompt.length) {
                        rows.add(new int[] {s.chunkBatchIndex + k, s.sequence, next});
                    }
                }
            }
        }
        if (rows == null) {
            return;
        }
        List<int[]> wanted = rows;
        int[] indices = wanted.stream().mapToInt(r -> r[0]).toArray();
        TokenLogprob[] out = new TokenLogprob[indices.length];
        sampling.forEachRow(ctx, indices, indices.length, (r, row) -> {
            Slot s = slots[wanted.get(r)[1]];
            out[r] = LogprobTrack.of(row, s.prompt[wanted.get(r)[2]], s.handle.request.logprobs(), vocab);
        });
        for (int r = 0; r < out.length; r++) {
            slots[wanted.get(r)[1]].promptLogprobs.add(out[r]); // in order: chunk by chunk, position by position
        }
        for (Slot s : slots) {
            if (s.busy() && s.promptLogprobs != null && s.chunkLength > 0) {
                s.chunkLength = 0;
                if (!s.prefilling()) {
                    s.handle.emit(new GenerationEvent.PromptLogprobs(List.copyOf(s.promptLogprobs)));
                    s.promptLogprobs = null;
                }
            }
        }
    }

    /** The scheduler's per-step sampling arrays (one entry per slot), reused from step to step. */
    private static final class Picks {
        final Slot[] slots;
        final Sampler[] samplers;
        final int[] indices;
        final int[] tokens;
        final RuntimeException[] errors;
        /** The sampled tokens' log-probabilities, for the requests that asked for them (else null). */
        final TokenLogprob[] logprobs;
        /** Which picks want their log-probability, and their batch indices. */
        final int[] rowPick;
        final int[] rowIndices;

        Picks(int n) {
            slots = new Slot[n];
            samplers = new Sampler[n];
            indices = new int[n];
            tokens = new int[n];
            errors = new RuntimeException[n];
            logprobs = new TokenLogprob[n];
            rowPick = new int[n];
            rowIndices = new int[n];
        }
    }

    private void accept(Slot s, int token) {
        long now = System.nanoTime();
        if (s.firstTokenNanos == 0) {
            s.firstTokenNanos = now;
        } else {
            observer.tokenGenerated(now - s.lastTokenNanos);
        }
        s.lastTokenNanos = now;
        if (vocab.isEndOfGeneration(token)) {
            finish(s, FinishReason.STOP);
            return;
        }
        if (s.generated == s.output.length) {
            s.output = java.util.Arrays.copyOf(s.output, s.output.length * 2);
        }
        s.output[s.generated] = token;
        s.generated++;
        boolean last = s.generated >= s.handle.request.maxTokens() || s.position >= slotContext;
        if (config.emitDuringDecode() && !last && s.generated > 1) {
            // Decided now: the slot goes on with this token. Its text (and a stop string it may
            // complete) is made during the next decode; the first token is never held back, so the
            // time to first token stays as it is.
            s.lastToken = token;
            s.pendingToken = token;
            return;
        }
        if (emitText(s, token)) {
            finish(s, FinishReason.STOP);
        } else if (last || s.lines != null && s.lines.reached) {
            finish(s, FinishReason.LENGTH);
        } else {
            s.lastToken = token;
        }
    }

    /** Detokenizes {@code token} and hands the text on; true when it completed a stop string. */
    private boolean emitText(Slot s, int token) {
        String text = s.handle.request.preserves(token) ? s.detokenizer.pushBytes(vocab.tokenBytes(token, true)) : s.detokenizer.push(token);
        if (s.lines != null && !text.isEmpty()) {
            text = s.lines.cut(text, System.nanoTime() - s.firstTokenNanos); // a line limit: the text up to it
        }
        if (s.budgetTracker != null && !text.isEmpty()) {
            s.budgetTracker.push(text);
        }
        if (s.late != null && !text.isEmpty()) {
            return emitLate(s, text);
        }
        release(s, s.stops.push(text));
        return s.stops.stopped();
    }

    /**
     * {@link #emitText} while the request's late grammar is looked for: where the text holds its
     * start, the text before that goes through the stop strings (one may still end the output), and
     * the grammar, advanced over the output from its start, takes over the sampling if it allows
     * that output; then the stop strings no longer apply (their held text is released) and the
     * request is told ({@link GenerationEvent.Constrained}). One start is tried; where the grammar
     * does not allow it, the output stays free.
     */
    private boolean emitLate(Slot s, String text) {
        LateGrammar late = s.late;
        StringBuilder seen = s.lateText;
        String searched = text; // the part of the output the grammar's start is looked for in, ending with text's end
        if (s.latePreamble != null) {
            searched = s.latePreamble.after(text);
            if (searched == null) { // still in the preamble
                release(s, s.stops.push(text));
                return s.stops.stopped();
            }
            s.latePreamble = null;
        }
        int before = seen.length() + searched.length() - text.length(); // where text begins in seen (negative: before it)
        seen.append(searched);
        int start;
        if (late.literals() != null) {
            start = -1;
            int longest = 0;
            for (String literal : late.literals()) {
                int at = seen.indexOf(literal);
                if (at >= 0 && (start < 0 || at < start)) {
                    start = at;
                }
                longest = Math.max(longest, literal.length());
            }
            if (start < 0) {
                seen.delete(0, Math.max(0, seen.length() - (longest - 1))); // what could begin one
                release(s, s.stops.push(text));
                return s.stops.stopped();
            }
        } else {
            Matcher m = late.opening().matcher(seen);
            if (!m.lookingAt()) {
                if (!m.hitEnd()) {
                    s.late = null; // the output's start rules the opening out
                    s.lateText = null;
                }
                release(s, s.stops.push(text));
                return s.stops.stopped();
            }
            start = m.groupCount() >= 1 && m.start(1) >= 0 ? m.start(1) : m.start();
        }
        s.late = null;
        s.lateText = null;
        int at = Math.max(0, start - before); // where in text the grammar's part begins (0: in earlier text)
        String out = s.stops.push(text.substring(0, at));
        if (s.stops.stopped()) {
            release(s, out);
            return true;
        }
        if (!constrain(s, late, seen.substring(start))) {
            release(s, out + s.stops.push(text.substring(at)));
            return s.stops.stopped();
        }
        out += s.stops.flush();
        s.stops = new StopMatcher(List.of());
        release(s, out + text.substring(at));
        s.handle.emit(new GenerationEvent.Constrained());
        return false;
    }

    /**
     * Replaces the slot's chain with one that has the late grammar, its other stages given the
     * output's recent tokens and its grammar advanced over {@code from} (the output from the
     * grammar's start); false, the chain unchanged, when the grammar does not allow that text.
     */
    private boolean constrain(Slot s, LateGrammar late, String from) {
        Sampler chain = s.lateChain;
        s.lateChain = null;
        if (chain == null) {
            try {
                chain = sampler(s.handle.request.sampling().withGrammar(late.grammar()), false, s.handle.dry, s.handle.request);
            } catch (LlamaException e) {
                LOG.log(Level.ERROR, "a late grammar could not be made (a server bug); the output stays free: " + e.detail());
                return false;
            }
        }
        // the history the slot's chain has: the prompt's last tokens, as given when the request
        // started, then the output's, as far back as a penalty looks
        SamplingParams.LlamaStages x = s.handle.request.sampling().llama();
        int window = Math.min(Math.max(x.penaltyWindow(), x.dryWindow()), slotContext);
        int fromOutput = Math.min(s.generated, window);
        int[] prompt = s.prompt;
        int fromPrompt = Math.max(0, Math.min(Math.min(x.promptWindow(), prompt.length), window - fromOutput));
        for (int i = prompt.length - fromPrompt; i < prompt.length; i++) {
            chain.acceptOutsideGrammar(prompt[i]);
        }
        for (int i = s.generated - fromOutput; i < s.generated; i++) {
            chain.acceptOutsideGrammar(s.output[i]);
        }
        if (!chain.advanceGrammar(from.getBytes(java.nio.charset.StandardCharsets.UTF_8))) {
            chain.close();
            return false;
        }
        s.sampler.close();
        s.sampler = chain;
        return true;
    }

    /** Hands {@code text} to the request, with the log-probabilities of the tokens it completes. */
    private static void release(Slot s, String text) {
        List<TokenLogprob> logprobs = s.logprobs == null ? List.of() : s.logprobs.release(text);
        if (!text.isEmpty() || !logprobs.isEmpty()) {
            s.handle.emit(new GenerationEvent.Text(text, logprobs, s.generated - s.countedTokens));
            s.countedTokens = s.generated;
        }
    }

    /**
     * The text of the tokens {@link #accept} held back. A slot whose token completed a stop string
     * finishes here: that token was already in the batch just decoded (its KV entry is real and
     * remembered for prefix reuse; its output is not sampled), so a stop costs one extra position.
     */
    private void emitPending(Slot[] slots) {
        for (Slot s : slots) {
            if (s.pendingToken >= 0 && s.busy()) {
                int token = s.pendingToken;
                s.pendingToken = -1;
                if (emitText(s, token)) {
                    finish(s, FinishReason.STOP);
                } else if (s.lines != null && s.lines.reached) {
                    finish(s, FinishReason.LENGTH);
                }
            }
        }
    }

    private void finish(Slot s, FinishReason reason) {
        if (reason != FinishReason.CANCELLED && !s.stops.stopped()) {
            // after a line limit's cut, what the detokenizer holds came after the cut
            String tail = s.stops.push(s.lines != null && s.lines.reached ? "" : s.detokenizer.flush());
            release(s, tail + s.stops.flush());
        }
        long end = System.nanoTime();
        long prefillDone = s.prefillDoneNanos == 0 ? end : s.prefillDoneNanos;
        GenerationEvent.Timings t = new GenerationEvent.Timings(
                s.startedNanos - s.handle.submittedNanos,
                prefillDone - s.startedNanos,
                end - prefillDone,
                s.firstTokenNanos == 0 ? 0 : s.firstTokenNanos - s.handle.submittedNanos);
        GenerationEvent.Done done = new GenerationEvent.Done(reason, s.prompt.length, s.generated, s.reusedPrefix, t,
                reason == FinishReason.STOP ? s.stops.matched() : null);
        accepted.decrementAndGet();
        s.handle.emit(done);
        observer.finished(done);
        s.release();
    }

    private void fail(Slot s, EngineException e) {
        accepted.decrementAndGet();
        s.handle.emit(new GenerationEvent.Failed(e));
        s.release();
    }

    private void failAll(Slot[] slots, String why) {
        EngineException e = new EngineException(EngineException.Kind.UNAVAILABLE, why);
        for (Slot s : slots) {
            if (s != null && s.busy()) {
                fail(s, e);
            }
        }
        RequestHandle h;
        while ((h = queue.poll()) != null) {
            accepted.decrementAndGet();
            h.emit(new GenerationEvent.Failed(e));
        }
        if (embedding != null) {
            embedding.fail(e);
        }
        EmbeddingJob j;
        while ((j = embeddingJobs.poll()) != null) {
            j.result().completeExceptionally(e);
        }
    }

    /**
     * The embeddings context's jobs, one input per call (scheduler thread): a job of many long
     * inputs would otherwise hold up every generation stream, and the liveness heartbeat, until done.
     */
    private final class EmbeddingWork implements AutoCloseable {
        private final LlamaContext ctx;
        private final Batch batch;
        private EmbeddingJob job;
        private List<float[]> out;

        EmbeddingWork(LlamaContext ctx) {
            this.ctx = ctx;
            this.batch = ctx.newBatch(ctx.batchSize());
        }

        /** A job in progress or waiting. */
        boolean pending() {
            return job != null || !embeddingJobs.isEmpty();
        }

        /** Embeds the next input of the job in progress, taking the next job when there is none. */
        void next() {
            while (job == null || job.result().isDone()) { // done early: its caller gave up (a timeout cancels it)
                job = null;
                if (embeddingJobs.isEmpty()) {
                    embeddingBusy = false;
                    return;
                }
                embeddingBusy = true; // before the job leaves the queue: see idle()
                job = embeddingJobs.poll();
                out = new ArrayList<>(job.inputs().size());
            }
            int[] in = job.inputs().get(out.size());
            try {
                ctx.clearMemory();
                batch.clear();
                for (int i = 0; i < in.length; i++) {
                    batch.add(in[i], i, 0, true);
                }
                ctx.decode(batch);
                out.add(ctx.embeddings(0, true));
            } catch (LlamaException e) {
                job.result().completeExceptionally(new EngineException(EngineException.Kind.INTERNAL, "embedding failed: " + e.detail(), e));
                job = null;
                return;
            }
            if (out.size() == job.inputs().size()) {
                job.result().complete(out);
                job = null;
            }
        }

        void fail(EngineException e) {
            if (job != null) {
                job.result().completeExceptionally(e);
                job = null;
            }
        }

        @Override
        public void close() {
            batch.close();
        }
    }

    private void updateGauges(Slot[] slots) {
        int busy = 0;
        int cells = 0;
        for (Slot s : slots) {
            if (s.busy()) {
                busy++;
            }
            cells += s.cachedLength;
        }
        busySlots = busy;
        kvCellsUsed = cells;
    }

    // --- observability and lifecycle -------------------------------------------------------------

    /** A snapshot for health and metrics. */
    public record Stats(int slots, int busySlots, int queued, int queueCapacity, int kvCellsUsed, int kvCellsTotal,
                        long heartbeatAgeNanos, boolean running, boolean draining) {}

    /**
     * The KV cache and compute buffers of the engine's contexts, by context ({@code generation}, and
     * {@code embeddings} when enabled), as llama.cpp allocated them.
     */
    public Map<String, ContextMemory> memoryUse() {
        return memoryUse;
    }

    public Stats stats() {
        return new Stats(config.slots(), busySlots, queue.size(), config.queueCapacity(), kvCellsUsed,
                slotContext * config.slots(), System.nanoTime() - heartbeatNanos, running, draining);
    }

    /** Positions available per slot (prompt + generated). */
    public int slotContext() {
        return slotContext;
    }

    public EngineConfig config() {
        return config;
    }

    /** Stops admitting work; running and queued requests continue. */
    public void drain() {
        draining = true;
    }

    /** True when nothing is queued or running. */
    public boolean idle() {
        return queue.isEmpty() && busySlots == 0 && embeddingJobs.isEmpty() && !embeddingBusy;
    }

    /** For tests of liveness: the scheduler stops stepping (and beating) for this long. */
    public void stallFor(long millis) {
        stalledUntilNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        LockSupport.unpark(scheduler);
    }

    /**
     * Stops the scheduler (failing what is left) and frees the context. The model is the caller's.
     * A decode under way is aborted at its next graph node (a long prompt chunk on a CPU takes
     * seconds, and what it was for fails anyway), so that the scheduler ends and frees its
     * contexts before the caller frees the model.
     */
    @Override
    public void close() {
        running = false;
        dryMaker.shutdown();
        LockSupport.unpark(scheduler);
        for (LlamaContext c : new LlamaContext[] {liveContext, liveEmbeddingContext}) {
            if (c != null) {
                c.abort(); // safe from any thread, and after the context is closed
            }
        }
        // waited for even from an interrupted thread: a join cut short left the contexts open,
        // and the model then refused to close
        Waits.pastInterrupts(java.time.Duration.ofSeconds(30), nanos -> {
            scheduler.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(nanos)));
            return !scheduler.isAlive();
        });
    }
}
