package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.*;

import ai.llmref.bindings.ffi.llama_batch;
import ai.llmref.bindings.ffi.llama_context_params;
import ai.llmref.bindings.ffi.llama_perf_context_data;
import ai.llmref.llama.internal.LogBridge;
import java.lang.foreign.Arena;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;

/**
 * An inference context (KV cache, batches, outputs) over a {@link LlamaModel}. It belongs to the
 * thread that created it: every method but {@link #abort()} throws {@link IllegalStateException}
 * on any other thread, as llama.cpp contexts are not thread-safe.
 */
public final class LlamaContext implements AutoCloseable {
    /**
     * The abort hook. ggml calls {@code abort_callback(data)} after every graph node, so a Java
     * upcall there would cost more than the decode of a small model. Instead the callback is libc's
     * {@code strlen} over a two-byte flag: it returns 0 (false) until {@link #abort()} writes a
     * non-zero first byte. The flag lives in a shared arena, so any thread may set it.
     */
    private static final MemorySegment STRLEN = Linker.nativeLinker().defaultLookup().find("strlen")
            .orElseThrow(() -> new NativeLibraryException("strlen", "libc's strlen is not found"));

    private final LlamaModel model;
    private final Thread owner;
    private final Arena shared = Arena.ofShared();
    private final MemorySegment abortFlag;
    /** Where {@code llama_perf_context} returns its struct ({@link #graphsReused}). */
    private final SegmentAllocator perfResult;
    /** Chains attached for backend sampling, by sequence ({@link #attachSampler}). */
    private final java.util.Map<Integer, Sampler> attachedSamplers = new java.util.HashMap<>();
    /** True for a sequence without an attached chain (made once: {@link #decode} asks it of every output). */
    private final java.util.function.IntPredicate withoutChain = s -> !attachedSamplers.containsKey(s);
    /** The attached greedy stages' shared argmax of the graph being built ({@link DeviceGreedy}), made at the first attach. */
    private MemorySegment greedyShare;
    private final int contextSize;
    private final int sequenceContext;
    private final int batchSize;
    private final int ubatchSize;
    private final int maxSequences;
    private final int vocabSize;
    private final int embeddingSize;
    private final boolean embeddings;
    /** M-RoPE / vision RoPE models: llama.cpp aborts on position shifts for them. */
    private final boolean multiPositionRope;
    /** A recurrent model without attention layers: its memory's state starts with a cell count, not a KV stream count. */
    private final boolean recurrentOnly;
    private final ContextParams params;
    private final ContextMemory memoryUse;
    private MemorySegment handle;
    private MemorySegment memory;
    private final boolean[] outputs;
    /**
     * For each output position of the last decode: the chain that picked its token on the device
     * (attached at that decode to the position's first sequence, whether attached still or not), or
     * null where no token was picked on the device. llama.cpp keeps those tokens until the next
     * decode; it samples a position on the device for its first sequence only ({@code
     * build_sampling} gives each output row to {@code seq_id[i][0]}).
     */
    private final Sampler[] deviceChains;
    /** For each position with a {@link #deviceChains} entry: the sequence that chain was attached to at the decode. */
    private final int[] deviceSequences;
    /**
     * For each output position of the last decode: llama.cpp copied its logits out. It does for every
     * output of a micro-batch where an output has a sequence without a chain, so for certain where the
     * position itself has one (a position with a device pick and another sequence without a chain has both).
     */
    private final boolean[] hostLogits;
    /** For each output position of the last decode: its row among the outputs, in batch order. */
    private final int[] outputRows;
    private int outputCount;
    /**
     * Every output's logits row in batch order, as {@code llama_get_logits} documents them: the
     * last decode's once {@link #outputBlockFetched} (see {@link #logitsRow}). Kept across decodes
     * while llama.cpp's buffer stays where it was and the outputs as many, so that a step like the
     * last makes no new segment.
     */
    private MemorySegment outputBlock = MemorySegment.NULL;
    private boolean outputBlockFetched;
    private boolean outputBlockUsable;
    private int decodedCount;

    /** Made by {@link LlamaModel#newContext}, which holds {@code m} ({@link LlamaModel#acquire}) until this returns. */
    LlamaContext(LlamaModel model, MemorySegment m, ContextParams params) {
        if (params.sequences() > llama_max_parallel_sequences()) {
            throw new IllegalArgumentException("sequences must be at most " + llama_max_parallel_sequences()
                    + " (llama_max_parallel_sequences), got " + params.sequences());
        }
        this.model = model;
        this.params = params;
        this.owner = Thread.currentThread();
        this.abortFlag = shared.allocate(2);
        this.perfResult = SegmentAllocator.prefixAllocator(llama_perf_context_data.allocate(shared));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cp = llama_context_default_params(arena);
            llama_context_params.n_ctx(cp, params.contextSize());
            llama_context_params.n_batch(cp, params.batchSize());
            llama_context_params.n_ubatch(cp, params.ubatchSize());
            llama_context_params.n_seq_max(cp, params.sequences());
            llama_context_params.n_threads(cp, params.threads());
            llama_context_params.n_threads_batch(cp, params.threadsBatch());
            llama_context_params.flash_attn_type(cp, params.flashAttention().nativeValue);
            llama_context_params.type_k(cp, params.typeK().ggmlType);
            llama_context_params.type_v(cp, params.typeV().ggmlType);
            llama_context_params.embeddings(cp, params.embeddings());
            llama_context_params.pooling_type(cp, params.pooling().nativeValue);
            llama_context_params.kv_unified(cp, params.unifiedKv());
            llama_context_params.abort_callback(cp, STRLEN);
            llama_context_params.abort_callback_data(cp, abortFlag);
            LogBridge.clearLastError();
            java.util.List<String> lines = new java.util.ArrayList<>();
            MemorySegment ctx = LogBridge.capturing(lines::add, () -> llama_init_from_model(m, cp));
            if (ctx.equals(MemorySegment.NULL)) {
                shared.close();
                throw new LlamaException("llama_init_from_model", "cannot create a context with " + params + ": "
                        + LogBridge.takeLastError());
            }
            this.handle = ctx;
            this.memoryUse = ContextMemory.fromLog(lines);
        }
        this.memory = llama_get_memory(handle);
        this.contextSize = llama_n_ctx(handle);
        this.sequenceContext = llama_n_ctx_seq(handle);
        this.batchSize = llama_n_batch(handle);
        this.ubatchSize = llama_n_ubatch(handle);
        this.maxSequences = llama_n_seq_max(handle);
        this.vocabSize = llama_vocab_n_tokens(llama_model_get_vocab(m));
        this.embeddingSize = llama_model_n_embd(m);
        this.embeddings = params.embeddings();
        int rope = llama_model_rope_type(m);
        this.multiPositionRope = rope == LLAMA_ROPE_TYPE_MROPE() || rope == LLAMA_ROPE_TYPE_IMROPE() || rope == LLAMA_ROPE_TYPE_VISION();
        this.recurrentOnly = llama_model_is_recurrent(m) && !llama_model_is_hybrid(m);
        this.outputs = new boolean[batchSize];
        this.deviceChains = new Sampler[batchSize];
        this.deviceSequences = new int[batchSize];
        this.hostLogits = new boolean[batchSize];
        this.outputRows = new int[batchSize];
        model.contextOpened();
    }

    /** A batch for this context holding up to {@code capacity} tokens ({@code <= batchSize()}). */
    public Batch newBatch(int capacity) {
        checkOpen();
        if (capacity < 1 || capacity > batchSize) {
            throw new InvalidInputException("llama_batch_init", "batch capacity must be 1.." + batchSize + " (the context's batch size), got " + capacity);
        }
        return new Batch(this, capacity, vocabSize, sequenceContext, maxSequences, params.unifiedKv() || maxSequences == 1);
    }

    /**
     * Runs the model over the batch. Afterwards {@link #logits(int)} and the samplers can read the
     * outputs of the positions that asked for them.
     *
     * @throws ContextOverflowException no room left in the KV cache for the batch
     * @throws DecodeAbortedException   {@link #abort()} was called; finished micro-batches stay in memory
     * @throws DecodeException          any other failure reported by llama.cpp
     */
    public void decode(Batch batch) {
        MemorySegment ctx = checkOpen();
        if (batch.context() != this) {
            throw new InvalidInputException("llama_decode", "the batch belongs to another context");
        }
        if (batch.isClosed()) {
            throw new IllegalStateException("batch is closed");
        }
        int n = batch.size;
        if (n == 0) {
            throw new InvalidInputException("llama_decode", "the batch is empty");
        }
        llama_batch.n_tokens(batch.struct, n);
        decodedCount = 0;
        outputBlockFetched = false;
        LogBridge.clearLastError();
        int rc = llama_decode(ctx, batch.struct);
        if (rc != 0) {
            throw decodeFailure(rc, n);
        }
        System.arraycopy(batch.outputs, 0, outputs, 0, n);
        int rows = 0;
        for (int i = 0; i < n; i++) {
            if (outputs[i]) {
                outputRows[i] = rows++;
            }
        }
        outputCount = rows;
        // An embeddings context outputs every position (not only those asked for), and a sequence
        // that samples on the device may leave its rows uncopied: those read row by row.
        outputBlockUsable = !embeddings && attachedSamplers.isEmpty();
        // Which chain picked each output on the device is recorded now: Sampler.sample reads the
        // pick by it, whatever is attached or detached between this decode and the sample.
        if (attachedSamplers.isEmpty()) {
            java.util.Arrays.fill(deviceChains, 0, n, null);
            java.util.Arrays.fill(hostLogits, 0, n, true);
        } else {
            for (int i = 0; i < n; i++) {
                Sampler chain = null;
                boolean copied = true;
                if (outputs[i]) {
                    int first = batch.sequence(i, 0);
                    chain = attachedSamplers.get(first);
                    deviceSequences[i] = first;
                    copied = chain == null || batch.anySequence(i, withoutChain);
                }
                deviceChains[i] = chain;
                hostLogits[i] = copied;
            }
        }
        decodedCount = n;
    }

    private LlamaException decodeFailure(int rc, int n) {
        return switch (rc) {
            case 1 -> new ContextOverflowException("llama_decode", "no room in the KV cache for " + n + " tokens (context "
                    + contextSize + ", " + sequenceContext + " per sequence): free sequences or use a larger context");
            case 2 -> {
                abortFlag.set(ValueLayout.JAVA_BYTE, 0, (byte) 0);
                yield new DecodeAbortedException("llama_decode", "aborted; micro-batches already processed remain in the KV cache");
            }
            case -1 -> new InvalidInputException("llama_decode", "llama.cpp rejected the batch: " + LogBridge.takeLastError());
            default -> new DecodeException("llama_decode", "failed with code " + rc + ": " + LogBridge.takeLastError());
        };
    }

    /**
     * Waits until the work of the last {@link #decode} has finished. On a GPU {@code llama_decode}
     * may return while the device still computes; reading logits or sampling waits for it anyway,
     * so this changes no result, only where the waiting happens (the engine calls it to time the
     * decode apart from the sampling).
     */
    public void synchronize() {
        llama_synchronize(checkOpen());
    }

    /**
     * How many micro-batches since the context was created ran llama.cpp's previous compute graph
     * again instead of building a new one ({@code llama_perf_context}'s {@code n_reused}). llama.cpp
     * keeps the last graph it built (one with outputs, one without); a micro-batch of the same shape
     * and sequences reuses it, so a run of single-token steps over the same sequences builds one
     * graph. Another shape builds it again: a decode whose batch holds a prompt chunk beside the
     * generated tokens of other sequences is two micro-batches with per-sequence KV streams, both
     * built anew (and on a GPU each built graph's CUDA graph is captured again before it is used).
     * Use it on the context's thread.
     */
    public long graphsReused() {
        return Integer.toUnsignedLong(llama_perf_context_data.n_reused(llama_perf_context(perfResult, checkOpen())));
    }

    /**
     * Requests that the running decode stop (or, if none runs, the next one). Safe from any thread;
     * the decode then throws {@link DecodeAbortedException}. Works for CPU execution.
     */
    public void abort() {
        try {
            abortFlag.set(ValueLayout.JAVA_BYTE, 0, (byte) 1);
        } catch (IllegalStateException closedMeanwhile) {
            // the context was closed: nothing left to abort
        }
    }

    /** The logits of batch position {@code index} of the last decode (a copy, vocabulary-sized). */
    public float[] logits(int index) {
        return logitsRow(index, MemorySegment.NULL, "llama_get_logits_ith").toArray(ValueLayout.JAVA_FLOAT);
    }

    /**
     * Where llama.cpp keeps the logits of batch position {@code index} of the last decode: a
     * vocabulary-sized segment, valid until the next decode; {@code reuse} itself when it is that
     * row already (a caller that keeps its last row makes no new segment a token). Checked as
     * {@link #logits} is. After a decode the first call fetches every output's row at once with
     * {@code llama_get_logits} (llama.cpp keeps them in batch order), so that the rows of a step
     * with many sequences cost one wait for the device instead of one each ({@code
     * llama_get_logits_ith} synchronizes the context's backends on every call: on a GPU a stream
     * synchronization per row). An embeddings context, or a decode with a chain attached for
     * device sampling, reads each row with {@code llama_get_logits_ith}.
     */
    MemorySegment logitsRow(int index, MemorySegment reuse, String fn) {
        MemorySegment ctx = checkOpen();
        checkLogits(index, fn);
        long rowBytes = (long) vocabSize * Float.BYTES;
        MemorySegment source;
        long offset;
        if (outputBlockUsable) {
            if (!outputBlockFetched) {
                MemorySegment p = llama_get_logits(ctx);
                if (p.address() == 0) {
                    throw new LlamaException("llama_get_logits", "no logits: " + LogBridge.takeLastError());
                }
                long size = outputCount * rowBytes;
                if (p.address() != outputBlock.address() || size != outputBlock.byteSize()) {
                    outputBlock = p.reinterpret(size);
                }
                outputBlockFetched = true;
            }
            source = outputBlock;
            offset = outputRows[index] * rowBytes;
        } else {
            source = llama_get_logits_ith(ctx, index);
            if (source.address() == 0) {
                throw new LlamaException("llama_get_logits_ith", "no logits for index " + index + ": " + LogBridge.takeLastError());
            }
            source = source.reinterpret(rowBytes);
            offset = 0;
        }
        if (reuse.address() == source.address() + offset && reuse.byteSize() == rowBytes) {
            return reuse;
        }
        return outputBlockUsable ? source.asSlice(offset, rowBytes) : source;
    }

    /**
     * The pooled embedding of a sequence after the last decode (contexts made with embeddings and a
     * pooling other than NONE).
     */
    public float[] embeddings(int sequence, boolean normalize) {
        MemorySegment ctx = checkOpen();
        if (!embeddings) {
            throw new IllegalStateException("this context was not created with embeddings enabled");
        }
        checkSequence(sequence, "llama_get_embeddings_seq");
        MemorySegment p = llama_get_embeddings_seq(ctx, sequence);
        if (p.equals(MemorySegment.NULL)) {
            throw new LlamaException("llama_get_embeddings_seq", "no pooled embedding for sequence " + sequence
                    + " (was it in the last batch, and is pooling not NONE?)");
        }
        float[] v = p.reinterpret((long) embeddingSize * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT);
        return normalize ? normalized(v) : v;
    }

    /** The embedding of one output position of the last decode (pooling NONE). */
    public float[] tokenEmbeddings(int index, boolean normalize) {
        MemorySegment ctx = checkOpen();
        if (!embeddings) {
            throw new IllegalStateException("this context was not created with embeddings enabled");
        }
        checkOutput(index, "llama_get_embeddings_ith");
        MemorySegment p = llama_get_embeddings_ith(ctx, index);
        if (p.equals(MemorySegment.NULL)) {
            throw new LlamaException("llama_get_embeddings_ith", "no embedding for index " + index);
        }
        float[] v = p.reinterpret((long) embeddingSize * Float.BYTES).toArray(ValueLayout.JAVA_FLOAT);
        return normalize ? normalized(v) : v;
    }

    static float[] normalized(float[] v) {
        double sum = 0;
        for (float x : v) {
            sum += (double) x * x;
        }
        double norm = Math.sqrt(sum);
        if (norm > 0) {
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (v[i] / norm);
            }
        }
        return v;
    }

    // --- per-sequence memory ------------------------------------------------------------------

    /** Forgets every sequence. */
    public void clearMemory() {
        llama_memory_clear(memoryChecked(), true);
    }

    /**
     * Removes positions {@code [from, to)} of a sequence ({@code -1} = open end).
     *
     * @return false when llama.cpp cannot remove part of a sequence (whole sequences always work)
     */
    public boolean removeTokens(int sequence, int from, int to) {
        MemorySegment mem = memoryChecked();
        checkSequence(sequence, "llama_memory_seq_rm");
        checkRange(from, to, "llama_memory_seq_rm");
        return llama_memory_seq_rm(mem, sequence, from, to);
    }

    /**
     * Gives {@code target} {@code source}'s positions {@code [from, to)}. With a unified KV cache the
     * cells are shared; with per-sequence streams ({@code unifiedKv=false}) the data is copied and
     * only whole sequences can be copied (llama.cpp aborts otherwise, so that is refused here).
     */
    public void copySequence(int source, int target, int from, int to) {
        MemorySegment mem = memoryChecked();
        checkSequence(source, "llama_memory_seq_cp");
        checkSequence(target, "llama_memory_seq_cp");
        checkRange(from, to, "llama_memory_seq_cp");
        if (!params.unifiedKv() && source != target && (from > 0 || to != -1)) {
            throw new InvalidInputException("llama_memory_seq_cp", "with per-sequence KV streams only whole sequences can be"
                    + " copied (from -1 or 0, to -1); got [" + from + ", " + to + ")");
        }
        llama_memory_seq_cp(mem, source, target, from, to);
    }

    /**
     * Removes every sequence but {@code sequence}. (llama.cpp's own seq_keep only clears the
     * sequence's own stream when streams are per sequence; this removes the others explicitly.)
     */
    public void keepOnly(int sequence) {
        MemorySegment mem = memoryChecked();
        checkSequence(sequence, "llama_memory_seq_keep");
        llama_memory_seq_keep(mem, sequence);
        if (!params.unifiedKv()) {
            for (int s = 0; s < maxSequences; s++) {
                if (s != sequence) {
                    llama_memory_seq_rm(mem, s, -1, -1);
                }
            }
        }
    }

    /**
     * Adds {@code delta} to positions {@code [from, to)} of a sequence (context shifting). As in
     * llama.cpp, a position moved below 0 is removed, and a cell the sequence shares with others (a
     * {@link #copySequence} on a unified KV cache) moves for those sequences too.
     *
     * @throws InvalidInputException the memory cannot shift, or a position of the sequence would
     *                               leave the {@code int} range (llama.cpp's {@code pos += delta}
     *                               would overflow, and a wrapped position silently drops its cell)
     */
    public void shiftPositions(int sequence, int from, int to, int delta) {
        MemorySegment mem = memoryChecked();
        checkSequence(sequence, "llama_memory_seq_add");
        checkRange(from, to, "llama_memory_seq_add");
        if (!llama_memory_can_shift(mem) || multiPositionRope) {
            throw new InvalidInputException("llama_memory_seq_add", "this model's memory cannot shift positions"
                    + (multiPositionRope ? " (multi-dimensional RoPE)" : ""));
        }
        int max = llama_memory_seq_pos_max(mem, sequence);
        int min = llama_memory_seq_pos_min(mem, sequence);
        if (max >= 0 && ((long) max + delta > Integer.MAX_VALUE || (long) min + delta < Integer.MIN_VALUE)) {
            throw new InvalidInputException("llama_memory_seq_add", "shifting positions " + min + ".." + max + " of sequence "
                    + sequence + " by " + delta + " leaves the int range");
        }
        llama_memory_seq_add(mem, sequence, from, to, delta);
    }

    /** Largest position held for the sequence, or -1 when it is empty. */
    public int maxPosition(int sequence) {
        MemorySegment mem = memoryChecked();
        checkSequence(sequence, "llama_memory_seq_pos_max");
        return llama_memory_seq_pos_max(mem, sequence);
    }

    /** Smallest position held for the sequence, or -1 when it is empty. */
    public int minPosition(int sequence) {
        MemorySegment mem = memoryChecked();
        checkSequence(sequence, "llama_memory_seq_pos_min");
        return llama_memory_seq_pos_min(mem, sequence);
    }

    // --- state --------------------------------------------------------------------------------

    /** The whole context state (KV cache, outputs) as bytes. */
    public byte[] saveState() {
        MemorySegment ctx = checkOpen();
        long size = llama_state_get_size(ctx);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(1, size));
            long n = llama_state_get_data(ctx, buf, size);
            return buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE);
        }
    }

    /** Restores a state saved from a context of the same model and parameters. */
    public void restoreState(byte[] state) {
        MemorySegment ctx = checkOpen();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocateFrom(ValueLayout.JAVA_BYTE, state);
            LogBridge.clearLastError();
            long n = llama_state_set_data(ctx, buf, state.length);
            if (n == 0) {
                throw new LlamaException("llama_state_set_data", "the state could not be restored: " + LogBridge.takeLastError());
            }
        }
        decodedCount = 0;
        outputBlockFetched = false;
    }

    /** One sequence's KV state as bytes. */
    public byte[] saveSequence(int sequence) {
        MemorySegment ctx = checkOpen();
        checkSequence(sequence, "llama_state_seq_get_data");
        long size = llama_state_seq_get_size(ctx, sequence);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(1, size));
            long n = llama_state_seq_get_data(ctx, buf, size, sequence);
            return buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE);
        }
    }

    /**
     * Loads a sequence state (from {@link #saveSequence} of a context of the same model and
     * parameters) into {@code sequence}.
     *
     * @throws InvalidInputException the bytes are not a sequence state, or claim more cells than this
     *                               context holds or than the bytes can describe (checked here:
     *                               llama.cpp allocates room for the claimed cells before it reads them)
     * @throws LlamaException        llama.cpp could not restore it (another model, another cache layout)
     */
    public void restoreSequence(int sequence, byte[] state) {
        MemorySegment ctx = checkOpen();
        checkSequence(sequence, "llama_state_seq_set_data");
        checkSequenceState(state);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocateFrom(ValueLayout.JAVA_BYTE, state);
            LogBridge.clearLastError();
            long n = llama_state_seq_set_data(ctx, buf, state.length, sequence);
            if (n == 0) {
                throw new LlamaException("llama_state_seq_set_data", "the sequence state could not be restored: " + LogBridge.takeLastError());
            }
        }
    }

    /** {@code io_magic} of llama-context.cpp: the first four bytes of a sequence state. */
    private static final int SEQUENCE_STATE_MAGIC = 0xaf143cd8;

    /**
     * Checks the head of a sequence state before llama.cpp reads it. llama.cpp's reader reserves a
     * micro-batch of the claimed cell count (about 21 bytes a cell, zeroed) before it reads the
     * first cell: a count of 2^32-1 asks for some 90 GB. So the first cell count it will read must
     * be one this context can hold, and one the bytes that follow can describe (a cell takes at least
     * 12 bytes: position, sequence count, sequence; 8 in a recurrent state). Layout, as {@code
     * llama_state_seq_get_data} writes it: magic, sequence id, then the memory's state: a KV cache
     * writes its stream count and, per stream, a cell count followed by that stream's cells and data
     * (only the sequence's own stream has cells); a recurrent model's memory writes a cell count.
     * A memory of another layout (DeepSeek V4's starts with a magic of its own) is left to
     * llama.cpp.
     */
    private void checkSequenceState(byte[] state) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(state).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        if (state.length < 12 || b.getInt(0) != SEQUENCE_STATE_MAGIC) {
            throw new InvalidInputException("llama_state_seq_set_data", "these " + state.length
                    + " bytes are not a sequence state (saveSequence)");
        }
        int at = 8;
        int minCellBytes = 8;
        if (!recurrentOnly) {
            long streams = Integer.toUnsignedLong(b.getInt(at));
            long expected = params.unifiedKv() ? 1 : maxSequences;
            if (streams != expected) {
                return; // llama.cpp's KV cache refuses another stream count before it reserves anything
            }
            at += 4;
            minCellBytes = 12;
            // streams without cells are a bare 0; the first with cells is the one llama.cpp reads first
            while (at + 4 <= state.length && b.getInt(at) == 0 && --streams > 0) {
                at += 4;
            }
        }
        if (at + 4 > state.length) {
            return; // llama.cpp finds the end of the bytes itself: a typed failure
        }
        long cells = Integer.toUnsignedLong(b.getInt(at));
        long rest = state.length - (at + 4L);
        if (cells > contextSize || cells * minCellBytes > rest) {
            throw new InvalidInputException("llama_state_seq_set_data", "the state claims " + cells + " cells; this context"
                    + " holds " + contextSize + " and the " + rest + " bytes that follow describe at most " + rest / minCellBytes);
        }
    }

    // --- facts ----------------------------------------------------------------------------------

    public int contextSize() {
        return contextSize;
    }

    /** The KV cache and compute buffers llama.cpp allocated for this context, per buffer (device). */
    public ContextMemory memoryUse() {
        return memoryUse;
    }

    /** Positions available to each sequence. */
    public int sequenceContextSize() {
        return sequenceContext;
    }

    public int batchSize() {
        return batchSize;
    }

    public int ubatchSize() {
        return ubatchSize;
    }

    public int maxSequences() {
        return maxSequences;
    }

    public int vocabSize() {
        return vocabSize;
    }

    public ContextParams params() {
        return params;
    }

    public LlamaModel model() {
        return model;
    }

    public void setThreads(int threads, int threadsBatch) {
        MemorySegment ctx = checkOpen();
        if (threads < 1 || threadsBatch < 1) {
            throw new InvalidInputException("llama_set_n_threads", "thread counts must be >= 1");
        }
        llama_set_n_threads(ctx, threads, threadsBatch);
    }

    // --- checks ---------------------------------------------------------------------------------

    void checkThread() {
        if (Thread.currentThread() != owner) {
            throw new IllegalStateException("LlamaContext belongs to thread " + owner.getName()
                    + " and was used from " + Thread.currentThread().getName());
        }
    }

    MemorySegment checkOpen() {
        checkThread();
        if (handle == null) {
            throw new IllegalStateException("context is closed");
        }
        return handle;
    }

    private MemorySegment memoryChecked() {
        checkOpen();
        return memory;
    }

    /** True when batch position {@code index} of the last decode produced an output. */
    void checkOutput(int index, String fn) {
        if (index < 0 || index >= decodedCount || !outputs[index]) {
            throw new InvalidInputException(fn, "batch position " + index + " has no output from the last decode"
                    + " (decoded " + decodedCount + " tokens; ask for outputs with Batch.add(..., true))");
        }
    }

    /**
     * {@link #checkOutput}, and the position's logits were copied out: its token was not picked on
     * the device, or it belongs to a sequence without a chain too.
     */
    void checkLogits(int index, String fn) {
        checkOutput(index, fn);
        if (!hostLogits[index]) {
            throw new InvalidInputException(fn, "batch position " + index + " was sampled on the device at the last decode, by the"
                    + " chain attached to sequence " + deviceSequences[index] + " then (attachSampler): its logits stayed there;"
                    + " that chain reads the token (Sampler.sample), and decodes after detachSampler copy the logits out again");
        }
    }

    /**
     * How {@code chain} samples batch position {@code index} of the last decode: true when llama.cpp
     * picked the token there on the device with this chain (attached to the position's sequence at
     * that decode, attached still or not), false when the chain samples the position's logits on the
     * host (then checked by {@link #checkLogits}). What is attached now does not matter: an attach
     * takes effect from the next decode, and the token a detached chain picked stays until then.
     *
     * @throws InvalidInputException the position has no output, or another chain picked its token on
     *                               the device and its logits were not copied out
     */
    boolean pickedOnDevice(int index, Sampler chain, String fn) {
        checkOpen();
        checkOutput(index, fn);
        Sampler owner = deviceChains[index];
        if (owner == null || owner == chain) {
            return owner != null;
        }
        if (hostLogits[index]) {
            return false; // also in a sequence without a chain: its logits came out for the host
        }
        throw new InvalidInputException(fn, "batch position " + index + " was sampled on the device at the last decode, by the chain"
                + " attached to sequence " + deviceSequences[index] + " then: only that chain reads the token, and the logits"
                + " stayed on the device");
    }

    private void checkSequence(int sequence, String fn) {
        if (sequence < 0 || sequence >= maxSequences) {
            throw new InvalidInputException(fn, "sequence id " + sequence + " is outside 0.." + (maxSequences - 1));
        }
    }

    private static void checkRange(int from, int to, String fn) {
        if (from < -1 || to < -1 || (to >= 0 && from > to)) {
            throw new InvalidInputException(fn, "invalid position range [" + from + ", " + to + ")");
        }
    }

    public boolean isClosed() {
        return handle == null;
    }

    /**
     * Attaches {@code sampler} to {@code sequence} for llama.cpp's backend sampling (experimental in
     * the pinned tree): from the next decode on, that sequence's output token is picked by the
     * chain's stages as graph operations on the device that computes the logits, and only the token
     * comes back; {@link Sampler#sample} then reads it, and that sequence's logits are not copied
     * out any more ({@link #logits} fails for it). A position of several sequences is picked on the
     * device by its first sequence's chain, as in llama.cpp, and its logits are copied out too when
     * one of its sequences has no chain. Only greedy chains with at most a logit bias
     * qualify ({@link Sampler#offloadable}). Each attach or detach makes llama.cpp reserve its
     * compute buffers again at the next decode, so keep a chain attached across requests with the
     * same settings. A sequence holds at most one chain; a chain serves one sequence, and is attached
     * once in its life (llama.cpp initializes it for the device once): after a detach, attach a new one.
     *
     * <p>A refused attach (an exception) changes nothing: the sequence keeps the chain it had.
     *
     * @return false when llama.cpp cannot run the chain on the device (the sequence's previous chain,
     *         if any, is detached, and the sequence samples on the CPU)
     */
    public boolean attachSampler(int sequence, Sampler sampler) {
        MemorySegment h = checkOpen();
        checkSequence(sequence, "llama_set_sampler");
        MemorySegment chain = sampler.handle(); // open: checked before anything is detached
        if (!sampler.offloadable()) {
            throw new InvalidInputException("llama_set_sampler", "only greedy chains with at most a logit bias can sample on the device");
        }
        if (sampler.attachedTo() != null) {
            throw new IllegalStateException("the sampler is already attached to sequence " + sampler.attachedSequence());
        }
        if (sampler.everAttached()) {
            // llama.cpp initializes a chain for the device once (llama_sampler_chain_backend_init aborts the process the second time)
            throw new IllegalStateException("the sampler was attached before: a chain can be attached once, build a new one");
        }
        detachSampler(sequence); // every check passed: from here on the attach replaces the sequence's chain
        if (!llama_set_sampler(h, sequence, chain)) {
            return false;
        }
        attachedSamplers.put(sequence, sampler);
        sampler.attached(this, sequence);
        updateUniformBias();
        return true;
    }

    /**
     * Detaches the sequence's sampler, if any: from the next decode on, its output is copied out and
     * sampled on the CPU again. The token the chain picked on the device at the last decode stays
     * readable with {@link Sampler#sample} until the next decode.
     */
    public void detachSampler(int sequence) {
        MemorySegment h = checkOpen();
        checkSequence(sequence, "llama_set_sampler");
        Sampler s = attachedSamplers.remove(sequence);
        if (s != null) {
            llama_set_sampler(h, sequence, MemorySegment.NULL);
            s.attached(null, -1);
            updateUniformBias();
        }
    }

    /**
     * Writes into the block the biases that every attached chain applies alike, so that {@link
     * DeviceGreedy} adds them once for all rows ({@link DeviceGreedy#setUniformBias}): the common list
     * when at least two chains are attached and each is {@link DeviceBias} with that list (or no bias)
     * and {@link DeviceGreedy}; none otherwise. Called on every attach and detach, between decodes on
     * the decoding thread; the attach or detach itself makes llama.cpp build its next graph anew.
     */
    private void updateUniformBias() {
        if (greedyShare == null) {
            return; // no chain was ever attached: no stage reads a block
        }
        MemorySegment common = null;
        if (attachedSamplers.size() >= 2) {
            for (Sampler s : attachedSamplers.values()) {
                MemorySegment entries = s.uniformBiasEntries();
                if (entries == null || (common != null && common.mismatch(entries) != -1)) {
                    common = null;
                    break;
                }
                common = entries;
            }
        }
        DeviceGreedy.setUniformBias(greedyShare, common);
    }

    /** The sampler attached to {@code sequence}, or null. */
    public Sampler attachedSampler(int sequence) {
        checkOpen();
        return attachedSamplers.get(sequence);
    }

    /** This context's block for {@link DeviceGreedy}'s argmax of all rows, shared by the stages of the chains attached to it. */
    MemorySegment greedyShare() {
        checkOpen();
        if (greedyShare == null) {
            greedyShare = DeviceGreedy.newShare(shared);
        }
        return greedyShare;
    }

    /** The token a chain sampled on the device for batch position {@code index} of the last decode ({@link #pickedOnDevice}). */
    int sampledToken(int index) {
        MemorySegment h = checkOpen();
        checkOutput(index, "llama_get_sampled_token_ith");
        if (deviceChains[index] == null) {
            throw new InvalidInputException("llama_get_sampled_token_ith", "batch position " + index
                    + " belongs to no sequence with a sampler attached at the last decode");
        }
        int token = llama_get_sampled_token_ith(h, index);
        if (token < 0 || token >= vocabSize) {
            throw new LlamaException("llama_get_sampled_token_ith", "no token was sampled on the device for batch position "
                    + index + " (" + token + "): " + LogBridge.takeLastError());
        }
        return token;
    }

    /** Frees the context. Idempotent; on the owning thread only. */
    @Override
    public void close() {
        if (handle == null) {
            return;
        }
        checkThread();
        for (Sampler s : attachedSamplers.values()) {
            s.attached(null, -1); // llama_free drops its references; the chains stay the caller's
        }
        attachedSamplers.clear();
        MemorySegment h = handle;
        handle = null;
        memory = null;
        llama_free(h);
        shared.close();
        model.contextClosed();
    }
}
