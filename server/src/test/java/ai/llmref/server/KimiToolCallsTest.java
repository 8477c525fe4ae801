package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.GrammarVerdict;
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
 * Kimi K2's tool calls, {@code <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:0
 * <|tool_call_argument_begin|>{...}<|tool_call_end|>...<|tool_calls_section_end|>}, whose markers
 * are control tokens: on stories260K with five of its unused byte tokens made those control
 * tokens, as in Kimi's vocabulary. They show as nothing in an output except where tools are
 * active (preserved, as llama-server's Kimi K2 format preserves them).
 */
class KimiToolCallsTest extends ControlTokenToolsTest {
    static final int SECTION = 26;
    static final int CALL = 27;
    static final int ARGS = 28;
    static final int CALL_END = 29;
    static final int SECTION_END = 30;
    /** stories260K with Kimi's markers as control tokens (made once a run). */
    static Path model() throws Exception {
        return patched("kimi", Map.of(SECTION, "<|tool_calls_section_begin|>", CALL, "<|tool_call_begin|>", ARGS,
                "<|tool_call_argument_begin|>", CALL_END, "<|tool_call_end|>", SECTION_END, "<|tool_calls_section_end|>"));
    }

    @Override
    Path patchedModel() throws Exception {
        return model();
    }

    @Override
    String templateFile() {
        return "Kimi-K2-Instruct.jinja";
    }

    @Test
    void theMarkersAreControlTokensOfThePatchedVocabulary() {
        for (int t : new int[] {SECTION, CALL, ARGS, CALL_END, SECTION_END}) {
            assertThat(vocab.tokenBytes(t, false)).as("shown as nothing").isEmpty();
        }
        assertThat(new String(vocab.tokenBytes(CALL, true), StandardCharsets.UTF_8)).isEqualTo("<|tool_call_begin|>");
        assertThat(vocab.tokenize("<|tool_calls_section_begin|><|tool_call_begin|>functions.get:0<|tool_call_argument_begin|>{}",
                false, true)).startsWith(SECTION, CALL).contains(ARGS);
    }

    static final List<ToolCalls.Function> FUNCTIONS = List.of(
            new ToolCalls.Function("get_weather", GrammarVerdict.json("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
                    + "\"required\":[\"city\"]}")),
            new ToolCalls.Function("get", GrammarVerdict.json("{\"type\":\"object\"}")));
    static final String WEATHER = "<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"Rome\"}<|tool_call_end|>";
    static final String GET = "<|tool_call_begin|>functions.get:1<|tool_call_argument_begin|>{}<|tool_call_end|>";
    static final String SECTION_OF_TWO = "<|tool_calls_section_begin|>" + WEATHER + GET + "<|tool_calls_section_end|>";

    /**
     * Replies as the template writes calls (a section of calls, each with its id's index), and
     * without the section's start or a call's end, as llama.cpp reads them; what is no call; the
     * grammars in llama.cpp's engine with the patched vocabulary; the stream split anywhere.
     */
    @Test
    void repliesGrammarsAndStreams() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.KIMI, "Checking.\n" + SECTION_OF_TWO, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        assertThat(ToolCalls.parse(ToolCalls.Format.KIMI, WEATHER, FUNCTIONS).calls()).as("no section").hasSize(1);
        assertThat(ToolCalls.parse(ToolCalls.Format.KIMI, WEATHER.replace("<|tool_call_end|>", "") + "<|tool_calls_section_end|>", FUNCTIONS)
                .calls()).as("no call end").hasSize(1);
        for (String notACall : List.of(SECTION_OF_TWO + " and words", SECTION_OF_TWO.replace("get_weather", "nope"),
                WEATHER.replace(":0", ":"), WEATHER.replace("functions.", ""), "<|tool_calls_section_begin|>hello")) {
            assertThat(ToolCalls.parse(ToolCalls.Format.KIMI, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
        String forced = ToolCalls.grammar(ToolCalls.Format.KIMI, FUNCTIONS, true);
        String one = ToolCalls.grammar(ToolCalls.Format.KIMI, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.KIMI, FUNCTIONS, true);
        String single = "<|tool_calls_section_begin|>" + WEATHER + "<|tool_calls_section_end|>";
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, single)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "<|tool_calls_section_begin|>" + GET + "<|tool_calls_section_end|>")).as("a name that begins another")
                    .isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("<|tool_calls_section_begin|><|tool_call_begin|>functions.get_wind",
                    "<|tool_calls_section_begin|>" + WEATHER.replace("{\"city\": \"Rome\"}", "{}"),
                    "<|tool_calls_section_begin|>" + WEATHER.replace(":0", ":x"), single + " words", "{\"name\"")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, SECTION_OF_TWO)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, SECTION_OF_TWO)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, WEATHER + "<|tool_calls_section_end|>")).as("from a call, the section's start left out")
                .isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, "<|tool_calls_section_begin|>" + WEATHER + "<|tool_call_begin|>")).as("one call only")
                .isEqualTo(GrammarVerdict.REFUSED);
        Random rnd = new Random(5);
        for (String reply : List.of("Sure. " + SECTION_OF_TWO, SECTION_OF_TWO, WEATHER + "<|tool_calls_section_end|>")) {
            SplitStream.assertReadsAsWhole(ToolCalls.Format.KIMI, FUNCTIONS, reply, rnd, 30);
        }
    }

    /**
     * Without tools the markers show as nothing; with tools under "auto", the model's own
     * {@code <|tool_calls_section_begin|>} (made likely by a logit bias) shows, begins the calls,
     * and the grammar takes over from it: a valid call. A forced call through the template, and
     * the call and its result back in the history (the template writes the result under the
     * call's {@code functions.NAME:0}).
     */
    @Test
    void callsThroughTheServer() throws Exception {
        ObjectNode plain = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", 4).put("temperature", 0);
        plain.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        plain.putObject("logit_bias").put(String.valueOf(SECTION), 100);
        assertThat(post(plain).get("choices").get(0).get("message").get("content").asText()).doesNotContain("tool_calls_section");

        ObjectNode auto = ToolCallsTest.request("auto").put("max_tokens", 200).put("parallel_tool_calls", false);
        auto.putObject("logit_bias").put(String.valueOf(SECTION), 100);
        JsonNode choice = post(auto).get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
        ToolCallsTest.assertValidCall(choice.get("message").get("tool_calls").get(0));
        assertThat(choice.get("message").get("content").isNull()).isTrue();

        JsonNode first = post(ToolCallsTest.request("required"));
        JsonNode forced = first.get("choices").get(0);
        assertThat(forced.get("finish_reason").asText()).as(forced.toString()).isEqualTo("tool_calls");
        JsonNode call = forced.get("message").get("tool_calls").get(0);
        ToolCallsTest.assertValidCall(call);
        JsonNode second = post(ToolCallsTest.withCallAndResult(ToolCallsTest.request("auto"), call, "{\"temperature\": 21}"));
        assertThat(second.get("usage").get("prompt_tokens").asLong()).as("the call and its result are in the prompt")
                .isGreaterThan(first.get("usage").get("prompt_tokens").asLong() + 10);
    }
}
