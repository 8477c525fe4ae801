package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.llama_sampler_apply;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_free;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init_greedy;
import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.bindings.ffi.llama_token_data_array;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The blocked argmax ({@link Argmax}) picks what llama.cpp's greedy stage picks on the same logits,
 * on rows built to break it: ties within and across blocks, maxima at block edges, zeros of both
 * signs, infinities, NaNs of both signs anywhere, rows shorter and longer than a block; and its
 * maximum over float arrays is {@code Math.max} folded over them.
 */
class ArgmaxTest {
    private static final int VOCAB = 128_256;

    @BeforeAll
    static void loadNatives() {
        LlamaBackend.initialize();
    }

    @Test
    void randomRowsOfManySizes() {
        Random random = new Random(41);
        int[] sizes = {1, 2, 7, Argmax.BLOCK - 1, Argmax.BLOCK, Argmax.BLOCK + 1, 3 * Argmax.BLOCK + 17, 32_000, VOCAB};
        int checked = 0;
        for (int n : sizes) {
            for (int r = 0; r < 12; r++) {
                float scale = r % 3 == 0 ? 0.01f : r % 3 == 1 ? 1f : 30f;
                float shift = r % 2 == 0 ? 0f : -50f; // all negative: the keys of negative floats are flipped
                float[] a = new float[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (float) random.nextGaussian() * scale + shift;
                }
                assertSamePick("random n=" + n + " r=" + r, a);
                checked++;
            }
        }
        assertThat(checked).isEqualTo(sizes.length * 12);
    }

    @Test
    void tiesPickTheFirstWherever() {
        int block = Argmax.BLOCK;
        int[][] placements = {
            {5, 9}, {block - 1, block}, {block, block + 1}, {0, VOCAB - 1}, {3 * block + 2, 20 * block, VOCAB - 1},
            {VOCAB - 2, VOCAB - 1}, {2 * block - 1, 2 * block - 2},
        };
        for (float top : new float[] {7.5f, -0.001f, Float.MAX_VALUE, Float.MIN_VALUE, Float.POSITIVE_INFINITY}) {
            for (int[] at : placements) {
                float[] a = noise(VOCAB, 3, -100f);
                for (int i : at) {
                    a[i] = top;
                }
                int first = Arrays.stream(at).min().getAsInt();
                assertThat(Argmax.of(row(a))).as("top %s at %s", top, Arrays.toString(at)).isEqualTo(first);
                assertSamePick("ties " + top, a);
            }
        }
        float[] flat = new float[VOCAB];
        Arrays.fill(flat, -3.25f);
        assertThat(Argmax.of(row(flat))).isZero();
        assertSamePick("all equal", flat);
        Arrays.fill(flat, Float.NEGATIVE_INFINITY);
        assertSamePick("every token banned", flat);
    }

    @Test
    void zerosNaNsAndInfinitiesAsLlamaCpp() {
        List<float[]> rows = new ArrayList<>();
        Consumer<float[]> add = rows::add;
        // zeros of both signs as the maximum, in either order, in one block or two
        for (int[] at : new int[][] {{100, 200}, {200, 100}, {100, 5000}, {5000, 100}}) {
            float[] a = noise(VOCAB, 1, -10f);
            a[at[0]] = -0f;
            a[at[1]] = 0f;
            add.accept(a);
        }
        float[] zeros = new float[VOCAB];
        zeros[0] = -0f;
        add.accept(zeros);
        // NaNs of both signs: first, in the middle, last, beside the maximum, everywhere
        float negativeNaN = Float.intBitsToFloat(0xffc00000);
        for (float nan : new float[] {Float.NaN, negativeNaN}) {
            for (int at : new int[] {0, 1, 4095, 4096, 60_000, VOCAB - 1}) {
                float[] a = noise(VOCAB, 2, 0f);
                a[at] = nan;
                add.accept(a);
                float[] b = noise(VOCAB, 2, 0f);
                b[70_000] = 50f;
                b[at] = nan;
                add.accept(b);
            }
            float[] all = new float[VOCAB];
            Arrays.fill(all, nan);
            add.accept(all);
        }
        // infinities: a banned first token, a row of negative infinity but one, positive infinity
        float[] a = noise(VOCAB, 1, 0f);
        a[0] = Float.NEGATIVE_INFINITY;
        add.accept(a);
        float[] b = new float[VOCAB];
        Arrays.fill(b, Float.NEGATIVE_INFINITY);
        b[99_999] = -1e30f;
        add.accept(b);
        float[] c = noise(VOCAB, 1, 0f);
        c[12_345] = Float.POSITIVE_INFINITY;
        c[54_321] = Float.POSITIVE_INFINITY;
        add.accept(c);
        // subnormals and tiny negatives around zero
        float[] d = new float[VOCAB];
        Arrays.fill(d, -Float.MIN_VALUE);
        d[77_777] = Float.MIN_VALUE;
        add.accept(d);
        for (int i = 0; i < rows.size(); i++) {
            assertSamePick("edge row " + i, rows.get(i));
        }
        assertThat(rows).hasSize(5 + 2 * (12 + 1) + 4);
    }

    @Test
    void maxIsMathMaxFolded() {
        Random random = new Random(7);
        float negativeNaN = Float.intBitsToFloat(0xffc00000);
        float[] specials = {0f, -0f, Float.NaN, negativeNaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
            Float.MIN_VALUE, -Float.MIN_VALUE, Float.MAX_VALUE, -Float.MAX_VALUE};
        int checked = 0;
        for (int n : new int[] {1, 2, 3, 15, 16, 17, 8192, 8193}) {
            for (int r = 0; r < 40; r++) {
                float[] a = new float[n + 5]; // values past len must not count
                for (int i = 0; i < a.length; i++) {
                    a[i] = r % 4 == 0 ? -Math.abs((float) random.nextGaussian()) : (float) random.nextGaussian() * 4;
                }
                // a few special values in most rows (none in every fifth)
                for (int j = 0; r % 5 != 0 && j < 1 + r % 3; j++) {
                    a[random.nextInt(n)] = specials[random.nextInt(specials.length)];
                }
                a[n] = Float.NaN;
                a[n + 1] = Float.POSITIVE_INFINITY;
                float expected = a[0];
                for (int i = 1; i < n; i++) {
                    expected = Math.max(expected, a[i]);
                }
                float got = Argmax.max(a, n);
                String what = "n=" + n + " r=" + r + " " + Arrays.toString(Arrays.copyOf(a, Math.min(n, 20)));
                if (Float.isNaN(expected)) {
                    assertThat(got).as(what).isNaN();
                } else {
                    assertThat(Float.floatToRawIntBits(got)).as(what + ": the same float, sign of a zero included")
                            .isEqualTo(Float.floatToRawIntBits(expected));
                }
                checked++;
            }
        }
        assertThat(checked).isEqualTo(8 * 40);
        assertThat(Float.floatToRawIntBits(Argmax.max(new float[] {-0f, 0f}, 2))).isEqualTo(Float.floatToRawIntBits(0f));
        assertThat(Float.floatToRawIntBits(Argmax.max(new float[] {-0f, -1f}, 2))).isEqualTo(Float.floatToRawIntBits(-0f));
        assertThat(Argmax.max(new float[] {1f, negativeNaN, 2f}, 3)).isNaN();
    }

    private static float[] noise(int n, long seed, float shift) {
        Random random = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextGaussian() + shift;
        }
        return a;
    }

    private static MemorySegment row(float[] a) {
        return Arena.ofAuto().allocateFrom(ValueLayout.JAVA_FLOAT, a);
    }

    /** Argmax, the plain loop and llama.cpp's greedy stage (over candidates in token order) agree. */
    private static void assertSamePick(String what, float[] a) {
        int llama = llamaCppGreedy(a);
        assertThat(Argmax.of(row(a))).as(what + ": the blocked argmax against llama.cpp's greedy stage").isEqualTo(llama);
        assertThat(Argmax.plain(row(a), a.length)).as(what + ": the plain loop").isEqualTo(llama);
    }

    private static int llamaCppGreedy(float[] a) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment array = TestModels.candidates(arena, a);
            MemorySegment greedy = llama_sampler_init_greedy();
            try {
                llama_sampler_apply(greedy, array);
            } finally {
                llama_sampler_free(greedy);
            }
            return (int) llama_token_data_array.selected(array);
        }
    }
}
