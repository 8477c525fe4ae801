package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import static ai.llmref.bindings.ffi.llama_h.llama_perf_context;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_add;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_default_params;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_init;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_free;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init_greedy;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init_logit_bias;
import static ai.llmref.bindings.ffi.llama_h.llama_set_sampler;
import static ai.llmref.bindings.ffi.llama_h.llama_perf_context_reset;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_apply;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_get;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_chain_n;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_name;

import ai.llmref.bindings.ffi.llama_logit_bias;
import ai.llmref.bindings.ffi.llama_perf_context_data;
import ai.llmref.bindings.ffi.llama_token_data;
import ai.llmref.bindings.ffi.llama_token_data_array;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import ai.llmref.llama.internal.LogBridge;
import org.junit.jupiter.api.Test;

/**
 * Backend sampling ({@link LlamaContext#attachSampler}): a greedy chain attached to a sequence picks
 * its tokens as graph operations on the device that computes the logits (here the CPU backend; on
 * the GPU machine, scripts/gpu-verify.sh runs this class with every layer offloaded), and the picks
 * are the host's picks.
 */
class DeviceSamplingTest extends StoriesModelTest {
    private static final String[] PROMPTS = {"Once upon a time", "Tom had a big", "The cat sat on", "Lily and Ben went to the"};
    private static final int STEPS = 24;

    /** The unbiased greedy continuation of PROMPTS[1]: what the odd sequences' bias bans. */
    private static int banned() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64); Sampler g = Sampler.greedy(v)) {
            int[] prompt = v.tokenize(PROMPTS[1], true, false);
            for (int i = 0; i < prompt.length; i++) {
                batch.add(prompt[i], i, 0, i == prompt.length - 1);
            }
            ctx.decode(batch);
            return g.sample(ctx, prompt.length - 1);
        }
    }

    /** Greedy for even sequences; odd ones with a ban and a boost, as a server's logit_bias. */
    private static Sampler chain(Vocabulary v, int sequence, int banned) {
        Sampler.Builder b = Sampler.builder(v);
        if (sequence % 2 == 1) {
            b.logitBias(banned, Float.NEGATIVE_INFINITY).logitBias((banned + 1) % v.size(), 2.5f);
        }
        return b.build();
    }

    /** Generates STEPS tokens for every prompt together, each sequence sampled by its own chain; device: attached. */
    private static List<List<Integer>> generate(boolean device, int banned) {
        Vocabulary v = model.vocabulary();
        int n = PROMPTS.length;
        List<List<Integer>> out = new ArrayList<>();
        Sampler[] chains = new Sampler[n];
        try (LlamaContext ctx = model.newContext(TestModels.small(n)); Batch batch = ctx.newBatch(256)) {
            int[] last = new int[n];
            int[] pos = new int[n];
            int[] index = new int[n];
            batch.clear();
            for (int s = 0; s < n; s++) {
                chains[s] = chain(v, s, banned);
                if (device) {
                    assertThat(ctx.attachSampler(s, chains[s])).as("the CPU backend runs greedy and logit-bias chains").isTrue();
                    assertThat(ctx.attachedSampler(s)).isSameAs(chains[s]);
                }
                out.add(new ArrayList<>());
                int[] prompt = v.tokenize(PROMPTS[s], true, false);
                for (int i = 0; i < prompt.length; i++) {
                    if (i == prompt.length - 1) {
                        index[s] = batch.size();
                    }
                    batch.add(prompt[i], i, s, i == prompt.length - 1);
                }
                pos[s] = prompt.length;
            }
            for (int step = 0; step < STEPS; step++) {
                ctx.decode(batch);
                for (int s = 0; s < n; s++) {
                    last[s] = chains[s].sample(ctx, index[s]);
                    out.get(s).add(last[s]);
                }
                batch.clear();
                for (int s = 0; s < n; s++) {
                    index[s] = batch.size();
                    batch.add(last[s], pos[s]++, s, true);
                }
            }
        } finally {
            for (Sampler c : chains) {
                if (c != null) {
                    c.close();
                }
            }
        }
        return out;
    }

    @Test
    void theDevicesPicksAreTheHostsPicks() {
        int banned = banned();
        List<List<Integer>> host = generate(false, banned);
        List<List<Integer>> device = generate(true, banned);
        assertThat(device).isEqualTo(host);
        assertThat(host.get(1)).as("the bias is applied").doesNotContain(banned);
    }

    @Test
    void logitsOfADeviceSampledSequenceAreRefusedAndComeBackAfterDetaching() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(2)); Batch batch = ctx.newBatch(64);
                Sampler greedy = Sampler.greedy(v); Sampler host = Sampler.greedy(v)) {
            int[] prompt = v.tokenize("Once upon a time", true, false);
            assertThat(ctx.attachSampler(0, greedy)).isTrue();
            ModelAndContextTest.fillTwo(batch, prompt);
            ctx.decode(batch);
            int onDevice = 2 * prompt.length - 2;
            int onHost = 2 * prompt.length - 1;
            assertThatThrownBy(() -> ctx.logits(onDevice)).isInstanceOf(InvalidInputException.class).hasMessageContaining("on the device");
            assertThatThrownBy(() -> host.sample(ctx, onDevice)).isInstanceOf(InvalidInputException.class);
            int picked = greedy.sample(ctx, onDevice);
            assertThat(picked).isEqualTo(host.sample(ctx, onHost)); // same prompt in both sequences
            assertThat(greedy.sample(ctx, onHost)).as("a row sampled on the host: any chain samples its logits there")
                    .isEqualTo(picked);

            ctx.detachSampler(0);
            assertThat(greedy.attachedTo()).isNull();
            assertThatThrownBy(() -> ctx.attachSampler(0, greedy)).as("llama.cpp would abort at a second init of the chain")
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("attached once");
            batch.clear();
            batch.add(picked, prompt.length, 0, true);
            ctx.decode(batch);
            assertThat(ctx.logits(0)).hasSize(v.size());
        }
    }

    @Test
    void onlyGreedyChainsAttachAndOneSequenceAtATime() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(2));
                Sampler drawn = Sampler.builder(v).temperature(0.8f).seed(7).build();
                Sampler greedy = Sampler.greedy(v); Sampler other = Sampler.greedy(v)) {
            assertThat(drawn.offloadable()).isFalse();
            assertThatThrownBy(() -> ctx.attachSampler(0, drawn)).isInstanceOf(InvalidInputException.class);
            assertThat(ctx.attachSampler(0, greedy)).isTrue();
            assertThatThrownBy(() -> ctx.attachSampler(1, greedy)).isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(() -> ctx.attachSampler(5, other)).isInstanceOf(InvalidInputException.class);
            greedy.close(); // detaches: llama.cpp must not keep a freed chain
            assertThat(ctx.attachedSampler(0)).isNull();
        }
    }

    /** The name of stage {@code i} of a sampler's chain, as llama.cpp reports it. */
    private static String stage(Sampler s, int i) {
        return llama_sampler_name(chainStage(s, i)).getString(0);
    }

    private static MemorySegment chainStage(Sampler s, int i) {
        return llama_sampler_chain_get(s.handle(), i);
    }

    @Test
    void aGreedyChainsBiasIsThisProjectsStageWhichBiasesOnTheHostAsLlamaCppsDoes() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64);
                Arena arena = Arena.ofConfined()) {
            int[] prompt = v.tokenize(PROMPTS[3], true, false);
            ModelAndContextTest.fill(batch, prompt, 0);
            ctx.decode(batch);
            int last = prompt.length - 1;
            float[] logits = ctx.logits(last);
            int top = 0;
            for (int i = 1; i < logits.length; i++) {
                top = logits[i] > logits[top] ? i : top;
            }
            int other = (top + 7) % v.size();
            float lift = logits[top] - logits[other] + 0.75f;
            try (Sampler biased = Sampler.builder(v).logitBias(top, -1.5f).logitBias(other, lift).build();
                    Sampler withPenalties = Sampler.builder(v).logitBias(top, -1.5f).penalties(64, 1.1f, 0f, 0f).build();
                    Sampler plain = Sampler.greedy(v)) {
                assertThat(llama_sampler_chain_n(biased.handle())).isEqualTo(2);
                assertThat(stage(biased, 0)).isEqualTo(DeviceBias.name());
                assertThat(stage(biased, 1)).isEqualTo(DeviceGreedy.name());
                assertThat(stage(withPenalties, 0)).as("chains that sample on the host keep llama.cpp's stage").isEqualTo("logit-bias");
                assertThat(llama_sampler_chain_n(plain.handle())).isEqualTo(1);
                Sampler.Builder longList = Sampler.builder(v);
                for (int t = 0; t <= DeviceBias.MAX_TOKENS; t++) {
                    longList.logitBias(t, -1f);
                }
                try (Sampler many = longList.build()) {
                    assertThat(stage(many, 0)).as("more than %d biased tokens: llama.cpp's stage", DeviceBias.MAX_TOKENS)
                            .isEqualTo("logit-bias");
                    assertThat(many.offloadable()).isTrue();
                }

                // The chain through llama.cpp's own llama_sampler_apply: the stage's host upcall biases the candidates.
                MemorySegment array = TestModels.candidates(arena, logits);
                MemorySegment data = llama_token_data_array.data(array).reinterpret(llama_token_data.layout().byteSize() * logits.length);
                llama_sampler_apply(biased.handle(), array);
                long selected = llama_token_data_array.selected(array);
                assertThat(llama_token_data.id(llama_token_data.asSlice(data, selected))).isEqualTo(other);
                assertThat(llama_token_data.logit(llama_token_data.asSlice(data, top))).isEqualTo(logits[top] - 1.5f);
                assertThat(llama_token_data.logit(llama_token_data.asSlice(data, other))).isEqualTo(logits[other] + lift);
                assertThat(biased.sample(ctx, last)).as("the in-place pick agrees").isEqualTo(other);
            }
        }
    }

    @Test
    void biasedChainsOnTheDeviceKeepTheGraphFromStepToStep() {
        Vocabulary v = model.vocabulary();
        int banned = banned();
        int steps = 12;
        Sampler[] chains = new Sampler[2];
        try (LlamaContext ctx = model.newContext(TestModels.small(2)); Batch batch = ctx.newBatch(64); Arena arena = Arena.ofConfined()) {
            int[] pos = new int[2];
            int[] last = new int[2];
            for (int s = 0; s < 2; s++) {
                chains[s] = chain(v, 1, banned); // both with the ban and the boost
                assertThat(ctx.attachSampler(s, chains[s])).isTrue();
                int[] prompt = v.tokenize(PROMPTS[s], true, false);
                for (int i = 0; i < prompt.length; i++) {
                    batch.add(prompt[i], i, s, i == prompt.length - 1);
                }
                pos[s] = prompt.length;
            }
            ctx.decode(batch);
            for (int s = 0; s < 2; s++) {
                last[s] = chains[s].sample(ctx, s == 0 ? pos[0] - 1 : pos[0] + pos[1] - 1);
            }
            llama_perf_context_reset(ctx.checkOpen());
            for (int step = 0; step < steps; step++) {
                batch.clear();
                for (int s = 0; s < 2; s++) {
                    batch.add(last[s], pos[s]++, s, true);
                }
                ctx.decode(batch);
                for (int s = 0; s < 2; s++) {
                    last[s] = chains[s].sample(ctx, s);
                    assertThat(last[s]).isNotEqualTo(banned);
                }
            }
            MemorySegment perf = llama_perf_context(arena, ctx.checkOpen());
            assertThat(llama_perf_context_data.n_reused(perf)).as("graphs reused over %d steps", steps).isGreaterThanOrEqualTo(steps - 1);
        } finally {
            for (Sampler c : chains) {
                if (c != null) {
                    c.close();
                }
            }
        }
    }

    @Test
    void aFailedBiasStageIsReportedInsteadOfAnUnbiasedToken() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64);
                Sampler biased = Sampler.builder(v).logitBias(3, -2f).build()) {
            assertThat(ctx.attachSampler(0, biased)).isTrue();
            int[] prompt = v.tokenize(PROMPTS[0], true, false);
            ModelAndContextTest.fill(batch, prompt, 0);
            ctx.decode(batch);
            int last = prompt.length - 1;
            int token = biased.sample(ctx, last);
            assertThat(token).isBetween(0, v.size() - 1);
            DeviceBias.markFailed(chainStage(biased, 0));
            assertThatThrownBy(() -> biased.sample(ctx, last)).isInstanceOf(LlamaException.class)
                    .hasMessageContaining("logit-bias stage");
        }
    }

    private static final Pattern RESERVED = Pattern.compile("splits = (\\d+)(?: / (\\d+))?, .*input tensors = (\\d+)(?: / (\\d+))?");

    /**
     * Decodes the same two-sequence prompt and returns what llama.cpp's compute-buffer reserve before
     * it logged for the generation graph: {splits, input tensors}.
     */
    private static int[] reserved(LlamaContext ctx, Batch batch, int[] prompt) {
        ctx.clearMemory();
        batch.clear();
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < prompt.length; i++) {
                batch.add(prompt[i], i, s, i == prompt.length - 1);
            }
        }
        List<String> lines = new ArrayList<>();
        LogBridge.capturing(lines::add, () -> {
            ctx.decode(batch);
            return null;
        });
        for (String line : lines) {
            Matcher m = RESERVED.matcher(line);
            if (m.find()) {
                return new int[] {Integer.parseInt(m.group(2) != null ? m.group(2) : m.group(1)),
                    Integer.parseInt(m.group(4) != null ? m.group(4) : m.group(3))};
            }
        }
        throw new AssertionError("no reserve was logged while decoding: " + lines);
    }

    @Test
    void theBiasStageAddsNoGraphInputsWhereLlamaCppsAddsTwoPerSequence() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize(PROMPTS[0], true, false);
        MemorySegment[] native_ = new MemorySegment[2];
        try (LlamaContext ctx = model.newContext(TestModels.small(2)); Batch batch = ctx.newBatch(64);
                Sampler g0 = Sampler.greedy(v); Sampler g1 = Sampler.greedy(v);
                Sampler b0 = Sampler.builder(v).logitBias(5, -100f).logitBias(9, 3f).build();
                Sampler b1 = Sampler.builder(v).logitBias(5, -100f).logitBias(9, 3f).build();
                Arena arena = Arena.ofConfined()) {
            assertThat(ctx.attachSampler(0, g0) && ctx.attachSampler(1, g1)).isTrue();
            int[] greedy = reserved(ctx, batch, prompt);
            assertThat(ctx.attachSampler(0, b0) && ctx.attachSampler(1, b1)).isTrue();
            int[] ours = reserved(ctx, batch, prompt);
            ctx.detachSampler(0);
            ctx.detachSampler(1);
            // llama.cpp's own logit-bias stage before its greedy stage, attached directly
            MemorySegment bias = llama_logit_bias.allocateArray(2, arena);
            llama_logit_bias.token(llama_logit_bias.asSlice(bias, 0), 5);
            llama_logit_bias.bias(llama_logit_bias.asSlice(bias, 0), -100f);
            llama_logit_bias.token(llama_logit_bias.asSlice(bias, 1), 9);
            llama_logit_bias.bias(llama_logit_bias.asSlice(bias, 1), 3f);
            for (int s = 0; s < 2; s++) {
                native_[s] = llama_sampler_chain_init(llama_sampler_chain_default_params(arena));
                llama_sampler_chain_add(native_[s], llama_sampler_init_logit_bias(v.size(), 2, bias));
                llama_sampler_chain_add(native_[s], llama_sampler_init_greedy());
                assertThat(llama_set_sampler(ctx.checkOpen(), s, native_[s])).isTrue();
            }
            int[] llamas = reserved(ctx, batch, prompt);
            for (int s = 0; s < 2; s++) {
                llama_set_sampler(ctx.checkOpen(), s, MemorySegment.NULL);
            }
            assertThat(ours[1]).as("input tensors with this project's bias stage, as with greedy alone").isEqualTo(greedy[1]);
            assertThat(ours[0]).as("graph splits, as with greedy alone").isEqualTo(greedy[0]);
            assertThat(llamas[1]).as("llama.cpp's stage: a token and a bias tensor per sequence").isEqualTo(greedy[1] + 4);
        } finally {
            for (MemorySegment c : native_) {
                if (c != null) {
                    llama_sampler_free(c);
                }
            }
        }
    }
}
