package ai.llmref.llama;

import static ai.llmref.llama.TestModels.argmax;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import static ai.llmref.bindings.ffi.llama_h.ggml_cont;
import static ai.llmref.bindings.ffi.llama_h.llama_get_sampled_logits_count_ith;
import static ai.llmref.bindings.ffi.llama_h.llama_get_sampled_logits_ith;
import static ai.llmref.bindings.ffi.llama_h.llama_get_sampled_token_ith;
import static ai.llmref.bindings.ffi.llama_h.llama_perf_context;
import static ai.llmref.bindings.ffi.llama_h.llama_perf_context_reset;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_apply;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_add;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_default_params;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_get;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_init;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_free;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init_greedy;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_name;
import static ai.llmref.bindings.ffi.llama_h.llama_set_sampler;

import ai.llmref.bindings.ffi.llama_perf_context_data;
import ai.llmref.bindings.ffi.llama_sampler;
import ai.llmref.bindings.ffi.llama_sampler_data;
import ai.llmref.bindings.ffi.llama_sampler_i;
import ai.llmref.bindings.ffi.llama_token_data_array;
import ai.llmref.llama.internal.LogBridge;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The greedy stage of this project's own ({@link DeviceGreedy}): attached for backend sampling, the
 * rows of a graph share one argmax, and each sequence's pick is still the argmax of its own logits.
 * Every test decodes the same batches in a second context that samples nothing on the device, and
 * compares each device pick with the first maximum of that context's logits for the same output.
 */
class DeviceGreedyTest extends StoriesModelTest {
    private static final String[] PROMPTS = {
        "Once upon a time", "Tom had a big", "The cat sat on", "Lily and Ben went to the", "One day, a little bird", "The sun was"};

    /** Two contexts fed the same batches: {@code device} samples the attached sequences there, {@code host} keeps every logit. */
    private static final class Lockstep implements AutoCloseable {
        final int n;
        final LlamaContext device;
        final LlamaContext host;
        final Batch deviceBatch;
        final Batch hostBatch;
        final int[] pos;
        final int[] last;
        final int[] index;
        final boolean[] active;

        Lockstep(int n) {
            this.n = n;
            device = model.newContext(TestModels.small(n));
            host = model.newContext(TestModels.small(n));
            deviceBatch = device.newBatch(256);
            hostBatch = host.newBatch(256);
            pos = new int[n];
            last = new int[n];
            index = new int[n];
            active = new boolean[n];
        }

        /** Every sequence's prompt in one batch, the last token of each an output. */
        void prompts() {
            deviceBatch.clear();
            hostBatch.clear();
            for (int s = 0; s < n; s++) {
                int[] prompt = model.vocabulary().tokenize(PROMPTS[s % PROMPTS.length], true, false);
                for (int i = 0; i < prompt.length; i++) {
                    if (i == prompt.length - 1) {
                        index[s] = deviceBatch.size();
                    }
                    deviceBatch.add(prompt[i], i, s, i == prompt.length - 1);
                    hostBatch.add(prompt[i], i, s, i == prompt.length - 1);
                }
                pos[s] = prompt.length;
                active[s] = true;
            }
            decode();
        }

        /** One token for each sequence {@code take} accepts (its last pick), in sequence order. */
        void step(IntFunction<Boolean> take) {
            deviceBatch.clear();
            hostBatch.clear();
            for (int s = 0; s < n; s++) {
                active[s] = take.apply(s);
                if (active[s]) {
                    index[s] = deviceBatch.size();
                    deviceBatch.add(last[s], pos[s], s, true);
                    hostBatch.add(last[s], pos[s]++, s, true);
                }
            }
            decode();
        }

        private void decode() {
            device.decode(deviceBatch);
            host.decode(hostBatch);
        }

        /** Sequence s's logits in the host context, with {@code biases} (token, bias pairs) added. */
        float[] hostLogits(int s, float... biases) {
            float[] logits = host.logits(index[s]);
            for (int i = 0; i < biases.length; i += 2) {
                logits[(int) biases[i]] += biases[i + 1];
            }
            return logits;
        }

        int reused(Arena arena) {
            return llama_perf_context_data.n_reused(llama_perf_context(arena, device.checkOpen()));
        }

        @Override
        public void close() {
            deviceBatch.close();
            hostBatch.close();
            device.close();
            host.close();
        }
    }

    private static String stageName(Sampler s, int i) {
        return llama_sampler_name(llama_sampler_chain_get(s.handle(), i)).getString(0);
    }

    private static void closeAll(Sampler[] chains) {
        for (Sampler c : chains) {
            if (c != null) {
                c.close();
            }
        }
    }

    @Test
    void everySequencesPickIsTheArgmaxOfItsOwnLogitsOverManySteps() {
        int n = PROMPTS.length;
        int steps = 40;
        Sampler[] chains = new Sampler[n];
        try (Lockstep run = new Lockstep(n); Arena arena = Arena.ofConfined()) {
            for (int s = 0; s < n; s++) {
                chains[s] = Sampler.greedy(model.vocabulary());
                assertThat(stageName(chains[s], 0)).isEqualTo(DeviceGreedy.name());
                assertThat(run.device.attachSampler(s, chains[s])).isTrue();
            }
            run.prompts();
            llama_perf_context_reset(run.device.checkOpen());
            int decodes = 0;
            int inactive = 0;
            for (int step = 0; step <= steps; step++) {
                if (step > 0) {
                    // every fourth step one sequence sits out: its chain samples the dummy row, and the graph is built anew
                    int out = step % 4 == 0 ? (step / 4) % n : -1;
                    run.step(s -> s != out);
                    decodes++;
                    inactive += out >= 0 ? 1 : 0;
                }
                for (int s = 0; s < n; s++) {
                    if (run.active[s]) {
                        int picked = chains[s].sample(run.device, run.index[s]);
                        assertThat(picked).as("step %d, sequence %d", step, s).isEqualTo(argmax(run.hostLogits(s)));
                        run.last[s] = picked;
                    }
                }
            }
            int reused = run.reused(arena);
            // the steps where a sequence sits out, and the steps after them, build their graphs anew; the others reuse the last
            assertThat(reused).as("graphs reused over %d decodes", decodes).isPositive().isGreaterThanOrEqualTo(decodes - 2 * inactive);
            assertThat(decodes - reused).as("graphs built anew when a sequence sits out or comes back").isGreaterThanOrEqualTo(inactive);
            for (Sampler c : chains) {
                assertThat(DeviceGreedy.failed(llama_sampler_chain_get(c.handle(), 0))).isFalse();
            }
        } finally {
            closeAll(chains);
        }
    }

    @Test
    void biasedAndUnbiasedSequencesShareABatch() {
        Vocabulary v = model.vocabulary();
        int n = PROMPTS.length;
        int steps = 24;
        Sampler[] chains = new Sampler[n];
        float[][] biases = new float[n][];
        int[] changed = new int[n];
        try (Lockstep run = new Lockstep(n)) {
            run.prompts(); // a first pass, for each sequence's unbiased first pick, which the biases below change
            int[] top = new int[n];
            for (int s = 0; s < n; s++) {
                top[s] = argmax(run.hostLogits(s));
            }
            run.device.clearMemory();
            run.host.clearMemory();
            for (int s = 0; s < n; s++) {
                Sampler.Builder b = Sampler.builder(v);
                if (s % 3 == 1) { // this project's bias stage (in-place sets on the row), then the argmax of the changed row
                    biases[s] = new float[] {top[s], Float.NEGATIVE_INFINITY, (top[s] + 3) % v.size(), 1.5f};
                } else if (s % 3 == 2) { // llama.cpp's bias stage (more than DeviceBias.MAX_TOKENS tokens: an add)
                    biases[s] = new float[2 * (DeviceBias.MAX_TOKENS + 1)];
                    for (int t = 0; t <= DeviceBias.MAX_TOKENS; t++) {
                        biases[s][2 * t] = (top[s] + t) % v.size();
                        biases[s][2 * t + 1] = t == 0 ? -50f : 0.25f;
                    }
                } else {
                    biases[s] = new float[0];
                }
                for (int i = 0; i < biases[s].length; i += 2) {
                    b.logitBias((int) biases[s][i], biases[s][i + 1]);
                }
                chains[s] = b.build();
                assertThat(stageName(chains[s], s % 3 == 0 ? 0 : 1)).isEqualTo(DeviceGreedy.name());
                assertThat(run.device.attachSampler(s, chains[s])).isTrue();
            }
            assertThat(stageName(chains[1], 0)).isEqualTo(DeviceBias.name());
            assertThat(stageName(chains[2], 0)).endsWith("logit-bias"); // "+logit-bias" once on the device
            run.prompts();
            for (int step = 0; step <= steps; step++) {
                if (step > 0) {
                    run.step(s -> true);
                }
                for (int s = 0; s < n; s++) {
                    int expected = argmax(run.hostLogits(s, biases[s]));
                    changed[s] += expected != argmax(run.hostLogits(s)) ? 1 : 0;
                    int picked = chains[s].sample(run.device, run.index[s]);
                    assertThat(picked).as("step %d, sequence %d", step, s).isEqualTo(expected);
                    run.last[s] = picked;
                }
            }
            for (int s = 0; s < n; s++) {
                // a pick the bias changed is one that an argmax of the unchanged rows would get wrong
                if (s % 3 == 0) {
                    assertThat(changed[s]).as("sequence %d has no bias", s).isZero();
                } else {
                    assertThat(changed[s]).as("picks the bias changed, sequence %d", s).isPositive();
                }
            }
        } finally {
            closeAll(chains);
        }
    }

    @Test
    void chainsAttachedAndDetachedBetweenStepsPickAsTheHost() {
        Vocabulary v = model.vocabulary();
        int n = 4;
        int steps = 30;
        Sampler[] chains = new Sampler[n];
        List<Sampler> retired = new ArrayList<>();
        try (Lockstep run = new Lockstep(n); Sampler hostGreedy = Sampler.greedy(v)) {
            run.prompts();
            for (int s = 0; s < n; s++) {
                run.last[s] = argmax(run.hostLogits(s));
            }
            for (int step = 0; step < steps; step++) {
                // sequence step % n changes sides each step: detached, it samples on the host; attached, a new chain
                int s0 = step % n;
                if (chains[s0] == null) {
                    chains[s0] = Sampler.greedy(v);
                    assertThat(run.device.attachSampler(s0, chains[s0])).isTrue();
                } else {
                    run.device.detachSampler(s0);
                    Sampler old = chains[s0];
                    assertThatThrownBy(() -> run.device.attachSampler(s0, old)).as("a chain is initialized for the device once")
                            .isInstanceOf(IllegalStateException.class);
                    retired.add(old);
                    chains[s0] = null;
                }
                run.step(s -> true);
                for (int s = 0; s < n; s++) {
                    int expected = argmax(run.hostLogits(s));
                    int picked = chains[s] != null ? chains[s].sample(run.device, run.index[s])
                            : hostGreedy.sample(run.device, run.index[s]);
                    assertThat(picked).as("step %d, sequence %d (%s)", step, s, chains[s] != null ? "device" : "host")
                            .isEqualTo(expected);
                    run.last[s] = picked;
                }
            }
        } finally {
            closeAll(chains);
            retired.forEach(Sampler::close);
        }
    }

    private static final Pattern NODES = Pattern.compile("graph.*: nodes = (\\d+)(?: / (\\d+))?, splits");

    /** The generation graph's node count that llama.cpp's reserve logs at the next decode. */
    private static int reservedNodes(Lockstep run) {
        run.device.clearMemory();
        run.deviceBatch.clear();
        for (int s = 0; s < run.n; s++) {
            run.deviceBatch.add(1, 0, s, true);
        }
        List<String> lines = new ArrayList<>();
        LogBridge.capturing(lines::add, () -> {
            run.device.decode(run.deviceBatch);
            return null;
        });
        for (String line : lines) {
            Matcher m = NODES.matcher(line);
            if (m.find()) {
                return Integer.parseInt(m.group(2) != null ? m.group(2) : m.group(1));
            }
        }
        throw new AssertionError("no reserve was logged while decoding: " + lines);
    }

    @Test
    void theRowsOfAGraphShareOneArgmax() {
        Vocabulary v = model.vocabulary();
        int n = 4;
        MemorySegment[] natives = new MemorySegment[n];
        Sampler[] ours = new Sampler[n];
        try (Lockstep run = new Lockstep(n); Arena arena = Arena.ofConfined()) {
            // llama.cpp's greedy stage: a view, a reshape and an argmax for every row
            for (int s = 0; s < n; s++) {
                natives[s] = llama_sampler_chain_init(llama_sampler_chain_default_params(arena));
                llama_sampler_chain_add(natives[s], llama_sampler_init_greedy());
                assertThat(llama_set_sampler(run.device.checkOpen(), s, natives[s])).isTrue();
            }
            int llamas = reservedNodes(run);
            for (int s = 0; s < n; s++) {
                llama_set_sampler(run.device.checkOpen(), s, MemorySegment.NULL);
            }
            int none = reservedNodes(run);
            for (int s = 0; s < n; s++) {
                ours[s] = Sampler.greedy(v);
                assertThat(run.device.attachSampler(s, ours[s])).isTrue();
            }
            int shared = reservedNodes(run);
            // With samplers the graph gains the padded logits (one node) and, for each (sampler, row) pair, the
            // chain's nodes: llama.cpp's greedy leaves the view of the row it was handed as an output too.
            int rows = (llamas - none - 1) / 3;
            assertThat(llamas - none - 1).as("llama.cpp's greedy: the row, a reshape and an argmax per row").isEqualTo(3 * rows);
            assertThat(rows).as("every sequence's sampler adds a row").isGreaterThanOrEqualTo(n);
            assertThat(shared - none - 1).as("this project's: a view of the shared argmax per row, one argmax for all")
                    .isEqualTo(rows + 1);
        } finally {
            for (MemorySegment c : natives) {
                if (c != null) {
                    llama_sampler_free(c);
                }
            }
            closeAll(ours);
        }
    }

    @Test
    void onlyTheTokenComesBackWhereLlamaCppsGreedyAlsoCopiesTheRow() {
        Vocabulary v = model.vocabulary();
        MemorySegment[] natives = new MemorySegment[2];
        try (LlamaContext ctx = model.newContext(TestModels.small(4)); Batch batch = ctx.newBatch(64);
                Sampler ours = Sampler.greedy(v); Sampler biased = Sampler.builder(v).logitBias(5, -3f).build();
                Arena arena = Arena.ofConfined()) {
            assertThat(ctx.attachSampler(0, ours) && ctx.attachSampler(1, biased)).isTrue();
            for (int s = 2; s < 4; s++) { // llama.cpp's greedy stage
                natives[s - 2] = llama_sampler_chain_init(llama_sampler_chain_default_params(arena));
                llama_sampler_chain_add(natives[s - 2], llama_sampler_init_greedy());
                assertThat(llama_set_sampler(ctx.checkOpen(), s, natives[s - 2])).isTrue();
            }
            int[] prompt = v.tokenize(PROMPTS[0], true, false);
            for (int s = 0; s < 4; s++) {
                for (int i = 0; i < prompt.length; i++) {
                    batch.add(prompt[i], i, s, i == prompt.length - 1);
                }
            }
            ctx.decode(batch);
            for (int s = 0; s < 4; s++) {
                int index = (s + 1) * prompt.length - 1;
                int count = llama_get_sampled_logits_count_ith(ctx.checkOpen(), index);
                MemorySegment row = llama_get_sampled_logits_ith(ctx.checkOpen(), index);
                assertThat(llama_get_sampled_token_ith(ctx.checkOpen(), index)).as("sequence %d's token", s).isBetween(0, v.size() - 1);
                if (s < 2) {
                    assertThat(row).as("this project's stage: no row copied for sequence %d", s).isEqualTo(MemorySegment.NULL);
                    assertThat(count).isZero();
                } else {
                    assertThat(row).as("llama.cpp's greedy: the row copied for sequence %d", s).isNotEqualTo(MemorySegment.NULL);
                    assertThat(count).isEqualTo(v.size());
                }
            }
            for (int s = 2; s < 4; s++) {
                llama_set_sampler(ctx.checkOpen(), s, MemorySegment.NULL);
            }
        } finally {
            for (MemorySegment c : natives) {
                if (c != null) {
                    llama_sampler_free(c);
                }
            }
        }
    }

    @Test
    void onTheHostTheFirstMaximumIsSelected() {
        try (Sampler greedy = Sampler.greedy(model.vocabulary()); Arena arena = Arena.ofConfined()) {
            MemorySegment array = TestModels.candidates(arena, new float[] {1f, 3f, -2f, 3f, 2.5f});
            llama_sampler_apply(greedy.handle(), array);
            assertThat(llama_token_data_array.selected(array)).isEqualTo(1);
            MemorySegment single = TestModels.candidates(arena, new float[] {Float.NEGATIVE_INFINITY});
            llama_sampler_apply(greedy.handle(), single);
            assertThat(llama_token_data_array.selected(single)).isZero();
            assertThat(DeviceGreedy.failed(llama_sampler_chain_get(greedy.handle(), 0))).isFalse();
        }
    }

    @Test
    void aFailedGreedyStageIsReportedInsteadOfAToken() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64);
                Sampler greedy = Sampler.greedy(v); Arena arena = Arena.ofConfined()) {
            assertThat(ctx.attachSampler(0, greedy)).isTrue();
            int[] prompt = v.tokenize(PROMPTS[0], true, false);
            ModelAndContextTest.fill(batch, prompt, 0);
            ctx.decode(batch);
            int last = prompt.length - 1;
            assertThat(greedy.sample(ctx, last)).isBetween(0, v.size() - 1);

            // a real failure inside the upcall: llama.cpp hands the stage no logits; it records it instead of throwing into C
            MemorySegment stage = llama_sampler_chain_get(greedy.handle(), 0);
            MemorySegment iface = llama_sampler.iface(stage.reinterpret(llama_sampler.layout().byteSize()))
                    .reinterpret(llama_sampler_i.layout().byteSize());
            MemorySegment data = llama_sampler_data.allocate(arena);
            data.fill((byte) 0);
            llama_sampler_i.backend_apply.invoke(llama_sampler_i.backend_apply(iface), stage, MemorySegment.NULL,
                    MemorySegment.NULL, data);
            assertThat(llama_sampler_data.sampled(data)).isEqualTo(MemorySegment.NULL);
            assertThat(DeviceGreedy.failed(stage)).isTrue();
            assertThatThrownBy(() -> greedy.sample(ctx, last)).isInstanceOf(LlamaException.class)
                    .hasMessageContaining("greedy stage");
        }
    }

    @Test
    void aContextSharesItsBlockOnlyWithTheChainsAttachedToIt() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(2)); Sampler a = Sampler.greedy(v)) {
            MemorySegment stage = llama_sampler_chain_get(a.handle(), 0);
            MemorySegment state = llama_sampler.ctx(stage.reinterpret(llama_sampler.layout().byteSize())).reinterpret(16);
            assertThat(state.get(java.lang.foreign.ValueLayout.ADDRESS, 8)).isEqualTo(MemorySegment.NULL);
            assertThat(ctx.attachSampler(1, a)).isTrue();
            assertThat(state.get(java.lang.foreign.ValueLayout.ADDRESS, 8)).isEqualTo(ctx.greedyShare());
            ctx.detachSampler(1);
            assertThat(state.get(java.lang.foreign.ValueLayout.ADDRESS, 8)).isEqualTo(MemorySegment.NULL);
            assertThat(a.attachedTo()).isNull();
        }
    }

    /** A chain of this project's stages with {@code biases} (token, bias pairs): DeviceBias and DeviceGreedy for 1..16 tokens. */
    private static Sampler biasedGreedy(float[] biases) {
        Sampler.Builder b = Sampler.builder(model.vocabulary());
        for (int i = 0; i < biases.length; i += 2) {
            b.logitBias((int) biases[i], biases[i + 1]);
        }
        return b.build();
    }

    /** Each sequence's unbiased first pick after its prompt (a pass whose memory is then cleared). */
    private static int[] firstPicks(Lockstep run) {
        run.prompts();
        int[] top = new int[run.n];
        for (int s = 0; s < run.n; s++) {
            top[s] = argmax(run.hostLogits(s));
        }
        run.device.clearMemory();
        run.host.clearMemory();
        return top;
    }

    /** One bias list for all: a ban of each sequence's unbiased first pick (each token once), and a lift of another token. */
    private static float[] banEachFirstPick(int[] top) {
        Map<Integer, Float> bias = new LinkedHashMap<>();
        for (int t : top) {
            bias.put(t, Float.NEGATIVE_INFINITY);
        }
        int lift = (top[0] + 7) % model.vocabulary().size();
        while (bias.containsKey(lift)) {
            lift = (lift + 1) % model.vocabulary().size();
        }
        bias.put(lift, 1.5f);
        float[] biases = new float[2 * bias.size()];
        int i = 0;
        for (Map.Entry<Integer, Float> e : bias.entrySet()) {
            biases[i++] = e.getKey();
            biases[i++] = e.getValue();
        }
        return biases;
    }

    /** Steps every sequence with its chain (attached: on the device), against the host's argmax of its logits with biases[s]. */
    private static int[] stepAndCompare(Lockstep run, Sampler[] chains, float[][] biases, int steps) {
        int[] changed = new int[run.n];
        for (int step = 0; step <= steps; step++) {
            if (step > 0) {
                // every fifth step one sequence sits out: its chain samples the dummy row
                int out = step % 5 == 0 ? (step / 5) % run.n : -1;
                run.step(s -> s != out);
            }
            for (int s = 0; s < run.n; s++) {
                if (run.active[s]) {
                    int expected = argmax(run.hostLogits(s, biases[s]));
                    changed[s] += expected != argmax(run.hostLogits(s)) ? 1 : 0;
                    int picked = chains[s].sample(run.device, run.index[s]);
                    assertThat(picked).as("step %d, sequence %d", step, s).isEqualTo(expected);
                    run.last[s] = picked;
                }
            }
        }
        for (Sampler c : chains) {
            assertThat(DeviceBias.failed(llama_sampler_chain_get(c.handle(), 0))).isFalse();
            assertThat(DeviceGreedy.failed(llama_sampler_chain_get(c.handle(), 1))).isFalse();
        }
        return changed;
    }

    @Test
    void aBiasEveryChainHasIsAddedOnceForAllRowsAndPicksAsTheHost() {
        int n = PROMPTS.length;
        Sampler[] chains = new Sampler[n];
        float[][] biases = new float[n][];
        try (Lockstep run = new Lockstep(n)) {
            float[] common = banEachFirstPick(firstPicks(run));
            for (int s = 0; s < n; s++) {
                biases[s] = common;
                chains[s] = biasedGreedy(common);
                assertThat(stageName(chains[s], 0)).isEqualTo(DeviceBias.name());
                assertThat(run.device.attachSampler(s, chains[s])).isTrue();
                assertThat(DeviceGreedy.uniformBiasCount(run.device.greedyShare())).as("uniform from the second chain on")
                        .isEqualTo(s == 0 ? -1 : common.length / 2);
            }
            run.prompts();
            int[] changed = stepAndCompare(run, chains, biases, 30);
            for (int s = 0; s < n; s++) {
                // a pick the bias changed is one that an unbiased argmax of all rows would get wrong
                assertThat(changed[s]).as("picks the bias changed, sequence %d", s).isPositive();
            }
        } finally {
            closeAll(chains);
        }
    }

    @Test
    void oneChainWithAnotherBiasMakesEveryChainBiasItsOwnRow() {
        int n = PROMPTS.length;
        Sampler[] chains = new Sampler[n];
        float[][] biases = new float[n][];
        try (Lockstep run = new Lockstep(n)) {
            int[] top = firstPicks(run);
            float[] common = banEachFirstPick(top);
            for (int s = 0; s < n; s++) {
                biases[s] = s == 2 ? new float[] {top[2], Float.NEGATIVE_INFINITY, top[3], -2f} : common;
                chains[s] = biasedGreedy(biases[s]);
                assertThat(run.device.attachSampler(s, chains[s])).isTrue();
            }
            assertThat(DeviceGreedy.uniformBiasCount(run.device.greedyShare())).isEqualTo(-1);
            run.prompts();
            int[] changed = stepAndCompare(run, chains, biases, 24);
            for (int s = 0; s < n; s++) {
                assertThat(changed[s]).as("picks the bias changed, sequence %d", s).isPositive();
            }
        } finally {
            closeAll(chains);
        }
    }

    @Test
    void attachingAndDetachingBetweenStepsSwitchesUniformModeAndPicksStayTheHosts() {
        int n = 4;
        int steps = 32;
        Sampler[] chains = new Sampler[n];
        float[][] biases = new float[n][];
        List<Sampler> retired = new ArrayList<>();
        try (Lockstep run = new Lockstep(n)) {
            int[] top = firstPicks(run);
            float[] common = banEachFirstPick(top);
            float[] other = {top[1], Float.NEGATIVE_INFINITY, (top[1] + 5) % model.vocabulary().size(), 0.75f};
            for (int s = 0; s < n; s++) {
                biases[s] = common;
                chains[s] = biasedGreedy(common);
                assertThat(run.device.attachSampler(s, chains[s])).isTrue();
            }
            run.prompts();
            for (int s = 0; s < n; s++) {
                run.last[s] = chains[s].sample(run.device, run.index[s]);
            }
            int uniformSteps = 0;
            int mixedSteps = 0;
            for (int step = 0; step < steps; step++) {
                // sequence step % n changes sides: attached chains are detached (then sampled on the host), detached
                // ones get a new chain, with the other bias every third time (which ends uniform mode)
                int s0 = step % n;
                if (chains[s0].attachedTo() != null) {
                    run.device.detachSampler(s0);
                } else {
                    retired.add(chains[s0]);
                    biases[s0] = step % 3 == 0 ? other : common;
                    chains[s0] = biasedGreedy(biases[s0]);
                    assertThat(run.device.attachSampler(s0, chains[s0])).isTrue();
                }
                int attached = 0;
                boolean same = true;
                for (int s = 0; s < n; s++) {
                    if (chains[s].attachedTo() != null) {
                        attached++;
                        same &= biases[s] == common;
                    }
                }
                boolean uniform = attached >= 2 && same;
                uniformSteps += uniform ? 1 : 0;
                mixedSteps += uniform ? 0 : 1;
                assertThat(DeviceGreedy.uniformBiasCount(run.device.greedyShare())).as("step %d", step)
                        .isEqualTo(uniform ? common.length / 2 : -1);
                run.step(s -> true);
                for (int s = 0; s < n; s++) {
                    int expected = argmax(run.hostLogits(s, biases[s]));
                    int picked = chains[s].sample(run.device, run.index[s]);
                    assertThat(picked).as("step %d, sequence %d (%s)", step, s, chains[s].attachedTo() != null ? "device" : "host")
                            .isEqualTo(expected);
                    run.last[s] = picked;
                }
            }
            assertThat(uniformSteps).as("steps in uniform mode").isPositive();
            assertThat(mixedSteps).as("steps out of it").isPositive();
        } finally {
            closeAll(chains);
            retired.forEach(Sampler::close);
        }
    }

    @Test
    void inUniformModeTheGraphHasTheBiasOpsOnceAndOneArgmax() {
        int n = 4;
        Vocabulary v = model.vocabulary();
        float[] common = {3, -1f, 10, Float.NEGATIVE_INFINITY, 200, 2f};
        int k = common.length / 2;
        Sampler[] plain = new Sampler[n];
        Sampler[] uniform = new Sampler[n];
        Sampler[] mixed = new Sampler[n];
        try (Lockstep run = new Lockstep(n)) {
            for (int s = 0; s < n; s++) {
                plain[s] = Sampler.greedy(v);
                assertThat(run.device.attachSampler(s, plain[s])).isTrue();
            }
            int shared = reservedNodes(run);
            for (int s = 0; s < n; s++) {
                uniform[s] = biasedGreedy(common);
                assertThat(run.device.attachSampler(s, uniform[s])).isTrue();
            }
            int once = reservedNodes(run);
            for (int s = 0; s < n; s++) {
                mixed[s] = biasedGreedy(s == 0 ? new float[] {3, -1f, 10, Float.NEGATIVE_INFINITY, 201, 2f} : common);
                assertThat(run.device.attachSampler(s, mixed[s])).isTrue();
            }
            int perRow = reservedNodes(run);
            // per biased token: a view of its column, a copy, a scale and a set, once for all rows
            assertThat(once - shared).as("uniform: the bias ops once, the same argmax and row views").isEqualTo(4 * k);
            // per biased token and row: a view, a scale and a set; each row's own argmax instead of a view of the shared one,
            // and no shared argmax
            assertThat(perRow - shared).as("per row").isGreaterThanOrEqualTo(n * 3 * k - 1);
        } finally {
            closeAll(plain);
            closeAll(uniform);
            closeAll(mixed);
        }
    }

    @Test
    void aRowThatIsNoUnmodifiedViewIsBiasedByTheBiasStageEvenInUniformMode() {
        // llama.cpp's probe graphs hand the chain a plain tensor; a full run never does, so a stage of the test's own,
        // attached to sequence 0 (its graph nodes come first), hands sequence 1's attached chain a copy of its own row
        // (ggml_cont: op CONT, no view) and takes that chain's pick as its own
        Vocabulary v = model.vocabulary();
        int n = 3;
        Sampler[] chains = new Sampler[n];
        AtomicReference<Throwable> failure = new AtomicReference<>();
        MemorySegment[] probe = new MemorySegment[1];
        try (Lockstep run = new Lockstep(n); Arena arena = Arena.ofConfined()) {
            int[] top = firstPicks(run);
            float[] common = banEachFirstPick(top);
            for (int s = 1; s < n; s++) {
                chains[s] = biasedGreedy(common);
                assertThat(run.device.attachSampler(s, chains[s])).isTrue();
            }
            assertThat(DeviceGreedy.uniformBiasCount(run.device.greedyShare())).isEqualTo(common.length / 2);
            MemorySegment through = chains[1].handle();
            MemorySegment own = OwnStages.iface(Arena.global().allocateFrom("test-plain-row"), (smpl, cur) -> {}, (smpl, ctx, gf, data) -> {
                try {
                    MemorySegment d = data.reinterpret(llama_sampler_data.layout().byteSize());
                    MemorySegment copy = llama_sampler_data.allocate(Arena.global());
                    copy.fill((byte) 0);
                    llama_sampler_data.logits(copy, ggml_cont(ctx, llama_sampler_data.logits(d)));
                    MemorySegment chainIface = llama_sampler.iface(through.reinterpret(llama_sampler.layout().byteSize()))
                            .reinterpret(llama_sampler_i.layout().byteSize());
                    llama_sampler_i.backend_apply.invoke(llama_sampler_i.backend_apply(chainIface), through, ctx, gf, copy);
                    llama_sampler_data.sampled(d, llama_sampler_data.sampled(copy));
                    llama_sampler_data.logits(d, MemorySegment.NULL);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            }, null);
            probe[0] = llama_sampler_chain_init(llama_sampler_chain_default_params(arena));
            llama_sampler_chain_add(probe[0], llama_sampler_init(own, MemorySegment.NULL));
            assertThat(llama_set_sampler(run.device.checkOpen(), 0, probe[0])).isTrue();
            assertThat(DeviceGreedy.uniformBiasCount(run.device.greedyShare())).as("a chain attached by other means changes nothing")
                    .isEqualTo(common.length / 2);
            run.prompts();
            int changed = 0;
            for (int step = 0; step <= 20; step++) {
                if (step > 0) {
                    run.step(s -> true);
                }
                for (int s = 0; s < n; s++) {
                    int expected = argmax(run.hostLogits(s, common));
                    int picked = s == 0 ? llama_get_sampled_token_ith(run.device.checkOpen(), run.index[0])
                            : chains[s].sample(run.device, run.index[s]);
                    assertThat(picked).as("step %d, sequence %d", step, s).isEqualTo(expected);
                    changed += s == 0 && expected != argmax(run.hostLogits(s)) ? 1 : 0;
                    run.last[s] = picked;
                }
            }
            assertThat(failure.get()).isNull();
            assertThat(changed).as("picks of sequence 0 the bias changed").isPositive();
            assertThat(DeviceBias.failed(llama_sampler_chain_get(through, 0)) || DeviceGreedy.failed(llama_sampler_chain_get(through, 1)))
                    .isFalse();
            llama_set_sampler(run.device.checkOpen(), 0, MemorySegment.NULL);
        } finally {
            if (probe[0] != null) {
                llama_sampler_free(probe[0]);
            }
            closeAll(chains);
        }
    }
}
