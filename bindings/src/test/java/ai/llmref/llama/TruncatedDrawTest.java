package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Draws after top-k, top-p and min-p computed over the row ({@link TruncatedDraw}): the picks are
 * llama.cpp's for the same seed, the kept tokens those of the stages' rules, the draws follow the
 * kept tokens' softmax.
 */
class TruncatedDrawTest extends StoriesModelTest {
    /** top-k, top-p, min-p, temperature: each stage alone, and together as llama-server applies them. */
    private static final Object[][] CONFIGS = {
        {40, 1f, 0f, 0.8f}, {0, 0.9f, 0f, 1f}, {0, 0.5f, 0f, 0.7f}, {0, 1f, 0.05f, 1.2f}, {40, 0.95f, 0.05f, 0.8f},
        {0, 0.95f, 0.1f, 0.6f}, {5, 1f, 0f, 1f}, {600, 0.99f, 0f, 1f}, {1, 1f, 0f, 1f}, {0, 0.999f, 0f, 1.5f},
        {128, 1f, 0f, 1f},
    };

    private static Sampler build(Vocabulary v, Object[] c, boolean bias, long seed, boolean java) {
        Sampler.Builder b = Sampler.builder(v).temperature((float) c[3]).seed(seed).javaDraws(java);
        if ((int) c[0] > 0) {
            b.topK((int) c[0]);
        }
        if ((float) c[1] < 1) {
            b.topP((float) c[1]);
        }
        if ((float) c[2] > 0) {
            b.minP((float) c[2]);
        }
        if (bias) {
            b.logitBias(3, Float.NEGATIVE_INFINITY).logitBias(100, 6f).logitBias(200, -2f);
        }
        return b.build();
    }

    @Test
    void picksWhatLlamaCppsChainPicksForTheSameSeed() {
        Vocabulary v = model.vocabulary();
        try (Arena arena = Arena.ofConfined()) {
            // no ties here: llama.cpp's sorts leave the order of equal logits to the C++ library
            List<MemorySegment> rows = logitRows(arena, 3, 0.05, 1, 4, 12);
            int draws = 0;
            int config = 0;
            for (Object[] c : CONFIGS) {
                for (boolean bias : new boolean[] {false, true}) {
                    long seed = 500L + config++ * 31_337L;
                    try (Sampler ours = build(v, c, bias, seed, true); Sampler llama = build(v, c, bias, seed, false)) {
                        assertThat(ours.truncatedDraw()).isTrue();
                        assertThat(llama.truncatedDraw()).isFalse();
                        for (int d = 0; d < 200; d++, draws++) {
                            MemorySegment row = rows.get(d % rows.size());
                            assertThat(ours.sampleRow(row)).as("%s, bias %s, draw %d", Arrays.toString(c), bias, d)
                                    .isEqualTo(llama.sampleRow(row));
                        }
                    }
                }
            }
            assertThat(draws).isEqualTo(CONFIGS.length * 2 * 200);
        }
    }

    /**
     * Every token banned: top-p has nothing to weigh and keeps every token, in order, and the draw
     * takes the softmax's limit, the first of the equal highest logits (llama.cpp's weights are all
     * NaN there, and its pick an artefact of its sort).
     */
    @Test
    void aRowWithNothingToWeighKeepsEveryToken() {
        int n = 131_072;
        try (Arena arena = Arena.ofConfined()) {
            float[] banned = new float[n];
            Arrays.fill(banned, Float.NEGATIVE_INFINITY);
            MemorySegment row = arena.allocateFrom(ValueLayout.JAVA_FLOAT, banned);
            TruncatedDraw draw = new TruncatedDraw(new int[0], new float[0], 0, 0.9f, 0f, 1f, 1);
            assertThat(draw.kept(row)).containsExactly(IntStream.range(0, n).toArray());
            assertThat(draw.draw(row)).isZero();
        }
    }

    /**
     * On 128k rows, flat to peaked, with ties and banned tokens: the kept tokens are those a plain
     * reading of the rules gives (every candidate sorted, sums in double). Two rows are built for
     * top-p's start from a steep row's highest tokens: a few peaks over a plateau just beyond that
     * start's reach, whose mass only a top-p of 0.999 needs (so it starts over from every token),
     * and 500 tokens spread over the 16 nats below the highest above a floor far below.
     */
    @Test
    void keepsWhatTheRulesKeepOnALargeVocabulary() {
        int n = 131_072;
        Random random = new Random(5);
        try (Arena arena = Arena.ofConfined()) {
            for (double scale : new double[] {0.02, 0.7, 3, 9, -1, -2}) {
                float[] a = new float[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (float) (random.nextGaussian() * scale);
                }
                if (scale == -1) { // peaks over a plateau 16.5 nats down
                    for (int i = 0; i < n; i++) {
                        a[i] = -16.5f + (float) random.nextGaussian() * 0.01f;
                    }
                    a[77] = 0f;
                    a[1000] = 0f;
                    a[50_000] = -0.3f;
                    a[n - 1] = -2f;
                }
                if (scale == -2) { // 500 tokens within 15 nats of the highest, the rest 40 down
                    for (int i = 0; i < n; i++) {
                        a[i] = -40f + (float) random.nextGaussian() * 0.1f;
                    }
                    for (int k = 0; k < 500; k++) {
                        a[random.nextInt(n)] = -15f * random.nextFloat();
                    }
                }
                if (scale == 0.7) {
                    for (int i = 0; i < n; i++) {
                        a[i] = Math.round(a[i] * 8) / 8f; // many ties
                    }
                }
                MemorySegment row = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
                int[] biasTokens = {10, 20, 30};
                float[] biasValues = {Float.NEGATIVE_INFINITY, 5f, -1f};
                float[] x = a.clone();
                for (int i = 0; i < biasTokens.length; i++) {
                    x[biasTokens[i]] += biasValues[i];
                }
                int[] order = IntStream.range(0, n).boxed().sorted(Comparator.<Integer>comparingDouble(i -> -x[i])
                        .thenComparingInt(i -> i)).mapToInt(Integer::intValue).toArray();
                for (Object[] c : CONFIGS) {
                    TruncatedDraw draw = new TruncatedDraw(biasTokens, biasValues, (int) c[0], (float) c[1], (float) c[2], (float) c[3], 1);
                    int[] kept = draw.kept(row);
                    int[] expected = reference(x, order, (int) c[0], (float) c[1], (float) c[2]);
                    assertThat(sorted(kept)).as("scale %s, %s: %d kept", scale, Arrays.toString(c), kept.length)
                            .containsExactly(sorted(expected));
                    if (kept.length <= TruncatedDraw.SORT_LIMIT && ((int) c[0] > 0 || (float) c[1] < 1)) {
                        for (int i = 1; i < kept.length; i++) {
                            float prev = a[kept[i - 1]] + bias(kept[i - 1], biasTokens, biasValues);
                            float cur = a[kept[i]] + bias(kept[i], biasTokens, biasValues);
                            assertThat(prev).as("walked by logit, highest first").isGreaterThanOrEqualTo(cur);
                        }
                    }
                    assertThat(kept).as("banned").doesNotContain(10);
                    int token = draw.draw(row);
                    assertThat(kept).contains(token);
                }
            }
        }
    }

    private static float bias(int token, int[] tokens, float[] values) {
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] == token) {
                return values[i];
            }
        }
        return 0f;
    }

    private static int[] sorted(int[] a) {
        int[] c = a.clone();
        Arrays.sort(c);
        return c;
    }

    /**
     * The rules read plainly over the biased logits {@code x} and every token sorted by them
     * ({@code order}): top-k, then top-p over a softmax in double, then min-p.
     */
    private static int[] reference(float[] x, int[] order, int topK, float topP, float minP) {
        int size = x.length;
        if (topK > 0) {
            size = Math.min(topK, size);
        }
        if (topP < 1) {
            double max = x[order[0]];
            double z = 0;
            for (int i = 0; i < size; i++) {
                z += Math.exp(x[order[i]] - max);
            }
            double cum = 0;
            for (int i = 0; i < size; i++) {
                cum += Math.exp(x[order[i]] - max);
                if (cum >= topP * z) {
                    size = i + 1;
                    break;
                }
            }
        }
        if (minP > 0) {
            float min = x[order[0]] + (float) Math.log(minP);
            int i = 1;
            while (i < size && x[order[i]] >= min) {
                i++;
            }
            size = i;
        }
        int[] kept = new int[size];
        for (int i = 0; i < size; i++) {
            kept[i] = order[i];
        }
        return kept;
    }

    /** 40,000 draws over five live tokens with top-p 0.8 at two temperatures: the lowest two are cut, the rest drawn by their softmax. */
    @Test
    void drawsFollowTheKeptTokensSoftmax() {
        float[] a = new float[512];
        Arrays.fill(a, Float.NEGATIVE_INFINITY);
        float[] live = {2f, 1.5f, 1f, -1f, -2f}; // probabilities 0.42 0.26 0.16 0.02 ... : 0.8 is reached at the third
        int[] at = {40, 7, 300, 12, 500};
        for (int k = 0; k < live.length; k++) {
            a[at[k]] = live[k];
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment row = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
            for (float t : new float[] {1f, 2f}) {
                TruncatedDraw draw = new TruncatedDraw(new int[0], new float[0], 0, 0.8f, 0f, t, 77);
                assertThat(draw.kept(row)).containsExactly(40, 7, 300);
                int draws = 40_000;
                int[] counts = new int[a.length];
                for (int d = 0; d < draws; d++) {
                    counts[draw.draw(row)]++;
                }
                double z = 0;
                for (int k = 0; k < 3; k++) {
                    z += Math.exp(live[k] / t);
                }
                for (int k = 0; k < 3; k++) {
                    double p = Math.exp(live[k] / t) / z;
                    double sd = Math.sqrt(draws * p * (1 - p));
                    assertThat((double) counts[at[k]]).as("token %d at temperature %s", at[k], t).isBetween(draws * p - 5 * sd, draws * p + 5 * sd);
                }
                assertThat(counts[at[0]] + counts[at[1]] + counts[at[2]]).as("only kept tokens").isEqualTo(draws);
            }
        }
    }
}
