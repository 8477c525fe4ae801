package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Model metadata, placement, devices, memory operations, state, abort, embeddings, chat templates. */
class ModelAndContextTest extends StoriesModelTest {
    @Test
    void metadataDescribesTheModel() {
        ModelInfo info = model.info();
        assertThat(info.architecture()).isEqualTo("llama");
        assertThat(info.vocabSize()).isEqualTo(512);
        assertThat(info.embeddingSize()).isEqualTo(64);
        assertThat(info.layerCount()).isEqualTo(5);
        assertThat(info.headCount()).isEqualTo(8);
        assertThat(info.headCountKv()).isEqualTo(4);
        assertThat(info.trainContextLength()).isEqualTo(128);
        assertThat(info.parameterCount()).isBetween(290_000L, 300_000L);
        assertThat(info.sizeBytes()).isGreaterThan(1_000_000L);
        assertThat(model.metadata()).containsEntry("general.architecture", "llama").containsKey("tokenizer.ggml.model");
        assertThat(model.metadata("llama.block_count")).contains("5");
        assertThat(model.metadata("no.such.key")).isEmpty();
        GgufFile.Info gguf = GgufFile.inspect(TestModels.stories());
        assertThat(gguf.version()).isEqualTo(3);
        assertThat(gguf.tensorCount()).isEqualTo(48);
        assertThat(gguf.architecture()).isEqualTo("llama");
        assertThat(model.chatTemplate()).isEmpty(); // the llama2.c conversion carries no template
        Vocabulary v = model.vocabulary();
        assertThat(v.bos()).isEqualTo(1);
        assertThat(v.eos()).isEqualTo(2);
        assertThat(v.isEndOfGeneration(2)).isTrue();
        assertThat(v.tokenText(1)).isEqualTo("<s>");
    }

    @Test
    void placementAndDevicesTellWhereTheWeightsAre() {
        ModelPlacement p = model.placement();
        assertThat(p.totalLayers()).isEqualTo(6); // 5 repeating layers + output
        if (GpuOffloadTest.EXPECT_GPU) {
            // scripts/gpu-verify.sh: every layer on the GPU (GpuOffloadTest checks the device and its memory)
            assertThat(p.offloadedLayers()).isEqualTo(6);
            assertThat(p.cpuOnly()).isFalse();
            assertThat(p.bufferBytes()).isNotEmpty().anySatisfy((name, bytes) -> assertThat(name).doesNotStartWith("CPU"));
        } else {
            assertThat(p.offloadedLayers()).isZero();
            assertThat(p.cpuOnly()).isTrue();
            assertThat(p.bufferBytes()).isNotEmpty().allSatisfy((name, bytes) -> assertThat(name).startsWith("CPU"));
        }
        assertThat(p.bufferBytes().values().stream().mapToLong(Long::longValue).sum()).isGreaterThan(1_000_000L);
        List<Device> devices = LlamaBackend.initialize().devices();
        assertThat(devices).anySatisfy(d -> {
            assertThat(d.type()).isEqualTo(Device.Type.CPU);
            assertThat(d.totalBytes()).isPositive();
            assertThat(d.freeBytes()).isPositive();
        });
        assertThat(LlamaBackend.initialize().buildInfo().getProperty("llama.cpp.tree")).isEqualTo("fd570ef54b10ec5fecb739e7e04c8ce44a6f415a");
    }

    @Test
    void loadProgressIsReportedAndCanCancel() {
        List<Float> seen = new ArrayList<>();
        try (LlamaModel m = LlamaModel.load(TestModels.stories(), TestModels.params()
                .withLoadMode(ModelParams.LoadMode.NONE).withProgress(f -> seen.add(f)))) {
            assertThat(m.info().layerCount()).isEqualTo(5);
        }
        assertThat(seen).isNotEmpty().isSorted();
        assertThat(seen.getLast()).isEqualTo(1.0f);
        AtomicInteger calls = new AtomicInteger();
        assertThatThrownBy(() -> LlamaModel.load(TestModels.stories(), TestModels.params()
                .withLoadMode(ModelParams.LoadMode.NONE).withProgress(f -> calls.incrementAndGet() < 1)))
                .isInstanceOf(ModelLoadException.class).hasMessageContaining("cancelled");
        // a listener that throws cancels too, instead of crossing into C
        assertThatThrownBy(() -> LlamaModel.load(TestModels.stories(), TestModels.params()
                .withLoadMode(ModelParams.LoadMode.NONE).withProgress(f -> {
                    throw new IllegalStateException("boom");
                }))).isInstanceOf(ModelLoadException.class);
    }

    @Test
    void vocabOnlyLoadsTokenizeWithoutWeights() {
        try (LlamaModel v = LlamaModel.load(TestModels.stories(), ModelParams.defaults().withVocabOnly(true))) {
            assertThat(v.vocabulary().tokenize("Once upon a time", true, false))
                    .containsExactly(model.vocabulary().tokenize("Once upon a time", true, false));
            // without layers llama.cpp aborts on the heads' count and on a context: both answered in Java
            ModelInfo info = v.info();
            assertThat(info.layerCount()).isZero();
            assertThat(info.headCount()).isZero();
            assertThat(info.headCountKv()).isZero();
            assertThat(info.vocabSize()).isEqualTo(model.info().vocabSize());
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> v.newContext(TestModels.small(1)))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("vocabulary only");
        }
    }

    @Test
    void sequenceMemoryOperations() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize("Once upon a time there was a cat", true, false);
        try (LlamaContext ctx = model.newContext(TestModels.small(3)); Batch b = ctx.newBatch(64); Sampler s = Sampler.greedy(v)) {
            fill(b, prompt, 0);
            ctx.decode(b);
            int expected = s.sample(ctx, prompt.length - 1);
            assertThat(ctx.maxPosition(0)).isEqualTo(prompt.length - 1);
            assertThat(ctx.minPosition(0)).isZero();
            assertThat(ctx.maxPosition(1)).isEqualTo(-1);

            // copy seq 0 to 1, then continue seq 1 with the same next token as seq 0 would get
            ctx.copySequence(0, 1, -1, -1);
            assertThat(ctx.maxPosition(1)).isEqualTo(prompt.length - 1);
            b.clear();
            b.add(expected, prompt.length, 1, true);
            ctx.decode(b);
            int afterCopy = s.sample(ctx, 0);

            // reference: seq 2 decoded from scratch with the prompt + expected
            b.clear();
            int[] longer = java.util.Arrays.copyOf(prompt, prompt.length + 1);
            longer[prompt.length] = expected;
            fill(b, longer, 2);
            ctx.decode(b);
            assertThat(s.sample(ctx, longer.length - 1)).isEqualTo(afterCopy);

            // remove the last two positions of seq 2, then keep only seq 1
            assertThat(ctx.removeTokens(2, longer.length - 2, -1)).isTrue();
            assertThat(ctx.maxPosition(2)).isEqualTo(longer.length - 3);
            ctx.keepOnly(1);
            assertThat(ctx.maxPosition(0)).isEqualTo(-1);
            assertThat(ctx.maxPosition(2)).isEqualTo(-1);
            assertThat(ctx.maxPosition(1)).isEqualTo(prompt.length);

            // shifting moves positions
            ctx.shiftPositions(1, 0, -1, 5);
            assertThat(ctx.maxPosition(1)).isEqualTo(prompt.length + 5);
            ctx.clearMemory();
            assertThat(ctx.maxPosition(1)).isEqualTo(-1);
        }
    }

    @Test
    void stateSaveAndRestoreGiveTheSameContinuation() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize("The little dog ran to", true, false);
        try (LlamaContext ctx = model.newContext(TestModels.small(2)); Batch b = ctx.newBatch(64); Sampler s = Sampler.greedy(v)) {
            fill(b, prompt, 0);
            ctx.decode(b);
            int next = s.sample(ctx, prompt.length - 1);
            byte[] state = ctx.saveState();
            byte[] seqState = ctx.saveSequence(0);
            assertThat(state.length).isGreaterThan(0);
            assertThat(seqState.length).isGreaterThan(0);
            float[] expected = decodeOne(ctx, b, next, prompt.length, 0);

            ctx.clearMemory();
            ctx.restoreState(state);
            assertThat(ctx.maxPosition(0)).isEqualTo(prompt.length - 1);
            assertThat(decodeOne(ctx, b, next, prompt.length, 0)).containsExactly(expected);

            ctx.restoreSequence(1, seqState);
            assertThat(ctx.maxPosition(1)).isEqualTo(prompt.length - 1);
            assertThat(decodeOne(ctx, b, next, prompt.length, 1)).containsExactly(expected);

            assertThatThrownBy(() -> ctx.restoreState(new byte[] {1, 2, 3})).isInstanceOf(LlamaException.class)
                    .hasMessageContaining("llama_state_set_data");
            assertThatThrownBy(() -> ctx.restoreSequence(1, new byte[] {9, 9, 9, 9})).isInstanceOf(LlamaException.class);
        }
    }

    private static float[] decodeOne(LlamaContext ctx, Batch b, int token, int pos, int seq) {
        b.clear();
        b.add(token, pos, seq, true);
        ctx.decode(b);
        return ctx.logits(0);
    }

    @Test
    void abortStopsADecodeAndTheContextStaysUsable() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize("Once upon a time", true, false);
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch b = ctx.newBatch(64)) {
            fill(b, prompt, 0);
            ctx.abort(); // no decode is running: the next one is cancelled
            assertThatThrownBy(() -> ctx.decode(b)).isInstanceOf(DecodeAbortedException.class).hasMessageContaining("aborted");
            ctx.clearMemory();
            ctx.decode(b);
            assertThat(ctx.logits(prompt.length - 1)).hasSize(512);
        }
    }

    @Test
    void synchronizeWaitsForTheDecodeAndChangesNoResult() throws Exception {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize("Once upon a time", true, false);
        float[] plain;
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch b = ctx.newBatch(64)) {
            fill(b, prompt, 0);
            ctx.decode(b);
            plain = ctx.logits(prompt.length - 1);
        }
        LlamaContext ctx = model.newContext(TestModels.small(1));
        try (Batch b = ctx.newBatch(64)) {
            ctx.synchronize(); // nothing decoded yet: returns at once
            fill(b, prompt, 0);
            ctx.decode(b);
            ctx.synchronize();
            assertThat(ctx.logits(prompt.length - 1)).containsExactly(plain);
            java.util.concurrent.atomic.AtomicReference<Throwable> offThread = new java.util.concurrent.atomic.AtomicReference<>();
            Thread t = Thread.ofPlatform().start(() -> {
                try {
                    ctx.synchronize();
                } catch (Throwable e) {
                    offThread.set(e);
                }
            });
            t.join();
            assertThat(offThread.get()).isInstanceOf(IllegalStateException.class).hasMessageContaining("belongs to thread");
        } finally {
            ctx.close();
        }
        assertThatThrownBy(ctx::synchronize).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }

    @Test
    void graphsReusedCountsTheStepsThatKeptTheLastGraph() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize("Once upon a time", true, false);
        try (LlamaContext ctx = model.newContext(TestModels.small(2)); Batch b = ctx.newBatch(64)) {
            assertThat(ctx.graphsReused()).isZero();
            fill(b, prompt, 0);
            ctx.decode(b);
            int pos = prompt.length;
            long before = ctx.graphsReused();
            for (int i = 0; i < 10; i++) {
                b.clear();
                b.add(10 + i, pos++, 0, true);
                ctx.decode(b);
            }
            assertThat(ctx.graphsReused() - before).as("ten single-token steps after the prompt: the first builds, nine reuse")
                    .isEqualTo(9);
            long steady = ctx.graphsReused();
            // sequence 0's next token beside a prompt on sequence 1: other shapes, built anew
            b.clear();
            b.add(30, pos++, 0, true);
            for (int k = 0; k < prompt.length; k++) {
                b.add(prompt[k], k, 1, k == prompt.length - 1);
            }
            ctx.decode(b);
            assertThat(ctx.graphsReused()).as("a step with a prompt").isEqualTo(steady);
            b.clear();
            b.add(31, pos++, 0, true);
            ctx.decode(b);
            assertThat(ctx.graphsReused()).as("the steady shape again, after another graph").isEqualTo(steady);
            b.clear();
            b.add(32, pos, 0, true);
            ctx.decode(b);
            assertThat(ctx.graphsReused()).as("and once more: reused").isEqualTo(steady + 1);
        }
    }

    @Test
    void pooledEmbeddingsAreDeterministicAndNormalized() {
        Vocabulary v = model.vocabulary();
        ContextParams p = TestModels.small(2).withEmbeddings(ContextParams.Pooling.MEAN);
        try (LlamaContext ctx = model.newContext(p); Batch b = ctx.newBatch(64)) {
            int[] a = v.tokenize("The cat sat", true, false);
            int[] c = v.tokenize("A big red ball", true, false);
            fill(b, a, 0);
            for (int i = 0; i < c.length; i++) {
                b.add(c[i], i, 1, true);
            }
            ctx.decode(b);
            float[] ea = ctx.embeddings(0, true);
            float[] ec = ctx.embeddings(1, true);
            assertThat(ea).hasSize(64);
            double norm = 0;
            for (float x : ea) {
                norm += x * x;
            }
            assertThat(norm).isCloseTo(1.0, org.assertj.core.data.Offset.offset(1e-4));
            assertThat(ea).isNotEqualTo(ec);
            float[] raw = ctx.embeddings(0, false);
            assertThat(LlamaContext.normalized(raw.clone())).containsExactly(ea);
        }
    }

    @Test
    void builtinChatTemplatesRender() {
        assertThat(ChatTemplates.builtinNames()).contains("chatml", "llama3", "mistral-v7");
        String out = ChatTemplates.apply("chatml", List.of(new ChatTemplates.Message("system", "Be brief."),
                new ChatTemplates.Message("user", "Hi")), true);
        assertThat(out).isEqualTo("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        assertThatThrownBy(() -> ChatTemplates.apply("{{ not a known template }}", List.of(new ChatTemplates.Message("user", "x")), true))
                .isInstanceOf(InvalidInputException.class).hasMessageContaining("does not know");
    }

    /**
     * The same tokens in sequences 0 and 1, position by position, the last position of each an
     * output: output {@code 2n-2} is sequence 0's, {@code 2n-1} sequence 1's.
     */
    static void fillTwo(Batch b, int[] tokens) {
        b.clear();
        for (int i = 0; i < tokens.length; i++) {
            b.add(tokens[i], i, 0, i == tokens.length - 1);
            b.add(tokens[i], i, 1, i == tokens.length - 1);
        }
    }

    static void fill(Batch b, int[] tokens, int seq) {
        b.clear();
        for (int i = 0; i < tokens.length; i++) {
            b.add(tokens[i], i, seq, i == tokens.length - 1);
        }
    }
}
