package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.ref.WeakReference;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/**
 * A sampler dropped without {@code close()} has its native chain and candidates freed once it is
 * unreachable; one its context still holds (attached for backend sampling) is kept; a closed one is
 * freed once only.
 */
class SamplerLifetimeTest extends StoriesModelTest {
    private static final String GRAMMAR = "root ::= [a-z ]+";

    @Test
    void samplersDroppedWithoutCloseAreFreedWhenUnreachable() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64)) {
            int[] prompt = v.tokenize("Once upon a time", true, false);
            ModelAndContextTest.fill(batch, prompt, 0);
            ctx.decode(batch);
            int last = prompt.length - 1;
            int kinds = 3;
            int rounds = 200;
            // Warm-up: first-time allocations (llama.cpp's, the JIT's) are not what is measured.
            long start = Sampler.droppedUnclosed();
            dropSamplers(v, ctx, last, 50);
            assertThat(gcUntil(() -> Sampler.droppedUnclosed() >= start + (long) kinds * 50)).isTrue();
            long heapBefore = ResourceHygieneTest.mallocInUse();
            long counted = Sampler.droppedUnclosed();
            dropSamplers(v, ctx, last, rounds);
            assertThat(gcUntil(() -> Sampler.droppedUnclosed() >= counted + (long) kinds * rounds))
                    .as("every dropped sampler freed by the cleaner (counted %d of %d)", Sampler.droppedUnclosed() - counted, kinds * rounds)
                    .isTrue();
            long growth = ResourceHygieneTest.mallocInUse() - heapBefore;
            // Each round's penalties chain holds a 1 MiB window: left unfreed, the 200 rounds would hold
            // 200 MiB; the JVM's own native allocations come and go by tens of MiB (ResourceHygieneTest).
            System.out.printf("native heap after %d dropped samplers: %+d bytes%n", kinds * rounds, growth);
            assertThat(growth).as("native heap growth after the cleaner ran, bytes").isLessThan(48L << 20);
        }
    }

    @Test
    void anAttachedSamplerTheCallerDroppedStaysWithItsContext() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(2)); Batch batch = ctx.newBatch(64);
                Sampler host = Sampler.greedy(v)) {
            WeakReference<Sampler> attached = attachDropped(ctx, v);
            long seen = Sampler.droppedUnclosed();
            dropSamplers(v, null, -1, 1);
            assertThat(gcUntil(() -> Sampler.droppedUnclosed() > seen)).as("a collection ran and its cleaners with it").isTrue();
            assertThat(attached.get()).as("the context holds the attached chain").isNotNull();

            int[] prompt = v.tokenize("Once upon a time", true, false);
            ModelAndContextTest.fillTwo(batch, prompt);
            ctx.decode(batch);
            int onDevice = 2 * prompt.length - 2;
            int onHost = 2 * prompt.length - 1;
            Sampler chain = ctx.attachedSampler(0);
            assertThat(chain).isSameAs(attached.get());
            assertThat(chain.sample(ctx, onDevice)).as("the dropped-but-attached chain still picks").isEqualTo(host.sample(ctx, onHost));
            chain.close(); // detaches
            assertThat(ctx.attachedSampler(0)).isNull();
        }
    }

    @Test
    void aClosedSamplerIsFreedOnceAndNotCountedAsDropped() {
        Vocabulary v = model.vocabulary();
        long before = Sampler.droppedUnclosed();
        for (int i = 0; i < 100; i++) {
            Sampler s = Sampler.builder(v).grammar(GRAMMAR, "root").build();
            s.close();
            s.close(); // idempotent
        }
        // Three dropped samplers as a marker: once they are counted, the closed ones' cleaners had their chance.
        dropSamplers(v, null, -1, 1);
        assertThat(gcUntil(() -> Sampler.droppedUnclosed() >= before + 3)).isTrue();
        gcUntil(() -> false, 200);
        assertThat(Sampler.droppedUnclosed()).as("only the dropped markers were freed by the cleaner").isEqualTo(before + 3);
    }

    @Test
    void aGrammarChainRefusesToReadTheVocabularyOfAClosedModel() {
        // a grammar keeps llama.cpp's vocabulary and reads it to accept, to check and to reset
        LlamaModel own = LlamaModel.load(TestModels.stories(), TestModels.params());
        Vocabulary v = own.vocabulary();
        int token = v.tokenize(" a", false, false)[0];
        Sampler grammar = Sampler.builder(v).grammar("root ::= [a-z ]+", "root").build();
        Sampler greedy = Sampler.greedy(v);
        assertThat(grammar.grammarAllows(token)).isTrue();
        own.close();
        assertThatThrownBy(() -> grammar.accept(token)).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(() -> grammar.grammarAllows(token)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(grammar::reset).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> Sampler.builder(v).grammar("root ::= \"x\"", "root").build()).isInstanceOf(IllegalStateException.class);
        grammar.close(); // frees the chain: llama.cpp's grammar free reads no vocabulary
        greedy.close();
    }

    /** Attaches a greedy chain to sequence 0 and keeps no strong reference to it. */
    private static WeakReference<Sampler> attachDropped(LlamaContext ctx, Vocabulary v) {
        Sampler s = Sampler.greedy(v);
        assertThat(ctx.attachSampler(0, s)).isTrue();
        return new WeakReference<>(s);
    }

    /**
     * {@code rounds} times three samplers that hold native state: a greedy chain with a bias (this
     * project's stages, their state in an automatic arena), a grammar chain and a chain with a long
     * penalty window (sampled through the candidates when {@code ctx} is given), none closed.
     */
    private static void dropSamplers(Vocabulary v, LlamaContext ctx, int index, int rounds) {
        for (int i = 0; i < rounds; i++) {
            Sampler biased = Sampler.builder(v).logitBias(3, -2f).build();
            Sampler grammar = Sampler.builder(v).grammar(GRAMMAR, "root").build();
            // a window of 2^18 tokens: llama.cpp allocates it (1 MiB) when the chain is made
            Sampler penalties = Sampler.builder(v).penalties(1 << 18, 1.1f, 0f, 0f).build();
            if (ctx != null) {
                assertThat(biased.sample(ctx, index)).isNotEqualTo(3);
                assertThat(grammar.sample(ctx, index)).isBetween(0, v.size() - 1);
                assertThat(penalties.sample(ctx, index)).isBetween(0, v.size() - 1);
            }
        }
    }

    /** Runs collections until {@code done} holds, for up to 20 s; whether it held. */
    private static boolean gcUntil(BooleanSupplier done) {
        return gcUntil(done, 20_000);
    }

    private static boolean gcUntil(BooleanSupplier done, long millis) {
        long deadline = System.nanoTime() + millis * 1_000_000L;
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            System.gc();
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return true;
    }
}
