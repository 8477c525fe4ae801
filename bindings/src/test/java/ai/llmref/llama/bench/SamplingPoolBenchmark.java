package ai.llmref.llama.bench;

import ai.llmref.llama.Batch;
import ai.llmref.llama.BenchAccess;
import ai.llmref.llama.ContextParams;
import ai.llmref.llama.LlamaContext;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Sampler;
import ai.llmref.llama.SamplingPool;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.locks.LockSupport;

/**
 * What one scheduler step's greedy picks cost: {@code rows} sequences decoded together (one output
 * each), then {@link SamplingPool#sample} over them with 1, 2, 4 ... threads, timed over many
 * repetitions on the same logits. A program, not a test (no speed limits in tests); docs/server.md
 * ("Sampling") and docs/benchmarks.md quote its output.
 *
 * With {@code gap-us} the calling thread waits that long (sleeping) between two steps, as the
 * scheduler waits for the device's decode on a GPU: the helpers then park between steps and each
 * step pays for waking them (timed: the steps alone, not the gaps). With {@code ahead} after the
 * kind, the helpers are woken at the start of each gap for the step at its end
 * ({@link SamplingPool#wakeAhead}, as the server does while the device decodes).
 *
 * <p>With {@code kind} {@code temp} every sequence draws with a temperature instead (0.8, a seed of its
 * own; a plain draw, computed over the row and split into chunks on the pool's threads), with
 * {@code topp} also top-p 0.95 (what many chat clients send), and with {@code topk} with top-k 40
 * before those (llama-server's default); the picks then differ from step to step, so they are not
 * compared between thread counts. {@code tempchain}, {@code toppchain} and {@code topkchain} are
 * the same draws through llama.cpp's chain over a candidates array (what they cost before this
 * project computed them itself).
 *
 * <pre>java ... ai.llmref.llama.bench.SamplingPoolBenchmark MODEL.gguf [rows] [max-threads] [gpu-layers] [gap-us] [greedy|temp|topp|topk][chain] [ahead]</pre>
 */
public final class SamplingPoolBenchmark {
    private SamplingPoolBenchmark() {}

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: SamplingPoolBenchmark MODEL.gguf [rows=64] [max-threads=8] [gpu-layers=0] [gap-us=0] [greedy|temp|topp|topk][chain] [ahead]");
            System.exit(2);
        }
        Path model = Path.of(args[0]);
        int rows = args.length > 1 ? Integer.parseInt(args[1]) : 64;
        int maxThreads = args.length > 2 ? Integer.parseInt(args[2]) : 8;
        int gpuLayers = args.length > 3 ? Integer.parseInt(args[3]) : 0;
        long gapNanos = args.length > 4 ? Long.parseLong(args[4]) * 1000 : 0;
        String kind = args.length > 5 ? args[5] : "greedy";
        boolean ahead = args.length > 6 && args[6].equals("ahead");
        if (args.length > 6 && (!ahead || gapNanos == 0)) {
            System.err.println("the last argument is \"ahead\" (with a gap), got " + args[6]);
            System.exit(2);
        }
        if (!List.of("greedy", "temp", "tempchain", "topp", "toppchain", "topk", "topkchain").contains(kind)) {
            System.err.println("kind must be greedy, temp, topp or topk, the last three perhaps with \"chain\", got " + kind);
            System.exit(2);
        }
        try (LlamaModel m = LlamaModel.load(model, ModelParams.defaults().withGpuLayers(gpuLayers));
             LlamaContext ctx = m.newContext(ContextParams.defaults().withContextSize(16 * rows).withBatch(rows, rows)
                     .withSequences(rows).withThreads(Runtime.getRuntime().availableProcessors(),
                             Runtime.getRuntime().availableProcessors()));
             Batch batch = ctx.newBatch(rows)) {
            int vocab = m.vocabulary().size();
            int[] indices = new int[rows];
            for (int s = 0; s < rows; s++) {
                indices[s] = batch.size();
                batch.add((s * 7919 + 13) % vocab, 0, s, true);
            }
            ctx.decode(batch);
            Sampler[] samplers = new Sampler[rows];
            for (int s = 0; s < rows; s++) {
                Sampler.Builder b = switch (kind.replace("chain", "")) {
                    case "temp" -> Sampler.builder(m.vocabulary()).temperature(0.8f).seed(s + 1);
                    case "topp" -> Sampler.builder(m.vocabulary()).temperature(0.8f).topP(0.95f).seed(s + 1);
                    case "topk" -> Sampler.builder(m.vocabulary()).topK(40).temperature(0.8f).topP(0.95f).seed(s + 1);
                    default -> Sampler.builder(m.vocabulary());
                };
                samplers[s] = (kind.endsWith("chain") ? BenchAccess.llamaChainDraws(b) : b).build();
            }
            int[] tokens = new int[rows];
            RuntimeException[] errors = new RuntimeException[rows];
            int[] reference = null;
            System.out.printf(Locale.ROOT, "model %s, vocabulary %d, %d rows, %d CPUs%n", model.getFileName(), vocab, rows,
                    Runtime.getRuntime().availableProcessors());
            System.out.printf(Locale.ROOT, "gap between steps: %d µs%s; samplers: %s%n", gapNanos / 1000,
                    ahead ? ", helpers woken at its start" : "", kind);
            System.out.println("| threads | µs per step (median of 9 batches of 200) | µs per row | last helper's start µs (mean) | helpers per step (woken ahead) |");
            System.out.println("| ---: | ---: | ---: | ---: | ---: |");
            for (int threads = 1; threads <= maxThreads; threads *= 2) {
                try (SamplingPool pool = new SamplingPool(threads)) {
                    for (int i = 0; i < 300; i++) { // warm-up: JIT, helper threads started
                        pool.sample(ctx, samplers, indices, rows, tokens, errors);
                    }
                    double[] perStep = new double[9];
                    long starts = 0;
                    long helpers = 0;
                    long helpersAhead = 0;
                    for (int b = 0; b < perStep.length; b++) {
                        long busy = 0;
                        for (int i = 0; i < 200; i++) {
                            if (gapNanos > 0) {
                                if (ahead) {
                                    pool.wakeAhead(System.nanoTime() + gapNanos, rows);
                                }
                                LockSupport.parkNanos(gapNanos);
                            }
                            long t0 = System.nanoTime();
                            pool.sample(ctx, samplers, indices, rows, tokens, errors);
                            busy += System.nanoTime() - t0;
                            starts += pool.lastHelperStartNanos();
                            helpers += pool.lastHelpers();
                            helpersAhead += pool.lastHelpersAhead();
                        }
                        perStep[b] = busy / 200.0 / 1000.0;
                    }
                    Arrays.sort(perStep);
                    if (!kind.equals("greedy")) {
                        // draws: different tokens every step
                    } else if (reference == null) {
                        reference = tokens.clone();
                    } else if (!Arrays.equals(reference, tokens)) {
                        throw new IllegalStateException("different picks with " + threads + " threads");
                    }
                    double median = perStep[perStep.length / 2];
                    double steps = 200.0 * perStep.length;
                    System.out.printf(Locale.ROOT, "| %d | %.1f | %.2f | %.1f | %.2f (%.2f) |%n", threads, median, median / rows,
                            starts / 1000.0 / steps, helpers / steps, helpersAhead / steps);
                }
            }
            for (Sampler s : samplers) {
                s.close();
            }
        }
    }
}
