package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.llama.ContextParams;
import ai.llmref.llama.ModelParams;
import ai.llmref.server.config.ConfigException;
import ai.llmref.server.config.ServerConfig;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Configuration binds to validated records; an invalid value names the key and the rule. */
class ConfigTest {

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
        assertThatThrownBy(() -> bind(Map.of("engine.emit-during-decode", "sometimes"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.emit-during-decode must be one of [auto, true, false], got 'sometimes'");
        ServerConfig.Engine auto = bind(Map.of()).engine();
        assertThat(auto.emitDuringDecode()).isEqualTo(ServerConfig.OnGpu.AUTO);
        assertThat(auto.emitDuringDecode().on(true)).isTrue();
        assertThat(auto.emitDuringDecode().on(false)).as("on CPU the decode returns when done: nothing to overlap").isFalse();
        for (boolean onGpu : new boolean[] {true, false}) {
            assertThat(bind(Map.of("engine.emit-during-decode", "TRUE")).engine().emitDuringDecode().on(onGpu)).isTrue();
            assertThat(bind(Map.of("engine.emit-during-decode", "false")).engine().emitDuringDecode().on(onGpu)).isFalse();
        }
    }

    @Test
    void samplingWakeAheadIsOnWithTheModelOnAGpuUnlessSet() {
        assertThatThrownBy(() -> bind(Map.of("engine.sampling-wake-ahead", "early"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.sampling-wake-ahead must be one of [auto, true, false], got 'early'");
        ServerConfig.Engine auto = bind(Map.of()).engine();
        assertThat(auto.samplingWakeAhead()).isEqualTo(ServerConfig.OnGpu.AUTO);
        assertThat(auto.samplingWakeAhead().on(true)).isTrue();
        assertThat(auto.samplingWakeAhead().on(false)).as("on CPU the decode returns when done: nothing to wake ahead of").isFalse();
        assertThat(bind(Map.of("engine.sampling-wake-ahead", "false")).engine().samplingWakeAhead().on(true)).isFalse();
        assertThat(bind(Map.of("engine.sampling-wake-ahead", "true")).engine().samplingWakeAhead().on(false)).isTrue();
    }

    @Test
    void invalidValuesNameTheKeyAndTheRule() {
        assertThatThrownBy(() -> bind(Map.of("engine.slots", "0"))).isInstanceOf(ConfigException.class)
                .hasMessage("invalid configuration: engine.slots must be between 1 and 256, got '0'");
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
}
