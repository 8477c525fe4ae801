package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A model's recommended sampling ({@code general.sampling.*} in its GGUF, written into stories260K's
 * metadata here) fills the fields a request leaves out, as llama-server applies it; a request's own
 * fields win; a value no request could send is left out; model.sampling-defaults none turns it off.
 */
class SamplingDefaultsTest {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static Path dir;

    @BeforeAll
    static void patch() throws Exception {
        dir = Files.createTempDirectory("sampling-defaults");
    }

    @AfterAll
    static void clean() throws Exception {
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    private static String text(TestServer s, ObjectNode body) throws Exception {
        HttpResponse<String> r = s.post("/v1/completions", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return MAPPER.readTree(r.body()).at("/choices/0/text").asText();
    }

    private static ObjectNode ask(long seed) {
        return MAPPER.createObjectNode().put("prompt", "Once upon a time, there was a").put("max_tokens", 24).put("seed", seed);
    }

    /** Outputs of seeds 1..4 for a request with {@code fields}. */
    private static Set<String> draws(TestServer s, String fields) throws Exception {
        Set<String> out = new HashSet<>();
        for (long seed = 1; seed <= 4; seed++) {
            ObjectNode b = ask(seed);
            b.setAll((ObjectNode) MAPPER.readTree(fields));
            out.add(text(s, b));
        }
        return out;
    }

    @Test
    void aRecommendedTemperatureFillsWhatTheRequestLeavesOut() throws Exception {
        Path model = GgufPatch.with(TestServer.model(), Map.of("general.sampling.temp", 0.0f), dir.resolve("temp0.gguf"));
        String greedy;
        try (TestServer s = TestServer.start(Map.of("model.path", model.toString()))) {
            greedy = text(s, ask(1).put("temperature", 0));
            assertThat(draws(s, "{}")).as("temperature 0 from the model: greedy whatever the seed").containsExactly(greedy);
            assertThat(draws(s, "{\"temperature\":1.5}")).as("the request's temperature wins").hasSizeGreaterThan(1);
        }
        try (TestServer s = TestServer.start(Map.of("model.path", model.toString(), "model.sampling-defaults", "none"))) {
            assertThat(draws(s, "{}")).as("none: the API's temperature 1").hasSizeGreaterThan(1);
        }
    }

    /**
     * The operator's defaults (model.sampling, llama-server's --temp and the like) fill what a
     * request leaves out, over the model's own recommendation; the request's fields still win.
     */
    @Test
    void theOperatorsDefaultsComeBeforeTheModelsAndAfterTheRequests() throws Exception {
        try (TestServer s = TestServer.start(Map.of("model.sampling", "{\"temperature\": 0}"))) {
            String greedy = text(s, ask(1).put("temperature", 0));
            assertThat(draws(s, "{}")).as("temperature 0 from the operator").containsExactly(greedy);
            assertThat(draws(s, "{\"temperature\":1.5}")).hasSizeGreaterThan(1);
        }
        Path model = GgufPatch.with(TestServer.model(), Map.of("general.sampling.temp", 0.0f), dir.resolve("temp0-op.gguf"));
        try (TestServer s = TestServer.start(Map.of("model.path", model.toString(), "model.sampling", "{\"temperature\": 1.5}"))) {
            assertThat(draws(s, "{}")).as("the operator's temperature over the model's 0").hasSizeGreaterThan(1);
        }
    }

    /** A model.sampling that no request could send stops start-up, naming the key and what is wrong. */
    @Test
    void aBadOperatorDefaultIsAConfigurationError() {
        for (String bad : new String[] {"not json", "[1]", "{\"seed\": 1}", "{\"temperature\": 7}", "{\"samplers\": [\"x\"]}",
                "{\"top_k\": \"many\"}"}) {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> TestServer.config(Map.of("model.sampling", bad))).as(bad)
                    .isInstanceOf(ai.llmref.server.config.ConfigException.class).hasMessageContaining("model.sampling");
        }
        assertThat(TestServer.config(Map.of("model.sampling", "{\"temperature\": 0.7, \"top_k\": 40, \"dry_multiplier\": 0.8}"))
                .model().sampling()).contains("top_k");
    }

    /**
     * The recommended order and top-k (llama.cpp's names, ';'-separated) apply together; a top_p
     * of 7, which no request could send, is left out (the server starts and serves); a request's
     * own order wins.
     */
    @Test
    void aRecommendedOrderAndCutApplyAndABadValueIsLeftOut() throws Exception {
        Path model = GgufPatch.with(TestServer.model(), Map.of("general.sampling.sequence", "top_k;temperature", "general.sampling.top_k", 1,
                "general.sampling.top_p", 7.0f), dir.resolve("topk1.gguf"));
        try (TestServer s = TestServer.start(Map.of("model.path", model.toString()))) {
            String greedy = text(s, ask(1).put("temperature", 0));
            assertThat(draws(s, "{\"temperature\":1.5}")).as("top_k 1 from the model: the best token").containsExactly(greedy);
            assertThat(draws(s, "{\"temperature\":1.5,\"samplers\":[\"temperature\"]}")).as("the request's order leaves top-k out")
                    .hasSizeGreaterThan(1);
            assertThat(draws(s, "{\"temperature\":1.5,\"top_k\":0}")).as("the request's top_k 0 turns it off").hasSizeGreaterThan(1);
        }
    }
}
