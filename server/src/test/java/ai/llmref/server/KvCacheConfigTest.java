package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.http.HttpResponse;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * engine.kv-cache-type-k/-v reach the generation context, and what the model and the contexts hold
 * is reported per buffer (metrics) and in total (readiness), with the bytes the types imply. The
 * quantized types are exercised in the bindings' KvCacheTest (stories260K's 8-wide heads fit no
 * quantized block; StartupFaultsTest shows the server refusing them with llama.cpp's reason).
 */
class KvCacheConfigTest {
    static final ObjectMapper JSON = new ObjectMapper();
    /** 2 slots x 1024 positions x 5 layers x 32 K and 32 V values: 1.25 MiB at 2 bytes a value. */
    static final long F16_KV_BYTES = 2L * 1024 * 5 * (32 + 32) * 2;

    static Map<String, String> settings(String typeK, String typeV) {
        return Map.of("engine.slots", "2", "engine.slot-context", "1024", "engine.embeddings", "false",
                "engine.kv-cache-type-k", typeK, "engine.kv-cache-type-v", typeV);
    }

    @Test
    void theTypesReachTheContextAndItsMemoryIsReported() throws Exception {
        String defaultText;
        try (TestServer f16 = TestServer.start(Map.of("engine.slots", "2", "engine.slot-context", "1024", "engine.embeddings", "false"))) {
            String m = OperabilityTest.scrape(f16.http, f16.admin());
            assertThat(kvBytes(m)).isEqualTo(F16_KV_BYTES);
            assertThat(m).contains("llmref_kv_cache_type_info{type_k=\"f16\",type_v=\"f16\"} 1");
            defaultText = complete(f16);
        }
        try (TestServer f32 = TestServer.start(settings("F32", "f32"))) {
            String m = OperabilityTest.scrape(f32.http, f32.admin());
            assertThat(kvBytes(m)).as("F32 holds twice the bytes of F16").isEqualTo(2 * F16_KV_BYTES);
            assertThat(m).contains("llmref_kv_cache_type_info{type_k=\"f32\",type_v=\"f32\"} 1")
                    .containsPattern("(?m)^llmref_context_buffer_bytes\\{context=\"generation\",kind=\"compute\",buffer=\"[^\"]+\"\\} [1-9]")
                    .containsPattern("(?m)^llmref_model_buffer_bytes\\{buffer=\"[^\"]+\"\\} [1-9]");
            JsonNode memory = JSON.readTree(f32.getAdmin("/health/ready").body()).get("memory");
            assertThat(memory.get("kv_cache_type_k").asText()).isEqualTo("f32");
            assertThat(memory.get("kv_cache_type_v").asText()).isEqualTo("f32");
            assertThat(memory.get("kv_cache_bytes").asLong()).isEqualTo(2 * F16_KV_BYTES);
            assertThat(memory.get("compute_bytes").asLong()).isPositive();
            assertThat(memory.get("model_bytes").asLong()).as("stories260K's weights").isBetween(1_000_000L, 1_300_000L);
            // the full-precision cache gives this model the same greedy story
            assertThat(complete(f32)).isEqualTo(defaultText);
        }
        try (TestServer mixed = TestServer.start(settings("bf16", "f16"))) {
            String m = OperabilityTest.scrape(mixed.http, mixed.admin());
            assertThat(kvBytes(m)).isEqualTo(F16_KV_BYTES);
            assertThat(m).contains("llmref_kv_cache_type_info{type_k=\"bf16\",type_v=\"f16\"} 1");
            assertThat(complete(mixed)).isNotEmpty();
        }
    }

    /** The generation context's KV bytes, all buffers together. */
    static long kvBytes(String metrics) {
        return metrics.lines().filter(l -> l.startsWith("llmref_context_buffer_bytes{context=\"generation\",kind=\"kv\","))
                .mapToLong(l -> (long) Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).sum();
    }

    static String complete(TestServer t) throws Exception {
        HttpResponse<String> r = t.post("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}");
        assertThat(r.statusCode()).isEqualTo(200);
        return JSON.readTree(r.body()).get("choices").get(0).get("text").asText();
    }
}
