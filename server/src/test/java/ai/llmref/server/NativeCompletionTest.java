package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * llama-server's own completion route, {@code POST /completion} (and {@code /completions}), as
 * SillyTavern, Continue's llama.cpp provider and llama.cpp's examples call it: one prompt (text
 * with special tokens parsed, token ids, or both), {@code n_predict}, {@code n_probs},
 * {@code return_tokens}, {@code json_schema}, llama-server's {@code logit_bias} pairs, streamed or
 * whole, answered in llama-server's shape. Checked against the OpenAI route on the same prompt:
 * the same greedy text, the same token counts.
 */
class NativeCompletionTest {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static TestServer server;

    @BeforeAll
    static void start() throws Exception {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static ObjectNode ask(Object prompt, int nPredict) {
        ObjectNode b = MAPPER.createObjectNode().put("n_predict", nPredict).put("temperature", 0);
        b.set("prompt", MAPPER.valueToTree(prompt));
        return b;
    }

    static JsonNode post(String path, ObjectNode body) throws Exception {
        HttpResponse<String> r = server.post(path, body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return MAPPER.readTree(r.body());
    }

    static JsonNode error(ObjectNode body) throws Exception {
        HttpResponse<String> r = server.post("/completion", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
        return MAPPER.readTree(r.body()).get("error");
    }

    static int[] tokenize(String text) throws Exception {
        return server.tokenize(text, false);
    }

    @Test
    void aTextPromptIsAnsweredAsTheOpenAiRouteAnswersIt() throws Exception {
        JsonNode whole = post("/completion", ask("Once upon a time", 24));
        JsonNode openai = post("/v1/completions", MAPPER.createObjectNode().put("prompt", "Once upon a time").put("max_tokens", 24)
                .put("temperature", 0));
        assertThat(whole.get("content").asText()).isNotBlank().isEqualTo(openai.at("/choices/0/text").asText());
        assertThat(whole.get("stop").asBoolean()).isTrue();
        assertThat(whole.get("stop_type").asText()).isEqualTo("limit");
        assertThat(whole.get("tokens_predicted").asInt()).isEqualTo(24);
        assertThat(whole.get("tokens_evaluated").asInt()).isEqualTo(openai.at("/usage/prompt_tokens").asInt());
        assertThat(whole.get("tokens").size()).as("no ids unless asked").isZero();
        assertThat(whole.has("completion_probabilities")).isFalse();
        assertThat(whole.at("/timings/predicted_n").asInt()).isEqualTo(24);
        assertThat(post("/completions", ask("Once upon a time", 24)).get("content")).as("the alias").isEqualTo(whole.get("content"));
        // max_tokens is n_predict's other name; -1 (the default) writes until the end of generation or the context
        assertThat(post("/completion", MAPPER.createObjectNode().put("prompt", "Once upon a time").put("max_tokens", 24)
                .put("temperature", 0)).get("content")).isEqualTo(whole.get("content"));
        // SillyTavern's habits: many stop strings (a chat's names, a template's markers), an empty grammar for none
        String first = whole.get("content").asText().substring(0, 6);
        ObjectNode st = ask("Once upon a time", 24).put("grammar", "");
        ArrayNode stops = st.putArray("stop");
        for (int i = 0; i < 9; i++) {
            stops.add("\nUser" + i + ":");
        }
        stops.add(first.substring(3));
        JsonNode cut = post("/completion", st);
        assertThat(cut.get("stop_type").asText()).isEqualTo("word");
        assertThat(cut.get("stopping_word").asText()).isEqualTo(first.substring(3));
        String all = whole.get("content").asText();
        assertThat(cut.get("content").asText()).isEqualTo(all.substring(0, all.indexOf(first.substring(3))));
        // both n_predict and max_tokens (SillyTavern sends both): n_predict, as llama-server reads them; a window of -1 is the context
        ObjectNode both = ask("Once upon a time", 24).put("max_tokens", 8).put("repeat_last_n", -1).put("dry_penalty_last_n", -1);
        assertThat(post("/completion", both).get("tokens_predicted").asInt()).isEqualTo(24);
        JsonNode free = post("/completion", ask("Once upon a time", -1));
        assertThat(free.get("stop_type").asText()).isIn("eos", "limit");
        assertThat(free.get("content").asText()).startsWith(whole.get("content").asText());
    }

    /** Token ids, ids and text mixed, and special-token text parsed (llama-server's reading; the OpenAI route reads it as text). */
    @Test
    void promptsAreIdsTextOrBothAndSpecialTokensAreParsed() throws Exception {
        int[] ids = tokenize("Once upon a time");
        JsonNode text = post("/completion", ask("Once upon a time", 16));
        List<Integer> withBos = new ArrayList<>();
        withBos.add(1); // stories260K's BOS, which a text prompt gets
        for (int t : ids) {
            withBos.add(t);
        }
        JsonNode byIds = post("/completion", ask(withBos, 16));
        assertThat(byIds.get("content")).isEqualTo(text.get("content"));
        assertThat(byIds.get("tokens_evaluated")).isEqualTo(text.get("tokens_evaluated"));
        int[] tail = tokenize(" there was");
        List<Object> mixed = new ArrayList<>(List.of("Once upon a time"));
        for (int t : tail) {
            mixed.add(t);
        }
        JsonNode m = post("/completion", ask(mixed, 4));
        assertThat(m.get("tokens_evaluated").asInt()).isEqualTo(text.get("tokens_evaluated").asInt() + tail.length);
        // "</s>" is stories260K's end-of-sequence token here, three pieces of text on the OpenAI route
        JsonNode special = post("/completion", ask("Once upon a time</s>", 4));
        JsonNode plain = post("/v1/completions", MAPPER.createObjectNode().put("prompt", "Once upon a time</s>").put("max_tokens", 4));
        assertThat(special.get("tokens_evaluated").asInt()).isEqualTo(text.get("tokens_evaluated").asInt() + 1)
                .isLessThan(plain.at("/usage/prompt_tokens").asInt());
    }

    /**
     * {@code /tokenize} as llama-server answers it: special-token text parsed unless
     * {@code parse_special} is false, and a piece that is part of a UTF-8 character given as its
     * bytes (stories260K spells "🙂" with byte tokens).
     */
    @Test
    void tokenizeParsesSpecialTokensAndGivesPartialPiecesAsBytes() throws Exception {
        int[] parsed = server.tokenize("Once</s>", false);
        assertThat(parsed[parsed.length - 1]).as("</s> is the end-of-sequence token").isEqualTo(2);
        JsonNode plain = post("/tokenize", MAPPER.createObjectNode().put("content", "Once</s>").put("parse_special", false)).get("tokens");
        assertThat(plain.size()).isGreaterThan(parsed.length);
        ArrayNode ids = MAPPER.createArrayNode();
        for (int t : parsed) {
            ids.add(t);
        }
        ObjectNode detok = MAPPER.createObjectNode();
        detok.set("tokens", ids);
        assertThat(post("/detokenize", detok).get("content").asText()).as("special tokens shown, as llama-server shows them")
                .endsWith("Once</s>");
        JsonNode pieces = post("/tokenize", MAPPER.createObjectNode().put("content", "a\uD83D\uDE42").put("with_pieces", true))
                .get("tokens");
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        int partial = 0;
        for (JsonNode p : pieces) {
            if (p.get("piece").isArray()) {
                partial++;
                p.get("piece").forEach(b -> joined.write(b.asInt()));
            } else {
                joined.writeBytes(p.get("piece").asText().getBytes(StandardCharsets.UTF_8));
            }
        }
        assertThat(partial).as(pieces.toString()).isPositive();
        assertThat(joined.toString(StandardCharsets.UTF_8)).isEqualTo(" a\uD83D\uDE42");
    }

    /**
     * {@code n_probs}: each generated token with its log-probability, bytes and the most likely
     * tokens (the greedy pick first); {@code return_tokens}: the ids, which detokenize to the
     * content; streamed, the same tokens and texts piece by piece.
     */
    @Test
    void probabilitiesAndTokensAsLlamaServerListsThem() throws Exception {
        JsonNode whole = post("/completion", ask("Once upon a time", 12).put("n_probs", 3).put("return_tokens", true));
        JsonNode probs = whole.get("completion_probabilities");
        assertThat(probs.size()).isEqualTo(12);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int i = 0; i < probs.size(); i++) {
            JsonNode p = probs.get(i);
            assertThat(p.get("id").asInt()).isEqualTo(whole.get("tokens").get(i).asInt());
            assertThat(p.get("top_logprobs").size()).isEqualTo(3);
            assertThat(p.at("/top_logprobs/0/id").asInt()).as("greedy: the most likely token").isEqualTo(p.get("id").asInt());
            assertThat(p.at("/top_logprobs/0/logprob").asDouble()).isEqualTo(p.get("logprob").asDouble())
                    .isGreaterThanOrEqualTo(p.at("/top_logprobs/1/logprob").asDouble());
            assertThat(p.get("logprob").asDouble()).isLessThanOrEqualTo(0);
            p.get("bytes").forEach(b -> bytes.write(b.asInt()));
        }
        assertThat(bytes.toString(StandardCharsets.UTF_8)).isEqualTo(whole.get("content").asText());
        ArrayNode ids = MAPPER.createArrayNode();
        whole.get("tokens").forEach(ids::add);
        ObjectNode detok = MAPPER.createObjectNode();
        detok.set("tokens", ids);
        assertThat(post("/detokenize", detok).get("content").asText()).isEqualTo(whole.get("content").asText());
        // logprobs is n_probs' other name
        assertThat(post("/completion", ask("Once upon a time", 12).put("logprobs", 3)).get("completion_probabilities"))
                .isEqualTo(probs);
        HttpResponse<String> r = server.post("/completion", ask("Once upon a time", 12).put("n_probs", 3).put("return_tokens", true)
                .put("stream", true).toString());
        assertThat(r.statusCode()).isEqualTo(200);
        StringBuilder content = new StringBuilder();
        ArrayNode streamedProbs = MAPPER.createArrayNode();
        List<Integer> streamedIds = new ArrayList<>();
        JsonNode last = null;
        for (String line : r.body().split("\n")) {
            if (line.startsWith("data: ")) {
                last = MAPPER.readTree(line.substring(6));
                content.append(last.get("content").asText());
                if (last.has("completion_probabilities")) {
                    streamedProbs.addAll((ArrayNode) last.get("completion_probabilities"));
                }
                last.get("tokens").forEach(t -> streamedIds.add(t.asInt()));
            }
        }
        assertThat(r.body()).doesNotContain("[DONE]");
        assertThat(last.get("stop").asBoolean()).isTrue();
        assertThat(last.get("stop_type").asText()).isEqualTo("limit");
        assertThat(content.toString()).isEqualTo(whole.get("content").asText());
        assertThat(streamedProbs).isEqualTo(probs);
        assertThat(streamedIds).hasSize(12);
        assertThat(streamedIds.getFirst()).isEqualTo(whole.get("tokens").get(0).asInt());
    }

    /** {@code json_schema}: the output is a document the schema allows; llama-server's {@code logit_bias} pairs ban and bias. */
    @Test
    void aJsonSchemaAndLogitBiasPairs() throws Exception {
        ObjectNode b = ask("Once upon a time", 60);
        b.set("json_schema", MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":10},"
                + "\"happy\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"happy\"],\"additionalProperties\":false}"));
        JsonNode out = MAPPER.readTree(post("/completion", b).get("content").asText());
        assertThat(out.get("name").asText().length()).isLessThanOrEqualTo(10);
        assertThat(out.get("happy").isBoolean()).isTrue();
        JsonNode first = post("/completion", ask("Once upon a time", 8).put("n_probs", 1).put("return_tokens", true));
        int top = first.get("tokens").get(0).asInt();
        ObjectNode banned = ask("Once upon a time", 8).put("return_tokens", true);
        banned.putArray("logit_bias").addArray().add(top).add(false);
        assertThat(post("/completion", banned).get("tokens").get(0).asInt()).as("false bans the token").isNotEqualTo(top);
        ObjectNode byText = ask("Once upon a time", 8).put("return_tokens", true);
        String piece = first.at("/completion_probabilities/0/token").asText();
        byText.putArray("logit_bias").addArray().add(piece).add(-100);
        assertThat(post("/completion", byText).get("tokens").get(0).asInt()).as("a text's tokens, banned").isNotEqualTo(top);
        ObjectNode fields = ask("Once upon a time", 4);
        fields.putArray("response_fields").add("content").add("timings/predicted_n");
        JsonNode only = post("/completion", fields);
        assertThat(only.size()).isEqualTo(2);
        assertThat(only.get("timings/predicted_n").asInt()).isEqualTo(4);
    }

    /**
     * {@code GET /props}, which SillyTavern reads beside /completion: the slot's context (what a
     * prompt and its completion must fit), the slots, the chat template the server renders with
     * (stories260K has none: ChatML), the special tokens' text; no file path.
     */
    @Test
    void propsTellTheContextTheSlotsAndTheTemplate() throws Exception {
        HttpResponse<String> r = server.get("/props");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode props = MAPPER.readTree(r.body());
        int nCtx = props.at("/default_generation_settings/n_ctx").asInt();
        assertThat(nCtx).isEqualTo(TestServer.SLOT_CONTEXT);
        assertThat(props.get("total_slots").asInt()).isEqualTo(4);
        assertThat(props.get("model_alias").asText()).isEqualTo("stories260K");
        assertThat(props.get("chat_template").asText()).contains("<|im_start|>");
        assertThat(props.get("bos_token").asText()).isEqualTo("<s>");
        assertThat(props.get("eos_token").asText()).isEqualTo("</s>");
        assertThat(r.body()).doesNotContain(TestServer.model().getParent().toString());
        int prompt = post("/completion", ask("Once upon a time", 1)).get("tokens_evaluated").asInt();
        assertThat(post("/completion", ask("Once upon a time", nCtx - prompt)).get("tokens_predicted").asInt())
                .as("a completion that fills the context the props give").isBetween(1, nCtx - prompt);
        assertThat(error(ask("Once upon a time", nCtx - prompt + 1)).get("code").asText()).isEqualTo("context_length_exceeded");
        assertThat(server.get("/props?model=stories260K").statusCode()).isEqualTo(200);
        assertThat(server.get("/props?model=llama-70b").statusCode()).isEqualTo(404);
    }

    @Test
    void whatTheRouteDoesNotDoIsRefused() throws Exception {
        assertThat(error(ask(List.of("a", "b"), 4)).get("param").asText()).isEqualTo("prompt");
        assertThat(error(ask(List.of(List.of(1, 2)), 4)).get("param").asText()).isEqualTo("prompt");
        assertThat(error(MAPPER.createObjectNode().put("n_predict", 4)).get("param").asText()).isEqualTo("prompt");
        assertThat(error(ask(List.of(1, 99999), 4)).get("code").asText()).isEqualTo("invalid_value");
        assertThat(error(ask("a", 4).put("n", 2)).get("param").asText()).isEqualTo("n");
        assertThat(error(ask("a", 4).put("echo", true)).get("param").asText()).isEqualTo("echo");
        assertThat(error(ask("a", 4).put("grammar", "root ::= \"a\"")).get("param").asText()).isEqualTo("grammar");
        assertThat(error(ask("a", 4).put("n_probs", 21)).get("param").asText()).isEqualTo("n_probs");
        assertThat(error(ask("a", 0)).get("param").asText()).isEqualTo("n_predict");
        ObjectNode many = ask("a", 4);
        for (int i = 0; i <= 64; i++) {
            many.withArray("stop").add("stop" + i);
        }
        assertThat(error(many).get("message").asText()).contains("at most 64");
        assertThat(error(ask("a", 4).put("max_tokens", "many")).get("param").asText()).isEqualTo("max_tokens");
        ObjectNode pair = ask("a", 4);
        pair.putArray("logit_bias").addArray().add(5).add(true);
        assertThat(error(pair).get("param").asText()).isEqualTo("logit_bias");
        ObjectNode schema = ask("a", 4);
        schema.set("json_schema", MAPPER.readTree("{\"type\":\"string\",\"pattern\":\"(?=a)a+\"}"));
        JsonNode e = error(schema);
        assertThat(e.get("param").asText()).isEqualTo("json_schema");
        assertThat(e.get("code").asText()).isEqualTo("unsupported_schema");
        ObjectNode rf = ask("a", 4);
        rf.putObject("response_format").put("type", "json_schema").putObject("json_schema").set("schema", schema.get("json_schema"));
        assertThat(error(rf).get("param").asText()).as("a response_format keeps its own name")
                .isEqualTo("response_format.json_schema.schema");
        assertThat(post("/completion", ask("Once", 2)).get("tokens_predicted").asInt()).as("still serving").isEqualTo(2);
    }
}
