package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.ContextParams;
import ai.llmref.llama.Generation;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Greedy output over HTTP equals the bindings' greedy output; streaming equals non-streaming; concurrency changes nothing. */
class CompletionsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String PROMPT = "Once upon a time";
    static TestServer server;
    static String reference;

    @BeforeAll
    static void start() throws Exception {
        startWith(Map.of());
    }

    /** The reference from the bindings, and the server with {@code extra} configuration on top of this class's. */
    static void startWith(Map<String, String> extra) throws Exception {
        try (LlamaModel m = LlamaModel.load(TestServer.model(), ModelParams.defaults().withGpuLayers(TestServer.gpuLayers()))) {
            ContextParams p = ContextParams.defaults().withContextSize(TestServer.SLOT_CONTEXT).withBatch(256, 256).withThreads(2, 2);
            reference = m.vocabulary().detokenize(Generation.greedy(m, p, PROMPT, 48), false, false);
        }
        // 8 slots and 4 sampling threads: the concurrent requests' greedy picks are shared out (SamplingPool)
        Map<String, String> cfg = new java.util.HashMap<>(Map.of("engine.slots", "8", "engine.sampling-threads", "4"));
        cfg.putAll(extra);
        server = TestServer.start(cfg);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static String body(String prompt, int maxTokens, boolean stream) {
        return "{\"model\":\"stories260K\",\"prompt\":" + JSON.valueToTree(prompt) + ",\"max_tokens\":" + maxTokens
                + ",\"temperature\":0,\"stream\":" + stream + "}";
    }

    @Test
    void greedyCompletionEqualsTheBindings() throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", body(PROMPT, 48, false));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode j = JSON.readTree(r.body());
        assertThat(j.get("object").asText()).isEqualTo("text_completion");
        assertThat(j.at("/choices/0/text").asText()).isEqualTo(reference.startsWith(" ") ? reference : reference);
        assertThat(j.at("/choices/0/finish_reason").asText()).isEqualTo("length");
        assertThat(j.at("/usage/completion_tokens").asInt()).isEqualTo(48);
        assertThat(j.at("/usage/prompt_tokens").asInt()).isEqualTo(5);
        assertThat(j.at("/usage/total_tokens").asInt()).isEqualTo(53);
    }

    @Test
    void streamingGivesTheSameTextAsNonStreaming() throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", body(PROMPT, 48, true));
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("content-type")).hasValueSatisfying(v -> assertThat(v).startsWith("text/event-stream"));
        StringBuilder text = new StringBuilder();
        List<String> events = sse(r.body());
        assertThat(events.getLast()).isEqualTo("[DONE]");
        String finish = null;
        for (String e : events.subList(0, events.size() - 1)) {
            JsonNode c = JSON.readTree(e);
            text.append(c.at("/choices/0/text").asText());
            if (!c.at("/choices/0/finish_reason").isNull()) {
                finish = c.at("/choices/0/finish_reason").asText();
            }
        }
        assertThat(text.toString()).isEqualTo(reference);
        assertThat(finish).isEqualTo("length");
        assertThat(events.size()).isGreaterThan(10); // really streamed, not one chunk
    }

    @Test
    void chatStreamHasRoleContentFinishAndUsage() throws Exception {
        String req = "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],"
                + "\"max_tokens\":20,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
        HttpResponse<String> r = server.post("/v1/chat/completions", req);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        List<String> events = sse(r.body());
        JsonNode first = JSON.readTree(events.getFirst());
        assertThat(first.get("object").asText()).isEqualTo("chat.completion.chunk");
        assertThat(first.at("/choices/0/delta/role").asText()).isEqualTo("assistant");
        JsonNode usage = JSON.readTree(events.get(events.size() - 2));
        assertThat(usage.get("choices")).isEmpty();
        assertThat(usage.at("/usage/completion_tokens").asInt()).isBetween(1, 20);
        StringBuilder streamed = new StringBuilder();
        for (String e : events.subList(0, events.size() - 2)) {
            JsonNode chunk = JSON.readTree(e);
            // OpenAI: with include_usage every other chunk has "usage": null
            assertThat(chunk.has("usage") && chunk.get("usage").isNull()).as(e).isTrue();
            streamed.append(chunk.at("/choices/0/delta/content").asText(""));
        }
        HttpResponse<String> whole = server.post("/v1/chat/completions", req.replace("\"stream\":true", "\"stream\":false"));
        assertThat(JSON.readTree(whole.body()).at("/choices/0/message/content").asText()).isEqualTo(streamed.toString());
        assertThat(JSON.readTree(whole.body()).at("/usage/completion_tokens").asInt()).isEqualTo(usage.at("/usage/completion_tokens").asInt());
    }

    @Test
    void sixteenConcurrentGreedyRequestsEachEqualTheSingleResult() throws Exception {
        ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor();
        List<Future<String>> results = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            boolean stream = i % 2 == 1;
            Callable<String> call = () -> {
                HttpResponse<String> r = server.post("/v1/completions", body(PROMPT, 48, stream));
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                if (!stream) {
                    return JSON.readTree(r.body()).at("/choices/0/text").asText();
                }
                StringBuilder t = new StringBuilder();
                for (String e : sse(r.body())) {
                    if (!e.equals("[DONE]")) {
                        t.append(JSON.readTree(e).at("/choices/0/text").asText());
                    }
                }
                return t.toString();
            };
            results.add(pool.submit(call));
        }
        for (Future<String> f : results) {
            assertThat(f.get()).isEqualTo(reference);
        }
        pool.shutdown();
    }

    @Test
    void stopStringsEndTheOutputBeforeTheStop() throws Exception {
        int cut = reference.indexOf(" she ");
        assertThat(cut).isPositive();
        HttpResponse<String> r = server.post("/v1/completions", body(PROMPT, 48, false).replace("}", ",\"stop\":[\" she \",\"zzz\"]}"));
        JsonNode j = JSON.readTree(r.body());
        assertThat(j.at("/choices/0/text").asText()).isEqualTo(reference.substring(0, cut));
        assertThat(j.at("/choices/0/finish_reason").asText()).isEqualTo("stop");
    }

    @Test
    void repeatedPromptReusesTheCachedPrefix() throws Exception {
        server.post("/v1/completions", body(PROMPT + " there was", 4, false));
        HttpResponse<String> r = server.post("/v1/completions", body(PROMPT + " there was", 4, false));
        assertThat(JSON.readTree(r.body()).at("/usage/prompt_tokens_details/cached_tokens").asInt()).isPositive();
    }

    /** An assistant's earlier refusal, sent back as a refusal content part (as OpenAI's clients may), is its text. */
    @Test
    void anAssistantsRefusalPartIsItsText() throws Exception {
        String turn = "{\"role\":\"assistant\",\"content\":%s}";
        String asText = String.format(turn, "\"I cannot.\"");
        String asRefusal = String.format(turn, "[{\"type\":\"refusal\",\"refusal\":\"I cannot.\"}]");
        int[] prompts = new int[2];
        String[] turns = {asText, asRefusal};
        for (int i = 0; i < 2; i++) {
            HttpResponse<String> r = server.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
                    + turns[i] + ",{\"role\":\"user\",\"content\":\"Why?\"}],\"max_tokens\":1}");
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            prompts[i] = JSON.readTree(r.body()).at("/usage/prompt_tokens").asInt();
        }
        assertThat(prompts[1]).isEqualTo(prompts[0]);
    }

    /**
     * Text parts are joined with a newline, as llama-server joins them (they ran into one word:
     * "Once upon" and "a time" were prompted as "Once upona time"), in each API that takes parts.
     */
    @Test
    void textPartsAreJoinedWithANewline() throws Exception {
        String parts = "[{\"type\":\"%1$s\",\"text\":\"Once upon\"},{\"type\":\"%1$s\",\"text\":\"a time\"}]";
        String[][] forms = { // path, body with %s for the content, the usage field, the part type
            {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":%s}],\"max_tokens\":1}", "/usage/prompt_tokens", "text"},
            {"/v1/responses", "{\"input\":[{\"role\":\"user\",\"content\":%s}],\"max_output_tokens\":16}", "/usage/input_tokens", "input_text"},
            {"/v1/messages/count_tokens", "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":%s}]}", "/input_tokens", "text"}};
        for (String[] f : forms) {
            int[] counts = new int[3];
            String[] contents = {String.format(parts, f[3]), "\"Once upon\\na time\"", "\"Once upona time\""};
            for (int i = 0; i < 3; i++) {
                HttpResponse<String> r = server.post(f[0], String.format(f[1], contents[i]));
                assertThat(r.statusCode()).as(f[0] + " " + r.body()).isEqualTo(200);
                counts[i] = JSON.readTree(r.body()).at(f[2]).asInt();
            }
            assertThat(counts[0]).as(f[0] + ": parts as the newline-joined text").isEqualTo(counts[1]).isNotEqualTo(counts[2]);
        }
    }

    static List<String> sse(String body) {
        List<String> out = new ArrayList<>();
        for (String block : body.split("\n\n")) {
            if (block.startsWith("data: ")) {
                out.add(block.substring(6));
            }
        }
        return out;
    }
}
