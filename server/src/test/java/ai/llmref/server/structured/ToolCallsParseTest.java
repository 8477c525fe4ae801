package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.server.chat.ChatTemplateRenderer;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Tool-call output parsing, format detection and grammar building (unit tier: no native library). */
class ToolCallsParseTest {
    static final List<ToolCalls.Function> FUNCTIONS = List.of(
            new ToolCalls.Function("get_weather", json("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}")),
            new ToolCalls.Function("get_time", json("{\"type\":\"object\"}")));

    /** A reply that holds no call of the format: its whole text is the content (nothing lost). */
    static void assertNoCall(ToolCalls.Format f, List<ToolCalls.Function> functions, String reply) {
        ToolCalls.Reply r = ToolCalls.parse(f, reply, functions);
        assertThat(r.calls()).as(f + ": " + reply).isEmpty();
        assertThat(r.content()).isEqualTo(reply);
    }

    /**
     * A reply "Sure. " and calls, streamed in random pieces (the grammar applying from the calls'
     * start, as under "auto"): well-formed, the content before the calls, the calls' arguments.
     */
    static void assertSplitStreams(ToolCalls.Format f, List<ToolCalls.Function> functions, String reply, long seed, String... arguments) {
        Random rnd = new Random(seed);
        for (int trial = 0; trial < 30; trial++) {
            SplitStream.Fed fed = SplitStream.feed(f, false, functions, reply, rnd, 5);
            assertThat(fed.stream().wellFormed()).as(reply).isTrue();
            assertThat(fed.stream().content()).isEqualTo("Sure.");
            assertThat(fed.stream().calls()).extracting(ToolCalls.Call::arguments).containsExactly(arguments);
        }
    }

    static com.fasterxml.jackson.databind.JsonNode json(String s) {
        try {
            return SchemaCorpus.MAPPER.readTree(s);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * A number whose exponent is beyond a BigDecimal's (the grammars' numbers may have 16 exponent
     * digits, as llama.cpp's) is kept as written, as the stream passes it on; a whole reply's call
     * holding one was read as no call (found by {@code ToolGrammarFuzzTest}).
     */
    @Test
    void aNumberWhoseExponentIsBeyondABigDecimalsIsKeptAsWritten() {
        List<ToolCalls.Function> fns = List.of(new ToolCalls.Function("f", json(
                "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"},\"y\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}}}}")));
        String args = "{\"x\":5119.979E14765379505,\"y\":[1.5,-2e-4072545007498656]}";
        for (var c : List.of(
                new Object[] {ToolCalls.Format.HERMES, "<tool_call>\n{\"name\": \"f\", \"arguments\": " + args + "}\n</tool_call>"},
                new Object[] {ToolCalls.Format.LLAMA3_JSON, "{\"name\": \"f\", \"parameters\": " + args + "}"},
                new Object[] {ToolCalls.Format.LFM2, "<|tool_call_start|>[f(x=5119.979E14765379505, y=[1.5, -2e-4072545007498656])]<|tool_call_end|>"},
                new Object[] {ToolCalls.Format.SEED_XML, "<seed:tool_call>\n<function=f>\n<parameter=x>5119.979E14765379505</parameter>\n"
                        + "<parameter=y>[1.5,-2e-4072545007498656]</parameter>\n</function>\n</seed:tool_call>"})) {
            ToolCalls.Format f = (ToolCalls.Format) c[0];
            String reply = (String) c[1];
            ToolCalls.Reply r = ToolCalls.parse(f, reply, fns);
            assertThat(r.calls()).as(f + ": " + reply).hasSize(1);
            assertThat(r.calls().getFirst().arguments()).as(f + ": " + reply).isEqualTo(args);
            SplitStream.Fed fed = SplitStream.feed(f, true, fns, reply, new Random(7), 5);
            assertThat(fed.stream().calls()).as(f + " streamed").extracting(ToolCalls.Call::arguments).containsExactly(args);
        }
    }

    @Test
    void hermesBlocksBecomeCallsAndLeadingTextContent() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.HERMES, """
                Let me check.
                <tool_call>
                {"name": "get_weather", "arguments": {"city": "Paris"}}
                </tool_call>
                <tool_call>
                {"name": "get_time", "arguments": {}}
                </tool_call>""", FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Paris\"}");
        assertThat(r.calls().getFirst().id()).startsWith("call_").hasSize(29).isNotEqualTo(r.calls().get(1).id());
    }

    @Test
    void hermesCallWithoutClosingTagAtTheEndCounts() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.HERMES, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}", FUNCTIONS);
        assertThat(r.content()).isNull();
        assertThat(r.calls()).hasSize(1);
    }

    @Test
    void malformedOrUnknownCallsStayContent() {
        for (String text : List.of("<tool_call>{\"name\": \"launch\", \"arguments\": {}}</tool_call>",
                "<tool_call>{\"name\": \"get_time\", \"arguments\": \"x\"}</tool_call>",
                "<tool_call>{\"name\": \"get_time\", \"arguments\": {</tool_call>",
                "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call> and more text",
                "no calls here")) {
            ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.HERMES, text, FUNCTIONS);
            assertThat(r.calls()).as(text).isEmpty();
            assertThat(r.content()).isEqualTo(text);
        }
    }

    /** Text outside the calls (after the JSON inside a block, between blocks) is never dropped: the reply stays content. */
    @Test
    void textBesideTheCallsKeepsTheWholeReplyAsContent() {
        for (String text : List.of("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}} and then I will tell you\n</tool_call>",
                "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>\nThe time first, then:\n"
                        + "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>",
                "<tool_call>{\"name\": \"get_time\", \"arguments\": {}} {\"name\": \"get_time\", \"arguments\": {}}")) {
            ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.HERMES, text, FUNCTIONS);
            assertThat(r.calls()).as(text).isEmpty();
            assertThat(r.content()).isEqualTo(text);
        }
        String llama = "{\"name\": \"get_time\", \"parameters\": {}} I will look the time up for you.";
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.LLAMA3_JSON, llama, FUNCTIONS);
        assertThat(r.calls()).isEmpty();
        assertThat(r.content()).isEqualTo(llama);
    }

    /** The closing tag inside an argument string is part of the argument, not the end of the block. */
    @Test
    void tagsInsideArgumentStringsAreText() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.HERMES,
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"</tool_call><tool_call>\"}}\n</tool_call>", FUNCTIONS);
        assertThat(r.content()).isNull();
        assertThat(r.calls()).singleElement().satisfies(c -> {
            assertThat(c.name()).isEqualTo("get_weather");
            assertThat(c.arguments()).isEqualTo("{\"city\":\"</tool_call><tool_call>\"}");
        });
    }

    /** Arguments are written back with their numbers' exact values (a double made 1e400 the string "Infinity"). */
    @Test
    void argumentNumbersKeepTheirExactValues() throws Exception {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.HERMES, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": "
                + "{\"a\": 1e400, \"b\": 0.10000000000000000001, \"c\": 12345678901234567.5, \"d\": 123456789012345678901234567890}}\n</tool_call>",
                FUNCTIONS);
        com.fasterxml.jackson.databind.JsonNode args = new com.fasterxml.jackson.databind.ObjectMapper()
                .enable(com.fasterxml.jackson.databind.DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS).readTree(r.calls().getFirst().arguments());
        assertThat(args.get("a").isNumber()).as(r.calls().getFirst().arguments()).isTrue();
        java.util.Map<String, String> written = java.util.Map.of("a", "1e400", "b", "0.10000000000000000001", "c", "12345678901234567.5",
                "d", "123456789012345678901234567890");
        written.forEach((k, v) -> assertThat(args.get(k).decimalValue()).as(k).isEqualByComparingTo(new java.math.BigDecimal(v)));
    }

    /**
     * Nemotron Nano v2's and Apriel's replies: a JSON list of calls in the format's block, text
     * before it content, the block's end possibly missing at the reply's end; a list with text
     * after it, a call of an unknown function or an empty list stays content.
     */
    @Test
    void aJsonListInABlockIsTheCalls() {
        for (ToolCalls.Format f : List.of(ToolCalls.Format.NEMOTRON_V2, ToolCalls.Format.APRIEL)) {
            String open = ToolCalls.block(f).open();
            String close = ToolCalls.block(f).close();
            String calls = "[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}, {\"name\": \"get_time\", \"arguments\": {}}]";
            ToolCalls.Reply r = ToolCalls.parse(f, "Checking.\n" + open + calls + close + "\n", FUNCTIONS);
            assertThat(r.content()).isEqualTo("Checking.");
            assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
            assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
            assertThat(ToolCalls.parse(f, open + calls, FUNCTIONS).calls()).as("the end left out").hasSize(2);
            for (String notACall : List.of(open + calls + close + " and words", open + calls.replace("get_time", "nope") + close,
                    open + "[]" + close, open + "{\"name\": \"get_time\", \"arguments\": {}}" + close, calls)) {
                assertThat(ToolCalls.parse(f, notACall, FUNCTIONS).calls()).as(f + ": " + notACall).isEmpty();
                assertThat(ToolCalls.parse(f, notACall, FUNCTIONS).content()).isEqualTo(notACall);
            }
        }
    }

    /** MiniMax M1's calls: a JSON object a line in its block, the block's end possibly missing at the reply's end. */
    @Test
    void miniMaxM1WritesACallALine() {
        ToolCalls.Format f = ToolCalls.Format.MINIMAX_M1;
        String calls = "<tool_calls>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n"
                + "{\"name\": \"get_time\", \"arguments\": {}}\n</tool_calls>";
        ToolCalls.Reply r = ToolCalls.parse(f, "Checking.\n" + calls + "\n", FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        assertThat(ToolCalls.parse(f, calls.replace("</tool_calls>", ""), FUNCTIONS).calls()).as("the end left out").hasSize(2);
        for (String notACall : List.of(calls + " and words", calls.replace("get_time", "nope"), "<tool_calls>\n</tool_calls>",
                calls.replace("}}\n{", "}} x {"), "<tool_calls>[{\"name\": \"get_time\", \"arguments\": {}}]</tool_calls>",
                "{\"name\": \"get_time\", \"arguments\": {}}")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls, 5, "{\"city\":\"Rome\"}", "{}");
    }

    /** DeepSeek R1's calls (llama.cpp's template): each its type, name and a fenced JSON object, in one block. */
    @Test
    void deepSeekR1FencesEachCallsArguments() {
        ToolCalls.Format f = ToolCalls.Format.DEEPSEEK_R1;
        String weather = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Rome\"}\n```<｜tool▁call▁end｜>";
        String time = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜>";
        String calls = "<｜tool▁calls▁begin｜>" + weather + "\n" + time + "<｜tool▁calls▁end｜>";
        ToolCalls.Reply r = ToolCalls.parse(f, "Checking.\n" + calls, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        assertThat(ToolCalls.parse(f, calls.substring(0, calls.indexOf("\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>") + 1), FUNCTIONS)
                .calls()).as("cut short after the last object").hasSize(2);
        for (String notACall : List.of(calls + " and words", calls.replace("get_time", "nope"), calls.replace("```json", "```"),
                calls.replace("function<｜tool▁sep｜>", "<｜tool▁sep｜>"), "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>", weather)) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls, 9, "{\"city\":\"Rome\"}", "{}");
    }

    /** Functionary v3.1's calls: {@code <function=NAME>} elements holding a JSON object, one after another. */
    @Test
    void functionaryWritesFunctionElements() {
        ToolCalls.Format f = ToolCalls.Format.FUNCTIONARY_V31;
        String calls = "<function=get_weather>{\"city\": \"Rome\"}</function><function=get_time>{}</function>";
        ToolCalls.Reply r = ToolCalls.parse(f, "Checking.\n" + calls + "\n", FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        assertThat(ToolCalls.parse(f, calls.replace("{}</function>", "{}"), FUNCTIONS).calls()).as("the last end left out").hasSize(2);
        for (String notACall : List.of(calls + " and words", calls.replace("get_time", "nope"), "<function=get_time></function>",
                calls.replace("</function><function", "</function> x <function"), "<function=get_time>[]</function>",
                "<function=get_time >{}</function>")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls, 13, "{\"city\":\"Rome\"}", "{}");
    }

    /** GigaChat 3.1's call: one JSON object after {@code <|function_call|>}, the reply's end after it. */
    @Test
    void gigaChatWritesOneCallAfterItsMarker() {
        ToolCalls.Format f = ToolCalls.Format.GIGACHAT;
        String call = "<|function_call|>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
        ToolCalls.Reply r = ToolCalls.parse(f, "Checking.\n" + call + "\n", FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).singleElement().satisfies(c -> {
            assertThat(c.name()).isEqualTo("get_weather");
            assertThat(c.arguments()).isEqualTo("{\"city\":\"Rome\"}");
        });
        for (String notACall : List.of(call + " and words", call.replace("get_weather", "nope"), call + call,
                "<|function_call|>[{\"name\": \"get_time\", \"arguments\": {}}]", "{\"name\": \"get_time\", \"arguments\": {}}")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + call, 17, "{\"city\":\"Rome\"}");
    }

    /**
     * GigaChat 3's call: one JSON object in a message of the role {@code function call} after the
     * assistant's; the end of a message ({@code <|message_sep|>}) after the call or the content is left out.
     */
    @Test
    void gigaChat3WritesOneCallInAMessageOfItsOwn() {
        ToolCalls.Format f = ToolCalls.Format.GIGACHAT3;
        String call = "<|message_sep|>\n\nfunction call<|role_sep|>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
        for (String reply : List.of("Checking.\n" + call + "\n", "Checking." + call + "<|message_sep|>\n\n")) {
            ToolCalls.Reply r = ToolCalls.parse(f, reply, FUNCTIONS);
            assertThat(r.content()).isEqualTo("Checking.");
            assertThat(r.calls()).singleElement().satisfies(c -> {
                assertThat(c.name()).isEqualTo("get_weather");
                assertThat(c.arguments()).isEqualTo("{\"city\":\"Rome\"}");
            });
        }
        assertThat(ToolCalls.parse(f, call, FUNCTIONS).content()).isNull();
        ToolCalls.Reply text = ToolCalls.parse(f, "Just words.<|message_sep|>\n\n", FUNCTIONS);
        assertThat(text.content()).isEqualTo("Just words.");
        assertThat(text.calls()).isEmpty();
        // a call of an undeclared function is text, its message's end left out too (a fuzz finding: it was kept)
        assertThat(ToolCalls.parse(f, call.replace("get_weather", "nope") + "<|message_sep|>\n", FUNCTIONS).content())
                .isEqualTo(call.replace("get_weather", "nope"));
        for (String notACall : List.of(call + " and words", call.replace("get_weather", "nope"), call + call,
                call.replace("function call", "function result"), "<|function_call|>{\"name\": \"get_time\", \"arguments\": {}}",
                "{\"name\": \"get_time\", \"arguments\": {}}")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + call, 17, "{\"city\":\"Rome\"}");
    }

    /** Apertus's list: each call an object whose one key is the function's name, its value the arguments. */
    @Test
    void apertusKeysEachCallsArgumentsByName() {
        ToolCalls.Format f = ToolCalls.Format.APERTUS;
        String calls = "<|tools_prefix|>[{\"get_weather\": {\"city\": \"Rome\"}}, {\"get_time\": {}}]<|tools_suffix|>";
        ToolCalls.Reply r = ToolCalls.parse(f, "Checking. " + calls, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        for (String notACall : List.of(calls + " x", calls.replace("get_time", "nope"), calls.replace("{}", "[]"),
                calls.replace("{\"get_time\": {}}", "{\"get_time\": {}, \"get_weather\": {}}"),
                "<|tools_prefix|>[{\"name\": \"get_time\", \"arguments\": {}}]<|tools_suffix|>")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls, 19, "{\"city\":\"Rome\"}", "{}");
    }

    /** Granite 3.3's calls: a JSON list after {@code <|tool_call|>}, any key order (IBM's examples write the arguments first). */
    @Test
    void graniteListsCallsAfterItsMarker() {
        ToolCalls.Format f = ToolCalls.Format.GRANITE;
        String calls = "<|tool_call|>[{\"arguments\": {\"city\": \"Rome\"}, \"name\": \"get_weather\"}, {\"name\": \"get_time\", \"arguments\": {}}]";
        ToolCalls.Reply r = ToolCalls.parse(f, calls, FUNCTIONS);
        assertThat(r.content()).isNull();
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        for (String notACall : List.of(calls + " x", calls.replace("get_time", "nope"), "<|tool_call|>[]",
                "<|tool_call|>{\"name\": \"get_time\", \"arguments\": {}}")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        Random rnd = new Random(31);
        for (int trial = 0; trial < 30; trial++) {
            // as the grammar writes them from the marker on: the name first
            String written = calls.replace("{\"arguments\": {\"city\": \"Rome\"}, \"name\": \"get_weather\"}",
                    "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}");
            SplitStream.Fed fed = SplitStream.feed(f, false, FUNCTIONS, "Sure. " + written, rnd, 5);
            assertThat(fed.stream().wellFormed()).isTrue();
            assertThat(fed.stream().content()).isEqualTo("Sure.");
            assertThat(fed.stream().calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\"}", "{}");
        }
    }

    /**
     * LFM2's calls: Python's call notation in a list between its markers, values as Python
     * literals or JSON (read into JSON), as llama.cpp reads them.
     */
    @Test
    void lfm2WritesPythonCalls() {
        ToolCalls.Format f = ToolCalls.Format.LFM2;
        String calls = "<|tool_call_start|>[get_weather(city=\"Rome\", days=3), get_time()]<|tool_call_end|>";
        ToolCalls.Reply r = ToolCalls.parse(f, "Checking.\n" + calls, XmlToolCallsTest.FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\",\"days\":3}");
        assertThat(r.calls().get(1).arguments()).isEqualTo("{}");
        String python = "<|tool_call_start|>[get_weather(city='Rome\\'s \\x41', days=3.50, options={'a': [True, None, 'b'], \"c\": false,})]";
        assertThat(ToolCalls.parse(f, python, FUNCTIONS_WITH_OPTIONS).calls()).singleElement().satisfies(c -> assertThat(c.arguments())
                .isEqualTo("{\"city\":\"Rome's A\",\"days\":3.50,\"options\":{\"a\":[true,null,\"b\"],\"c\":false}}"));
        for (String notACall : List.of(calls + " and words", calls.replace("get_time", "nope"), calls.replace("city=", "town="),
                calls.replace("city=", "city ="), calls.replace("days=3", "days=3, days=4"), calls.replace("3)", "x)"),
                "<|tool_call_start|>[]<|tool_call_end|>", "<|tool_call_start|>get_time()<|tool_call_end|>")) {
            assertNoCall(f, XmlToolCallsTest.FUNCTIONS, notACall);
        }
        Random rnd = new Random(37);
        for (int trial = 0; trial < 30; trial++) {
            SplitStream.Fed fed = SplitStream.feed(f, false, XmlToolCallsTest.FUNCTIONS, "Sure. " + calls, rnd, 5);
            assertThat(fed.stream().wellFormed()).isTrue();
            assertThat(fed.stream().content()).isEqualTo("Sure.");
            assertThat(fed.stream().calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}", "{}");
            // a string in single quotes, as LFM2.5's template writes them, read as it comes
            SplitStream.Fed quoted = SplitStream.feed(f, false, XmlToolCallsTest.FUNCTIONS,
                    "<|tool_call_start|>[get_weather(city='Rome\\'s \\\"old\\\" \\u00e9t\\u00e9\\n\\x41', days=3)]<|tool_call_end|>", rnd, 5);
            assertThat(quoted.stream().wellFormed()).isTrue();
            assertThat(quoted.stream().calls()).extracting(ToolCalls.Call::arguments)
                    .containsExactly("{\"city\":\"Rome's \\\"old\\\" \u00e9t\u00e9\\nA\",\"days\":3}");
        }
    }

    static final List<ToolCalls.Function> FUNCTIONS_WITH_OPTIONS = List.of(new ToolCalls.Function("get_weather", json(
            "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"number\"},\"options\":{\"type\":\"object\"}}}")));

    /**
     * Functionary v3.2's messages to functions, read after its prompt's {@code >>>} (the envelope
     * gives the reply's first recipient its mark): {@code >>>NAME}, a line break, a JSON object.
     */
    @Test
    void functionaryV32WritesMessagesToFunctions() {
        ToolCalls.Format f = ToolCalls.Format.FUNCTIONARY_V32;
        String calls = ">>>get_weather\n{\"city\": \"Rome\"}>>>get_time\n{}";
        ToolCalls.Reply r = ToolCalls.parse(f, "Checking." + calls, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        for (String notACall : List.of(calls + " and words", calls.replace("get_time", "nope"), ">>>all\nHello", calls + ">>>all\nmore",
                ">>>get_time\n[]", ">>>get_time")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls, 43, "{\"city\":\"Rome\"}", "{}");
    }

    /** Cohere's list: each call's name under {@code tool_name}, its arguments under {@code parameters}, after its id. */
    @Test
    void cohereListsNameToolsAndParameters() {
        String calls = "<|START_ACTION|>[\n    {\"tool_call_id\": \"0\", \"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}},"
                + "\n    {\"tool_call_id\": \"1\", \"tool_name\": \"get_time\", \"parameters\": {}}\n]<|END_ACTION|>";
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.COHERE, calls, FUNCTIONS);
        assertThat(r.content()).isNull();
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        for (String notACall : List.of(calls.replace("tool_name", "name"), calls.replace("parameters", "arguments"), calls + " x")) {
            assertThat(ToolCalls.parse(ToolCalls.Format.COHERE, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
        Random rnd = new Random(3);
        for (int trial = 0; trial < 30; trial++) {
            SplitStream.Fed fed = SplitStream.feed(ToolCalls.Format.COHERE, false, FUNCTIONS, "Sure. " + calls, rnd, 5);
            assertThat(fed.stream().wellFormed()).isTrue();
            assertThat(fed.stream().calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\"}", "{}");
        }
    }

    /**
     * Command R+'s action: a JSON list of {@code tool_name} and {@code parameters} objects in a
     * fenced block after {@code Action:}, as its template writes it; the fence's end may be missing
     * at the reply's end.
     */
    @Test
    void commandRPlusActionIsAFencedList() {
        ToolCalls.Format f = ToolCalls.Format.COMMAND_R;
        String calls = "Action:\n```json\n[\n    {\n        \"tool_name\": \"get_weather\",\n        \"parameters\": {\"city\": \"Rome\"}\n    },"
                + "\n    {\"tool_name\": \"get_time\", \"parameters\": {}}\n]```";
        for (String reply : List.of("Checking.\n" + calls, "Checking. " + calls.replace("Action:\n", "Action: ") + "\n",
                "Checking. " + calls.replace("]```", "]"))) {
            ToolCalls.Reply r = ToolCalls.parse(f, reply, FUNCTIONS);
            assertThat(r.content()).as(reply).isEqualTo("Checking.");
            assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
            assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
        }
        for (String notACall : List.of(calls.replace("tool_name", "name"), calls.replace("parameters", "arguments"), calls + " x",
                calls.replace("```json", "```"), calls.replace("get_time", "directly-answer"), "Action: none needed.")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls, 19, "{\"city\":\"Rome\"}", "{}");
        // llama.cpp's own case (tests/test-chat.cpp): the fence closed on a line of its own
        assertThat(ToolCalls.parse(f, "Action:\n```json\n[{\"tool_name\": \"get_time\", \"parameters\": {\"timezone\": \"UTC\"}}]\n```", FUNCTIONS)
                .calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"timezone\":\"UTC\"}");
    }

    /**
     * Solar Open's calls: {@code <|tool_calls|>}, then calls back to back, each its id, name and
     * arguments after their markers; the block's end ({@code <|calls|>}) may be missing, and so may
     * the last call's end at the reply's end. Ids in the history are ten lowercase letters and
     * digits, as its template asks for, derived from another id (the same for a call and its result).
     */
    @Test
    void solarWritesCallsBackToBack() {
        ToolCalls.Format f = ToolCalls.Format.SOLAR;
        String calls = "<|tool_calls|><|tool_call:begin|>a1b2c3d4e5<|tool_call:name|>get_weather<|tool_call:args|>{\"city\": \"Rome\"}"
                + "<|tool_call:end|><|tool_call:begin|>x<|tool_call:name|>get_time<|tool_call:args|>{}<|tool_call:end|>";
        for (String reply : List.of("Checking.\n" + calls + "<|calls|>", "Checking. " + calls, "Checking. "
                + calls.substring(0, calls.length() - "<|tool_call:end|>".length()))) {
            ToolCalls.Reply r = ToolCalls.parse(f, reply, FUNCTIONS);
            assertThat(r.content()).as(reply).isEqualTo("Checking.");
            assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
            assertThat(r.calls().getFirst().arguments()).isEqualTo("{\"city\":\"Rome\"}");
            assertThat(r.calls().getFirst().id()).startsWith("call_");
        }
        for (String notACall : List.of(calls + "<|calls|> x", calls.replace("get_time", "nope"), calls.replace("{}", "[]"),
                calls.replace("<|tool_call:name|>get_time", "get_time"), calls.replace(">x<", ">" + "y".repeat(65) + "<"), "<|tool_calls|>")) {
            assertNoCall(f, FUNCTIONS, notACall);
        }
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls, 23, "{\"city\":\"Rome\"}", "{}");
        assertSplitStreams(f, FUNCTIONS, "Sure. " + calls + "<|calls|>", 29, "{\"city\":\"Rome\"}", "{}");
        String id = ToolCalls.historyId(f, "call_Hx7Qa9Zk3LmNp2Rt5VwY8bCd");
        assertThat(id).matches("[a-z0-9]{10}").isEqualTo(ToolCalls.historyId(f, "call_Hx7Qa9Zk3LmNp2Rt5VwY8bCd"))
                .isNotEqualTo(ToolCalls.historyId(f, "toolu_01"));
        assertThat(ToolCalls.historyId(f, "a1b2c3d4e5")).isEqualTo("a1b2c3d4e5");
        assertThat(ToolCalls.historyId(ToolCalls.Format.HERMES, "call_x")).isEqualTo("call_x");
    }

    /**
     * DeepSeek V3.1's calls, R1's block of {@code <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>};
     * and Firefunction v2's list after {@code functools}: llama.cpp's own cases, and what is no call.
     */
    @Test
    void deepSeekV31AndFirefunctionCalls() {
        ToolCalls.Format v31 = ToolCalls.Format.DEEPSEEK_V31;
        String calls = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Rome\"}<｜tool▁call▁end｜>"
                + "<｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        ToolCalls.Reply r = ToolCalls.parse(v31, "CONTENT" + calls, FUNCTIONS);
        assertThat(r.content()).isEqualTo("CONTENT");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\"}", "{}");
        for (String notACall : List.of(calls + " x", calls.replace("get_time", "nope"), calls.replace("<｜tool▁sep｜>{}", "{}"),
                calls.replace("get_weather<｜tool▁sep｜>", "function<｜tool▁sep｜>get_weather\n```json\n"))) {
            assertNoCall(v31, FUNCTIONS, notACall);
        }
        assertSplitStreams(v31, FUNCTIONS, "Sure. " + calls, 31, "{\"city\":\"Rome\"}", "{}");
        ToolCalls.Format ff = ToolCalls.Format.FIREFUNCTION;
        String list = " functools[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}, {\"name\": \"get_time\", \"arguments\": {}}]";
        ToolCalls.Reply f = ToolCalls.parse(ff, list, FUNCTIONS);
        assertThat(f.content()).isNull();
        assertThat(f.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\"}", "{}");
        for (String notACall : List.of(list + " x", list.replace("get_time", "nope"), "import functools\nfunctools.reduce(f, xs)",
                list.replace("functools[", "functools ["))) {
            assertNoCall(ff, FUNCTIONS, notACall);
        }
        assertSplitStreams(ff, FUNCTIONS, "Sure." + list, 37, "{\"city\":\"Rome\"}", "{}");
    }

    @Test
    void llama3JsonReplyIsOneCall() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.LLAMA3_JSON,
                "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", FUNCTIONS);
        assertThat(r.content()).isNull();
        assertThat(r.calls()).singleElement().satisfies(c -> {
            assertThat(c.name()).isEqualTo("get_weather");
            assertThat(c.arguments()).isEqualTo("{\"city\":\"Oslo\"}");
        });
        assertThat(ToolCalls.parse(ToolCalls.Format.LLAMA3_JSON, "The weather is fine.", FUNCTIONS).calls()).isEmpty();
    }

    @Test
    void formatIsDetectedFromTheTemplateAndItsRendering() {
        String hermesLike = "{%- if tools %}<tools>{{ tools | tojson }}</tools> use <tool_call>{% endif %}"
                + "{%- for m in messages %}{{ m.role }}: {{ m.content }}{% for c in m.tool_calls or [] %}<tool_call>\n"
                + "{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}\n</tool_call>"
                + "{% endfor %}\n{% endfor %}";
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(hermesLike, "", ""))).isEqualTo(ToolCalls.Format.HERMES);
        // a <tool_call> whose calls are not Hermes JSON (MiniMax's <invoke> elements), or calls it never renders: no format
        String otherInside = hermesLike.replace("\n{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}\n",
                "<invoke name=\"{{ c.function.name }}\">{% for k, v in c.function.arguments.items() %}<{{ k }}>{{ v }}</{{ k }}>{% endfor %}</invoke>");
        assertThat(otherInside).isNotEqualTo(hermesLike);
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(otherInside, "", ""))).isEqualTo(ToolCalls.Format.NONE);
        // GLM's <arg_key> elements are a format of their own
        String glmLike = hermesLike.replace("\n{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}\n",
                "{{ c.function.name }}{% for k, v in c.function.arguments.items() %}<arg_key>{{ k }}</arg_key><arg_value>{{ v }}</arg_value>{% endfor %}");
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(glmLike, "", ""))).isEqualTo(ToolCalls.Format.GLM_XML);
        String callsNotRendered = "{%- if tools %}<tools>{{ tools | tojson }}</tools> use <tool_call>{% endif %}"
                + "{%- for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(callsNotRendered, "", ""))).isEqualTo(ToolCalls.Format.NONE);
        // mentions <tool_call> but never renders the tools: no tool support
        String ignoresTools = "{%- for m in messages %}{{ m.content }}{% endfor %}{# <tool_call> #}";
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(ignoresTools, "", ""))).isEqualTo(ToolCalls.Format.NONE);
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(ChatTemplateRenderer.defaultTemplate(), "", "")))
                .isEqualTo(ToolCalls.Format.NONE);
    }

    @Test
    void forcedCallGrammarNamesEveryAllowedFunction() {
        String g = ToolCalls.grammar(ToolCalls.Format.HERMES, FUNCTIONS, false);
        assertThat(g).startsWith("root ::= \"<tool_call>\\n\" call \"\\n</tool_call>\"\n").contains("call-name ::= \"\\\"get_\" call-name-1\n")
                .contains("call-name-1 ::= \"weather\\\"\" fn0-call | \"time\\\"\" fn1-call\n")
                .contains("\"\\\"arguments\\\"\"");
        assertThat(ToolCalls.grammar(ToolCalls.Format.LLAMA3_JSON, FUNCTIONS.subList(0, 1), false)).contains("\"\\\"parameters\\\"\"")
                .doesNotContain("get_time");
        assertThatThrownBy(() -> ToolCalls.grammar(ToolCalls.Format.HERMES,
                List.of(new ToolCalls.Function("f", json("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\",\"pattern\":\"\\\\ba\"}}}"))), false))
                .isInstanceOfSatisfying(SchemaException.class, e -> assertThat(e.pointer()).isEqualTo("/tools/0/function/parameters/properties/x/pattern"));
    }

    @Test
    void theFunctionsRepetitionsAreBoundedTogether() {
        // each function's schema within the bound, all of them together beyond it
        int half = JsonSchemaGrammar.MAX_EXPANSION / 2 / JsonSchemaGrammar.MAX_REPEAT + 1;
        ToolCalls.Function f = new ToolCalls.Function("f", json(JsonSchemaGrammarTest.boundedStrings(half, JsonSchemaGrammar.MAX_REPEAT)));
        ToolCalls.Function g = new ToolCalls.Function("g", f.parameters());
        assertThat(ToolCalls.grammar(ToolCalls.Format.HERMES, List.of(f), false)).contains("fn0-call");
        assertThatThrownBy(() -> ToolCalls.grammar(ToolCalls.Format.HERMES, List.of(f, g), false))
                .isInstanceOf(SchemaException.class).hasMessageContaining("too large");
    }
}
