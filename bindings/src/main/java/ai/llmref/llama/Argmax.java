package ai.llmref.llama;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The greedy pick over a logits row: the first token whose logit is the highest, as llama.cpp's
 * greedy stage picks ({@code logit > best} in token order, so a NaN is never picked after the first
 * token and the first of equal logits wins).
 *
 * <p>A plain loop that carries the best index along is one compare and branch per logit, which the
 * JIT does not vectorize. This one makes two passes that it does. The first reads the row in blocks
 * of {@value #BLOCK} logits and takes each block's highest logit as an order-preserving integer key
 * (the float's bits with the magnitude bits flipped for negatives: an {@code int} maximum, which the
 * JIT turns into SIMD instructions), keeping the first block with the highest key. The second scans
 * that one block for the first logit equal to the maximum. Equal floats other than zeros have equal
 * bits, so the first block holding the key holds the first token with that logit. Rows where the
 * keys' order is not the floats' fall back to the plain loop: a maximum of {@code +0.0} or
 * {@code -0.0} (equal as floats, different keys), any positive NaN (keyed above infinity) and a NaN
 * first logit (the plain loop then keeps token 0, as llama.cpp's does). Negative NaNs are keyed below
 * minus infinity and never win, as in the plain loop.
 *
 * <p>{@link #max} is the same key reduction over a float array (read through an int view of it,
 * which the JIT vectorizes where a loop of {@code Math.max} over floats stays scalar): the draws'
 * maxima over whole rows.
 */
final class Argmax {
    /** Logits per block: 16 KB, in the first-level cache while the second pass scans it. */
    static final int BLOCK = 4096;

    private static final int POSITIVE_INFINITY_KEY = key(Float.floatToRawIntBits(Float.POSITIVE_INFINITY));
    private static final int NEGATIVE_INFINITY_KEY = key(Float.floatToRawIntBits(Float.NEGATIVE_INFINITY));

    private Argmax() {}

    /** The first index of the highest value in {@code row}, a non-empty row of floats. */
    static int of(MemorySegment row) {
        int n = (int) (row.byteSize() / Float.BYTES);
        if (Float.isNaN(row.getAtIndex(ValueLayout.JAVA_FLOAT, 0))) {
            return 0;
        }
        int bestKey = Integer.MIN_VALUE;
        int bestBlock = 0;
        for (int from = 0; from < n; from += BLOCK) {
            int to = Math.min(n, from + BLOCK);
            int blockKey = Integer.MIN_VALUE;
            for (int i = from; i < to; i++) {
                blockKey = Math.max(blockKey, key(row.getAtIndex(ValueLayout.JAVA_INT, i)));
            }
            if (blockKey > bestKey) {
                bestKey = blockKey;
                bestBlock = from;
            }
        }
        float max = valueOfKey(bestKey);
        if (Float.isNaN(max) || max == 0f) {
            return plain(row, n);
        }
        int to = Math.min(n, bestBlock + BLOCK);
        for (int i = bestBlock; i < to; i++) {
            if (row.getAtIndex(ValueLayout.JAVA_FLOAT, i) == max) {
                return i;
            }
        }
        return plain(row, n); // not reached: the block holds its maximum
    }

    /**
     * {@code Math.max} over {@code x[0 .. len)}, {@code len >= 1}: the same float, NaN when any
     * value is a NaN (the keys of NaNs lie beyond those of the infinities), {@code +0.0} over
     * {@code -0.0}.
     */
    static float max(float[] x, int len) {
        MemorySegment s = MemorySegment.ofArray(x);
        int hi = Integer.MIN_VALUE;
        int lo = Integer.MAX_VALUE;
        for (int i = 0; i < len; i++) {
            int k = key(s.getAtIndex(ValueLayout.JAVA_INT, i));
            hi = Math.max(hi, k);
            lo = Math.min(lo, k);
        }
        if (hi > POSITIVE_INFINITY_KEY || lo < NEGATIVE_INFINITY_KEY) {
            return Float.NaN;
        }
        return valueOfKey(hi);
    }

    /**
     * Each block of {@code block} values of {@code x[0 .. n)}: its highest value's key (the float's
     * bits as an int that orders as the float does) into {@code keys[b]} (a vectorized pass).
     */
    static void blockMaxKeys(float[] x, int n, int block, int[] keys) {
        MemorySegment s = MemorySegment.ofArray(x);
        for (int from = 0, b = 0; from < n; from += block, b++) {
            int to = Math.min(n, from + block);
            int hi = Integer.MIN_VALUE;
            for (int i = from; i < to; i++) {
                hi = Math.max(hi, key(s.getAtIndex(ValueLayout.JAVA_INT, i)));
            }
            keys[b] = hi;
        }
    }

    /**
     * {@link #blockMaxKeys(float[], int, int, int[])} over a row in native memory. A loop of its
     * own: one loop fed both heap and native segments compiles to a slow generic form (measured:
     * the top-k draws 25 -> 490 µs), so each kind of memory keeps its own.
     */
    static void blockMaxKeys(MemorySegment row, int n, int block, int[] keys) {
        MemorySegment s = row;
        for (int from = 0, b = 0; from < n; from += block, b++) {
            int to = Math.min(n, from + block);
            int hi = Integer.MIN_VALUE;
            for (int i = from; i < to; i++) {
                hi = Math.max(hi, key(s.getAtIndex(ValueLayout.JAVA_INT, i)));
            }
            keys[b] = hi;
        }
    }

    /** The float whose key ({@link #blockMaxKeys}) this is. */
    static float valueOfKey(int key) {
        return Float.intBitsToFloat(key(key));
    }

    /**
     * The {@code k}-th highest of {@code keys[0 .. n)} ({@code 1 <= k <= n}), equal keys counted
     * apart, by a min-heap of the {@code k} highest seen in {@code heap} (at least {@code k} long).
     */
    static int kthHighest(int[] keys, int n, int k, int[] heap) {
        System.arraycopy(keys, 0, heap, 0, k);
        for (int i = k / 2 - 1; i >= 0; i--) {
            siftDownMin(heap, i, k);
        }
        for (int i = k; i < n; i++) {
            if (keys[i] > heap[0]) {
                heap[0] = keys[i];
                siftDownMin(heap, 0, k);
            }
        }
        return heap[0];
    }

    /** A min-heap of ints: the root is the smallest. */
    private static void siftDownMin(int[] heap, int i, int size) {
        int v = heap[i];
        while (true) {
            int c = 2 * i + 1;
            if (c >= size) {
                break;
            }
            if (c + 1 < size && heap[c + 1] < heap[c]) {
                c++;
            }
            if (heap[c] >= v) {
                break;
            }
            heap[i] = heap[c];
            i = c;
        }
        heap[i] = v;
    }

    /** A float's bits as an int that orders as the float does (its own inverse). */
    static int key(int bits) {
        return bits ^ ((bits >> 31) & 0x7fffffff);
    }

    /** The plain loop, llama.cpp's greedy stage over the row as it is. */
    static int plain(MemorySegment row, int n) {
        int best = 0;
        float max = row.getAtIndex(ValueLayout.JAVA_FLOAT, 0);
        for (int i = 1; i < n; i++) {
            float v = row.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            if (v > max) {
                max = v;
                best = i;
            }
        }
        return best;
    }
}
