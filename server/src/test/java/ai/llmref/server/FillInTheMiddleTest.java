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
        return server.tokenize(text, false);
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

    private static JsonNode infill(TestServer on, ObjectNode body) throws Exception {
        HttpResponse<String> r = on.post("/infill", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return MAPPER.readTree(r.body());
    }

    /**
     * llama-server's /infill: the same insertion as {@code suffix} on /v1/completions, in
     * llama-server's shape, whole and streamed; {@code prompt} (the start of the line being
     * written) goes after the prefix; other files ({@code input_extra}) come first, each after a
     * "--- snippet ---" line where the model has no file-separator token; {@code n_predict} caps
     * the output.
     */
    @Test
    void infillAnswersAsLlamaServer() throws Exception {
        String prefix = "Once upon a time, there was a";
        String suffix = " They were happy. The end.";
        // the prefix and the prompt are tokenized apart, as llama-server does: the same tokens as ids
        ObjectNode c = MAPPER.createObjectNode().put("suffix", suffix).put("max_tokens", 12).put("temperature", 0);
        ArrayNode ids = c.putArray("prompt");
        for (int t : tokens(prefix)) {
            ids.add(t);
        }
        for (int t : tokens(" little")) {
            ids.add(t);
        }
        String expected = complete(c).at("/choices/0/text").asText();
        ObjectNode b = MAPPER.createObjectNode().put("input_prefix", prefix).put("prompt", " little").put("input_suffix", suffix)
                .put("n_predict", 12).put("temperature", 0);
        JsonNode out = infill(server, b);
        assertThat(out.get("content").asText()).isEqualTo(expected);
        assertThat(out.get("stop").asBoolean()).isTrue();
        assertThat(out.get("stop_type").asText()).isIn("limit", "eos");
        assertThat(out.get("tokens_predicted").asInt()).isPositive().isLessThanOrEqualTo(12);
        assertThat(out.get("tokens_evaluated").asInt()).isEqualTo(1 + 1 + tokens(prefix).length + tokens(" little").length + 1
                + tokens(suffix).length + 1);
        assertThat(out.get("truncated").asBoolean()).isFalse();
        assertThat(out.at("/timings/predicted_n").asInt()).isEqualTo(out.get("tokens_predicted").asInt());
        HttpResponse<String> streamed = server.post("/infill", b.deepCopy().put("stream", true).toString());
        assertThat(streamed.statusCode()).isEqualTo(200);
        StringBuilder sb = new StringBuilder();
        JsonNode last = null;
        for (String line : streamed.body().split("\n")) {
            if (line.startsWith("data: ")) {
                last = MAPPER.readTree(line.substring(6));
                sb.append(last.get("content").asText());
            }
        }
        assertThat(sb.toString()).isEqualTo(expected);
        assertThat(last.get("stop").asBoolean()).isTrue();
        assertThat(last.get("content").asText()).isEmpty();
        assertThat(streamed.body()).doesNotContain("[DONE]");
        // other files first, each after a snippet line
        ObjectNode withExtra = b.deepCopy();
        withExtra.putArray("input_extra").addObject().put("filename", "a.txt").put("text", "Tom had a dog.");
        JsonNode extra = infill(server, withExtra);
        assertThat(extra.get("tokens_evaluated").asInt()).isEqualTo(out.get("tokens_evaluated").asInt()
                + tokens("\n\n--- snippet ---\n\n").length + tokens("Tom had a dog.").length);
        // a prefix longer than the window keeps its end, and says so
        ObjectNode longer = b.deepCopy().put("input_prefix", "Once upon a time. ".repeat(200));
        JsonNode cut = infill(server, longer);
        assertThat(cut.get("truncated").asBoolean()).isTrue();
        assertThat(cut.get("tokens_evaluated").asInt()).isLessThan(TestServer.SLOT_CONTEXT);
        // the infill stage, named in samplers, runs
        ObjectNode staged = b.deepCopy().put("temperature", 0.8).put("seed", 1);
        staged.putArray("samplers").add("top_k").add("top_p").add("infill").add("temperature");
        assertThat(infill(server, staged).get("stop").asBoolean()).isTrue();
        for (String bad : new String[] {"{\"input_prefix\":\"a\",\"n_predict\":0}", "{\"input_extra\":{}}",
                "{\"input_extra\":[1]}", "{\"input_prefix\":\"a\",\"suffix\":\"b\"}", "{\"input_prefix\":7}"}) {
            HttpResponse<String> r = server.post("/infill", bad);
            assertThat(r.statusCode()).as(bad + " " + r.body()).isEqualTo(400);
        }
    }

    /**
     * The fields /infill shares with llama-server's /completion: {@code n_probs} (or
     * {@code logprobs}) lists each generated token's probabilities, the greedy pick first, their
     * bytes joined being the content; {@code return_tokens} gives the ids, those of the
     * probabilities; {@code json_schema} and llama-server's {@code logit_bias} pairs are taken; several
     * answers ({@code n}) are refused. (Before, {@code n_probs} was refused with advice to send
     * {@code logprobs}, which /infill refused too.)
     */
    @Test
    void infillTakesCompletionsProbabilitiesAndTokens() throws Exception {
        ObjectNode b = MAPPER.createObjectNode().put("input_prefix", "Once upon a time, there was a").put("input_suffix", " The end.")
                .put("n_predict", 10).put("temperature", 0);
        JsonNode plain = infill(server, b);
        JsonNode out = infill(server, b.deepCopy().put("n_probs", 2).put("return_tokens", true));
        assertThat(out.get("content")).isEqualTo(plain.get("content"));
        JsonNode probs = out.get("completion_probabilities");
        assertThat(probs.size()).isEqualTo(out.get("tokens_predicted").asInt()).isPositive();
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        for (int i = 0; i < probs.size(); i++) {
            JsonNode p = probs.get(i);
            assertThat(p.get("id").asInt()).isEqualTo(out.get("tokens").get(i).asInt());
            assertThat(p.at("/top_logprobs/0/id").asInt()).as("greedy: the most likely token").isEqualTo(p.get("id").asInt());
            assertThat(p.get("top_logprobs").size()).isEqualTo(2);
            p.get("bytes").forEach(x -> bytes.write(x.asInt()));
        }
        assertThat(bytes.toString(java.nio.charset.StandardCharsets.UTF_8)).isEqualTo(out.get("content").asText());
        assertThat(infill(server, b.deepCopy().put("logprobs", 2).put("return_tokens", true)).get("completion_probabilities"))
                .as("logprobs is n_probs' other name").isEqualTo(probs);
        // llama-server's logit_bias pairs: the greedy first token banned by its id, so another comes first
        ObjectNode banned = b.deepCopy();
        banned.putArray("logit_bias").addArray().add(out.get("tokens").get(0).asInt()).add(false);
        assertThat(infill(server, banned.put("return_tokens", true)).at("/tokens/0").asInt()).isNotEqualTo(out.at("/tokens/0").asInt());
        ObjectNode schema = b.deepCopy().put("n_predict", 40);
        schema.set("json_schema", MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"happy\":{\"type\":\"boolean\"}},"
                + "\"required\":[\"happy\"],\"additionalProperties\":false}"));
        JsonNode json = infill(server, schema);
        assertThat(MAPPER.readTree(json.get("content").asText()).get("happy").isBoolean()).as(json.toString()).isTrue();
        for (String bad : new String[] {"{\"input_prefix\":\"a\",\"n\":2}", "{\"input_prefix\":\"a\",\"n_probs\":21}",
                "{\"input_prefix\":\"a\",\"best_of\":2}"}) {
            HttpResponse<String> r = server.post("/infill", bad);
            assertThat(r.statusCode()).as(bad + " " + r.body()).isEqualTo(400);
        }
    }

    /**
     * llama-server's line limits, as editors send them: {@code n_indent} ends the output before a
     * line (after the first) indented less, cutting that line's text and keeping its indentation;
     * {@code t_max_predict_ms} ends it at the first piece with a line break once that time has
     * passed since the first token. Either is {@code stop_type} "limit", and the output is a prefix
     * of the one without them (greedy), whole and streamed.
     */
    @Test
    void lineLimitsEndTheOutputAsLlamaServersDo() throws Exception {
        ObjectNode b = MAPPER.createObjectNode().put("input_prefix", "Once upon a time, there was a little girl.")
                .put("input_suffix", " The end.").put("n_predict", 200).put("temperature", 0);
        String full = infill(server, b).get("content").asText();
        java.util.regex.Matcher line = java.util.regex.Pattern.compile("\n[ \t]*[^\s]").matcher(full);
        assertThat(line.find()).as("a second line in: " + full).isTrue();
        String expected = full.substring(0, line.end() - 1); // up to that line's first character
        JsonNode indented = infill(server, b.deepCopy().put("n_indent", 1));
        assertThat(indented.get("content").asText()).isEqualTo(expected);
        assertThat(indented.get("stop_type").asText()).isEqualTo("limit");
        StringBuilder streamed = new StringBuilder();
        for (String l : server.post("/infill", b.deepCopy().put("n_indent", 1).put("stream", true).toString()).body().split("\n")) {
            if (l.startsWith("data: ")) {
                streamed.append(MAPPER.readTree(l.substring(6)).get("content").asText());
            }
        }
        assertThat(streamed.toString()).isEqualTo(expected);
        JsonNode timed = infill(server, b.deepCopy().put("t_max_predict_ms", 1));
        String t = timed.get("content").asText();
        assertThat(full).startsWith(t);
        assertThat(t).contains("\n").hasSizeLessThan(full.length());
        assertThat(timed.get("stop_type").asText()).isEqualTo("limit");
        // -1 and 0 are no limit, as in llama-server; a negative indentation is a 400
        assertThat(infill(server, b.deepCopy().put("t_max_predict_ms", -1).put("n_indent", 0)).get("content").asText()).isEqualTo(full);
        assertThat(server.post("/infill", b.deepCopy().put("n_indent", -1).toString()).statusCode()).isEqualTo(400);
    }

    /**
     * llama.vim's request as it sends it ({@code samplers} with the infill stage,
     * {@code cache_prompt}, {@code t_max_prompt_ms}, which llama-server reads nowhere, and
     * {@code response_fields}; and a seed, so that two answers compare): the answer holds the
     * fields asked for, each under its path, as
     * llama-server's does (a path the result lacks is left out); streamed, the last line so.
     * Malformed {@code response_fields} are a 400.
     */
    @Test
    void llamaVimsRequestGetsTheFieldsItAsksFor() throws Exception {
        ObjectNode b = MAPPER.createObjectNode().put("input_prefix", "Once upon a time, there was a little girl.\n")
                .put("input_suffix", "The end.\n").put("prompt", "She").put("n_predict", 24).put("n_indent", 0).put("top_k", 40)
                .put("top_p", 0.90).put("seed", 42).put("stream", false).put("cache_prompt", true).put("t_max_prompt_ms", 500).put("t_max_predict_ms", 1000);
        b.putArray("samplers").add("top_k").add("top_p").add("infill");
        b.putArray("input_extra").addObject().put("filename", "a.txt").put("text", "Lily had a dog.\n");
        ArrayNode fields = b.putArray("response_fields");
        for (String f : new String[] {"content", "timings/prompt_n", "timings/prompt_ms", "timings/prompt_per_token_ms",
                "timings/prompt_per_second", "timings/predicted_n", "timings/predicted_ms", "timings/predicted_per_token_ms",
                "timings/predicted_per_second", "truncated", "tokens_cached", "no/such"}) {
            fields.add(f);
        }
        JsonNode r = infill(server, b);
        java.util.List<String> keys = new java.util.ArrayList<>();
        r.fieldNames().forEachRemaining(keys::add);
        assertThat(keys).containsExactly("content", "timings/prompt_n", "timings/prompt_ms", "timings/prompt_per_token_ms",
                "timings/prompt_per_second", "timings/predicted_n", "timings/predicted_ms", "timings/predicted_per_token_ms",
                "timings/predicted_per_second", "truncated", "tokens_cached");
        assertThat(r.get("content").asText()).isNotEmpty();
        assertThat(r.get("timings/predicted_n").asInt()).isBetween(1, 24);
        assertThat(r.get("timings/prompt_n").asInt()).isPositive();
        assertThat(r.get("truncated").isBoolean()).isTrue();
        ObjectNode whole = b.deepCopy();
        whole.remove("response_fields");
        JsonNode all = infill(server, whole);
        assertThat(all.get("content").asText()).isEqualTo(r.get("content").asText());
        assertThat(all.get("timings").get("predicted_n").asInt()).isEqualTo(r.get("timings/predicted_n").asInt());
        String[] lines = server.post("/infill", b.deepCopy().put("stream", true).toString()).body().split("\n");
        JsonNode last = null;
        for (String l : lines) {
            if (l.startsWith("data: ")) {
                last = MAPPER.readTree(l.substring(6));
            }
        }
        assertThat(last.has("timings/predicted_n")).as(String.valueOf(last)).isTrue();
        assertThat(last.has("stop")).as("not asked for").isFalse();
        for (String bad : new String[] {"\"content\"", "[1]", "[\"\"]", "[" + "\"a\",".repeat(64) + "\"a\"]"}) {
            HttpResponse<String> e = server.post("/infill", b.deepCopy().set("response_fields", MAPPER.readTree(bad)).toString());
            assertThat(e.statusCode()).as(bad + " " + e.body()).isEqualTo(400);
            assertThat(e.body()).contains("response_fields");
        }
    }

    /**
     * With repository-level tokens: {@code <|repo_name|>myproject} (always, as llama-server writes
     * it), then a file separator before each file's name and before the current file.
     */
    @Test
    void infillUsesRepositoryTokensWhereTheModelHasThem() throws Exception {
        Path model = GgufPatch.withUint32(TestServer.model(), Map.of("tokenizer.ggml.fim_pre_token_id", PRE,
                "tokenizer.ggml.fim_suf_token_id", SUF, "tokenizer.ggml.fim_mid_token_id", MID, "tokenizer.ggml.fim_rep_token_id", 7,
                "tokenizer.ggml.fim_sep_token_id", 8), dir.resolve("stories-fim-repo.gguf"));
        try (TestServer repo = TestServer.start(Map.of("model.path", model.toString()))) {
            ObjectNode b = MAPPER.createObjectNode().put("input_prefix", "Once upon a time").put("input_suffix", " The end.")
                    .put("n_predict", 4).put("temperature", 0);
            int plain = infill(repo, b).get("tokens_evaluated").asInt();
            assertThat(plain).as("<|repo_name|>myproject\n, <|file_sep|>filename\n, then BOS and the insertion")
                    .isEqualTo(1 + tokens("myproject\n").length + 1 + tokens("filename\n").length + 1 + 1 + tokens("Once upon a time").length
                            + 1 + tokens(" The end.").length + 1);
            b.putArray("input_extra").addObject().put("filename", "a.txt").put("text", "Tom had a dog.");
            int withFile = infill(repo, b).get("tokens_evaluated").asInt();
            assertThat(withFile - plain).as("<|file_sep|>a.txt\n and the text").isEqualTo(1 + tokens("a.txt\n").length
                    + tokens("Tom had a dog.").length);
        }
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
            HttpResponse<String> infill = plain.post("/infill", "{\"input_prefix\":\"Once\",\"input_suffix\":\" end\"}");
            assertThat(infill.statusCode()).as(infill.body()).isEqualTo(400);
            assertThat(infill.body()).contains("fill-in-the-middle");
        }
    }
}
