package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link Logits#logSumExp} against the plain sum of {@code Math.exp} in double, on real and made-up rows. */
class LogitsTest extends StoriesModelTest {

    @Test
    void logSumExpIsThePlainOnesOnRealAndLargeRows() {
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> rows = new ArrayList<>(logitRows(arena, 3, 0.01, 1, 8, 40));
            int decoded = rows.size() - 4; // the stories model's positions, then four made-up rows
            Random random = new Random(9);
            for (int n : new int[] {1, 2, 8191, 8192, 8193, 50_000, 128_256}) {
                float[] a = new float[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (float) (random.nextGaussian() * 5 - 20);
                }
                a[random.nextInt(n)] = -Float.MAX_VALUE;
                if (n > 10_000) {
                    a[9000] = 30f; // the highest in the second chunk: the first chunk's sum is rescaled
                    a[20] = Float.NEGATIVE_INFINITY;
                    Arrays.fill(a, 0, Math.min(n, 8192), Float.NEGATIVE_INFINITY); // a chunk of nothing
                }
                rows.add(arena.allocateFrom(ValueLayout.JAVA_FLOAT, a));
            }
            for (MemorySegment row : rows) {
                double expected = BenchAccess.plainLogSumExp(row);
                double got = Logits.logSumExp(row);
                assertThat(got).as("%d logits", row.byteSize() / 4).isCloseTo(expected, within(1e-6 * Math.max(1, Math.abs(expected))));
            }
            assertThat(decoded).isGreaterThan(3);
            assertThat(rows).hasSize(decoded + 4 + 7);
        }
    }

    @Test
    void topIsThePlainInsertionLoops() {
        Random random = new Random(17);
        int checked = 0;
        try (Arena arena = Arena.ofConfined()) {
            for (int n : new int[] {1, 5, 1023, 1024, 1025, 20_000, 128_256}) {
                for (int kind = 0; kind < 5; kind++) {
                    float[] a = new float[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = switch (kind) {
                            case 0 -> (float) random.nextGaussian() * 3;
                            case 1 -> Math.round(random.nextGaussian() * 4) / 2f; // many ties
                            case 2 -> -40f + (float) random.nextGaussian(); // low, one block high below
                            case 3 -> random.nextBoolean() ? 0f : -0f; // zeros of both signs
                            default -> Float.NEGATIVE_INFINITY;
                        };
                    }
                    if (kind == 2 && n > 3000) {
                        for (int i = 2048; i < 2060; i++) {
                            a[i] = 10f + i % 3;
                        }
                    }
                    MemorySegment row = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
                    for (int count : new int[] {0, 1, 5, 20, 200}) {
                        int[] ids = new int[count];
                        float[] values = new float[count];
                        int kept = Logits.top(row, count, ids, values);
                        int[] refIds = new int[count];
                        float[] refValues = new float[count];
                        int refKept = BenchAccess.plainTop(row, count, refIds, refValues);
                        assertThat(kept).isEqualTo(refKept);
                        assertThat(Arrays.copyOf(ids, kept)).as("n %d, kind %d, count %d", n, kind, count)
                                .containsExactly(Arrays.copyOf(refIds, refKept));
                        assertThat(Arrays.copyOf(values, kept)).containsExactly(Arrays.copyOf(refValues, refKept));
                        checked++;
                    }
                }
            }
        }
        assertThat(checked).isEqualTo(7 * 5 * 5);
        assertThatThrownBy(() -> Logits.top(MemorySegment.NULL, 3, new int[2], new float[3])).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void nonFiniteAndEmptyRows() {
        try (Arena arena = Arena.ofConfined()) {
            float[] a = new float[20_000];
            Arrays.fill(a, Float.NEGATIVE_INFINITY);
            assertThat(Logits.logSumExp(arena.allocateFrom(ValueLayout.JAVA_FLOAT, a))).isEqualTo(Double.NEGATIVE_INFINITY);
            a[15_000] = 2.5f;
            assertThat(Logits.logSumExp(arena.allocateFrom(ValueLayout.JAVA_FLOAT, a))).isCloseTo(2.5, within(1e-9));
            a[100] = Float.NaN;
            assertThat(Logits.logSumExp(arena.allocateFrom(ValueLayout.JAVA_FLOAT, a))).isNaN();
            a[100] = Float.POSITIVE_INFINITY;
            assertThat(Logits.logSumExp(arena.allocateFrom(ValueLayout.JAVA_FLOAT, a))).isNaN();
            assertThatThrownBy(() -> Logits.logSumExp(MemorySegment.NULL)).isInstanceOf(IllegalArgumentException.class);
        }
    }
}
