package ai.llmref.llama;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A seeded draw from the softmax of a logits row at a temperature, after an optional logit bias:
 * what llama.cpp's chain of its logit-bias, temperature and {@code dist} stages draws, computed
 * without filling a candidates array and about six times faster on one thread. The steps are
 * llama.cpp's: the bias is a float addition to the logit, the temperature a float division, each
 * weight {@code exp(x - max)} a float, the weights summed in double, the uniform number drawn from
 * a {@code std::mt19937} seeded the same way through libstdc++'s {@code generate_canonical<double>}
 * (two 32-bit outputs), and the pick the first token whose running sum of weights reaches that
 * fraction of the total. Two things differ, both in the last bits: {@code exp} is a polynomial
 * that the JIT compiles to vector instructions (within 1 ulp of {@link Math#exp}; weights below
 * about 1.6e-38 are 0, as {@code expf} gives 0 for a banned token), and the sums are taken in
 * another order. So for a seed the picks are llama.cpp's except when the drawn number falls within
 * some 1e-7 of the total from the border between two tokens ({@code SoftmaxDrawTest} compares
 * thousands of draws).
 *
 * <p>The row is read in chunks of up to {@link #CHUNK} tokens (copied into a per-thread buffer the
 * JIT vectorizes loops over), each with its own maximum and its sum of weights relative to it;
 * {@link #finish} scales the sums to the row's maximum, finds the chunk the drawn number falls in
 * and computes that chunk's weights again to find the token. {@link SamplingPool} runs the chunks
 * of one draw on several threads ({@link #chunk}), then {@link #finish} on the calling thread. The
 * row is never written. One thread at a time uses a draw, except {@link #chunk}, which reads only
 * the row and this draw's settings and writes only its own result slots.
 */
final class SoftmaxDraw {
    /** Tokens per chunk: 16 chunks on a 128k vocabulary, each some microseconds. */
    static final int CHUNK = 8192;
    private static final float LOG2E = 1.44269504088896341f;
    /** ln 2 in two parts, the first with few enough bits that {@code k * LN2_HI} is exact for every exponent used. */
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** 1.5 * 2^23: adding and subtracting it rounds a float of magnitude below 2^22 to an integer. */
    private static final float ROUND = 12582912f;
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private final int[] biasTokens;
    private final float[] biasValues;
    private final float temperature;
    private final long seed;
    private final Mt19937 rng = new Mt19937();
    /** {@link #draw}'s per-chunk results, sized for the row on first use. */
    private float[] chunkMax = new float[0];
    private double[] chunkSum = new double[0];

    SoftmaxDraw(int[] biasTokens, float[] biasValues, float temperature, long seed) {
        if (!(temperature > 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be finite and > 0, got " + temperature);
        }
        if (biasTokens.length != biasValues.length) {
            throw new IllegalArgumentException("one bias per token");
        }
        this.biasTokens = biasTokens.clone();
        this.biasValues = biasValues.clone();
        this.temperature = temperature;
        this.seed = seed;
        reset();
    }

    /** Seeds the generator again, as llama.cpp's {@code dist} stage does on reset. */
    void reset() {
        rng.seedAsDist(seed);
    }

    /** How many chunks of {@code chunkSize} tokens a row of {@code n} tokens has (the last one may be shorter). */
    static int chunks(int n, int chunkSize) {
        return (n + chunkSize - 1) / chunkSize;
    }

    /** The token drawn from the row, on the calling thread alone. */
    int draw(MemorySegment row) {
        int n = tokens(row);
        int chunks = chunks(n, CHUNK);
        if (chunkMax.length < chunks) {
            chunkMax = new float[chunks];
            chunkSum = new double[chunks];
        }
        for (int k = 0; k < chunks; k++) {
            chunk(row, CHUNK, k, chunkMax, chunkSum, k);
        }
        return finish(row, CHUNK, chunkMax, chunkSum, 0);
    }

    /**
     * Chunk {@code k}'s part of a draw (tokens {@code k * chunkSize} up to the next chunk or the
     * row's end), on any thread: its largest scaled logit into {@code max[slot]} and the sum of its
     * weights relative to that into {@code sum[slot]}.
     */
    void chunk(MemorySegment row, int chunkSize, int k, float[] max, double[] sum, int slot) {
        int from = k * chunkSize;
        int to = Math.min(tokens(row), from + chunkSize);
        Scratch s = SCRATCH.get();
        float m = scaledLogits(row, from, to, s);
        max[slot] = m;
        if (m == Float.NEGATIVE_INFINITY) {
            sum[slot] = 0; // every token of the chunk banned
            return;
        }
        weights(s, to - from, m);
        sum[slot] = sum(s.x, to - from);
    }

    /**
     * The token drawn once every chunk of the row is done: chunk {@code k} is tokens
     * {@code k * chunkSize} up to the next chunk or the row's end, its results in slot
     * {@code first + k} (the sums are rescaled there to the row's maximum). It draws the next
     * number from the generator.
     */
    int finish(MemorySegment row, int chunkSize, float[] max, double[] sum, int first) {
        int n = tokens(row);
        int chunks = chunks(n, chunkSize);
        float m = Float.NEGATIVE_INFINITY;
        for (int k = 0; k < chunks; k++) {
            m = Math.max(m, max[first + k]);
        }
        if (Float.isInfinite(m)) {
            // a temperature so small that the logits divided by it overflow (to +infinity, or all
            // to -infinity): the softmax's limit, the first highest biased logit (llama.cpp's
            // weights would be NaN and its pick the last token)
            rng.canonical();
            return biasedArgmax(row);
        }
        // each chunk's sum as a sum of weights relative to the row's maximum (0 for a chunk whose
        // every token is banned)
        double total = 0;
        for (int k = 0; k < chunks; k++) {
            sum[first + k] = max[first + k] == Float.NEGATIVE_INFINITY ? 0 : sum[first + k] * scale(max[first + k], m);
            total += sum[first + k];
        }
        double u = rng.canonical(); // drawn for a one-token vocabulary too, as llama.cpp does
        double target = total * u;
        double run = 0;
        for (int k = 0; k < chunks; k++) {
            double after = run + sum[first + k];
            if (after >= target && sum[first + k] > 0) {
                double scale = scale(max[first + k], m);
                // the weights of this chunk again, summed in order up to the target
                int from = k * chunkSize;
                int len = Math.min(n, from + chunkSize) - from;
                Scratch s = SCRATCH.get();
                weights(s, len, scaledLogits(row, from, from + len, s));
                float[] w = s.x;
                for (int i = 0; i < len; i++) {
                    run += w[i] * scale;
                    if (run >= target) {
                        return from + i;
                    }
                }
                // the chunk's sum, taken in another order, reached the target and the walk did not
                // (last bits): the draw falls on the chunk's last token with any weight
                for (int i = len - 1; i >= 0; i--) {
                    if (w[i] > 0) {
                        return from + i;
                    }
                }
            }
            run = after;
        }
        return n - 1; // NaN logits: llama.cpp falls back to the last candidate too
    }

    /** What a weight relative to a chunk's maximum {@code chunkMax} is multiplied by to be relative to the row's {@code max}. */
    private static double scale(float chunkMax, float max) {
        return Math.exp((double) chunkMax - max);
    }

    /** The first token with the highest biased logit (before the temperature). */
    private int biasedArgmax(MemorySegment row) {
        Scratch s = SCRATCH.get();
        int n = tokens(row);
        int best = 0;
        float max = Float.NEGATIVE_INFINITY;
        for (int from = 0; from < n; from += CHUNK) {
            int len = Math.min(n, from + CHUNK) - from;
            float[] x = s.ensure(len);
            MemorySegment.copy(row, ValueLayout.JAVA_FLOAT, (long) from * Float.BYTES, x, 0, len);
            addBias(x, from, from + len);
            for (int i = 0; i < len; i++) {
                if (x[i] > max) {
                    max = x[i];
                    best = from + i;
                }
            }
        }
        return best;
    }

    private static int tokens(MemorySegment row) {
        return (int) (row.byteSize() / Float.BYTES);
    }

    /** Adds the biases of tokens {@code from .. to} to {@code x}, which holds those tokens' logits. */
    private void addBias(float[] x, int from, int to) {
        for (int b = 0; b < biasTokens.length; b++) {
            int t = biasTokens[b];
            if (t >= from && t < to) {
                x[t - from] += biasValues[b];
            }
        }
    }

    /** Copies tokens {@code from .. to} of the row into the scratch buffer, biased and divided by the temperature; returns their maximum. */
    private float scaledLogits(MemorySegment row, int from, int to, Scratch s) {
        int len = to - from;
        float[] x = s.ensure(len);
        MemorySegment.copy(row, ValueLayout.JAVA_FLOAT, (long) from * Float.BYTES, x, 0, len);
        addBias(x, from, to);
        float temp = temperature;
        if (temp != 1.0f) {
            for (int i = 0; i < len; i++) {
                x[i] /= temp;
            }
        }
        return Argmax.max(x, len);
    }

    /**
     * Replaces {@code x[i]} with {@code exp(x[i] - max)} in float: {@code 2^k * e^r} with {@code k}
     * the nearest integer to {@code (x - max) / ln 2} and {@code |r| <= ln 2 / 2}, {@code e^r} by its
     * Taylor series to {@code r^7} (the rest below 6e-9, a tenth of a float's last bit), then
     * scaled by {@code 2^k}: {@code k} added to the float's exponent bits, which is the product
     * exactly while the result is a normal float. For {@code k < -125} (a weight below about
     * 1.6e-38) the weight is 0, so every weight kept is normal. Two plain loops over arrays (the
     * second over an int view of {@code x}), which the JIT turns into vector instructions; a float
     * made from int bits element by element it does not.
     */
    private static void weights(Scratch s, int len, float max) {
        weights(s.x, s.e, len, max);
    }

    /** {@link #weights(Scratch, int, float)} over {@code x[0 .. len)}, with {@code e} as long a buffer. */
    static void weights(float[] x, int[] e, int len, float max) {
        weights(x, x, e, len, max);
    }

    /** The same with the logits read from {@code src} and the weights written to {@code x} ({@code src} may be {@code x}). */
    static void weights(float[] src, float[] x, int[] e, int len, float max) {
        for (int i = 0; i < len; i++) {
            float c = Math.max(src[i] - max, -100f); // -infinity (a banned token) too; NaN stays NaN
            float k = (c * LOG2E + ROUND) - ROUND;
            float r = c - k * LN2_HI - k * LN2_LO;
            float p = 1f / 5040;
            p = p * r + 1f / 720;
            p = p * r + 1f / 120;
            p = p * r + 1f / 24;
            p = p * r + 1f / 6;
            p = p * r + 0.5f;
            p = p * r + 1f;
            x[i] = p * r + 1f; // e^r, within [0.70, 1.42]
            e[i] = (int) k; // -144 .. 0 (0 for a NaN)
        }
        MemorySegment bits = MemorySegment.ofArray(x);
        for (int i = 0; i < len; i++) {
            int k = e[i];
            // e^r * 2^k by the exponent, or +0 when k < -125 (the mask: all ones for k >= -125)
            int scaled = (bits.getAtIndex(ValueLayout.JAVA_INT, i) + (k << 23)) & ~((k + 125) >> 31);
            bits.setAtIndex(ValueLayout.JAVA_INT, i, scaled);
        }
    }

    /** The sum in double of {@code x[0 .. len)}, in four running sums (no chain of dependent additions). */
    static double sum(float[] x, int len) {
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        int i = 0;
        for (; i + 4 <= len; i += 4) {
            s0 += x[i];
            s1 += x[i + 1];
            s2 += x[i + 2];
            s3 += x[i + 3];
        }
        for (; i < len; i++) {
            s0 += x[i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /** A thread's buffers for one chunk. */
    private static final class Scratch {
        float[] x = new float[0];
        int[] e = new int[0];

        float[] ensure(int len) {
            if (x.length < len) {
                x = new float[Math.max(len, CHUNK)];
                e = new int[x.length];
            }
            return x;
        }
    }

    /** {@code std::mt19937}: the 32-bit Mersenne Twister, seeded as the C++ standard says. */
    static final class Mt19937 {
        private static final int N = 624;
        private static final int M = 397;
        private final int[] mt = new int[N];
        private int index = N;

        void seed(int s) {
            mt[0] = s;
            for (int i = 1; i < N; i++) {
                mt[i] = 1812433253 * (mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
            }
            index = N;
        }

        /**
         * Seeds the generator as llama.cpp's {@code dist} stage does: with the seed, or with a new
         * random one for {@code LLAMA_DEFAULT_SEED} (0xFFFFFFFF).
         */
        void seedAsDist(long seed) {
            seed(seed == 0xFFFFFFFFL ? ThreadLocalRandom.current().nextInt() : (int) seed);
        }

        /** The next output, an unsigned 32-bit value in an int. */
        int next() {
            if (index >= N) {
                twist();
            }
            int y = mt[index++];
            y ^= y >>> 11;
            y ^= (y << 7) & 0x9d2c5680;
            y ^= (y << 15) & 0xefc60000;
            return y ^ (y >>> 18);
        }

        private void twist() {
            for (int i = 0; i < N; i++) {
                int y = (mt[i] & 0x80000000) | (mt[(i + 1) % N] & 0x7fffffff);
                int v = mt[(i + M) % N] ^ (y >>> 1);
                mt[i] = (y & 1) != 0 ? v ^ 0x9908b0df : v;
            }
            index = 0;
        }

        /** libstdc++'s {@code generate_canonical<double, 53>}: two outputs, the first the low part. */
        double canonical() {
            double sum = Integer.toUnsignedLong(next());
            sum += Integer.toUnsignedLong(next()) * 4294967296.0;
            double r = sum / 18446744073709551616.0;
            return r >= 1.0 ? Math.nextDown(1.0) : r;
        }
    }
}
