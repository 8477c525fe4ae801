package ai.llmref.server;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.server.chat.ChatTemplateRenderer;
import ai.llmref.server.config.ServerConfig;
import ai.llmref.server.engine.Engine;
import ai.llmref.server.engine.EngineConfig;
import ai.llmref.server.http.HealthService;
import ai.llmref.server.http.Json;
import ai.llmref.server.http.OpenAiService;
import ai.llmref.server.http.PromptModel;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.http.HttpRouting;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * The running service: the HTTP server starts at once (health answers "loading"), the model loads
 * on a background thread, then the engine starts and readiness goes up.
 */
public final class Server implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Server.class.getName());

    public enum State { LOADING, READY, FAILED, DRAINING, STOPPED }

    private final ServerConfig config;
    private final WebServer web;
    private volatile State state = State.LOADING;
    private volatile ServedModel served;
    private volatile float loadProgress;
    private volatile long loadMillis;

    private Server(ServerConfig config) {
        this.config = config;
        Json json = new Json(config.limits().maxJsonDepth());
        OpenAiService api = new OpenAiService(this::readyModel, json, new OpenAiService.Limits(
                config.limits().maxBodyBytes(), config.limits().maxTokens(), config.limits().maxPromptTokens(),
                config.limits().requestTimeoutMillis()));
        HealthService health = new HealthService(this, json);
        this.web = WebServer.builder()
                .host(config.http().host())
                .port(config.http().port())
                // a backstop above the API's own limit, which answers in the OpenAI error shape
                .maxPayloadSize(config.limits().maxBodyBytes() * 2 + 4096)
                .routing(r -> routing(r, api, health))
                .build();
    }

    /** The routes, shared by the main program and the tests. */
    static void routing(HttpRouting.Builder r, OpenAiService api, HealthService health) {
        r.register(api).register(health);
    }

    /** Starts listening, then loads the model in the background. */
    public static Server start(ServerConfig config) {
        Server s = new Server(config);
        s.web.start();
        LOG.log(Level.INFO, "listening on " + config.http().host() + ":" + s.web.port());
        Thread.ofPlatform().name("model-loader").daemon(true).start(s::load);
        return s;
    }

    private void load() {
        long t0 = System.nanoTime();
        LlamaModel model = null;
        try {
            model = LlamaModel.load(config.model().path(), ModelParams.defaults()
                    .withGpuLayers(config.model().gpuLayers())
                    .withMainGpu(config.model().mainGpu())
                    .withProgress(f -> {
                        loadProgress = f;
                        return state == State.LOADING;
                    }));
            ServerConfig.Engine e = config.engine();
            int slotContext = e.slotContext() > 0 ? e.slotContext() : model.info().trainContextLength();
            Engine engine = Engine.start(model, new EngineConfig(e.slots(), slotContext, e.batchSize(), e.ubatchSize(),
                    e.prefillChunk(), e.queueCapacity(), e.threads(), e.threadsBatch(), e.flashAttention(), e.embeddings()));
            served = new ServedModel(config.model().id(), model, engine, chatRenderer(model));
            loadMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            if (state == State.LOADING) {
                state = State.READY;
                LOG.log(Level.INFO, "model " + config.model().id() + " ready in " + loadMillis + " ms: "
                        + model.placement() + ", " + e.slots() + " slots of " + slotContext + " positions");
            }
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "cannot serve the model: " + e.getMessage());
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

    private Function<List<PromptModel.Message>, String> chatRenderer(LlamaModel model) {
        String source = !config.model().chatTemplate().isBlank() ? config.model().chatTemplate()
                : model.chatTemplate().orElse(ChatTemplateRenderer.defaultTemplate());
        return ChatRendering.of(source, model);
    }

    ServedModel readyModel() {
        return state == State.READY ? served : null;
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

    /** Waits until the model is ready (or failed); for tests and scripts. */
    public State awaitLoaded(Duration timeout) throws InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        while ((state == State.LOADING) && System.nanoTime() < end) {
            Thread.sleep(20);
        }
        return state;
    }

    /**
     * Graceful stop: readiness goes down, new work gets 503, running requests get up to
     * {@code grace} to finish, then the engine, the model and the HTTP server stop in that order.
     */
    public void drainAndStop(Duration grace) {
        if (state == State.STOPPED) {
            return;
        }
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
        }
        web.stop();
        if (m != null) {
            m.close();
        }
        state = State.STOPPED;
    }

    @Override
    public void close() {
        drainAndStop(Duration.ZERO);
    }
}
