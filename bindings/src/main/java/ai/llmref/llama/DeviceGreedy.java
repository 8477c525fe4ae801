package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.GGML_OP_VIEW;
import static ai.llmref.bindings.ffi.llama_h.GGML_TYPE_F32;
import static ai.llmref.bindings.ffi.llama_h.ggml_argmax;
import static ai.llmref.bindings.ffi.llama_h.ggml_view_1d;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init;

import ai.llmref.bindings.ffi.ggml_tensor;
import ai.llmref.bindings.ffi.llama_sampler;
import ai.llmref.bindings.ffi.llama_sampler_data;
import ai.llmref.bindings.ffi.llama_token_data;
import ai.llmref.bindings.ffi.llama_token_data_array;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The greedy stage of a greedy chain, as a llama.cpp sampler of this project's own (a
 * {@code llama_sampler_i} whose functions are upcalls), so that the chains attached for backend
 * sampling ({@link LlamaContext#attachSampler}) pick their tokens with one argmax for all rows.
 *
 * <p>llama.cpp's greedy stage ({@code llama_sampler_greedy_backend_apply} in the pinned tree) adds a
 * {@code ggml_argmax} of its own row to the graph for every sequence: with 64 streams, 64 argmax
 * operations, each a single-block kernel over the whole vocabulary on a GPU, one after the other.
 * {@code llm_graph_context::build_sampling} hands every stage a one-dimensional view of one row of
 * the same padded logits tensor ({@code logits_t}, {@code [n_vocab, n_rows + 1]}). This stage adds
 * {@code ggml_argmax(logits_t)} (one result per row, one operation for all rows) the first time a
 * graph asks and, for each row, a one-element view of that result at the row's index. The result is
 * cached in a block that belongs to the {@link LlamaContext} the chain is attached to ({@link
 * #newShare}, handed to the stage by {@link #share}): {@code [ggml_context*, logits_t*, argmax*]},
 * then the uniform bias ({@code int count}, 4 bytes unused, up to {@link DeviceBias#MAX_TOKENS}
 * {@code (int token, float bias)} sorted by token). {@code backend_reset}, which llama.cpp calls on
 * every attached chain before it builds a graph's sampling, clears the three pointers: ggml builds the
 * next graph in the same context memory, so a stale entry could match the next graph's tensors.
 *
 * <p>Uniform bias: the {@link LlamaContext} writes the count and list on every attach and detach
 * ({@link #setUniformBias}): the list when at least two chains are attached and all are {@link
 * DeviceBias} with the same list and this stage, 0 when they are all this stage alone, -1 otherwise.
 * With a list, the argmax of all rows is taken over {@code logits_t} with the list's biases added
 * once to every row ({@link DeviceBias#biasColumns}), and each chain's {@link DeviceBias} leaves its
 * row untouched where this stage takes that shared path ({@link #biasesOnce}); where it does not
 * (a row that is no unmodified view), the bias stage biased the row itself. One chain alone gets no
 * uniform mode: its per-row path costs no more, and llama.cpp sizes the graph from each chain's
 * probe ({@code 3 x count + 2} nodes), which the shared path ({@code 4 x count + 2}) would exceed. The
 * block is written only between decodes, on the thread that decodes, and read only while a graph is
 * built; a graph llama.cpp reuses carries the biases in its operations' parameters, and an attach or
 * detach makes llama.cpp build the next graph anew.
 *
 * <p>The shared argmax is used only when the row is an unmodified view of a contiguous F32 matrix
 * (op {@code GGML_OP_VIEW}, {@code src[0]} and {@code view_src} the same tensor, a whole row at a
 * row's offset). When an earlier stage changed the row ({@link DeviceBias}'s in-place sets, llama.cpp's
 * logit-bias add), the argmax of all rows would not see the change, and the stage takes the argmax of
 * the row alone, as llama.cpp's greedy stage does. So it does for llama.cpp's probe graphs (a
 * plain 128 Ki-element tensor, see {@link DeviceBias}), for a chain attached to a context by other
 * means than {@link LlamaContext#attachSampler} (no block), and it handles an inactive chain's dummy
 * row (row 0) like any other.
 *
 * <p>After its pick the stage sets {@code data->logits} to NULL. {@code build_sampling} keeps
 * whatever a chain leaves there as an output ({@code t_sampled_logits}), and after the graph has run
 * {@code llama_decode} copies each such row to the host ({@code sampling.logits}, for chains that
 * finish on the host): with llama.cpp's greedy stage, which leaves the row, a whole row of logits per
 * sequence and step (512 KB at a 128k vocabulary), that nothing reads once the token is picked. So
 * for the chains this stage ends, only the token comes back ({@code llama_get_sampled_logits_ith}
 * answers NULL for their rows).
 *
 * <p>On the host ({@code apply}, which llama.cpp calls when the chain is not attached) it selects the
 * first maximum, as llama.cpp's greedy stage does; {@link Sampler} takes greedy picks on the host
 * without calling the chain at all. The stage's state is a block of native memory, {@code [int
 * failed][int unused][address share]}, in an arena the {@link Sampler} that created it keeps for as
 * long as it lives. An upcall must not throw into native code: a failure is recorded in the block's
 * {@code failed} word, and {@link Sampler#sample} reports it instead of a token.
 */
final class DeviceGreedy {
    private static final long STATE = 16;
    private static final long FAILED = 0;
    private static final long SHARE = 8;
    /** The per-context block: the ggml context, the logits tensor and the argmax of all its rows, then the uniform bias. */
    private static final long SHARE_CTX = 0;
    private static final long SHARE_LOGITS = ValueLayout.ADDRESS.byteSize();
    private static final long SHARE_ARGMAX = 2 * ValueLayout.ADDRESS.byteSize();
    private static final long SHARE_POINTERS = 3 * ValueLayout.ADDRESS.byteSize();
    private static final long SHARE_BIAS_COUNT = SHARE_POINTERS;
    private static final long SHARE_BIASES = SHARE_POINTERS + 8;
    private static final long SHARE_SIZE = SHARE_BIASES + DeviceBias.MAX_TOKENS * DeviceBias.ENTRY;
    private static final long TENSOR = ggml_tensor.layout().byteSize();
    private static final MemorySegment NAME = Arena.global().allocateFrom("llmref-greedy");
    /** The interface, with its upcall stubs ({@link OwnStages#iface}). */
    private static final MemorySegment IFACE = OwnStages.iface(NAME, DeviceGreedy::applyOnHost, DeviceGreedy::applyOnDevice, DeviceGreedy::resetShare);

    private DeviceGreedy() {}

    /** A new stage, its state in {@code arena}, sharing nothing until {@link #share}. */
    static MemorySegment create(Arena arena) {
        MemorySegment state = arena.allocate(STATE, 8);
        state.fill((byte) 0);
        return llama_sampler_init(IFACE, state);
    }

    /** A context's block for the shared argmax, cleared (uniform bias: none, 0), in the context's arena. */
    static MemorySegment newShare(Arena arena) {
        MemorySegment share = arena.allocate(SHARE_SIZE, 8);
        share.fill((byte) 0);
        return share;
    }

    /**
     * Writes a context's uniform bias into its block: {@code entries} ({@code (int token, float
     * bias)} sorted by token, at most {@link DeviceBias#MAX_TOKENS}) for all rows, or null for none
     * (-1: each chain biases its own rows); an empty list is 0 (no bias at all).
     */
    static void setUniformBias(MemorySegment share, MemorySegment entries) {
        MemorySegment block = share.reinterpret(SHARE_SIZE);
        block.set(ValueLayout.JAVA_INT, SHARE_BIAS_COUNT, -1); // the count last: never a count with another list
        block.asSlice(SHARE_BIASES).fill((byte) 0);
        if (entries == null) {
            return;
        }
        if (entries.byteSize() % DeviceBias.ENTRY != 0 || entries.byteSize() > SHARE_SIZE - SHARE_BIASES) {
            throw new IllegalArgumentException("a uniform bias of " + entries.byteSize() + " bytes");
        }
        MemorySegment.copy(entries, 0, block, SHARE_BIASES, entries.byteSize());
        block.set(ValueLayout.JAVA_INT, SHARE_BIAS_COUNT, (int) (entries.byteSize() / DeviceBias.ENTRY));
    }

    /** The block's uniform bias count: -1 none, 0 no bias, else the number of entries. */
    static int uniformBiasCount(MemorySegment share) {
        return share.reinterpret(SHARE_SIZE).get(ValueLayout.JAVA_INT, SHARE_BIAS_COUNT);
    }

    /**
     * True when {@link DeviceBias} with these {@code entries} must leave {@code row} untouched: the
     * block ({@code share}, possibly NULL) holds a uniform bias equal to {@code entries} and this
     * stage will take the row's token from the shared argmax, which adds those biases for all rows.
     */
    static boolean biasesOnce(MemorySegment share, MemorySegment entries, MemorySegment row) {
        if (share.equals(MemorySegment.NULL) || entries.byteSize() == 0) {
            return false;
        }
        MemorySegment block = share.reinterpret(SHARE_SIZE);
        int count = block.get(ValueLayout.JAVA_INT, SHARE_BIAS_COUNT);
        return count >= 1 && count * DeviceBias.ENTRY == entries.byteSize()
                && MemorySegment.mismatch(block, SHARE_BIASES, SHARE_BIASES + entries.byteSize(), entries, 0, entries.byteSize()) == -1
                && sharedRow(row) >= 0;
    }

    /**
     * Points the stage at a context's block ({@link #newShare}) when its chain is attached to that
     * context, or at none ({@code MemorySegment.NULL}) when it is detached: without a block each row
     * gets an argmax of its own.
     */
    static void share(MemorySegment stage, MemorySegment share) {
        state(stage).set(ValueLayout.ADDRESS, SHARE, share);
    }

    /** The stage's name, as llama.cpp reports it. */
    static String name() {
        return NAME.getString(0);
    }

    /** True when one of the stage's upcalls failed (a pick may then be missing or wrong). */
    static boolean failed(MemorySegment stage) {
        return state(stage).get(ValueLayout.JAVA_INT, FAILED) != 0;
    }

    /** Records a failure as an upcall would (for tests of how it is reported). */
    static void markFailed(MemorySegment stage) {
        state(stage).set(ValueLayout.JAVA_INT, FAILED, 1);
    }

    private static MemorySegment state(MemorySegment stage) {
        return llama_sampler.ctx(stage.reinterpret(llama_sampler.layout().byteSize())).reinterpret(STATE);
    }

    /** Upcall ({@code apply}): selects the candidate with the largest logit, the first of equals, as llama.cpp's greedy. */
    private static void applyOnHost(MemorySegment stage, MemorySegment candidates) {
        MemorySegment state = null;
        try {
            state = state(stage);
            MemorySegment array = candidates.reinterpret(llama_token_data_array.layout().byteSize());
            long size = llama_token_data_array.size(array);
            if (size <= 0) {
                throw new IllegalStateException("no candidates to select from");
            }
            long el = llama_token_data.layout().byteSize();
            MemorySegment data = llama_token_data_array.data(array).reinterpret(size * el);
            long logit = llama_token_data.logit$offset();
            long selected = 0;
            float max = data.get(ValueLayout.JAVA_FLOAT, logit);
            for (long i = 1; i < size; i++) {
                float v = data.get(ValueLayout.JAVA_FLOAT, i * el + logit);
                if (v > max) {
                    max = v;
                    selected = i;
                }
            }
            llama_token_data_array.selected(array, selected);
        } catch (Throwable t) {
            fail(state, "apply", t);
        }
    }

    /** Upcall ({@code backend_reset}): forgets the argmax cached for the last graph built. */
    private static void resetShare(MemorySegment stage) {
        MemorySegment state = null;
        try {
            state = state(stage);
            MemorySegment share = state.get(ValueLayout.ADDRESS, SHARE);
            if (!share.equals(MemorySegment.NULL)) {
                share.reinterpret(SHARE_SIZE).asSlice(0, SHARE_POINTERS).fill((byte) 0); // not the uniform bias
            }
        } catch (Throwable t) {
            fail(state, "backend_reset", t);
        }
    }

    /**
     * Upcall ({@code backend_apply}): while llama.cpp builds the step's graph, sets the row's pick to
     * a one-element view of the argmax of all rows where the row is an unmodified row of the logits,
     * and to the argmax of the row alone otherwise; then clears the row ({@code data->logits}). A row
     * that {@link DeviceBias} left unbiased ({@link #biasesOnce}) always takes the shared path (both
     * stages decide with {@link #sharedRow}), whose argmax adds the uniform bias to every row.
     */
    private static void applyOnDevice(MemorySegment stage, MemorySegment ctx, MemorySegment graph, MemorySegment data) {
        MemorySegment state = null;
        try {
            state = state(stage);
            MemorySegment d = data.reinterpret(llama_sampler_data.layout().byteSize());
            MemorySegment row = llama_sampler_data.logits(d);
            if (row.equals(MemorySegment.NULL)) {
                throw new IllegalStateException("llama.cpp passed no logits to sample from");
            }
            MemorySegment share = state.get(ValueLayout.ADDRESS, SHARE);
            long index = share.equals(MemorySegment.NULL) ? -1 : sharedRow(row);
            MemorySegment picked;
            if (index >= 0) {
                picked = fromShared(share.reinterpret(SHARE_SIZE), ctx, row, index);
            } else {
                // sharedRow < 0, so DeviceBias biased the row itself (biasesOnce was false): nothing to add here
                picked = ggml_argmax(ctx, row);
            }
            llama_sampler_data.sampled(d, picked);
            // Greedy ends the chain: nothing reads the row after the pick, and a row left in data->logits
            // is an output that llama.cpp copies to the host after every step (see the class comment).
            llama_sampler_data.logits(d, MemorySegment.NULL);
        } catch (Throwable t) {
            fail(state, "backend_apply", t);
        }
    }

    /**
     * The row's index in the matrix it views, or -1 when it is not an unmodified whole row of a
     * contiguous F32 matrix (op {@code GGML_OP_VIEW}, {@code src[0]} and {@code view_src} the same).
     */
    static long sharedRow(MemorySegment row) {
        if (row.equals(MemorySegment.NULL)) {
            return -1;
        }
        MemorySegment view = row.reinterpret(TENSOR);
        if (ggml_tensor.op(view) != GGML_OP_VIEW()) {
            return -1;
        }
        MemorySegment src = ggml_tensor.view_src(view);
        if (src.equals(MemorySegment.NULL) || !src.equals(ggml_tensor.src(view, 0))) {
            return -1;
        }
        MemorySegment all = src.reinterpret(TENSOR);
        long n = ggml_tensor.ne(all, 0);
        long rows = ggml_tensor.ne(all, 1);
        long stride = ggml_tensor.nb(all, 1);
        boolean matrix = ggml_tensor.type(all) == GGML_TYPE_F32() && ggml_tensor.ne(all, 2) == 1 && ggml_tensor.ne(all, 3) == 1
                && ggml_tensor.nb(all, 0) == Float.BYTES && stride == n * Float.BYTES;
        boolean wholeRow = ggml_tensor.type(view) == GGML_TYPE_F32() && ggml_tensor.ne(view, 0) == n && ggml_tensor.ne(view, 1) == 1
                && ggml_tensor.ne(view, 2) == 1 && ggml_tensor.ne(view, 3) == 1 && ggml_tensor.nb(view, 0) == Float.BYTES;
        long offset = ggml_tensor.view_offs(view);
        if (!matrix || !wholeRow || n <= 0 || offset < 0 || offset % stride != 0 || offset / stride >= rows) {
            return -1;
        }
        return offset / stride;
    }

    /**
     * Row {@code index}'s pick as a one-element view of the argmax of all rows of the matrix the row
     * views, built at the graph's first such row: over the matrix with the block's uniform bias added
     * to every row when it has one.
     */
    private static MemorySegment fromShared(MemorySegment share, MemorySegment ctx, MemorySegment row, long index) {
        MemorySegment src = ggml_tensor.view_src(row.reinterpret(TENSOR));
        MemorySegment argmax = share.get(ValueLayout.ADDRESS, SHARE_ARGMAX);
        if (argmax.equals(MemorySegment.NULL) || !share.get(ValueLayout.ADDRESS, SHARE_CTX).equals(ctx)
                || !share.get(ValueLayout.ADDRESS, SHARE_LOGITS).equals(src)) {
            int count = share.get(ValueLayout.JAVA_INT, SHARE_BIAS_COUNT);
            MemorySegment logits = count >= 1
                    ? DeviceBias.biasColumns(ctx, src, share.asSlice(SHARE_BIASES, count * DeviceBias.ENTRY)) : src;
            argmax = ggml_argmax(ctx, logits); // I32, one per row
            share.set(ValueLayout.ADDRESS, SHARE_CTX, ctx);
            share.set(ValueLayout.ADDRESS, SHARE_LOGITS, src);
            share.set(ValueLayout.ADDRESS, SHARE_ARGMAX, argmax);
        }
        return ggml_view_1d(ctx, argmax, 1, index * Integer.BYTES);
    }

    private static void fail(MemorySegment state, String where, Throwable t) {
        OwnStages.fail(state, FAILED, "greedy", where, t);
    }
}
