package ai.llmref.llama;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A seeded draw after the stages that cut the candidates, top-k, top-p and min-p (each optional,
 * in that order, after an optional logit bias and before the temperature): what llama.cpp's chain of
 * those stages and {@code dist} draws, computed over the row without llama.cpp's sorts. With a top-p
 * and no top-k, llama.cpp sorts its candidates by logit until the kept mass reaches p: on a flat
 * 128k distribution all of them, some milliseconds a token. Here the cut is found by bucketing the
 * logits (a radix select by probability mass, refined until a bucket is small) and only the kept
 * tokens are sorted.
 *
 * <p>Each stage keeps what llama.cpp's keeps: top-k the k highest logits (sorted, ties by token id);
 * top-p, with the probabilities of the tokens still in, the fewest highest ones whose probabilities
 * sum to at least p (the sums in double, where llama.cpp adds floats); min-p the tokens whose logit
 * is at least the highest plus {@code ln p}, in the order they were in. The draw then divides the
 * kept logits by the temperature and picks as {@link SoftmaxDraw} does, walking the kept tokens in
 * llama.cpp's order: by logit, highest first, after a top-k or a top-p (unless more than
 * {@link #SORT_LIMIT} tokens are kept, which are walked in token order: the same distribution
 * without a sort of most of the vocabulary), otherwise in token order. For a seed the picks are
 * llama.cpp's ({@code TruncatedDrawTest}) except where a sum in double and llama.cpp's in float put
 * a cut on either side of a token, or where the drawn number falls on a border between two tokens.
 * One thread at a time uses a draw.
 */
final class TruncatedDraw {
    /** Kept tokens up to this many are sorted by logit before the walk, as llama.cpp walks them. */
    static final int SORT_LIMIT = 8192;
    /** A bucket this small is sorted instead of bucketed again. */
    private static final int SMALL = 64;
    private static final int BUCKETS = 256;
    /**
     * How far below the highest logit a token of a steep row's first candidates may be: each token
     * further down weighs less than {@code e^-16} (1.1e-7) of the highest, all 128k of them together
     * less than 1.5% of it, so on a steep row these candidates hold the mass of any top-p up to 0.98.
     */
    private static final float STEEP_NATS = 16f;
    /** Logits per block of top-k's first pass ({@link #topK}). */
    private static final int TOPK_BLOCK = 256;
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private final int[] biasTokens;
    private final float[] biasValues;
    private final int topK;
    private final float topP;
    private final float minP;
    private final float temperature;
    private final long seed;
    private final SoftmaxDraw.Mt19937 rng = new SoftmaxDraw.Mt19937();

    /**
     * @param topK 0 for no top-k stage
     * @param topP 1 for no top-p stage
     * @param minP 0 for no min-p stage
     */
    TruncatedDraw(int[] biasTokens, float[] biasValues, int topK, float topP, float minP, float temperature, long seed) {
        if (!(temperature > 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be finite and > 0, got " + temperature);
        }
        if (topK < 0 || !(topP >= 0 && topP <= 1) || !(minP >= 0 && minP <= 1) || biasTokens.length != biasValues.length) {
            throw new IllegalArgumentException("top_k " + topK + ", top_p " + topP + ", min_p " + minP);
        }
        this.biasTokens = biasTokens.clone();
        this.biasValues = biasValues.clone();
        this.topK = topK;
        this.topP = topP;
        this.minP = minP;
        this.temperature = temperature;
        this.seed = seed;
        reset();
    }

    /** Seeds the generator again, as llama.cpp's {@code dist} stage does on reset. */
    void reset() {
        rng.seedAsDist(seed);
    }

    /** The token drawn from the row; the row is only read. */
    int draw(MemorySegment row) {
        Scratch s = SCRATCH.get();
        int size = cut(row, s);
        return pick(s.x, s.set, size, s.sorted, s);
    }

    /** The tokens the stages keep from the row, in the order the draw walks them (for the tests). */
    int[] kept(MemorySegment row) {
        Scratch s = SCRATCH.get();
        int size = cut(row, s);
        return Arrays.copyOf(s.set, size);
    }

    /**
     * Runs the bias, top-k, top-p and min-p over the row into the scratch buffers: the biased
     * logits in {@code x}, the kept tokens in {@code set[0 .. returned)}, sorted by logit or not.
     */
    private int cut(MemorySegment row, Scratch s) {
        int n = (int) (row.byteSize() / Float.BYTES);
        s.ensure(n);
        float[] x = s.x;
        MemorySegment.copy(row, ValueLayout.JAVA_FLOAT, 0, x, 0, n);
        for (int b = 0; b < biasTokens.length; b++) {
            x[biasTokens[b]] += biasValues[b];
        }
        int[] set = s.set;
        if (topK == 0 && !(topP < 1)) {
            for (int i = 0; i < n; i++) {
                set[i] = i; // top-k, when there is one, fills the set itself, and top-p over every token
            }
        }
        int size = n;
        boolean sorted = false;
        boolean llamaSorted = false; // llama.cpp's candidates are sorted by now
        if (topK > 0) {
            size = topK(x, set, n, Math.min(topK, n), s);
            sorted = llamaSorted = true;
        }
        if (topP < 1) {
            size = topP(x, set, size, sorted, topK == 0, s);
            sorted = sorted || size <= SORT_LIMIT; // topP sorts what it keeps, up to the limit
            llamaSorted = true;
        }
        if (minP > 0) {
            size = minP(x, set, size, sorted);
        }
        if (llamaSorted && !sorted && size <= SORT_LIMIT) {
            sortDescending(x, set, size, s); // a large top-p cut down by min-p
            sorted = true;
        }
        s.sorted = sorted;
        return size;
    }

    /** The k highest logits, sorted (ties: lower token id first), into {@code set[0 .. k)}. */
    private static int topK(float[] x, int[] set, int n, int k, Scratch s) {
        if (k * 4L >= n) {
            for (int i = 0; i < n; i++) {
                set[i] = i;
            }
            sortDescending(x, set, n, s);
            return k;
        }
        // a heap of the k best keys seen so far, its root the worst of them; a token whose logit is
        // not above the root's (a tie loses: its id is higher) cannot get in
        long[] heap = s.keys(k);
        int blocks = (n + TOPK_BLOCK - 1) / TOPK_BLOCK;
        int floorKey = Integer.MIN_VALUE;
        if ((long) k * TOPK_BLOCK * 4 <= n) {
            // Each block's highest logit, then the k-th highest of those: k blocks hold a logit at
            // least that high, so each of the k best logits is too, and only the blocks that reach
            // it are read (on a 128k vocabulary with k = 40, a few dozen blocks of 256).
            int[] blockKeys = s.blockKeys(blocks);
            Argmax.blockMaxKeys(x, n, TOPK_BLOCK, blockKeys);
            floorKey = Argmax.kthHighest(blockKeys, blocks, k, s.intHeap(k));
        }
        int filled = 0;
        float worst = Float.NaN;
        for (int b = 0; b < blocks; b++) {
            if (floorKey != Integer.MIN_VALUE && s.blockKeys[b] < floorKey) {
                continue;
            }
            int to = Math.min(n, (b + 1) * TOPK_BLOCK);
            int i = b * TOPK_BLOCK;
            for (; filled < k && i < to; i++) {
                heap[filled++] = key(x[i], i);
                if (filled == k) {
                    for (int h = k / 2 - 1; h >= 0; h--) {
                        siftDown(heap, h, k);
                    }
                    worst = logitOf(heap[0]);
                }
            }
            for (; i < to; i++) {
                if (x[i] > worst) {
                    heap[0] = key(x[i], i);
                    siftDown(heap, 0, k);
                    worst = logitOf(heap[0]);
                }
            }
        }
        Arrays.sort(heap, 0, k);
        for (int i = 0; i < k; i++) {
            set[i] = (int) heap[i];
        }
        return k;
    }

    /** A max-heap of keys: the root is the largest key, the worst candidate. */
    private static void siftDown(long[] heap, int i, int size) {
        long v = heap[i];
        while (true) {
            int c = 2 * i + 1;
            if (c >= size) {
                break;
            }
            if (c + 1 < size && heap[c + 1] > heap[c]) {
                c++;
            }
            if (heap[c] <= v) {
                break;
            }
            heap[i] = heap[c];
            i = c;
        }
        heap[i] = v;
    }

    /**
     * Keeps the fewest highest-logit tokens of {@code set[0 .. size)} whose probabilities (a softmax
     * over the set) sum to at least {@code topP}; returns how many, sorted when at most
     * {@link #SORT_LIMIT} (or when the set was sorted already, whose order is kept).
     * {@code everyToken}: the set is every token in order ({@code set[i] == i}), not written yet
     * (this writes the tokens it keeps).
     */
    private int topP(float[] x, int[] set, int size, boolean sorted, boolean everyToken, Scratch s) {
        float[] w = s.w;
        // the set's logits, by position: the logits themselves when the set is every token in order
        float[] g = s.g;
        if (everyToken) {
            g = x;
        } else {
            for (int i = 0; i < size; i++) {
                g[i] = x[set[i]];
            }
        }
        float max = size == 0 ? Float.NEGATIVE_INFINITY : Argmax.max(g, size);
        if (max == Float.NEGATIVE_INFINITY || Float.isNaN(max)) {
            if (everyToken) {
                for (int i = 0; i < size; i++) {
                    set[i] = i;
                }
            }
            return size; // nothing to weigh: the draw falls back as llama.cpp's does
        }
        SoftmaxDraw.weights(g, w, s.e, size, max);
        double target = topP * SoftmaxDraw.sum(w, size);
        if (sorted) {
            double cum = 0;
            for (int i = 0; i < size; i++) {
                cum += w[i];
                if (cum >= target) {
                    return i + 1;
                }
            }
            return size;
        }
        // A steep row (a trained model's usual one): the tokens within STEEP_NATS of the highest
        // are few, and when they hold the mass needed the cut is among them, as every other token
        // is lower; the select then starts from them instead of from every position.
        int[] cand = s.cand;
        int[] kept = s.kept;
        int steep = steepTokens(g, size, max - STEEP_NATS, cand);
        int keptCount;
        if (steep > 0 && massOf(w, cand, steep) >= target) {
            keptCount = select(g, w, steep, false, max, max - STEEP_NATS, target, s);
        } else {
            for (int i = 0; i < size; i++) {
                cand[i] = i;
            }
            // e^-64 of the highest: lower logits share the last bucket
            keptCount = select(g, w, size, true, max, max - 64f, target, s);
        }
        // kept[] holds positions into set (token order: the set was not sorted): sorted by logit
        // when few enough, else in token order, marked and collected without a sort
        if (keptCount <= SORT_LIMIT) {
            if (everyToken) {
                System.arraycopy(kept, 0, set, 0, keptCount); // positions are tokens
            } else {
                int[] tokens = s.cand;
                for (int i = 0; i < keptCount; i++) {
                    tokens[i] = set[kept[i]];
                }
                System.arraycopy(tokens, 0, set, 0, keptCount);
            }
            sortDescending(x, set, keptCount, s);
            return keptCount;
        }
        int[] mark = s.bucket;
        Arrays.fill(mark, 0, size, 0);
        for (int i = 0; i < keptCount; i++) {
            mark[kept[i]] = 1;
        }
        int next = 0;
        for (int i = 0; i < size; i++) {
            set[next] = everyToken ? i : set[i];
            next += mark[i];
        }
        return keptCount;
    }

    /**
     * Radix select: the positions of the fewest highest logits among {@code cand[0 .. cn)} (positions
     * into {@code g} and {@code w}) whose weights sum to at least {@code need}, into {@code kept};
     * returns how many. The candidates are bucketed by their logit below {@code hi} (the highest),
     * down to {@code lo}, lower ones sharing the last bucket; the buckets above the one where the
     * mass is reached are kept, and that one is bucketed again until it is small, then sorted.
     * {@code first}: {@code cand} is every position in order.
     */
    private static int select(float[] g, float[] w, int cn, boolean first, float hi, float lo, double need, Scratch s) {
        int[] cand = s.cand;
        int[] kept = s.kept;
        int keptCount = 0;
        double[] mass = s.mass;
        int[] bucket = s.bucket;
        while (true) {
            if (cn <= SMALL || !(hi > lo)) {
                // sort what is left and take tokens until the mass is reached
                long[] keys = s.keys(cn);
                for (int i = 0; i < cn; i++) {
                    keys[i] = key(g[cand[i]], cand[i]);
                }
                Arrays.sort(keys, 0, cn);
                double cum = 0;
                for (int i = 0; i < cn; i++) {
                    int pos = (int) keys[i];
                    kept[keptCount++] = pos;
                    cum += w[pos];
                    if (cum >= need) {
                        break;
                    }
                }
                break;
            }
            float scale = BUCKETS / (hi - lo);
            if (first) {
                for (int i = 0; i < cn; i++) {
                    bucket[i] = Math.min(BUCKETS - 1, Math.max(0, (int) ((hi - g[i]) * scale)));
                }
            } else {
                for (int i = 0; i < cn; i++) {
                    bucket[i] = Math.min(BUCKETS - 1, Math.max(0, (int) ((hi - g[cand[i]]) * scale)));
                }
            }
            // four histograms of mass taken in turn, so that neighbours in one bucket do not wait
            // for each other's addition
            Arrays.fill(mass, 0);
            int i4 = 0;
            for (; i4 + 4 <= cn; i4 += 4) {
                mass[bucket[i4]] += w[cand[i4]];
                mass[BUCKETS + bucket[i4 + 1]] += w[cand[i4 + 1]];
                mass[2 * BUCKETS + bucket[i4 + 2]] += w[cand[i4 + 2]];
                mass[3 * BUCKETS + bucket[i4 + 3]] += w[cand[i4 + 3]];
            }
            for (; i4 < cn; i4++) {
                mass[bucket[i4]] += w[cand[i4]];
            }
            for (int b = 0; b < BUCKETS; b++) {
                mass[b] = (mass[b] + mass[BUCKETS + b]) + (mass[2 * BUCKETS + b] + mass[3 * BUCKETS + b]);
            }
            first = false;
            int cut = BUCKETS - 1;
            double before = 0;
            for (int b = 0; b < BUCKETS; b++) {
                if (before + mass[b] >= need) {
                    cut = b;
                    break;
                }
                before += mass[b];
            }
            // buckets above the cut are all kept; the cut's bucket is looked at more closely
            // (without branches: which way a token goes is as good as random)
            int next = 0;
            for (int i = 0; i < cn; i++) {
                int c = cand[i];
                int b = bucket[i];
                kept[keptCount] = c;
                keptCount += b < cut ? 1 : 0;
                cand[next] = c; // next <= i: nothing still to read is overwritten
                next += b == cut ? 1 : 0;
            }
            need -= before;
            cn = next;
            float width = (hi - lo) / BUCKETS;
            float newHi = hi - cut * width;
            float newLo = cut == BUCKETS - 1 ? Float.NEGATIVE_INFINITY : hi - (cut + 1) * width;
            if (cut == BUCKETS - 1) {
                for (int i = 0; i < cn; i++) {
                    newLo = i == 0 ? g[cand[i]] : Math.min(newLo, g[cand[i]]);
                }
            }
            if (!(newHi < hi || newLo > lo) || cn == 0) {
                hi = lo; // no progress (equal logits): sort what is left
            } else {
                hi = newHi;
                lo = newLo;
            }
            if (cn == 0) {
                break;
            }
        }
        return keptCount;
    }

    /**
     * The positions {@code i < size} with {@code g[i] >= floor} into {@code into}, in order, and
     * their number; -1 for a row that is not steep (the select then starts from every position):
     * when more than one in 16 of every 1024th logit is that high, or as soon as more than
     * {@code size / 8} are. One pass with a branch that is rarely taken on a steep row.
     */
    private static int steepTokens(float[] g, int size, float floor, int[] into) {
        int limit = size / 8;
        int stride = 1024;
        int sampled = 0;
        for (int i = 0; i < size; i += stride) {
            sampled += g[i] >= floor ? 1 : 0;
        }
        if (sampled * 16 > (size + stride - 1) / stride) {
            return -1;
        }
        int count = 0;
        for (int i = 0; i < size; i++) {
            if (g[i] >= floor) {
                if (count == limit) {
                    return -1;
                }
                into[count++] = i;
            }
        }
        return count;
    }

    /** The sum in double of {@code w} at {@code positions[0 .. count)}. */
    private static double massOf(float[] w, int[] positions, int count) {
        double sum = 0;
        for (int i = 0; i < count; i++) {
            sum += w[positions[i]];
        }
        return sum;
    }

    /** Keeps the tokens whose logit is at least the highest plus {@code ln minP}, in their order. */
    private int minP(float[] x, int[] set, int size, boolean sorted) {
        float max = Float.NEGATIVE_INFINITY;
        if (sorted) {
            max = x[set[0]];
        } else {
            for (int i = 0; i < size; i++) {
                max = Math.max(max, x[set[i]]);
            }
        }
        float min = max + (float) Math.log(minP);
        if (sorted) {
            int i = 1; // the first always stays
            while (i < size && x[set[i]] >= min) {
                i++;
            }
            return i;
        }
        int kept = 0;
        for (int i = 0; i < size; i++) {
            if (x[set[i]] >= min) {
                set[kept++] = set[i];
            }
        }
        return kept == 0 ? size : kept;
    }

    /** The temperature and the draw over {@code set[0 .. size)}, walked in that order. */
    private int pick(float[] x, int[] set, int size, boolean sorted, Scratch s) {
        float[] w = s.w;
        float t = temperature;
        for (int i = 0; i < size; i++) {
            w[i] = x[set[i]];
        }
        if (t != 1.0f) {
            for (int i = 0; i < size; i++) {
                w[i] /= t;
            }
        }
        float max = sorted ? w[0] : Argmax.max(w, size);
        double u = rng.canonical();
        if (size == 1) {
            return set[0];
        }
        if (Float.isInfinite(max)) {
            // a temperature so small that the logits divided by it overflow (to +infinity, or all
            // to -infinity): the softmax's limit, the first highest biased logit in the walk's
            // order (llama.cpp's weights would be NaN)
            int best = 0;
            for (int i = 1; i < size; i++) {
                best = x[set[i]] > x[set[best]] ? i : best;
            }
            return set[best];
        }
        SoftmaxDraw.weights(w, s.e, size, max);
        double target = SoftmaxDraw.sum(w, size) * u;
        double run = 0;
        for (int i = 0; i < size; i++) {
            run += w[i];
            if (run >= target) {
                return set[i];
            }
        }
        return set[size - 1];
    }

    /** Sorts {@code set[0 .. size)} by logit, highest first, ties by lower token id. */
    private static void sortDescending(float[] x, int[] set, int size, Scratch s) {
        long[] keys = s.keys(size);
        for (int i = 0; i < size; i++) {
            keys[i] = key(x[set[i]], set[i]);
        }
        Arrays.sort(keys, 0, size);
        for (int i = 0; i < size; i++) {
            set[i] = (int) keys[i];
        }
    }

    /** A key whose ascending order is the logit's descending order, then the id's ascending order. */
    private static long key(float logit, int id) {
        int ordered = Argmax.key(Float.floatToIntBits(logit)); // ascending with the float, as a signed int
        return ((long) ~ordered << 32) | (id & 0xffffffffL);
    }

    private static float logitOf(long key) {
        return Argmax.valueOfKey(~(int) (key >> 32));
    }

    /** A thread's buffers for one row. */
    private static final class Scratch {
        float[] x = new float[0];
        float[] w = new float[0];
        int[] e = new int[0];
        int[] set = new int[0];
        int[] cand = new int[0];
        int[] kept = new int[0];
        int[] bucket = new int[0];
        long[] keys = new long[0];
        final double[] mass = new double[4 * BUCKETS];
        int[] blockKeys = new int[0];
        int[] intHeap = new int[0];
        float[] g = new float[0];
        boolean sorted;

        void ensure(int n) {
            if (x.length < n) {
                x = new float[n];
                w = new float[n];
                g = new float[n];
                e = new int[n];
                set = new int[n];
                cand = new int[n];
                kept = new int[n];
                bucket = new int[n];
            }
        }

        long[] keys(int n) {
            if (keys.length < n) {
                keys = new long[n];
            }
            return keys;
        }

        int[] blockKeys(int n) {
            if (blockKeys.length < n) {
                blockKeys = new int[n];
            }
            return blockKeys;
        }

        int[] intHeap(int n) {
            if (intHeap.length < n) {
                intHeap = new int[n];
            }
            return intHeap;
        }
    }
}
