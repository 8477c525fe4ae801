package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.llmref.llama.Batch;
import ai.llmref.llama.ContextParams;
import ai.llmref.llama.LlamaContext;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Token log-probabilities (chat {@code logprobs}/{@code top_logprobs}, completions {@code logprobs}):
 * the values are the model's log-softmax, computed here again from the bindings' logits; streaming
 * and whole responses list the same tokens; a stop string cuts the tokens with the text; bad values
 * are 400s. With the CPU's settings and with the GPU's (text one step later, log-probabilities on two threads).
 */
class LogprobsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String PROMPT = "Once upon a time, there was a little dog named Max. He";

    /** With {@code gpuLike}: emit during decode and two sampling threads, as the auto settings pick with the model on a GPU. */
    static TestServer start(boolean gpuLike) throws InterruptedException {
        return TestServer.start(Map.of("engine.emit-during-decode", Boolean.toString(gpuLike), "engine.sampling-threads", gpuLike ? "2" : "1"));
    }

    @ParameterizedTest(name = "GPU-like settings {0}")
    @ValueSource(booleans = {false, true})
    void greedyLogprobsAreTheModelsLogSoftmax(boolean emitDuringDecode) throws Exception {
        int[] prompt;
        JsonNode lp;
        try (TestServer t = start(emitDuringDecode)) {
            JsonNode tok = JSON.readTree(t.post("/tokenize", JSON.writeValueAsString(Map.of("content", PROMPT, "add_special", true))).body());
            prompt = JSON.convertValue(tok.get("tokens"), int[].class);
            ObjectNode body = JSON.createObjectNode().put("max_tokens", 16).put("temperature", 0).put("logprobs", 5);
            ArrayNode ids = body.putArray("prompt");
            for (int id : prompt) {
                ids.add(id);
            }
            HttpResponse<String> r = t.post("/v1/completions", body.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            lp = JSON.readTree(r.body()).at("/choices/0/logprobs");
        }
        assertThat(lp.get("tokens")).hasSize(16);
        // the same positions decoded by the bindings, one token at a time, and log-softmax in double
        try (LlamaModel model = LlamaModel.load(TestServer.model(), ModelParams.defaults().withGpuLayers(TestServer.gpuLayers()));
             LlamaContext ctx = model.newContext(ContextParams.defaults().withContextSize(256).withBatch(256, 256).withThreads(2, 2));
             Batch batch = ctx.newBatch(256)) {
            for (int i = 0; i < prompt.length; i++) {
                batch.add(prompt[i], i, 0, i == prompt.length - 1);
            }
            ctx.decode(batch);
            int index = prompt.length - 1;
            for (int step = 0; step < 16; step++) {
                float[] logits = ctx.logits(index);
                double max = Double.NEGATIVE_INFINITY;
                int best = 0;
                for (int i = 0; i < logits.length; i++) {
                    if (logits[i] > max) {
                        max = logits[i];
                        best = i;
                    }
                }
                double sum = 0;
                for (float l : logits) {
                    sum += Math.exp(l - max);
                }
                double logZ = max + Math.log(sum);
                String text = model.vocabulary().tokenToPiece(best, false);
                assertThat(lp.get("tokens").get(step).asText()).as("token %d", step).isEqualTo(text);
                assertThat(lp.get("token_logprobs").get(step).asDouble()).as("logprob of token %d", step)
                        .isCloseTo(logits[best] - logZ, within(1e-3));
                JsonNode top = lp.get("top_logprobs").get(step);
                assertThat(top.size()).isBetween(4, 5); // 5 alternatives; two may print alike
                assertThat(top.get(text).asDouble()).isCloseTo(logits[best] - logZ, within(1e-3));
                double previous = 0;
                for (var it = top.properties().iterator(); it.hasNext(); ) {
                    double v = it.next().getValue().asDouble();
                    assertThat(v).as("alternatives, most likely first").isLessThanOrEqualTo(previous);
                    previous = v;
                }
                batch.clear();
                batch.add(best, prompt.length + step, 0, true);
                ctx.decode(batch);
                index = 0;
            }
        }
        assertThat(lp.get("text_offset").get(0).asInt()).isZero();
    }

    @ParameterizedTest(name = "GPU-like settings {0}")
    @ValueSource(booleans = {false, true})
    void streamingListsTheTokensOfTheWholeResponse(boolean emitDuringDecode) throws Exception {
        try (TestServer t = start(emitDuringDecode)) {
            String body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],\"max_tokens\":20,\"temperature\":0,"
                    + "\"logprobs\":true,\"top_logprobs\":2";
            JsonNode whole = JSON.readTree(t.post("/v1/chat/completions", body + "}").body()).at("/choices/0");
            JsonNode content = whole.at("/logprobs/content");
            assertThat(content).hasSize(20);
            assertThat(joinedBytes(content)).isEqualTo(whole.at("/message/content").asText().getBytes(StandardCharsets.UTF_8));
            for (JsonNode e : content) {
                assertThat(e.get("top_logprobs")).hasSize(2);
                assertThat(e.at("/top_logprobs/0/token").asText()).isEqualTo(e.get("token").asText());
                assertThat(e.at("/top_logprobs/0/logprob").asDouble()).isEqualTo(e.get("logprob").asDouble());
            }
            List<JsonNode> streamed = new ArrayList<>();
            StringBuilder text = new StringBuilder();
            for (String line : t.post("/v1/chat/completions", body + ",\"stream\":true}").body().split("\n")) {
                if (line.startsWith("data: {")) {
                    JsonNode choice = JSON.readTree(line.substring(6)).at("/choices/0");
                    text.append(choice.at("/delta/content").asText(""));
                    choice.at("/logprobs/content").forEach(streamed::add);
                }
            }
            assertThat(text.toString()).isEqualTo(whole.at("/message/content").asText());
            // the same tokens and alternatives; the second request reuses the first one's cached prompt,
            // and its last prompt token decoded alone moves the first logits in the last digits
            assertThat(streamed).hasSameSizeAs(content);
            for (int i = 0; i < streamed.size(); i++) {
                assertSameEntry(streamed.get(i), content.get(i));
                for (int k = 0; k < 2; k++) {
                    assertSameEntry(streamed.get(i).get("top_logprobs").get(k), content.get(i).get("top_logprobs").get(k));
                }
            }
        }
    }

    @ParameterizedTest(name = "GPU-like settings {0}")
    @ValueSource(booleans = {false, true})
    void aStopStringCutsTheTokensWithTheText(boolean emitDuringDecode) throws Exception {
        try (TestServer t = start(emitDuringDecode)) {
            String free = complete(t, "").at("/choices/0/text").asText();
            // a stop string in the middle of the greedy text, starting inside a token and at a token's start
            for (String stop : List.of(free.substring(free.indexOf(' ', 12) + 2, free.indexOf(' ', 12) + 5),
                    free.substring(free.indexOf(' ', 12), free.indexOf(' ', 12) + 4))) {
                JsonNode choice = complete(t, ",\"stop\":" + JSON.writeValueAsString(stop)).at("/choices/0");
                String text = choice.get("text").asText();
                assertThat(free).startsWith(text + stop);
                JsonNode tokens = choice.at("/logprobs/tokens");
                String joined = String.join("", JSON.convertValue(tokens, String[].class));
                // the tokens whose text the output contains: all of it, the last one perhaps in part
                assertThat(joined).as("stop %s", JSON.writeValueAsString(stop)).startsWith(text);
                String lastToken = tokens.get(tokens.size() - 1).asText();
                assertThat(joined.length() - lastToken.length()).isLessThan(text.length());
                assertThat(choice.at("/logprobs/text_offset/" + (tokens.size() - 1)).asInt()).isLessThan(text.length());
                assertThat(choice.at("/logprobs/token_logprobs")).hasSameSizeAs(tokens);
            }
        }
    }

    /** Over two prompt chunks (65 tokens each when the prompt's log-probabilities are wanted, {@code Engine.PROMPT_LOGPROBS_CHUNK}). */
    static final String LONG_PROMPT = PROMPT + " ran to the park with his friend Lily. They played with a big red ball all day, and then they"
            + " went home to eat. The next day the sun was warm, so they went to the lake and saw a duck swim"
            + " with her little ones";

    @ParameterizedTest(name = "GPU-like settings {0}")
    @ValueSource(booleans = {false, true})
    void echoGivesThePromptsTokensWithTheirLogprobs(boolean emitDuringDecode) throws Exception {
        JsonNode first;
        JsonNode again;
        int[] prompt;
        try (TestServer t = start(emitDuringDecode)) {
            prompt = JSON.convertValue(JSON.readTree(t.post("/tokenize", JSON.writeValueAsString(Map.of("content", LONG_PROMPT,
                    "add_special", true))).body()).get("tokens"), int[].class);
            assertThat(prompt.length).isGreaterThan(65);
            String body = "{\"prompt\":" + JSON.writeValueAsString(LONG_PROMPT) + ",\"max_tokens\":0,\"echo\":true,\"logprobs\":2}";
            first = JSON.readTree(t.post("/v1/completions", body).body());
            again = JSON.readTree(t.post("/v1/completions", body).body());
        }
        JsonNode choice = first.at("/choices/0");
        assertThat(choice.get("text").asText()).isEqualTo(LONG_PROMPT);
        assertThat(choice.get("finish_reason").asText()).isEqualTo("length");
        assertThat(first.at("/usage/completion_tokens").asInt()).isZero();
        assertThat(first.at("/usage/prompt_tokens").asInt()).isEqualTo(prompt.length);
        JsonNode lp = choice.get("logprobs");
        assertThat(lp.get("tokens")).hasSize(prompt.length);
        assertThat(lp.at("/token_logprobs/0").isNull()).as("nothing before the first token").isTrue();
        assertThat(lp.at("/top_logprobs/0").isNull()).isTrue();
        // the whole prompt is decoded again for its logits: the same answer, no cached tokens
        assertThat(again.at("/choices/0/logprobs")).isEqualTo(lp);
        assertThat(again.at("/usage/prompt_tokens_details/cached_tokens").asInt()).isZero();
        try (LlamaModel model = LlamaModel.load(TestServer.model(), ModelParams.defaults().withGpuLayers(TestServer.gpuLayers()));
             LlamaContext ctx = model.newContext(ContextParams.defaults().withContextSize(256).withBatch(256, 256).withThreads(2, 2));
             Batch batch = ctx.newBatch(256)) {
            for (int i = 0; i < prompt.length; i++) {
                batch.add(prompt[i], i, 0, true);
            }
            ctx.decode(batch);
            StringBuilder pieces = new StringBuilder();
            for (int i = 0; i < prompt.length; i++) {
                String piece = model.vocabulary().tokenToPiece(prompt[i], false);
                assertThat(lp.at("/tokens/" + i).asText()).isEqualTo(piece);
                // offsets into the echoed prompt: the pieces' own, less the space SentencePiece puts in front
                assertThat(lp.at("/text_offset/" + i).asInt()).isEqualTo(Math.max(0, pieces.length() - 1));
                pieces.append(piece);
                if (i > 0) {
                    double expected = logSoftmax(ctx.logits(i - 1), prompt[i]);
                    assertThat(lp.at("/token_logprobs/" + i).asDouble()).as("prompt token %d", i).isCloseTo(expected, within(1e-3));
                    assertThat(lp.at("/top_logprobs/" + i).size()).isBetween(1, 2);
                }
            }
            assertThat(pieces.toString()).isEqualTo(" " + LONG_PROMPT);
        }
    }

    @ParameterizedTest(name = "GPU-like settings {0}")
    @ValueSource(booleans = {false, true})
    void echoStreamsThePromptFirst(boolean emitDuringDecode) throws Exception {
        try (TestServer t = start(emitDuringDecode)) {
            String completion = complete(t, "").at("/choices/0/text").asText();
            for (String logprobs : List.of("", ",\"logprobs\":1")) {
                String body = "{\"prompt\":" + JSON.writeValueAsString(PROMPT) + ",\"max_tokens\":40,\"temperature\":0,\"echo\":true"
                        + logprobs;
                JsonNode whole = JSON.readTree(t.post("/v1/completions", body + "}").body()).at("/choices/0");
                assertThat(whole.get("text").asText()).isEqualTo(PROMPT + completion);
                StringBuilder text = new StringBuilder();
                List<JsonNode> tokens = new ArrayList<>();
                List<JsonNode> offsets = new ArrayList<>();
                List<String> chunks = new ArrayList<>();
                for (String line : t.post("/v1/completions", body + ",\"stream\":true}").body().split("\n")) {
                    if (line.startsWith("data: {")) {
                        JsonNode c = JSON.readTree(line.substring(6)).at("/choices/0");
                        chunks.add(c.get("text").asText());
                        text.append(c.get("text").asText());
                        c.at("/logprobs/tokens").forEach(tokens::add);
                        c.at("/logprobs/text_offset").forEach(offsets::add);
                    }
                }
                assertThat(chunks.getFirst()).as("the prompt comes first, whole").isEqualTo(PROMPT);
                assertThat(text.toString()).isEqualTo(PROMPT + completion);
                if (logprobs.isEmpty()) {
                    assertThat(whole.get("logprobs").isNull()).isTrue();
                } else {
                    assertThat(tokens).containsExactlyElementsOf(whole.at("/logprobs/tokens"));
                    assertThat(offsets).containsExactlyElementsOf(whole.at("/logprobs/text_offset"));
                    // the completion's tokens start where the prompt ends
                    int promptTokens = JSON.readTree(t.post("/tokenize", JSON.writeValueAsString(Map.of("content", PROMPT, "add_special", true)))
                            .body()).get("tokens").size();
                    assertThat(offsets.get(promptTokens).asInt()).isEqualTo(PROMPT.length());
                }
            }
        }
    }

    @Test
    void sampledTokensAndBadValues() throws Exception {
        try (TestServer t = TestServer.start()) {
            JsonNode sampled = JSON.readTree(t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                    + "\"max_tokens\":12,\"temperature\":1.5,\"seed\":7,\"logprobs\":true,\"top_logprobs\":1}").body());
            for (JsonNode e : sampled.at("/choices/0/logprobs/content")) {
                assertThat(e.get("logprob").asDouble()).isLessThanOrEqualTo(e.at("/top_logprobs/0/logprob").asDouble());
            }
            assertThat(sampled.at("/choices/0/logprobs/content")).hasSize(sampled.at("/usage/completion_tokens").asInt());
            JsonNode without = JSON.readTree(t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                    + "\"max_tokens\":2,\"logprobs\":false}").body());
            assertThat(without.at("/choices/0/logprobs").isNull()).isTrue();
            String chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],";
            assertError(t, "/v1/chat/completions", chat + "\"logprobs\":\"yes\"}", "invalid_request", "logprobs");
            assertError(t, "/v1/chat/completions", chat + "\"logprobs\":true,\"top_logprobs\":21}", "invalid_value", "top_logprobs");
            assertError(t, "/v1/chat/completions", chat + "\"top_logprobs\":2}", "invalid_request", "top_logprobs");
            assertError(t, "/v1/completions", "{\"prompt\":\"x\",\"logprobs\":6}", "invalid_value", "logprobs");
            assertError(t, "/v1/completions", "{\"prompt\":\"x\",\"logprobs\":true}", "invalid_request", "logprobs");
            assertError(t, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":0}", "invalid_value", "max_tokens");
            assertError(t, "/v1/completions", "{\"prompt\":\"x\",\"echo\":1}", "invalid_request", "echo");
            assertThat(t.post("/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2}").statusCode()).as("still serving").isEqualTo(200);
        }
    }

    static double logSoftmax(float[] logits, int token) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp(l - max);
        }
        return logits[token] - max - Math.log(sum);
    }

    static JsonNode complete(TestServer t, String extra) throws Exception {
        HttpResponse<String> r = t.post("/v1/completions", "{\"prompt\":" + JSON.writeValueAsString(PROMPT)
                + ",\"max_tokens\":40,\"temperature\":0,\"logprobs\":0" + extra + "}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    static void assertError(TestServer t, String route, String body, String code, String param) throws Exception {
        HttpResponse<String> r = t.post(route, body);
        assertThat(r.statusCode()).as(body).isEqualTo(400);
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e.get("code").asText()).as(body).isEqualTo(code);
        assertThat(e.get("param").asText()).as(body).isEqualTo(param);
    }

    static void assertSameEntry(JsonNode a, JsonNode b) {
        assertThat(a.get("token")).isEqualTo(b.get("token"));
        assertThat(a.get("bytes")).isEqualTo(b.get("bytes"));
        assertThat(a.get("logprob").asDouble()).isCloseTo(b.get("logprob").asDouble(), within(1e-4));
    }

    static byte[] joinedBytes(JsonNode content) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (JsonNode e : content) {
            e.get("bytes").forEach(b -> out.write(b.asInt()));
        }
        return out.toByteArray();
    }
}
