package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * llama.cpp's other sampling stages (llama-server's parameters): each is set up so that its pick is
 * known from the logits alone, and that pick differs from what the chain picks without it.
 */
class SamplerStagesTest extends StoriesModelTest {
    private static LlamaContext ctx;
    private static Batch batch;
    private static int last;
    private static float[] logits;
    private static int top;
    private static int worst;

    @BeforeAll
    static void decode() {
        ctx = model.newContext(TestModels.small(1));
        batch = ctx.newBatch(64);
        int[] prompt = model.vocabulary().tokenize("Once upon a time, there was a little", true, false);
        ModelAndContextTest.fill(batch, prompt, 0);
        ctx.decode(batch);
        last = prompt.length - 1;
        logits = ctx.logits(last);
        top = 0;
        worst = 0;
        for (int i = 1; i < logits.length; i++) {
            top = logits[i] > logits[top] ? i : top;
            worst = logits[i] < logits[worst] ? i : worst;
        }
    }

    @AfterAll
    static void close() {
        batch.close();
        ctx.close();
    }

    private static Sampler.Builder drawing(long seed) {
        return Sampler.builder(model.vocabulary()).temperature(1f).seed(seed);
    }

    private static int pick(Sampler.Builder b) {
        try (Sampler s = b.build()) {
            return s.sample(ctx, last);
        }
    }

    /** Picks of 40 seeds. */
    private static Set<Integer> picks(java.util.function.LongFunction<Sampler.Builder> chain) {
        Set<Integer> out = new HashSet<>();
        for (long seed = 1; seed <= 40; seed++) {
            out.add(pick(chain.apply(seed)));
        }
        return out;
    }

    @Test
    void aTemperatureOfOneDrawsSeveralTokens() {
        assertThat(picks(SamplerStagesTest::drawing)).as("the baseline the stages below narrow").hasSizeGreaterThan(2);
    }

    /** XTC at probability 1 and threshold 0 removes every candidate but the least likely one. */
    @Test
    void xtcExcludesTheTopChoices() {
        assertThat(picks(seed -> drawing(seed).xtc(1f, 0f))).containsExactly(worst);
        assertThat(picks(seed -> drawing(seed).xtc(0f, 0f))).as("probability 0: no stage").hasSizeGreaterThan(2);
        // with min_keep 2 the cut would leave one: it is not made
        assertThat(picks(seed -> drawing(seed).xtc(1f, 0f).minKeep(2))).hasSizeGreaterThan(2);
    }

    /** Top-n-sigma with a tiny n keeps the best token alone. */
    @Test
    void topNSigmaKeepsTokensNearTheBest() {
        assertThat(picks(seed -> drawing(seed).topNSigma(1e-6f))).containsExactly(top);
        assertThat(picks(seed -> drawing(seed).topNSigma(-1f))).as("negative: no stage").hasSizeGreaterThan(2);
    }

    /** Mirostat 2 with a target surprise of 0 keeps the best token alone; Mirostat 1 draws, the same for a seed. */
    @Test
    void mirostatDrawsTowardItsTargetSurprise() {
        assertThat(picks(seed -> drawing(seed).mirostat(2, 0f, 0.1f))).containsExactly(top);
        assertThat(pick(drawing(7).mirostat(1, 5f, 0.1f))).isEqualTo(pick(drawing(7).mirostat(1, 5f, 0.1f)));
        assertThat(picks(seed -> drawing(seed).mirostat(1, 5f, 0.1f))).hasSizeGreaterThan(1);
    }

    /** A dynamic temperature of 1 +- 1 with a huge exponent is (almost) 0 on a row that is not flat: greedy. */
    @Test
    void aDynamicTemperatureFollowsTheEntropy() {
        assertThat(picks(seed -> drawing(seed).dynamicTemperature(1f, 1000f))).containsExactly(top);
    }

    /** top_p 0 keeps one candidate; min_keep n keeps n, among the n best. */
    @Test
    void minKeepKeepsThatManyCandidates() {
        assertThat(picks(seed -> drawing(seed).topP(0f))).containsExactly(top);
        Set<Integer> kept = picks(seed -> drawing(seed).topP(0f).minKeep(3));
        assertThat(kept).hasSizeGreaterThan(1).hasSizeLessThanOrEqualTo(3).contains(top);
        float third = sortedDescending()[2];
        for (int t : kept) {
            assertThat(logits[t]).isGreaterThanOrEqualTo(third);
        }
    }

    /** The order decides: XTC before top-k 1 leaves the worst token, after it the best. */
    @Test
    void theOrderOfTheStagesIsKept() {
        List<Sampler.Stage> xtcFirst = List.of(Sampler.Stage.XTC, Sampler.Stage.TOP_K, Sampler.Stage.TEMPERATURE);
        List<Sampler.Stage> topKFirst = List.of(Sampler.Stage.TOP_K, Sampler.Stage.XTC, Sampler.Stage.TEMPERATURE);
        assertThat(picks(seed -> drawing(seed).topK(1).xtc(1f, 0f).order(xtcFirst))).containsExactly(worst);
        assertThat(picks(seed -> drawing(seed).topK(1).xtc(1f, 0f).order(topKFirst))).containsExactly(top);
        assertThat(picks(seed -> drawing(seed).topK(1).order(List.of(Sampler.Stage.TEMPERATURE)))).as("top-k left out of the order")
                .hasSizeGreaterThan(2);
    }

    /**
     * DRY: after "a b top c a b", {@code top} would repeat "a b top"; with a large multiplier
     * the greedy pick moves off it. Without DRY, or with "b" a sequence breaker, it stays.
     */
    @Test
    void dryPenalisesATokenThatRepeatsASequence() {
        Vocabulary v = model.vocabulary();
        int[] words = v.tokenize("Once upon a time", false, false);
        int a = words[0];
        int b = words[1];
        int c = words[2];
        assertThat(Set.of(a, b, c, top)).as("four different tokens").hasSize(4);
        assertThat(v.tokenText(b).replace("\u2581", "")).isNotEmpty();
        int[] history = {a, b, top, c, a, b};
        java.util.function.Function<Sampler.Builder, Integer> after = builder -> {
            try (Sampler s = builder.build()) {
                for (int t : history) {
                    s.acceptOutsideGrammar(t);
                }
                return s.sample(ctx, last);
            }
        };
        Sampler.Builder greedy = Sampler.builder(v);
        assertThat(after.apply(greedy)).isEqualTo(top);
        assertThat(after.apply(Sampler.builder(v).dry(100f, 1.75f, 1, 64, List.of("\n")))).isNotEqualTo(top);
        assertThat(after.apply(Sampler.builder(v).dry(100f, 1.75f, 1, 64, List.of(v.tokenText(b).replace("\u2581", "")))))
                .as("b's text a breaker: the repeated sequence ends at b").isEqualTo(top);
        assertThat(after.apply(Sampler.builder(v).dry(100f, 1.75f, 1, 64, List.of("\n")).order(List.of(Sampler.Stage.PENALTIES))))
                .as("DRY left out of the order").isEqualTo(top);
        // a stage made once (on another platform thread) and copied into chains: the same picks, each copy its own history
        DryStage stage;
        try (var pool = java.util.concurrent.Executors.newSingleThreadExecutor()) {
            stage = pool.submit(() -> DryStage.create(v, 100f, 1.75f, 1, 64, List.of(v.tokenText(b).replace("\u2581", "")))).get();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        try (DryStage breaking = stage; DryStage plain = DryStage.create(v, 100f, 1.75f, 1, 64, List.of("\n"))) {
            assertThat(after.apply(Sampler.builder(v).dry(plain))).isNotEqualTo(top);
            assertThat(after.apply(Sampler.builder(v).dry(plain))).as("a second copy starts without the first one's history").isNotEqualTo(top);
            assertThat(after.apply(Sampler.builder(v).dry(breaking))).isEqualTo(top);
            try (Sampler s = Sampler.builder(v).dry(plain).build()) {
                assertThat(s.sample(ctx, last)).as("no history yet: no penalty").isEqualTo(top);
            }
        }
        assertThatThrownBy(() -> stage.copy()).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> DryStage.create(v, 0f, 1.75f, 1, 64, List.of())).isInstanceOf(InvalidInputException.class);
    }

    /** The repetition penalty divides a repeated token's positive logit. */
    @Test
    void theRepetitionPenaltyMovesOffARepeatedToken() {
        Vocabulary v = model.vocabulary();
        try (Sampler s = Sampler.builder(v).penalties(64, 1000f, 0f, 0f).build()) {
            s.acceptOutsideGrammar(top);
            assertThat(logits[top]).as("a positive logit, which the penalty divides").isPositive();
            assertThat(s.sample(ctx, last)).isNotEqualTo(top);
        }
    }

    @Test
    void badSettingsAreRefusedBeforeLlamaCpp() {
        Vocabulary v = model.vocabulary();
        assertThatThrownBy(() -> Sampler.builder(v).dry(1f, 0.5f, 2, 64, List.of())).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("dry_base");
        assertThatThrownBy(() -> Sampler.builder(v).dry(1f, 1.75f, 2, 64, List.of(""))).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).dry(1f, 1.75f, 2, 64, List.of("x".repeat(41)))).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).dry(1f, 1.75f, 2, 64, java.util.Collections.nCopies(17, "x")))
                .isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).dry(1f, 1.75f, 2, -1, List.of())).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).dry(Float.NaN, 1.75f, 2, 64, List.of())).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).mirostat(3, 5f, 0.1f)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).mirostat(2, 21f, 0.1f)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).mirostat(2, 5f, 2f)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).xtc(1.5f, 0.1f)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).topNSigma(Float.POSITIVE_INFINITY)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).dynamicTemperature(-1f, 1f)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).minKeep(v.size() + 1)).isInstanceOf(InvalidInputException.class);
        assertThatThrownBy(() -> Sampler.builder(v).order(List.of(Sampler.Stage.TOP_K, Sampler.Stage.TOP_K)))
                .isInstanceOf(InvalidInputException.class);
    }

    private static float[] sortedDescending() {
        float[] s = logits.clone();
        java.util.Arrays.sort(s);
        for (int i = 0; i < s.length / 2; i++) {
            float t = s[i];
            s[i] = s[s.length - 1 - i];
            s[s.length - 1 - i] = t;
        }
        return s;
    }
}
