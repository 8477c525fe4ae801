package ai.llmref.llama.bench;

import static ai.llmref.bindings.ffi.llama_h.*;

import ai.llmref.bindings.ffi.llama_batch;
import ai.llmref.bindings.ffi.llama_context_params;
import ai.llmref.bindings.ffi.llama_perf_context_data;
import ai.llmref.bindings.ffi.llama_sampler_chain_params;
import ai.llmref.llama.Batch;
import ai.llmref.llama.BenchAccess;
import ai.llmref.llama.ContextParams;
import ai.llmref.llama.LlamaBackend;
import ai.llmref.llama.LlamaContext;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Sampler;
import ai.llmref.llama.Vocabulary;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The Java side of {@code scripts/bench-bindings.sh}: llama-bench's pp and tg tests run through the
 * Java API with the same parameters, so that the two can be compared as ratios. A program, not a
 * unit test (tests carry no speed limits).
 *
 * <p>What it mirrors ({@code tools/llama-bench/llama-bench.cpp} of the pinned tree): every test
 * gets its own context with {@code n_ctx = n_prompt + n_gen} of that test (pp: {@code n_gen = 0},
 * tg: {@code n_prompt = 0}), {@code n_batch}/{@code n_ubatch}, the same thread count for generation
 * and batches, the flash attention policy, an F16 KV cache, no GPU layers, llama.cpp's default load
 * mode. The KV cache is cleared before one untimed warmup run (pp: a whole prompt; tg: one token)
 * and before every timed repetition. pp decodes {@code n_prompt} random tokens (the first is BOS
 * when the vocabulary adds one) in chunks of {@code n_batch}, logits for the last token only, then
 * {@code llama_synchronize}; tg decodes {@code n_gen} single random tokens with a
 * {@code llama_synchronize} after each and samples nothing (on a GPU {@code llama_decode} returns
 * once the work is queued: without the synchronize a clock measures the queueing, and the next
 * variant's repetition waits for the work). Each repetition gives tokens per
 * second; the result is their mean and sample standard deviation, as llama-bench's
 * {@code avg_ts ± stddev_ts}.
 *
 * <p>With {@code --alone} only {@code api} runs, on one context with its repetitions back to back
 * exactly as llama-bench runs its own (reported as {@code api-alone}); with {@code --jit-decodes 0}
 * as well, the process holds one model and one context per test, as llama-bench does: whether the
 * interleaving of several contexts below, or the warm-up's many short-lived contexts, change the
 * figure, as they might on a GPU, where each context has its own streams and captured CUDA graphs.
 * Run 4 on the H200 measured {@code api-alone} at 0.993 of llama-bench's tg128 where the interleaved
 * process read 0.945, all of it in the wait for the device; to tell the two differences apart,
 * {@code --idle-contexts K} keeps K more contexts of the model alive (each having decoded a token)
 * while the alone variant runs, and {@code --alone-suffix S} names the row {@code api-alone} + S
 * (with the JIT warm-up left on, the warm-up's model and contexts come first, as in the
 * interleaved process).
 *
 * <p>Variants, measured with their repetitions interleaved (A, B, C, A, B, C ...) so that a change
 * in machine load hits them alike:
 * <ul>
 *   <li>{@code api}: the safe Java API ({@link Batch#add}, {@link LlamaContext#decode}) - the Java figure;
 *   <li>{@code api+greedy} (tg only): each next token chosen by {@link Sampler#sample} and fed back,
 *       the real generation loop;
 *   <li>{@code raw}: llama-bench's loop on the generated jextract bindings alone: a
 *       {@code llama_batch_get_one}-style batch built once, {@code llama_decode} and
 *       {@code llama_synchronize} per token, on the same {@code llama_model} as {@code api} (its
 *       handle is reached by reflection: a second load would place the repacked weights in other
 *       memory). {@code api} vs {@code raw} isolates the cost of the safe API; {@code raw} vs
 *       llama-bench the cost of being a JVM process calling through FFM;
 *   <li>{@code api+threadpool} (with {@code --threadpool}): the safe API with a persistent ggml
 *       threadpool attached to the context as llama-bench does (reaches the context's private
 *       handle by reflection: a diagnostic for a possible API change, not a use of the API).
 * </ul>
 * Also the cost of one greedy {@link Sampler#sample} on the model's vocabulary (the same logits
 * sampled again and again: llama_sampler_sample re-reads every logit on each call, so this is the
 * per-token cost), the same through the raw bindings, {@link LlamaContext#logits} (a
 * vocabulary-sized copy) followed by an argmax in Java, and an argmax over the logits in place;
 * and of a seeded draw (temperature 1; temperature 0.8 with top-p 0.95) computed by the bindings
 * against the same draw through llama.cpp's chain.
 * With {@code --profile}: where a token's time goes (batch fill, decode, next token timed apart;
 * the raw loop against llama.cpp's own {@code t_eval} counter) and the Java heap bytes allocated
 * per generated token.
 *
 * <p>Before anything is measured the JIT is warmed up: the same code runs on {@code --jit-model}
 * (stories260K) for {@code --jit-decodes} decode calls.
 *
 * <p>Output: a readable table on stdout and, with {@code --jsonl FILE}, one JSON object per result
 * named like llama-bench's JSON output (n_prompt, n_gen, n_threads, samples_ts, avg_ts, stddev_ts).
 */
public final class DecodeBenchmark {

    static final String USAGE = """
            usage: DecodeBenchmark -m MODEL [-p 512] [-n 128] [-t THREADS] [-b 2048] [-ub 512] [-fa auto|on|off]
                                   [-ngl 0] [-r 5] [--jit-model STORIES260K] [--jit-decodes 10000] [--sample-calls 2000 (0: skip)]
                                   [--no-raw] [--no-sampled] [--threadpool] [--profile] [--alone] [--jsonl FILE] [--label NAME]
                                   [--idle-contexts 0] [--alone-suffix S]
            Defaults are llama-bench's (threads: all available processors). --alone: the api variant only, on
            one context, its repetitions back to back as llama-bench runs them (reported as "api-alone", or
            "api-alone" + S with --alone-suffix). --jit-decodes 0: no JIT warm-up (nor its model's load).
            --idle-contexts K: K more contexts of the model kept alive while measuring (0..8).""";

    /** The command line. */
    record Options(Path model, Path jitModel, int nPrompt, int nGen, int threads, int nBatch, int nUbatch,
                   ContextParams.FlashAttention flashAttention, int reps, int jitDecodes, int sampleCalls,
                   boolean raw, boolean sampled, boolean threadpool, boolean profile, Path jsonl, String label,
                   int gpuLayers, boolean alone, int idleContexts, String aloneSuffix) {

        static Options parse(String[] args) {
            Map<String, String> a = new HashMap<>();
            for (int i = 0; i < args.length; i++) {
                String k = args[i];
                if (List.of("--no-raw", "--no-sampled", "--threadpool", "--profile", "--alone").contains(k)) {
                    a.put(k, "true");
                } else if (i + 1 < args.length) {
                    a.put(k, args[++i]);
                } else {
                    throw new IllegalArgumentException("missing value after " + k);
                }
            }
            String model = a.remove("-m");
            if (model == null) {
                throw new IllegalArgumentException("-m MODEL is required");
            }
            String jit = a.remove("--jit-model");
            String jsonl = a.remove("--jsonl");
            String label = a.remove("--label");
            boolean alone = a.remove("--alone") != null;
            String suffix = a.remove("--alone-suffix");
            if (suffix != null && (!alone || !suffix.matches("-[a-z0-9]+"))) {
                throw new IllegalArgumentException("--alone-suffix needs --alone and a value like -jit (a dash, then lower-case letters or digits)");
            }
            if (alone && (a.containsKey("--threadpool") || a.containsKey("--profile"))) {
                throw new IllegalArgumentException("--alone measures the api variant only: leave out --threadpool and --profile");
            }
            Options o = new Options(Path.of(model), Path.of(jit == null ? model : jit),
                    intArg(a, "-p", 512), intArg(a, "-n", 128), intArg(a, "-t", Runtime.getRuntime().availableProcessors()),
                    intArg(a, "-b", 2048), intArg(a, "-ub", 512), flash(a.remove("-fa")), intArg(a, "-r", 5),
                    intArg(a, "--jit-decodes", 10_000), intArg(a, "--sample-calls", 2_000) * (alone ? 0 : 1),
                    a.remove("--no-raw") == null && !alone, a.remove("--no-sampled") == null && !alone,
                    a.remove("--threadpool") != null, a.remove("--profile") != null,
                    jsonl == null ? null : Path.of(jsonl), label == null ? Path.of(model).getFileName().toString() : label,
                    intArg(a, "-ngl", 0), alone, intArg(a, "--idle-contexts", 0), suffix == null ? "" : suffix);
            if (!a.isEmpty()) {
                throw new IllegalArgumentException("unknown options " + a.keySet());
            }
            if (o.nPrompt < 0 || o.nGen < 0 || o.reps < 1 || o.threads < 1 || o.nBatch < 1 || o.nUbatch < 1
                    || o.sampleCalls < 0 || o.gpuLayers < -1 || o.idleContexts < 0 || o.idleContexts > 8) {
                throw new IllegalArgumentException("-p, -n and --sample-calls must be >= 0; -r, -t, -b, -ub >= 1; -ngl >= -1; --idle-contexts 0..8");
            }
            return o;
        }

        private static int intArg(Map<String, String> a, String key, int dflt) {
            String v = a.remove(key);
            return v == null ? dflt : Integer.parseInt(v);
        }

        private static ContextParams.FlashAttention flash(String v) {
            if (v == null) {
                return ContextParams.FlashAttention.AUTO; // llama-bench's default
            }
            return switch (v.toLowerCase(Locale.ROOT)) {
                case "auto", "-1" -> ContextParams.FlashAttention.AUTO;
                case "on", "1", "true" -> ContextParams.FlashAttention.ENABLED;
                case "off", "0", "false" -> ContextParams.FlashAttention.DISABLED;
                default -> throw new IllegalArgumentException("-fa must be on, off or auto, got " + v);
            };
        }

        int nativeFlashAttention() {
            return switch (flashAttention) {
                case AUTO -> -1;
                case DISABLED -> 0;
                case ENABLED -> 1;
            };
        }
    }

    /** One result: per-repetition values (tokens/s, or µs per call for the sampling costs). */
    record Result(String test, String variant, int nPrompt, int nGen, double[] samples, String unit) {
        double avg() {
            double s = 0;
            for (double v : samples) {
                s += v;
            }
            return s / samples.length;
        }

        /** Sample standard deviation (n - 1), as llama-bench. */
        double stddev() {
            int n = samples.length;
            if (n <= 1) {
                return 0;
            }
            double mean = avg();
            double sq = 0;
            for (double v : samples) {
                sq += (v - mean) * (v - mean);
            }
            return Math.sqrt(sq / (n - 1));
        }

        String name() {
            return test + (nPrompt > 0 ? nPrompt : "") + (nGen > 0 ? nGen : "") + " " + variant;
        }
    }

    /** One way of running a test: prepared once, then cleared and run once per repetition. */
    private interface Variant extends AutoCloseable {
        String name();

        /** Empties the KV cache (untimed). */
        void clear();

        /** One repetition: n_prompt or n_gen tokens. */
        void run(int tokens);

        @Override
        void close();
    }

    /** Repetitions of the sampling-cost loops (each is --sample-calls calls). */
    private static final int SAMPLE_REPS = 10;

    private final Options options;
    /** A xorshift in place of llama-bench's std::rand(): allocation-free, a few ns per token. */
    private int rng = 0x2545F491;
    /** Written by the loops so that the JIT cannot drop their work. */
    private long sink;

    private DecodeBenchmark(Options options) {
        this.options = options;
    }

    public static void main(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage() + "\n" + USAGE);
            System.exit(2);
            return;
        }
        new DecodeBenchmark(o).run();
    }

    private void run() {
        PrintStream out = System.out;
        LlamaBackend backend = LlamaBackend.initialize();
        out.printf(Locale.ROOT, "java %s (%s), %d processors; native libraries: %s%n", Runtime.version(),
                System.getProperty("java.vm.name"), Runtime.getRuntime().availableProcessors(), backend.librarySource());
        out.println("llama.cpp system info: " + backend.systemInfo());

        long w0 = System.nanoTime();
        int decodes = jitWarmup();
        out.printf(Locale.ROOT, "JIT warm-up: %d decode calls on %s in %.1f s%n", decodes, options.jitModel.getFileName(),
                (System.nanoTime() - w0) / 1e9);

        List<Result> results = new ArrayList<>();
        try (LlamaModel model = LlamaModel.load(options.model, modelParams(options.gpuLayers));
                RawModel raw = options.raw ? RawModel.of(model) : null) {
            List<LlamaContext> idle = new ArrayList<>();
            try {
                for (int i = 0; i < options.idleContexts; i++) {
                    // kept alive, each with its buffers allocated and a graph run once, while the others measure
                    LlamaContext c = newContext(model, Math.max(256, options.nGen), false);
                    idle.add(c);
                    try (Batch b = c.newBatch(1)) {
                        b.add(model.vocabulary().addsBos() ? model.vocabulary().bos() : 1, 0, 0, true);
                        c.decode(b);
                        c.synchronize();
                    }
                }
                if (options.nPrompt > 0) {
                    results.addAll(interleaved("pp", options.nPrompt, options.reps, promptVariants(model, raw, options.nPrompt)));
                    if (options.profile && raw != null) {
                        results.addAll(promptProfile(raw, options.nPrompt, options.reps));
                    }
                }
                if (options.nGen > 0) {
                    results.addAll(interleaved("tg", options.nGen, options.reps, genVariants(model, raw, options.nGen)));
                    if (options.sampleCalls > 0) {
                        results.addAll(sampleCosts(model, raw, options.sampleCalls, SAMPLE_REPS));
                    }
                    if (options.profile) {
                        results.addAll(profile(model, raw, options.nGen, options.reps));
                    }
                }
            } finally {
                idle.forEach(LlamaContext::close); // before the model
            }
        }
        if (options.alone) {
            String name = "-alone" + options.aloneSuffix;
            results.replaceAll(r -> new Result(r.test(), r.variant() + name, r.nPrompt(), r.nGen(), r.samples(), r.unit()));
        }
        report(out, results);
    }

    private static ModelParams modelParams(int gpuLayers) {
        // llama-bench: llama_model_default_params() (load mode AUTO); -ngl as on its command line.
        return ModelParams.defaults().withGpuLayers(gpuLayers).withLoadMode(ModelParams.LoadMode.AUTO);
    }

    // --- JIT warm-up -----------------------------------------------------------------------------

    /**
     * Runs the measured code itself on the JIT model until {@code jitDecodes} decode calls were
     * made, so that every call site on the measured paths is compiled before the first
     * measurement. Results are thrown away.
     */
    private int jitWarmup() {
        int decodes = 0;
        if (options.jitDecodes == 0) {
            return 0; // not even the JIT model's load
        }
        try (LlamaModel model = LlamaModel.load(options.jitModel, modelParams(options.gpuLayers));
                RawModel raw = options.raw ? RawModel.of(model) : null) {
            int gen = 64;
            int prompt = 64;
            while (decodes < options.jitDecodes) {
                List<Variant> g = genVariants(model, raw, gen);
                interleaved("tg", gen, 10, g);
                decodes += g.size() * 11 * gen;
                List<Variant> p = promptVariants(model, raw, prompt);
                interleaved("pp", prompt, 10, p);
                decodes += p.size() * 11;
                if (options.sampleCalls > 0) {
                    sampleCosts(model, raw, 100, 2);
                    decodes += 2;
                }
            }
        }
        return decodes;
    }

    // --- the interleaved runs ---------------------------------------------------------------------

    /** llama-bench's sequence for each variant (clear, warmup, then clear + timed run per rep), reps interleaved. */
    private static List<Result> interleaved(String test, int tokens, int reps, List<Variant> variants) {
        double[][] ts = new double[variants.size()][reps];
        try {
            for (Variant v : variants) {
                v.clear();
                v.run(test.equals("tg") ? 1 : tokens); // llama-bench's warmup: one token for tg, the whole prompt for pp
            }
            for (int r = 0; r < reps; r++) {
                for (int i = 0; i < variants.size(); i++) {
                    Variant v = variants.get(i);
                    v.clear();
                    long t0 = System.nanoTime();
                    v.run(tokens);
                    ts[i][r] = 1e9 * tokens / (System.nanoTime() - t0);
                }
            }
        } finally {
            variants.forEach(Variant::close);
        }
        List<Result> results = new ArrayList<>();
        for (int i = 0; i < variants.size(); i++) {
            boolean pp = test.equals("pp");
            results.add(new Result(test, variants.get(i).name(), pp ? tokens : 0, pp ? 0 : tokens, ts[i], "t/s"));
        }
        return results;
    }

    private List<Variant> promptVariants(LlamaModel model, RawModel raw, int nPrompt) {
        List<Variant> v = new ArrayList<>();
        v.add(new ApiPrompt(model, nPrompt, false));
        if (raw != null) {
            v.add(new RawPrompt(raw, nPrompt));
        }
        if (options.threadpool) {
            v.add(new ApiPrompt(model, nPrompt, true));
        }
        return v;
    }

    private List<Variant> genVariants(LlamaModel model, RawModel raw, int nGen) {
        List<Variant> v = new ArrayList<>();
        v.add(new ApiGen(model, nGen, false, false));
        if (options.sampled) {
            v.add(new ApiGen(model, nGen, true, false));
        }
        if (raw != null) {
            v.add(new RawGen(raw, nGen));
        }
        if (options.threadpool) {
            v.add(new ApiGen(model, nGen, false, true));
        }
        return v;
    }

    /**
     * The calling thread's minor page faults, voluntary and involuntary context switches so far,
     * from Linux's {@code getrusage(RUSAGE_THREAD)} (x86_64 {@code struct rusage}: two timevals,
     * then fourteen longs); the C loop counts the same, so that the two processes' decoding threads
     * can be compared.
     */
    static final class ThreadCounts {
        private static final int RUSAGE_THREAD = 1;
        private static final MethodHandle GETRUSAGE = Linker.nativeLinker().downcallHandle(
                Linker.nativeLinker().defaultLookup().find("getrusage").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
        private final MemorySegment usage;

        ThreadCounts(Arena arena) {
            usage = arena.allocate(144, 8);
        }

        /** Fills {@code out} with the minor faults, voluntary and involuntary switches. */
        void read(long[] out) {
            try {
                if ((int) GETRUSAGE.invokeExact(RUSAGE_THREAD, usage) != 0) {
                    throw new IllegalStateException("getrusage failed");
                }
            } catch (Throwable t) {
                throw t instanceof RuntimeException e ? e : new IllegalStateException(t);
            }
            out[0] = usage.get(ValueLayout.JAVA_LONG, 32 + 4 * 8); // ru_minflt
            out[1] = usage.get(ValueLayout.JAVA_LONG, 32 + 12 * 8); // ru_nvcsw
            out[2] = usage.get(ValueLayout.JAVA_LONG, 32 + 13 * 8); // ru_nivcsw
        }
    }

    private int nextToken(int nVocab) {
        int x = rng;
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        rng = x;
        return (x & 0x7fffffff) % nVocab;
    }

    // --- through the Java API ---------------------------------------------------------------------

    private LlamaContext newContext(LlamaModel model, int nCtx, boolean threadpool) {
        LlamaContext ctx = model.newContext(ContextParams.defaults()
                .withContextSize(nCtx)
                .withBatch(options.nBatch, Math.min(options.nUbatch, options.nBatch)) // llama.cpp clamps the same way
                .withThreads(options.threads, options.threads)
                .withFlashAttention(options.flashAttention)
                .withKvCacheTypes(ContextParams.KvCacheType.F16, ContextParams.KvCacheType.F16));
        if (threadpool) {
            CpuThreadpool.attach(ctx, options.threads);
        }
        return ctx;
    }

    /** llama-bench's test_prompt through the Java API. */
    private final class ApiPrompt implements Variant {
        private final LlamaContext ctx;
        private final Batch batch;
        private final Vocabulary vocab;
        private final int nVocab;
        private final boolean addBos;
        private final String name;

        ApiPrompt(LlamaModel model, int nPrompt, boolean threadpool) {
            this.vocab = model.vocabulary();
            this.nVocab = vocab.size();
            this.addBos = vocab.addsBos();
            this.ctx = newContext(model, nPrompt, threadpool);
            this.batch = ctx.newBatch(Math.min(Math.min(options.nBatch, ctx.batchSize()), nPrompt));
            this.name = threadpool ? "api+threadpool" : "api";
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public void clear() {
            ctx.clearMemory();
        }

        @Override
        public void run(int nPrompt) {
            int chunk = batch.capacity();
            int processed = 0;
            while (processed < nPrompt) {
                int n = Math.min(nPrompt - processed, chunk);
                batch.clear();
                for (int i = 0; i < n; i++) {
                    int token = i == 0 && processed == 0 && addBos ? vocab.bos() : nextToken(nVocab);
                    batch.add(token, processed + i, 0, i == n - 1);
                }
                ctx.decode(batch);
                processed += n;
            }
            ctx.synchronize(); // llama-bench's test_prompt ends the same way
        }

        @Override
        public void close() {
            batch.close();
            ctx.close();
        }
    }

    /**
     * llama-bench's test_gen through the Java API (random tokens, nothing sampled) or, with
     * {@code sampled}, the generation loop: each next token is {@link Sampler#sample}d greedily.
     */
    private final class ApiGen implements Variant {
        private final LlamaContext ctx;
        private final Batch batch;
        private final Sampler sampler;
        private final int nVocab;
        private final int first;
        private final String name;

        ApiGen(LlamaModel model, int nGen, boolean sampled, boolean threadpool) {
            Vocabulary vocab = model.vocabulary();
            this.nVocab = vocab.size();
            this.first = vocab.addsBos() ? vocab.bos() : nextToken(nVocab);
            this.ctx = newContext(model, nGen, threadpool);
            this.batch = ctx.newBatch(1);
            this.sampler = sampled ? Sampler.greedy(vocab) : null;
            this.name = sampled ? "api+greedy" : threadpool ? "api+threadpool" : "api";
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public void clear() {
            ctx.clearMemory();
        }

        @Override
        public void run(int nGen) {
            int token = first;
            for (int i = 0; i < nGen; i++) {
                batch.clear();
                batch.add(token, i, 0, true);
                ctx.decode(batch);
                if (sampler == null) {
                    ctx.synchronize(); // llama-bench's test_gen: llama_synchronize per token
                    token = nextToken(nVocab);
                } else {
                    token = sampler.sample(ctx, 0); // reads the logits: waits for the decode
                }
            }
            sink += token;
        }

        @Override
        public void close() {
            if (sampler != null) {
                sampler.close();
            }
            batch.close();
            ctx.close();
        }
    }

    /**
     * The cost of one greedy {@link Sampler#sample} on the model's vocabulary: one decode, then the
     * same output sampled {@code calls} times per repetition (µs per call). The same through the
     * raw bindings, and {@link LlamaContext#logits} plus a Java argmax.
     */
    private List<Result> sampleCosts(LlamaModel model, RawModel raw, int calls, int reps) {
        List<Result> results = new ArrayList<>();
        Vocabulary vocab = model.vocabulary();
        try (LlamaContext ctx = newContext(model, 16, false);
                Batch batch = ctx.newBatch(1);
                Sampler sampler = Sampler.greedy(vocab)) {
            batch.add(vocab.addsBos() ? vocab.bos() : 1, 0, 0, true);
            ctx.decode(batch);
            double[] api = new double[reps];
            double[] copy = new double[reps];
            for (int i = 0; i < calls / 4 + 1; i++) { // caches, branch predictors
                sink += sampler.sample(ctx, 0) + argmax(ctx.logits(0));
            }
            for (int r = 0; r < reps; r++) {
                long t0 = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    sink += sampler.sample(ctx, 0);
                }
                api[r] = (System.nanoTime() - t0) / 1e3 / calls;
                t0 = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    sink += argmax(ctx.logits(0));
                }
                copy[r] = (System.nanoTime() - t0) / 1e3 / calls;
            }
            results.add(new Result("sample", "api (Sampler.sample, greedy)", 0, 0, api, "us/token"));
            results.add(new Result("sample", "api (logits() copy + Java argmax)", 0, 0, copy, "us/token"));
            // draws: the bindings' own against llama.cpp's chain (fewer calls: a chain's top-p sorts
            // a flat 128k distribution, some milliseconds a call)
            int draws = Math.max(1, calls / 80);
            for (boolean topP : new boolean[] {false, true}) {
                for (boolean java : new boolean[] {true, false}) {
                    Sampler.Builder b = Sampler.builder(vocab).seed(1234);
                    b = topP ? b.temperature(0.8f).topP(0.95f) : b.temperature(1f);
                    try (Sampler draw = (java ? b : BenchAccess.llamaChainDraws(b)).build()) {
                        double[] us = new double[reps];
                        // the JIT compiles the bindings' draw loops (vector code) only after some hundreds
                        for (int i = 0; i < (java ? 500 : draws / 4 + 1); i++) {
                            sink += draw.sample(ctx, 0);
                        }
                        for (int r = 0; r < reps; r++) {
                            long t0 = System.nanoTime();
                            for (int i = 0; i < draws; i++) {
                                sink += draw.sample(ctx, 0);
                            }
                            us[r] = (System.nanoTime() - t0) / 1e3 / draws;
                        }
                        String what = topP ? "temperature 0.8, top-p 0.95" : "temperature 1";
                        results.add(new Result("sample", (java ? "api (Sampler.sample, " : "llama.cpp chain (") + what + ")", 0, 0, us, "us/token"));
                    }
                }
            }
        }
        if (raw != null) {
            results.addAll(rawSampleCosts(raw, calls, reps));
        }
        return results;
    }

    private static int argmax(float[] logits) {
        int best = 0;
        float max = logits[0];
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > max) {
                max = logits[i];
                best = i;
            }
        }
        return best;
    }

    // --- through the generated bindings only ------------------------------------------------------

    /** A model driven through llama_h directly. */
    private static final class RawModel implements AutoCloseable {
        final MemorySegment model;
        final int nVocab;
        final boolean addBos;
        final int bos;

        private RawModel(MemorySegment model) {
            this.model = model;
            MemorySegment vocab = llama_model_get_vocab(model);
            this.nVocab = llama_vocab_n_tokens(vocab);
            this.addBos = llama_vocab_get_add_bos(vocab);
            this.bos = llama_vocab_bos(vocab);
        }

        /**
         * The llama_model behind {@code model} (its handle is private: reflection). Sharing the
         * model keeps the comparison fair: a second load would put the (repacked) weights in other
         * memory, and that alone moved the figures by a few percent.
         */
        static RawModel of(LlamaModel model) {
            try {
                java.lang.reflect.Field f = LlamaModel.class.getDeclaredField("handle");
                f.setAccessible(true);
                return new RawModel((MemorySegment) f.get(model));
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot reach LlamaModel's native handle", e);
            }
        }

        /** A context as llama-bench's to_llama_cparams() makes it. */
        MemorySegment context(Options o, int nCtx) {
            return context(o, nCtx, false);
        }

        /** The same, with llama.cpp's perf counters on or off (llama-bench: off). */
        MemorySegment context(Options o, int nCtx, boolean perf) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment cp = llama_context_default_params(a);
                llama_context_params.n_ctx(cp, nCtx);
                llama_context_params.n_batch(cp, o.nBatch);
                llama_context_params.n_ubatch(cp, o.nUbatch);
                llama_context_params.n_threads(cp, o.threads);
                llama_context_params.n_threads_batch(cp, o.threads);
                llama_context_params.flash_attn_type(cp, o.nativeFlashAttention());
                llama_context_params.swa_full(cp, false);
                llama_context_params.no_perf(cp, !perf);
                MemorySegment ctx = llama_init_from_model(model, cp);
                if (ctx.equals(MemorySegment.NULL)) {
                    throw new IllegalStateException("llama_init_from_model failed");
                }
                return ctx;
            }
        }

        @Override
        public void close() {
            // the model belongs to its LlamaModel
        }
    }

    /** A llama_batch with only {@code token} set (pos, seq ids, logits NULL), like llama_batch_get_one. */
    private static MemorySegment batchGetOne(Arena arena, MemorySegment tokens) {
        MemorySegment b = llama_batch.allocate(arena);
        llama_batch.token(b, tokens);
        llama_batch.embd(b, MemorySegment.NULL);
        llama_batch.pos(b, MemorySegment.NULL);
        llama_batch.n_seq_id(b, MemorySegment.NULL);
        llama_batch.seq_id(b, MemorySegment.NULL);
        llama_batch.logits(b, MemorySegment.NULL);
        return b;
    }

    /** llama-bench's test_prompt on the bindings alone. */
    private final class RawPrompt implements Variant {
        private final RawModel m;
        private final Arena arena = Arena.ofConfined();
        private final MemorySegment ctx;
        private final MemorySegment memory;
        private final MemorySegment tokens;
        private final MemorySegment batch;
        private final int chunk;
        /** The last run's time in the llama_decode calls and in the llama_synchronize wait. */
        long callNanos;
        long waitNanos;

        RawPrompt(RawModel m, int nPrompt) {
            this.m = m;
            this.ctx = m.context(options, nPrompt);
            this.memory = llama_get_memory(ctx);
            this.chunk = Math.min(options.nBatch, nPrompt);
            this.tokens = arena.allocate(ValueLayout.JAVA_INT, chunk);
            this.batch = batchGetOne(arena, tokens);
        }

        @Override
        public String name() {
            return "raw";
        }

        @Override
        public void clear() {
            llama_memory_clear(memory, false);
        }

        @Override
        public void run(int nPrompt) {
            int processed = 0;
            long calls = 0;
            while (processed < nPrompt) {
                int n = Math.min(nPrompt - processed, chunk);
                for (int i = 0; i < n; i++) {
                    tokens.setAtIndex(ValueLayout.JAVA_INT, i, i == 0 && processed == 0 && m.addBos ? m.bos : nextToken(m.nVocab));
                }
                llama_batch.n_tokens(batch, n);
                long c0 = System.nanoTime();
                int rc = llama_decode(ctx, batch);
                calls += System.nanoTime() - c0;
                if (rc != 0) {
                    throw new IllegalStateException("llama_decode returned " + rc);
                }
                processed += n;
            }
            long w0 = System.nanoTime();
            llama_synchronize(ctx);
            waitNanos = System.nanoTime() - w0;
            callNanos = calls;
        }

        @Override
        public void close() {
            llama_free(ctx);
            arena.close();
        }
    }

    /** llama-bench's test_gen on the bindings alone. */
    private final class RawGen implements Variant {
        private final RawModel m;
        private final Arena arena = Arena.ofConfined();
        private final MemorySegment ctx;
        private final MemorySegment memory;
        private final MemorySegment tokens;
        private final MemorySegment batch;

        RawGen(RawModel m, int nGen) {
            this.m = m;
            this.ctx = m.context(options, nGen);
            this.memory = llama_get_memory(ctx);
            this.tokens = arena.allocate(ValueLayout.JAVA_INT, 1);
            this.batch = batchGetOne(arena, tokens);
            llama_batch.n_tokens(batch, 1);
        }

        @Override
        public String name() {
            return "raw";
        }

        @Override
        public void clear() {
            llama_memory_clear(memory, false);
        }

        @Override
        public void run(int nGen) {
            int token = m.addBos ? m.bos : nextToken(m.nVocab);
            for (int i = 0; i < nGen; i++) {
                tokens.set(ValueLayout.JAVA_INT, 0, token);
                int rc = llama_decode(ctx, batch);
                if (rc != 0) {
                    throw new IllegalStateException("llama_decode returned " + rc);
                }
                llama_synchronize(ctx);
                token = nextToken(m.nVocab);
            }
        }

        @Override
        public void close() {
            llama_free(ctx);
            arena.close();
        }
    }

    /**
     * llama_sampler_sample (greedy chain) through the bindings, and an argmax in Java over the
     * logits where llama.cpp keeps them (llama_get_logits_ith, no copy): what a greedy fast path in
     * the API could cost.
     */
    private List<Result> rawSampleCosts(RawModel m, int calls, int reps) {
        MemorySegment ctx = m.context(options, 16);
        MemorySegment chain;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sp = llama_sampler_chain_default_params(a);
            llama_sampler_chain_params.no_perf(sp, true);
            chain = llama_sampler_chain_init(sp);
            llama_sampler_chain_add(chain, llama_sampler_init_greedy());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment tokens = arena.allocate(ValueLayout.JAVA_INT, 1);
            tokens.set(ValueLayout.JAVA_INT, 0, m.addBos ? m.bos : 1);
            MemorySegment batch = batchGetOne(arena, tokens);
            llama_batch.n_tokens(batch, 1);
            if (llama_decode(ctx, batch) != 0) {
                throw new IllegalStateException("llama_decode failed");
            }
            for (int i = 0; i < calls / 4 + 1; i++) {
                sink += llama_sampler_sample(chain, ctx, -1) + argmaxInPlace(ctx, m.nVocab);
            }
            double[] sampler = new double[reps];
            double[] inPlace = new double[reps];
            for (int r = 0; r < reps; r++) {
                long t0 = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    sink += llama_sampler_sample(chain, ctx, -1);
                }
                sampler[r] = (System.nanoTime() - t0) / 1e3 / calls;
                t0 = System.nanoTime();
                for (int i = 0; i < calls; i++) {
                    sink += argmaxInPlace(ctx, m.nVocab);
                }
                inPlace[r] = (System.nanoTime() - t0) / 1e3 / calls;
            }
            if (argmaxInPlace(ctx, m.nVocab) != llama_sampler_sample(chain, ctx, -1)) {
                throw new IllegalStateException("the in-place argmax disagrees with llama.cpp's greedy sampler");
            }
            return List.of(new Result("sample", "raw (llama_sampler_sample, greedy)", 0, 0, sampler, "us/token"),
                    new Result("sample", "raw (Java argmax over native logits, no copy)", 0, 0, inPlace, "us/token"));
        } finally {
            llama_sampler_free(chain);
            llama_free(ctx);
        }
    }

    private static int argmaxInPlace(MemorySegment ctx, int nVocab) {
        return BenchAccess.plainArgmax(llama_get_logits_ith(ctx, -1).reinterpret((long) nVocab * Float.BYTES));
    }

    // --- where the time goes (diagnostic) ---------------------------------------------------------

    /**
     * Splits a token's time: the API loop timed piece by piece (batch fill, {@link LlamaContext#decode},
     * choosing the next token), and the raw loop on a context with llama.cpp's perf counters on, whose
     * {@code t_eval} is the time spent inside llama_decode's evaluation: wall minus t_eval is what
     * is spent outside llama.cpp's compute per token (Java, FFM, llama_decode's bookkeeping).
     */
    private List<Result> profile(LlamaModel model, RawModel raw, int nGen, int reps) {
        double[] fill = new double[reps];
        double[] decode = new double[reps];
        double[] next = new double[reps];
        double[] wall = new double[reps];
        double[] inside = new double[reps];
        double[] outside = new double[reps];
        double[] reused = new double[reps];
        double[] call = new double[reps];
        double[] wait = new double[reps];
        double[][] counts = new double[3][reps]; // per token: minor faults, voluntary and involuntary switches
        long[] before = new long[3];
        long[] after = new long[3];
        Vocabulary vocab = model.vocabulary();
        int nVocab = vocab.size();
        int first = vocab.addsBos() ? vocab.bos() : 1;
        MemorySegment rawCtx = raw == null ? null : raw.context(options, nGen, true);
        try (LlamaContext ctx = newContext(model, nGen, false);
                Batch batch = ctx.newBatch(1);
                Arena arena = Arena.ofConfined()) {
            MemorySegment tokens = arena.allocate(ValueLayout.JAVA_INT, 1);
            MemorySegment rawBatch = batchGetOne(arena, tokens);
            llama_batch.n_tokens(rawBatch, 1);
            ThreadCounts threadCounts = new ThreadCounts(arena);
            for (int r = -1; r < reps; r++) { // r = -1: warmup; the two loops alternate
                ctx.clearMemory();
                long tf = 0;
                long td = 0;
                long tn = 0;
                int token = first;
                for (int i = 0; i < nGen; i++) {
                    long t0 = System.nanoTime();
                    batch.clear();
                    batch.add(token, i, 0, true);
                    long t1 = System.nanoTime();
                    ctx.decode(batch);
                    ctx.synchronize();
                    long t2 = System.nanoTime();
                    token = nextToken(nVocab);
                    long t3 = System.nanoTime();
                    tf += t1 - t0;
                    td += t2 - t1;
                    tn += t3 - t2;
                }
                if (r >= 0) {
                    fill[r] = tf / 1e3 / nGen;
                    decode[r] = td / 1e3 / nGen;
                    next[r] = tn / 1e3 / nGen;
                }
                if (rawCtx == null) {
                    continue;
                }
                llama_memory_clear(llama_get_memory(rawCtx), false);
                llama_perf_context_reset(rawCtx);
                threadCounts.read(before);
                long t0 = System.nanoTime();
                long tc = 0;
                long tw = 0;
                token = first;
                for (int i = 0; i < nGen; i++) {
                    tokens.set(ValueLayout.JAVA_INT, 0, token);
                    long c0 = System.nanoTime();
                    if (llama_decode(rawCtx, rawBatch) != 0) {
                        throw new IllegalStateException("llama_decode failed");
                    }
                    long c1 = System.nanoTime();
                    llama_synchronize(rawCtx);
                    tw += System.nanoTime() - c1;
                    tc += c1 - c0;
                    token = nextToken(nVocab);
                }
                long t1 = System.nanoTime();
                threadCounts.read(after);
                MemorySegment perf = llama_perf_context(arena, rawCtx);
                if (r >= 0) {
                    wall[r] = (t1 - t0) / 1e3 / nGen;
                    inside[r] = llama_perf_context_data.t_eval_ms(perf) * 1e3 / Math.max(1, llama_perf_context_data.n_eval(perf));
                    outside[r] = wall[r] - inside[r];
                    reused[r] = (double) llama_perf_context_data.n_reused(perf) / Math.max(1, llama_perf_context_data.n_eval(perf));
                    call[r] = tc / 1e3 / nGen;
                    wait[r] = tw / 1e3 / nGen;
                    for (int k = 0; k < 3; k++) {
                        counts[k][r] = (double) (after[k] - before[k]) / nGen;
                    }
                }
            }
        } finally {
            if (rawCtx != null) {
                llama_free(rawCtx);
            }
        }
        List<Result> results = new ArrayList<>();
        results.add(allocation(model, nGen, reps));
        results.add(new Result("profile", "api: Batch.clear + Batch.add (incl. 2 nanoTime)", 0, nGen, fill, "us/token"));
        results.add(new Result("profile", "api: LlamaContext.decode + synchronize", 0, nGen, decode, "us/token"));
        results.add(new Result("profile", "api: next token (xorshift, incl. 2 nanoTime)", 0, nGen, next, "us/token"));
        if (raw != null) {
            results.add(new Result("profile", "raw: wall per token", 0, nGen, wall, "us/token"));
            results.add(new Result("profile", "raw: inside llama_decode's eval (t_eval)", 0, nGen, inside, "us/token"));
            results.add(new Result("profile", "raw: outside it (wall - t_eval)", 0, nGen, outside, "us/token"));
            // on a GPU llama_decode returns once the work is queued: the call is the CPU's part (the
            // inputs, the launch), the wait the device's rest; bench-bindings.sh --c-loop measures
            // the same split in a C program (decode_loop.c), a process without a JVM
            results.add(new Result("profile", "raw: llama_decode call", 0, nGen, call, "us/token"));
            results.add(new Result("profile", "raw: llama_synchronize wait", 0, nGen, wait, "us/token"));
            // llama.cpp reuses the previous step's graph when nothing changed (no rebuild; on a GPU the
            // captured CUDA graph is then launched without comparing the nodes): about 1 per token
            results.add(new Result("profile", "raw: graphs reused per token (n_reused / n_eval)", 0, nGen, reused, "ratio"));
            // the decoding thread's own counts, as the C loop reports them for its threads
            results.add(new Result("profile", "raw: minor page faults (decoding thread)", 0, nGen, counts[0], "n/token"));
            results.add(new Result("profile", "raw: voluntary context switches (decoding thread)", 0, nGen, counts[1], "n/token"));
            results.add(new Result("profile", "raw: involuntary context switches (decoding thread)", 0, nGen, counts[2], "n/token"));
        }
        return results;
    }

    /** Bytes the calling thread allocates on the Java heap per generated token (tg + greedy sampling). */
    /**
     * The raw loop's prompt split as the C program splits it (decode_loop.c): per prompt token, the
     * llama_decode calls (on a GPU the CPU's part: the batch split, the inputs, the token
     * embeddings' lookup, which llama.cpp keeps on the CPU) and the llama_synchronize wait, with the
     * decoding thread's minor page faults (the token embeddings are read through the model's mmap).
     */
    private List<Result> promptProfile(RawModel raw, int nPrompt, int reps) {
        double[] call = new double[reps];
        double[] wait = new double[reps];
        double[] faults = new double[reps];
        double[] replays = new double[reps];
        double[] otherGraph = new double[reps];
        long[] before = new long[3];
        long[] after = new long[3];
        // llama.cpp's debug lines of this pass, counted as decode_loop.c counts them: how each prompt
        // used its CUDA graph, and whether a pinned-memory allocation failed (logged at debug level only)
        LogKinds log = new LogKinds();
        ai.llmref.llama.internal.LogBridge.capturing(log, () -> {
            try (RawPrompt prompt = new RawPrompt(raw, nPrompt); Arena arena = Arena.ofConfined()) {
                ThreadCounts threadCounts = new ThreadCounts(arena);
                for (int r = -1; r < reps; r++) { // r = -1: warmup
                    prompt.clear();
                    long replays0 = log.graphReplays;
                    long other0 = log.otherGraph;
                    threadCounts.read(before);
                    prompt.run(nPrompt);
                    threadCounts.read(after);
                    if (r >= 0) {
                        call[r] = prompt.callNanos / 1e3 / nPrompt;
                        wait[r] = prompt.waitNanos / 1e3 / nPrompt;
                        faults[r] = (double) (after[0] - before[0]) / nPrompt;
                        replays[r] = log.graphReplays - replays0;
                        otherGraph[r] = log.otherGraph - other0;
                    }
                }
            }
            return null;
        });
        double[] pinned = new double[reps];
        java.util.Arrays.fill(pinned, log.pinnedFailures);
        return List.of(new Result("profile", "raw: prompt llama_decode call", nPrompt, 0, call, "us/token"),
                new Result("profile", "raw: prompt llama_synchronize wait", nPrompt, 0, wait, "us/token"),
                new Result("profile", "raw: prompt minor page faults (decoding thread)", nPrompt, 0, faults, "n/token"),
                new Result("profile", "raw: prompt CUDA graph replays (log lines)", nPrompt, 0, replays, "n/run"),
                new Result("profile", "raw: prompt other CUDA graph log lines", nPrompt, 0, otherGraph, "n/run"),
                new Result("profile", "raw: pinned-memory allocations failed (log lines, the pass's context)", nPrompt, 0, pinned, "n"));
    }

    /**
     * Counts llama.cpp's log lines by kind, as decode_loop.c does; every line but the per-decode
     * "CUDA Graph id ... reused" one also goes to stderr.
     */
    static final class LogKinds implements java.util.function.Consumer<String> {
        long graphReplays;
        long otherGraph;
        long pinnedFailures;

        @Override
        public void accept(String line) {
            if (line.contains("CUDA Graph id")) {
                graphReplays++;
                return;
            }
            if (line.contains("CUDA graph")) {
                otherGraph++;
            }
            if (line.contains("pinned memory")) {
                pinnedFailures++;
            }
            System.err.println("llama.cpp (prompt profile): " + line);
        }
    }

    private Result allocation(LlamaModel model, int nGen, int reps) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        double[] bytes = new double[reps];
        ApiGen gen = new ApiGen(model, nGen, true, false);
        try {
            gen.clear();
            gen.run(nGen);
            for (int r = 0; r < reps; r++) {
                gen.clear();
                long b0 = mx.getCurrentThreadAllocatedBytes();
                gen.run(nGen);
                bytes[r] = (double) (mx.getCurrentThreadAllocatedBytes() - b0) / nGen;
            }
        } finally {
            gen.close();
        }
        return new Result("profile", "api+greedy: Java heap bytes allocated", 0, nGen, bytes, "B/token");
    }

    /**
     * llama-bench's threadpool: {@code ggml_threadpool_new} of the CPU backend (found through
     * {@code ggml_backend_reg_get_proc_address}, as llama-bench finds it) with default parameters
     * ({@code ggml_threadpool_params_init}: poll 50, normal priority). One per process, never freed.
     */
    static final class CpuThreadpool {
        private static MemorySegment pool;
        private static int poolThreads;

        static synchronized MemorySegment get(int nThreads) {
            if (pool != null && poolThreads == nThreads) {
                return pool;
            }
            Linker linker = Linker.nativeLinker();
            SymbolLookup loaded = SymbolLookup.loaderLookup(); // libggml-base, System.load-ed by NativeLibraries
            try (Arena a = Arena.ofConfined()) {
                MethodHandle getProc = linker.downcallHandle(loaded.findOrThrow("ggml_backend_reg_get_proc_address"),
                        FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS));
                MethodHandle init = linker.downcallHandle(loaded.findOrThrow("ggml_threadpool_params_init"),
                        FunctionDescriptor.ofVoid(ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
                MemorySegment reg = ggml_backend_dev_backend_reg(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU()));
                MemorySegment newFn = (MemorySegment) getProc.invokeExact(reg, a.allocateFrom("ggml_threadpool_new"));
                if (newFn.equals(MemorySegment.NULL)) {
                    throw new IllegalStateException("the CPU backend does not export ggml_threadpool_new");
                }
                MethodHandle create = linker.downcallHandle(newFn, FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS));
                // struct ggml_threadpool_params { bool cpumask[512]; int n_threads; int prio; uint32_t poll; bool strict_cpu; bool paused; }
                MemorySegment params = a.allocate(528, 4);
                init.invokeExact(params, nThreads);
                MemorySegment tp = (MemorySegment) create.invokeExact(params);
                if (tp.equals(MemorySegment.NULL)) {
                    throw new IllegalStateException("ggml_threadpool_new failed");
                }
                pool = tp;
                poolThreads = nThreads;
                return tp;
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
        }

        /** Attaches the pool to a context of the safe API, whose handle is private (reflection: diagnostics only). */
        static void attach(LlamaContext ctx, int nThreads) {
            try {
                java.lang.reflect.Field f = LlamaContext.class.getDeclaredField("handle");
                f.setAccessible(true);
                llama_attach_threadpool((MemorySegment) f.get(ctx), get(nThreads), MemorySegment.NULL);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot reach LlamaContext's native handle", e);
            }
        }
    }

    // --- output ------------------------------------------------------------------------------------

    private void report(PrintStream out, List<Result> results) {
        out.printf(Locale.ROOT, "%nmodel %s: threads %d, n_batch %d, n_ubatch %d, fa %s, reps %d%n", options.model,
                options.threads, options.nBatch, options.nUbatch, options.flashAttention, options.reps);
        out.printf(Locale.ROOT, "| %-44s | %20s | %-8s |%n", "test", "mean ± sd", "unit");
        out.println("| -------------------------------------------- | -------------------: | -------- |");
        List<String> lines = new ArrayList<>();
        for (Result r : results) {
            out.printf(Locale.ROOT, "| %-44s | %10.2f ± %7.2f | %-8s |%n", r.name(), r.avg(), r.stddev(), r.unit);
            lines.add(json(r));
        }
        out.println("(checksum " + (sink & 0xff) + ")");
        if (options.jsonl != null) {
            try {
                Files.write(options.jsonl, lines, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    private String json(Result r) {
        StringBuilder samples = new StringBuilder();
        for (double v : r.samples) {
            samples.append(samples.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%.6f", v));
        }
        return String.format(Locale.ROOT,
                "{\"impl\": \"java\", \"label\": \"%s\", \"model_filename\": \"%s\", \"test\": \"%s\", \"variant\": \"%s\", "
                        + "\"n_prompt\": %d, \"n_gen\": %d, \"n_threads\": %d, \"n_batch\": %d, \"n_ubatch\": %d, "
                        + "\"flash_attn\": \"%s\", \"unit\": \"%s\", \"samples_ts\": [%s], \"avg_ts\": %.6f, \"stddev_ts\": %.6f}",
                escape(options.label), escape(options.model.toString()), r.test, r.variant, r.nPrompt, r.nGen,
                options.threads, options.nBatch, options.nUbatch, options.flashAttention, r.unit, samples, r.avg(), r.stddev());
    }

    private static String escape(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }
}
