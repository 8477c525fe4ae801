package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * A plain draw (logit bias, temperature, seed) computed over the row ({@link SoftmaxDraw}) picks
 * what llama.cpp's chain picks for the same seed, whole or in chunks, and follows the softmax.
 */
class SoftmaxDrawTest extends StoriesModelTest {

    @Test
    void mersenneTwisterIsTheStandardOne() {
        SoftmaxDraw.Mt19937 mt = new SoftmaxDraw.Mt19937();
        mt.seed(5489);
        assertThat(Integer.toUnsignedLong(mt.next())).isEqualTo(3499211612L);
        assertThat(Integer.toUnsignedLong(mt.next())).isEqualTo(581869302L);
        for (int i = 3; i < 10000; i++) {
            mt.next();
        }
        // the C++ standard's check: the 10000th output of a default-constructed std::mt19937
        assertThat(Integer.toUnsignedLong(mt.next())).isEqualTo(4123659995L);
        mt.seed(5489);
        assertThat(mt.canonical()).isEqualTo((3499211612.0 + 581869302.0 * 4294967296.0) / 18446744073709551616.0);
    }

    @Test
    void weightsAreExpWithinAnUlp() {
        int n = 400_000;
        float[] x = new float[n + 4];
        for (int i = 0; i < n; i++) {
            x[i] = -110f + 110f * i / (n - 1); // every distance from the highest down to -110, 0 included
        }
        x[n] = Float.NEGATIVE_INFINITY;
        x[n + 1] = Float.NaN;
        x[n + 2] = -87.5f;
        x[n + 3] = -86.5f;
        float[] c = x.clone();
        float[] w = x.clone();
        SoftmaxDraw.weights(w, new int[w.length], w.length, 0f);
        int checked = 0;
        for (int i = 0; i < n; i++) {
            float exact = (float) Math.exp(c[i]);
            if (exact >= 1.7e-38f) {
                assertThat(Math.abs(w[i] - exact)).as("exp(%s)", c[i]).isLessThanOrEqualTo(Math.ulp(exact));
                checked++;
            } else if (exact < 1.5e-38f) {
                assertThat(w[i]).as("exp(%s), below the normal floats' range kept", c[i]).isZero();
            }
            assertThat(Float.isFinite(w[i]) && w[i] >= 0).isTrue();
        }
        assertThat(checked).isGreaterThan(n * 3 / 4);
        assertThat(w[n]).as("a banned token").isZero();
        assertThat(w[n + 1]).isNaN();
        assertThat(w[n + 2]).isZero();
        assertThat(w[n + 3]).isEqualTo((float) Math.exp(-86.5), org.assertj.core.data.Offset.offset(Math.ulp((float) Math.exp(-86.5))));
    }

    @Test
    void picksWhatLlamaCppsChainPicksForTheSameSeed() {
        Vocabulary v = model.vocabulary();
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> rows = logitRows(arena, 7, 0.3, 2, 6, 15);
            int config = 0;
            for (float temperature : new float[] {0.25f, 0.8f, 1.0f, 1.7f}) {
                for (boolean bias : new boolean[] {false, true}) {
                    long seed = 1000L + config++ * 77_777L;
                    try (Sampler ours = build(v, temperature, bias, seed, true); Sampler llama = build(v, temperature, bias, seed, false)) {
                        assertThat(ours.plainDraw()).isNotNull();
                        assertThat(llama.plainDraw()).isNull();
                        int[] a = new int[300];
                        int[] b = new int[300];
                        for (int d = 0; d < a.length; d++) {
                            MemorySegment row = rows.get(d % rows.size());
                            a[d] = ours.sampleRow(row);
                            b[d] = llama.sampleRow(row);
                        }
                        assertThat(a).as("temperature %s, bias %s", temperature, bias).containsExactly(b);
                        assertThat(Arrays.stream(a).distinct().count()).as("draws, not one token").isGreaterThan(5);
                        if (bias) {
                            assertThat(a).as("banned tokens").doesNotContain(3, 5);
                        }
                        // after a reset both generators start again from the seed
                        ours.reset();
                        llama.reset();
                        for (int d = 0; d < 50; d++) {
                            MemorySegment row = rows.get(d % rows.size());
                            assertThat(ours.sampleRow(row)).as("draw %d after reset", d).isEqualTo(llama.sampleRow(row)).isEqualTo(a[d]);
                        }
                    }
                }
            }
            float[][] before = rows.stream().map(r -> r.toArray(ValueLayout.JAVA_FLOAT)).toArray(float[][]::new);
            for (int r = 0; r < rows.size(); r++) {
                assertThat(rows.get(r).toArray(ValueLayout.JAVA_FLOAT)).as("row %d as it was", r).containsExactly(before[r]);
            }
        }
    }

    private static Sampler build(Vocabulary v, float temperature, boolean bias, long seed, boolean java) {
        Sampler.Builder b = Sampler.builder(v).temperature(temperature).seed(seed).javaDraws(java);
        if (bias) {
            b.logitBias(3, Float.NEGATIVE_INFINITY).logitBias(5, Float.NEGATIVE_INFINITY).logitBias(100, 4.5f).logitBias(200, -2f);
        }
        return b.build();
    }

    @Test
    void chainsThatKeepHistoryOrCutByTypicalityStayLlamaCpps() {
        Vocabulary v = model.vocabulary();
        for (Sampler.Builder b : List.of(Sampler.builder(v), Sampler.builder(v).temperature(0f).seed(1),
                Sampler.builder(v).temperature(0.8f).seed(1).typical(0.9f),
                Sampler.builder(v).temperature(0.8f).seed(1).penalties(64, 1.1f, 0, 0),
                Sampler.builder(v).temperature(0.8f).seed(1).grammar("root ::= [a-z]+", "root"))) {
            try (Sampler s = b.build()) {
                assertThat(s.plainDraw()).isNull();
                assertThat(s.truncatedDraw()).isFalse();
            }
        }
        for (Sampler.Builder b : List.of(Sampler.builder(v).temperature(0.8f).seed(1).topK(40),
                Sampler.builder(v).temperature(0.8f).seed(1).topP(0.9f), Sampler.builder(v).temperature(0.8f).seed(1).minP(0.05f))) {
            try (Sampler s = b.build()) {
                assertThat(s.plainDraw()).isNull();
                assertThat(s.truncatedDraw()).isTrue();
            }
        }
        // top-p 1, top-k 0 and min-p 0 are no stages: still a plain draw
        try (Sampler s = Sampler.builder(v).temperature(0.8f).seed(1).topP(1f).topK(0).minP(0f).build()) {
            assertThat(s.plainDraw()).isNotNull();
        }
    }

    @Test
    void chunksPickWhatTheWholeRowPicks() {
        int n = 131_072;
        Random random = new Random(11);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextGaussian() * 3);
        }
        a[1234] = 16.5f; // one likely token (about 14%) among many small ones
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment row = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
            int[] tokens = {9, 60_000, 131_071};
            float[] biases = {Float.NEGATIVE_INFINITY, 3f, 1f};
            for (int chunk : new int[] {8192, 1000, 70_000, n}) {
                SoftmaxDraw whole = new SoftmaxDraw(tokens, biases, 1.3f, 42);
                SoftmaxDraw split = new SoftmaxDraw(tokens, biases, 1.3f, 42);
                int chunks = SoftmaxDraw.chunks(n, chunk);
                float[] max = new float[chunks + 1];
                double[] sum = new double[chunks + 1];
                int[] picks = new int[200];
                for (int d = 0; d < picks.length; d++) {
                    picks[d] = whole.draw(row);
                    for (int k = 0; k < chunks; k++) {
                        split.chunk(row, chunk, k, max, sum, 1 + k);
                    }
                    int token = split.finish(row, chunk, max, sum, 1);
                    assertThat(token).as("draw %d in chunks of %d", d, chunk).isEqualTo(picks[d]);
                }
                assertThat(picks).as("the banned token").doesNotContain(9);
                assertThat(Arrays.stream(picks).filter(t -> t == 1234).count()).as("the likely token").isGreaterThan(10);
                assertThat(Arrays.stream(picks).distinct().count()).as("and many others").isGreaterThan(50);
            }
            assertThat(row.toArray(ValueLayout.JAVA_FLOAT)).as("the row as it was").containsExactly(a);
        }
    }

    /**
     * A temperature so small that the logits divided by it overflow (1e-40 passes the API's 0..2)
     * draws the highest token, the softmax's limit, where llama.cpp's weights would all be NaN.
     */
    @Test
    void aTinyTemperatureDrawsTheHighestToken() {
        Vocabulary v = model.vocabulary();
        try (Arena arena = Arena.ofConfined()) {
            for (MemorySegment row : logitRows(arena, 1, 3)) {
                float[] a = row.toArray(ValueLayout.JAVA_FLOAT);
                int best = 0;
                for (int i = 1; i < a.length; i++) {
                    best = a[i] > a[best] ? i : best;
                }
                int second = best == 0 ? 1 : 0;
                for (int i = 0; i < a.length; i++) {
                    second = i != best && a[i] > a[second] ? i : second;
                }
                try (Sampler plain = Sampler.builder(v).temperature(1e-40f).seed(3).build();
                     Sampler banned = Sampler.builder(v).temperature(1e-40f).logitBias(best, Float.NEGATIVE_INFINITY).seed(3).build();
                     Sampler cut = Sampler.builder(v).temperature(1e-40f).topK(50).minP(0.01f).seed(3).build()) {
                    assertThat(plain.plainDraw()).isNotNull();
                    assertThat(cut.truncatedDraw()).isTrue();
                    for (int d = 0; d < 5; d++) {
                        assertThat(plain.sampleRow(row)).isEqualTo(best);
                        assertThat(banned.sampleRow(row)).as("the highest banned").isEqualTo(second);
                        assertThat(cut.sampleRow(row)).isEqualTo(best);
                    }
                }
            }
        }
    }

    /** Frequencies of 40,000 draws over four live tokens against their softmax probabilities, at two temperatures. */
    @Test
    void drawsFollowTheSoftmax() {
        int n = 512;
        float[] a = new float[n];
        Arrays.fill(a, Float.NEGATIVE_INFINITY);
        float[] live = {2f, 1f, 0f, -1.5f};
        int[] at = {17, 100, 101, 400};
        for (int k = 0; k < live.length; k++) {
            a[at[k]] = live[k];
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment row = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
            for (float t : new float[] {1f, 0.5f}) {
                SoftmaxDraw draw = new SoftmaxDraw(new int[0], new float[0], t, 9);
                int draws = 40_000;
                int[] counts = new int[n];
                for (int d = 0; d < draws; d++) {
                    counts[draw.draw(row)]++;
                }
                double z = 0;
                for (float l : live) {
                    z += Math.exp(l / t);
                }
                int seen = 0;
                for (int k = 0; k < live.length; k++) {
                    double p = Math.exp(live[k] / t) / z;
                    double sd = Math.sqrt(draws * p * (1 - p));
                    assertThat((double) counts[at[k]]).as("token %d at temperature %s", at[k], t).isBetween(draws * p - 5 * sd, draws * p + 5 * sd);
                    seen += counts[at[k]];
                }
                assertThat(seen).as("only live tokens drawn").isEqualTo(draws);
            }
        }
    }
}
