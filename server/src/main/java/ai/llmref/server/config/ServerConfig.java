package ai.llmref.server.config;

import ai.llmref.llama.ContextParams;
import ai.llmref.llama.ModelParams;
import io.helidon.config.Config;
import io.helidon.config.ConfigSources;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.function.Function;

/**
 * The whole configuration: one kebab-case tree, read from (highest precedence first) the command
 * line's shortcuts, system properties, environment variables ({@code LLMREF_} + key with {@code .}
 * as {@code _} and {@code -} as {@code __}, e.g. {@code LLMREF_ENGINE_SLOTS},
 * {@code LLMREF_LIMITS_MAX__TOKENS}), the file given with {@code --config}, and the defaults in
 * {@code application.yaml}. Bound once at start-up; a key that is not one of {@link #KEYS} or an
 * invalid value stops start-up with a message naming the key and the rule. docs/server.md lists
 * every key.
 */
public record ServerConfig(Http http, Model model, Engine engine, Limits limits, Auth auth, Tracing tracing) {

    /**
     * Every key the server reads, in application.yaml's order, and nothing else: {@link #load}
     * refuses any other key of the command line, of the system properties whose first segment is a
     * section (server, model, engine, limits, auth, tracing), of the {@code LLMREF_} variables and
     * of the {@code --config} file. Each key is written here as its own string literal: the deploy
     * module's tests read the keys from this file's literals.
     */
    public static final List<String> KEYS = List.of(
            "server.host",
            "server.port",
            "server.admin-port",
            "server.shutdown-grace-ms",
            "server.liveness-stall-ms",
            "server.warmup-requests",
            "model.path",
            "model.id",
            "model.gpu-layers",
            "model.main-gpu",
            "model.split-mode",
            "model.tensor-split",
            "model.chat-template",
            "model.require-gpu",
            "model.chat-template-mode",
            "model.reasoning-format",
            "model.sampling-defaults",
            "model.sampling",
            "engine.slots",
            "engine.slot-context",
            "engine.batch-size",
            "engine.ubatch-size",
            "engine.prefill-chunk",
            "engine.queue-capacity",
            "engine.threads",
            "engine.threads-batch",
            "engine.flash-attention",
            "engine.embeddings",
            "engine.sampling-threads",
            "engine.emit-during-decode",
            "engine.device-sampling",
            "engine.sampling-wake-ahead",
            "engine.kv-cache-type-k",
            "engine.kv-cache-type-v",
            "limits.max-body-bytes",
            "limits.max-json-depth",
            "limits.max-tokens",
            "limits.max-prompt-tokens",
            "limits.request-timeout-ms",
            "limits.max-request-line-bytes",
            "limits.max-header-bytes",
            "limits.idle-timeout-ms",
            "limits.header-timeout-ms",
            "limits.body-timeout-ms",
            "limits.max-choices",
            "auth.api-keys",
            "auth.api-keys-file",
            "tracing.enabled",
            "tracing.otlp-endpoint",
            "tracing.service-name",
            "tracing.sample-ratio");

    static final Set<String> KNOWN = Set.copyOf(KEYS);

    /**
     * @param port             the API (OpenAI routes)
     * @param adminPort        health probes and /metrics, never behind auth
     * @param shutdownGraceMillis how long running requests may take to finish after SIGTERM
     * @param livenessStallMillis liveness fails when the scheduler has not looped for this long
     * @param warmupRequests requests the server sends itself after loading, before readiness (JIT warm-up)
     */
    public record Http(String host, int port, int adminPort, long shutdownGraceMillis, long livenessStallMillis,
            int warmupRequests) {}

    /** API keys: empty means no authentication (a warning is logged). */
    public record Auth(List<String> apiKeys) {
        @Override
        public String toString() {
            return "Auth[" + apiKeys.size() + " key(s)]"; // never the keys themselves
        }
    }

    public record Tracing(boolean enabled, String otlpEndpoint, String serviceName, double sampleRatio) {}

    /**
     * @param path         the GGUF file
     * @param id           the model id clients send and see (default: file name without .gguf)
     * @param gpuLayers    layers to offload (-1 all)
     * @param mainGpu      GPU for the whole model in single-GPU mode
     * @param chatTemplate a Jinja template overriding the model's own (empty: the model's, else ChatML)
     * @param requireGpu   when readiness demands layers on a GPU
     * @param splitMode    how the model spreads over several GPUs
     * @param tensorSplit  each GPU's share of the model, in device order; null: by free memory
     * @param reasoningFormat whether a reasoning model's {@code <think>} block is returned apart from the content
     * @param samplingDefaults whether the model's recommended sampling fills what a request leaves out
     * @param sampling     the operator's defaults for the sampling fields a request leaves out (a
     *                     JSON object of request fields, checked; "" none), over the model's own
     */
    public record Model(Path path, String id, int gpuLayers, int mainGpu, String chatTemplate, RequireGpu requireGpu,
                        ChatTemplateMode chatTemplateMode, ModelParams.SplitMode splitMode, float[] tensorSplit,
                        ReasoningFormat reasoningFormat, SamplingDefaults samplingDefaults, String sampling) {}

    /**
     * {@code model}: the sampling the model's GGUF recommends ({@code general.sampling.*}) fills the
     * fields a request leaves out, as llama-server applies it; {@code none}: a request's omitted
     * fields take the API's defaults (temperature 1, no cut).
     */
    public enum SamplingDefaults { MODEL, NONE }

    /**
     * {@code auto}: where the chat template writes {@code <think>} blocks, a reply's reasoning is
     * returned apart from its content ({@code reasoning_content}, llama-server's "deepseek"
     * format); {@code none}: the reply is returned as the model wrote it.
     */
    public enum ReasoningFormat { AUTO, NONE }

    /** How chat templates are rendered: the Jinja engine, or llama.cpp's built-in renderer where it knows the template. */
    public enum ChatTemplateMode { JINJA, BUILTIN }

    /**
     * {@code auto}: on a node with a visible GPU (and {@code gpu-layers} not 0) the model must really
     * be on it, a silent CPU fallback is not ready; on a CPU node CPU is fine. {@code true}: not
     * ready unless every layer is on a GPU. {@code false}: CPU is explicitly allowed.
     */
    public enum RequireGpu { AUTO, TRUE, FALSE }

    /**
     * A switch whose {@code auto} is on when the model is on a GPU ({@code engine.emit-during-decode},
     * {@code engine.device-sampling}, {@code engine.sampling-wake-ahead}).
     */
    public enum OnGpu {
        AUTO, TRUE, FALSE;

        public boolean on(boolean modelOnGpu) {
            return this == TRUE || this == AUTO && modelOnGpu;
        }
    }

    /**
     * @param slotContext     positions per slot; 0 = the model's training context
     * @param threads         llama.cpp's CPU threads for single-token steps; 0 = auto (see
     *                        {@code Server}: every core, or 1 when every layer is on a GPU)
     * @param threadsBatch    its CPU threads for steps of several tokens; 0 = auto (every core, or at
     *                        most 4 when every layer is on a GPU)
     * @param samplingThreads threads picking the tokens after each decode; 0 = auto (see
     *                        {@code Server}: several when the model is on a GPU, 1 on CPU)
     * @param emitDuringDecode make a step's text while the next decode runs (see {@code EngineConfig})
     * @param kvCacheTypeK    element type of the generation context's K cache
     * @param kvCacheTypeV    element type of its V cache (a quantized one needs flash attention)
     * @param deviceSampling  greedy picks on the device (see {@code EngineConfig}); off by default:
     *                        slower than the host's picks with many streams (docs/benchmarks.md, GPU run 4)
     * @param samplingWakeAhead wake the sampling helpers while the device decodes (see {@code EngineConfig})
     */
    public record Engine(int slots, int slotContext, int batchSize, int ubatchSize, int prefillChunk, int queueCapacity,
                         int threads, int threadsBatch, ContextParams.FlashAttention flashAttention, boolean embeddings,
                         int samplingThreads, OnGpu emitDuringDecode, ContextParams.KvCacheType kvCacheTypeK,
                         ContextParams.KvCacheType kvCacheTypeV, OnGpu deviceSampling, OnGpu samplingWakeAhead) {}

    /**
     * @param maxRequestLineBytes longer request lines: 414
     * @param maxHeaderBytes      larger header blocks: 400 (Helidon tells no more; see {@code TransportErrors})
     * @param idleTimeoutMillis   a connection waiting this long for a (complete) request line is closed
     * @param headerTimeoutMillis headers that take longer than this after the request line close the connection (slow loris)
     * @param bodyTimeoutMillis   a request body not read in full this long after its handler began reading closes the connection
     * @param maxChoices          most choices ({@code n}) one request may ask for: each takes a slot
     */
    public record Limits(long maxBodyBytes, int maxJsonDepth, int maxTokens, int maxPromptTokens, long requestTimeoutMillis,
                         int maxRequestLineBytes, int maxHeaderBytes, long idleTimeoutMillis, long headerTimeoutMillis,
                         long bodyTimeoutMillis, int maxChoices) {}

    /**
     * Reads the sources (see class comment): {@code overrides} from the command line, this JVM's
     * system properties and environment; {@code file} may be null. A key the server does not know
     * stops start-up (see {@link #load(Path, Map, Map, Map)}).
     */
    public static Config load(Path file, Map<String, String> overrides) {
        Map<String, String> properties = new HashMap<>();
        Properties system = System.getProperties();
        for (String name : system.stringPropertyNames()) {
            properties.put(name, system.getProperty(name));
        }
        return load(file, overrides, properties, System.getenv());
    }

    /**
     * Reads the sources with the given system properties and environment. Before anything is bound
     * every key from the command line ({@code overrides}), from the system properties whose first
     * segment is one of the sections of {@link #KEYS} (any other, such as {@code java.version}, is
     * not the server's), from the {@code LLMREF_} variables and from {@code file} must be one of
     * {@link #KEYS}, and in the file a key must hold a single value and a section keys; otherwise a
     * {@link ConfigException} names each offending key, where it came from and the closest known key.
     */
    public static Config load(Path file, Map<String, String> overrides, Map<String, String> systemProperties,
                              Map<String, String> environment) {
        Config fileTree = null;
        if (file != null) {
            if (!Files.isReadable(file)) {
                throw new ConfigException("--config", "must name a readable YAML file", file);
            }
            try {
                fileTree = Config.builder(ConfigSources.file(file).build())
                        .disableEnvironmentVariablesSource().disableSystemPropertiesSource().build();
            } catch (io.helidon.config.ConfigException e) {
                throw new ConfigException("--config", "must name a valid YAML file (" + yamlProblem(e) + ")", file);
            }
        }
        Map<String, String> properties = KeyCheck.serverProperties(systemProperties);
        KeyCheck.check(file, fileTree, overrides, properties, environment);
        Config.Builder b = Config.builder().disableEnvironmentVariablesSource().disableSystemPropertiesSource();
        List<io.helidon.config.spi.ConfigSource> sources = new java.util.ArrayList<>();
        sources.add(ConfigSources.create(overrides).build());
        sources.add(ConfigSources.create(properties).build());
        sources.add(ConfigSources.create(fromEnvironment(environment)).build());
        if (file != null) {
            sources.add(ConfigSources.file(file).build());
        }
        sources.add(ConfigSources.classpath("application.yaml").build());
        sources.forEach(b::addSource);
        return b.build();
    }

    /**
     * What is wrong with a file the YAML parser refused, by line and column. Never the parser's own
     * message: it quotes the offending line with a caret under it, and that line may hold an API key
     * (auth.api-keys), which would then reach the log (and it spans several lines).
     */
    static String yamlProblem(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof org.yaml.snakeyaml.error.MarkedYAMLException m) {
                org.yaml.snakeyaml.error.Mark mark = m.getProblemMark() != null ? m.getProblemMark() : m.getContextMark();
                String problem = m.getProblem() != null ? m.getProblem() : m.getContext();
                return (problem == null ? "not YAML" : problem.replaceAll("\\s+", " ").strip())
                        + (mark == null ? "" : " at line " + (mark.getLine() + 1) + ", column " + (mark.getColumn() + 1));
            }
        }
        String message = e.getMessage() == null ? e.toString() : e.getMessage();
        return message.lines().findFirst().orElse("").strip();
    }

    /** {@code LLMREF_ENGINE_SLOTS=4} becomes {@code engine.slots=4}; {@code __} stands for {@code -}. */
    public static Map<String, String> fromEnvironment(Map<String, String> env) {
        Map<String, String> out = new HashMap<>();
        env.forEach((k, v) -> {
            String key = environmentKey(k);
            if (key != null) {
                out.put(key, v);
            }
        });
        return out;
    }

    /** The key an environment variable sets ({@code LLMREF_ENGINE_SLOTS}: engine.slots), null for any other variable. */
    static String environmentKey(String variable) {
        if (!variable.startsWith("LLMREF_") || variable.length() <= 7) {
            return null;
        }
        return variable.substring(7).toLowerCase(Locale.ROOT).replace("__", "\u0000").replace('_', '.').replace('\u0000', '-');
    }

    /** The variable that sets {@code key} ({@code limits.max-tokens}: LLMREF_LIMITS_MAX__TOKENS). */
    static String environmentVariable(String key) {
        return "LLMREF_" + key.toUpperCase(Locale.ROOT).replace("-", "__").replace('.', '_');
    }

    /** Binds and validates the tree. */
    public static ServerConfig from(Config config) {
        return bind(new Reading(config, new java.util.HashSet<>()));
    }

    /**
     * The keys {@link #from} reads while binding {@code config} (which must bind): for the test that
     * {@link #KEYS} names every key the code reads and no other.
     */
    public static Set<String> keysRead(Config config) {
        Reading r = new Reading(config, new java.util.TreeSet<>());
        bind(r);
        return r.read();
    }

    /** The tree being bound and the keys read from it so far. */
    private record Reading(Config config, Set<String> read) {}

    private static ServerConfig bind(Reading c) {
        Http http = new Http(
                host(c),
                integer(c, "server.port", 8080, 0, 65535),
                integer(c, "server.admin-port", 9090, 0, 65535),
                longValue(c, "server.shutdown-grace-ms", 30_000, 0, 3_600_000),
                longValue(c, "server.liveness-stall-ms", 10_000, 100, 3_600_000),
                integer(c, "server.warmup-requests", 0, 0, 100_000));
        if (http.port() != 0 && http.port() == http.adminPort()) {
            throw new ConfigException("server.admin-port", "must differ from server.port", http.adminPort());
        }
        String pathText = string(c, "model.path", "");
        if (pathText.isBlank()) {
            throw new ConfigException("model.path", "is required (the GGUF file to serve)", null);
        }
        Path path;
        try {
            path = Path.of(pathText);
        } catch (java.nio.file.InvalidPathException e) {
            throw new ConfigException("model.path", "must be a file path", pathText);
        }
        if (path.getFileName() == null) {
            // "/": no file name to take the default model.id from (a NullPointerException before)
            throw new ConfigException("model.path", "must name a file, not a root directory", pathText);
        }
        String defaultId = path.getFileName().toString().replaceFirst("\\.gguf$", "");
        String id = string(c, "model.id", "");
        if (id.isEmpty()) {
            id = defaultId; // application.yaml's "": the file name
        }
        if (id.isBlank() || id.length() > 128) {
            throw new ConfigException("model.id", "must be 1 to 128 characters", id);
        }
        Model model = new Model(path, id,
                integer(c, "model.gpu-layers", -1, -1, 100_000),
                integer(c, "model.main-gpu", 0, 0, 64),
                string(c, "model.chat-template", ""),
                enumeration(c, "model.require-gpu", RequireGpu.AUTO, RequireGpu::valueOf),
                enumeration(c, "model.chat-template-mode", ChatTemplateMode.JINJA, ChatTemplateMode::valueOf),
                enumeration(c, "model.split-mode", ModelParams.SplitMode.LAYER, ModelParams.SplitMode::valueOf),
                tensorSplit(c),
                enumeration(c, "model.reasoning-format", ReasoningFormat.AUTO, ReasoningFormat::valueOf),
                enumeration(c, "model.sampling-defaults", SamplingDefaults.MODEL, SamplingDefaults::valueOf),
                sampling(c));
        int batch = integer(c, "engine.batch-size", 512, 1, 65536);
        int ubatch = integer(c, "engine.ubatch-size", 0, 0, batch);
        Engine engine = new Engine(
                integer(c, "engine.slots", 4, 1, 256),
                integer(c, "engine.slot-context", 0, 0, ContextParams.MAX_CONTEXT),
                batch,
                ubatch == 0 ? Math.min(512, batch) : ubatch, // application.yaml's 0: min(512, batch-size)
                integer(c, "engine.prefill-chunk", 256, 1, batch),
                integer(c, "engine.queue-capacity", 64, 1, 100_000),
                integer(c, "engine.threads", 0, 0, 1024),
                integer(c, "engine.threads-batch", 0, 0, 1024),
                enumeration(c, "engine.flash-attention", ContextParams.FlashAttention.AUTO, ContextParams.FlashAttention::valueOf),
                bool(c, "engine.embeddings", true),
                integer(c, "engine.sampling-threads", 0, 0, 256),
                enumeration(c, "engine.emit-during-decode", OnGpu.AUTO, OnGpu::valueOf),
                enumeration(c, "engine.kv-cache-type-k", ContextParams.KvCacheType.F16, ContextParams.KvCacheType::valueOf),
                enumeration(c, "engine.kv-cache-type-v", ContextParams.KvCacheType.F16, ContextParams.KvCacheType::valueOf),
                enumeration(c, "engine.device-sampling", OnGpu.FALSE, OnGpu::valueOf),
                enumeration(c, "engine.sampling-wake-ahead", OnGpu.AUTO, OnGpu::valueOf));
        if (engine.kvCacheTypeV().quantized() && engine.flashAttention() == ContextParams.FlashAttention.DISABLED) {
            throw new ConfigException("engine.kv-cache-type-v", "is quantized, which needs engine.flash-attention auto or enabled (it is disabled)",
                    engine.kvCacheTypeV().ggmlName());
        }
        if (model.splitMode() == ModelParams.SplitMode.TENSOR && engine.flashAttention() == ContextParams.FlashAttention.DISABLED) {
            throw new ConfigException("model.split-mode", "tensor needs engine.flash-attention auto or enabled (it is disabled)", "tensor");
        }
        if (engine.slots() > engine.batchSize()) {
            // each step decodes one token of every generating slot: a batch smaller than the slots
            // would leave the highest slots (and every prompt) waiting until the lower ones finish
            throw new ConfigException("engine.slots", "must be at most engine.batch-size (" + engine.batchSize()
                    + "): each step decodes the next token of every generating slot", engine.slots());
        }
        if ((long) engine.slots() * engine.slotContext() > ContextParams.MAX_CONTEXT) {
            // the context is slots x slot-context positions: the product must fit llama.cpp's int
            throw new ConfigException("engine.slot-context", "times engine.slots (" + engine.slots() + ") must be at most "
                    + ContextParams.MAX_CONTEXT + " positions", engine.slotContext());
        }
        Limits limits = new Limits(
                longValue(c, "limits.max-body-bytes", 1 << 20, 1024, ai.llmref.llama.Vocabulary.MAX_TEXT_BYTES), // no text in a body is then over what one tokenization takes
                integer(c, "limits.max-json-depth", 32, 2, 1000),
                integer(c, "limits.max-tokens", 4096, 1, ContextParams.MAX_CONTEXT),
                integer(c, "limits.max-prompt-tokens", 32768, 1, ContextParams.MAX_CONTEXT),
                longValue(c, "limits.request-timeout-ms", 300_000, 100, 86_400_000),
                integer(c, "limits.max-request-line-bytes", 4096, 256, 1 << 20),
                integer(c, "limits.max-header-bytes", 16384, 1024, 1 << 20),
                longValue(c, "limits.idle-timeout-ms", 60_000, 100, 3_600_000),
                longValue(c, "limits.header-timeout-ms", 10_000, 100, 3_600_000),
                longValue(c, "limits.body-timeout-ms", 30_000, 100, 3_600_000),
                integer(c, "limits.max-choices", 16, 1, 256));
        Auth auth = new Auth(apiKeys(c));
        double ratio;
        String ratioText = string(c, "tracing.sample-ratio", "1.0");
        try {
            ratio = Double.parseDouble(ratioText);
        } catch (NumberFormatException e) {
            throw new ConfigException("tracing.sample-ratio", "must be a number from 0 to 1", ratioText);
        }
        if (!(ratio >= 0 && ratio <= 1)) {
            throw new ConfigException("tracing.sample-ratio", "must be a number from 0 to 1", ratioText);
        }
        Tracing tracing = new Tracing(bool(c, "tracing.enabled", false),
                string(c, "tracing.otlp-endpoint", "http://localhost:4318"),
                string(c, "tracing.service-name", "ai-llm-reference-app"), ratio);
        return new ServerConfig(http, model, engine, limits, auth, tracing);
    }

    /**
     * {@code server.host}: an address literal or a name this node resolves (Helidon resolves it when
     * the listeners are built, and an unknown name stopped start-up there with a stack trace).
     */
    private static String host(Reading c) {
        String host = string(c, "server.host", "127.0.0.1");
        try {
            java.net.InetAddress.getByName(host);
        } catch (java.net.UnknownHostException | SecurityException e) {
            throw new ConfigException("server.host", "must be an IP address or a host name this node resolves", host);
        }
        return host;
    }

    /** {@code model.tensor-split}: "3,1" gives the first GPU three quarters of the model; empty: by free memory. */
    private static float[] tensorSplit(Reading c) {
        String text = string(c, "model.tensor-split", "").strip();
        if (text.isEmpty()) {
            return null;
        }
        String rule = "must be comma-separated shares per GPU (numbers, none negative, not all 0), e.g. 3,1";
        String[] parts = text.split(",", -1);
        if (parts.length > 64) {
            throw new ConfigException("model.tensor-split", "names at most 64 GPUs", text);
        }
        float[] shares = new float[parts.length];
        float sum = 0;
        for (int i = 0; i < parts.length; i++) {
            try {
                shares[i] = Float.parseFloat(parts[i].strip());
            } catch (NumberFormatException e) {
                throw new ConfigException("model.tensor-split", rule, text);
            }
            if (!(shares[i] >= 0) || Float.isInfinite(shares[i])) {
                throw new ConfigException("model.tensor-split", rule, text);
            }
            sum += shares[i];
        }
        if (sum <= 0) {
            throw new ConfigException("model.tensor-split", rule, text);
        }
        return shares;
    }

    /**
     * Keys from {@code auth.api-keys} (comma-separated, e.g. from an environment variable) and from
     * the file {@code auth.api-keys-file} (one per line, {@code #} comments; a mounted Secret). The
     * file is only read.
     */
    private static List<String> apiKeys(Reading c) {
        List<String> keys = new java.util.ArrayList<>();
        for (String k : string(c, "auth.api-keys", "").split(",")) {
            if (!k.isBlank()) {
                keys.add(k.trim());
            }
        }
        String file = string(c, "auth.api-keys-file", "");
        if (!file.isBlank()) {
            try {
                for (String line : Files.readAllLines(Path.of(file))) {
                    String k = line.strip();
                    if (!k.isEmpty() && !k.startsWith("#")) {
                        keys.add(k);
                    }
                }
            } catch (java.io.IOException | SecurityException | java.nio.file.InvalidPathException e) {
                throw new ConfigException("auth.api-keys-file", "must name a readable file", file);
            }
            if (keys.isEmpty()) {
                throw new ConfigException("auth.api-keys-file", "holds no key", file);
            }
        }
        for (String k : keys) {
            if (k.length() < 16 || k.chars().anyMatch(ch -> ch <= ' ' || ch > '~')) {
                throw new ConfigException("auth", "API keys must be at least 16 printable ASCII characters without spaces", null);
            }
        }
        return List.copyOf(keys);
    }

    private static Optional<String> raw(Reading c, String key) {
        if (!KNOWN.contains(key)) {
            throw new IllegalStateException(key + " is read but not listed in ServerConfig.KEYS");
        }
        c.read().add(key);
        Config node = c.config().get(key);
        return node.exists() ? node.asString().asOptional().map(String::trim) : Optional.empty();
    }

    /** model.sampling: a JSON object of request sampling fields, each checked as a request's. */
    private static String sampling(Reading c) {
        String json = string(c, "model.sampling", "");
        try {
            ai.llmref.server.http.SamplingDefaults.operator(json, null);
        } catch (IllegalArgumentException e) {
            throw new ConfigException("model.sampling", e.getMessage(), json.length() > 200 ? json.substring(0, 200) + "..." : json);
        }
        return json;
    }

    private static String string(Reading c, String key, String def) {
        return raw(c, key).orElse(def);
    }

    private static int integer(Reading c, String key, int def, int min, int max) {
        return (int) longValue(c, key, def, min, max);
    }

    private static long longValue(Reading c, String key, long def, long min, long max) {
        Optional<String> v = raw(c, key);
        if (v.isEmpty()) {
            return def;
        }
        long n;
        try {
            n = Long.parseLong(v.get());
        } catch (NumberFormatException e) {
            throw new ConfigException(key, "must be an integer", v.get());
        }
        if (n < min || n > max) {
            throw new ConfigException(key, "must be between " + min + " and " + max, v.get());
        }
        return n;
    }

    private static boolean bool(Reading c, String key, boolean def) {
        Optional<String> v = raw(c, key);
        if (v.isEmpty()) {
            return def;
        }
        return switch (v.get().toLowerCase(Locale.ROOT)) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new ConfigException(key, "must be true or false", v.get());
        };
    }

    private static <E extends Enum<E>> E enumeration(Reading c, String key, E def, Function<String, E> parse) {
        Optional<String> v = raw(c, key);
        if (v.isEmpty()) {
            return def;
        }
        try {
            return parse.apply(v.get().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new ConfigException(key, "must be one of " + java.util.Arrays.toString(def.getDeclaringClass().getEnumConstants()).toLowerCase(Locale.ROOT), v.get());
        }
    }
}
