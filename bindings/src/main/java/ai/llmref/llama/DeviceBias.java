package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.ggml_nelements;
import static ai.llmref.bindings.ffi.llama_h.ggml_scale_bias;
import static ai.llmref.bindings.ffi.llama_h.ggml_set_1d_inplace;
import static ai.llmref.bindings.ffi.llama_h.ggml_view_1d;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init;

import ai.llmref.bindings.ffi.llama_sampler;
import ai.llmref.bindings.ffi.llama_sampler_data;
import ai.llmref.bindings.ffi.llama_token_data;
import ai.llmref.bindings.ffi.llama_token_data_array;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

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
 * <p>On the host ({@code apply}, which llama.cpp calls when the chain is not attached) it adds each
 * bias to its token's candidate, as llama.cpp's stage does. The stage's state is a block of native
 * memory, {@code [int count][int failed][count x (int token, float bias)]}, in an arena the
 * {@link Sampler} that created it keeps for as long as it lives (its chain is freed first); the upcalls
 * only read it. An upcall must not throw into native code: a failure is recorded in the block's
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
    private static final long HEADER = 8;
    private static final long ENTRY = 8;
    private static final MemorySegment NAME = Arena.global().allocateFrom("llmref-logit-bias");
    /** The interface, with its upcall stubs ({@link OwnStages#iface}). */
    private static final MemorySegment IFACE = OwnStages.iface(NAME, DeviceBias::applyOnHost, DeviceBias::applyOnDevice, null);

    private DeviceBias() {}

    /** A new stage for these biases (each token once, within the vocabulary, at most MAX_TOKENS), its state in {@code arena}. */
    static MemorySegment create(int[] tokens, float[] biases, Arena arena) {
        if (tokens.length > MAX_TOKENS || tokens.length != biases.length) {
            throw new IllegalArgumentException(tokens.length + " biased tokens: at most " + MAX_TOKENS + ", one bias each");
        }
        MemorySegment state = arena.allocate(HEADER + ENTRY * tokens.length, 4);
        state.set(ValueLayout.JAVA_INT, 0, tokens.length);
        state.set(ValueLayout.JAVA_INT, 4, 0);
        for (int i = 0; i < tokens.length; i++) {
            state.set(ValueLayout.JAVA_INT, HEADER + ENTRY * i, tokens[i]);
            state.set(ValueLayout.JAVA_FLOAT, HEADER + ENTRY * i + 4, biases[i]);
        }
        return llama_sampler_init(IFACE, state);
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
     * logits by the row with each biased logit changed in place. llama.cpp also calls this on a
     * probe graph whose logits have 128 Ki elements; a token beyond a probe's row is placed at 0 so
     * that the probe counts the same number of operations as the real graph.
     */
    private static void applyOnDevice(MemorySegment stage, MemorySegment ctx, MemorySegment graph, MemorySegment data) {
        MemorySegment state = null;
        try {
            state = state(stage);
            MemorySegment d = data.reinterpret(llama_sampler_data.layout().byteSize());
            MemorySegment row = llama_sampler_data.logits(d);
            long n = ggml_nelements(row);
            int count = state.get(ValueLayout.JAVA_INT, 0);
            for (int b = 0; b < count; b++) {
                int token = state.get(ValueLayout.JAVA_INT, HEADER + ENTRY * b);
                float bias = state.get(ValueLayout.JAVA_FLOAT, HEADER + ENTRY * b + 4);
                long offset = (token < n ? token : 0) * (long) Float.BYTES;
                MemorySegment biased = ggml_scale_bias(ctx, ggml_view_1d(ctx, row, 1, offset), 1.0f, bias);
                row = ggml_set_1d_inplace(ctx, row, biased, offset);
            }
            llama_sampler_data.logits(d, row);
        } catch (Throwable t) {
            fail(state, "backend_apply", t);
        }
    }

    private static void fail(MemorySegment state, String where, Throwable t) {
        OwnStages.fail(state, 4, "logit-bias", where, t);
    }
}
