package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.GrammarVerdict;
import ai.llmref.server.structured.SplitStream;
import ai.llmref.server.structured.ToolCalls;
import ai.llmref.server.structured.ToolStream;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Mistral's tool calls ({@code [TOOL_CALLS]NAME[ARGS]{...}}, Small 3.2's history adding
 * {@code [CALL_ID]ID}), whose markers are control tokens: on stories260K with three of its unused
 * byte tokens made the control tokens {@code [TOOL_CALLS]}, {@code [ARGS]} and {@code [CALL_ID]}
 * (as in Mistral's vocabulary). Such a token shows as nothing in an output, as llama-server shows
 * it, except where tools are active: there it shows as its text, so that the call can be read, and
 * a grammar may pick it (a grammar reads it as its text).
 */
class MistralToolCallsTest extends ControlTokenToolsTest {
    static final int TOOL_CALLS = 4;
    static final int ARGS = 5;
    static final int CALL_ID = 6;
    /** stories260K with Mistral's markers as control tokens (made once a run). */
    static Path model() throws Exception {
        return patched("mistral", Map.of(TOOL_CALLS, "[TOOL_CALLS]", ARGS, "[ARGS]", CALL_ID, "[CALL_ID]"));
    }

    @Override
    Path patchedModel() throws Exception {
        return model();
    }

    @Override
    String templateFile() {
        return "Mistral-Small-3.2-24B-Instruct-2506.jinja";
    }

    @Test
    void theMarkersAreControlTokensOfThePatchedVocabulary() {
        for (int t : new int[] {TOOL_CALLS, ARGS, CALL_ID}) {
            assertThat(vocab.tokenBytes(t, false)).as("shown as nothing").isEmpty();
        }
        assertThat(new String(vocab.tokenBytes(TOOL_CALLS, true), StandardCharsets.UTF_8)).isEqualTo("[TOOL_CALLS]");
        assertThat(vocab.tokenize("[TOOL_CALLS]x[ARGS]{}", false, true)).startsWith(TOOL_CALLS).contains(ARGS);
    }

    /**
     * Without tools the marker shows as nothing, as before; with tools under "auto", the model's
     * own {@code [TOOL_CALLS]} (made likely by a logit bias) shows, begins a call, and the call's
     * grammar takes over from it: a call, its id of nine characters.
     */
    @Test
    void aMarkerShowsOnlyWhereToolsAreActiveAndBeginsTheCall() throws Exception {
        ObjectNode plain = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", 4).put("temperature", 0);
        plain.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        plain.putObject("logit_bias").put(String.valueOf(TOOL_CALLS), 100);
        JsonNode none = post(plain).get("choices").get(0).get("message");
        assertThat(none.get("content").asText()).doesNotContain("[TOOL_CALLS]").doesNotContain("TOOL");

        ObjectNode auto = ToolCallsTest.request("auto").put("max_tokens", 200);
        auto.putObject("logit_bias").put(String.valueOf(TOOL_CALLS), 100);
        auto.put("parallel_tool_calls", false);
        JsonNode choice = post(auto).get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
        JsonNode call = choice.get("message").get("tool_calls").get(0);
        ToolCallsTest.assertValidCall(call);
        assertThat(call.get("id").asText()).matches("[A-Za-z0-9]{9}");
        assertThat(choice.get("message").get("content").isNull()).isTrue();
    }

    /**
     * A forced call, written through the grammar with the control tokens allowed: valid, and the
     * same streamed; then the call and its result in the history (Small 3.2 renders the id, which
     * its template requires to be nine characters) make the next prompt.
     */
    @Test
    void aForcedCallRoundTripsThroughSmall32sTemplate() throws Exception {
        ObjectNode forced = ToolCallsTest.request("required");
        forced.putObject("logit_bias").put(String.valueOf(TOOL_CALLS), 100).put(String.valueOf(ARGS), 100);
        JsonNode first = post(forced);
        JsonNode choice = first.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
        JsonNode call = choice.get("message").get("tool_calls").get(0);
        ToolCallsTest.assertValidCall(call);
        ObjectNode next = ToolCallsTest.withCallAndResult(ToolCallsTest.request("auto"), call, "{\"temperature\": 21}");
        ArrayNode messages = (ArrayNode) next.get("messages");
        ObjectNode assistant = (ObjectNode) messages.get(1);
        JsonNode second = post(next);
        assertThat(second.get("usage").get("prompt_tokens").asLong()).as("the call and its result are in the prompt")
                .isGreaterThan(first.get("usage").get("prompt_tokens").asLong() + 10);
        // an id of another form (OpenAI's, the Messages API's, a client's own), which the template
        // refuses, is given to it as nine characters derived from it, the same for the call and its result
        ((ObjectNode) assistant.get("tool_calls").get(0)).put("id", "call_1");
        ((ObjectNode) messages.get(2)).put("tool_call_id", "call_1");
        assertThat(post(next).get("usage").get("prompt_tokens").asLong()).isGreaterThan(first.get("usage").get("prompt_tokens").asLong() + 10);
        assertThat(ToolCalls.historyId(ToolCalls.Format.MISTRAL, "call_1")).matches("[A-Za-z0-9]{9}")
                .isEqualTo(ToolCalls.historyId(ToolCalls.Format.MISTRAL, "call_1")).isNotEqualTo(ToolCalls.historyId(ToolCalls.Format.MISTRAL, "call_2"));
        assertThat(ToolCalls.historyId(ToolCalls.Format.MISTRAL, "abcDEF123")).isEqualTo("abcDEF123");
        assertThat(ToolCalls.historyId(ToolCalls.Format.HERMES, "call_1")).isEqualTo("call_1");
        // the Messages API's round trip: its toolu_ id comes back and is taken
        ObjectNode anthropic = ToolCallsTest.MAPPER.createObjectNode().put("model", "stories260K").put("max_tokens", 8);
        ArrayNode am = anthropic.putArray("messages");
        am.addObject().put("role", "user").put("content", "What is the weather in Paris?");
        ObjectNode use = am.addObject().put("role", "assistant").putArray("content").addObject().put("type", "tool_use")
                .put("id", "toolu_" + call.get("id").asText()).put("name", "get_weather");
        use.set("input", ToolCallsTest.MAPPER.readTree(call.get("function").get("arguments").asText()));
        am.addObject().put("role", "user").putArray("content").addObject().put("type", "tool_result")
                .put("tool_use_id", "toolu_" + call.get("id").asText()).put("content", "21 degrees");
        anthropic.putArray("tools").addObject().put("name", "get_weather").set("input_schema",
                ToolCallsTest.MAPPER.readTree(ToolCallsTest.WEATHER_PARAMS));
        HttpResponse<String> r = server.post("/v1/messages", anthropic.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    }

    static final List<ToolCalls.Function> FUNCTIONS = List.of(
            new ToolCalls.Function("get_weather", GrammarVerdict.json("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}")),
            new ToolCalls.Function("get", GrammarVerdict.json("{\"type\":\"object\"}")));
    static final String WEATHER = "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Rome\"}";

    @Test
    void repliesGrammarsAndStreams() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.MISTRAL, "Checking.\n" + WEATHER + "[TOOL_CALLS]get[CALL_ID]abcDEF123[ARGS]{}",
                FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        assertThat(r.calls()).allSatisfy(c -> assertThat(c.id()).matches("[A-Za-z0-9]{9}"));
        for (String notACall : List.of("[TOOL_CALLS]nope[ARGS]{}", WEATHER + " and words", "[TOOL_CALLS]get[ARGS][1]",
                "[TOOL_CALLS]get{}")) {
            assertThat(ToolCalls.parse(ToolCalls.Format.MISTRAL, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
        String forced = ToolCalls.grammar(ToolCalls.Format.MISTRAL, FUNCTIONS, true);
        String one = ToolCalls.grammar(ToolCalls.Format.MISTRAL, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.MISTRAL, FUNCTIONS, true);
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, WEATHER)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "[TOOL_CALLS]get[ARGS]{}")).as("a name that begins another").isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "[TOOL_CALLS]get[CALL_ID]abcDEF123[ARGS]{}")).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("[TOOL_CALLS]get_wind", "[TOOL_CALLS]get_weather[ARGS]{}", "[TOOL_CALLS]get[CALL_ID]abc[ARGS]",
                    WEATHER + " words", "{\"name\"")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, WEATHER + "[TOOL_CALLS]get[ARGS]{}")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, WEATHER + "[")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        // the stream: split anywhere, its pieces join to the whole reply's calls
        Random rnd = new Random(3);
        String reply = "Sure. " + WEATHER + "[TOOL_CALLS]get[CALL_ID]abcDEF123[ARGS]{}";
        ToolCalls.Reply whole = ToolCalls.parse(ToolCalls.Format.MISTRAL, reply, FUNCTIONS);
        for (int trial = 0; trial < 30; trial++) {
            SplitStream.Fed fed = SplitStream.feed(ToolCalls.Format.MISTRAL, false, FUNCTIONS, reply, rnd, 5);
            ToolStream s = fed.stream();
            List<ToolStream.Piece> pieces = fed.pieces();
            assertThat(s.wellFormed()).isTrue();
            assertThat(s.content()).isEqualTo("Sure.");
            StringBuilder sent = new StringBuilder();
            pieces.stream().filter(p -> p instanceof ToolStream.Content).forEach(p -> sent.append(((ToolStream.Content) p).text()));
            assertThat(sent.toString()).isEqualTo("Sure.");
            assertThat(s.calls()).extracting(ToolCalls.Call::arguments).containsExactlyElementsOf(
                    whole.calls().stream().map(ToolCalls.Call::arguments).toList());
        }
    }

    static final String NEMO = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}, \"id\": \"abcDEF123\"}, "
            + "{\"name\": \"get\", \"arguments\": {}, \"id\": \"xyz987ABC\"}]";

    /** Mistral Nemo's list of calls after {@code [TOOL_CALLS]}: read, enforced, streamed. */
    @Test
    void nemoRepliesGrammarsAndStreams() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.MISTRAL_NEMO, "Checking. " + NEMO, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        assertThat(r.calls()).allSatisfy(c -> assertThat(c.id()).matches("[A-Za-z0-9]{9}"));
        // as the template writes the history (keys sorted), without an id, and what is no call
        assertThat(ToolCalls.parse(ToolCalls.Format.MISTRAL_NEMO,
                "[TOOL_CALLS][{\"arguments\": {\"city\": \"Oslo\"}, \"name\": \"get_weather\"}]", FUNCTIONS).calls()).hasSize(1);
        for (String notACall : List.of("[TOOL_CALLS][{\"name\": \"nope\", \"arguments\": {}}]", NEMO + " words", "[TOOL_CALLS][]",
                "[TOOL_CALLS]{\"name\": \"get\", \"arguments\": {}}")) {
            assertThat(ToolCalls.parse(ToolCalls.Format.MISTRAL_NEMO, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
        String forced = ToolCalls.grammar(ToolCalls.Format.MISTRAL_NEMO, FUNCTIONS, true);
        String one = ToolCalls.grammar(ToolCalls.Format.MISTRAL_NEMO, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.MISTRAL_NEMO, FUNCTIONS, true);
        String single = "[TOOL_CALLS][{\"name\": \"get\", \"arguments\": {}, \"id\": \"xyz987ABC\"}]";
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, single)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("[TOOL_CALLS][{\"name\": \"get\", \"arguments\": {}}]", // the id is written
                    "[TOOL_CALLS][{\"name\": \"get\", \"arguments\": {}, \"id\": \"short\"}]", "[TOOL_CALLS][{\"name\": \"nope\"",
                    single + " words")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, NEMO)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, NEMO)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, NEMO)).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        Random rnd = new Random(5);
        String reply = "Sure. " + NEMO;
        ToolCalls.Reply whole = ToolCalls.parse(ToolCalls.Format.MISTRAL_NEMO, reply, FUNCTIONS);
        for (int trial = 0; trial < 30; trial++) {
            ToolStream s = SplitStream.feed(ToolCalls.Format.MISTRAL_NEMO, false, FUNCTIONS, reply, rnd, 5).stream();
            assertThat(s.wellFormed()).isTrue();
            assertThat(s.content()).isEqualTo("Sure.");
            assertThat(s.calls()).extracting(ToolCalls.Call::arguments).containsExactlyElementsOf(
                    whole.calls().stream().map(ToolCalls.Call::arguments).toList());
        }
    }
}
