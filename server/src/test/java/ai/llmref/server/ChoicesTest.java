package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code n} choices per request, each generated in a slot of its own: whole and streamed answers
 * (chunks carry their choice's index), usage over all of them, seeds moved on per choice, log-
 * probabilities per choice, all slots freed when the client leaves, batches of prompts (completions), and
 * more choices than slots waiting in the queue.
 */
class ChoicesTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static TestServer server;

    @BeforeAll
    static void start() throws Exception {
        // 4 sampling threads: the choices' seeded chains are drawn on the pool's threads together,
        // and must still give each choice exactly its single answer
        server = TestServer.start(Map.of("engine.sampling-threads", "4"));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static String chat(String extra) {
        return "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story.\"}],\"max_tokens\":24" + extra + "}";
    }

    static JsonNode post(String route, String body) throws Exception {
        HttpResponse<String> r = server.post(route, body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    @Test
    void greedyChoicesAreTheSingleAnswerAndUsageCountsThemAll() throws Exception {
        JsonNode one = post("/v1/chat/completions", chat(",\"temperature\":0"));
        JsonNode three = post("/v1/chat/completions", chat(",\"temperature\":0,\"n\":3"));
        assertThat(three.get("choices")).hasSize(3);
        for (int i = 0; i < 3; i++) {
            JsonNode c = three.get("choices").get(i);
            assertThat(c.get("index").asInt()).isEqualTo(i);
            assertThat(c.at("/message/content").asText()).isEqualTo(one.at("/choices/0/message/content").asText());
            assertThat(c.get("finish_reason").asText()).isEqualTo(one.at("/choices/0/finish_reason").asText());
        }
        assertThat(three.at("/usage/prompt_tokens").asInt()).as("the prompt once").isEqualTo(one.at("/usage/prompt_tokens").asInt());
        assertThat(three.at("/usage/completion_tokens").asInt()).isEqualTo(3 * one.at("/usage/completion_tokens").asInt());
        JsonNode legacy = post("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0,\"n\":2,\"logprobs\":1}");
        assertThat(legacy.get("choices")).hasSize(2);
        assertThat(legacy.at("/choices/1/text").asText()).isEqualTo(legacy.at("/choices/0/text").asText());
        assertThat(legacy.at("/choices/1/logprobs/tokens")).hasSize(8).isEqualTo(legacy.at("/choices/0/logprobs/tokens"));
    }

    @Test
    void seededChoicesDifferAndRepeat() throws Exception {
        String body = chat(",\"temperature\":1.5,\"seed\":42,\"n\":4");
        JsonNode a = post("/v1/chat/completions", body);
        JsonNode b = post("/v1/chat/completions", body);
        List<String> texts = a.get("choices").valueStream().map(c -> c.at("/message/content").asText()).toList();
        assertThat(texts).as("seed, seed+1, ...: four different answers").doesNotHaveDuplicates();
        assertThat(b.get("choices").valueStream().map(c -> c.at("/message/content").asText()).toList()).as("and the same again").isEqualTo(texts);
        // choice i is the single answer with seed 42 + i
        String third = post("/v1/chat/completions", chat(",\"temperature\":1.5,\"seed\":44")).at("/choices/0/message/content").asText();
        assertThat(texts.get(2)).isEqualTo(third);
    }

    @Test
    void seedsWrapBelowLlamaCppsRandomSeed() throws Exception {
        // 4294967295 (what -1 reduces to) is llama.cpp's "draw a random seed": the seeds of later
        // choices wrap below it (4294967294 + 1 is 0), and a request's -1 means random, as in
        // llama-server; neither is a refusal, nor an error event inside a 200 stream
        JsonNode wrapped = post("/v1/chat/completions", chat(",\"temperature\":1.5,\"seed\":4294967294,\"n\":2"));
        String zero = post("/v1/chat/completions", chat(",\"temperature\":1.5,\"seed\":0")).at("/choices/0/message/content").asText();
        assertThat(wrapped.at("/choices/1/message/content").asText()).isEqualTo(zero);
        assertThat(post("/v1/chat/completions", chat(",\"temperature\":1.5,\"seed\":-1,\"n\":3")).get("choices")).hasSize(3);
        String events = server.post("/v1/chat/completions", chat(",\"temperature\":1.5,\"seed\":-1,\"n\":3,\"stream\":true")).body();
        assertThat(events).doesNotContain("\"error\"").endsWith("data: [DONE]\n\n");
    }

    @Test
    void streamedChoicesCarryTheirIndexAndEqualTheWholeAnswer() throws Exception {
        JsonNode whole = post("/v1/chat/completions", chat(",\"temperature\":1.5,\"seed\":7,\"n\":3"));
        String events = server.post("/v1/chat/completions", chat(",\"temperature\":1.5,\"seed\":7,\"n\":3,\"stream\":true,"
                + "\"stream_options\":{\"include_usage\":true}")).body();
        Map<Integer, StringBuilder> text = new HashMap<>();
        Map<Integer, Integer> roles = new HashMap<>();
        Map<Integer, String> finish = new HashMap<>();
        JsonNode usage = null;
        int done = 0;
        for (String line : events.split("\n")) {
            if (line.equals("data: [DONE]")) {
                done++;
            } else if (line.startsWith("data: {")) {
                JsonNode chunk = JSON.readTree(line.substring(6));
                if (chunk.has("usage") && !chunk.get("usage").isNull()) {
                    usage = chunk.get("usage");
                }
                for (JsonNode c : chunk.get("choices")) {
                    int i = c.get("index").asInt();
                    if (c.at("/delta/role").isTextual()) {
                        roles.merge(i, 1, Integer::sum);
                    }
                    text.computeIfAbsent(i, k -> new StringBuilder()).append(c.at("/delta/content").asText(""));
                    if (!c.get("finish_reason").isNull()) {
                        assertThat(finish.put(i, c.get("finish_reason").asText())).as("one finish per choice").isNull();
                    }
                }
            }
        }
        assertThat(done).isEqualTo(1);
        assertThat(roles).containsOnlyKeys(0, 1, 2).allSatisfy((i, n) -> assertThat(n).isEqualTo(1));
        for (int i = 0; i < 3; i++) {
            assertThat(text.get(i).toString()).as("choice %d", i).isEqualTo(whole.at("/choices/" + i + "/message/content").asText());
            assertThat(finish.get(i)).isEqualTo(whole.at("/choices/" + i + "/finish_reason").asText());
        }
        assertThat(usage).isNotNull();
        assertThat(usage.get("completion_tokens").asInt()).isEqualTo(whole.at("/usage/completion_tokens").asInt());
    }

    @Test
    void aClientLeavingFreesEverySlot() throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.base() + "/v1/completions")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"n\":4,\"stream\":true,"
                        + "\"temperature\":1,\"logit_bias\":{\"2\":-100}}")).build();
        HttpResponse<InputStream> r = server.http.send(req, HttpResponse.BodyHandlers.ofInputStream());
        try (InputStream in = r.body()) {
            assertThat(in.read(new byte[64])).isPositive(); // streaming has begun
        }
        long until = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        int busy;
        do {
            Thread.sleep(20);
            busy = JSON.readTree(server.getAdmin("/health/ready").body()).get("slots_busy").asInt();
        } while (busy > 0 && System.nanoTime() < until);
        assertThat(busy).as("slots busy after the client left").isZero();
        assertThat(server.post("/v1/chat/completions", chat(",\"n\":4")).statusCode()).as("all four slots serve again").isEqualTo(200);
    }
    @Test
    void aBatchOfPromptsAnswersEachInOrder() throws Exception {
        int[] dogTokens = JSON.convertValue(JSON.readTree(server.post("/tokenize", "{\"content\":\"The dog\",\"add_special\":true}").body())
                .get("tokens"), int[].class);
        List<String> prompts = List.of("Once upon a time", "Lily had a", "The dog");
        List<String> singles = new java.util.ArrayList<>();
        int promptTokens = 0;
        for (String prompt : prompts) {
            JsonNode one = post("/v1/completions", "{\"prompt\":" + JSON.writeValueAsString(prompt) + ",\"max_tokens\":8,\"temperature\":0}");
            singles.add(one.at("/choices/0/text").asText());
            promptTokens += one.at("/usage/prompt_tokens").asInt();
        }
        // the third prompt as token ids, as evaluation harnesses send it
        String batch = "{\"prompt\":[\"Once upon a time\",\"Lily had a\"," + JSON.writeValueAsString(dogTokens) + "],\"n\":2,"
                + "\"max_tokens\":8,\"temperature\":0}";
        JsonNode all = post("/v1/completions", batch);
        assertThat(all.get("choices")).hasSize(6);
        for (int i = 0; i < 6; i++) {
            assertThat(all.at("/choices/" + i + "/index").asInt()).isEqualTo(i);
            assertThat(all.at("/choices/" + i + "/text").asText()).as("choice %d: prompt %d", i, i / 2).isEqualTo(singles.get(i / 2));
        }
        assertThat(all.at("/usage/prompt_tokens").asInt()).as("each prompt once").isEqualTo(promptTokens);
        assertThat(all.at("/usage/completion_tokens").asInt()).isEqualTo(6 * 8);
        // streamed: every chunk names its choice
        Map<Integer, StringBuilder> text = new HashMap<>();
        for (String line : server.post("/v1/completions", batch.replace("}", ",\"stream\":true}")).body().split("\n")) {
            if (line.startsWith("data: {")) {
                for (JsonNode c : JSON.readTree(line.substring(6)).get("choices")) {
                    text.computeIfAbsent(c.get("index").asInt(), k -> new StringBuilder()).append(c.get("text").asText());
                }
            }
        }
        for (int i = 0; i < 6; i++) {
            assertThat(text.get(i).toString()).isEqualTo(singles.get(i / 2));
        }
    }

    @Test
    void theLoglikelihoodRequestOfEvaluationHarnesses() throws Exception {
        // lm-evaluation-harness (local-completions): token-id prompts in a batch, echo, logprobs 1, one token
        List<int[]> prompts = List.of(new int[] {1, 403, 407, 261, 378}, new int[] {1, 403, 407}, new int[] {1, 65, 66, 67, 68, 69});
        JsonNode all = post("/v1/completions", "{\"prompt\":" + JSON.writeValueAsString(prompts) + ",\"max_tokens\":1,\"echo\":true,"
                + "\"logprobs\":1,\"temperature\":0}");
        assertThat(all.get("choices")).hasSize(3);
        for (int i = 0; i < 3; i++) {
            JsonNode lp = all.at("/choices/" + i + "/logprobs");
            assertThat(lp.get("tokens")).as("prompt %d and its one generated token", i).hasSize(prompts.get(i).length + 1);
            assertThat(lp.at("/token_logprobs/0").isNull()).isTrue();
            for (int k = 1; k < lp.get("token_logprobs").size(); k++) {
                assertThat(lp.at("/token_logprobs/" + k).asDouble()).isLessThanOrEqualTo(0.0);
                assertThat(lp.at("/top_logprobs/" + k).size()).isEqualTo(1);
            }
        }
        // the shorter prompt is a prefix of the first: its tokens' log-probabilities are the same numbers
        JsonNode a = all.at("/choices/0/logprobs/token_logprobs");
        JsonNode b = all.at("/choices/1/logprobs/token_logprobs");
        for (int k = 1; k < 3; k++) {
            assertThat(b.get(k).asDouble()).isCloseTo(a.get(k).asDouble(), org.assertj.core.api.Assertions.within(1e-4));
        }
    }

    @Test
    void moreChoicesThanSlotsWaitInTheQueue() throws Exception {
        JsonNode eight = post("/v1/chat/completions", chat(",\"temperature\":1.0,\"seed\":9,\"n\":8"));
        assertThat(eight.get("choices")).hasSize(8);
        assertThat(eight.get("choices").valueStream().map(c -> c.get("index").asInt()).toList()).containsExactly(0, 1, 2, 3, 4, 5, 6, 7);
        assertThat(eight.get("choices").valueStream().map(c -> c.at("/message/content").asText()).distinct().count()).isGreaterThan(4);
    }
}
