package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code suffix} on /v1/completions (fill in the middle): stories260K with fill-in-the-middle
 * token ids written into its metadata (three byte tokens stand for a code model's prefix, suffix
 * and middle tokens; the model's weights are unchanged). The prompt the server makes is checked
 * against the same prompt given as token ids: the same greedy text.
 */
class FillInTheMiddleTest {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final int PRE = 4;
    private static final int SUF = 5;
    private static final int MID = 6;
    private static TestServer server;
    private static Path dir;

    @BeforeAll
    static void start() throws Exception {
        dir = Files.createTempDirectory("fim");
        Path model = GgufPatch.withUint32(TestServer.model(), Map.of("tokenizer.ggml.fim_pre_token_id", PRE,
                "tokenizer.ggml.fim_suf_token_id", SUF, "tokenizer.ggml.fim_mid_token_id", MID), dir.resolve("stories-fim.gguf"));
        server = TestServer.start(Map.of("model.path", model.toString()));
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    private static JsonNode complete(ObjectNode body) throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return MAPPER.readTree(r.body());
    }

    private static int[] tokens(String text) throws Exception {
        HttpResponse<String> r = server.post("/tokenize", MAPPER.createObjectNode().put("content", text).put("add_special", false).toString());
        JsonNode t = MAPPER.readTree(r.body()).get("tokens");
        int[] out = new int[t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.get(i).asInt();
        }
        return out;
    }

    /** BOS, prefix token, the prompt, suffix token, the suffix, middle token: as llama-server's /infill lays it out. */
    @Test
    void theSuffixMakesAFillInTheMiddlePrompt() throws Exception {
        String prefix = "Once upon a time, there was a";
        String suffix = " They were happy. The end.";
        ObjectNode fim = MAPPER.createObjectNode().put("prompt", prefix).put("suffix", suffix).put("max_tokens", 16).put("temperature", 0);
        JsonNode out = complete(fim);
        int[] p = tokens(prefix);
        int[] s = tokens(suffix);
        assertThat(out.at("/usage/prompt_tokens").asInt()).isEqualTo(1 + 1 + p.length + 1 + s.length + 1);
        ArrayNode ids = MAPPER.createArrayNode();
        ids.add(1).add(PRE); // stories260K adds BOS 1
        for (int t : p) {
            ids.add(t);
        }
        ids.add(SUF);
        for (int t : s) {
            ids.add(t);
        }
        ids.add(MID);
        ObjectNode same = MAPPER.createObjectNode().put("max_tokens", 16).put("temperature", 0);
        same.set("prompt", ids);
        String text = out.at("/choices/0/text").asText();
        assertThat(text).isNotEmpty().isEqualTo(complete(same).at("/choices/0/text").asText());
        ObjectNode plain = MAPPER.createObjectNode().put("prompt", prefix).put("max_tokens", 16).put("temperature", 0);
        assertThat(complete(plain).at("/usage/prompt_tokens").asInt()).as("without a suffix: the prompt alone").isEqualTo(1 + p.length);
        // token ids as the prompt, a batch of prompts, streamed: the same insertion
        ObjectNode byIds = fim.deepCopy();
        ArrayNode prefixIds = byIds.putArray("prompt");
        for (int t : p) {
            prefixIds.add(t);
        }
        assertThat(complete(byIds).at("/choices/0/text").asText()).isEqualTo(text);
        ObjectNode batch = fim.deepCopy();
        batch.putArray("prompt").add(prefix).add(prefix);
        JsonNode two = complete(batch);
        assertThat(two.at("/choices/0/text").asText()).isEqualTo(text);
        assertThat(two.at("/choices/1/text").asText()).isEqualTo(text);
        HttpResponse<String> streamed = server.post("/v1/completions", fim.deepCopy().put("stream", true).toString());
        StringBuilder sb = new StringBuilder();
        for (String line : streamed.body().split("\n")) {
            if (line.startsWith("data: {")) {
                sb.append(MAPPER.readTree(line.substring(6)).at("/choices/0/text").asText());
            }
        }
        assertThat(sb.toString()).isEqualTo(text);
    }

    @Test
    void echoWithASuffixIsRefused() throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", "{\"prompt\":\"Once\",\"suffix\":\" end\",\"echo\":true,\"max_tokens\":2}");
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(MAPPER.readTree(r.body()).at("/error/param").asText()).isEqualTo("echo");
    }

    /** A model without fill-in-the-middle tokens refuses a suffix (an empty one is no suffix). */
    @Test
    void aModelWithoutTheTokensRefusesASuffix() throws Exception {
        try (TestServer plain = TestServer.start(Map.of())) {
            HttpResponse<String> r = plain.post("/v1/completions", "{\"prompt\":\"Once\",\"suffix\":\" end\",\"max_tokens\":2}");
            assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
            assertThat(MAPPER.readTree(r.body()).at("/error/param").asText()).isEqualTo("suffix");
            assertThat(MAPPER.readTree(r.body()).at("/error/message").asText()).contains("fill-in-the-middle");
            assertThat(plain.post("/v1/completions", "{\"prompt\":\"Once\",\"suffix\":\"\",\"max_tokens\":2}").statusCode()).isEqualTo(200);
        }
    }
}
