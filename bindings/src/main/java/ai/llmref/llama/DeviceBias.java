package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.ggml_cont;
import static ai.llmref.bindings.ffi.llama_h.ggml_nelements;
import static ai.llmref.bindings.ffi.llama_h.ggml_scale_bias;
import static ai.llmref.bindings.ffi.llama_h.ggml_set_1d_inplace;
import static ai.llmref.bindings.ffi.llama_h.ggml_set_2d_inplace;
import static ai.llmref.bindings.ffi.llama_h.ggml_view_1d;
import static ai.llmref.bindings.ffi.llama_h.ggml_view_2d;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init;

import ai.llmref.bindings.ffi.ggml_tensor;
import ai.llmref.bindings.ffi.llama_sampler;
import ai.llmref.bindings.ffi.llama_sampler_data;
import ai.llmref.bindings.ffi.llama_token_data;
import ai.llmref.bindings.ffi.llama_token_data_array;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The logit-bias stage of a greedy chain, as a llama.cpp sampler of this project's own (a
 * {@code llama_sampler_i} whose functions are upcalls), so that a chain attached for backend
 * sampling ({@link LlamaContext#attachSampler}) biases its sequence's logits without what llama.cpp's
 * own logit-bias stage costs on a device.
 *
 * <p>llama.cpp's stage ({@code llama_sampler_logit_bias_backend_*} in the pinned tree) adds to the
 * graph, for each sequence, a fill of a whole-vocabulary tensor, a {@code set_rows} of the biases
 * into it and an add of that tensor to the logits, with two input tensors (the tokens and the
 * biases) that it copies with a synchronous {@code ggml_backend_tensor_set} before every step; graph
 * inputs are placed on the CPU backend, so on a GPU each is also a copy at a split. This stage
 * changes only the biased logits: per biased token, a one-element view of the row, {@code
 * ggml_scale_bias(view, 1, bias)} (logit + bias, the same float as the host's addition) and a
 * {@code ggml_set_1d_inplace} of that value back into the row. The biases travel in the operations'
 * parameters, so the stage has no inputs and nothing to copy before a step, and the graph keeps its
 * shape from step to step (llama.cpp reuses it).
 *
 * <p>Uniform mode: when every chain attached to a context has this stage with the same biases (at
 * least two chains, see {@link LlamaContext#attachSampler}), the context's block ({@link
 * DeviceGreedy#newShare}) carries that list, and {@link DeviceGreedy} biases the biased tokens'
 * columns of the whole logits tensor once, for all rows, before its one argmax ({@link #biasColumns}).
 * Then this stage leaves a row untouched where that argmax will pick the row's token (an unmodified
 * row view, {@link DeviceGreedy#sharedRow}) and the block's list is its own; any other row (a probe
 * graph's plain tensor, a list that differs) it biases as above.
 *
 * <p>On the host ({@code apply}, which llama.cpp calls when the chain is not attached) it adds each
 * bias to its token's candidate, as llama.cpp's stage does. The stage's state is a block of native
 * memory, {@code [int count][int failed][address share][count x (int token, float bias)]} (the
 * entries sorted by token, {@link #entries}; {@code share} the block of the context the chain is
 * attached to, or NULL), in an arena the {@link Sampler} that created it keeps for as long as it lives
 * (its chain is freed first); the upcalls only read it. An upcall must not throw into native code: a failure is recorded in the block's
 * {@code failed} word, and {@link Sampler#sample} reports it instead of a token.
 */
final class DeviceBias {
    /**
     * Most biased tokens a stage takes. Each costs the device two one-element operations per
     * sequence and step (and three tensors of llama.cpp's graph budget, which it sizes from a probe
     * graph of at most 2048 nodes); llama.cpp's stage costs three whole-vocabulary operations and
     * two input copies however many tokens it biases, so longer lists go to it.
     */
    static final int MAX_TOKENS = 16;
    private static final long HEADER = 16;
    private static final long SHARE = 8;
    /** Bytes of one (int token, float bias) entry. */
    static final long ENTRY = 8;
    private static final MemorySegment NAME = Arena.global().allocateFrom("llmref-logit-bias");
    /** The interface, with its upcall stubs ({@link OwnStages#iface}). */
    private static final MemorySegment IFACE = OwnStages.iface(NAME, DeviceBias::applyOnHost, DeviceBias::applyOnDevice, null);

    private DeviceBias() {}

    /** A new stage for these biases (each token once, within the vocabulary, at most MAX_TOKENS), its state in {@code arena}. */
    static MemorySegment create(int[] tokens, float[] biases, Arena arena) {
        if (tokens.length > MAX_TOKENS || tokens.length != biases.length) {
            throw new IllegalArgumentException(tokens.length + " biased tokens: at most " + MAX_TOKENS + ", one bias each");
        }
        MemorySegment state = arena.allocate(HEADER + ENTRY * tokens.length, 8);
        state.fill((byte) 0);
        state.set(ValueLayout.JAVA_INT, 0, tokens.length);
        // sorted by token (each token is biased once, so the order changes no sum): equal lists are equal bytes
        Integer[] order = new Integer[tokens.length];
        Arrays.setAll(order, i -> i);
        Arrays.sort(order, (a, b) -> Integer.compare(tokens[a], tokens[b]));
        for (int i = 0; i < tokens.length; i++) {
            state.set(ValueLayout.JAVA_INT, HEADER + ENTRY * i, tokens[order[i]]);
            state.set(ValueLayout.JAVA_FLOAT, HEADER + ENTRY * i + 4, biases[order[i]]);
        }
        return llama_sampler_init(IFACE, state);
    }

    /** The stage's biases, {@code count x (int token, float bias)} sorted by token, as a slice of its state (read only). */
    static MemorySegment entries(MemorySegment stage) {
        return entriesOf(state(stage));
    }

    private static MemorySegment entriesOf(MemorySegment state) {
        return state.asSlice(HEADER, state.byteSize() - HEADER);
    }

    /**
     * Points the stage at the block of the context its chain is attached to ({@link
     * DeviceGreedy#newShare}), or at none ({@code MemorySegment.NULL}) when it is detached.
     */
    static void share(MemorySegment stage, MemorySegment share) {
        state(stage).set(ValueLayout.ADDRESS, SHARE, share);
    }

    /** The stage's name, as llama.cpp reports it. */
    static String name() {
        return NAME.getString(0);
    }

    /** True when one of the stage's upcalls failed (the bias may then be missing from a pick). */
    static boolean failed(MemorySegment stage) {
        return state(stage).get(ValueLayout.JAVA_INT, 4) != 0;
    }

    /** Records a failure as an upcall would (for tests of how it is reported). */
    static void markFailed(MemorySegment stage) {
        state(stage).set(ValueLayout.JAVA_INT, 4, 1);
    }

    private static MemorySegment state(MemorySegment stage) {
        MemorySegment s = llama_sampler.ctx(stage.reinterpret(llama_sampler.layout().byteSize()));
        int count = s.reinterpret(HEADER).get(ValueLayout.JAVA_INT, 0);
        return s.reinterpret(HEADER + ENTRY * count);
    }

    /** Upcall ({@code apply}): adds each bias to its token's candidate in {@code cur_p}. */
    private static void applyOnHost(MemorySegment stage, MemorySegment candidates) {
        MemorySegment state = null;
        try {
            state = state(stage);
            MemorySegment array = candidates.reinterpret(llama_token_data_array.layout().byteSize());
            long size = llama_token_data_array.size(array);
            long el = llama_token_data.layout().byteSize();
            MemorySegment data = llama_token_data_array.data(array).reinterpret(size * el);
            int count = state.get(ValueLayout.JAVA_INT, 0);
            for (int b = 0; b < count; b++) {
                int token = state.get(ValueLayout.JAVA_INT, HEADER + ENTRY * b);
                float bias = state.get(ValueLayout.JAVA_FLOAT, HEADER + ENTRY * b + 4);
                long at = token < size && llama_token_data.id(data.asSlice(token * el, el)) == token ? token : find(data, size, el, token);
                if (at >= 0) {
                    MemorySegment c = data.asSlice(at * el, el);
                    llama_token_data.logit(c, llama_token_data.logit(c) + bias);
                }
            }
        } catch (Throwable t) {
            fail(state, "apply", t);
        }
    }

    private static long find(MemorySegment data, long size, long el, int token) {
        for (long i = 0; i < size; i++) {
            if (llama_token_data.id(data.asSlice(i * el, el)) == token) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Upcall ({@code backend_apply}): while llama.cpp builds the step's graph, replaces the row's
     * logits by the row with each biased logit changed in place ({@link #biasRow}), except in
     * uniform mode where {@link DeviceGreedy} biases the row with all others (see the class comment):
     * then it leaves the row as it is.
     */
    private static void applyOnDevice(MemorySegment stage, MemorySegment ctx, MemorySegment graph, MemorySegment data) {
        MemorySegment state = null;
        try {
            state = state(stage);
            MemorySegment d = data.reinterpret(llama_sampler_data.layout().byteSize());
            MemorySegment row = llama_sampler_data.logits(d);
            MemorySegment entries = entriesOf(state);
            if (!DeviceGreedy.biasesOnce(state.get(ValueLayout.ADDRESS, SHARE), entries, row)) {
                llama_sampler_data.logits(d, biasRow(ctx, row, entries));
            }
        } catch (Throwable t) {
            fail(state, "backend_apply", t);
        }
    }

    /**
     * The row with each bias of {@code entries} ({@code (int token, float bias)} pairs)
     * added in place: per token a one-element view, {@code ggml_scale_bias(view, 1, bias)} and a
     * {@code ggml_set_1d_inplace} back into the row. llama.cpp also builds a probe graph whose logits
     * have 128 Ki elements; a token beyond a probe's row is placed at 0 so that the probe counts the
     * same number of operations as the real graph.
     */
    static MemorySegment biasRow(MemorySegment ctx, MemorySegment row, MemorySegment entries) {
        long n = ggml_nelements(row);
        for (long b = 0; b < entries.byteSize() / ENTRY; b++) {
            int token = entries.get(ValueLayout.JAVA_INT, ENTRY * b);
            float bias = entries.get(ValueLayout.JAVA_FLOAT, ENTRY * b + 4);
            long offset = (token < n ? token : 0) * (long) Float.BYTES;
            MemorySegment biased = ggml_scale_bias(ctx, ggml_view_1d(ctx, row, 1, offset), 1.0f, bias);
            row = ggml_set_1d_inplace(ctx, row, biased, offset);
        }
        return row;
    }

    /**
     * The matrix {@code all} ({@code [n_vocab, rows]}, contiguous F32) with each bias of {@code
     * entries} added in place to its token's column, in every row: per token a
     * strided view of the column ({@code ggml_view_2d}, one element per row), a {@code ggml_cont} of
     * it, {@code ggml_scale_bias(.., 1, bias)} and a {@code ggml_set_2d_inplace} back into the matrix.
     * The {@code ggml_cont} is needed: CUDA's scale kernel reads its input as contiguous and llama.cpp's
     * op check does not refuse a strided one, so a scale of the view itself would read wrong values on a
     * GPU (the CPU backend would be right); CUDA's set needs its operands contiguous, which the matrix
     * and the copied column are. A token beyond the rows is placed at 0, as in {@link #biasRow}.
     */
    static MemorySegment biasColumns(MemorySegment ctx, MemorySegment all, MemorySegment entries) {
        MemorySegment t = all.reinterpret(ggml_tensor.layout().byteSize());
        long n = ggml_tensor.ne(t, 0);
        long rows = ggml_tensor.ne(t, 1);
        long stride = ggml_tensor.nb(t, 1);
        MemorySegment x = all;
        for (long b = 0; b < entries.byteSize() / ENTRY; b++) {
            int token = entries.get(ValueLayout.JAVA_INT, ENTRY * b);
            float bias = entries.get(ValueLayout.JAVA_FLOAT, ENTRY * b + 4);
            long offset = (token < n ? token : 0) * (long) Float.BYTES;
            MemorySegment column = ggml_cont(ctx, ggml_view_2d(ctx, x, 1, rows, stride, offset));
            x = ggml_set_2d_inplace(ctx, x, ggml_scale_bias(ctx, column, 1.0f, bias), stride, offset);
        }
        return x;
    }

    private static void fail(MemorySegment state, String where, Throwable t) {
        OwnStages.fail(state, 4, "logit-bias", where, t);
    }
}
