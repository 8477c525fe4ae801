package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.SchemaCorpus;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileInputStream;
import java.io.InputStream;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Tool calls over HTTP with the real model under real chat templates from the pinned llama.cpp
 * tree (model.chat-template overrides the model's own): Qwen 2.5 (Hermes {@code <tool_call>}
 * format) and Llama 3.1 (JSON format). The tiny model is forced to call by tool_choice
 * "required" or a named function; the grammar makes its call well-formed and its arguments valid.
 */
class ToolCallsTest {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static final String WEATHER_PARAMS = """
            {"type":"object","properties":{"location":{"type":"string","maxLength":24},
             "unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"],"additionalProperties":false}""";
    static final String TIME_PARAMS = """
            {"type":"object","properties":{"timezone":{"type":"string","maxLength":16}},"required":["timezone"]}""";

    /** OpenAI's call ids, or Mistral's nine characters (its templates refuse other ids in the history). */
    static final String CALL_ID = "call_[A-Za-z0-9]{24}|[A-Za-z0-9]{9}";

    static String template(String file) throws Exception {
        Properties build = new Properties();
        try (InputStream in = new FileInputStream(System.getProperty("native.build.info"))) {
            build.load(in);
        }
        Path p = Path.of(build.getProperty("llama.cpp.dir"), "models", "templates", file);
        assertThat(p).as("chat template of the pinned llama.cpp tree").isRegularFile();
        return Files.readString(p);
    }

    /** A server rendering the Qwen 2.5 tool template (Hermes calls), room for forced calls. */
    static TestServer startWithToolTemplate() throws Exception {
        return TestServer.start(Map.of("model.chat-template", template("Qwen-Qwen2.5-7B-Instruct.jinja"), "engine.slot-context", "2048",
                "engine.slots", "2", "limits.max-tokens", "400"));
    }

    static ObjectNode request(String choice) throws Exception {
        ObjectNode b = MAPPER.createObjectNode();
        b.put("model", "stories260K");
        b.putArray("messages").addObject().put("role", "user").put("content", "What is the weather in Paris?");
        // forced calls end when the grammar completes; free text (auto, none) is cut short to keep the test fast
        b.put("max_tokens", choice.equals("required") || choice.startsWith("{") ? 250 : 16);
        b.put("temperature", 0.7);
        b.put("seed", 11);
        ArrayNode tools = b.putArray("tools");
        tools.addObject().put("type", "function").putObject("function").put("name", "get_weather")
                .put("description", "Current weather at a place").set("parameters", MAPPER.readTree(WEATHER_PARAMS));
        tools.addObject().put("type", "function").putObject("function").put("name", "get_time")
                .put("description", "Current time in a timezone").set("parameters", MAPPER.readTree(TIME_PARAMS));
        if (choice.startsWith("{")) {
            b.set("tool_choice", MAPPER.readTree(choice));
        } else if (choice != null) {
            b.put("tool_choice", choice);
        }
        if (choice.equals("required")) {
            // one call: with parallel_tool_calls (the default) "required" allows several, and the
            // tiny model writes calls until max_tokens (requiredWithParallelCallsWritesOneOrMore)
            b.put("parallel_tool_calls", false);
        }
        return b;
    }

    /** {@code next} with the assistant's {@code call} and the tool's {@code result} added to its messages (a tool round trip). */
    static ObjectNode withCallAndResult(ObjectNode next, JsonNode call, String result) {
        ArrayNode messages = (ArrayNode) next.get("messages");
        ObjectNode assistant = messages.addObject().put("role", "assistant");
        assistant.putNull("content");
        assistant.putArray("tool_calls").add(call);
        messages.addObject().put("role", "tool").put("tool_call_id", call.get("id").asText()).put("content", result);
        return next;
    }

    /** A request that asks the template not to think ({@code enable_thinking} false): the tiny model would think to max_tokens. */
    static ObjectNode withoutThinking(ObjectNode b) {
        b.putObject("chat_template_kwargs").put("enable_thinking", false);
        return b;
    }

    /** A forced call after the reasoning the prompt opened (a budget closing it for the tiny model): the reasoning, then a valid call. */
    static void assertCallAfterReasoning(JsonNode out, String marker) throws Exception {
        JsonNode choice = out.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(out.toString()).isEqualTo("tool_calls");
        assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank().doesNotContain(marker);
        assertValidCall(choice.get("message").get("tool_calls").get(0));
    }

    static JsonNode params(String name) throws Exception {
        return MAPPER.readTree(name.equals("get_weather") ? WEATHER_PARAMS : TIME_PARAMS);
    }

    static void assertValidCall(JsonNode call) throws Exception {
        assertThat(call.get("id").asText()).matches(CALL_ID);
        assertThat(call.get("type").asText()).isEqualTo("function");
        String name = call.get("function").get("name").asText();
        assertThat(name).isIn("get_weather", "get_time");
        String args = call.get("function").get("arguments").asText();
        assertThat(MAPPER.readTree(args).isObject()).isTrue();
        assertThat(SchemaCorpus.referenceErrors(params(name), args)).as(args).isEmpty();
    }

    abstract static class Family {
        TestServer server;

        abstract String templateFile();

        /** More configuration (another model). */
        Map<String, String> extraConfig() throws Exception {
            return Map.of();
        }

        @BeforeAll
        void start() throws Exception {
            Map<String, String> config = new java.util.HashMap<>(Map.of("model.chat-template", template(templateFile()),
                    "engine.slot-context", "2048", "engine.slots", "2", "limits.max-tokens", "400"));
            config.putAll(extraConfig());
            server = TestServer.start(config);
        }

        @AfterAll
        void stop() {
            server.close();
        }

        /**
         * Whether the tiny model, free under "required" to write another call after its first,
         * does (the block formats); a Llama 3 JSON reply holds one call.
         */
        boolean writesAnotherCall() {
            return !templateFile().startsWith("meta-llama");
        }

        /** The request of {@link ToolCallsTest#request}, as this family's template needs it. */
        ObjectNode request(String choice) throws Exception {
            return ToolCallsTest.request(choice);
        }

        JsonNode post(ObjectNode body) throws Exception {
            HttpResponse<String> r = server.post("/v1/chat/completions", body.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            return MAPPER.readTree(r.body());
        }

        @Test
        void requiredForcesAValidCall() throws Exception {
            JsonNode out = post(request("required"));
            JsonNode choice = out.get("choices").get(0);
            assertThat(choice.get("finish_reason").asText()).as(out.toString()).isEqualTo("tool_calls");
            JsonNode calls = choice.get("message").get("tool_calls");
            assertThat(calls).hasSize(1);
            assertValidCall(calls.get(0));
        }

        @Test
        void streamingDeliversTheCallAsToolCallDeltas() throws Exception {
            StreamedCalls streamed = streamCalls(request("required"));
            assertThat(streamed.finish()).isEqualTo("tool_calls");
            assertThat(streamed.names()).as("one call, index 0").hasSize(1);
            ObjectNode call = MAPPER.createObjectNode().put("id", streamed.ids().getFirst()).put("type", "function");
            call.putObject("function").put("name", streamed.names().getFirst()).put("arguments", streamed.arguments(0));
            assertValidCall(call);
        }

        /** What a streamed chat reply's chunks give: per call, id, name and the argument deltas. */
        record StreamedCalls(List<String> ids, List<String> names, List<List<String>> argumentDeltas, String finish, String content) {
            String arguments(int i) {
                return String.join("", argumentDeltas.get(i));
            }
        }

        StreamedCalls streamCalls(ObjectNode body) throws Exception {
            ObjectNode b = body.deepCopy();
            b.put("stream", true);
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            List<String> ids = new ArrayList<>();
            List<String> names = new ArrayList<>();
            List<List<String>> deltas = new ArrayList<>();
            StringBuilder content = new StringBuilder();
            String finish = null;
            for (String line : r.body().split("\n")) {
                if (!line.startsWith("data: {")) {
                    continue;
                }
                JsonNode ch = MAPPER.readTree(line.substring(6)).get("choices").get(0);
                if (ch.get("delta").hasNonNull("content")) {
                    content.append(ch.get("delta").get("content").asText());
                }
                JsonNode tc = ch.get("delta").get("tool_calls");
                if (tc != null) {
                    int index = tc.get(0).get("index").asInt();
                    if (tc.get(0).has("id")) {
                        assertThat(index).as("a call starts after the last").isEqualTo(names.size());
                        assertThat(tc.get(0).get("id").asText()).matches(CALL_ID);
                        ids.add(tc.get(0).get("id").asText());
                        names.add(tc.get(0).get("function").get("name").asText());
                        deltas.add(new ArrayList<>());
                    }
                    deltas.get(index).add(tc.get(0).get("function").get("arguments").asText());
                }
                if (!ch.get("finish_reason").isNull()) {
                    finish = ch.get("finish_reason").asText();
                }
            }
            return new StreamedCalls(ids, names, deltas, finish, content.toString());
        }

        /**
         * A call's arguments stream as the model writes them (many deltas, the first empty with
         * the call's id and name), and joined they are the arguments the same request gets whole.
         */
        @Test
        void argumentsStreamPieceByPieceAndJoinToTheWholeReply() throws Exception {
            ObjectNode b = request("required");
            JsonNode whole = post(b).get("choices").get(0);
            StreamedCalls streamed = streamCalls(b);
            assertThat(streamed.finish()).isEqualTo("tool_calls");
            assertThat(streamed.names()).hasSize(1);
            assertThat(streamed.argumentDeltas().getFirst().getFirst()).as("the call's first delta").isEmpty();
            assertThat(streamed.argumentDeltas().getFirst().size()).as("argument deltas").isGreaterThan(3);
            JsonNode call = whole.get("message").get("tool_calls").get(0).get("function");
            assertThat(streamed.names().getFirst()).isEqualTo(call.get("name").asText());
            assertThat(streamed.arguments(0)).isEqualTo(call.get("arguments").asText());
        }

        /**
         * "required" with parallel_tool_calls (OpenAI's default) is one call or more: the grammar
         * lets the model write another block after each, and every complete one is valid. The tiny
         * model writes calls until max_tokens, so the last may be cut (finish_reason "length");
         * streamed, the same calls arrive, each under its own index.
         */
        @Test
        void requiredWithParallelCallsWritesOneOrMore() throws Exception {
            ObjectNode b = request("required");
            b.remove("parallel_tool_calls");
            JsonNode whole = post(b).get("choices").get(0);
            JsonNode calls = whole.get("message").get("tool_calls");
            assertThat(calls).as(whole.toString()).isNotEmpty();
            String finish = whole.get("finish_reason").asText();
            assertThat(finish).isIn("tool_calls", "length");
            int complete = finish.equals("length") ? calls.size() - 1 : calls.size();
            for (int i = 0; i < complete; i++) {
                assertValidCall(calls.get(i));
            }
            StreamedCalls streamed = streamCalls(b);
            assertThat(streamed.finish()).isEqualTo(finish);
            assertThat(streamed.names()).hasSize(calls.size());
            for (int i = 0; i < calls.size(); i++) {
                assertThat(streamed.names().get(i)).isEqualTo(calls.get(i).get("function").get("name").asText());
                assertThat(streamed.arguments(i)).isEqualTo(calls.get(i).get("function").get("arguments").asText());
            }
            if (writesAnotherCall()) {
                assertThat(calls.size()).as("this model writes another block after its first (the block formats)").isGreaterThan(1);
            } else {
                assertThat(calls).as("one call (a Llama 3 JSON reply holds one; see writesAnotherCall)").hasSize(1);
                assertThat(finish).isEqualTo("tool_calls");
            }
        }

        /**
         * A forced call cut short by max_tokens is still a call, incomplete: finish_reason
         * "length", its arguments the part written, the same streamed or whole; and a stop string
         * does not cut a forced call (the grammar decides where it ends).
         */
        @Test
        void aCallCutShortStaysACallAndStopStringsDoNotCutIt() throws Exception {
            ObjectNode b = request("required").put("max_tokens", 24);
            JsonNode whole = post(b).get("choices").get(0);
            assertThat(whole.get("finish_reason").asText()).isEqualTo("length");
            JsonNode calls = whole.get("message").get("tool_calls");
            if (calls != null) { // the name was whole within 24 tokens
                assertThat(whole.get("message").get("content").isNull()).isTrue();
                String args = calls.get(0).get("function").get("arguments").asText();
                StreamedCalls streamed = streamCalls(b);
                assertThat(streamed.finish()).isEqualTo("length");
                assertThat(streamed.arguments(0)).isEqualTo(args);
                assertThat(streamed.content()).isEmpty();
            } else {
                assertThat(whole.get("message").get("content").asText()).as("no call began: the text").isNotEmpty();
            }
            ObjectNode stopped = request("required");
            stopped.set("stop", MAPPER.createArrayNode().add("\"").add("a").add("e"));
            JsonNode out = post(stopped).get("choices").get(0);
            assertThat(out.get("finish_reason").asText()).as(out.toString()).isEqualTo("tool_calls");
            assertValidCall(out.get("message").get("tool_calls").get(0));
        }

        @Test
        void aToolRoundTripRendersTheCallAndItsResult() throws Exception {
            JsonNode first = post(request("required"));
            JsonNode call = first.get("choices").get(0).get("message").get("tool_calls").get(0);
            JsonNode second = post(withCallAndResult(request("auto"), call, "{\"temperature\": 21, \"sky\": \"clear and sunny over the river\"}"));
            long base = first.get("usage").get("prompt_tokens").asLong(); // the same tools and question
            assertThat(second.get("usage").get("prompt_tokens").asLong()).as("the call and the tool result are in the prompt")
                    .isGreaterThan(base + 20);
        }

    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class HermesFormatQwen25 extends Family {
        @Override
        String templateFile() {
            return "Qwen-Qwen2.5-7B-Instruct.jinja";
        }

        // Hermes only (the format-independent paths, once): named choice, auto streaming, none/auto, refusals
        @Test
        void namedFunctionIsTheOneCalled() throws Exception {
            for (String name : new String[] {"get_time", "get_weather"}) {
                JsonNode out = post(request("{\"type\":\"function\",\"function\":{\"name\":\"" + name + "\"}}"));
                JsonNode choice = out.get("choices").get(0);
                assertThat(choice.get("finish_reason").asText()).as(out.toString()).isEqualTo("tool_calls");
                JsonNode call = choice.get("message").get("tool_calls").get(0);
                assertThat(call.get("function").get("name").asText()).isEqualTo(name);
                assertValidCall(call);
            }
        }

        /** A forced call whose argument holds the closing tag (the grammar makes the model write it): the call is whole. */
        @Test
        void aClosingTagInsideAnArgumentStringStaysInTheArgument() throws Exception {
            ObjectNode b = request("{\"type\":\"function\",\"function\":{\"name\":\"annotate\"}}");
            ((ArrayNode) b.get("tools")).addObject().put("type", "function").putObject("function").put("name", "annotate")
                    .set("parameters", MAPPER.readTree("""
                            {"type":"object","properties":{"note":{"const":"</tool_call>"}},"required":["note"],"additionalProperties":false}"""));
            JsonNode choice = post(b).get("choices").get(0);
            assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("tool_calls");
            JsonNode call = choice.get("message").get("tool_calls").get(0);
            assertThat(call.get("function").get("name").asText()).isEqualTo("annotate");
            assertThat(MAPPER.readTree(call.get("function").get("arguments").asText()).get("note").asText()).isEqualTo("</tool_call>");
        }

        @Test
        void autoStreamingSendsTheSameReplyAsNonStreaming() throws Exception {
            ObjectNode b = request("auto");
            JsonNode whole = post(b).get("choices").get(0);
            b.put("stream", true);
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            StringBuilder content = new StringBuilder();
            int calls = 0;
            String finish = null;
            for (String line : r.body().split("\n")) {
                if (line.startsWith("data: {")) {
                    JsonNode ch = MAPPER.readTree(line.substring(6)).get("choices").get(0);
                    if (ch.get("delta").hasNonNull("content")) {
                        content.append(ch.get("delta").get("content").asText());
                    }
                    calls += ch.get("delta").has("tool_calls") ? 1 : 0;
                    finish = ch.get("finish_reason").isNull() ? finish : ch.get("finish_reason").asText();
                }
            }
            JsonNode msg = whole.get("message");
            assertThat(content.toString()).isEqualTo(msg.get("content").isNull() ? "" : msg.get("content").asText());
            assertThat(calls).isEqualTo(msg.has("tool_calls") ? msg.get("tool_calls").size() : 0);
            assertThat(finish).isEqualTo(whole.get("finish_reason").asText());
        }

        @Test
        void noneRendersNoToolsAndAutoDoes() throws Exception {
            JsonNode none = post(request("none"));
            assertThat(none.get("choices").get(0).get("message").has("tool_calls")).isFalse();
            assertThat(none.get("choices").get(0).get("finish_reason").asText()).isNotEqualTo("tool_calls");
            JsonNode auto = post(request("auto"));
            long withTools = auto.get("usage").get("prompt_tokens").asLong();
            long without = none.get("usage").get("prompt_tokens").asLong();
            assertThat(withTools).as("the tool definitions are in the prompt under auto").isGreaterThan(without + 50);
            JsonNode msg = auto.get("choices").get(0).get("message");
            if (msg.has("tool_calls")) { // the model may call on its own under auto
                assertValidCall(msg.get("tool_calls").get(0));
            } else {
                assertThat(msg.get("content").isTextual()).isTrue();
            }
        }

        @Test
        void unenforceableParametersAreRefusedWhenACallIsForced() throws Exception {
            ObjectNode b = request("required");
            ((ObjectNode) b.get("tools").get(1).get("function").get("parameters").get("properties").get("timezone"))
                    .put("pattern", "^(?![A-Z]+/Etc)[A-Z]+/[A-Za-z_]+$"); // a lookahead: beyond the enforced subset
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            assertThat(r.statusCode()).isEqualTo(400);
            JsonNode err = MAPPER.readTree(r.body()).get("error");
            assertThat(err.get("code").asText()).isEqualTo("unsupported_schema");
            assertThat(err.get("param").asText()).isEqualTo("tools");
            assertThat(err.get("message").asText()).contains("'pattern'").contains("/tools/1/function/parameters/properties/timezone/pattern");
        }

        /**
         * A call's arguments are an object, so parameters must describe one: without a type they
         * are read as an object (a forced call then writes one); another type, or an alternative at
         * their root, is a 400 naming it (before, the grammar let the model write a string or a
         * number as the arguments, which no reader takes for a call: a 500).
         */
        @Test
        void parametersMustDescribeAnObject() throws Exception {
            for (String[] c : List.of(new String[] {"{\"type\":\"string\"}", "tools[1].function.parameters.type", "'type': \"string\""},
                    new String[] {"{\"type\":[\"object\",\"null\"]}", "tools[1].function.parameters.type", "'type': [\"object\",\"null\"]"},
                    new String[] {"{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"integer\"}]}", "tools[1].function.parameters.anyOf", "'anyOf'"})) {
                ObjectNode b = request("auto");
                ((ObjectNode) b.get("tools").get(1).get("function")).set("parameters", MAPPER.readTree(c[0]));
                HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
                assertThat(r.statusCode()).as(c[0]).isEqualTo(400);
                JsonNode err = MAPPER.readTree(r.body()).get("error");
                assertThat(err.get("code").asText()).isEqualTo("invalid_value");
                assertThat(err.get("param").asText()).isEqualTo(c[1]);
                assertThat(err.get("message").asText()).contains("must describe an object").contains(c[2]);
            }
            ObjectNode b = request("{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}");
            ((ObjectNode) b.get("tools").get(1).get("function")).set("parameters", MAPPER.createObjectNode());
            JsonNode reply = post(b);
            JsonNode call = reply.get("choices").get(0).get("message").get("tool_calls").get(0).get("function");
            assertThat(call.get("name").asText()).isEqualTo("get_time");
            assertThat(MAPPER.readTree(call.get("arguments").asText()).isObject()).as(call.toString()).isTrue();
        }

        @Test
        void unknownNamedFunctionIsA400() throws Exception {
            HttpResponse<String> r = server.post("/v1/chat/completions",
                    request("{\"type\":\"function\",\"function\":{\"name\":\"launch\"}}").toString());
            assertThat(r.statusCode()).isEqualTo(400);
            assertThat(MAPPER.readTree(r.body()).get("error").get("param").asText()).isEqualTo("tool_choice");
        }

        @Test
        void logprobsWithToolsAreRefused() throws Exception {
            HttpResponse<String> r = server.post("/v1/chat/completions", request("auto").put("logprobs", true).toString());
            assertThat(r.statusCode()).isEqualTo(400);
            JsonNode err = MAPPER.readTree(r.body()).get("error");
            assertThat(err.get("code").asText()).isEqualTo("unsupported_parameter");
            assertThat(err.get("param").asText()).isEqualTo("logprobs");
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Llama31JsonFormat extends Family {
        @Override
        String templateFile() {
            return "meta-llama-Llama-3.1-8B-Instruct.jinja";
        }
    }

    /**
     * Qwen3-Coder's XML calls ({@code <function=...>}, one {@code <parameter=...>} element a
     * value, strings raw): the same checks, the arguments the JSON of the values. Before, this
     * template was read as Hermes, and a forced call made the model write JSON it was not trained on.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class XmlFormatQwen3Coder extends Family {
        @Override
        String templateFile() {
            return "Qwen3-Coder.jinja";
        }

        @Test
        void theModelWritesXmlAndTheClientGetsJsonArguments() throws Exception {
            ObjectNode b = request("{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}");
            b.put("stream", true);
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            assertThat(r.statusCode()).isEqualTo(200);
            // the reply as the model wrote it is not sent; its arguments, as JSON, are
            JsonNode whole = post(request("{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}"));
            JsonNode call = whole.get("choices").get(0).get("message").get("tool_calls").get(0);
            assertValidCall(call);
            JsonNode args = MAPPER.readTree(call.get("function").get("arguments").asText());
            assertThat(args.get("unit").asText()).isIn("celsius", "fahrenheit");
            assertThat(r.body()).doesNotContain("<parameter=").doesNotContain("<function=");
        }
    }

    /** GLM 4.7's calls ({@code <tool_call>NAME<arg_key>P</arg_key><arg_value>V</arg_value></tool_call>}): the same checks. */
    /**
     * MiniMax M2's calls: one {@code <minimax:tool_call>} block of {@code <invoke name="...">}
     * calls, one {@code <parameter name="...">} element a value, strings raw. The template opens
     * {@code <think>} for the reply, and the tiny model would think to max_tokens: these requests
     * do not split reasoning off (the calls' grammar applies from the reply's start;
     * {@code MiniMaxToolCallsTest} has a call after reasoning).
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MiniMaxFormatM2 extends Family {
        @Override
        String templateFile() {
            return "MiniMax-M2.jinja";
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            return ToolCallsTest.request(choice).put("reasoning_format", "none");
        }

        /**
         * With the reasoning split off (the default), a forced call comes after the reasoning the
         * prompt opened: a budget closes it for the tiny model, then the grammar writes the block.
         */
        @Test
        void aForcedCallComesAfterTheReasoning() throws Exception {
            assertCallAfterReasoning(post(ToolCallsTest.request("required").put("reasoning_budget_tokens", 8)), "<minimax");
        }
    }

    /**
     * DeepSeek V3.1's calls ({@code <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>} in
     * R1's block): the same checks, asked as V3.2 is (without thinking; the tiny model ends the block
     * after one call, where the grammar allows more: LateToolGrammarTest#deepSeekV31AndFirefunctionCalls).
     * Its template renders calls but not the tools (the model sees none: the grammar alone makes a
     * forced call).
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class DeepSeekFormatV31 extends DeepSeekFormatV32 {
        @Override
        String templateFile() {
            return "deepseek-ai-DeepSeek-V3.1.jinja";
        }
    }

    /** DeepSeek R1 Distill Qwen's calls (R1's fenced JSON, as llama.cpp's R1 template): the same checks; its template renders no tools either. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class DeepSeekFormatR1DistillQwen extends Family {
        @Override
        String templateFile() {
            return "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja";
        }

        /** Its prompt opens <think>, and the tiny model would think to max_tokens. */
        @Override
        ObjectNode request(String choice) throws Exception {
            return ToolCallsTest.request(choice).put("reasoning_format", "none");
        }
    }

    /** Firefunction v2's calls ({@code functools[...]}, a JSON list of name and arguments objects): the same checks; its template renders no tools. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class FirefunctionFormatV2 extends Family {
        @Override
        String templateFile() {
            return "fireworks-ai-llama-3-firefunction-v2.jinja";
        }
    }

    /** muse-glimmer's calls (each a message to its function, an ATEM block in it): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MuseFormat extends Family {
        @Override
        String templateFile() {
            return "muse-glimmer.jinja";
        }

        /** A second message's start ({@code <|eom|><|start|>assistant to=}) is many of stories260K's tokens: room for two calls. */
        @Override
        Map<String, String> extraConfig() {
            return Map.of("engine.slot-context", "4096", "limits.max-tokens", "700");
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            ObjectNode b = ToolCallsTest.request(choice);
            return b.get("max_tokens").asInt() == 250 ? b.put("max_tokens", 700) : b;
        }

        /** A function named as one of the template's own recipients (self, user) is a 400 naming it, unless tools are off. */
        @Test
        void aFunctionNamedAsTheTemplatesOwnRecipientIsRefused() throws Exception {
            ObjectNode b = request("auto");
            ((ObjectNode) b.get("tools").get(1).get("function")).put("name", "user");
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
            assertThat(MAPPER.readTree(r.body()).get("error").get("param").asText()).isEqualTo("tools[1].function.name");
            assertThat(r.body()).contains("own recipients");
            assertThat(post(b.put("tool_choice", "none")).get("choices").get(0).get("message").has("tool_calls")).isFalse();
        }
    }

    /**
     * MiniMax M3's calls (its namespaced XML, values nested as elements, all in one block): the
     * same checks; its reasoning ({@code <mm:think>} … {@code </mm:think>}) is opened by the prompt
     * where {@code thinking_mode} is "enabled", and a forced call comes after it.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MiniMaxFormatM3 extends Family {
        @Override
        String templateFile() {
            return "MiniMax-M3.jinja";
        }

        @Test
        void aForcedCallComesAfterTheReasoning() throws Exception {
            ObjectNode b = ToolCallsTest.request("required").put("reasoning_budget_tokens", 8);
            b.putObject("chat_template_kwargs").put("thinking_mode", "enabled");
            assertCallAfterReasoning(post(b), "<mm:think>");
            // disabled: the prompt writes the bare </mm:think> a reply without reasoning begins with; the reply is all content
            ObjectNode off = MAPPER.createObjectNode().put("model", "stories260K").put("max_tokens", 12).put("temperature", 0);
            off.putArray("messages").addObject().put("role", "user").put("content", "Once upon a time");
            off.putObject("chat_template_kwargs").put("thinking_mode", "disabled");
            JsonNode msg = post(off).get("choices").get(0).get("message");
            assertThat(msg.has("reasoning_content")).as(msg.toString()).isFalse();
            assertThat(msg.get("content").asText()).isNotBlank().doesNotContain("mm:think");
        }
    }

    /**
     * DeepSeek V3.2's calls ({@code <｜DSML｜invoke>} elements in one {@code <｜DSML｜function_calls>}
     * block, each parameter saying whether its value is a string): the same checks.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class DeepSeekFormatV32 extends Family {
        @Override
        String templateFile() {
            return "deepseek-ai-DeepSeek-V3.2.jinja";
        }

        /** The template thinks when asked (enable_thinking), and the tiny model would think to max_tokens. */
        @Override
        ObjectNode request(String choice) throws Exception {
            return withoutThinking(ToolCallsTest.request(choice));
        }

        /** The tiny model ends the block after one call here (the grammar allows more: XmlToolCallsTest#deepSeekCallsAreInvokesInOneBlock). */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /** DeepSeek V4's: the same in a {@code <｜DSML｜tool_calls>} block. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class DeepSeekFormatV4 extends DeepSeekFormatV32 {
        @Override
        String templateFile() {
            return "deepseek-ai-DeepSeek-V4.jinja";
        }
    }

    /** Kimi K2's calls (a section of {@code functions.NAME:INDEX} calls, markers that are control tokens): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class KimiFormatK2 extends Family {
        @Override
        String templateFile() {
            return "Kimi-K2-Instruct.jinja";
        }

        @Override
        Map<String, String> extraConfig() throws Exception {
            return Map.of("model.path", KimiToolCallsTest.model().toString());
        }

        /** The tiny model ends the section after one call here (the grammar allows more: KimiToolCallsTest). */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /**
     * Gemma 4's calls ({@code <|tool_call>call:NAME{key:value}<tool_call|>}, arguments in Gemma's
     * notation, markers that are control tokens): the same checks, thinking off (the tiny model
     * would think to max_tokens; {@code GemmaTest} has a call after the thought channel).
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class GemmaFormat4 extends Family {
        @Override
        String templateFile() {
            return "google-gemma-4-31B-it.jinja";
        }

        @Override
        Map<String, String> extraConfig() throws Exception {
            return Map.of("model.path", GemmaTest.model().toString());
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            return withoutThinking(ToolCallsTest.request(choice));
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class GlmFormat47 extends Family {
        @Override
        String templateFile() {
            return "GLM-4.7-Flash.jinja";
        }

        /** The template thinks unless told not to, and the tiny model would think to max_tokens. */
        @Override
        ObjectNode request(String choice) throws Exception {
            return withoutThinking(ToolCallsTest.request(choice));
        }
    }

    /**
     * Devstral's calls ({@code [TOOL_CALLS]NAME[ARGS]{...}}), with stories260K's vocabulary given
     * Mistral's markers as control tokens ({@link MistralToolCallsTest#model}): the same checks.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MistralFormatDevstral extends Family {
        @Override
        String templateFile() {
            return "unsloth-mistral-Devstral-Small-2507.jinja";
        }

        @Override
        Map<String, String> extraConfig() throws Exception {
            return Map.of("model.path", MistralToolCallsTest.model().toString());
        }

        /** A system message of the request's own: Devstral's default one is some 4000 tokens of stories260K's vocabulary. */
        @Override
        ObjectNode request(String choice) throws Exception {
            ObjectNode b = ToolCallsTest.request(choice);
            ((ArrayNode) b.get("messages")).insertObject(0).put("role", "system").put("content", "You are a helpful assistant.");
            return b;
        }
    }

    /** Mistral Nemo's calls ({@code [TOOL_CALLS][{"name", "arguments", "id"}, ...]}), with the same patched vocabulary: the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MistralNemoFormat extends Family {
        @Override
        String templateFile() {
            return "mistralai-Mistral-Nemo-Instruct-2407.jinja";
        }

        @Override
        Map<String, String> extraConfig() throws Exception {
            return Map.of("model.path", MistralToolCallsTest.model().toString());
        }
    }

    /**
     * Nemotron Nano v2's calls (a JSON list of calls between {@code <TOOLCALL>} and
     * {@code </TOOLCALL>}): the same checks. Its template opens {@code <think>} for the reply
     * unless a system message says {@code /no_think}: these requests do not split reasoning off.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class NemotronFormatNanoV2 extends Family {
        @Override
        String templateFile() {
            return "NVIDIA-Nemotron-Nano-v2.jinja";
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            return ToolCallsTest.request(choice).put("reasoning_format", "none");
        }
    }

    /** Apriel 1.5's calls (a JSON list of calls between {@code <tool_calls>} and {@code </tool_calls>}): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class AprielFormat15 extends Family {
        @Override
        String templateFile() {
            return "unsloth-Apriel-1.5.jinja";
        }
    }

    /** Seed-OSS's calls (the XML format in {@code <seed:tool_call>} blocks, values without line breaks around them): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class SeedFormat extends Family {
        @Override
        String templateFile() {
            return "ByteDance-Seed-OSS.jinja";
        }
    }

    /**
     * Solar Open's calls ({@code <|tool_calls|>}, then {@code <|tool_call:begin|>ID<|tool_call:name|>NAME<|tool_call:args|>{...}<|tool_call:end|>}
     * back to back): the same checks.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class SolarFormat extends Family {
        @Override
        String templateFile() {
            return "upstage-Solar-Open-100B.jinja";
        }

        /** The tiny model ends its reply after one call here (the grammar allows more: LateToolGrammarTest#solarCallsBackToBack). */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /** Command R+'s calls (a JSON list of {@code tool_name}, {@code parameters} objects in a fenced block after {@code Action:}): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class CommandRPlusFormat extends Family {
        @Override
        String templateFile() {
            return "CohereForAI-c4ai-command-r-plus-tool_use.jinja";
        }

        /** The template's own preamble and instructions, as R7B's. */
        @Override
        Map<String, String> extraConfig() {
            return Map.of("engine.slot-context", "8192");
        }
    }

    /** Command R7B's calls (a JSON list of {@code tool_call_id}, {@code tool_name}, {@code parameters} objects between {@code <|START_ACTION|>} and {@code <|END_ACTION|>}): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class CohereFormatR7B extends Family {
        @Override
        String templateFile() {
            return "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja";
        }

        /** The template's own preamble is some 4,000 tokens of stories260K's vocabulary. */
        @Override
        Map<String, String> extraConfig() {
            return Map.of("engine.slot-context", "8192");
        }

        /** The template thinks (its reply opens <|START_THINKING|>), and the tiny model would think to max_tokens. */
        @Override
        ObjectNode request(String choice) throws Exception {
            return ToolCallsTest.request(choice).put("reasoning_format", "none");
        }

        /** The tiny model ends the list after one call here (the grammar allows more: LateToolGrammarTest#cohereCallsInTheirBlock). */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /**
     * Cohere2 MoE's, the same list: its prompt opens {@code <|START_THINKING|>} for the reply, and
     * the tiny model would think to max_tokens: these requests do not split reasoning off.
     */
    /** MiniMax M1's calls ({@code {"name", "arguments"}} objects, a line each, in a {@code <tool_calls>} block): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MiniMaxFormatM1 extends Family {
        @Override
        String templateFile() {
            return "MiniMax-M1.jinja";
        }

        /** The tiny model ends the block after one call here (the grammar allows more: LateToolGrammarTest#miniMaxM1CallsALineEach). */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /**
     * Tencent Hy3's calls (GLM's pairs in {@code :opensource} tags, in one block): the same checks,
     * the template not thinking by default ({@code reasoning_effort} no_think: its prompt closes an
     * empty block); asked to think, the reasoning is split off and a forced call comes after it.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class HunyuanFormatHy3 extends Family {
        @Override
        String templateFile() {
            return "tencent-Hy3.jinja";
        }

        @Test
        void askedToThinkItsReasoningIsSplitOffAndAForcedCallFollows() throws Exception {
            ObjectNode b = ToolCallsTest.request("required").put("reasoning_budget_tokens", 8);
            b.putObject("chat_template_kwargs").put("reasoning_effort", "high");
            JsonNode out = post(b);
            assertCallAfterReasoning(out, "<think:opensource>");
            assertThat(out.get("choices").get(0).get("message").get("reasoning_content").asText()).doesNotContain("</think:opensource>");
            ObjectNode free = ToolCallsTest.request("auto");
            free.putObject("chat_template_kwargs").put("reasoning_effort", "low");
            JsonNode message = post(free).get("choices").get(0).get("message");
            assertThat(message.get("reasoning_content").asText()).as(message.toString()).isNotBlank();
            assertThat(message.get("content").isNull() || message.get("content").asText().isEmpty()).as("cut short while thinking").isTrue();
        }
    }

    /**
     * DeepSeek R1's calls through llama.cpp's template (fenced JSON arguments in one block): the
     * same checks. The template opens {@code <think>} for the reply, and the tiny model would think
     * to max_tokens: these requests do not split reasoning off, except the one with a budget.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class DeepSeekFormatR1 extends Family {
        @Override
        String templateFile() {
            return "llama-cpp-deepseek-r1.jinja";
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            return ToolCallsTest.request(choice).put("reasoning_format", "none");
        }

        /** With the reasoning split off (the default), a forced call comes after the reasoning the prompt opened, which a budget closes. */
        @Test
        void aForcedCallComesAfterTheReasoning() throws Exception {
            assertCallAfterReasoning(post(ToolCallsTest.request("required").put("reasoning_budget_tokens", 8)), "<｜tool");
        }
    }

    /** Functionary v3.1's calls ({@code <function=NAME>{...}</function>}, one after another): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class FunctionaryFormatV31 extends Family {
        @Override
        String templateFile() {
            return "meetkai-functionary-medium-v3.1.jinja";
        }

        /** The tiny model ends its reply after one call here (the grammar allows more: LateToolGrammarTest#functionaryCallsAreElements). */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /** GigaChat 3.1's call ({@code <|function_call|>} and one JSON object, one call a reply): the same checks. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class GigaChatFormat31 extends Family {
        @Override
        String templateFile() {
            return "GigaChat3.1-10B-A1.8B.jinja";
        }

        /** The template's own preamble (its roles' descriptions) is some 3,400 tokens of stories260K's vocabulary. */
        @Override
        Map<String, String> extraConfig() {
            return Map.of("engine.slot-context", "8192");
        }

        /** One call a reply, as the template writes it. */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /**
     * GigaChat 3's call (a message of the role {@code function call} after the assistant's:
     * {@code <|message_sep|>\n\nfunction call<|role_sep|>\n} and one JSON object): the same checks.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class GigaChatFormat3 extends Family {
        @Override
        String templateFile() {
            return "GigaChat3-10B-A1.8B.jinja";
        }

        /** The template's own preamble (its roles' descriptions), as 3.1's. */
        @Override
        Map<String, String> extraConfig() {
            return Map.of("engine.slot-context", "8192");
        }

        /** One call a reply, as the template writes it. */
        @Override
        boolean writesAnotherCall() {
            return false;
        }
    }

    /**
     * Apertus's calls (a JSON list of {@code {"NAME": {...}}} between {@code <|tools_prefix|>} and
     * {@code <|tools_suffix|>}): the same checks, deliberation off (the tiny model would think to
     * max_tokens); on, a forced call comes after the reasoning ({@code <|inner_prefix|>} … {@code <|inner_suffix|>}).
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class ApertusFormat extends Family {
        @Override
        String templateFile() {
            return "Apertus-8B-Instruct.jinja";
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            return withoutThinking(ToolCallsTest.request(choice));
        }

        @Test
        void aForcedCallComesAfterTheReasoning() throws Exception {
            assertCallAfterReasoning(post(ToolCallsTest.request("required").put("reasoning_budget_tokens", 8)), "<|tools_prefix|>");
        }
    }

    /**
     * Granite 3.3's calls ({@code <|tool_call|>} and a JSON list): the same checks. Its template
     * renders no call in the history, only the tool's result (the round trip's prompt grows by it).
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class GraniteFormat33 extends Family {
        @Override
        String templateFile() {
            return "ibm-granite-granite-3.3-2B-Instruct.jinja";
        }
    }

    /**
     * LFM2's calls (a list in Python's call notation between {@code <|tool_call_start|>} and
     * {@code <|tool_call_end|>}): the same checks. Its templates render no call in the history.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Lfm2Format extends Family {
        @Override
        String templateFile() {
            return "LFM2-8B-A1B.jinja";
        }
    }

    /** LFM2.5 8B A1B's: its history renders calls, strings in single quotes (the round trip sends one back). */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Lfm25MoeFormat extends Lfm2Format {
        @Override
        String templateFile() {
            return "LFM2.5-8B-A1B.jinja";
        }
    }

    /** LFM2.5 Instruct's: its tools in plain "List of tools: [...]", its calls as LFM2's. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Lfm25Format extends Lfm2Format {
        @Override
        String templateFile() {
            return "LFM2.5-Instruct.jinja";
        }
    }

    /**
     * MiniCPM5's calls ({@code <function name="NAME"><param name="P">VALUE</param></function>}): the
     * same checks, thinking off (its template opens {@code <think>} unless told not to, and the tiny
     * model would think to max_tokens).
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MiniCpmFormat5 extends Family {
        @Override
        String templateFile() {
            return "openbmb-MiniCPM5-1B.jinja";
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            return withoutThinking(ToolCallsTest.request(choice));
        }
    }

    /**
     * Functionary v3.2's messages to functions ({@code >>>NAME\n{...}}, its prompt ending with
     * {@code >>>}): the same checks; the reply is read after the prompt's mark, and a forced call's
     * content is none.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class FunctionaryFormatV32 extends Family {
        @Override
        String templateFile() {
            return "meetkai-functionary-medium-v3.2.jinja";
        }

        /** A plain reply: read after the prompt's ">>>", its text is the content (without a recipient mark). */
        @Test
        void aPlainReplyIsItsText() throws Exception {
            JsonNode message = post(ToolCallsTest.request("none")).get("choices").get(0).get("message");
            assertThat(message.get("content").asText()).as(message.toString()).isNotBlank().doesNotStartWith(">>>");
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class CohereFormat2MoE extends Family {
        @Override
        String templateFile() {
            return "Cohere2MoE.jinja";
        }

        @Override
        ObjectNode request(String choice) throws Exception {
            return ToolCallsTest.request(choice).put("reasoning_format", "none");
        }
    }
}
