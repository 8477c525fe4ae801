package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.GrammarVerdict;
import ai.llmref.server.structured.SplitStream;
import ai.llmref.server.structured.ToolCalls;
import ai.llmref.server.structured.ToolStream;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Gemma 4 through the server: its template, and stories260K with twelve unused byte tokens made
 * Gemma 4's control tokens ({@code <|turn>}, {@code <turn|>}, {@code <|channel>}, {@code <channel|>},
 * {@code <|think|>}, the tool markers and {@code <|"|>}); llama.cpp's vocabulary rules for them
 * apply as for Gemma 4 ({@code <turn|>} and {@code <|tool_response>} end a generation). The
 * reasoning is the thought channel, {@code <|channel>thought} … {@code <channel|>}; before, its
 * markers showed as nothing and the word "thought" and the reasoning were the reply's content.
 */
class GemmaTest extends ControlTokenToolsTest {
    static final int TURN = 19;
    static final int TURN_END = 20;
    static final int CHANNEL = 21;
    static final int CHANNEL_END = 22;
    static final int THINK = 23;
    static final int CALL = 24;
    static final int CALL_END = 25;
    static final int RESPONSE = 26;
    static final int RESPONSE_END = 27;
    static final int QUOTE = 28;
    static final int TOOL = 29;
    static final int TOOL_END = 30;
    /** stories260K with Gemma 4's markers as control tokens (made once a run). */
    static Path model() throws Exception {
        return patched("gemma", Map.ofEntries(Map.entry(TURN, "<|turn>"), Map.entry(TURN_END, "<turn|>"), Map.entry(CHANNEL, "<|channel>"),
                Map.entry(CHANNEL_END, "<channel|>"), Map.entry(THINK, "<|think|>"), Map.entry(CALL, "<|tool_call>"),
                Map.entry(CALL_END, "<tool_call|>"), Map.entry(RESPONSE, "<|tool_response>"), Map.entry(RESPONSE_END, "<tool_response|>"),
                Map.entry(QUOTE, "<|\"|>"), Map.entry(TOOL, "<|tool>"), Map.entry(TOOL_END, "<tool|>")));
    }

    @Override
    Path patchedModel() throws Exception {
        return model();
    }

    @Override
    String templateFile() {
        return "google-gemma-4-31B-it.jinja";
    }

    /** The Messages API's thinking takes a budget of at least 1024 tokens. */
    @Override
    int maxTokens() {
        return 1200;
    }

    /** Verdicts with Gemma's end of a turn as the end (llama.cpp leaves stories260K's {@code </s>} out of the end tokens here). */
    @Override
    GrammarVerdict verdict(String grammar, String text) {
        return GrammarVerdict.of(vocab, grammar, text, TURN_END);
    }

    @Test
    void theMarkersAreControlTokensAsInGemmasVocabulary() {
        for (int t : new int[] {TURN, TURN_END, CHANNEL, CHANNEL_END, CALL, CALL_END, QUOTE}) {
            assertThat(vocab.tokenBytes(t, false)).as("shown as nothing").isEmpty();
        }
        assertThat(new String(vocab.tokenBytes(CHANNEL, true), StandardCharsets.UTF_8)).isEqualTo("<|channel>");
        assertThat(vocab.isEndOfGeneration(TURN_END)).isTrue();
        assertThat(vocab.isEndOfGeneration(RESPONSE)).as("a call's end waits for the response").isTrue();
        assertThat(vocab.isEndOfGeneration(CHANNEL_END)).isFalse();
        assertThat(vocab.tokenize("<|turn>model\n<|channel>thought\n<channel|>", false, true)).startsWith(TURN).contains(CHANNEL, CHANNEL_END);
    }

    /**
     * A JSON answer with thinking on (the template's default here, as llama-server passes
     * {@code enable_thinking}): the server opens the thought channel in the prompt, as Gemma 4
     * writes it, and the grammar applies after its {@code <channel|>}; a budget writes that end in
     * the model's place (the tiny model never writes it). The reasoning and the JSON come apart,
     * neither showing a marker, streamed and whole alike. Before, the channel's markers showed as
     * nothing and its text was the content.
     */
    @Test
    void aJsonAnswerComesAfterTheThoughtChannel() throws Exception {
        ObjectNode b = ReasoningTest.askJson(40);
        // Gemma's end of generation (llama.cpp leaves stories260K's </s> out of the end tokens of a
        // vocabulary with Gemma 4's): pushed, it may not end the reply before the grammar applied
        b.putObject("logit_bias").put(String.valueOf(TURN_END), 100);
        JsonNode cut = ReasoningTest.post(server, b);
        JsonNode choice = cut.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(cut.toString()).isEqualTo("length");
        assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank().doesNotContain("channel").doesNotContain("<|");
        assertThat(choice.get("message").get("content").asText()).isEmpty();
        assertThat(cut.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).isEqualTo(40);

        b.put("max_tokens", 200).put("reasoning_budget_tokens", 8).put("reasoning_budget_message", "Answer now.");
        JsonNode answered = ReasoningTest.post(server, b);
        JsonNode msg = answered.get("choices").get(0).get("message");
        assertThat(answered.get("choices").get(0).get("finish_reason").asText()).as(answered.toString()).isEqualTo("stop");
        assertThat(msg.get("reasoning_content").asText()).endsWith("Answer now.").doesNotContain("<");
        assertThat(ToolCallsTest.MAPPER.readTree(msg.get("content").asText()).get("why").isTextual()).as(msg.toString()).isTrue();
        assertThat(answered.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).isGreaterThanOrEqualTo(8)
                .isLessThan(answered.at("/usage/completion_tokens").asInt());
        ReasoningTest.Streamed s = ReasoningTest.stream(server, b);
        assertThat(s.reasoning()).isEqualTo(msg.get("reasoning_content").asText());
        assertThat(s.content()).isEqualTo(msg.get("content").asText());

        // asked not to think, the template closes an empty channel: the document from the start
        ObjectNode off = b.deepCopy();
        off.putObject("chat_template_kwargs").put("enable_thinking", false);
        JsonNode plain = ReasoningTest.post(server, off);
        JsonNode pm = plain.get("choices").get(0).get("message");
        assertThat(pm.get("content").asText()).as(plain.toString()).startsWith("{");
        assertThat(pm.has("reasoning_content")).isFalse();
        assertThat(plain.at("/usage/prompt_tokens").asInt()).as("the template's closed channel, not the server's open one")
                .isNotEqualTo(answered.at("/usage/prompt_tokens").asInt());

        // a budget message that would close the channel itself (forced text after it would not be the grammar's)
        HttpResponse<String> bad = server.post("/v1/chat/completions", b.deepCopy().put("reasoning_budget_message", "Done<channel|>").toString());
        assertThat(bad.statusCode()).as(bad.body()).isEqualTo(400);
        assertThat(bad.body()).contains("reasoning_budget_message").contains("<channel|>");
    }

    /**
     * The channel's markers show as text in a chat reply (preserved, as llama-server preserves them
     * for Gemma 4): a reply pushed to {@code <|channel>} at every step (a logit bias) shows the
     * markers, and since it never opens the thought channel ({@code <|channel>thought}) it is all
     * content, as with {@code reasoning_format: "none"}; a reply that does not open the channel
     * is all content.
     */
    @Test
    void theChannelsMarkersShowInChatReplies() throws Exception {
        ObjectNode b = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", 12).put("temperature", 0);
        b.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        b.putObject("logit_bias").put(String.valueOf(CHANNEL), 100);
        JsonNode raw = ReasoningTest.post(server, b.deepCopy().put("reasoning_format", "none"));
        String text = raw.get("choices").get(0).get("message").get("content").asText();
        assertThat(text).as(raw.toString()).startsWith("<|channel><|channel>");
        JsonNode split = ReasoningTest.post(server, b);
        JsonNode msg = split.get("choices").get(0).get("message");
        assertThat(msg.get("content").asText()).as(split.toString()).isEqualTo(text);
        b.remove("logit_bias");
        JsonNode story = ReasoningTest.post(server, b).get("choices").get(0).get("message");
        assertThat(story.get("content").asText()).as("a reply that does not open the channel is all content").isNotBlank();
        assertThat(story.has("reasoning_content")).isFalse();
    }

    static final String Q = "<|\"|>";
    static final List<ToolCalls.Function> FUNCTIONS = List.of(
            new ToolCalls.Function("get_weather", GrammarVerdict.json("""
                    {"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer","minimum":1,"maximum":7},
                     "units":{"enum":["c","f"]},"opts":{"type":"object","properties":{"tags":{"type":"array",
                     "items":{"type":"string","maxLength":8},"maxItems":3},"exact":{"type":"boolean"}},"additionalProperties":false}},
                     "required":["city"],"additionalProperties":false}""")),
            new ToolCalls.Function("get", GrammarVerdict.json("{\"type\":\"object\"}")));
    static final String WEATHER = "<|tool_call>call:get_weather{city:" + Q + "Rome, \"the\" {city}\\" + Q + ",days:3,units:" + Q + "c" + Q
            + ",opts:{tags:[" + Q + "a" + Q + "," + Q + "b" + Q + "],exact:true}}<tool_call|>";
    static final String WEATHER_JSON = "{\"city\":\"Rome, \\\"the\\\" {city}\\\\\",\"days\":3,\"units\":\"c\",\"opts\":{\"tags\":[\"a\",\"b\"],"
            + "\"exact\":true}}";
    static final String GET = "<|tool_call>call:get{}<tool_call|>";

    /**
     * Replies as the template writes calls (Gemma's notation: strings between {@code <|"|>}, keys
     * unquoted), read as JSON arguments; what is no call; the grammars in llama.cpp's engine with
     * the patched vocabulary, each value as its schema admits it; the stream split anywhere.
     */
    @Test
    void repliesGrammarsAndStreams() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.GEMMA, "Checking.\n" + WEATHER + GET, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get");
        assertThat(r.calls().getFirst().arguments()).isEqualTo(WEATHER_JSON);
        assertThat(r.calls().get(1).arguments()).isEqualTo("{}");
        assertThat(ToolCalls.parse(ToolCalls.Format.GEMMA, "<|tool_call>call:get{ a : 1.50 , " + Q + "b c" + Q + ":[ null,-2e3 ] }", FUNCTIONS)
                .calls()).as("space, a quoted key, the end left out").singleElement()
                .satisfies(c -> assertThat(c.arguments()).isEqualTo("{\"a\":1.50,\"b c\":[null,-2E+3]}"));
        for (String notACall : List.of(WEATHER + " and words", WEATHER.replace("get_weather", "nope"), WEATHER.replace(Q + "c" + Q, Q + "c"),
                "<|tool_call>call:get[1]<tool_call|>", "<|tool_call>get{}<tool_call|>", "<|tool_call>call:get{a:tru}<tool_call|>",
                "<|tool_call>call:get{a:1,}<tool_call|>", GET + "x" + GET)) {
            assertThat(ToolCalls.parse(ToolCalls.Format.GEMMA, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
        String forced = ToolCalls.grammar(ToolCalls.Format.GEMMA, FUNCTIONS, true);
        String one = ToolCalls.grammar(ToolCalls.Format.GEMMA, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.GEMMA, FUNCTIONS, true);
        String minimal = "<|tool_call>call:get_weather{city:" + Q + "Oslo" + Q + "}<tool_call|>";
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, WEATHER)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, minimal)).as("the optional ones left out").isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "<|tool_call>call:get{a:[1," + Q + "x" + Q + "],b:{c:null}}<tool_call|>")).as("a free object")
                    .isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(WEATHER.replace("days:3", "days:9"), WEATHER.replace("units:" + Q + "c", "units:" + Q + "k"),
                    minimal.replace(Q + "Oslo" + Q, "Oslo"), minimal.replace("city:", "\"city\":"), "<|tool_call>call:get_weather{days:3}",
                    minimal.replace("}<", ",wind:1}<"), WEATHER.replace("[" + Q + "a" + Q, "[" + Q + "abcdefghi" + Q),
                    WEATHER.replace("]", "," + Q + "c" + Q + "," + Q + "d" + Q + "]"), "<|tool_call>call:get_wind",
                    minimal.replace("city:" + Q + "Oslo" + Q, "days:2,city:" + Q + "Oslo" + Q), minimal + " words")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, WEATHER + GET)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, WEATHER + "\n" + GET)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, WEATHER + "<|tool_call>")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        Random rnd = new Random(7);
        for (String reply : List.of("Sure. " + WEATHER + GET, WEATHER, minimal, GET + "\n" + WEATHER)) {
            ToolCalls.Reply whole = ToolCalls.parse(ToolCalls.Format.GEMMA, reply, FUNCTIONS);
            for (int trial = 0; trial < 30; trial++) {
                SplitStream.Fed fed = SplitStream.feed(ToolCalls.Format.GEMMA, false, FUNCTIONS, reply, rnd, 5);
                ToolStream st = fed.stream();
                assertThat(st.wellFormed()).as(reply).isTrue();
                assertThat(st.content()).isEqualTo(whole.content());
                assertThat(st.calls()).extracting(ToolCalls.Call::arguments)
                        .containsExactlyElementsOf(whole.calls().stream().map(ToolCalls.Call::arguments).toList());
                assertThat(fed.pieces().stream().filter(p -> p instanceof ToolStream.CallArguments).count()).as("piece by piece")
                        .isGreaterThan(whole.calls().size() * 2L);
            }
        }
    }

    /**
     * What the notation cannot enforce is a 400 naming the keyword (a pattern on a string, a
     * schema for extra keys, a key it cannot write), not a call the schema would refuse.
     */
    @Test
    void whatTheNotationCannotEnforceIsRefused() throws Exception {
        for (String[] c : new String[][] {{"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^x\"}}}", "pattern"},
                {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"additionalProperties\":{\"type\":\"string\"}}",
                        "additionalProperties"},
                {"{\"type\":\"object\",\"properties\":{\"a b\":{\"type\":\"string\"}}}", "properties"},
                {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"date\"}}}", "format"}}) {
            ObjectNode b = ToolCallsTest.request("required");
            ((ObjectNode) b.get("tools").get(0).get("function")).set("parameters", ToolCallsTest.MAPPER.readTree(c[0]));
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
            assertThat(r.body()).as(c[0]).contains("tools/0/function/parameters").contains(c[1]);
        }
    }

    /**
     * Without tools the call markers show as nothing; with tools under "auto", the model's own
     * {@code <|tool_call>} (made likely by a logit bias) shows, begins the call, and the grammar
     * takes over from it: a valid call. A forced call through the template (thinking off: the tiny
     * model would think to max_tokens), and the call and its result back in the history (the
     * template writes the result as {@code <|tool_response>response:NAME{...}}).
     */
    @Test
    void callsThroughTheServer() throws Exception {
        ObjectNode plain = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", 4).put("temperature", 0);
        plain.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        plain.putObject("logit_bias").put(String.valueOf(CALL), 100);
        assertThat(post(plain).get("choices").get(0).get("message").get("content").asText()).doesNotContain("tool_call");

        ObjectNode auto = ToolCallsTest.withoutThinking(ToolCallsTest.request("auto").put("max_tokens", 200).put("parallel_tool_calls", false));
        auto.putObject("logit_bias").put(String.valueOf(CALL), 100);
        JsonNode choice = post(auto).get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
        ToolCallsTest.assertValidCall(choice.get("message").get("tool_calls").get(0));
        assertThat(choice.get("message").get("content").isNull()).isTrue();

        JsonNode first = post(ToolCallsTest.withoutThinking(ToolCallsTest.request("required")));
        JsonNode forced = first.get("choices").get(0);
        assertThat(forced.get("finish_reason").asText()).as(forced.toString()).isEqualTo("tool_calls");
        JsonNode call = forced.get("message").get("tool_calls").get(0);
        ToolCallsTest.assertValidCall(call);
        JsonNode second = post(ToolCallsTest.withoutThinking(ToolCallsTest.withCallAndResult(ToolCallsTest.request("auto"), call,
                "{\"temperature\": 21}")));
        assertThat(second.get("usage").get("prompt_tokens").asLong()).as("the call and its result are in the prompt")
                .isGreaterThan(first.get("usage").get("prompt_tokens").asLong() + 10);
    }

    /** With thinking on (the default), a forced call comes after the thought channel: a budget closes it for the tiny model. */
    @Test
    void aForcedCallComesAfterTheThoughtChannel() throws Exception {
        ToolCallsTest.assertCallAfterReasoning(post(ToolCallsTest.request("required").put("reasoning_budget_tokens", 8)), "<");
    }

    /**
     * Anthropic's Messages API with thinking on and a call required: the thought channel is the
     * thinking block (its budget closes it for the tiny model), the call a tool_use block whose
     * input is valid; streamed, the same thinking and the same input.
     */
    @Test
    void theMessagesApiGetsTheThinkingAndTheCall() throws Exception {
        ObjectNode body = ToolCallsTest.MAPPER.createObjectNode().put("model", "stories260K").put("max_tokens", 1200)
                .put("temperature", 0);
        body.putObject("thinking").put("type", "enabled").put("budget_tokens", 1024);
        body.putArray("messages").addObject().put("role", "user").put("content", "What is the weather in Paris?");
        body.putArray("tools").addObject().put("name", "get_weather").put("description", "Current weather at a place")
                .set("input_schema", ToolCallsTest.params("get_weather"));
        body.putObject("tool_choice").put("type", "any").put("disable_parallel_tool_use", true);
        HttpResponse<String> r = server.post("/v1/messages", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode reply = ToolCallsTest.MAPPER.readTree(r.body());
        JsonNode content = reply.get("content");
        assertThat(reply.get("stop_reason").asText()).as(r.body()).isEqualTo("tool_use");
        assertThat(content.get(0).get("type").asText()).as(r.body()).isEqualTo("thinking");
        String thinking = content.get(0).get("thinking").asText();
        assertThat(thinking).isNotBlank().doesNotContain("<");
        JsonNode use = content.get(content.size() - 1);
        assertThat(use.get("type").asText()).isEqualTo("tool_use");
        assertThat(use.get("name").asText()).isEqualTo("get_weather");
        assertThat(ai.llmref.server.structured.SchemaCorpus.referenceErrors(ToolCallsTest.params("get_weather"), use.get("input").toString()))
                .isEmpty();
        body.put("stream", true);
        HttpResponse<String> st = server.post("/v1/messages", body.toString());
        StringBuilder streamedThinking = new StringBuilder();
        StringBuilder input = new StringBuilder();
        for (String line : st.body().split("\n")) {
            if (line.startsWith("data: {")) {
                JsonNode delta = ToolCallsTest.MAPPER.readTree(line.substring(6)).path("delta");
                if (delta.path("type").asText().equals("thinking_delta")) {
                    streamedThinking.append(delta.get("thinking").asText());
                } else if (delta.path("type").asText().equals("input_json_delta")) {
                    input.append(delta.get("partial_json").asText());
                }
            }
        }
        assertThat(streamedThinking.toString()).isEqualTo(thinking);
        assertThat(ToolCallsTest.MAPPER.readTree(input.toString())).isEqualTo(use.get("input"));
    }
}
