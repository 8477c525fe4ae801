package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.llama.ContextParams;
import ai.llmref.llama.ModelParams;
import ai.llmref.server.config.ConfigException;
import ai.llmref.server.config.ServerConfig;
import io.helidon.config.Config;
import io.helidon.config.ConfigSources;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Configuration binds to validated records; an invalid value names the key and the rule. */
class ConfigTest {
    /** How the deploy module's ServerKeys reads the keys from ServerConfig.java. */
    static final Pattern KEY_LITERAL = Pattern.compile("\"((?:server|model|engine|limits|auth|tracing)\\.[a-z][a-z0-9-]*)\"");
    static final Map<String, String> MODEL = Map.of("model.path", "/models/x.gguf");

    @TempDir
    Path tmp;

    static ServerConfig bind(Map<String, String> values) {
        Map<String, String> m = new HashMap<>(Map.of("model.path", "/models/x.gguf"));
        m.putAll(values);
        return ServerConfig.from(ServerConfig.load(null, m));
    }

    @Test
    void defaultsAndOverrides() {
        ServerConfig c = bind(Map.of("engine.slots", "8", "limits.max-tokens", "100"));
        assertThat(c.engine().slots()).isEqualTo(8);
        assertThat(c.limits().maxTokens()).isEqualTo(100);
        assertThat(c.model().id()).isEqualTo("x");
        assertThat(c.http().port()).isEqualTo(8080);
        assertThat(c.limits().maxBodyBytes()).isEqualTo(1 << 20);
    }

    @Test
    void samplingThreadsAreAutoUnlessSet() {
        assertThatThrownBy(() -> bind(Map.of("engine.sampling-threads", "257"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.sampling-threads must be between 0 and 256, got '257'");
        assertThatThrownBy(() -> bind(Map.of("engine.sampling-threads", "-1"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("engine.sampling-threads");
        ServerConfig.Engine auto = bind(Map.of("engine.slots", "64")).engine();
        assertThat(auto.samplingThreads()).isZero();
        int cores = Runtime.getRuntime().availableProcessors();
        assertThat(Server.samplingThreads(auto, false)).as("on CPU the scheduler picks alone").isEqualTo(1);
        assertThat(Server.samplingThreads(auto, true)).isEqualTo(Math.max(1, Math.min(8, cores / 2)));
        assertThat(Server.samplingThreads(bind(Map.of("engine.slots", "2")).engine(), true)).as("two slots: one thread").isEqualTo(1);
        ServerConfig.Engine set = bind(Map.of("engine.sampling-threads", "6")).engine();
        assertThat(Server.samplingThreads(set, false)).isEqualTo(6);
        assertThat(Server.samplingThreads(set, true)).isEqualTo(6);
    }

    @Test
    void cpuThreadsAreEveryCoreUnlessEveryLayerIsOnAGpu() {
        assertThatThrownBy(() -> bind(Map.of("engine.threads", "-1"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.threads must be between 0 and 1024, got '-1'");
        assertThatThrownBy(() -> bind(Map.of("engine.threads-batch", "1025"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("engine.threads-batch");
        ServerConfig.Engine auto = bind(Map.of()).engine();
        assertThat(auto.threads()).isZero();
        assertThat(auto.threadsBatch()).isZero();
        ai.llmref.llama.ModelPlacement cpu = new ai.llmref.llama.ModelPlacement(0, 17, Map.of("CPU", 1L));
        ai.llmref.llama.ModelPlacement partial = new ai.llmref.llama.ModelPlacement(9, 17, Map.of("CUDA0", 1L, "CPU", 1L));
        ai.llmref.llama.ModelPlacement gpu = new ai.llmref.llama.ModelPlacement(17, 17, Map.of("CUDA0", 1L));
        assertThat(Server.cpuThreads(auto, cpu, 16)).isEqualTo(new Server.CpuThreads(16, 16));
        assertThat(Server.cpuThreads(auto, partial, 16)).as("layers on the CPU need every core").isEqualTo(new Server.CpuThreads(16, 16));
        assertThat(Server.cpuThreads(auto, gpu, 16)).as("only the embeddings' lookup is left to the CPU").isEqualTo(new Server.CpuThreads(1, 4));
        assertThat(Server.cpuThreads(auto, gpu, 2)).isEqualTo(new Server.CpuThreads(1, 2));
        ServerConfig.Engine set = bind(Map.of("engine.threads", "3", "engine.threads-batch", "5")).engine();
        assertThat(Server.cpuThreads(set, gpu, 16)).isEqualTo(new Server.CpuThreads(3, 5));
        assertThat(Server.cpuThreads(set, cpu, 16)).isEqualTo(new Server.CpuThreads(3, 5));
        assertThat(new Server.CpuThreads(1, 4)).as("as the start-up line names them").hasToString("1/4");
    }

    @Test
    void emitDuringDecodeIsOnWithTheModelOnAGpuUnlessSet() {
        // on CPU the decode returns when done: nothing to overlap
        assertOnGpuSwitch("engine.emit-during-decode", ServerConfig.Engine::emitDuringDecode, "sometimes");
    }

    @Test
    void samplingWakeAheadIsOnWithTheModelOnAGpuUnlessSet() {
        // on CPU the decode returns when done: nothing to wake ahead of
        assertOnGpuSwitch("engine.sampling-wake-ahead", ServerConfig.Engine::samplingWakeAhead, "early");
    }

    /** A switch whose auto, the default, is on with the model on a GPU only; true and false hold either way. */
    private static void assertOnGpuSwitch(String key, java.util.function.Function<ServerConfig.Engine, ServerConfig.OnGpu> get, String bad) {
        assertThatThrownBy(() -> bind(Map.of(key, bad))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: " + key + " must be one of [auto, true, false], got '" + bad + "'");
        ServerConfig.OnGpu auto = get.apply(bind(Map.of()).engine());
        assertThat(auto).isEqualTo(ServerConfig.OnGpu.AUTO);
        assertThat(auto.on(true)).isTrue();
        assertThat(auto.on(false)).as(key + " auto without a GPU").isFalse();
        for (boolean onGpu : new boolean[] {true, false}) {
            assertThat(get.apply(bind(Map.of(key, "TRUE")).engine()).on(onGpu)).as(key + " true").isTrue();
            assertThat(get.apply(bind(Map.of(key, "false")).engine()).on(onGpu)).as(key + " false").isFalse();
        }
    }

    @Test
    void invalidValuesNameTheKeyAndTheRule() {
        assertThatThrownBy(() -> bind(Map.of("engine.slots", "0"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.slots must be between 1 and 256, got '0'");
        // a queue of 0 made the engine's queue refuse to exist (the server failed to load the model)
        assertThatThrownBy(() -> bind(Map.of("engine.queue-capacity", "0"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.queue-capacity must be between 1 and 100000, got '0'");
        // more slots than a step's batch holds would starve the highest slots and every prompt
        assertThatThrownBy(() -> bind(Map.of("engine.slots", "16", "engine.batch-size", "8", "engine.prefill-chunk", "8"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.slots must be at most engine.batch-size (8): each step decodes the next token"
                        + " of every generating slot, got '16'");
        assertThat(bind(Map.of("engine.slots", "8", "engine.batch-size", "8", "engine.prefill-chunk", "8")).engine().slots()).isEqualTo(8);
        assertThatThrownBy(() -> bind(Map.of("server.port", "http"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("server.port must be an integer");
        assertThatThrownBy(() -> bind(Map.of("server.warmup-requests", "-1"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("server.warmup-requests");
        assertThat(bind(Map.of()).http().warmupRequests()).isZero();
        assertThatThrownBy(() -> bind(Map.of("engine.flash-attention", "sometimes"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("engine.flash-attention must be one of [auto, disabled, enabled]");
        assertThatThrownBy(() -> bind(Map.of("engine.embeddings", "maybe"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("engine.embeddings must be true or false");
        assertThatThrownBy(() -> bind(Map.of("engine.batch-size", "64", "engine.ubatch-size", "128"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("engine.ubatch-size must be between 0 and 64"); // 0: min(512, batch-size)
        assertThatThrownBy(() -> ServerConfig.from(ServerConfig.load(null, Map.of()))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("model.path is required");
        // a path without a file name, or one the file system cannot hold: NullPointerException and
        // InvalidPathException (stack traces, exit status 1) before
        assertThatThrownBy(() -> bind(Map.of("model.path", "/"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: model.path must name a file, not a root directory, got '/'");
        assertThatThrownBy(() -> bind(Map.of("model.path", "/models/x\0.gguf"))).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("invalid configuration: model.path must be a file path, got '");
        assertThatThrownBy(() -> bind(Map.of("auth.api-keys-file", "/run/secrets/keys\0"))).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("invalid configuration: auth.api-keys-file must name a readable file, got '");
    }

    @Test
    void kvCacheTypesAreF16UnlessSetAndAQuantizedVNeedsFlashAttention() {
        ServerConfig.Engine defaults = bind(Map.of()).engine();
        assertThat(defaults.kvCacheTypeK()).isEqualTo(ContextParams.KvCacheType.F16);
        assertThat(defaults.kvCacheTypeV()).isEqualTo(ContextParams.KvCacheType.F16);
        ServerConfig.Engine q = bind(Map.of("engine.kv-cache-type-k", "q8_0", "engine.kv-cache-type-v", "Q4_0")).engine();
        assertThat(q.kvCacheTypeK()).isEqualTo(ContextParams.KvCacheType.Q8_0);
        assertThat(q.kvCacheTypeV()).isEqualTo(ContextParams.KvCacheType.Q4_0);
        assertThatThrownBy(() -> bind(Map.of("engine.kv-cache-type-k", "q3_k"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.kv-cache-type-k must be one of "
                        + "[f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1], got 'q3_k'");
        assertThatThrownBy(() -> bind(Map.of("engine.kv-cache-type-v", "q8_0", "engine.flash-attention", "disabled")))
                .isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.kv-cache-type-v is quantized, which needs engine.flash-attention "
                        + "auto or enabled (it is disabled), got 'q8_0'");
        // a quantized K cache works without flash attention
        assertThat(bind(Map.of("engine.kv-cache-type-k", "q8_0", "engine.flash-attention", "disabled")).engine().kvCacheTypeK())
                .isEqualTo(ContextParams.KvCacheType.Q8_0);
    }

    @Test
    void maxChoices() {
        assertThat(bind(Map.of()).limits().maxChoices()).isEqualTo(16);
        assertThat(bind(Map.of("limits.max-choices", "1")).limits().maxChoices()).isEqualTo(1);
        // a body holds no more UTF-8 text than its size: capped at what one tokenization takes
        assertThat(bind(Map.of("limits.max-body-bytes", "67108864")).limits().maxBodyBytes()).isEqualTo(67108864);
        assertThatThrownBy(() -> bind(Map.of("limits.max-body-bytes", "67108865"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: limits.max-body-bytes must be between 1024 and 67108864, got '67108865'");
        assertThatThrownBy(() -> bind(Map.of("limits.max-choices", "0"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: limits.max-choices must be between 1 and 256, got '0'");
    }

    @Test
    void multiGpuSplitKeys() {
        ServerConfig.Model defaults = bind(Map.of()).model();
        assertThat(defaults.splitMode()).isEqualTo(ModelParams.SplitMode.LAYER);
        assertThat(defaults.tensorSplit()).isNull();
        ServerConfig.Model m = bind(Map.of("model.split-mode", "row", "model.tensor-split", " 3, 1 ,0")).model();
        assertThat(m.splitMode()).isEqualTo(ModelParams.SplitMode.ROW);
        assertThat(m.tensorSplit()).containsExactly(3f, 1f, 0f);
        assertThatThrownBy(() -> bind(Map.of("model.split-mode", "rows"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: model.split-mode must be one of [none, layer, row, tensor], got 'rows'");
        for (String bad : new String[] {"3;1", "1,-1", "0,0", "1,,2", "NaN", "Infinity"}) {
            assertThatThrownBy(() -> bind(Map.of("model.tensor-split", bad))).as(bad).isInstanceOf(ConfigException.class)
                    .hasMessage("invalid configuration: model.tensor-split must be comma-separated shares per GPU (numbers, none negative, "
                            + "not all 0), e.g. 3,1, got '" + bad + "'");
        }
        assertThatThrownBy(() -> bind(Map.of("model.split-mode", "tensor", "engine.flash-attention", "disabled")))
                .isInstanceOf(ConfigException.class).hasMessageContaining("model.split-mode tensor needs engine.flash-attention");
    }

    /** Regression: 256 slots x 16M positions wrapped around to a context of 0 (the model's default). */
    @Test
    void theWholeContextMustFitItsLimit() {
        assertThatThrownBy(() -> bind(Map.of("engine.slots", "256", "engine.slot-context", "16777216"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("engine.slot-context times engine.slots (256) must be at most 16777216 positions");
        assertThat(bind(Map.of("engine.slots", "16", "engine.slot-context", "1048576")).engine().slotContext()).isEqualTo(1 << 20);
    }

    @Test
    void environmentVariablesMapToKeys() {
        assertThat(ServerConfig.fromEnvironment(Map.of("LLMREF_ENGINE_SLOTS", "3", "LLMREF_LIMITS_MAX__BODY__BYTES", "2048",
                "PATH", "/bin"))).containsExactlyInAnyOrderEntriesOf(Map.of("engine.slots", "3", "limits.max-body-bytes", "2048"));
    }

    @Test
    void defaultsThatDependOnOtherKeys() {
        assertThat(bind(Map.of()).model().id()).as("model.id \"\": the file name").isEqualTo("x");
        assertThat(bind(Map.of("model.id", "served")).model().id()).isEqualTo("served");
        assertThat(bind(Map.of()).engine().ubatchSize()).isEqualTo(512);
        assertThat(bind(Map.of("engine.batch-size", "256")).engine().ubatchSize()).as("0: min(512, batch-size)").isEqualTo(256);
        assertThat(bind(Map.of("engine.batch-size", "2048")).engine().ubatchSize()).isEqualTo(512);
        assertThat(bind(Map.of("engine.ubatch-size", "128")).engine().ubatchSize()).isEqualTo(128);
        assertThat(bind(Map.of()).engine().deviceSampling()).isEqualTo(ServerConfig.OnGpu.FALSE);
    }

    // Unknown keys: each source names the key, where it came from and the key probably meant.

    @Test
    void aMisspelledKeyInTheFileStopsStartUp() throws IOException {
        Path file = yaml("""
                engine:
                  slot: 4
                """);
        assertThatThrownBy(() -> load(file, MODEL, Map.of(), Map.of())).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.slot (from file " + file + ") is not a known key; did you mean engine.slots?");
    }

    @Test
    void aMisspelledEnvironmentVariableStopsStartUp() {
        assertThatThrownBy(() -> load(null, MODEL, Map.of(), Map.of("LLMREF_ENGINE_SLOT", "4"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.slot (from environment variable LLMREF_ENGINE_SLOT) is not a known key; "
                        + "did you mean engine.slots (LLMREF_ENGINE_SLOTS)?");
        // _ for - : the same key with another separator
        assertThatThrownBy(() -> load(null, MODEL, Map.of(), Map.of("LLMREF_LIMITS_MAX_TOKENS", "4"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: limits.max.tokens (from environment variable LLMREF_LIMITS_MAX_TOKENS) is not a known key; "
                        + "did you mean limits.max-tokens (LLMREF_LIMITS_MAX__TOKENS)?");
    }

    @Test
    void aMisspelledSystemPropertyStopsStartUp() {
        assertThatThrownBy(() -> load(null, MODEL, Map.of("engine.slot", "4"), Map.of())).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.slot (from system property -Dengine.slot) is not a known key; did you mean engine.slots?");
        assertThatThrownBy(() -> load(null, MODEL, Map.of("Engine.sampling_wake_ahead", "false"), Map.of())).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: Engine.sampling_wake_ahead (from system property -DEngine.sampling_wake_ahead) "
                        + "is not a known key; did you mean engine.sampling-wake-ahead?");
    }

    @Test
    void aMisspelledCommandLineKeyStopsStartUp() {
        Map<String, String> overrides = new HashMap<>(MODEL);
        overrides.put("server.prot", "80");
        assertThatThrownBy(() -> load(null, overrides, Map.of(), Map.of())).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: server.prot (from the command line) is not a known key; did you mean server.port?");
    }

    @Test
    void anUnknownKeyFarFromAnyNamesTheListAndSeveralAreAllNamedInOrder() throws IOException {
        Path file = yaml("""
                servre:
                  port: 8081
                engine:
                  warp-speed: 9
                """);
        Map<String, String> overrides = new HashMap<>(MODEL);
        overrides.put("limits.max-tokens.hard", "3");
        assertThatThrownBy(() -> load(file, overrides, Map.of("tracing", "on"), Map.of("LLMREF_AUTH_APIKEYS", "k")))
                .isInstanceOf(ConfigException.class)
                .hasMessage(String.join("\n",
                        "invalid configuration: limits.max-tokens.hard (from the command line) is not a known key; did you mean limits.max-tokens?",
                        "invalid configuration: tracing (from system property -Dtracing) is a section, not a key: name one of its keys, "
                                + "e.g. tracing.enabled",
                        "invalid configuration: auth.apikeys (from environment variable LLMREF_AUTH_APIKEYS) is not a known key; "
                                + "did you mean auth.api-keys (LLMREF_AUTH_API__KEYS)?",
                        "invalid configuration: engine.warp-speed (from file " + file + ") is not a known key; docs/server.md lists the keys",
                        "invalid configuration: servre.port (from file " + file + ") is not a known key; did you mean server.port?"));
    }

    @Test
    void inTheFileAKeyHoldsAValueAndASectionHoldsKeys() throws IOException {
        Path file = yaml("""
                server: localhost
                engine:
                  slots:
                    max: 4
                auth:
                  api-keys: [a, b]
                tracing:
                model:
                  path: /models/x.gguf
                """);
        assertThatThrownBy(() -> load(file, Map.of(), Map.of(), Map.of())).isInstanceOf(ConfigException.class)
                .hasMessage(String.join("\n",
                        "invalid configuration: auth.api-keys (from file " + file + ") must be a single value, not a list (keys are comma-separated)",
                        "invalid configuration: engine.slots (from file " + file + ") must be a single value, not a map (engine.slots.max)",
                        "invalid configuration: server (from file " + file + ") must be a section of keys (e.g. server.host), not a single value"));
    }

    @Test
    void aFileWithEveryKeyAndTheFlatAndEmptyFormsPasses() throws IOException {
        // application.yaml itself, as an operator's copy, with a dotted key and an empty section
        String defaults;
        try (var in = ServerConfig.class.getClassLoader().getResourceAsStream("application.yaml")) {
            defaults = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        }
        Path file = yaml(defaults.replace("path: \"\"", "path: /models/x.gguf").replace("  slots: 4\n", "") + "engine.slots: 6\n");
        ServerConfig c = ServerConfig.from(load(file, Map.of(), Map.of(), Map.of()));
        assertThat(c.engine().slots()).isEqualTo(6);
        assertThat(c.model().id()).isEqualTo("x");
        assertThat(c.limits().maxTokens()).isEqualTo(4096);
        Path partial = yaml("""
                model:
                  path: /models/y.gguf
                  id: y-model
                engine:
                tracing: {}
                """);
        assertThat(ServerConfig.from(load(partial, Map.of(), Map.of(), Map.of())).model().id()).isEqualTo("y-model");
    }

    @Test
    void aFileThatIsNotYamlIsAConfigurationError() throws IOException {
        Path file = yaml("engine:\n  slots: [4\n");
        assertThatThrownBy(() -> load(file, MODEL, Map.of(), Map.of())).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("invalid configuration: --config must name a valid YAML file (").hasMessageEndingWith(", got '" + file + "'");
    }

    @Test
    void aYamlErrorNamesItsLineButNeverQuotesTheFile() throws IOException {
        // the parser's own message quotes the offending line (here an API key) under a caret, over
        // several lines: that reached stderr, the pod's log
        String key = "sk-live-0123456789abcdefSECRET";
        for (String text : List.of("auth:\n  api-keys: \"" + key + "\n  api-keys-file: \"\"\n",
                "auth:\n  api-keys: " + key + ": x\n", "auth:\n  api-keys: [" + key + "\n")) {
            Path file = yaml(text);
            assertThatThrownBy(() -> load(file, MODEL, Map.of(), Map.of())).isInstanceOf(ConfigException.class)
                    .hasMessageStartingWith("invalid configuration: --config must name a valid YAML file (")
                    .hasMessageMatching("(?s)[^\n]* at line \\d+, column \\d+\\), got '" + Pattern.quote(file.toString()) + "'")
                    .message().doesNotContain(key).doesNotContain("sk-live").doesNotContain("\n");
        }
        assertThatThrownBy(() -> load(yaml("auth:\n  api-keys: " + key + ": x\n"), MODEL, Map.of(), Map.of()))
                .hasMessageContaining("(mapping values are not allowed here at line 2, column ");
    }

    @Test
    void otherSystemPropertiesAndVariablesAreNotTheServers() {
        Map<String, String> properties = new HashMap<>();
        System.getProperties().stringPropertyNames().forEach(n -> properties.put(n, System.getProperty(n)));
        properties.putAll(Map.of("java.version", "25", "user.dir", "/", "serverless.mode", "x", "models", "y", "engine.slots", "3"));
        Map<String, String> env = Map.of("PATH", "/bin", "HOME", "/root", "LLMREF", "x", "LLMREF_", "y", "LLMREFX_ENGINE_SLOT", "z",
                "llmref_engine_slot", "w", "LLMREF_LIMITS_MAX__TOKENS", "100");
        ServerConfig c = ServerConfig.from(load(null, MODEL, properties, env));
        assertThat(c.engine().slots()).isEqualTo(3);
        assertThat(c.limits().maxTokens()).isEqualTo(100);
        assertThat(bind(Map.of()).engine().slots()).as("this JVM's own properties and environment").isEqualTo(4);
    }

    @Test
    void theSourcesKeepTheirPrecedence() throws IOException {
        Path file = yaml("engine:\n  slots: 5\n  queue-capacity: 7\n  prefill-chunk: 9\n  batch-size: 100\n");
        Map<String, String> overrides = new HashMap<>(MODEL);
        overrides.put("engine.slots", "1");
        ServerConfig.Engine e = ServerConfig.from(load(file, overrides, Map.of("engine.slots", "2", "engine.queue-capacity", "3"),
                Map.of("LLMREF_ENGINE_SLOTS", "4", "LLMREF_ENGINE_QUEUE__CAPACITY", "5", "LLMREF_ENGINE_PREFILL__CHUNK", "6"))).engine();
        assertThat(List.of(e.slots(), e.queueCapacity(), e.prefillChunk(), e.batchSize())).containsExactly(1, 3, 6, 100);
    }

    // The list of keys: one place, each key the code reads, each in application.yaml.

    @Test
    void theKeysAreTheKeysTheCodeReads() {
        assertThat(new LinkedHashSet<>(ServerConfig.KEYS)).as("no key twice").hasSameSizeAs(ServerConfig.KEYS);
        assertThat(ServerConfig.keysRead(ServerConfig.load(null, MODEL))).containsExactlyInAnyOrderElementsOf(ServerConfig.KEYS);
    }

    @Test
    void theKeyLiteralsOfServerConfigAreTheKeys() throws IOException {
        Set<String> literals = new TreeSet<>();
        Matcher m = KEY_LITERAL.matcher(Files.readString(Path.of("src/main/java/ai/llmref/server/config/ServerConfig.java")));
        while (m.find()) {
            literals.add(m.group(1));
        }
        assertThat(literals).as("what the deploy module reads as the server's keys").containsExactlyInAnyOrderElementsOf(ServerConfig.KEYS);
    }

    @Test
    void applicationYamlHoldsEveryKeyAndNoOther() {
        Config defaults = Config.builder(ConfigSources.classpath("application.yaml").build())
                .disableEnvironmentVariablesSource().disableSystemPropertiesSource().build();
        List<String> leaves = new ArrayList<>();
        defaults.traverse().filter(n -> n.type() == Config.Type.VALUE).forEach(n -> leaves.add(n.key().toString()));
        assertThat(leaves).containsExactlyInAnyOrderElementsOf(ServerConfig.KEYS);
    }

    /** The scripts and the image pass keys as -D options and LLMREF_ variables: each must be known. */
    @Test
    void theKeysTheScriptsPassAreKnown() throws IOException {
        Pattern property = Pattern.compile("-D((?:server|model|engine|limits|auth|tracing)\\.[a-zA-Z0-9._-]*[a-zA-Z0-9])");
        Pattern variable = Pattern.compile("\\b(LLMREF_[A-Z0-9_]*[A-Z0-9])\\b");
        List<Path> files = new ArrayList<>();
        try (Stream<Path> scripts = Files.walk(Path.of("../scripts"))) {
            scripts.filter(f -> f.toString().endsWith(".sh")).forEach(files::add);
        }
        files.add(Path.of("../Dockerfile.cuda"));
        Set<String> seen = new TreeSet<>();
        for (Path f : files) {
            String text = Files.readString(f);
            for (Matcher m = property.matcher(text); m.find(); ) {
                seen.add(m.group(1));
            }
            for (Matcher m = variable.matcher(text); m.find(); ) {
                seen.add(ServerConfig.fromEnvironment(Map.of(m.group(1), "")).keySet().iterator().next());
            }
        }
        assertThat(seen).isNotEmpty().isSubsetOf(ServerConfig.KEYS);
    }

    /**
     * docs/server.md's configuration table is what operators read: it must list every key of
     * {@link ServerConfig#KEYS} and no other, each with the default application.yaml gives it (the
     * first word of the default column; {@code ""} for an empty string; model.path is required).
     */
    @Test
    void docsServerMdListsEveryKeyWithItsDefault() throws IOException {
        String doc = Files.readString(Path.of("../docs/server.md"));
        int start = doc.indexOf("\n## Configuration\n");
        assertThat(start).as("docs/server.md has a Configuration section").isPositive();
        int end = doc.indexOf("\n## ", start + 1);
        Config defaults = Config.builder(ConfigSources.classpath("application.yaml").build())
                .disableEnvironmentVariablesSource().disableSystemPropertiesSource().build();
        Pattern row = Pattern.compile("^\\| ((?:`[a-z.-]+`(?:, )?)+) \\| ([^|]+) \\|", Pattern.MULTILINE);
        Pattern key = Pattern.compile("`([a-z.-]+)`");
        Map<String, String> documented = new java.util.TreeMap<>();
        for (Matcher r = row.matcher(doc.substring(start, end < 0 ? doc.length() : end)); r.find(); ) {
            String value = r.group(2).strip().split(" ")[0].replace("`", "");
            for (Matcher k = key.matcher(r.group(1)); k.find(); ) {
                assertThat(documented.put(k.group(1), value)).as(k.group(1) + " listed once").isNull();
            }
        }
        assertThat(documented.keySet()).containsExactlyInAnyOrderElementsOf(ServerConfig.KEYS);
        documented.forEach((k, value) -> {
            String yaml = defaults.get(k).asString().get();
            String expected = k.equals("model.path") ? "(required)" : yaml.isEmpty() ? "\"\"" : yaml;
            assertThat(value).as("docs/server.md's default of " + k).isEqualTo(expected);
        });
    }

    static Config load(Path file, Map<String, String> overrides, Map<String, String> properties, Map<String, String> env) {
        return ServerConfig.load(file, overrides, properties, env);
    }

    private Path yaml(String text) throws IOException {
        Path f = Files.createTempFile(tmp, "config", ".yaml");
        Files.writeString(f, text);
        return f;
    }
}
