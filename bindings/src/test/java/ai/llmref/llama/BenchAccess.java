package ai.llmref.llama;

/** For the benchmark programs in test sources: package-private switches they compare, and a reference they time. */
public final class BenchAccess {
    private BenchAccess() {}

    /** A draw through llama.cpp's chain over a candidates array instead of {@link SoftmaxDraw} or {@link TruncatedDraw}. */
    public static Sampler.Builder llamaChainDraws(Sampler.Builder builder) {
        return builder.javaDraws(false);
    }

    /** The greedy pick as a plain loop over the row ({@link Argmax#plain}, llama.cpp's greedy stage's loop). */
    public static int plainArgmax(java.lang.foreign.MemorySegment row) {
        return Argmax.plain(row, (int) (row.byteSize() / Float.BYTES));
    }

    /**
     * The log-softmax's normaliser read plainly: the row's maximum, then {@code Math.exp} of each
     * logit less it summed in double (what the server computed before {@link Logits#logSumExp}; the
     * tests' and benchmarks' reference).
     */
    public static double plainLogSumExp(java.lang.foreign.MemorySegment row) {
        int n = (int) (row.byteSize() / Float.BYTES);
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, row.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i));
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(row.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i) - max);
        }
        return max + Math.log(sum);
    }

    /**
     * The {@code top} highest logits read plainly: one insertion into a descending list per logit,
     * lower id first among equals (what the server's log-probabilities used before
     * {@link Logits#top}; the tests' and benchmarks' reference). Returns how many.
     */
    public static int plainTop(java.lang.foreign.MemorySegment row, int top, int[] ids, float[] values) {
        int n = (int) (row.byteSize() / Float.BYTES);
        int kept = 0;
        for (int i = 0; top > 0 && i < n; i++) {
            float v = row.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i);
            if (kept < top || v > values[kept - 1]) {
                int at = kept < top ? kept++ : top - 1;
                while (at > 0 && values[at - 1] < v) {
                    values[at] = values[at - 1];
                    ids[at] = ids[at - 1];
                    at--;
                }
                values[at] = v;
                ids[at] = i;
            }
        }
        return kept;
    }

    /** {@link Logits#logSumExp} (what {@link LogitsRow#logSumExp} runs) over any row of floats. */
    public static double logSumExp(java.lang.foreign.MemorySegment row) {
        return Logits.logSumExp(row);
    }

    /** {@link Logits#top} (what {@link LogitsRow#top} runs) over any row of floats. */
    public static int top(java.lang.foreign.MemorySegment row, int count, int[] ids, float[] values) {
        return Logits.top(row, count, ids, values);
    }

    /** The sampler's pick from a logits row (any row of the vocabulary's size, not only a context's). */
    public static int sampleRow(Sampler sampler, java.lang.foreign.MemorySegment row) {
        return sampler.sampleRow(row);
    }
}
