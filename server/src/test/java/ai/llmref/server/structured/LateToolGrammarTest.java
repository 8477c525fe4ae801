package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.llama.Vocabulary;
import java.util.List;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;

/**
 * The grammar that applies once a model begins a call under tool_choice "auto"
 * ({@link ToolCalls#lateGrammar}), in llama.cpp's grammar engine with a real vocabulary, advanced
 * over replies from the call's start as the engine advances it: calls as models write them are
 * allowed and may end the reply; text that is not a call, an undeclared function, arguments
 * against their schema, and text after the calls are refused.
 */
class LateToolGrammarTest extends StoriesVocabularyTest {

    private static final String WEATHER = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>";
    private static final String TIME = "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>";

    @Test
    void hermesCallsAreAllowedAndAnythingElseIsRefused() {
        String several = ToolCalls.lateGrammar(ToolCalls.Format.HERMES, ToolCallsParseTest.FUNCTIONS, true);
        String one = ToolCalls.lateGrammar(ToolCalls.Format.HERMES, ToolCallsParseTest.FUNCTIONS, false);
        assertThat(verdict(several, WEATHER)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(several, WEATHER + "\n")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(several, WEATHER + "\n" + TIME)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(several, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Ro")).isEqualTo(GrammarVerdict.GOES_ON);
        assertThat(verdict(several, "<tool_call>")).isEqualTo(GrammarVerdict.GOES_ON);
        assertThat(verdict(one, WEATHER)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, WEATHER + "\n<")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        for (String refused : List.of(
                "<tool_call> tag in prose",
                "<tool_call>\n{\"name\": \"nope\"",
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}", // city is required
                "<tool_call>\n{\"arguments\": {}, \"name\": \"get_time\"}",
                WEATHER + " and some words",
                WEATHER + "\n\n\n\n\n\n" + TIME)) { // at most four spaces between blocks
            assertThat(verdict(several, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
        }
    }

    @Test
    void llama3CallsBeginTheReply() {
        String g = ToolCalls.lateGrammar(ToolCalls.Format.LLAMA3_JSON, ToolCallsParseTest.FUNCTIONS, true);
        assertThat(verdict(g, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(g, "<|python_tag|>{\"name\": \"get_time\", \"parameters\": {}}")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(g, "{\"name\": \"get_time\", \"parameters\": {}} more")).isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(g, "{\"name\": \"get_time\", \"arguments\": {}}")).isEqualTo(GrammarVerdict.REFUSED);
        for (String opening : List.of("{\"name\": \"", "  {\"name\":\"", "\n<|python_tag|>{ \"name\" : \"")) {
            Matcher m = ToolCalls.LLAMA3_OPENING.matcher(opening + "get_time\"");
            assertThat(m.lookingAt()).as(opening).isTrue();
            assertThat(opening.substring(0, m.start(1))).isBlank();
        }
        for (String not : List.of("{\"nam", "Sure: {\"name\": \"", "{\"title\": \"")) {
            Matcher m = ToolCalls.LLAMA3_OPENING.matcher(not);
            assertThat(m.lookingAt()).as(not).isFalse();
            assertThat(m.hitEnd()).as("whether more text could still open a call: " + not).isEqualTo(not.equals("{\"nam"));
        }
    }

    /**
     * Nemotron Nano v2's and Apriel's calls, a JSON list in the format's block, under "auto" from
     * the block's start, and forced: lists of calls as the templates write them are allowed;
     * an undeclared function, arguments against their schema, a second call where one is
     * allowed, a list not closed by the block's end and text after it are refused.
     */
    @Test
    void aJsonListOfCallsInItsBlock() {
        for (ToolCalls.Format f : List.of(ToolCalls.Format.NEMOTRON_V2, ToolCalls.Format.APRIEL)) {
            String open = ToolCalls.block(f).open();
            String close = ToolCalls.block(f).close();
            String weather = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
            String time = "{\"name\": \"get_time\", \"arguments\": {}}";
            String late = ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true);
            String lateOne = ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, false);
            String forced = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true);
            assertThat(verdict(late, open + "[" + weather + ", " + time + "]" + close)).as(f.name()).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(late, open + "\n[" + weather + "]" + close + "\n")).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(forced, open + "[" + weather + ", " + time + "]" + close)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(lateOne, open + "[" + weather + "]" + close)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(lateOne, open + "[" + weather + ",")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
            assertThat(verdict(late, open + "[" + weather + "]")).as("the block must close").isEqualTo(GrammarVerdict.GOES_ON);
            for (String refused : List.of(open + "[{\"name\": \"nope\"", open + "[" + weather.replace("\"city\": \"Rome\"", "") + "]",
                    open + "[" + weather + "]" + close + " words", open + weather, open + "[]")) {
                assertThat(verdict(late, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
                assertThat(verdict(forced, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
    }

    /** MiniMax M1's calls, a line each in their block, forced (the template's layout) and under "auto". */
    @Test
    void miniMaxM1CallsALineEach() {
        ToolCalls.Format f = ToolCalls.Format.MINIMAX_M1;
        String weather = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
        String time = "{\"name\": \"get_time\", \"arguments\": {}}";
        String reply = "<tool_calls>\n" + weather + "\n" + time + "\n</tool_calls>";
        String forced = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true);
        String late = ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true);
        String lateOne = ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, false);
        assertThat(verdict(forced, reply)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, reply + "\n")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(lateOne, "<tool_calls>\n" + weather + "\n</tool_calls>")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(lateOne, "<tool_calls>\n" + weather + "\n{")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, false), reply)).as("one call only")
                .isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(late, "<tool_calls>\n" + weather)).as("the block must close").isEqualTo(GrammarVerdict.GOES_ON);
        for (String refused : List.of("<tool_calls>\n{\"name\": \"nope\"", "<tool_calls>\n[" + weather, reply + " words",
                reply.replace("\"city\": \"Rome\"", ""), "<tool_calls>\n</tool_calls>")) {
            assertThat(verdict(late, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            assertThat(verdict(forced, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
        }
    }

    /** DeepSeek R1's calls (fenced JSON arguments in one block), forced (the template's layout) and under "auto". */
    @Test
    void deepSeekR1CallsInTheirBlock() {
        ToolCalls.Format f = ToolCalls.Format.DEEPSEEK_R1;
        String weather = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Rome\"}\n```<｜tool▁call▁end｜>";
        String time = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜>";
        String reply = "<｜tool▁calls▁begin｜>" + weather + "\n" + time + "<｜tool▁calls▁end｜>";
        String forced = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true);
        String late = ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true);
        String one = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, false);
        assertThat(verdict(forced, reply)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, reply + "\n")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, "<｜tool▁calls▁begin｜>" + weather + "<｜tool▁calls▁end｜>")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, reply)).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(late, "<｜tool▁calls▁begin｜>" + weather)).as("the block must close").isEqualTo(GrammarVerdict.GOES_ON);
        for (String refused : List.of(reply.replace("get_weather", "nope"), reply.replace("```json", "```"), reply + " words",
                reply.replace("\"city\": \"Rome\"", ""), "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>")) {
            assertThat(verdict(late, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            assertThat(verdict(forced, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
        }
    }

    /** Functionary v3.1's calls ({@code <function=NAME>{...}</function>}, one after another), forced and under "auto". */
    @Test
    void functionaryCallsAreElements() {
        ToolCalls.Format f = ToolCalls.Format.FUNCTIONARY_V31;
        String weather = "<function=get_weather>{\"city\": \"Rome\"}</function>";
        String time = "<function=get_time>{}</function>";
        String forced = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true);
        String late = ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true);
        String one = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, false);
        assertThat(verdict(forced, weather + time)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, weather + "\n" + time + "\n")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, weather)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, weather + time)).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(late, weather.replace("</function>", ""))).as("the element must close").isEqualTo(GrammarVerdict.GOES_ON);
        for (String refused : List.of(weather.replace("get_weather", "nope"), weather.replace("\"city\": \"Rome\"", ""), weather + " words",
                "<function=get_time></function>", "<function=get_time>[]")) {
            assertThat(verdict(late, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            assertThat(verdict(forced, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
        }
    }

    /** GigaChat 3.1's one call after its marker, forced and under "auto": a second call is refused either way. */
    @Test
    void gigaChatCallsOnceAfterItsMarker() {
        ToolCalls.Format f = ToolCalls.Format.GIGACHAT;
        String call = "<|function_call|>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
        for (String g : List.of(ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true), ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true))) {
            assertThat(verdict(g, call)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "<|function_call|>{\"name\": \"get_time\", \"arguments\": {\"timezone\": \"UTC\"}}"))
                    .isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(call + call, call.replace("get_weather", "nope"), call.replace("\"city\": \"Rome\"", ""),
                    call + " words", "<|function_call|>[")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
    }

    /** GigaChat 3's one call as a message after its separators, forced and under "auto": the separators exact, a second call refused. */
    @Test
    void gigaChat3CallsOnceInAMessageOfItsOwn() {
        ToolCalls.Format f = ToolCalls.Format.GIGACHAT3;
        String open = "<|message_sep|>\n\nfunction call<|role_sep|>\n";
        String call = open + "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
        for (String g : List.of(ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true), ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true))) {
            assertThat(verdict(g, call)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, open + "{\"name\": \"get_time\", \"arguments\": {\"timezone\": \"UTC\"}}")).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(call + call, call.replace("get_weather", "nope"), call.replace("\"city\": \"Rome\"", ""),
                    call + " words", open + "[", call.replace("function call", "function_call"), call.replace("\n\n", "\n"))) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
    }

    /** Apertus's list of calls keyed by name, forced and under "auto". */
    @Test
    void apertusCallsAreKeyedByName() {
        ToolCalls.Format f = ToolCalls.Format.APERTUS;
        String reply = "<|tools_prefix|>[{\"get_weather\": {\"city\": \"Rome\"}}, {\"get_time\": {}}]<|tools_suffix|>";
        String one = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, false);
        for (String g : List.of(ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true), ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true))) {
            assertThat(verdict(g, reply)).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(reply.replace("get_weather", "nope"), reply.replace("\"city\": \"Rome\"", ""), reply + " words",
                    "<|tools_prefix|>[{\"name\": \"get_time\"", "<|tools_prefix|>[]")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(one, "<|tools_prefix|>[{\"get_time\": {}}]<|tools_suffix|>")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, reply)).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
    }

    /** Granite 3.3's list of calls after its marker, forced and under "auto". */
    @Test
    void graniteListsItsCalls() {
        ToolCalls.Format f = ToolCalls.Format.GRANITE;
        String weather = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
        String reply = "<|tool_call|>[" + weather + ", {\"name\": \"get_time\", \"arguments\": {}}]";
        String one = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, false);
        for (String g : List.of(ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true), ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true))) {
            assertThat(verdict(g, reply)).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(reply.replace("get_weather", "nope"), reply.replace("\"city\": \"Rome\"", ""), reply + " words",
                    "<|tool_call|>" + weather, "<|tool_call|>[]")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(one, "<|tool_call|>[" + weather + "]")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, reply)).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
    }

    /**
     * LFM2's calls in Python's notation, forced and under "auto": the declared parameters in the
     * schema's order, the required ones always, an optional one left out or not, ", " between
     * them; JSON values valid under their schemas.
     */
    @Test
    void lfm2CallsArePythonCalls() {
        ToolCalls.Format f = ToolCalls.Format.LFM2;
        List<ToolCalls.Function> functions = List.of(new ToolCalls.Function("get_weather", ToolCallsParseTest.json(
                "{\"type\":\"object\",\"properties\":{\"unit\":{\"enum\":[\"c\",\"f\"]},\"city\":{\"type\":\"string\",\"maxLength\":8},"
                        + "\"days\":{\"type\":\"integer\",\"minimum\":1}},\"required\":[\"city\"]}")),
                new ToolCalls.Function("get_time", ToolCallsParseTest.json("{\"type\":\"object\"}")));
        String open = "<|tool_call_start|>[";
        String close = "]<|tool_call_end|>";
        String forced = ToolCalls.grammar(f, functions, true);
        String late = ToolCalls.lateGrammar(f, functions, true);
        String one = ToolCalls.grammar(f, functions, false);
        for (String g : List.of(forced, late, one)) {
            for (String call : List.of("get_weather(city=\"Rome\")", "get_weather(unit=\"c\", city=\"Rome\")",
                    "get_weather(city=\"Rome\", days=3)", "get_weather(unit=\"f\", city=\"Rome\", days=2)", "get_time()")) {
                assertThat(verdict(g, open + call + close)).as(call).isEqualTo(GrammarVerdict.MAY_END);
            }
            for (String refused : List.of("get_weather()", "get_weather(days=3)", "get_weather(city=\"Rome\", unit=\"c\")",
                    "get_weather(city=\"Romeeeeee\")", "get_weather(city=\"Rome\",days=3)",
                    "get_weather(city=\"Rome\", days=0)", "get_wind()", "get_weather(city=\"Rome\") words")) {
                assertThat(verdict(g, open + refused + close)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, open + "get_time(), get_weather(city=\"Rome\")" + close)).isEqualTo(GrammarVerdict.MAY_END);
        // a string parameter with only length bounds may be in single quotes (LFM2.5's template writes them so); an enum's not
        assertThat(verdict(forced, open + "get_weather(city='Rome\\'s')" + close)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(forced, open + "get_weather(city='Romeeeeee')" + close)).as("its bounds").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, open + "get_weather(unit='c', city='Rome')" + close)).isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, open + "get_weather(city='Ro'me')" + close)).isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(one, open + "get_time(), get_time()" + close)).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(late, open + "get_time()")).as("the list must close").isEqualTo(GrammarVerdict.GOES_ON);
        assertThatThrownBy(() -> ToolCalls.grammar(f, List.of(new ToolCalls.Function("f", ToolCallsParseTest.json(
                "{\"type\":\"object\",\"properties\":{\"a b\":{\"type\":\"string\"}}}"))), true)).isInstanceOf(SchemaException.class)
                .hasMessageContaining("Python call format");
    }

    /**
     * Functionary v3.2's messages to functions: forced, from the reply's start (its prompt ends
     * with {@code >>>}); under "auto", from a message to a declared function ({@code >>>NAME} and
     * a line break; {@code >>>all}, text's recipient, begins none).
     */
    @Test
    void functionaryV32CallsAreMessagesToFunctions() {
        ToolCalls.Format f = ToolCalls.Format.FUNCTIONARY_V32;
        String weather = "get_weather\n{\"city\": \"Rome\"}";
        String forced = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true);
        String one = ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true);
        assertThat(verdict(forced, weather + ">>>get_time\n{}")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, weather)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, weather + ">>>get_time\n{}")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(late, ">>>" + weather + "\n>>>get_time\n{}")).isEqualTo(GrammarVerdict.MAY_END);
        for (String refused : List.of("all\nHello", "get_wind\n{}", weather.replace("\"city\": \"Rome\"", ""), weather + " words")) {
            assertThat(verdict(forced, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            assertThat(verdict(late, ">>>" + refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
        }
        assertThat(ToolCalls.openings(f, ToolCallsParseTest.FUNCTIONS)).containsExactly(">>>get_weather\n", ">>>get_time\n");
    }

    /** Cohere's list of calls (id, then name, then parameters), with the template's line breaks, forced and under "auto". */
    @Test
    void commandRPlusCallsInAFencedList() {
        String call = "{\"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}";
        String reply = "Action:\n```json\n[\n    " + call + "\n]```";
        ToolCalls.Format f = ToolCalls.Format.COMMAND_R;
        for (String g : List.of(ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true), ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true))) {
            assertThat(verdict(g, reply)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, reply.replace(call, call + ",\n    " + call))).as("two calls").isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(reply.replace("tool_name", "name"), reply.replace("```json", "```"),
                    reply.replace("get_weather", "directly-answer"), reply + " words", reply.replace("[\n    " + call + "\n]", "[]"))) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        // under "auto" the model's own spacing: "Action: ```json" on one line, the fence closed on a line of its own
        assertThat(verdict(ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, false), "Action: ```json\n[" + call + "]\n```\n"))
                .isEqualTo(GrammarVerdict.MAY_END);
    }

    /** Solar Open's calls back to back in their block, an id of ten lowercase letters and digits each; the block's end optional. */
    @Test
    void solarCallsBackToBack() {
        ToolCalls.Format f = ToolCalls.Format.SOLAR;
        String call = "<|tool_call:begin|>a1b2c3d4e5<|tool_call:name|>get_weather<|tool_call:args|>{\"city\": \"Rome\"}<|tool_call:end|>";
        for (String g : List.of(ToolCalls.grammar(f, ToolCallsParseTest.FUNCTIONS, true), ToolCalls.lateGrammar(f, ToolCallsParseTest.FUNCTIONS, true))) {
            for (String reply : List.of("<|tool_calls|>" + call, "<|tool_calls|>" + call + "<|calls|>", "<|tool_calls|>" + call + call)) {
                assertThat(verdict(g, reply)).as(reply).isEqualTo(GrammarVerdict.MAY_END);
            }
            for (String refused : List.of("<|tool_calls|>" + call.replace("a1b2c3d4e5", "A1B2C3D4E5"), "<|tool_calls|>" + call.replace("e5<", "e<"),
                    "<|tool_calls|>" + call.replace("get_weather", "nope"), "<|tool_calls|>" + call + "<|calls|> words",
                    "<|tool_calls|>" + call.replace("\"city\": \"Rome\"", ""), "<|tool_calls|><|calls|>")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
    }

    /** DeepSeek V3.1's calls back to back in R1's block, and Firefunction v2's list after {@code functools}. */
    @Test
    void deepSeekV31AndFirefunctionCalls() {
        String call = "<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Rome\"}<｜tool▁call▁end｜>";
        ToolCalls.Format v31 = ToolCalls.Format.DEEPSEEK_V31;
        for (String g : List.of(ToolCalls.grammar(v31, ToolCallsParseTest.FUNCTIONS, true), ToolCalls.lateGrammar(v31, ToolCallsParseTest.FUNCTIONS, true))) {
            assertThat(verdict(g, "<｜tool▁calls▁begin｜>" + call + call + "<｜tool▁calls▁end｜>")).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("<｜tool▁calls▁begin｜>" + call.replace("get_weather", "nope"), "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>",
                    "<｜tool▁calls▁begin｜>" + call + "<｜tool▁calls▁end｜> words", "<｜tool▁calls▁begin｜>" + call.replace("\"city\": \"Rome\"", ""))) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        ToolCalls.Format ff = ToolCalls.Format.FIREFUNCTION;
        String list = "functools[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}, {\"name\": \"get_time\", \"arguments\": {}}]";
        assertThat(verdict(ToolCalls.grammar(ff, ToolCallsParseTest.FUNCTIONS, true), " " + list)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(ToolCalls.lateGrammar(ff, ToolCallsParseTest.FUNCTIONS, true), list)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(ToolCalls.grammar(ff, ToolCallsParseTest.FUNCTIONS, false), " " + list)).as("one call").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(ToolCalls.lateGrammar(ff, ToolCallsParseTest.FUNCTIONS, true), list.replace("get_time", "nope")))
                .isEqualTo(GrammarVerdict.REFUSED);
    }

    @Test
    void cohereCallsInTheirBlock() {
        String call = "{\"tool_call_id\": \"0\", \"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}";
        String reply = "<|START_ACTION|>[\n    " + call + "\n]<|END_ACTION|>";
        for (String g : List.of(ToolCalls.grammar(ToolCalls.Format.COHERE, ToolCallsParseTest.FUNCTIONS, true),
                ToolCalls.lateGrammar(ToolCalls.Format.COHERE, ToolCallsParseTest.FUNCTIONS, true))) {
            assertThat(verdict(g, reply)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, reply.replace(call, call + ",\n    " + call.replace("\"0\"", "\"1\"")))).as("two calls")
                    .isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(reply.replace("tool_name", "name"), reply.replace("\"0\"", "\"x\""),
                    reply.replace("get_weather", "nope"), reply + " words")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
    }
}
