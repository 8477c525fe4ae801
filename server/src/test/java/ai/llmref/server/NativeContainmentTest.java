package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.Vocabulary;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Values a client controls that reach llama.cpp, at and past their limits, through HTTP: each is
 * answered (200 or a 4xx in the OpenAI error shape), never a 5xx, never an abort, and the server
 * keeps generating afterwards. docs/reliability.md ("Native crash containment") maps each llama.cpp
 * abort path to the check that closes it and to the test here or in the bindings that covers it.
 */
class NativeContainmentTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static TestServer server;
    static Vocabulary vocab;

    @BeforeAll
    static void start() throws Exception {
        server = TestServer.start(Map.of("engine.slots", "4"));
        vocab = server.server.readyModel().model().vocabulary();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    /** After every case: no slot left busy, and a greedy request still gives the same text. */
    @AfterEach
    void serverStillServes() throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (server.server.engine().stats().busySlots() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(server.server.engine().stats().busySlots()).as("slots free").isZero();
        assertThat(text(ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}")))
                .isEqualTo(text(ok("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}")))
                .isNotBlank();
    }

    /** No max_tokens, end of generation banned: generation runs into the end of the slot's context. */
    @Test
    void contextExhaustionMidStreamEndsWithLengthAndTheSlotIsReused() throws Exception {
        String ban = "\"logit_bias\":{\"" + vocab.eos() + "\":-100}";
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < 4; i++) { // every slot at once: the whole KV cache fills
            String body = "{\"prompt\":\"Once upon a time " + i + "\",\"temperature\":0," + ban
                    + (i % 2 == 0 ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "") + "}";
            all.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return server.post("/v1/completions", body);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }));
        }
        for (int i = 0; i < 4; i++) {
            HttpResponse<String> r = all.get(i).get();
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode last;
            if (i % 2 == 0) {
                List<String> events = CompletionsTest.sse(r.body());
                assertThat(events.getLast()).isEqualTo("[DONE]");
                assertThat(events).noneMatch(e -> e.contains("\"error\""));
                assertThat(JSON.readTree(events.get(events.size() - 3)).at("/choices/0/finish_reason").asText()).isEqualTo("length");
                last = JSON.readTree(events.get(events.size() - 2));
            } else {
                last = JSON.readTree(r.body());
                assertThat(last.at("/choices/0/finish_reason").asText()).isEqualTo("length");
            }
            // prompt + generated fill the slot's positions exactly
            assertThat(last.at("/usage/prompt_tokens").asInt() + last.at("/usage/completion_tokens").asInt())
                    .isEqualTo(TestServer.SLOT_CONTEXT);
        }
        // the full slots are reused: the same request again (its prefix cached to the end) gives the same text
        String again = "{\"prompt\":\"Once upon a time 1\",\"temperature\":0," + ban + "}";
        assertThat(text(ok("/v1/completions", again))).isEqualTo(text(JSON.readTree(all.get(1).get().body())));
    }

    @Test
    void tokenIdsAtTheVocabularyBoundary() throws Exception {
        int n = vocab.size();
        assertThat(server.post("/v1/completions", "{\"prompt\":[1," + (n - 1) + "],\"max_tokens\":2}").statusCode()).isEqualTo(200);
        for (String bad : new String[] {Integer.toString(n), "-1", "2147483648", "1.5", "\"7\""}) {
            BadRequestTest.assertError(server.post("/v1/completions", "{\"prompt\":[1," + bad + "],\"max_tokens\":2}"), 400,
                    "invalid_value", "prompt");
            assertThat(server.post("/detokenize", "{\"tokens\":[" + bad + "]}").statusCode()).as("detokenize " + bad).isEqualTo(400);
        }
        for (String bad : new String[] {Integer.toString(n), "-1", "2147483648", "99999999999"}) {
            BadRequestTest.assertError(server.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":2,\"logit_bias\":{\"" + bad
                    + "\":5}}"), 400, "invalid_value", "logit_bias");
        }
        // control and byte tokens detokenize (to nothing or raw bytes), an empty list to ""
        String all = IntStream.range(0, n).mapToObj(Integer::toString).collect(Collectors.joining(","));
        assertThat(ok("/detokenize", "{\"tokens\":[" + all + "]}").get("content").isTextual()).isTrue();
        assertThat(ok("/detokenize", "{\"tokens\":[]}").get("content").asText()).isEmpty();
        assertThat(ok("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":2,\"logit_bias\":{\"" + (n - 1) + "\":100}}")
                .at("/usage/completion_tokens").asInt()).isEqualTo(2);
    }

    @Test
    void promptsAtTheContextLimit() throws Exception {
        // an empty text prompt is just BOS; an empty token list is refused before the engine
        assertThat(ok("/v1/completions", "{\"prompt\":\"\",\"max_tokens\":3}").at("/usage/prompt_tokens").asInt()).isEqualTo(1);
        BadRequestTest.assertError(server.post("/v1/completions", "{\"prompt\":[],\"max_tokens\":3}"), 400, "invalid_request", "prompt");
        // a prompt that leaves exactly one position generates one token; one that fills the slot is refused
        int[] fill = IntStream.range(0, TestServer.SLOT_CONTEXT).map(i -> 100 + i % 50).toArray();
        String justFits = java.util.Arrays.stream(fill, 0, TestServer.SLOT_CONTEXT - 1).mapToObj(Integer::toString).collect(Collectors.joining(","));
        JsonNode one = ok("/v1/completions", "{\"prompt\":[" + justFits + "],\"temperature\":0,\"logit_bias\":{\"" + vocab.eos() + "\":-100}}");
        assertThat(one.at("/usage/completion_tokens").asInt()).isEqualTo(1);
        assertThat(one.at("/choices/0/finish_reason").asText()).isEqualTo("length");
        String full = java.util.Arrays.stream(fill).mapToObj(Integer::toString).collect(Collectors.joining(","));
        BadRequestTest.assertError(server.post("/v1/completions", "{\"prompt\":[" + full + "]}"), 400, "context_length_exceeded", "prompt");
        String chatTooLong = "{\"messages\":[{\"role\":\"user\",\"content\":\"" + "Once upon a time ".repeat(80) + "\"}]}";
        BadRequestTest.assertError(server.post("/v1/chat/completions", chatTooLong), 400, "context_length_exceeded", "messages");
    }

    /** Regression: a grammar that the bans leave without any allowed token was a 500. */
    @Test
    void jsonModeWithEveryOpeningTokenBannedIsA400NotA500() throws Exception {
        String bans = IntStream.range(0, vocab.size()).filter(t -> vocab.tokenToPiece(t, true).startsWith("{"))
                .mapToObj(t -> "\"" + t + "\":-100").collect(Collectors.joining(","));
        assertThat(bans).isNotEmpty();
        for (String stream : new String[] {"false", "true"}) {
            HttpResponse<String> r = server.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                    + "\"max_tokens\":5,\"stream\":" + stream + ",\"response_format\":{\"type\":\"json_object\"},\"logit_bias\":{" + bans + "}}");
            BadRequestTest.assertError(r, 400, "invalid_request", null);
            assertThat(r.body()).contains("leave no token");
        }
    }

    /**
     * Regression: a temperature so small that the logits overflow made llama.cpp's softmax NaN, and
     * its sampler fell back to the last token of the vocabulary (an assertion in a debug build).
     */
    @Test
    void tinyTemperaturesSampleLikeGreedy() throws Exception {
        String greedy = text(ok("/v1/completions", "{\"prompt\":\"The cat\",\"max_tokens\":12,\"temperature\":0}"));
        for (String t : new String[] {"1e-40", "1e-30", "1e-7"}) {
            assertThat(text(ok("/v1/completions", "{\"prompt\":\"The cat\",\"max_tokens\":12,\"temperature\":" + t + ",\"seed\":3}")))
                    .as("temperature " + t).isEqualTo(greedy);
        }
    }

    @Test
    void samplerSettingsAtTheirLimits() throws Exception {
        String all = IntStream.range(0, vocab.size()).mapToObj(t -> "\"" + t + "\":-100").collect(Collectors.joining(","));
        BadRequestTest.assertError(server.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3,\"temperature\":1,\"logit_bias\":{"
                + all + "}}"), 400, "invalid_value", "logit_bias");
        String most = IntStream.range(0, 300).mapToObj(t -> "\"" + t + "\":-1").collect(Collectors.joining(","));
        assertThat(ok("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3,\"temperature\":1,\"logit_bias\":{" + most + "}}")
                .at("/usage/completion_tokens").asInt()).as("300 biased tokens, OpenAI's limit").isBetween(1, 3);
        for (String settings : new String[] {
            "\"temperature\":2,\"top_k\":2147483647,\"top_p\":0,\"min_p\":1,\"seed\":-1",
            "\"temperature\":1,\"top_k\":1,\"top_p\":1,\"min_p\":0,\"seed\":9223372036854775807",
            "\"temperature\":1.5,\"presence_penalty\":2,\"frequency_penalty\":-2,\"seed\":0",
            "\"temperature\":0,\"presence_penalty\":-2,\"frequency_penalty\":2",
        }) {
            JsonNode r = ok("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":6," + settings + "}");
            assertThat(r.at("/usage/completion_tokens").asInt()).as(settings).isBetween(1, 6);
        }
    }

    @Test
    void tokenizerAndTemplateInputs() throws Exception {
        // NUL, a lone surrogate (escaped JSON), special-token text, a long text: tokenized, not parsed as control
        for (String content : new String[] {"a\\u0000b", "x\\ud800y", "<s></s><unk>", "\\u00e9\\u4e2d\\ud83d\\ude00",
                "Once upon a time ".repeat(2000)}) {
            assertThat(ok("/tokenize", "{\"content\":\"" + content + "\",\"with_pieces\":true}").get("tokens").isArray()).isTrue();
            HttpResponse<String> chat = server.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\""
                    + content + "\"}],\"max_tokens\":2}");
            assertThat(chat.statusCode()).as(chat.body()).isIn(200, 400);
            if (chat.statusCode() == 400) {
                assertThat(JSON.readTree(chat.body()).at("/error/code").asText()).isEqualTo("context_length_exceeded");
            }
        }
    }

    @Test
    void embeddingInputsAtTheirLimits() throws Exception {
        assertThat(ok("/v1/embeddings", "{\"input\":\"\"}").at("/data/0/embedding").size()).isPositive();
        BadRequestTest.assertError(server.post("/v1/embeddings", "{\"input\":\"" + "Once upon a time ".repeat(100) + "\"}"), 400,
                "context_length_exceeded", null);
        String many = IntStream.range(0, 257).mapToObj(i -> "\"x\"").collect(Collectors.joining(","));
        BadRequestTest.assertError(server.post("/v1/embeddings", "{\"input\":[" + many + "]}"), 400, "invalid_request", "input");
        BadRequestTest.assertError(server.post("/v1/embeddings", "{\"input\":[]}"), 400, "invalid_request", "input");
    }

    /**
     * llama.cpp's built-in template renderer takes C strings: a NUL in a message would cut it short,
     * so it is refused (400); with embeddings switched off, /v1/embeddings is a 400 and no
     * embeddings context exists to misuse.
     */
    @Test
    void builtinTemplateModeAndEmbeddingsOff() throws Exception {
        try (TestServer t = TestServer.start(Map.of("model.chat-template", ai.llmref.server.chat.ChatTemplateRenderer.defaultTemplate(),
                "model.chat-template-mode", "builtin", "engine.embeddings", "false", "engine.slots", "1"))) {
            HttpResponse<String> nul = t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}],"
                    + "\"max_tokens\":2}");
            BadRequestTest.assertError(nul, 400, "chat_template_error", "messages");
            HttpResponse<String> fine = t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"ab\"}],\"max_tokens\":2}");
            assertThat(fine.statusCode()).as(fine.body()).isEqualTo(200);
            BadRequestTest.assertError(t.post("/v1/embeddings", "{\"input\":\"a cat\"}"), 400, "invalid_request", null);
        }
    }

    static JsonNode ok(String path, String body) throws Exception {
        HttpResponse<String> r = server.post(path, body);
        assertThat(r.statusCode()).as(path + " " + r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    static String text(JsonNode completion) {
        return completion.at("/choices/0/text").asText();
    }
}
