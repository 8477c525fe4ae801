package ai.llmref.server.observe;

import ai.llmref.llama.Device;
import ai.llmref.llama.LlamaBackend;
import ai.llmref.llama.ModelInfo;
import ai.llmref.llama.ModelPlacement;
import ai.llmref.server.engine.Engine;
import ai.llmref.server.engine.EngineObserver;
import ai.llmref.server.engine.FinishReason;
import ai.llmref.server.engine.GenerationEvent;
import java.util.Map;
import java.util.Properties;
import java.util.function.Supplier;

/**
 * Every metric the server exports, prefix {@code llmref_}. docs/operations.md lists them; the
 * names are stable (dashboards and alerts in observability/ use them).
 */
public final class ServerMetrics implements EngineObserver {
    private static final double[] LATENCY = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
    private static final double[] TOKEN_GAP = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56};
    private static final double[] STEP_PHASE = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
    private static final double[] WAKE_UP = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01};

    /** What the gauges read at scrape time. */
    public interface Source {
        boolean ready();

        Engine engine();

        ModelPlacement placement();

        ModelInfo modelInfo();

        String modelId();

        long loadMillis();
    }

    private final Supplier<Source> source;
    private final Metrics registry = new Metrics();
    private final Metrics.Counter requests;
    private final Metrics.Histogram requestDuration;
    private final Metrics.Counter streamErrors;
    private final Metrics.Histogram ttft;
    private final Metrics.Histogram interToken;
    private final Metrics.Histogram queueWait;
    private final Metrics.Counter promptTokens;
    private final Metrics.Counter generatedTokens;
    private final Metrics.Counter cachedTokens;
    private final Metrics.Counter structuredInvalid;
    private final Metrics.Histogram stepPhase;
    private final Metrics.Counter batchTokens;
    private final Metrics.Counter stepOutputs;
    private final Metrics.Counter sequenceRunsTotal;
    private final Metrics.Counter graphsReusedTotal;
    private final Metrics.Counter prefixCopies;
    private final Metrics.Counter reasoningBudgetsSpent;
    private final Metrics.Counter deviceSamplerAttaches;
    private final Metrics.Counter samplingRows;
    private final Metrics.Histogram samplingPick;
    private final Metrics.Histogram samplingHelperStart;
    private final Metrics.Counter samplingHelpers;
    private final Metrics.Counter samplingHelpersAhead;
    private final Metrics.Histogram decodeCall;
    private final Metrics.Histogram stepTime;
    private final Metrics.Counter stepTokens;

    public ServerMetrics(Supplier<Source> source) {
        this.source = source;
        requests = registry.counter("llmref_requests_total", "HTTP requests by route and status code", "route", "status");
        streamErrors = registry.counter("llmref_stream_errors_total",
                "Streams that ended with an error after their 200 (counted under status 200 in llmref_requests_total), by route and error code",
                "route", "code");
        requestDuration = registry.histogram("llmref_request_duration_seconds", "End-to-end HTTP request latency", LATENCY, "route");
        ttft = registry.histogram("llmref_time_to_first_token_seconds", "Time from submission to the first generated token", LATENCY);
        interToken = registry.histogram("llmref_inter_token_latency_seconds", "Time between consecutive tokens of one generation", TOKEN_GAP);
        queueWait = registry.histogram("llmref_queue_wait_seconds", "Time a generation waited for a slot", LATENCY);
        promptTokens = registry.counter("llmref_prompt_tokens_total", "Prompt tokens of finished generations");
        generatedTokens = registry.counter("llmref_generated_tokens_total", "Tokens generated (usage.completion_tokens summed, cancelled generations included)");
        cachedTokens = registry.counter("llmref_cached_prompt_tokens_total", "Prompt tokens reused from a slot's KV cache");
        structuredInvalid = registry.counter("llmref_structured_output_invalid_total",
                "Finished generations whose output failed its enforced format (a server bug; answered 500)", "check");
        stepPhase = registry.histogram("llmref_engine_step_phase_seconds",
                "Time of each scheduler step by phase: schedule, decode (until the device finished), sample, emit", STEP_PHASE, "phase");
        decodeCall = registry.histogram("llmref_engine_decode_call_seconds",
                "Per step, the part of the decode phase spent in the llama_decode call before it returned (the host's part; on a GPU the rest is the wait for the device)",
                STEP_PHASE);
        stepTime = registry.histogram("llmref_engine_step_seconds",
                "Whole scheduler steps by kind: generation (only generating slots' next tokens) or prompt (with prompt tokens, decoded by llama.cpp in micro-batches of their own after the first token of each chunk)",
                STEP_PHASE, "kind");
        stepTokens = registry.counter("llmref_engine_step_tokens_total", "Tokens decoded by scheduler steps by kind (generation, prompt: see llmref_engine_step_seconds)", "kind");
        batchTokens = registry.counter("llmref_engine_batch_tokens_total", "Tokens decoded by scheduler steps (prompt chunks and generated tokens)");
        stepOutputs = registry.counter("llmref_engine_step_outputs_total", "Next tokens sampled by scheduler steps (one per generating slot per step)");
        sequenceRunsTotal = registry.counter("llmref_engine_sequence_runs_total",
                "Runs of consecutive sequence ids in the scheduler steps' batches (llama.cpp decodes at least one micro-batch per run)");
        graphsReusedTotal = registry.counter("llmref_engine_graphs_reused_total",
                "Micro-batches for which llama.cpp ran its previous compute graph again instead of building one (a step of the same shape and sequences as the last)");
        prefixCopies = registry.counter("llmref_engine_prefix_copies_total",
                "Cached prompt prefixes copied from another free slot into the lowest free slot");
        reasoningBudgetsSpent = registry.counter("llmref_reasoning_budgets_spent_total",
                "Requests whose reasoning took its budget (reasoning_budget_tokens, thinking.budget_tokens), closed by the server");
        samplingRows = registry.counter("llmref_engine_sampling_rows_total",
                "Tokens the sampling pool picked on the host (argmaxes and llama.cpp chains over the host's logits)");
        samplingPick = registry.histogram("llmref_engine_sampling_pick_seconds",
                "Per step, the sampling pool's picking time summed over its threads (sum / rows_total: the time per pick)", STEP_PHASE);
        samplingHelperStart = registry.histogram("llmref_engine_sampling_helper_start_seconds",
                "Per step with helper threads, how long after the work was handed out the last helper started picking", WAKE_UP);
        samplingHelpers = registry.counter("llmref_engine_sampling_helpers_total",
                "Helper threads that took part in the steps' picks (besides the scheduler)");
        samplingHelpersAhead = registry.counter("llmref_engine_sampling_helpers_ahead_total",
                "Of those, helpers woken while the device still decoded (engine.sampling-wake-ahead)");
        deviceSamplerAttaches = registry.counter("llmref_engine_device_sampler_attaches_total",
                "Greedy chains attached to a slot for sampling on the device (engine.device-sampling; each makes llama.cpp reserve again)");
        registry.gauge("llmref_ready", "1 when the server is ready to serve", out -> out.add(Metrics.Sample.of(flag(source.get().ready()))));
        registry.gauge("llmref_slots_total", "Parallel sequences (slots) of the engine", out -> stats(source, s -> out.add(Metrics.Sample.of(s.slots()))));
        registry.gauge("llmref_slots_busy", "Slots serving a request", out -> stats(source, s -> out.add(Metrics.Sample.of(s.busySlots()))));
        registry.gauge("llmref_queue_depth", "Requests waiting for a slot", out -> stats(source, s -> out.add(Metrics.Sample.of(s.queued()))));
        registry.gauge("llmref_queue_capacity", "Requests that may wait before 429", out -> stats(source, s -> out.add(Metrics.Sample.of(s.queueCapacity()))));
        registry.gauge("llmref_kv_cache_cells_used", "KV cache cells holding tokens", out -> stats(source, s -> out.add(Metrics.Sample.of(s.kvCellsUsed()))));
        registry.gauge("llmref_kv_cache_cells_total", "KV cache cells of the context", out -> stats(source, s -> out.add(Metrics.Sample.of(s.kvCellsTotal()))));
        registry.gauge("llmref_device_memory_free_bytes", "Free memory per ggml device", out -> devices(out, true));
        registry.gauge("llmref_device_memory_total_bytes", "Total memory per ggml device", out -> devices(out, false));
        registry.gauge("llmref_gpu_devices", "GPU devices visible to the process", out -> {
            LlamaBackend.ifInitialized().ifPresent(b -> out.add(Metrics.Sample.of(b.devices().stream().filter(Device::isGpu).count())));
        });
        registry.gauge("llmref_model_layers_offloaded", "Model layers placed on GPUs", out -> placement(source, out, true));
        registry.gauge("llmref_model_layers_total", "Model layers that can be offloaded", out -> placement(source, out, false));
        registry.gauge("llmref_model_buffer_bytes", "Bytes of the model's weights per llama.cpp buffer (CUDA0, CPU_Mapped ...)", out -> {
            ModelPlacement p = source.get().placement();
            if (p != null) {
                p.bufferBytes().forEach((buffer, bytes) -> out.add(new Metrics.Sample(labels("buffer", buffer), bytes)));
            }
        });
        registry.gauge("llmref_context_buffer_bytes",
                "Bytes of the engine's contexts per llama.cpp buffer: kind kv (the KV cache) or compute (the scheduler's compute buffers)", out -> {
            Engine e = source.get().engine();
            if (e != null) {
                e.memoryUse().forEach((context, m) -> {
                    m.kvBytes().forEach((buffer, bytes) -> out.add(new Metrics.Sample(labels("context", context, "kind", "kv", "buffer", buffer), bytes)));
                    m.computeBytes().forEach((buffer, bytes) ->
                            out.add(new Metrics.Sample(labels("context", context, "kind", "compute", "buffer", buffer), bytes)));
                });
            }
        });
        registry.gauge("llmref_kv_cache_type_info", "Element types of the generation context's KV cache (engine.kv-cache-type-k/-v)", out -> {
            Engine e = source.get().engine();
            if (e != null) {
                out.add(new Metrics.Sample(labels("type_k", e.config().kvCacheTypeK().ggmlName(),
                        "type_v", e.config().kvCacheTypeV().ggmlName()), 1));
            }
        });
        registry.gauge("llmref_model_load_seconds", "Time the model took to load and the engine to start", out -> {
            Source s = source.get();
            if (s.loadMillis() > 0) {
                out.add(Metrics.Sample.of(s.loadMillis() / 1000.0));
            }
        });
        registry.gauge("llmref_model_info", "The served model", out -> {
            Source s = source.get();
            ModelInfo info = s.modelInfo();
            if (info != null) {
                out.add(new Metrics.Sample(labels("model", s.modelId(), "architecture", info.architecture()), 1));
            }
        });
        registry.gauge("llmref_build_info", "Build of the server and its native library", out -> {
            // from the moment the native libraries are loaded: during a long model load, and after a failed one
            Properties b = LlamaBackend.ifInitialized().map(LlamaBackend::buildInfo).orElseGet(Properties::new);
            String version = ServerMetrics.class.getPackage().getImplementationVersion();
            out.add(new Metrics.Sample(labels("version", version == null ? "dev" : version,
                    "llama_cpp_tree", b.getProperty("llama.cpp.tree", "unknown"),
                    "variant", b.getProperty("variant", "unknown")), 1));
        });
    }

    /** Label names and values, in this order. */
    private static Map<String, String> labels(String... kv) {
        Map<String, String> m = new java.util.LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    private static double flag(boolean b) {
        return b ? 1 : 0;
    }

    private static void stats(Supplier<Source> source, java.util.function.Consumer<Engine.Stats> use) {
        Engine e = source.get().engine();
        if (e != null) {
            use.accept(e.stats());
        }
    }

    private static void placement(Supplier<Source> source, java.util.List<Metrics.Sample> out, boolean offloaded) {
        ModelPlacement p = source.get().placement();
        if (p != null) {
            out.add(Metrics.Sample.of(offloaded ? p.offloadedLayers() : p.totalLayers()));
        }
    }

    private void devices(java.util.List<Metrics.Sample> out, boolean free) {
        LlamaBackend.ifInitialized().ifPresent(b -> {
            for (Device d : b.devices()) {
                out.add(new Metrics.Sample(labels("device", d.name(), "type", d.type().name().toLowerCase()),
                        free ? d.freeBytes() : d.totalBytes()));
            }
        });
    }

    /** An HTTP request ended. */
    public void request(String route, int status, long nanos) {
        requests.inc(1, route, Integer.toString(status));
        requestDuration.observe(nanos / 1e9, route);
    }

    /** A request answered before any handler (a filter's refusal): counted under its entry's route, and its access line written. */
    public void refused(AccessLog.Entry entry, int status) {
        request(entry.route, status, System.nanoTime() - entry.startNanos);
        AccessLog.log(entry, status);
    }

    /**
     * A stream failed after its 200 went out: {@code code} is the error event's (timeout,
     * internal_error, unavailable ...) or client_disconnected, one of this server's own codes.
     */
    public void streamError(String route, String code) {
        streamErrors.inc(1, route, code);
    }

    /** A finished output failed its grammar-enforced check: {@code check} is json_object, json_schema or tool_call. */
    public void structuredOutputInvalid(String check) {
        structuredInvalid.inc(1, check);
    }

    @Override
    public void tokenGenerated(long gapNanos) {
        interToken.observe(gapNanos / 1e9);
    }

    @Override
    public void finished(GenerationEvent.Done done) {
        promptTokens.inc(done.promptTokens());
        generatedTokens.inc(done.completionTokens());
        cachedTokens.inc(done.cachedPromptTokens());
        queueWait.observe(done.timings().queuedNanos() / 1e9);
        if (done.timings().firstTokenNanos() > 0 && done.reason() != FinishReason.CANCELLED) {
            ttft.observe(done.timings().firstTokenNanos() / 1e9);
        }
    }

    @Override
    public void stepCompleted(EngineObserver.Step step) {
        stepPhase.observe(step.scheduleNanos() / 1e9, "schedule");
        stepPhase.observe(step.decodeNanos() / 1e9, "decode");
        decodeCall.observe(step.decodeCallNanos() / 1e9);
        stepPhase.observe(step.sampleNanos() / 1e9, "sample");
        stepPhase.observe(step.emitNanos() / 1e9, "emit");
        stepTime.observe(step.nanos() / 1e9, step.kind());
        stepTokens.inc(step.tokens(), step.kind());
        batchTokens.inc(step.tokens());
        stepOutputs.inc(step.outputs());
        sequenceRunsTotal.inc(step.sequenceRuns());
        graphsReusedTotal.inc(step.graphsReused());
    }

    @Override
    public void samplingCompleted(int rows, int helpers, int helpersAhead, long pickNanos, long helperStartNanos) {
        samplingRows.inc(rows);
        samplingHelpers.inc(helpers);
        samplingHelpersAhead.inc(helpersAhead);
        samplingPick.observe(pickNanos / 1e9);
        if (helpers > 0) {
            samplingHelperStart.observe(helperStartNanos / 1e9);
        }
    }

    @Override
    public void prefixCopied() {
        prefixCopies.inc(1);
    }

    @Override
    public void reasoningBudgetSpent() {
        reasoningBudgetsSpent.inc(1);
    }

    @Override
    public void deviceSamplerAttached() {
        deviceSamplerAttaches.inc(1);
    }

    public String scrape() {
        return registry.scrape();
    }

    /** For tests: the generated-token counter. */
    public long generatedTokens() {
        return generatedTokens.value();
    }
}
