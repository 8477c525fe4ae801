package ai.llmref.llama;

import static ai.llmref.llama.TestModels.argmax;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.llmref.llama.ContextParams.KvCacheType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * KV cache element types and the memory a context reports: quantized caches really hold fewer
 * bytes, decode through them gives close logits, and what llama.cpp allocated is read per buffer
 * (on the device the layers are on).
 */
class KvCacheTest {
    static final String PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play";
    /** Positions of the contexts compared: large enough for llama.cpp's two-decimal MiB figures. */
    static final int CONTEXT = 8192;
    /** Half a printed hundredth of a MiB, the rounding of each figure, on each side. */
    static final long ROUNDING = 2 * 5243;

    @TempDir Path tmp;

    static ContextParams params(KvCacheType k, KvCacheType v) {
        return TestModels.small(1).withContextSize(CONTEXT).withKvCacheTypes(k, v);
    }

    /** Bytes per value of a type: F16 2, Q8_0 34 per block of 32, Q4_0 18 per 32 ... */
    static double bytesPerValue(KvCacheType t) {
        return switch (t) {
            case F32 -> 4;
            case F16, BF16 -> 2;
            case Q8_0 -> 34 / 32.0;
            case Q4_0, IQ4_NL -> 18 / 32.0;
            case Q4_1 -> 20 / 32.0;
            case Q5_0 -> 22 / 32.0;
            case Q5_1 -> 24 / 32.0;
        };
    }

    /** Per layer and position a KV cache holds n_embd_k_gqa keys and as many values (32 each here). */
    static long expectedKvBytes(KvCacheType k, KvCacheType v) {
        int layers = 5;
        int kvWidth = 32;
        return Math.round((long) CONTEXT * layers * kvWidth * (bytesPerValue(k) + bytesPerValue(v)));
    }

    static void assertOnTheModelsDevice(Map<String, Long> buffers) {
        assertThat(buffers).isNotEmpty();
        if (GpuOffloadTest.EXPECT_GPU) {
            assertThat(buffers).anySatisfy((name, bytes) -> assertThat(name).doesNotStartWith("CPU"));
        } else {
            assertThat(buffers).allSatisfy((name, bytes) -> assertThat(name).startsWith("CPU"));
        }
    }

    @Test
    void unquantizedTypesOnStories260K() {
        try (LlamaModel model = LlamaModel.load(TestModels.stories(), TestModels.params())) {
            for (KvCacheType t : List.of(KvCacheType.F32, KvCacheType.F16, KvCacheType.BF16)) {
                try (LlamaContext ctx = model.newContext(params(t, t))) {
                    ContextMemory m = ctx.memoryUse();
                    assertThat(m.kvTotal()).as("%s KV bytes", t).isCloseTo(expectedKvBytes(t, t), within(ROUNDING));
                    assertOnTheModelsDevice(m.kvBytes());
                    assertThat(m.computeTotal()).isPositive();
                }
                assertThat(greedySteps(model, params(t, t), 8)).as("greedy tokens with a %s cache", t).hasSize(8)
                        .doesNotContain(-1);
            }
            // F32 holds what F16 holds at full precision: the same greedy story
            assertThat(Generation.greedy(model, params(KvCacheType.F32, KvCacheType.F32), PROMPT, 24))
                    .isEqualTo(Generation.greedy(model, params(KvCacheType.F16, KvCacheType.F16), PROMPT, 24));
        }
    }

    @Test
    void quantizedCachesHoldFewerBytesAndDecodeCloseToF16() throws IOException {
        try (LlamaModel model = LlamaModel.load(TestModels.wideHeads(tmp), TestModels.params())) {
            assertThat(model.info().headCount()).isEqualTo(2);
            float[] reference = lastLogits(model, KvCacheType.F16, KvCacheType.F16);
            float range = range(reference);
            assertThat(range).isPositive();
            for (KvCacheType[] kv : new KvCacheType[][] {{KvCacheType.Q8_0, KvCacheType.Q8_0}, {KvCacheType.Q4_0, KvCacheType.Q4_0},
                {KvCacheType.Q8_0, KvCacheType.F16}, {KvCacheType.F16, KvCacheType.Q5_1}, {KvCacheType.IQ4_NL, KvCacheType.Q4_1}}) {
                try (LlamaContext ctx = model.newContext(params(kv[0], kv[1]))) {
                    assertThat(ctx.memoryUse().kvTotal()).as("K %s, V %s: KV bytes", kv[0], kv[1])
                            .isCloseTo(expectedKvBytes(kv[0], kv[1]), within(ROUNDING));
                    assertOnTheModelsDevice(ctx.memoryUse().kvBytes());
                }
                float[] logits = lastLogits(model, kv[0], kv[1]);
                float worst = 0;
                for (int i = 0; i < logits.length; i++) {
                    assertThat(logits[i]).isFinite();
                    worst = Math.max(worst, Math.abs(logits[i] - reference[i]));
                }
                String what = "K " + kv[0] + ", V " + kv[1] + ": largest logit difference to F16 (logit range " + range + ")";
                // the cache really is quantized (F16 would give the reference exactly) ...
                assertThat(worst).as(what).isPositive();
                if (!eightBitsOrMore(kv[0]) || !eightBitsOrMore(kv[1])) {
                    // ... 4 and 5 bits move this ill-conditioned model's logits by up to a fifth of their range
                    // (Q4_0: 5.2 of 25.0 on the CPU), and change its greedy pick ...
                    assertThat(worst).as(what).isLessThan(range * 0.5f);
                } else {
                    // ... and 8 bits keep them close (0.59 on the CPU) and the greedy pick the same
                    assertThat(worst).as(what).isLessThan(range * 0.1f);
                    assertThat(argmax(logits)).as(what).isEqualTo(argmax(reference));
                }
                assertThat(greedySteps(model, params(kv[0], kv[1]), 16)).as("tokens decoded through the cache").hasSize(16)
                        .doesNotContain(-1);
            }
        }
    }

    @Test
    void memoryLinesAreReadAsLlamaCppPrintsThem() {
        ContextMemory m = ContextMemory.fromLog(List.of(
                "llama_context:        CPU  output buffer size =     0.00 MiB",
                "llama_kv_cache:      CUDA0 KV buffer size =   256.00 MiB",
                "llama_kv_cache:      CUDA0 KV buffer size =    16.50 MiB", // a model's sliding-window cache
                "llama_memory_recurrent:        CPU RS buffer size =     0.25 MiB",
                "sched_reserve:      CUDA0 compute buffer size =   300.00 MiB",
                "sched_reserve:  CUDA_Host compute buffer size =    12.01 MiB",
                "sched_reserve:      CUDA0 compute buffer size =   258.50 MiB")); // reserved again: the last counts
        assertThat(m.kvBytes()).containsExactlyInAnyOrderEntriesOf(Map.of("CUDA0", 272L * 1024 * 1024 + 512 * 1024, "CPU", 256L * 1024));
        assertThat(m.computeBytes()).containsExactlyInAnyOrderEntriesOf(Map.of("CUDA0", 258L * 1024 * 1024 + 512 * 1024,
                "CUDA_Host", Math.round(12.01 * 1024 * 1024)));
        assertThat(m.kvTotal()).isEqualTo(272L * 1024 * 1024 + 512 * 1024 + 256 * 1024);
        assertThat(ContextMemory.fromLog(List.of("llama_context: n_ctx = 512")).kvBytes()).isEmpty();
    }

    /** The logits after the prompt, decoded in one batch through a cache of these types. */
    static float[] lastLogits(LlamaModel model, KvCacheType k, KvCacheType v) {
        int[] tokens = model.vocabulary().tokenize(PROMPT, true, false);
        try (LlamaContext ctx = model.newContext(params(k, v)); Batch batch = ctx.newBatch(tokens.length)) {
            for (int i = 0; i < tokens.length; i++) {
                batch.add(tokens[i], i, 0, i == tokens.length - 1);
            }
            ctx.decode(batch);
            return ctx.logits(tokens.length - 1);
        }
    }

    static boolean eightBitsOrMore(KvCacheType t) {
        return t == KvCacheType.Q8_0 || !t.quantized();
    }

    /** {@code n} greedy tokens after the prompt, one decode each (end of generation included). */
    static int[] greedySteps(LlamaModel model, ContextParams params, int n) {
        int[] tokens = model.vocabulary().tokenize(PROMPT, true, false);
        int[] out = new int[n];
        try (LlamaContext ctx = model.newContext(params); Batch batch = ctx.newBatch(tokens.length);
             Sampler greedy = Sampler.greedy(model.vocabulary())) {
            for (int i = 0; i < tokens.length; i++) {
                batch.add(tokens[i], i, 0, i == tokens.length - 1);
            }
            ctx.decode(batch);
            int last = tokens.length - 1;
            for (int i = 0; i < n; i++) {
                out[i] = greedy.sample(ctx, last);
                batch.clear();
                batch.add(out[i], tokens.length + i, 0, true);
                ctx.decode(batch);
                last = 0;
            }
        }
        return out;
    }

    static float range(float[] values) {
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        for (float x : values) {
            min = Math.min(min, x);
            max = Math.max(max, x);
        }
        return max - min;
    }
}
