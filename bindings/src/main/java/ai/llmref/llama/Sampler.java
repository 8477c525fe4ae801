package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.*;

import ai.llmref.bindings.ffi.llama_logit_bias;
import ai.llmref.bindings.ffi.llama_sampler_chain_params;
import ai.llmref.bindings.ffi.llama_token_data;
import ai.llmref.bindings.ffi.llama_token_data_array;
import ai.llmref.llama.internal.LogBridge;
import ai.llmref.llama.internal.Native;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A llama.cpp sampler chain: picks the next token from a context's logits. Build one per sequence
 * with {@link #builder(Vocabulary)}; the stages run in llama.cpp's usual order (grammar, logit
 * bias, then {@link #DEFAULT_ORDER}: penalties, DRY, top-n-sigma, top-k, typical, top-p, min-p,
 * XTC, temperature; then greedy or a seeded draw; or, with Mirostat, the temperature and Mirostat
 * after the logit bias, as llama.cpp's common sampler makes them).
 * The common chains are computed over the logits row where llama.cpp keeps it, with llama.cpp's
 * picks: greedy with at most a logit bias (an argmax), and a seeded draw whose stages are at most
 * a logit bias, top-k, top-p, min-p and the temperature ({@link SoftmaxDraw} without a cut,
 * {@link TruncatedDraw} with one); chains with any other stage, another order or a grammar run
 * llama.cpp's stages. Use it on one thread at a time.
 */
public final class Sampler implements AutoCloseable {
    private static final long ID = llama_token_data.id$offset();
    private static final long LOGIT = llama_token_data.logit$offset();
    private static final long P = llama_token_data.p$offset();
    private static final System.Logger LOG = System.getLogger(Sampler.class.getName());
    /** Frees the native state of a sampler that became unreachable without {@link #close}. */
    private static final Cleaner CLEANER = Cleaner.create();
    /** Samplers whose native state the cleaner freed because they were dropped without close. */
    private static final AtomicLong DROPPED_UNCLOSED = new AtomicLong();
    private MemorySegment chain;
    /** What {@link #close} frees: run by close, or by {@link #CLEANER} once this object is unreachable. */
    private final Owned owned;
    private final Cleaner.Cleanable cleanable;
    private final Vocabulary vocabulary;
    /**
     * Set for chains with a grammar. llama.cpp throws a C++ exception through its C API (which
     * terminates the process) when a grammar is made to accept a token it does not allow; so a
     * grammar chain samples through {@link #sampleCandidates} and checks tokens before accepting them.
     */
    private final MemorySegment grammarStage;
    /**
     * A chain with nothing but the greedy stage: sampling is an argmax over the logits where
     * llama.cpp keeps them (first maximum wins, as in llama.cpp's greedy sampler), about 3x
     * cheaper than a trip through {@code llama_sampler_sample} on a 128k vocabulary; greedy keeps
     * no history, so nothing needs accepting.
     */
    private final boolean greedyOnly;
    /**
     * A grammar chain that ends greedy: when the grammar refuses the unconstrained pick, the best
     * tokens are tried in order of their logits ({@link #GRAMMAR_PROBES} of them) before the grammar
     * goes over the whole vocabulary.
     */
    private final boolean greedyGrammar;
    /** Logit biases a greedy-only chain applies in place around its argmax (token, bias), or empty. */
    private final int[] biasTokens;
    private final float[] biasValues;
    /** The biased logits' values before biasing, restored after the argmax (reused: no per-token allocation). */
    private final float[] biasSaved;
    /** The context and sequence this chain samples on the device for ({@link LlamaContext#attachSampler}), or null. */
    private LlamaContext attachedTo;
    private int attachedSequence = -1;
    /** Set at the first attach: llama.cpp initializes a chain for backend sampling once, and aborts at a second. */
    private boolean everAttached;
    private MemorySegment candidates;
    /** The last logits row {@link #logitsRow} gave (the same address gives the same segment). */
    private MemorySegment lastRow = MemorySegment.NULL;
    private MemorySegment candidateArray;
    /**
     * A greedy-only chain's logit-bias stage ({@link DeviceBias}), or null; its greedy stage
     * ({@link DeviceGreedy}), or null for other chains. Their state lies in an automatic arena that
     * {@link Owned} holds: it lives until the chain, which reads it, is freed, without the tens of
     * microseconds a shared arena's close costs the scheduler thread for every request that ends.
     */
    private final MemorySegment biasStage;
    private final MemorySegment greedyStage;
    /**
     * For a chain that is a plain draw (logit bias, temperature and {@code dist}, nothing that
     * keeps history or cuts the candidates): the same draw computed over the row where it lies,
     * without filling 128k candidates, and in chunks on {@link SamplingPool}'s threads; null otherwise.
     */
    private final SoftmaxDraw draw;
    /**
     * For a draw after top-k, top-p or min-p (and no stage that keeps history): the same draw
     * without llama.cpp's sorts of the candidates ({@link TruncatedDraw}); null otherwise.
     */
    private final TruncatedDraw truncated;

    private Sampler(MemorySegment chain, Vocabulary vocabulary, boolean grammar, boolean greedyOnly, boolean greedyGrammar,
                    int[] biasTokens, float[] biasValues, MemorySegment biasStage, MemorySegment greedyStage, Arena stageArena,
                    SoftmaxDraw draw, TruncatedDraw truncated) {
        this.chain = chain;
        this.owned = new Owned(chain, stageArena);
        this.cleanable = CLEANER.register(this, owned);
        this.draw = draw;
        this.truncated = truncated;
        this.biasStage = biasStage;
        this.greedyStage = greedyStage;
        this.vocabulary = vocabulary;
        this.grammarStage = grammar ? llama_sampler_chain_get(chain, 0) : null;
        this.greedyOnly = greedyOnly;
        this.greedyGrammar = grammar && greedyGrammar;
        this.biasTokens = biasTokens;
        this.biasValues = biasValues;
        this.biasSaved = new float[biasTokens.length];
    }

    public static Builder builder(Vocabulary vocabulary) {
        return new Builder(vocabulary);
    }

    /** Greedy (argmax) sampling, nothing else. */
    public static Sampler greedy(Vocabulary vocabulary) {
        return builder(vocabulary).build();
    }

    /**
     * Samples from batch position {@code index} of the context's last decode and records the
     * token in the chain's history (penalties, grammar). Where this chain was attached to the
     * position's sequence at that decode ({@link LlamaContext#attachSampler}), the token llama.cpp
     * picked on the device comes back, even when the chain was detached since; elsewhere the chain
     * samples the logits on the host, even when it was attached since (an attach takes effect from
     * the next decode). A token another chain picked on the device is refused.
     */
    public int sample(LlamaContext context, int index) {
        MemorySegment c = checkOpen();
        if (context.pickedOnDevice(index, this, "llama_sampler_sample")) {
            if (biasStage != null && DeviceBias.failed(biasStage)) {
                throw new LlamaException("llama_get_sampled_token_ith", "the logit-bias stage could not be added to the device's"
                        + " sampling graph (see the log); detach the sampler to sample on the host");
            }
            if (greedyStage != null && DeviceGreedy.failed(greedyStage)) {
                throw new LlamaException("llama_get_sampled_token_ith", "the greedy stage could not be added to the device's"
                        + " sampling graph (see the log); detach the sampler to sample on the host");
            }
            return context.sampledToken(index); // picked on the device by the same stages
        }
        MemorySegment ctx = context.checkOpen();
        if (grammarStage != null || greedyOnly || draw != null || truncated != null) {
            return sampleRow(logitsRow(context, index)); // picked over the row where llama.cpp keeps it
        }
        context.checkLogits(index, "llama_sampler_sample");
        int token = llama_sampler_sample(c, ctx, index);
        if (token < 0 || token >= vocabulary.size()) {
            throw new LlamaException("llama_sampler_sample", "sampler returned no valid token (" + token + "): "
                    + LogBridge.takeLastError());
        }
        return token;
    }

    /**
     * For {@link SamplingPool}: the logits row this chain samples from on the host (checked as
     * {@link #sample} checks), or null when this chain picked the token on the device at the last
     * decode ({@link #sample} reads it).
     */
    MemorySegment hostRow(LlamaContext context, int index) {
        checkOpen();
        if (context.pickedOnDevice(index, this, "llama_sampler_sample")) {
            return null;
        }
        return logitsRow(context, index);
    }

    /** True when {@link #sampleRow} is an argmax (tens of microseconds on a 128k vocabulary), not a llama.cpp chain. */
    boolean argmaxOnly() {
        return greedyOnly;
    }

    /**
     * What {@link #sample} picks, from a row that {@link #hostRow} gave: the argmax in place, or
     * llama.cpp's chain applied to candidates filled from the row and the pick accepted, as
     * {@code llama_sampler_sample} does. It touches this chain, its own buffers and the row only
     * (no context), so {@link SamplingPool} runs it on a helper thread.
     */
    int sampleRow(MemorySegment logits) {
        MemorySegment c = checkOpen();
        if (greedyOnly) {
            return pickGreedy(logits);
        }
        if (draw != null) {
            return draw.draw(logits);
        }
        return truncated != null ? truncated.draw(logits) : sampleCandidates(c, logits);
    }

    /** True when a draw after top-k, top-p or min-p is computed here ({@link TruncatedDraw}), not by llama.cpp's stages. */
    boolean truncatedDraw() {
        return truncated != null;
    }

    /** The plain draw {@link SamplingPool} may split into chunks over its threads, or null for other chains. */
    SoftmaxDraw plainDraw() {
        checkOpen();
        return draw;
    }

    /**
     * The row this chain samples from. The row's segment is kept while the context hands back the
     * same row (a single stream's is the same every token): a segment made anew per call is one
     * object a token, since the picks that take it are compiled on their own and it escapes into them.
     */
    private MemorySegment logitsRow(LlamaContext context, int index) {
        MemorySegment row = context.logitsRow(index, lastRow, "llama_sampler_sample");
        lastRow = row;
        return row;
    }

    /**
     * The greedy pick over a row from {@link #hostRow}. It reads that row and this sampler's bias
     * buffers only (the biased logits are changed and put back in place), and makes no native call, so
     * {@link SamplingPool} runs it on a helper thread while the context's thread waits.
     */
    int pickGreedy(MemorySegment logits) {
        return biasTokens.length == 0 ? Argmax.of(logits) : biasedArgmax(logits);
    }

    /**
     * Greedy after logit bias, as llama.cpp's logit-bias stage followed by its greedy stage picks:
     * the biases are added to the logits in place, the argmax is taken, and the logits are put back
     * as they were (so sampling the same position twice gives the same token).
     */
    private int biasedArgmax(MemorySegment logits) {
        float[] saved = biasSaved;
        for (int i = 0; i < biasTokens.length; i++) {
            saved[i] = logits.getAtIndex(ValueLayout.JAVA_FLOAT, biasTokens[i]);
            logits.setAtIndex(ValueLayout.JAVA_FLOAT, biasTokens[i], saved[i] + biasValues[i]);
        }
        try {
            return Argmax.of(logits);
        } finally {
            for (int i = biasTokens.length - 1; i >= 0; i--) {
                logits.setAtIndex(ValueLayout.JAVA_FLOAT, biasTokens[i], saved[i]);
            }
        }
    }

    /**
     * What {@code llama_sampler_sample} does (fill candidates from the logits, apply the chain,
     * accept the pick), with the pick checked: a grammar's dead end is a {@link GrammarException}
     * and no valid pick a {@link LlamaException}, where llama.cpp would abort.
     *
     * <p>With a grammar, the stages after it pick first and only that pick is checked against the
     * grammar; the grammar goes over the whole vocabulary only when it refuses the pick (then the
     * whole chain runs again), as llama.cpp's common sampler and llama-server do. Checking every
     * candidate costs the grammar's work for each of the vocabulary's tokens on every step, on the
     * thread that serves all requests. A greedy pick is the same either way (the argmax of the
     * allowed tokens is the argmax when the grammar allows it); a draw that the grammar refuses is
     * drawn again from the allowed tokens, which is the same distribution as drawing from them at
     * once (with top-k, top-p or min-p the cut is taken before the grammar, as in llama.cpp).
     */
    private int sampleCandidates(MemorySegment c, MemorySegment logits) {
        int n = vocabulary.size();
        if (candidates == null) {
            Arena arena = Arena.ofShared();
            owned.candidatesArena = arena;
            candidates = llama_token_data.allocateArray(n, arena);
            candidateArray = llama_token_data_array.allocate(arena);
        }
        long stride = llama_token_data.layout().byteSize();
        fillCandidates(logits, n, stride);
        if (grammarStage != null) {
            int stages = llama_sampler_chain_n(c);
            for (int i = 1; i < stages; i++) { // stage 0 is the grammar
                llama_sampler_apply(llama_sampler_chain_get(c, i), candidateArray);
            }
            long first = llama_token_data_array.selected(candidateArray);
            long size = llama_token_data_array.size(candidateArray);
            if (first >= 0 && first < size) {
                MemorySegment data = llama_token_data_array.data(candidateArray).reinterpret(size * stride);
                int token = llama_token_data.id(llama_token_data.asSlice(data, first));
                if (token >= 0 && token < n && grammarAllowsHeld(token)) {
                    llama_sampler_accept(c, token);
                    return token;
                }
                if (greedyGrammar) {
                    int best = bestAllowed(data, size, stride, token);
                    if (best >= 0) {
                        llama_sampler_accept(c, best);
                        return best;
                    }
                }
            }
            fillCandidates(logits, n, stride); // refused: the grammar over every candidate, then the chain again
        }
        llama_sampler_apply(c, candidateArray);
        long selected = llama_token_data_array.selected(candidateArray);
        long size = llama_token_data_array.size(candidateArray);
        if (selected < 0 || selected >= size) {
            throw new LlamaException("llama_sampler_apply", "the sampler chain selected no token");
        }
        MemorySegment data = llama_token_data_array.data(candidateArray).reinterpret(size * stride);
        MemorySegment pick = llama_token_data.asSlice(data, selected);
        int token = llama_token_data.id(pick);
        if (token < 0 || token >= n) {
            throw new LlamaException("llama_sampler_apply", "the sampler chain selected token " + token + ", outside the vocabulary");
        }
        if (grammarStage != null && llama_token_data.logit(pick) == Float.NEGATIVE_INFINITY) {
            throw new GrammarException("llama_sampler_sample", "the grammar allows no token at this point of the output");
        }
        llama_sampler_accept(c, token);
        return token;
    }

    /** How many of the best tokens a greedy grammar chain tries one by one before the grammar goes over the whole vocabulary. */
    static final int GRAMMAR_PROBES = 64;

    /**
     * For a greedy chain whose grammar refused the argmax: the best token the grammar allows among
     * the {@link #GRAMMAR_PROBES} highest logits after the chain's other stages (ties as llama.cpp's
     * greedy stage breaks them: the lower id first), or -1 when it allows none of them. Exactly the
     * greedy pick over the grammar's tokens, at the cost of a few single-token checks; a schema whose
     * next character is fixed (a key, a quote) refuses most unconstrained picks, and the grammar over
     * 128k candidates costs some 10 ms a token on one CPU core.
     */
    private int bestAllowed(MemorySegment data, long size, long stride, int refused) {
        int k = GRAMMAR_PROBES;
        float[] topLogit = new float[k];
        int[] topId = new int[k];
        int filled = 0;
        for (long i = 0; i < size; i++) {
            long at = i * stride;
            float l = data.get(ValueLayout.JAVA_FLOAT, at + LOGIT);
            int id = data.get(ValueLayout.JAVA_INT, at + ID);
            if (filled == k && !(l > topLogit[k - 1] || l == topLogit[k - 1] && id < topId[k - 1])) {
                continue;
            }
            int j = filled < k ? filled++ : k - 1; // insertion into the sorted top (highest logit, then lowest id, first)
            while (j > 0 && (l > topLogit[j - 1] || l == topLogit[j - 1] && id < topId[j - 1])) {
                topLogit[j] = topLogit[j - 1];
                topId[j] = topId[j - 1];
                j--;
            }
            topLogit[j] = l;
            topId[j] = id;
        }
        for (int i = 0; i < filled; i++) {
            if (topLogit[i] == Float.NEGATIVE_INFINITY) {
                return -1; // banned tokens: the whole pass decides (and reports a dead end)
            }
            if (topId[i] != refused && grammarAllowsHeld(topId[i])) {
                return topId[i];
            }
        }
        return -1;
    }

    /** The candidates, one per token of the vocabulary, from a row of logits; the array unsorted, nothing selected. */
    private void fillCandidates(MemorySegment logits, int n, long stride) {
        MemorySegment cand = candidates;
        for (int i = 0; i < n; i++) {
            long at = i * stride;
            cand.set(ValueLayout.JAVA_INT, at + ID, i);
            cand.set(ValueLayout.JAVA_FLOAT, at + LOGIT, logits.getAtIndex(ValueLayout.JAVA_FLOAT, i));
            cand.set(ValueLayout.JAVA_FLOAT, at + P, 0f);
        }
        llama_token_data_array.data(candidateArray, candidates);
        llama_token_data_array.size(candidateArray, n);
        llama_token_data_array.selected(candidateArray, -1);
        llama_token_data_array.sorted(candidateArray, false);
    }

    /** Records a token chosen elsewhere (e.g. a prompt token) in the chain's history. */
    public void accept(int token) {
        MemorySegment c = checkOpen();
        vocabulary.checkToken(token, "llama_sampler_accept");
        withVocabulary(() -> {
            if (grammarStage != null && !grammarAllowsHeld(token)) {
                throw new InvalidInputException("llama_sampler_accept", "token " + token + " is not allowed by the grammar here");
            }
            llama_sampler_accept(c, token);
            return null;
        });
    }

    /**
     * For a chain built part-way through an output (a grammar that starts to apply there): records
     * a token of the output so far in the history of every stage but the grammar (the penalties'),
     * as if the chain had sampled it.
     */
    public void acceptOutsideGrammar(int token) {
        MemorySegment c = checkOpen();
        vocabulary.checkToken(token, "llama_sampler_accept");
        int stages = llama_sampler_chain_n(c);
        for (int i = grammarStage == null ? 0 : 1; i < stages; i++) { // stage 0 is the grammar
            llama_sampler_accept(llama_sampler_chain_get(c, i), token);
        }
    }

    /**
     * Advances the grammar alone over {@code utf8}, one byte at a time ({@link Vocabulary#byteToken}),
     * each checked first: for a grammar that starts to apply part-way through an output, from the
     * text where it starts. False when the grammar refuses a byte or the vocabulary has no token for
     * one; the grammar is then part-way and the chain should be closed.
     *
     * @throws IllegalStateException the chain has no grammar
     */
    public boolean advanceGrammar(byte[] utf8) {
        checkOpen();
        if (grammarStage == null) {
            throw new IllegalStateException("the chain has no grammar");
        }
        return withVocabulary(() -> {
            for (byte b : utf8) {
                int token = vocabulary.byteToken(b & 0xFF);
                if (token < 0 || !grammarAllowsHeld(token)) {
                    return false;
                }
                llama_sampler_accept(grammarStage, token);
            }
            return true;
        });
    }

    /** True when the grammar, in its current state, allows {@code token} next. */
    public boolean grammarAllows(int token) {
        checkOpen();
        vocabulary.checkToken(token, "llama_sampler_apply");
        if (grammarStage == null) {
            return true;
        }
        return withVocabulary(() -> grammarAllowsHeld(token));
    }

    private boolean grammarAllowsHeld(int token) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment one = llama_token_data.allocate(arena);
            llama_token_data.id(one, token);
            llama_token_data.logit(one, 0f);
            llama_token_data.p(one, 0f);
            MemorySegment arr = llama_token_data_array.allocate(arena);
            llama_token_data_array.data(arr, one);
            llama_token_data_array.size(arr, 1);
            llama_token_data_array.selected(arr, -1);
            llama_token_data_array.sorted(arr, false);
            llama_sampler_apply(grammarStage, arr);
            return llama_token_data.logit(one) != Float.NEGATIVE_INFINITY;
        }
    }

    /**
     * True for the chains llama.cpp can run on the device ({@link LlamaContext#attachSampler}):
     * greedy, with at most a logit bias before it.
     */
    public boolean offloadable() {
        return greedyOnly;
    }

    /** The context this chain is attached to for backend sampling, or null. */
    public LlamaContext attachedTo() {
        return attachedTo;
    }

    int attachedSequence() {
        return attachedSequence;
    }

    boolean everAttached() {
        return everAttached;
    }

    void attached(LlamaContext context, int sequence) {
        attachedTo = context;
        attachedSequence = sequence;
        everAttached |= context != null;
        if (greedyStage != null && chain != null) {
            // the rows of a context's graph share one argmax (DeviceGreedy); detached, the stage has no block
            MemorySegment share = context == null ? MemorySegment.NULL : context.greedyShare();
            DeviceGreedy.share(greedyStage, share);
            if (biasStage != null) {
                DeviceBias.share(biasStage, share); // the same block: it says when DeviceGreedy biases all rows at once
            }
        }
    }

    /**
     * For a context's uniform bias ({@link DeviceGreedy#setUniformBias}): this chain's biases as
     * {@code (int token, float bias)} sorted by token (empty for none) when it is {@link DeviceBias}
     * (or no bias) followed by {@link DeviceGreedy}; null for any other chain.
     */
    MemorySegment uniformBiasEntries() {
        if (greedyStage == null || chain == null) {
            return null;
        }
        if (biasStage != null) {
            return DeviceBias.entries(biasStage);
        }
        return biasTokens.length == 0 ? MemorySegment.NULL : null; // NULL: a segment of no bytes
    }

    MemorySegment handle() {
        return checkOpen();
    }

    /**
     * Runs {@code call}, which reads the vocabulary through a grammar stage, with the model held open:
     * a grammar keeps llama.cpp's vocabulary and reads it to accept, to check and to reset, so a
     * model closed before (or, on another thread, during) the call would be read after it was freed.
     *
     * @throws IllegalStateException the model is closed
     */
    private <T> T withVocabulary(java.util.function.Supplier<T> call) {
        if (grammarStage == null) {
            return call.get();
        }
        LlamaModel model = vocabulary.model();
        model.acquire();
        try {
            return call.get();
        } finally {
            model.release();
        }
    }

    /** Forgets history (penalties, grammar state, RNG state is re-seeded by llama.cpp's rules). */
    public void reset() {
        MemorySegment c = checkOpen();
        withVocabulary(() -> {
            llama_sampler_reset(c);
            return null;
        });
        if (draw != null) {
            draw.reset();
        }
        if (truncated != null) {
            truncated.reset();
        }
    }

    private MemorySegment checkOpen() {
        if (chain == null) {
            throw new IllegalStateException("sampler is closed");
        }
        return chain;
    }

    @Override
    public void close() {
        if (attachedTo != null) {
            attachedTo.detachSampler(attachedSequence); // llama.cpp must not keep a freed chain
        }
        if (chain != null) {
            chain = null;
            owned.closed = true;
            cleanable.clean(); // frees the chain and the candidates, once
        }
    }

    /** How many samplers were garbage-collected without {@link #close} (their native state freed then). */
    static long droppedUnclosed() {
        return DROPPED_UNCLOSED.get();
    }

    /**
     * A sampler's native state, apart from the object so that a {@link Cleaner} can free it when
     * the object is dropped without {@link #close}: the chain (with its stages) and the candidates'
     * arena. It holds the automatic arena of this project's stages, so that their state and upcall
     * stubs, which {@code llama_sampler_free} calls into, outlive the chain. A sampler attached to a
     * context is reachable from it ({@link LlamaContext#attachSampler}), so a chain llama.cpp still
     * uses is never freed here.
     */
    private static final class Owned implements Runnable {
        private final MemorySegment chain;
        @SuppressWarnings("unused") // held so that the stages' state lives until the chain is freed
        private final Arena stageArena;
        /** Made at the first host sample, on the sampling thread; read here on close or by the cleaner's thread. */
        volatile Arena candidatesArena;
        volatile boolean closed;

        Owned(MemorySegment chain, Arena stageArena) {
            this.chain = chain;
            this.stageArena = stageArena;
        }

        @Override
        public void run() {
            llama_sampler_free(chain);
            Arena a = candidatesArena;
            if (a != null) {
                a.close();
            }
            if (!closed && DROPPED_UNCLOSED.getAndIncrement() == 0) {
                LOG.log(System.Logger.Level.WARNING, "a Sampler was garbage-collected without close(): its native chain"
                        + " and candidates were freed then; close samplers when done (this is logged once)");
            }
        }
    }

    /** The longest penalty window {@link Builder#penalties} takes, in tokens (4 MiB of llama.cpp's ring buffer). */
    public static final int MAX_PENALTY_WINDOW = 1 << 20;

    /** The most DRY sequence breakers {@link Builder#dry} takes (each costs a pass over the vocabulary when the chain is made). */
    public static final int MAX_DRY_BREAKERS = 16;
    /** The longest DRY sequence breaker, in UTF-8 bytes (llama.cpp cuts longer ones to 40 characters without saying so). */
    public static final int MAX_DRY_BREAKER_BYTES = 40;
    /** The highest Mirostat target surprise {@link Builder#mirostat} takes ({@code 2^(2 tau)} must stay a float). */
    public static final float MAX_MIROSTAT_TAU = 20f;

    /** The stages of a chain whose order {@link Builder#order} sets (llama-server's {@code samplers} names them). */
    public enum Stage {
        /** Repetition, frequency and presence penalties ({@link Builder#penalties}). */
        PENALTIES,
        /** DRY, "don't repeat yourself" ({@link Builder#dry}). */
        DRY,
        /** Top-n-sigma ({@link Builder#topNSigma}). */
        TOP_N_SIGMA,
        TOP_K,
        TYPICAL_P,
        TOP_P,
        MIN_P,
        /** Exclude top choices ({@link Builder#xtc}). */
        XTC,
        /** The temperature, dynamic or not ({@link Builder#dynamicTemperature}). */
        TEMPERATURE,
        /**
         * llama.cpp's fill-in-the-middle stage ({@code llama_sampler_init_infill}): candidates that
         * begin with the same text are merged, and end-of-generation is preferred once the
         * candidates' text is unlikely. Only where the order names it (not in {@link #DEFAULT_ORDER}).
         */
        INFILL
    }

    /** llama.cpp's default order of the stages (its common sampler's, which llama-server uses). */
    public static final List<Stage> DEFAULT_ORDER = List.of(Stage.PENALTIES, Stage.DRY, Stage.TOP_N_SIGMA, Stage.TOP_K, Stage.TYPICAL_P,
            Stage.TOP_P, Stage.MIN_P, Stage.XTC, Stage.TEMPERATURE);

    /** Sampling settings; unset stages are left out of the chain. */
    public static final class Builder {
        private final Vocabulary vocabulary;
        private String grammar;
        private String grammarRoot = "root";
        private final Map<Integer, Float> logitBias = new LinkedHashMap<>();
        private int penaltyLastN;
        private float repeatPenalty = 1.0f;
        private float frequencyPenalty;
        private float presencePenalty;
        private Integer topK;
        private Float typicalP;
        private Float topP;
        private Float minP;
        private Float temperature;
        private Long seed;
        private float topNSigma = -1f;
        private float xtcProbability;
        private float xtcThreshold = 0.1f;
        private float dryMultiplier;
        private float dryBase = 1.75f;
        private int dryAllowedLength = 2;
        private int dryLastN;
        private List<String> dryBreakers = List.of();
        private DryStage dryStage;
        private int mirostat;
        private float mirostatTau = 5f;
        private float mirostatEta = 0.1f;
        private float dynatempRange;
        private float dynatempExponent = 1f;
        private int minKeep;
        private List<Stage> order = DEFAULT_ORDER;
        private boolean javaDraws = true;

        private Builder(Vocabulary vocabulary) {
            this.vocabulary = vocabulary;
        }

        /** A GBNF grammar the output must match. */
        public Builder grammar(String gbnf, String root) {
            this.grammar = gbnf;
            this.grammarRoot = root;
            return this;
        }

        /** Adds {@code bias} to a token's logit; {@code Float.NEGATIVE_INFINITY} bans it. */
        public Builder logitBias(int token, float bias) {
            vocabulary.checkToken(token, "llama_sampler_init_logit_bias");
            if (Float.isNaN(bias) || bias == Float.POSITIVE_INFINITY) {
                throw new InvalidInputException("llama_sampler_init_logit_bias", "bias for token " + token + " must be finite or -infinity, got " + bias);
            }
            logitBias.put(token, bias);
            return this;
        }

        /**
         * Repetition / frequency / presence penalties over the last {@code lastN} tokens (0 turns
         * them off; at most {@link #MAX_PENALTY_WINDOW}: llama.cpp allocates the whole window when
         * the chain is made, and a failed allocation there ends the process).
         */
        public Builder penalties(int lastN, float repeat, float frequency, float presence) {
            if (lastN < 0 || lastN > MAX_PENALTY_WINDOW) {
                throw new InvalidInputException("llama_sampler_init_penalties", "penalty window must be 0.." + MAX_PENALTY_WINDOW
                        + " tokens, got " + lastN + (lastN == -1 ? " (llama.cpp's C API takes -1 as 0, not as the context size)" : ""));
            }
            if (!(repeat > 0) || !Float.isFinite(repeat) || !Float.isFinite(frequency) || !Float.isFinite(presence)) {
                throw new InvalidInputException("llama_sampler_init_penalties", "repeat must be > 0 and all penalties finite");
            }
            this.penaltyLastN = lastN;
            this.repeatPenalty = repeat;
            this.frequencyPenalty = frequency;
            this.presencePenalty = presence;
            return this;
        }

        public Builder topK(int k) {
            if (k < 0) {
                throw new InvalidInputException("llama_sampler_init_top_k", "top_k must be >= 0, got " + k);
            }
            this.topK = k;
            return this;
        }

        public Builder topP(float p) {
            this.topP = probability(p, "llama_sampler_init_top_p", "top_p");
            return this;
        }

        public Builder minP(float p) {
            this.minP = probability(p, "llama_sampler_init_min_p", "min_p");
            return this;
        }

        public Builder typical(float p) {
            this.typicalP = probability(p, "llama_sampler_init_typical", "typical_p");
            return this;
        }

        /**
         * Top-n-sigma: keeps the tokens whose logit is within {@code n} standard deviations of the
         * best one; {@code n <= 0} leaves the stage out (llama-server: -1).
         */
        public Builder topNSigma(float n) {
            if (!Float.isFinite(n)) {
                throw new InvalidInputException("llama_sampler_init_top_n_sigma", "top_n_sigma must be finite, got " + n);
            }
            this.topNSigma = n;
            return this;
        }

        /**
         * XTC ("exclude top choices"): with {@code probability}, removes every token at or above
         * {@code threshold} but the least likely of them; probability 0 (or a threshold above 0.5)
         * leaves it out.
         */
        public Builder xtc(float probability, float threshold) {
            probability(probability, "llama_sampler_init_xtc", "xtc_probability");
            probability(threshold, "llama_sampler_init_xtc", "xtc_threshold");
            this.xtcProbability = probability;
            this.xtcThreshold = threshold;
            return this;
        }

        /**
         * DRY ("don't repeat yourself"): a token that would extend a sequence repeated from the
         * last {@code lastN} tokens beyond {@code allowedLength} has {@code multiplier * base^(length
         * - allowedLength)} taken from its logit; a repetition does not run across a
         * {@code breakers} text. Multiplier 0 or window 0 leaves it out. The stage is made when the
         * chain is: a pass over the vocabulary per breaker ({@link DryStage}); where that must not
         * happen on the decoding thread, make a {@link DryStage} elsewhere and use {@link #dry(DryStage)}.
         *
         * @param base at least 1 (llama.cpp turns the stage off below 1, silently)
         * @param lastN 0 .. {@link #MAX_PENALTY_WINDOW}
         * @param breakers at most {@link #MAX_DRY_BREAKERS}, each 1 .. {@link #MAX_DRY_BREAKER_BYTES} UTF-8 bytes, without NUL
         */
        public Builder dry(float multiplier, float base, int allowedLength, int lastN, List<String> breakers) {
            DryStage.check(multiplier, base, allowedLength, lastN, breakers);
            this.dryMultiplier = multiplier;
            this.dryBase = base;
            this.dryAllowedLength = allowedLength;
            this.dryLastN = lastN;
            this.dryBreakers = List.copyOf(breakers);
            this.dryStage = null;
            return this;
        }

        /** DRY as {@code stage} was made, copied into the chain (no pass over the vocabulary here). */
        public Builder dry(DryStage stage) {
            this.dryStage = stage;
            this.dryMultiplier = 0;
            return this;
        }

        /**
         * Mirostat (version 1 or 2; 0 leaves it out): instead of the other stages after the logit
         * bias, the temperature and a draw that keeps the text's surprise near {@code tau}, learning
         * at rate {@code eta} (as llama.cpp's common sampler makes it).
         */
        public Builder mirostat(int version, float tau, float eta) {
            String fn = version == 1 ? "llama_sampler_init_mirostat" : "llama_sampler_init_mirostat_v2";
            if (version < 0 || version > 2) {
                throw new InvalidInputException(fn, "mirostat must be 0, 1 or 2, got " + version);
            }
            if (!(tau >= 0 && tau <= MAX_MIROSTAT_TAU)) {
                throw new InvalidInputException(fn, "mirostat_tau must be within 0.." + MAX_MIROSTAT_TAU + ", got " + tau);
            }
            probability(eta, fn, "mirostat_eta");
            this.mirostat = version;
            this.mirostatTau = tau;
            this.mirostatEta = eta;
            return this;
        }

        /**
         * Dynamic temperature: the temperature moves within {@code temperature +- range} with the
         * candidates' entropy, raised to {@code exponent}; range 0 leaves it fixed.
         */
        public Builder dynamicTemperature(float range, float exponent) {
            if (!(range >= 0) || !Float.isFinite(range) || !(exponent >= 0) || !Float.isFinite(exponent)) {
                throw new InvalidInputException("llama_sampler_init_temp_ext", "dynatemp_range and dynatemp_exponent must be finite and >= 0, got "
                        + range + " and " + exponent);
            }
            this.dynatempRange = range;
            this.dynatempExponent = exponent;
            return this;
        }

        /** The fewest candidates top-p, min-p, typical-p and XTC leave (0: llama.cpp's default, one). */
        public Builder minKeep(int n) {
            if (n < 0 || n > vocabulary.size()) {
                throw new InvalidInputException("llama_sampler_init_top_p", "min_keep must be 0.." + vocabulary.size() + ", got " + n);
            }
            this.minKeep = n;
            return this;
        }

        /**
         * The stages and their order (llama-server's {@code samplers}): a stage left out of the
         * list is not used, whatever its settings; each at most once.
         */
        public Builder order(List<Stage> stages) {
            if (new java.util.HashSet<>(stages).size() != stages.size()) {
                throw new InvalidInputException("llama_sampler_chain_add", "each stage may be named once, got " + stages);
            }
            this.order = List.copyOf(stages);
            return this;
        }

        /** Temperature; 0 means greedy. */
        public Builder temperature(float t) {
            if (!(t >= 0) || !Float.isFinite(t)) {
                throw new InvalidInputException("llama_sampler_init_temp", "temperature must be finite and >= 0, got " + t);
            }
            this.temperature = t;
            return this;
        }

        /** Draws from the distribution with this seed (without a seed the chain is greedy). */
        public Builder seed(long seed) {
            if (seed < 0 || seed > 0xFFFFFFFFL) {
                throw new InvalidInputException("llama_sampler_init_dist", "seed must be 0..4294967295, got " + seed);
            }
            this.seed = seed;
            return this;
        }

        /**
         * Whether a draw whose stages are logit bias, top-k, top-p, min-p and temperature is
         * computed here ({@link SoftmaxDraw}, {@link TruncatedDraw}: the default) or by llama.cpp's
         * chain over a candidates array: the tests and benchmarks compare the two.
         */
        Builder javaDraws(boolean java) {
            this.javaDraws = java;
            return this;
        }

        private static Float probability(float p, String fn, String name) {
            if (!(p >= 0 && p <= 1)) {
                throw new InvalidInputException(fn, name + " must be within 0..1, got " + p);
            }
            return p;
        }

        /** The chain; the model is held open while a grammar stage reads its vocabulary ({@link LlamaModel#acquire}). */
        public Sampler build() {
            LlamaModel model = vocabulary.model();
            model.acquire();
            try {
                return buildHeld();
            } finally {
                model.release();
            }
        }

        private Sampler buildHeld() {
            MemorySegment vocab = vocabulary.handle();
            List<MemorySegment> stages = new ArrayList<>();
            try (Arena arena = Arena.ofConfined()) {
                if (grammar != null) {
                    MemorySegment g = Native.cString(arena, grammar, "llama_sampler_init_grammar", "the grammar");
                    MemorySegment r = Native.cString(arena, grammarRoot, "llama_sampler_init_grammar", "the grammar root");
                    LogBridge.clearLastError();
                    MemorySegment s = llama_sampler_init_grammar(vocab, g, r);
                    if (s.equals(MemorySegment.NULL)) {
                        stages.forEach(ai.llmref.bindings.ffi.llama_h::llama_sampler_free);
                        throw new GrammarException("llama_sampler_init_grammar", "the grammar does not parse: " + LogBridge.takeLastError());
                    }
                    stages.add(s);
                }
                boolean penalties = order.contains(Stage.PENALTIES) && penaltyLastN != 0
                        && (repeatPenalty != 1.0f || frequencyPenalty != 0 || presencePenalty != 0);
                boolean greedy = seed == null || (temperature != null && temperature == 0f);
                boolean dry = order.contains(Stage.DRY) && (dryStage != null || dryMultiplier > 0 && dryLastN > 0);
                boolean miro = mirostat != 0 && !greedy;
                if (miro) {
                    penalties = false; // llama.cpp's common sampler: Mirostat replaces the ordered stages
                    dry = false;
                }
                // stages the draws computed here do not have (and an order other than llama.cpp's)
                boolean others = dry || miro || (topNSigma > 0 && order.contains(Stage.TOP_N_SIGMA))
                        || (xtcProbability > 0 && xtcThreshold <= 0.5f && order.contains(Stage.XTC)) || dynatempRange > 0 || minKeep > 1
                        || !order.equals(DEFAULT_ORDER);
                // Greedy with at most a logit bias: a short bias is this project's stage (DeviceBias),
                // which costs a device little when the chain is attached; on the host the argmax is
                // taken in place (see biasedArgmax) and the chain's stages are not called.
                boolean greedyOnly = grammar == null && greedy && !penalties && !dry;
                boolean cut = (topK != null && topK > 0) || (typicalP != null && typicalP < 1) || (topP != null && topP < 1)
                        || (minP != null && minP > 0);
                // A draw with bias, temperature and seed only: SoftmaxDraw computes it over the row;
                // with top-k, top-p or min-p too (no typical-p): TruncatedDraw.
                boolean javaDraw = javaDraws && grammar == null && !greedy && !penalties && !others && (typicalP == null || typicalP >= 1);
                boolean plainDraw = javaDraw && !cut;
                int[] biasTokens = new int[logitBias.size()];
                float[] biasValues = new float[biasTokens.length];
                int b = 0;
                for (Map.Entry<Integer, Float> e : logitBias.entrySet()) {
                    biasTokens[b] = e.getKey();
                    biasValues[b++] = e.getValue();
                }
                float temp = temperature == null ? 1.0f : temperature;
                SoftmaxDraw draw = plainDraw ? new SoftmaxDraw(biasTokens, biasValues, temp, seed) : null;
                TruncatedDraw truncated = javaDraw && cut ? new TruncatedDraw(biasTokens, biasValues, topK == null ? 0 : topK,
                        topP == null ? 1f : topP, minP == null ? 0f : minP, temp, seed) : null;
                MemorySegment biasStage = null;
                MemorySegment greedyStage = null;
                Arena stageArena = greedyOnly ? Arena.ofAuto() : null;
                if (greedyOnly && biasTokens.length > 0 && biasTokens.length <= DeviceBias.MAX_TOKENS) {
                    biasStage = DeviceBias.create(biasTokens, biasValues, stageArena);
                    stages.add(biasStage);
                } else if (!logitBias.isEmpty()) {
                    MemorySegment arr = llama_logit_bias.allocateArray(logitBias.size(), arena);
                    for (int i = 0; i < biasTokens.length; i++) {
                        MemorySegment el = llama_logit_bias.asSlice(arr, i);
                        llama_logit_bias.token(el, biasTokens[i]);
                        llama_logit_bias.bias(el, biasValues[i]);
                    }
                    stages.add(llama_sampler_init_logit_bias(vocabulary.size(), logitBias.size(), arr));
                }
                long keep = Math.max(1, minKeep);
                if (miro) {
                    stages.add(llama_sampler_init_temp(temp));
                    stages.add(mirostat == 1
                            ? llama_sampler_init_mirostat(vocabulary.size(), (int) (long) seed, mirostatTau, mirostatEta, 100)
                            : llama_sampler_init_mirostat_v2((int) (long) seed, mirostatTau, mirostatEta));
                } else {
                    for (Stage stage : order) {
                        // greedy: only the stages that change logits by the history (the others keep the best token)
                        MemorySegment st = switch (stage) {
                            case PENALTIES -> penalties
                                    ? llama_sampler_init_penalties(vocabulary.size(), penaltyLastN, repeatPenalty, frequencyPenalty, presencePenalty)
                                    : null;
                            case DRY -> !dry ? null : dryStage != null ? dryStage.copy()
                                    : DryStage.init(vocab, dryMultiplier, dryBase, dryAllowedLength, dryLastN, dryBreakers);
                            case TOP_N_SIGMA -> !greedy && topNSigma > 0 ? llama_sampler_init_top_n_sigma(topNSigma) : null;
                            case TOP_K -> !greedy && topK != null && topK > 0 ? llama_sampler_init_top_k(topK) : null;
                            case TYPICAL_P -> !greedy && typicalP != null && typicalP < 1 ? llama_sampler_init_typical(typicalP, keep) : null;
                            case TOP_P -> !greedy && topP != null && topP < 1 ? llama_sampler_init_top_p(topP, keep) : null;
                            case MIN_P -> !greedy && minP != null && minP > 0 ? llama_sampler_init_min_p(minP, keep) : null;
                            case XTC -> !greedy && xtcProbability > 0 && xtcThreshold <= 0.5f
                                    ? llama_sampler_init_xtc(xtcProbability, xtcThreshold, keep, (int) (long) seed) : null;
                            case INFILL -> greedy ? null : llama_sampler_init_infill(vocab);
                            case TEMPERATURE -> greedy ? null
                                    : dynatempRange > 0 ? llama_sampler_init_temp_ext(temp, dynatempRange, dynatempExponent)
                                    : llama_sampler_init_temp(temp);
                        };
                        if (st != null) {
                            stages.add(st);
                        }
                    }
                }
                if (!greedy) {
                    if (!miro) {
                        stages.add(llama_sampler_init_dist((int) (long) seed));
                    }
                } else if (greedyOnly) {
                    // this project's greedy stage: attached, the rows of a graph share one argmax (DeviceGreedy)
                    greedyStage = DeviceGreedy.create(stageArena);
                    stages.add(greedyStage);
                } else {
                    stages.add(llama_sampler_init_greedy()); // greedy after penalties or a grammar
                }
                MemorySegment params = llama_sampler_chain_default_params(arena);
                llama_sampler_chain_params.no_perf(params, true);
                MemorySegment chain = llama_sampler_chain_init(params);
                for (MemorySegment s : stages) {
                    llama_sampler_chain_add(chain, s); // the chain owns its stages from here on
                }
                return new Sampler(chain, vocabulary, grammar != null, greedyOnly, greedy, greedyOnly ? biasTokens : new int[0],
                        greedyOnly ? biasValues : new float[0], biasStage, greedyStage, stageArena, draw, truncated);
            }
        }
    }
}
