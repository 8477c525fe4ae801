package ai.llmref.llama.bench;

import ai.llmref.llama.BenchAccess;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Sampler;
import ai.llmref.llama.Vocabulary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.function.ToDoubleFunction;

/**
 * What one pick costs on one thread, by how steep the logits are: rows of the model's vocabulary
 * size, Gaussian with standard deviations from 0.02 (flat, as a random-weight model's) to 15 (a few
 * tokens far above the rest, as a trained model's usual rows), eight rows per steepness taken in
 * turn (the model's weights are not used, only its vocabulary). For each: the greedy pick, a draw
 * with a temperature, with top-p (and llama.cpp's chain for the same), with llama-server's default
 * stages (top-k 40 first), the log-softmax's normaliser ({@code LogitsRow.logSumExp}) against a
 * plain loop of {@code Math.exp}, and the 5 highest logits ({@code LogitsRow.top}, what
 * {@code top_logprobs} reads) against a plain insertion loop. A program, not a test; docs/benchmarks.md quotes its output.
 *
 * <pre>java ... ai.llmref.llama.bench.RowDrawBenchmark MODEL.gguf</pre>
 */
public final class RowDrawBenchmark {
    private static final double[] SCALES = {0.02, 1, 3, 6, 9, 15};

    private RowDrawBenchmark() {}

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: RowDrawBenchmark MODEL.gguf");
            System.exit(2);
        }
        try (LlamaModel m = LlamaModel.load(Path.of(args[0]), ModelParams.defaults().withVocabOnly(true));
             Arena arena = Arena.ofConfined()) {
            Vocabulary v = m.vocabulary();
            int n = v.size();
            System.out.printf(Locale.ROOT, "vocabulary %d, one thread; µs per pick, best of 5 batches%n%n", n);
            System.out.println("| logits (Gaussian, sd) | greedy | temperature 0.8 | top-p 0.95 (kept) | top-p, llama.cpp's chain | "
                    + "top-k 40, top-p 0.95, min-p 0.05 | logSumExp | Math.exp loop | top 5 (`LogitsRow.top`) | top 5, a plain loop |");
            System.out.println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            int[] ids = new int[5];
            float[] values = new float[5];
            Random random = new Random(5);
            for (double scale : SCALES) {
                MemorySegment[] rows = new MemorySegment[8];
                for (int k = 0; k < rows.length; k++) {
                    float[] a = new float[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = (float) (random.nextGaussian() * scale);
                    }
                    rows[k] = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
                }
                try (Sampler greedy = Sampler.greedy(v);
                     Sampler temp = Sampler.builder(v).temperature(0.8f).seed(1).build();
                     Sampler topP = Sampler.builder(v).temperature(0.8f).topP(0.95f).seed(1).build();
                     Sampler topPChain = BenchAccess.llamaChainDraws(Sampler.builder(v).temperature(0.8f).topP(0.95f).seed(1)).build();
                     Sampler defaults = Sampler.builder(v).topK(40).topP(0.95f).minP(0.05f).temperature(0.8f).seed(1).build()) {
                    int kept = keptByTopP(rows[0], n);
                    System.out.printf(Locale.ROOT, "| %s | %.1f | %.1f | %.1f (%d) | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f |%n", scale,
                            time(rows, 400, r -> BenchAccess.sampleRow(greedy, r)),
                            time(rows, 200, r -> BenchAccess.sampleRow(temp, r)),
                            time(rows, 100, r -> BenchAccess.sampleRow(topP, r)), kept,
                            time(rows, 8, r -> BenchAccess.sampleRow(topPChain, r)),
                            time(rows, 200, r -> BenchAccess.sampleRow(defaults, r)),
                            time(rows, 200, BenchAccess::logSumExp),
                            time(rows, 50, BenchAccess::plainLogSumExp),
                            time(rows, 400, r -> BenchAccess.top(r, 5, ids, values)),
                            time(rows, 200, r -> BenchAccess.plainTop(r, 5, ids, values)));
                }
            }
        }
    }

    /** µs per call, the best of 5 batches of {@code calls} over the rows in turn (after a warm-up batch). */
    private static double time(MemorySegment[] rows, int calls, ToDoubleFunction<MemorySegment> f) {
        double sink = 0;
        long best = Long.MAX_VALUE;
        for (int b = 0; b < 6; b++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                sink += f.applyAsDouble(rows[i % rows.length]);
            }
            long t = System.nanoTime() - t0;
            if (b > 0) {
                best = Math.min(best, t);
            }
        }
        if (Double.isNaN(sink)) {
            throw new IllegalStateException("NaN");
        }
        return best / 1e3 / calls;
    }

    /** How many tokens top-p 0.95 keeps (at temperature 1, the cut's own softmax): read plainly, for the table. */
    private static int keptByTopP(MemorySegment row, int n) {
        float[] a = row.toArray(ValueLayout.JAVA_FLOAT);
        double lse = BenchAccess.plainLogSumExp(row);
        double[] p = Arrays.stream(toDouble(a)).map(x -> Math.exp(x - lse)).sorted().toArray();
        double cum = 0;
        for (int i = n - 1; i >= 0; i--) {
            cum += p[i];
            if (cum >= 0.95) {
                return n - i;
            }
        }
        return n;
    }

    private static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }
}
