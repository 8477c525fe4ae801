package ai.llmref.llama;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Computations over a logits row (one position's output of a decode, {@code vocabSize} floats)
 * where llama.cpp keeps it; public through {@link LogitsRow}.
 */
final class Logits {
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
    static double logSumExp(MemorySegment row) {
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

    /**
     * The {@code count} highest logits of the row, highest first (equal ones: lower token id
     * first), their tokens into {@code ids} and their logits into {@code values}; returns how many
     * (fewer only on a shorter row). Each block of {@value #TOP_BLOCK} logits' highest is found
     * first (a vectorized pass), and only the blocks whose highest reaches the {@code count}-th
     * highest of those are read one logit at a time: every one of the highest {@code count} logits
     * lies in them. Any thread.
     *
     * @throws IllegalArgumentException when {@code count} is negative or the arrays are shorter
     */
    static int top(MemorySegment row, int count, int[] ids, float[] values) {
        if (count < 0 || ids.length < count || values.length < count) {
            throw new IllegalArgumentException("count " + count + " with arrays of " + ids.length + " and " + values.length);
        }
        int n = (int) (row.byteSize() / Float.BYTES);
        int blocks = (n + TOP_BLOCK - 1) / TOP_BLOCK;
        Scratch s = SCRATCH.get();
        int[] blockKeys = s.blockKeys(blocks);
        Argmax.blockMaxKeys(row, n, TOP_BLOCK, blockKeys);
        float floor = Float.NEGATIVE_INFINITY;
        if (count > 0 && count <= blocks) {
            floor = Argmax.valueOfKey(Argmax.kthHighest(blockKeys, blocks, count, s.intList(count)));
        }
        int kept = 0;
        for (int b = 0; b < blocks && count > 0; b++) {
            if (kept == count && Argmax.valueOfKey(blockKeys[b]) < floor) {
                continue; // nothing here reaches the floor, and the list is full
            }
            int to = Math.min(n, (b + 1) * TOP_BLOCK);
            for (int i = b * TOP_BLOCK; i < to; i++) {
                float v = row.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                if (kept < count || v > values[kept - 1]) {
                    // insertion into the descending list; an equal value stays behind (lower id first)
                    int at = kept < count ? kept++ : count - 1;
                    while (at > 0 && values[at - 1] < v) {
                        values[at] = values[at - 1];
                        ids[at] = ids[at - 1];
                        at--;
                    }
                    values[at] = v;
                    ids[at] = i;
                }
            }
        }
        return kept;
    }

    /** Logits per block of {@link #top}'s first pass. */
    static final int TOP_BLOCK = 1024;

    private static final class Scratch {
        final float[] x = new float[SoftmaxDraw.CHUNK];
        final int[] e = new int[SoftmaxDraw.CHUNK];
        int[] blockKeys = new int[0];
        int[] intList = new int[0];

        int[] blockKeys(int n) {
            if (blockKeys.length < n) {
                blockKeys = new int[n];
            }
            return blockKeys;
        }

        int[] intList(int n) {
            if (intList.length < n) {
                intList = new int[n];
            }
            return intList;
        }
    }
}
