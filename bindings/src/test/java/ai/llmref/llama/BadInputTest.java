package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every bad input that could reach llama.cpp is refused in Java with a typed exception and a
 * useful message; the JVM (and the context) survive and keep working afterwards.
 */
class BadInputTest {
    static LlamaModel model;
    static LlamaContext ctx;
    static Batch batch;

    @TempDir Path tmp;

    @BeforeAll
    static void load() {
        model = LlamaModel.load(TestModels.stories(), TestModels.params());
        ctx = model.newContext(TestModels.small(2));
        batch = ctx.newBatch(16);
    }

    @AfterAll
    static void close() {
        batch.close();
        ctx.close();
        model.close();
    }

    @Test
    void multiGpuSplitSettingsAreCheckedBeforeLlamaCpp() {
        assertThatThrownBy(() -> ModelParams.defaults().withTensorSplit(1f, -1f)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("not negative");
        assertThatThrownBy(() -> ModelParams.defaults().withTensorSplit(0f, 0f)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("some device a share");
        assertThatThrownBy(() -> ModelParams.defaults().withTensorSplit(Float.NaN)).isInstanceOf(IllegalArgumentException.class);
        float[] many = new float[1024];
        Arrays.fill(many, 1f);
        assertThatThrownBy(() -> LlamaModel.load(TestModels.stories(), TestModels.params().withTensorSplit(many)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("llama_max_devices");
        // a split names shares per GPU: on the CPU it changes nothing, and with the layers on one GPU neither
        int[] reference = Generation.greedy(model, TestModels.small(1), "Once upon a time", 16);
        for (ModelParams.SplitMode mode : new ModelParams.SplitMode[] {ModelParams.SplitMode.NONE, ModelParams.SplitMode.LAYER}) {
            try (LlamaModel split = LlamaModel.load(TestModels.stories(), TestModels.params().withSplitMode(mode).withTensorSplit(1f, 0f))) {
                assertThat(split.placement().offloadedLayers()).isEqualTo(model.placement().offloadedLayers());
                assertThat(Generation.greedy(split, TestModels.small(1), "Once upon a time", 16)).as("split mode %s", mode).isEqualTo(reference);
            }
        }
        if (!GpuOffloadTest.EXPECT_GPU) {
            // tensor parallelism needs GPUs: llama.cpp refuses the model, a typed error
            assertThatThrownBy(() -> LlamaModel.load(TestModels.stories(), TestModels.params().withSplitMode(ModelParams.SplitMode.TENSOR)))
                    .isInstanceOf(ModelLoadException.class).hasMessageContaining("SPLIT_MODE_TENSOR");
        }
    }

    @Test
    void outOfRangeTokensAreRefused() {
        batch.clear();
        assertThatThrownBy(() -> batch.add(512, 0, 0, true)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("llama_decode").hasMessageContaining("token id 512 is outside the vocabulary (0..511)");
        assertThatThrownBy(() -> batch.add(-1, 0, 0, true)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> model.vocabulary().detokenize(new int[] {1, 99999}, false, false))
                .isInstanceOf(InvalidInputException.class).hasMessageContaining("token id 99999 at index 1");
        assertThatThrownBy(() -> model.vocabulary().tokenToPiece(Integer.MIN_VALUE, false)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> model.vocabulary().isEndOfGeneration(600)).isInstanceOf(InvalidInputException.class);
        assertStillWorks();
    }

    @Test
    void badPositionsAndSequencesAreRefused() {
        batch.clear();
        assertThatThrownBy(() -> batch.add(1, -5, 0, true)).isInstanceOf(InvalidInputException.class).hasMessageContaining("negative");
        assertThatThrownBy(() -> batch.add(1, ctx.sequenceContextSize(), 0, true)).isInstanceOf(ContextOverflowException.class)
                .hasMessageContaining("beyond the sequence's context");
        assertThatThrownBy(() -> batch.add(1, 0, 2, true)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("sequence id 2 is outside 0..1");
        assertThatThrownBy(() -> batch.add(1, 0, -1, true)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> batch.add(1, 0, new int[] {0, 7}, true)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> batch.add(1, 0, new int[0], true)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> ctx.removeTokens(5, 0, -1)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> ctx.copySequence(0, 9, 0, -1)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> ctx.removeTokens(0, 10, 3)).isInstanceOf(InvalidInputException.class).hasMessageContaining("[10, 3)");
        assertThatThrownBy(() -> ctx.maxPosition(-2)).isInstanceOf(InvalidInputException.class);
        // llama.cpp asserts (aborts) on a partial copy between per-sequence KV streams
        assertThatThrownBy(() -> ctx.copySequence(0, 1, 2, 5)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("only whole sequences");
        assertStillWorks();
    }

    @Test
    void aTokenOfSeveralSequencesNeedsAUnifiedCacheAndDistinctSequences() {
        // With a KV stream per sequence llama.cpp cannot place a shared token: it refused the whole
        // batch at decode, reported as "no room in the KV cache" (a ContextOverflowException)
        batch.clear();
        assertThatThrownBy(() -> batch.add(1, 0, new int[] {0, 1}, true)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("needs a unified KV cache");
        assertThatThrownBy(() -> batch.add(1, 0, new int[] {1, 1}, true)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("sequence id 1 is given twice");
        assertThat(batch.size()).isZero();
        try (LlamaContext unified = model.newContext(TestModels.small(2).withUnifiedKv(true)); Batch b = unified.newBatch(8)) {
            assertThatThrownBy(() -> b.add(1, 0, new int[] {0, 0}, true)).isInstanceOf(InvalidInputException.class);
            b.add(1, 0, new int[] {0, 1}, false).add(100, 1, new int[] {0, 1}, true);
            unified.decode(b);
            assertThat(unified.maxPosition(0)).isEqualTo(1);
            assertThat(unified.maxPosition(1)).isEqualTo(1);
        }
        assertStillWorks();
    }

    @Test
    void aShiftThatWouldOverflowAPositionIsRefused() {
        ctx.clearMemory();
        batch.clear();
        for (int i = 0; i < 8; i++) {
            batch.add(100 + i, i, 0, i == 7);
        }
        ctx.decode(batch);
        ctx.shiftPositions(0, -1, -1, Integer.MAX_VALUE - 100);
        assertThat(ctx.maxPosition(0)).isEqualTo(Integer.MAX_VALUE - 93);
        // llama.cpp's pos += delta overflowed, the positions wrapped below 0 and the cells were
        // silently dropped: the sequence came back empty
        assertThatThrownBy(() -> ctx.shiftPositions(0, -1, -1, 1000)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("leaves the int range");
        assertThat(ctx.maxPosition(0)).isEqualTo(Integer.MAX_VALUE - 93);
        assertThat(ctx.minPosition(0)).isEqualTo(Integer.MAX_VALUE - 100);
        ctx.shiftPositions(0, -1, -1, -(Integer.MAX_VALUE - 100));
        assertThat(ctx.minPosition(0)).isZero();
        assertThat(ctx.maxPosition(0)).isEqualTo(7);
        assertStillWorks();
    }

    @Test
    void bytesThatAreNoSequenceStateAreRefused() {
        assertThatThrownBy(() -> ctx.restoreSequence(0, new byte[5])).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("not a sequence state");
        assertThatThrownBy(() -> ctx.restoreSequence(0, "some text, not a state".getBytes())).isInstanceOf(InvalidInputException.class);
        assertStillWorks();
    }

    @Test
    void inconsistentPositionsAreATypedErrorNotAnAbort() {
        ctx.clearMemory();
        batch.clear();
        batch.add(1, 0, 0, false).add(100, 1, 0, true);
        ctx.decode(batch);
        batch.clear();
        batch.add(100, 7, 0, true); // skips positions 2..6: llama.cpp refuses such a batch
        assertThatThrownBy(() -> ctx.decode(batch)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("llama_decode");
        assertStillWorks();
    }

    @Test
    void oversizeAndEmptyBatchesAreRefused() {
        assertThatThrownBy(() -> ctx.newBatch(ctx.batchSize() + 1)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("batch capacity must be 1.." + ctx.batchSize());
        assertThatThrownBy(() -> ctx.newBatch(0)).isInstanceOf(InvalidInputException.class);
        try (Batch small = ctx.newBatch(2)) {
            small.add(1, 0, 0, false).add(1, 1, 0, false);
            assertThatThrownBy(() -> small.add(1, 2, 0, true)).isInstanceOf(InvalidInputException.class).hasMessageContaining("batch is full");
            small.clear();
            assertThatThrownBy(() -> ctx.decode(small)).isInstanceOf(InvalidInputException.class).hasMessageContaining("empty");
        }
        assertStillWorks();
    }

    @Test
    void contextOverflowIsTypedAtTheBoundary() {
        int limit = ctx.sequenceContextSize();
        ctx.clearMemory();
        try (Batch big = ctx.newBatch(ctx.batchSize())) {
            int pos = 0;
            while (pos < limit) {
                big.clear();
                for (int i = 0; i < big.capacity() && pos < limit; i++) {
                    big.add(100 + (pos % 50), pos++, 0, false);
                }
                ctx.decode(big);
            }
            assertThat(ctx.maxPosition(0)).isEqualTo(limit - 1);
            big.clear();
            assertThatThrownBy(() -> big.add(5, limit, 0, true)).isInstanceOf(ContextOverflowException.class);
        }
        assertStillWorks();
    }

    @Test
    void outputsOnlyWhereAskedFor() {
        ctx.clearMemory();
        batch.clear();
        batch.add(1, 0, 0, false).add(100, 1, 0, true);
        ctx.decode(batch);
        assertThat(ctx.logits(1)).hasSize(512);
        assertThatThrownBy(() -> ctx.logits(0)).isInstanceOf(InvalidInputException.class).hasMessageContaining("has no output");
        assertThatThrownBy(() -> ctx.logits(2)).isInstanceOf(InvalidInputException.class);
        try (Sampler s = Sampler.greedy(model.vocabulary())) {
            assertThatThrownBy(() -> s.sample(ctx, 0)).isInstanceOf(InvalidInputException.class);
            assertThatThrownBy(() -> s.sample(ctx, -1)).isInstanceOf(InvalidInputException.class);
            assertThat(s.sample(ctx, 1)).isBetween(0, 511);
        }
        assertThatThrownBy(() -> ctx.embeddings(0, false)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void badGrammarIsAnException() {
        for (String grammar : new String[] {"root ::= (\"a\"", "root ::= \"unterminated", "root ::= undefined-rule", "not a grammar at all {",
                "root ::= [a-z", "other ::= \"x\""}) {
            assertThatThrownBy(() -> Sampler.builder(model.vocabulary()).grammar(grammar, "root").build())
                    .as(grammar).isInstanceOf(GrammarException.class).hasMessageContaining("llama_sampler_init_grammar");
        }
        assertThatThrownBy(() -> Sampler.builder(model.vocabulary()).grammar("root ::= \"a\"\0", "root").build())
                .isInstanceOf(InvalidInputException.class).hasMessageContaining("NUL");
        try (Sampler ok = Sampler.builder(model.vocabulary()).grammar("root ::= [a-z]+", "root").build()) {
            assertThat(ok).isNotNull();
        }
        assertStillWorks();
    }

    @Test
    void badSamplerSettingsAreRefused() {
        Sampler.Builder b = Sampler.builder(model.vocabulary());
        assertThatThrownBy(() -> b.topP(1.5f)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> b.minP(Float.NaN)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> b.temperature(-1)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> b.topK(-3)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> b.logitBias(512, 1f)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> b.logitBias(3, Float.NaN)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> b.penalties(64, 0f, 0f, 0f)).isInstanceOf(InvalidInputException.class);
        // llama.cpp allocates the whole window when the chain is made (8 GiB here): a failed
        // allocation would end the process; -1 would silently turn the penalties off.
        assertThatThrownBy(() -> b.penalties(Integer.MAX_VALUE, 1.1f, 0f, 0f)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("0.." + Sampler.MAX_PENALTY_WINDOW);
        assertThatThrownBy(() -> b.penalties(-1, 1.1f, 0f, 0f)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("not as the context size");
        try (Sampler widest = Sampler.builder(model.vocabulary()).penalties(Sampler.MAX_PENALTY_WINDOW, 1.1f, 0f, 0f).build()) {
            assertThat(widest.offloadable()).isFalse();
        }
        assertThatThrownBy(() -> b.seed(-1)).isInstanceOf(InvalidInputException.class);
    }

    @Test
    void badContextParametersAreRefused() {
        assertThatThrownBy(() -> ContextParams.defaults().withBatch(64, 128)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("ubatchSize");
        assertThatThrownBy(() -> ContextParams.defaults().withSequences(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ContextParams.defaults().withContextSize(-1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ContextParams.defaults().withThreads(0, 1)).isInstanceOf(IllegalArgumentException.class);
        // a quantized V cache without flash attention (llama.cpp would refuse it too)
        assertThatThrownBy(() -> TestModels.small(1).withFlashAttention(ContextParams.FlashAttention.DISABLED)
                .withKvCacheTypes(ContextParams.KvCacheType.F16, ContextParams.KvCacheType.Q4_0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("typeV Q4_0 is quantized, which needs flash attention (AUTO or ENABLED), got DISABLED");
        // stories260K's attention heads are 8 wide: no whole 32-value block of a quantized cache fits
        // one, and llama.cpp refuses the context (a typed error, no crash)
        for (ContextParams.KvCacheType k : new ContextParams.KvCacheType[] {ContextParams.KvCacheType.F16, ContextParams.KvCacheType.Q8_0}) {
            assertThatThrownBy(() -> model.newContext(TestModels.small(1).withFlashAttention(ContextParams.FlashAttention.ENABLED)
                    .withKvCacheTypes(k, ContextParams.KvCacheType.Q4_0)))
                    .isInstanceOf(LlamaException.class).hasMessageContaining("llama_init_from_model")
                    .hasMessageContaining("does not divide n_embd_head");
        }
    }

    @Test
    void missingDirectoryAndForeignFilesAreRefusedBeforeLlamaCpp() throws IOException {
        assertRefused(tmp.resolve("nope.gguf"), "no such file");
        assertRefused(tmp, "is a directory");
        Path text = Files.writeString(tmp.resolve("text.gguf"), "this is a text file, not a model, but long enough");
        assertRefused(text, "is not a GGUF file");
        Path empty = Files.createFile(tmp.resolve("empty.gguf"));
        assertRefused(empty, "too short for a GGUF header");
        Path wrongVersion = Files.write(tmp.resolve("v9.gguf"), header(9, 0, 0));
        assertRefused(wrongVersion, "GGUF version 9");
        Path hugeCounts = Files.write(tmp.resolve("counts.gguf"), header(3, 1L << 40, 1L << 40));
        assertRefused(hugeCounts, "impossible");
    }

    @Test
    void anAlignmentOfAnotherTypeIsATypedRefusal() throws IOException {
        // general.alignment as an array of one u32 (32): Long.parseLong("[u32 x 1]") threw NumberFormatException
        byte[] real = Files.readAllBytes(TestModels.stories());
        byte[] key = "general.alignment".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        ByteBuffer kv = ByteBuffer.allocate(8 + key.length + 4 + 4 + 8 + 4).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(key.length).put(key).putInt(9).putInt(4).putLong(1).putInt(32);
        byte[] file = new byte[real.length + kv.capacity()];
        System.arraycopy(real, 0, file, 0, 24);
        System.arraycopy(kv.array(), 0, file, 24, kv.capacity());
        System.arraycopy(real, 24, file, 24 + kv.capacity(), real.length - 24);
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(16, b.getLong(16) + 1);
        assertRefused(Files.write(tmp.resolve("align-array.gguf"), file), "general.alignment of GGUF type 9, not u32");
        // a u32 that is no power of two
        b.put(24 + 8 + key.length, (byte) 4).putInt(24 + 8 + key.length + 4, 48);
        byte[] scalar = new byte[real.length + 8 + key.length + 4 + 4];
        System.arraycopy(file, 0, scalar, 0, 24 + 8 + key.length + 8);
        System.arraycopy(real, 24, scalar, 24 + 8 + key.length + 8, real.length - 24);
        assertRefused(Files.write(tmp.resolve("align-48.gguf"), scalar), "general.alignment 48, not a power of two");
    }

    @Test
    void truncatedAndCorruptModelsAreRefused() throws IOException {
        byte[] real = Files.readAllBytes(TestModels.stories());
        for (int cut : new int[] {30, 100, 1000, 5000, 20000}) {
            Path truncated = Files.write(tmp.resolve("cut" + cut + ".gguf"), Arrays.copyOf(real, cut));
            assertThatThrownBy(() -> LlamaModel.load(truncated, ModelParams.defaults().withGpuLayers(0)))
                    .as("cut at " + cut).isInstanceOf(InvalidModelFileException.class).hasMessageContaining("truncated");
        }
        // Data cut off after the header and tables: llama.cpp's own bounds check reports it.
        Path noData = Files.write(tmp.resolve("nodata.gguf"), Arrays.copyOf(real, real.length - 200_000));
        assertThatThrownBy(() -> LlamaModel.load(noData, ModelParams.defaults().withGpuLayers(0)))
                .isInstanceOf(LlamaException.class);
        // A string length field overwritten with garbage.
        byte[] corrupt = real.clone();
        ByteBuffer.wrap(corrupt).order(ByteOrder.LITTLE_ENDIAN).putLong(24, 0x7fff_ffff_ffffL);
        Path bad = Files.write(tmp.resolve("corrupt.gguf"), corrupt);
        assertThatThrownBy(() -> LlamaModel.load(bad, ModelParams.defaults().withGpuLayers(0)))
                .isInstanceOf(InvalidModelFileException.class).hasMessageContaining("impossible string length");
        assertStillWorks();
    }

    @Test
    void useAfterCloseThrowsAndCloseIsIdempotent() throws Exception {
        LlamaModel m = LlamaModel.load(TestModels.stories(), TestModels.params());
        Vocabulary v = m.vocabulary();
        LlamaContext c = m.newContext(TestModels.small(1));
        Batch b = c.newBatch(4);
        Sampler s = Sampler.greedy(v);
        assertThatThrownBy(m::close).isInstanceOf(IllegalStateException.class).hasMessageContaining("open context");
        b.close();
        b.close();
        assertThatThrownBy(() -> b.add(1, 0, 0, true)).isInstanceOf(IllegalStateException.class);
        c.close();
        c.close();
        assertThatThrownBy(() -> c.newBatch(1)).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(() -> c.logits(0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(c::clearMemory).isInstanceOf(IllegalStateException.class);
        c.abort(); // harmless after close
        s.close();
        s.close();
        assertThatThrownBy(() -> s.accept(1)).isInstanceOf(IllegalStateException.class);
        m.close();
        m.close();
        assertThatThrownBy(() -> v.tokenize("x", true, false)).isInstanceOf(IllegalStateException.class);
        // these read the freed vocabulary and answered as if it were open
        assertThatThrownBy(v::bos).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(v::eos).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(v::addsBos).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> new StreamingDetokenizer(v, false).push(1)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(m::info).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> m.newContext(TestModels.small(1))).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void aContextRefusesOtherThreads() throws Exception {
        CompletableFuture<Void> f = CompletableFuture.runAsync(() -> ctx.decode(batch));
        assertThatThrownBy(f::get).isInstanceOf(ExecutionException.class).cause()
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("belongs to thread");
    }

    private void assertRefused(Path p, String why) {
        assertThatThrownBy(() -> LlamaModel.load(p, ModelParams.defaults())).isInstanceOf(InvalidModelFileException.class)
                .hasMessageContaining(why).hasMessageContaining(p.toString());
    }

    private static byte[] header(int version, long tensors, long kvs) {
        return ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN).putInt(0x46554747).putInt(version)
                .putLong(tensors).putLong(kvs).array();
    }

    /** After every refusal the same context still generates. */
    private static void assertStillWorks() {
        ctx.clearMemory();
        batch.clear();
        int[] prompt = model.vocabulary().tokenize("Once upon a time", true, false);
        for (int i = 0; i < prompt.length; i++) {
            batch.add(prompt[i], i, 0, i == prompt.length - 1);
        }
        ctx.decode(batch);
        try (Sampler s = Sampler.greedy(model.vocabulary())) {
            assertThat(s.sample(ctx, prompt.length - 1)).isBetween(0, 511);
        }
    }
}
