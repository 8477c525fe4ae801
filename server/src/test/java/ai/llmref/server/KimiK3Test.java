package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.GrammarVerdict;
import ai.llmref.server.structured.MarkerFilter;
import ai.llmref.server.structured.ReasoningStream;
import ai.llmref.server.structured.SplitStream;
import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Kimi K3, whose template writes a reply as elements of its own markup: a think element
 * ({@code <|open|>think<|sep|>} … {@code <|close|>think<|sep|>}), a response element around the
 * text, a tools section of calls, the message's end; {@code <|open|>}, {@code <|close|>},
 * {@code <|sep|>} and {@code <|end_of_msg|>} are control tokens. On stories260K with four unused
 * byte tokens made those tokens, as in Kimi K3's vocabulary. Before, tools were a 400 and the
 * markup's words ("think", "response", "message") were the content.
 */
class KimiK3Test extends ControlTokenToolsTest {
    static final int OPEN = 19;
    static final int CLOSE = 20;
    static final int SEP = 21;
    static final int END_OF_MSG = 22;
    static final ToolCalls.Format K3 = ToolCalls.Format.KIMI3;

    private static Path model;

    /**
     * stories260K with Kimi K3's markers as control tokens, and no space put before text that
     * follows one (made once a run): Kimi K3's BPE vocabulary puts none, and stories260K's would
     * make the budget's {@code <|close|>think<|sep|>} read {@code <|close|> think<|sep|>}.
     */
    static synchronized Path model() throws Exception {
        if (model == null) {
            Path marked = patched("kimi-k3", Map.of(OPEN, "<|open|>", CLOSE, "<|close|>", SEP, "<|sep|>", END_OF_MSG, "<|end_of_msg|>"));
            model = GgufPatch.with(marked, Map.of("tokenizer.ggml.add_space_prefix", false),
                    marked.resolveSibling("stories260K-kimi-k3-no-space-prefix.gguf"));
            model.toFile().deleteOnExit();
        }
        return model;
    }

    @Override
    Path patchedModel() throws Exception {
        return model();
    }

    @Override
    String templateFile() {
        return "Kimi-K3.jinja";
    }

    static final List<ToolCalls.Function> FUNCTIONS = List.of(
            new ToolCalls.Function("get_weather", GrammarVerdict.json("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\","
                    + "\"maxLength\":24},\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},\"required\":[\"city\"]}")),
            new ToolCalls.Function("get", GrammarVerdict.json("{\"type\":\"object\"}")));
    static final String WEATHER = "<|open|>call tool=\"get_weather\" index=\"1\"<|sep|><|open|>argument key=\"city\" type=\"string\"<|sep|>"
            + "Rome\nand <b>its</b> hills<|close|>argument<|sep|><|open|>argument key=\"days\" type=\"number\"<|sep|>3<|close|>argument<|sep|>"
            + "<|close|>call<|sep|>";
    static final String GET = "<|open|>call tool=\"get\" index=\"2\"<|sep|><|close|>call<|sep|>";
    static final String SECTION = "<|open|>tools<|sep|>" + WEATHER + GET + "<|close|>tools<|sep|>";

    @Test
    void theMarkersAreControlTokensAndTheTemplateIsKimiK3s() throws Exception {
        for (int t : new int[] {OPEN, CLOSE, SEP, END_OF_MSG}) {
            assertThat(vocab.tokenBytes(t, false)).as("shown as nothing").isEmpty();
        }
        assertThat(new String(vocab.tokenBytes(SEP, true), StandardCharsets.UTF_8)).isEqualTo("<|sep|>");
        String source = ToolCallsTest.template(templateFile());
        assertThat(ReasoningStream.tagsOf(source)).isSameAs(ReasoningStream.KIMI3);
        assertThat(ToolCalls.detect(new ai.llmref.server.chat.ChatTemplateRenderer(source, "", ""))).isEqualTo(K3);
    }

    /**
     * Replies as the template writes calls: values typed by their schemas (the type attribute is
     * skipped, as llama.cpp reads it), a raw string keeping its lines and tags; what is no call;
     * the grammars in llama.cpp's engine with the patched vocabulary, an empty response element
     * allowed before a forced section; the stream split anywhere.
     */
    @Test
    void repliesGrammarsAndStreams() {
        ToolCalls.Reply r = ToolCalls.parse(K3, "Checking." + SECTION, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\\nand <b>its</b> hills\",\"days\":3}");
        assertThat(r.calls().get(1).arguments()).isEqualTo("{}");
        for (String notACall : List.of(SECTION + " and words", SECTION.replace("get_weather", "nope"), SECTION.replace(" index=\"1\"", "<x"),
                SECTION.replace("key=\"city\"", "key=\"town\""), "<|open|>tools<|sep|>hello")) {
            assertThat(ToolCalls.parse(K3, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
        String forced = ToolCalls.grammar(K3, FUNCTIONS, true);
        String one = ToolCalls.grammar(K3, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(K3, FUNCTIONS, true);
        String single = "<|open|>tools<|sep|>" + WEATHER.replace("Rome\nand <b>its</b> hills", "Rome") + "<|close|>tools<|sep|>";
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, single)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "<|open|>tools<|sep|>" + GET.replace("\"2\"", "\"1\"") + "<|close|>tools<|sep|>")).as("a name that begins another")
                    .isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("<|open|>tools<|sep|><|open|>call tool=\"get_wind", single.replace(">3<", ">9<"),
                    single.replace("type=\"string\"", "type=\"number\""), single.replace(">Rome<", ">" + "x".repeat(25) + "<"),
                    single.replace("index=\"1\"", "index=\"x\""), single + " words", "{\"name\"")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, "<|close|>response<|sep|>" + single)).as("the response element the prompt opened, closed")
                .isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(forced, "<|open|>response<|sep|><|close|>response<|sep|>" + single)).as("after the think element")
                .isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(forced, "<|open|>response<|sep|>Hi<|close|>response<|sep|>" + single)).isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, SECTION.replace("Rome\nand <b>its</b> hills", "Rome"))).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, single.replace("<|close|>tools", GET + "<|close|>tools"))).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        Random rnd = new Random(23);
        for (String reply : List.of("Sure. " + SECTION, SECTION, single)) {
            SplitStream.assertReadsAsWhole(K3, FUNCTIONS, reply, rnd, 30);
        }
    }

    /** The response element's markers and the message's end are left out of a reply's text wherever they stand, split anywhere. */
    @Test
    void theResponseElementIsLeftOutOfTheText() {
        List<String> envelope = ReasoningStream.envelope(ReasoningStream.KIMI3);
        assertThat(ReasoningStream.envelope(ReasoningStream.THINK)).isEmpty();
        String reply = "<|open|>response<|sep|>Hello <|open|>there<|close|>response<|sep|>" + SECTION + "<|close|>message<|sep|>";
        String expected = "Hello <|open|>there" + SECTION;
        assertThat(MarkerFilter.strip(envelope, reply)).isEqualTo(expected);
        assertThat(MarkerFilter.strip(envelope, "a <|close|>respon")).as("a marker's start at the end is text").isEqualTo("a <|close|>respon");
        Random rnd = new Random(29);
        for (int trial = 0; trial < 50; trial++) {
            assertThat(SplitStream.filtered(new MarkerFilter.Envelope("", null, envelope), reply, rnd, 9)).isEqualTo(expected);
        }
    }

    private ObjectNode hello(int maxTokens) {
        ObjectNode b = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", maxTokens).put("temperature", 0);
        b.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        return b;
    }

    /**
     * Through the server: the prompt opens the think element (the template thinks unless
     * {@code thinking} is false), so a reply is reasoning, and a budget closes it; asked not to
     * think, the reply is the response's text. A forced call with the response element closed
     * first (a logit bias on {@code <|close|>}): its markers are no content, whole and streamed; a
     * forced call after the reasoning; the call and its result back in the history.
     */
    @Test
    void throughTheServer() throws Exception {
        JsonNode thinking = post(hello(12)).get("choices").get(0).get("message");
        assertThat(thinking.get("reasoning_content").asText()).as(thinking.toString()).isNotBlank();
        assertThat(thinking.get("content").asText()).isEmpty();
        ObjectNode answer = hello(12);
        answer.putObject("chat_template_kwargs").put("thinking", false);
        JsonNode plain = post(answer).get("choices").get(0).get("message");
        assertThat(plain.has("reasoning_content")).isFalse();
        assertThat(plain.get("content").asText()).isNotBlank();

        ObjectNode closed = ToolCallsTest.request("required");
        closed.putObject("chat_template_kwargs").put("thinking", false);
        closed.putObject("logit_bias").put(String.valueOf(CLOSE), 100);
        JsonNode raw = post(closed.deepCopy().put("reasoning_format", "none")).get("choices").get(0);
        assertThat(raw.get("finish_reason").asText()).as(raw.toString()).isEqualTo("tool_calls");
        JsonNode whole = post(closed).get("choices").get(0);
        assertThat(whole.get("finish_reason").asText()).as(whole.toString()).isEqualTo("tool_calls");
        assertThat(whole.get("message").get("content").isNull()).as("the closed response element is no content").isTrue();
        JsonNode call = whole.get("message").get("tool_calls").get(0);
        ToolCallsTest.assertValidCall(call);
        ObjectNode streamed = closed.deepCopy().put("stream", true);
        String body = server.post("/v1/chat/completions", streamed.toString()).body();
        StringBuilder args = new StringBuilder();
        for (String line : body.split("\n")) {
            if (line.startsWith("data: {")) {
                JsonNode delta = ToolCallsTest.MAPPER.readTree(line.substring(6)).get("choices").get(0).get("delta");
                assertThat(delta.hasNonNull("content") && !delta.get("content").asText().isEmpty()).as(line).isFalse();
                if (delta.has("tool_calls")) {
                    args.append(delta.get("tool_calls").get(0).get("function").get("arguments").asText());
                }
            }
        }
        assertThat(args.toString()).isEqualTo(call.get("function").get("arguments").asText());

        ToolCallsTest.assertCallAfterReasoning(post(ToolCallsTest.request("required").put("reasoning_budget_tokens", 6)), "<|open|>tools");
        JsonNode second = post(ToolCallsTest.withCallAndResult(ToolCallsTest.request("auto").put("max_tokens", 4), call, "{\"temperature\": 21}"));
        assertThat(second.get("choices").get(0).get("message").get("reasoning_content").asText()).isNotBlank();
    }
}
