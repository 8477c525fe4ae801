package ai.llmref.server;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.server.chat.ChatTemplateRenderer;
import ai.llmref.server.config.ConfigException;
import ai.llmref.server.config.ServerConfig;
import ai.llmref.server.engine.Engine;
import ai.llmref.server.engine.EngineConfig;
import ai.llmref.server.http.HealthService;
import ai.llmref.server.http.HttpVersionRefusal;
import ai.llmref.server.http.Json;
import ai.llmref.server.http.OpenAiService;
import ai.llmref.server.http.ApiException;
import ai.llmref.server.http.RequestIdFilter;
import ai.llmref.server.http.AuthFilter;
import ai.llmref.server.http.PromptModel;
import ai.llmref.server.http.ConnectionCloseFilter;
import ai.llmref.server.http.RequestHeadDeadline;
import ai.llmref.server.http.RequestTargetFilter;
import ai.llmref.server.http.TransportErrors;
import ai.llmref.server.observe.ServerMetrics;
import ai.llmref.server.observe.Tracing;
import io.helidon.http.HeaderNames;
import io.helidon.http.DirectHandler;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.http.DirectHandlers;
import io.helidon.webserver.http1.Http1Config;
import io.helidon.webserver.http.HttpRouting;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The running service: the HTTP server starts at once (health answers "loading"), the model loads
 * on a background thread, then the engine starts and readiness goes up.
 */
public final class Server implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Server.class.getName());

    /** WARMING: loaded, the API serves, readiness waits for the warm-up ({@code server.warmup-requests}). */
    public enum State { LOADING, WARMING, READY, FAILED, DRAINING, STOPPED }

    static final String ADMIN = "admin";

    private final ServerConfig config;
    private final WebServer web;
    private final Tracing tracing;
    private final ServerMetrics metrics;
    private volatile State state = State.LOADING;
    private volatile ServedModel served;
    private volatile float loadProgress;
    private volatile long loadMillis;
    /** Why the model could not be served (state FAILED), for the probes; null otherwise. */
    private volatile String failure;
    private volatile java.util.function.Consumer<Float> loadHook = f -> { };

    private Server(ServerConfig config, Tracing tracing) {
        this.config = config;
        this.tracing = tracing;
        this.metrics = new ServerMetrics(() -> new MetricsView());
        Json json = new Json(config.limits().maxJsonDepth());
        OpenAiService api = new OpenAiService(this::readyModel, this::unready, json, new OpenAiService.Limits(
                config.limits().maxBodyBytes(), config.limits().maxTokens(), config.limits().maxPromptTokens(),
                config.limits().requestTimeoutMillis(), config.limits().maxChoices(), config.limits().bodyTimeoutMillis()), metrics, tracing);
        AuthFilter auth = config.auth().apiKeys().isEmpty() ? null : new AuthFilter(config.auth().apiKeys(), api, metrics);
        HealthService health = new HealthService(this, json);
        ServerConfig.Limits limits = config.limits();
        RequestHeadDeadline headDeadline = new RequestHeadDeadline(limits.headerTimeoutMillis());
        Http1Config http1 = Http1Config.builder()
                .maxPrologueLength(limits.maxRequestLineBytes())
                .maxHeadersSize(limits.maxHeaderBytes())
                .addReceiveListener(headDeadline)
                .build();
        DirectHandlers transportErrors = transportErrors(metrics);
        HttpVersionRefusal versionRefusal = new HttpVersionRefusal(limits.maxRequestLineBytes(), metrics);
        // Helidon closes connections that wait this long for a request line (idle keep-alive, slow request line)
        Duration idle = Duration.ofMillis(limits.idleTimeoutMillis());
        Duration idleCheck = Duration.ofMillis(Math.max(50, limits.idleTimeoutMillis() / 4));
        this.web = WebServer.builder()
                // our own shutdown hook drains first; Helidon's would close the sockets at once
                .shutdownHook(false)
                // streams write small SSE chunks: without TCP_NODELAY, Nagle's algorithm meets the
                // client's delayed ACK and holds the second chunk back ~40 ms
                .connectionOptions(o -> o.tcpNoDelay(true))
                .addProtocol(http1)
                .addConnectionSelector(versionRefusal)
                .directHandlers(transportErrors)
                .idleConnectionTimeout(idle)
                .idleConnectionPeriod(idleCheck)
                .host(config.http().host())
                .port(config.http().port())
                // a backstop above the API's own limit, which answers in the OpenAI error shape
                .maxPayloadSize(config.limits().maxBodyBytes() * 2 + 4096)
                .routing(r -> apiRouting(r, api, auth, metrics))
                .putSocket(ADMIN, socket -> socket.host(config.http().host()).port(config.http().adminPort())
                        .maxPayloadSize(4096).addProtocol(http1).addConnectionSelector(versionRefusal).directHandlers(transportErrors)
                        .idleConnectionTimeout(idle).idleConnectionPeriod(idleCheck))
                .routing(ADMIN, r -> adminRouting(r, health, metrics))
                .build();
    }

    /** The API routes (behind the API-key filter when keys are configured), shared by main and tests. */
    static void apiRouting(HttpRouting.Builder r, OpenAiService api, AuthFilter auth, ServerMetrics metrics) {
        r.addFilter(new ConnectionCloseFilter()); // outermost: it acts once the response is sent
        r.addFilter(new RequestIdFilter()); // refusals by the filters below carry the id too
        r.addFilter(new RequestTargetFilter(metrics));
        if (auth != null) {
            r.addFilter(auth);
        }
        r.register(api);
        r.any(api::unknownRoute); // anything else: 404 in the error shape, not Helidon's plain text
    }

    /** Errors Helidon answers itself (malformed requests, limits) in the OpenAI error shape. */
    private static DirectHandlers transportErrors(ServerMetrics metrics) {
        DirectHandlers.Builder b = DirectHandlers.builder();
        for (DirectHandler.EventType t : DirectHandler.EventType.values()) {
            b.addHandler(t, new TransportErrors(metrics));
        }
        return b.build();
    }

    /** Probes and metrics: no authentication, so that kubelet and Prometheus reach them. */
    static void adminRouting(HttpRouting.Builder r, HealthService health, ServerMetrics metrics) {
        r.addFilter(new ConnectionCloseFilter());
        r.addFilter(new RequestTargetFilter());
        r.register(health).get("/metrics", (req, res) -> {
            res.header(HeaderNames.CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
            res.send(metrics.scrape());
        });
    }

    /** Starts listening, then loads the model in the background. */
    public static Server start(ServerConfig config) {
        ServerConfig.Tracing t = config.tracing();
        Tracing tracing = Tracing.disabled();
        if (t.enabled()) {
            try {
                tracing = Tracing.otlp(t.otlpEndpoint(), t.serviceName(), t.sampleRatio());
            } catch (IllegalArgumentException e) {
                // the exporter's own rule (an http or https URL with a host); it threw as a stack trace
                throw new ConfigException("tracing.otlp-endpoint", "must be an http:// or https:// URL with a host, e.g. "
                        + "http://otel-collector:4318", t.otlpEndpoint());
            }
        }
        return start(config, tracing);
    }

    /** As {@link #start(ServerConfig)} with the given tracing (tests pass an in-memory exporter). */
    public static Server start(ServerConfig config, Tracing tracing) {
        return start(config, tracing, f -> { });
    }

    /**
     * As above; {@code loadHook} runs on the loading thread at every progress report (tests use it
     * to slow a load down and watch the probes).
     */
    public static Server start(ServerConfig config, Tracing tracing, java.util.function.Consumer<Float> loadHook) {
        Server s = new Server(config, tracing);
        s.loadHook = loadHook;
        s.web.start();
        if (!s.web.isRunning()) {
            // Helidon logs the listener that failed and returns without throwing: without this the
            // process went on with no socket ("listening on ...:-1") and exited with status 0
            tracing.close();
            throw cannotListen(config.http());
        }
        LOG.log(Level.INFO, "listening on " + config.http().host() + ":" + s.web.port() + " (API), "
                + s.web.port(ADMIN) + " (health, metrics)");
        if (config.auth().apiKeys().isEmpty()) {
            LOG.log(Level.WARNING, "no API keys configured: the API is open to anyone who can reach port " + s.web.port());
        }
        Thread.ofPlatform().name("model-loader").daemon(true).start(s::load);
        return s;
    }

    /**
     * Why the listeners did not start: the first of {@code server.port} and {@code server.admin-port}
     * that this process cannot bind on {@code server.host} (in use, or an address not on this node).
     * Helidon has closed both sockets by then, so binding each again names the one at fault.
     */
    static ConfigException cannotListen(ServerConfig.Http http) {
        for (var key : java.util.List.of(java.util.Map.entry("server.port", http.port()),
                java.util.Map.entry("server.admin-port", http.adminPort()))) {
            try (java.net.ServerSocket probe = new java.net.ServerSocket()) {
                probe.setReuseAddress(true);
                probe.bind(new java.net.InetSocketAddress(http.host(), key.getValue()));
            } catch (java.io.IOException e) {
                return new ConfigException(key.getKey(), "cannot be listened on at " + http.host() + " (" + e.getMessage() + ")",
                        key.getValue());
            }
        }
        return new ConfigException("server.port", "and server.admin-port: the HTTP listeners did not start on " + http.host()
                + " (the log above says why)", http.port());
    }

    /**
     * {@code engine.sampling-threads}, or for 0 (auto): on a GPU the CPU idles while the scheduler
     * picks every slot's token, so up to 8 threads (half the cores, two slots each at least) share the
     * picks; on CPU the decode threads need the cores, so the scheduler picks alone.
     */
    static int samplingThreads(ServerConfig.Engine e, boolean onGpu) {
        if (e.samplingThreads() > 0) {
            return e.samplingThreads();
        }
        int cores = Runtime.getRuntime().availableProcessors();
        return onGpu ? Math.max(1, Math.min(8, Math.min(cores / 2, e.slots() / 2))) : 1;
    }

    /**
     * llama.cpp's CPU threads, {@code engine.threads} and {@code engine.threads-batch}, or for 0
     * (auto): every core while any layer runs on the CPU; with every layer on a GPU the CPU part of
     * a step is the input embeddings' lookup (llama.cpp keeps the token embeddings in host memory
     * and never offloads that lookup), so 1 thread for single-token steps and at most 4 for steps of
     * several tokens. More would not help: after each step OpenMP's idle workers spin (libgomp's
     * default, about 300,000 spins), and those spinning workers take the cores that the sampling
     * pool, the text and the HTTP threads need (docs/server.md, "CPU threads").
     */
    static CpuThreads cpuThreads(ServerConfig.Engine e, ai.llmref.llama.ModelPlacement placement, int cores) {
        boolean allOnGpu = placement.fullyOnGpu();
        return new CpuThreads(e.threads() > 0 ? e.threads() : allOnGpu ? 1 : cores,
                e.threadsBatch() > 0 ? e.threadsBatch() : allOnGpu ? Math.min(4, cores) : cores);
    }

    /** llama.cpp's CPU threads for single-token steps and for steps of several tokens. */
    record CpuThreads(int generation, int batch) {
        @Override
        public String toString() {
            return generation + "/" + batch;
        }
    }

    private void load() {
        long t0 = System.nanoTime();
        LlamaModel model = null;
        try {
            model = LlamaModel.load(config.model().path(), ModelParams.defaults()
                    .withGpuLayers(config.model().gpuLayers())
                    .withMainGpu(config.model().mainGpu())
                    .withSplitMode(config.model().splitMode())
                    .withTensorSplit(config.model().tensorSplit())
                    .withProgress(f -> {
                        loadProgress = f;
                        loadHook.accept(f);
                        return state == State.LOADING;
                    }));
            ServerConfig.Engine e = config.engine();
            int slotContext = e.slotContext() > 0 ? e.slotContext() : model.info().trainContextLength();
            boolean onGpu = model.placement().offloadedLayers() > 0;
            CpuThreads threads = cpuThreads(e, model.placement(), Math.max(1, Runtime.getRuntime().availableProcessors()));
            Engine engine = Engine.start(model, new EngineConfig(e.slots(), slotContext, e.batchSize(), e.ubatchSize(),
                    e.prefillChunk(), e.queueCapacity(), threads.generation(), threads.batch(), e.flashAttention(), e.embeddings(),
                    // auto emit-during-decode: on a GPU llama_decode returns while the device computes and the
                    // text work fits in that window; on CPU holding text back would only delay it
                    samplingThreads(e, onGpu), e.emitDuringDecode().on(onGpu), e.kvCacheTypeK(), e.kvCacheTypeV(),
                    e.deviceSampling().on(onGpu), e.samplingWakeAhead().on(onGpu)), metrics);
            ServedModel sm = new ServedModel(config.model().id(), model, engine, chatRenderer(model));
            // what a request leaves out: the operator's model.sampling, over the model's recommendations
            var defaults = config.model().samplingDefaults() == ServerConfig.SamplingDefaults.MODEL
                    ? ai.llmref.server.http.SamplingDefaults.fromMetadata(model.metadata(), sm, w -> LOG.log(System.Logger.Level.WARNING, w))
                    : com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
            String fromModel = defaults.toString();
            try {
                defaults.setAll(ai.llmref.server.http.SamplingDefaults.operator(config.model().sampling(), sm));
            } catch (IllegalArgumentException bad) {
                throw new ai.llmref.server.config.ConfigException("model.sampling", bad.getMessage(), config.model().sampling());
            }
            sm.samplingDefaults(defaults);
            LOG.log(System.Logger.Level.INFO, "sampling defaults for the fields a request leaves out: " + (defaults.isEmpty() ? "none"
                    : defaults + " (the model's metadata: " + fromModel + "; model.sampling: "
                    + (config.model().sampling().isBlank() ? "none" : config.model().sampling()) + ")"));
            served = sm;
            java.util.List<ai.llmref.llama.Device> devices = ai.llmref.llama.LlamaBackend.initialize().devices();
            ai.llmref.llama.ModelPlacement mp = model.placement();
            String device = mp.bufferBytes().entrySet().stream().max(java.util.Map.Entry.comparingByValue())
                    .map(java.util.Map.Entry::getKey).orElse("unknown");
            placement = new Placement(mp.offloadedLayers(), mp.totalLayers(),
                    devices.stream().filter(ai.llmref.llama.Device::isGpu).count(), device,
                    mp.bufferBytes().values().stream().mapToLong(Long::longValue).sum());
            if (gpuProblem() != null) {
                LOG.log(Level.ERROR, "not ready: " + gpuProblem());
            } else if (placement.gpuDevices() == 0) {
                LOG.log(Level.INFO, "running on CPU: no GPU device is visible to this process");
            }
            loadMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            if (state == State.LOADING) {
                int warmup = config.http().warmupRequests();
                // "model ... ready in N ms: placement" is what operators grep for (docs/deployment.md)
                ai.llmref.llama.ContextMemory generation = engine.memoryUse().get("generation");
                // the positions llama.cpp gave each slot (engine.slot-context rounded up to a multiple of 256)
                String what = model.placement() + ", " + e.slots() + " slots of " + engine.slotContext() + " positions, KV cache "
                        + e.kvCacheTypeK().ggmlName() + "/" + e.kvCacheTypeV().ggmlName()
                        + " " + generation.kvBytes() + " bytes, compute buffers " + generation.computeBytes() + " bytes, CPU threads "
                        + threads;
                if (warmup == 0) {
                    state = State.READY;
                    LOG.log(Level.INFO, "model " + config.model().id() + " ready in " + loadMillis + " ms: " + what);
                } else {
                    state = State.WARMING;
                    LOG.log(Level.INFO, "model " + config.model().id() + " loaded in " + loadMillis + " ms; warming up with "
                            + warmup + " requests before readiness");
                    warmUp(warmup);
                    if (state == State.WARMING) {
                        state = State.READY;
                        LOG.log(Level.INFO, "model " + config.model().id() + " ready in "
                                + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) + " ms (warm-up included): " + what);
                    }
                }
            }
        } catch (RuntimeException | Error e) {
            // Errors too (a native library that cannot link, an allocation failure): the state must
            // leave LOADING, or the probes would report "loading" for ever.
            failure = e.getMessage() != null ? e.getMessage() : e.toString();
            LOG.log(Level.ERROR, "cannot serve the model: " + failure);
            if (model != null && served == null) {
                try {
                    model.close();
                } catch (RuntimeException ignored) {
                    // the engine may still hold a context; the process is not ready either way
                }
            }
            state = State.FAILED;
        }
    }

    /**
     * The generation routes the warm-up takes turns on, as clients call them: each has code of its
     * own (parsing, the chat template, the answer's shape) that a warm-up on one route leaves cold.
     */
    static final List<String> WARMUP_ROUTES = List.of("/v1/chat/completions", "/v1/completions", "/completion", "/v1/responses",
            "/v1/messages");

    /** A warm-up request: the route it goes to and its JSON body. */
    record WarmupRequest(String route, String body) {}

    /**
     * Warm-up request {@code i}: its route (they take turns) and its body, two tokens, streamed
     * on every other round of the routes so that each route is warmed streamed and whole.
     */
    static WarmupRequest warmupRequest(int i) {
        String route = WARMUP_ROUTES.get(i % WARMUP_ROUTES.size());
        boolean stream = (i / WARMUP_ROUTES.size()) % 2 == 0;
        String text = "\"Warm-up " + i + "\"";
        String messages = "[{\"role\":\"user\",\"content\":" + text + "}]";
        String body = switch (route) {
            case "/v1/chat/completions" -> "{\"messages\":" + messages + ",\"max_tokens\":2";
            case "/v1/completions" -> "{\"prompt\":" + text + ",\"max_tokens\":2";
            case "/completion" -> "{\"prompt\":" + text + ",\"n_predict\":2";
            case "/v1/responses" -> "{\"input\":" + text + ",\"max_output_tokens\":2";
            default -> "{\"messages\":" + messages + ",\"max_tokens\":2"; // /v1/messages
        };
        return new WarmupRequest(route, body + ",\"temperature\":0,\"stream\":" + stream + "}");
    }

    /**
     * Sends {@code n} short generations to this server's own API port over loopback, through the
     * whole HTTP path, taking turns on the generation routes ({@link #WARMUP_ROUTES}; streamed and
     * not), so that the JIT has compiled the per-request code before readiness lets clients in
     * (docs/benchmarks.md: a fresh server's first token is slower for its first thousands of
     * requests). They count in the metrics and the access log like any request. Failures are
     * counted, logged once and do not stop start-up.
     */
    private void warmUp(int n) {
        long t0 = System.nanoTime();
        String host = config.http().host();
        if (host.equals("0.0.0.0") || host.equals("::") || host.isBlank()) {
            host = "127.0.0.1";
        } else if (host.contains(":")) {
            host = "[" + host + "]";
        }
        String base = "http://" + host + ":" + web.port();
        String key = config.auth().apiKeys().isEmpty() ? null : config.auth().apiKeys().getFirst();
        int failed = 0;
        String firstFailure = null;
        try (java.net.http.HttpClient http = java.net.http.HttpClient.newBuilder()
                .version(java.net.http.HttpClient.Version.HTTP_1_1).build()) {
            for (int i = 0; i < n && state == State.WARMING; i++, warmupDone = i) {
                WarmupRequest request = warmupRequest(i);
                java.net.http.HttpRequest.Builder b = java.net.http.HttpRequest.newBuilder(java.net.URI.create(base + request.route()))
                        .timeout(Duration.ofSeconds(60))
                        .header("Content-Type", "application/json")
                        .POST(java.net.http.HttpRequest.BodyPublishers.ofString(request.body()));
                if (key != null) {
                    b.header("Authorization", "Bearer " + key);
                }
                try {
                    java.net.http.HttpResponse<String> r = http.send(b.build(), java.net.http.HttpResponse.BodyHandlers.ofString());
                    if (r.statusCode() != 200) {
                        failed++;
                        firstFailure = firstFailure != null ? firstFailure : request.route() + ": HTTP " + r.statusCode();
                    }
                } catch (java.io.IOException ex) {
                    failed++;
                    firstFailure = firstFailure != null ? firstFailure : ex.toString();
                }
            }
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        }
        long warmupMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        LOG.log(failed == 0 ? Level.INFO : Level.WARNING, "warm-up: " + warmupDone + (warmupDone < n ? " of " + n : "")
                + " requests in " + warmupMillis + " ms"
                + (failed == 0 ? "" : ", " + failed + " failed (first: " + firstFailure + ")"));
    }

    private volatile int warmupDone;

    /** Warm-up requests sent so far (readiness shows it while the state is WARMING). */
    public int warmupDone() {
        return warmupDone;
    }

    private PromptModel.ChatRenderer chatRenderer(LlamaModel model) {
        String source = !config.model().chatTemplate().isBlank() ? config.model().chatTemplate()
                : model.chatTemplate().orElse(ChatTemplateRenderer.defaultTemplate());
        return ChatRendering.of(source, model, config.model().chatTemplateMode(), config.model().reasoningFormat());
    }

    /** Where the model runs, for probes: layers offloaded, GPU devices seen, the main buffer's device. */
    /** @param modelBytes the weights' buffers, all devices together */
    public record Placement(int offloaded, int total, long gpuDevices, String device, long modelBytes) {}

    private volatile Placement placement;

    public Placement placementSummary() {
        return placement;
    }

    /**
     * Why readiness must stay down although the model loaded: it is not on a GPU where one is
     * required (see {@link ServerConfig.RequireGpu}); null when placement is acceptable.
     */
    public String gpuProblem() {
        Placement p = placement;
        if (p == null) {
            return null;
        }
        return switch (config.model().requireGpu()) {
            case FALSE -> null;
            case TRUE -> p.gpuDevices() == 0 ? "model.require-gpu is true but no GPU device is visible"
                    : p.offloaded() < p.total() ? "model.require-gpu is true but only " + p.offloaded() + " of "
                            + p.total() + " layers are on a GPU" : null;
            case AUTO -> p.gpuDevices() > 0 && config.model().gpuLayers() != 0 && p.offloaded() == 0
                    ? "a GPU is visible but the model runs on the CPU (set model.require-gpu=false to allow this)" : null;
        };
    }

    /**
     * Whether readiness ({@code /health/ready}) answers 200: loaded, the scheduler running, not
     * draining and the model where {@code model.require-gpu} wants it. {@code llmref_ready} reads
     * the same, so that the metric never says ready while the probe says not.
     */
    public boolean ready() {
        Engine e = engine();
        return state == State.READY && e != null && e.stats().running() && gpuProblem() == null;
    }

    /** Null when ready, else the readiness status word (the API port's /health; the reason stays on the admin port). */
    private String unready() {
        if (ready()) {
            return null;
        }
        State s = state;
        if (s == State.READY) {
            return gpuProblem() != null ? "not_on_gpu" : "stopped";
        }
        return s.name().toLowerCase(java.util.Locale.ROOT);
    }

    ServedModel readyModel() {
        if (state == State.FAILED) {
            // the reason (paths, sizes) is for operators: it is on the admin port and in the log
            throw new ApiException(503, "server_error", "model_unavailable", null,
                    "the model could not be loaded; the operator must fix the server (see its readiness probe or log)");
        }
        if (state == State.DRAINING || state == State.STOPPED) {
            // not "model_loading" (retry shortly, here): this process will not serve again
            throw new ApiException(503, "server_error", "unavailable", null,
                    "the server is shutting down; retry the request (another replica will take it)");
        }
        return state == State.READY || state == State.WARMING ? served : null;
    }

    /** Why the model could not be loaded or served, when the state is FAILED; else null. */
    public String failure() {
        return failure;
    }

    public State state() {
        return state;
    }

    public float loadProgress() {
        return loadProgress;
    }

    public long loadMillis() {
        return loadMillis;
    }

    /** The engine, once loaded (for health and metrics), else null. */
    public Engine engine() {
        ServedModel m = served;
        return m == null ? null : m.engine();
    }

    public ServerConfig config() {
        return config;
    }

    public int port() {
        return web.port();
    }

    /** The port of health probes and /metrics. */
    public int adminPort() {
        return web.port(ADMIN);
    }

    public ServerMetrics metrics() {
        return metrics;
    }

    /** What the metrics' gauges read. */
    private final class MetricsView implements ServerMetrics.Source {
        private final ServedModel m = served;

        @Override
        public boolean ready() {
            return Server.this.ready();
        }

        @Override
        public Engine engine() {
            return m == null ? null : m.engine();
        }

        @Override
        public ai.llmref.llama.ModelPlacement placement() {
            return m == null ? null : m.model().placement();
        }

        @Override
        public ai.llmref.llama.ModelInfo modelInfo() {
            return m == null ? null : m.info();
        }

        @Override
        public String modelId() {
            return config.model().id();
        }

        @Override
        public long loadMillis() {
            return loadMillis;
        }
    }

    /** Waits until the model is ready (or failed); for tests and scripts. */
    public State awaitLoaded(Duration timeout) throws InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        while ((state == State.LOADING || state == State.WARMING) && System.nanoTime() < end) {
            Thread.sleep(20);
        }
        return state;
    }

    /**
     * Graceful stop: readiness goes down, new work gets 503, running and queued requests get up to
     * {@code grace} to finish; then the scheduler stops, failing what is left, so that each of those
     * requests still answers (an error event on a stream, 503 before the headers) and logs its
     * access line while the HTTP server runs; then the HTTP server stops, and the context and the
     * model are freed.
     */
    public void drainAndStop(Duration grace) {
        if (state == State.STOPPED) {
            return;
        }
        // Stopped from an interrupted thread (a shutdown hook's, say), the server still stops
        // whole: Helidon's stop refused to wait ("Webserver stop was interrupted") and the waits
        // for the engine returned at once, leaving the model loaded. The interrupt is put back.
        boolean interrupted = Thread.interrupted();
        try {
            stop(grace);
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void stop(Duration grace) {
        state = State.DRAINING;
        ServedModel m = served;
        if (m != null) {
            m.engine().drain();
            long end = System.nanoTime() + grace.toNanos();
            while (!m.engine().idle() && System.nanoTime() < end) {
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            if (!m.engine().idle()) {
                // past the grace. Stopping the listeners first interrupted the handlers still waiting
                // for tokens: their streams broke off without an error event, they logged an
                // "unexpected error" each, and most never wrote their access line before the exit
                LOG.log(Level.WARNING, "shutdown grace of " + grace.toMillis() + " ms is over: failing the requests still running or queued");
                m.engine().close();
            }
        }
        web.stop(); // Helidon lets running handlers finish their answers for up to half a second
        if (m != null) {
            m.close();
        }
        tracing.close();
        state = State.STOPPED;
        LOG.log(Level.INFO, "stopped");
    }

    @Override
    public void close() {
        drainAndStop(Duration.ZERO);
    }
}
