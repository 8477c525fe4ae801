package ai.llmref.llama;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Computations over a logits row (one position's output of a decode, {@code vocabSize} floats). */
public final class Logits {
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private Logits() {}

    /**
     * {@code log(sum(exp(row[i])))}, the log-softmax's normaliser: a token's log-probability is its
     * logit less this. Computed as {@link SoftmaxDraw} weighs a draw: in chunks of
     * {@value SoftmaxDraw#CHUNK} logits copied into a per-thread buffer, each chunk's weights
     * {@code exp(x - chunk max)} in float (within an ulp of {@code Math.exp}, vectorized) summed in
     * double, the chunks' sums scaled to the row's maximum. About a fifth of the time of a loop of
     * {@code Math.exp} over the row. Reads the row only; any thread.
     *
     * @return NaN when a logit is NaN or {@code +infinity}, {@code -infinity} when every logit is
     *     {@code -infinity}
     * @throws IllegalArgumentException for an empty row
     */
    public static double logSumExp(MemorySegment row) {
        int n = (int) (row.byteSize() / Float.BYTES);
        if (n == 0) {
            throw new IllegalArgumentException("empty logits row");
        }
        Scratch s = SCRATCH.get();
        float max = Float.NEGATIVE_INFINITY;
        double sum = 0;
        for (int from = 0; from < n; from += SoftmaxDraw.CHUNK) {
            int len = Math.min(n, from + SoftmaxDraw.CHUNK) - from;
            MemorySegment.copy(row, ValueLayout.JAVA_FLOAT, (long) from * Float.BYTES, s.x, 0, len);
            float m = Argmax.max(s.x, len);
            if (Float.isNaN(m) || m == Float.POSITIVE_INFINITY) {
                return Double.NaN;
            }
            if (m == Float.NEGATIVE_INFINITY) {
                continue; // nothing to add
            }
            SoftmaxDraw.weights(s.x, s.e, len, m);
            double chunk = SoftmaxDraw.sum(s.x, len);
            if (m > max) {
                sum = sum * Math.exp((double) max - m) + chunk;
                max = m;
            } else {
                sum += chunk * Math.exp((double) m - max);
            }
        }
        return max == Float.NEGATIVE_INFINITY ? Double.NEGATIVE_INFINITY : max + Math.log(sum);
    }

    private static final class Scratch {
        final float[] x = new float[SoftmaxDraw.CHUNK];
        final int[] e = new int[SoftmaxDraw.CHUNK];
    }
}
