package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.llama.Vocabulary;
import ai.llmref.server.chat.ChatTemplateRenderer;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The XML tool-call format (Qwen3-Coder, Qwen 3.5, Nemotron 3 Nano, StepFun 3.5 Flash): which
 * templates of the pinned llama.cpp tree ask for it, how a reply is read (values typed by their
 * schemas), the grammars in llama.cpp's grammar engine with a real vocabulary, the stream's pieces
 * against the whole reply, and what is refused.
 */
class XmlToolCallsTest extends StoriesVocabularyTest {
    static final List<ToolCalls.Function> FUNCTIONS = List.of(
            new ToolCalls.Function("get_weather", ToolCallsParseTest.json("""
                    {"type":"object","properties":{"city":{"type":"string","maxLength":24},
                     "unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":7}},
                     "required":["city"]}""")),
            new ToolCalls.Function("write_file", ToolCallsParseTest.json("""
                    {"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"},
                     "mode":{"anyOf":[{"type":"string"},{"type":"null"}]},"options":{"$ref":"#/$defs/Options"}},
                     "required":["path","content"],"$defs":{"Options":{"type":"object","properties":{"append":{"type":"boolean"}},
                     "required":["append"],"additionalProperties":false}}}""")),
            new ToolCalls.Function("get_time", ToolCallsParseTest.json("{\"type\":\"object\"}")));

    /**
     * The pinned templates with a tool-call format here. Before the check that a template's own
     * call reads back, MiniMax M3 (its own XML) and Apriel 1.5 ({@code <tool_calls>[...]}) were
     * read as Hermes, and had no format (both have their own since); GLM 4.6, GLM 4.7 Flash, Spark
     * 2.5, Ling 3.0 Flash and the three Laguna were read as Hermes too, and are now GLM's format;
     * Mistral Small 3.2, Devstral and Ministral 3 write Mistral's ({@code [TOOL_CALLS]name[ARGS]}), Mistral
     * Nemo a JSON list after {@code [TOOL_CALLS]}; GPT-OSS a message to {@code functions.NAME};
     * MiniMax M2 {@code <invoke>} calls in a {@code <minimax:tool_call>} block; the three Kimi K2
     * templates their section of calls; DeepSeek V3.2 and V4 their DSML blocks.
     */
    static final List<String> DETECTED = List.of("Bielik-11B-v3.0-Instruct", "GLM-4.6", "GLM-4.7-Flash", "MiMo-VL", "MiniMax-M2",
            "Kimi-K2-Instruct", "Kimi-K2-Thinking", "moonshotai-Kimi-K2", "deepseek-ai-DeepSeek-V3.2", "deepseek-ai-DeepSeek-V4",
            "deepseek-ai-DeepSeek-V4-Flash-0731",
            "Mistral-Small-3.2-24B-Instruct-2506", "mistralai-Ministral-3-14B-Reasoning-2512", "unsloth-mistral-Devstral-Small-2507",
            "mistralai-Mistral-Nemo-Instruct-2407", "openai-gpt-oss-120b",
            "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
            "NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "Qwen-QwQ-32B", "Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-0.6B", "Qwen3-Coder",
            "Qwen3.5-4B", "Reka-Edge", "Spark2.5", "StepFun3.5-Flash", "ibm-granite-granite-4.0", "ibm-granite-granite-4.1",
            "inclusionai-ling-3.0-flash", "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct",
            "meta-llama-Llama-3.3-70B-Instruct", "poolside-Laguna-S-2.1", "poolside-Laguna-XS-2.1", "poolside-Laguna-XS.2",
            "google-gemma-4-31B-it", "google-gemma-4-31B-it-interleaved", "NVIDIA-Nemotron-Nano-v2", "unsloth-Apriel-1.5",
            "Apriel-1.6-15b-Thinker-fixed", "ByteDance-Seed-OSS", "CohereForAI-c4ai-command-r7b-12-2024-tool_use", "Cohere2MoE",
            "MiniMax-M1", "tencent-Hy3", "llama-cpp-deepseek-r1", "meetkai-functionary-medium-v3.1",
            "GigaChat3.1-10B-A1.8B", "Apertus-8B-Instruct", "Kimi-K3",
            "ibm-granite-granite-3.3-2B-Instruct", "LFM2-8B-A1B", "LFM2.5-8B-A1B", "LFM2.5-Instruct", "openbmb-MiniCPM5-1B",
            "meetkai-functionary-medium-v3.2", "GigaChat3-10B-A1.8B", "CohereForAI-c4ai-command-r-plus-tool_use", "upstage-Solar-Open-100B",
            "MiniMax-M3", "muse-glimmer", "deepseek-ai-DeepSeek-V3.1", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
            "fireworks-ai-llama-3-firefunction-v2");

    /** The pinned tree's chat templates ({@code models/templates}). */
    static Path templatesDir() throws Exception {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(Path.of(System.getProperty("native.build.info")))) {
            p.load(in);
        }
        return Path.of(p.getProperty("llama.cpp.dir"), "models", "templates");
    }

    private static Map<String, String> templates() throws Exception {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> files = Files.list(templatesDir())) {
            for (Path f : files.filter(f -> f.toString().endsWith(".jinja")).toList()) {
                out.put(f.getFileName().toString().replace(".jinja", ""), Files.readString(f));
            }
        }
        return out;
    }

    @Test
    void theTemplatesThatWriteXmlCallsAreDetected() throws Exception {
        Map<String, ToolCalls.Format> found = new TreeMap<>();
        templates().forEach((name, src) -> {
            ToolCalls.Format f;
            try {
                f = ToolCalls.detect(new ChatTemplateRenderer(src, "", ""));
            } catch (RuntimeException e) {
                f = ToolCalls.Format.NONE;
            }
            if (f != ToolCalls.Format.NONE) {
                found.put(name, f);
            }
        });
        // the four templates llama.cpp parses as its Qwen3-Coder format; before, the first two were read as Hermes JSON
        assertThat(found).containsEntry("Qwen3-Coder", ToolCalls.Format.XML).containsEntry("Qwen3.5-4B", ToolCalls.Format.XML)
                .containsEntry("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", ToolCalls.Format.XML)
                .containsEntry("StepFun3.5-Flash", ToolCalls.Format.XML)
                .containsEntry("Qwen-Qwen2.5-7B-Instruct", ToolCalls.Format.HERMES)
                .containsEntry("meta-llama-Llama-3.1-8B-Instruct", ToolCalls.Format.LLAMA3_JSON);
        assertThat(found.entrySet().stream().filter(e -> e.getValue() == ToolCalls.Format.XML).map(Map.Entry::getKey))
                .containsExactlyInAnyOrder("Qwen3-Coder", "Qwen3.5-4B", "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "StepFun3.5-Flash");
    }

    /**
     * The invariant behind detection: for every pinned template with a detected format, a call in
     * the history renders as text that the format reads back as that call (a template read in the
     * wrong format would make a forced call's grammar write what the model never writes).
     */
    @Test
    void everyDetectedTemplateWritesCallsItsFormatReadsBack() throws Exception {
        Map<String, Object> call = Map.of("id", "abcDEF123", "type", "function", "function",
                Map.of("name", "get_weather", "arguments", new java.util.LinkedHashMap<>(Map.of("city", "Paris"))));
        List<String> checked = new ArrayList<>();
        List<String> wrong = new ArrayList<>();
        Map<String, Object> tool = Map.of("type", "function", "function", Map.of("name", "get_weather", "description", "weather",
                "parameters", Map.of("type", "object", "properties", Map.of("city", Map.of("type", "string")))));
        for (Map.Entry<String, String> t : templates().entrySet()) {
            ChatTemplateRenderer r;
            ToolCalls.Format format;
            try {
                r = new ChatTemplateRenderer(t.getValue(), "", "");
                format = ToolCalls.detect(r);
            } catch (RuntimeException e) {
                continue;
            }
            if (format == ToolCalls.Format.NONE) {
                continue;
            }
            ai.llmref.server.chat.ChatMessage user = ai.llmref.server.chat.ChatMessage.of("user", "weather?");
            String whole = r.render(List.of(user, new ai.llmref.server.chat.ChatMessage("assistant", "", List.of(call), null, null)),
                    false, List.of(tool));
            String reply = ToolCalls.renderedCall(format, whole, "weather?");
            ToolCalls.Reply parsed = ToolCalls.parse(format, reply, FUNCTIONS);
            checked.add(t.getKey());
            if (ToolCalls.historyless(format) && reply.isEmpty()) {
                continue; // Granite 3.3's and LFM2's templates render no call in the history (only its content): nothing to read back
            }
            if (parsed.calls().size() != 1 || !parsed.calls().getFirst().arguments().equals("{\"city\":\"Paris\"}")) {
                wrong.add(t.getKey() + " (" + format + "): " + reply);
            }
        }
        assertThat(wrong).as("templates whose own calls their format does not read").isEmpty();
        assertThat(checked).as("the templates with a format").containsExactlyInAnyOrder(DETECTED.toArray(String[]::new));
        assertThat(checked).contains("Qwen3-Coder", "Qwen3.5-4B", "Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct");
    }

    /** A history with a call renders its arguments as the XML the model writes. */
    @Test
    void aCallInTheHistoryRendersAsTheModelWritesIt() throws Exception {
        ChatTemplateRenderer r = new ChatTemplateRenderer(templates().get("Qwen3-Coder"), "", "");
        Map<String, Object> call = Map.of("id", "abcDEF123", "type", "function", "function",
                Map.of("name", "get_weather", "arguments", new java.util.LinkedHashMap<>(Map.of("city", "Paris"))));
        String out = r.render(List.of(ai.llmref.server.chat.ChatMessage.of("user", "weather?"),
                new ai.llmref.server.chat.ChatMessage("assistant", "", List.of(call), null, null)), false, List.of());
        assertThat(out).contains("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>");
        ToolCalls.Reply parsed = ToolCalls.parse(ToolCalls.Format.XML,
                out.substring(out.indexOf("<tool_call>"), out.lastIndexOf("</tool_call>") + 12), FUNCTIONS);
        assertThat(parsed.calls()).singleElement().satisfies(c -> assertThat(c.arguments()).isEqualTo("{\"city\":\"Paris\"}"));
    }

    static final String WEATHER = "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n"
            + "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>";
    static final String WRITE = "<tool_call>\n<function=write_file>\n<parameter=path>\n/tmp/a \"b\".txt\n</parameter>\n"
            + "<parameter=content>\nline 1\n  <b>line</b> 2\\n \u00e9t\u00e9 \ud83d\ude00\n\n</parameter>\n"
            + "<parameter=mode>\nnull\n</parameter>\n<parameter=options>\n{\"append\": true}\n</parameter>\n</function>\n</tool_call>";

    /** The same calls as GLM 4.7 writes them (no line breaks) and as GLM 4.6 does (a line break after the name and each element). */
    static final String GLM_WEATHER = "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Rome</arg_value>"
            + "<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>";
    static final String GLM_WRITE = "<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>/tmp/a \"b\".txt</arg_value>\n"
            + "<arg_key>content</arg_key>\n<arg_value>line 1\n  <b>line</b> 2\\n \u00e9t\u00e9 \ud83d\ude00\n\n</arg_value>\n"
            + "<arg_key>mode</arg_key>\n<arg_value>null</arg_value>\n<arg_key>options</arg_key>\n<arg_value>{\"append\": true}</arg_value>\n"
            + "</tool_call>";

    @Test
    void glmValuesAreTypedByTheirSchemas() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.GLM_XML, "I will check.\n" + GLM_WEATHER + "\n" + GLM_WRITE, FUNCTIONS);
        assertThat(r.content()).isEqualTo("I will check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "write_file");
        assertThat(r.calls().get(0).arguments()).isEqualTo("{\"city\":\"Rome\",\"days\":3}");
        // the raw value is all between the tags, line breaks included
        assertThat(ToolCallsParseTest.json(r.calls().get(1).arguments())).isEqualTo(ToolCallsParseTest.json(
                "{\"path\":\"/tmp/a \\\"b\\\".txt\",\"content\":\"line 1\\n  <b>line</b> 2\\\\n \u00e9t\u00e9 \ud83d\ude00\\n\\n\","
                        + "\"mode\":null,\"options\":{\"append\":true}}"));
        assertThat(ToolCalls.parse(ToolCalls.Format.GLM_XML, "<tool_call>get_time", FUNCTIONS).calls()).singleElement()
                .satisfies(c -> assertThat(c.arguments()).isEqualTo("{}"));
        for (String notACall : List.of("<tool_call>nope</tool_call>", GLM_WEATHER.replace("<arg_value>3<", "<arg_value>three<"),
                GLM_WEATHER.replace("days", "weeks"), GLM_WEATHER + " and then words", WEATHER)) {
            assertThat(ToolCalls.parse(ToolCalls.Format.GLM_XML, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
    }

    @Test
    void glmGrammarsAllowBothLayoutsAndNothingElse() {
        String forced = ToolCalls.grammar(ToolCalls.Format.GLM_XML, FUNCTIONS, true);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.GLM_XML, FUNCTIONS, true);
        for (String g : List.of(forced, ToolCalls.grammar(ToolCalls.Format.GLM_XML, FUNCTIONS, false), late)) {
            assertThat(verdict(g, GLM_WEATHER)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, GLM_WRITE)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "<tool_call>get_time</tool_call>")).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("<tool_call>\n{\"name\"", "<tool_call>get_wind", "<tool_call>get_weather</tool_call>",
                    "<tool_call>get_weather<arg_key>days</arg_key>", "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Rome</arg_value>"
                            + "<arg_key>days</arg_key><arg_value>9<", GLM_WEATHER + " words",
                    "<tool_call>write_file<arg_key>path</arg_key><arg_value>a</arg_value>b")) { // an unbounded raw string ends at its tag
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, GLM_WEATHER + "\n" + GLM_WRITE)).isEqualTo(GrammarVerdict.MAY_END);
        // a name that begins another: each is whole where a line break, '<' or the block's end follows
        List<ToolCalls.Function> fs = List.of(new ToolCalls.Function("get", ToolCallsParseTest.json("{\"type\":\"object\"}")),
                FUNCTIONS.getFirst());
        String g = ToolCalls.grammar(ToolCalls.Format.GLM_XML, fs, false);
        assertThat(verdict(g, "<tool_call>get</tool_call>")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(g, "<tool_call>get\n</tool_call>")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(g, GLM_WEATHER)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(g, "<tool_call>get_w</tool_call>")).isEqualTo(GrammarVerdict.REFUSED);
    }

    @Test
    void valuesAreTypedByTheirSchemas() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.XML, "I will check.\n" + WEATHER + "\n" + WRITE, FUNCTIONS);
        assertThat(r.content()).isEqualTo("I will check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "write_file");
        assertThat(r.calls().get(0).arguments()).isEqualTo("{\"city\":\"Rome\",\"days\":3}");
        assertThat(ToolCallsParseTest.json(r.calls().get(1).arguments())).isEqualTo(ToolCallsParseTest.json(
                "{\"path\":\"/tmp/a \\\"b\\\".txt\",\"content\":\"line 1\\n  <b>line</b> 2\\\\n \u00e9t\u00e9 \ud83d\ude00\\n\","
                        + "\"mode\":null,\"options\":{\"append\":true}}"));
        // a value that may be a string is one where it is no other value the schema admits
        String modeText = WRITE.replace("<parameter=mode>\nnull\n", "<parameter=mode>\n0644\n");
        assertThat(ToolCallsParseTest.json(ToolCalls.parse(ToolCalls.Format.XML, modeText, FUNCTIONS).calls().getFirst().arguments())
                .get("mode").textValue()).isEqualTo("0644");
        // no parameters, and no closing tag at the end
        assertThat(ToolCalls.parse(ToolCalls.Format.XML, "<tool_call>\n<function=get_time>\n</function>", FUNCTIONS).calls())
                .singleElement().satisfies(c -> assertThat(c.arguments()).isEqualTo("{}"));
        for (String notACall : List.of(
                "<tool_call>\n<function=nope>\n</function>\n</tool_call>",
                WEATHER.replace("<parameter=days>\n3\n", "<parameter=days>\nthree\n"), // not an integer's JSON
                WEATHER.replace("days", "weeks"), // undeclared parameter
                WEATHER.replace("</function>", "<parameter=city>\nOslo\n</parameter>\n</function>"), // twice
                WEATHER + " and then words",
                "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>")) { // Hermes JSON
            ToolCalls.Reply nr = ToolCalls.parse(ToolCalls.Format.XML, notACall, FUNCTIONS);
            assertThat(nr.calls()).as(notACall).isEmpty();
            assertThat(nr.content()).isEqualTo(notACall);
        }
    }

    @Test
    void theGrammarsAllowCallsAsTheTemplateWritesThemAndNothingElse() {
        String forced = ToolCalls.grammar(ToolCalls.Format.XML, FUNCTIONS, true);
        String one = ToolCalls.grammar(ToolCalls.Format.XML, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.XML, FUNCTIONS, true);
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, WEATHER)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, WRITE)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "<tool_call>\n<function=get_time>\n</function>\n</tool_call>")).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, "<tool_call>\n<function=get_weather>\n<parameter=city>\nRo")).isEqualTo(GrammarVerdict.GOES_ON);
            for (String refused : List.of(
                    "<tool_call>\n{\"name\": \"get_time\"", // Hermes JSON
                    "<tool_call>\n<function=get_wind>",
                    "<tool_call>\n<function=get_weather>\n</function>", // city is required
                    "<tool_call>\n<function=get_weather>\n<parameter=days>\n3\n</parameter>\n<parameter=city>", // the schema's order
                    "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n<parameter=days>\n9\n", // maximum 7
                    "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n<parameter=unit>\nkelvin",
                    "<tool_call>\n<function=get_weather>\n<parameter=city>\n" + "x".repeat(25), // maxLength 24
                    "<tool_call>\n<function=write_file>\n<parameter=path>\na\n</parameter>\n<parameter=content>\nb\n</parameter>\n"
                            + "<parameter=options>\n{\"append\": 1}",
                    WEATHER + " and then words")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, WEATHER + "\n" + WRITE)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, WEATHER + "\n<")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(late, WEATHER + "\n" + WRITE + "\n")).isEqualTo(GrammarVerdict.MAY_END);
        // a raw string never holds the line that ends it: there the value is over
        String write = "<tool_call>\n<function=write_file>\n<parameter=path>\na\n</parameter>\n<parameter=content>\nx\n</parameter>\ny";
        assertThat(verdict(forced, write)).isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, write.replace("x\n</parameter>\ny", "x</parameter>\ny"))).as("no line break: text").isEqualTo(GrammarVerdict.GOES_ON);
        // within length bounds a value holds no '<', which begins its end (before, a value could
        // hold its end: below minLength, "ab</arg_value>..." went on as text and was read as "ab")
        String city = "<tool_call>\n<function=get_weather>\n<parameter=city>\n";
        assertThat(verdict(forced, city + "Ro<")).isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, city + "Rome, Lazio > Italy\nx")).isEqualTo(GrammarVerdict.GOES_ON);
        String min = ToolCalls.grammar(ToolCalls.Format.GLM_XML, List.of(new ToolCalls.Function("f", ToolCallsParseTest.json(
                "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":4}},\"required\":[\"s\"]}"))), false);
        String glm = "<tool_call>f\n<arg_key>s</arg_key>\n<arg_value>";
        assertThat(verdict(min, glm + "ab</arg_value>")).as("short of minLength, the end as text").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(min, glm + "abcd</arg_value>\n</tool_call>")).isEqualTo(GrammarVerdict.MAY_END);
    }

    @Test
    void whatTheFormatCannotEnforceIsRefused() {
        for (String[] c : new String[][] {
                {"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"}}}", "/properties/id/pattern"},
                {"{\"type\":\"object\",\"properties\":{\"at\":{\"type\":\"string\",\"format\":\"date\"}}}", "/properties/at/format"},
                {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\",\"maxLength\":3},{\"type\":\"null\"}]}}}",
                        "/properties/a"},
                {"{\"type\":\"object\",\"properties\":{\"a>b\":{\"type\":\"string\"}}}", "/properties/a>b"},
                {"{\"type\":\"object\",\"anyOf\":[{\"required\":[\"a\"]}],\"properties\":{\"a\":{\"type\":\"string\"}}}", "/anyOf"},
                {"{\"type\":\"object\",\"properties\":{},\"required\":[\"a\"]}", "/required"}}) {
            List<ToolCalls.Function> fs = List.of(new ToolCalls.Function("f", ToolCallsParseTest.json(c[0])));
            assertThatThrownBy(() -> ToolCalls.grammar(ToolCalls.Format.XML, fs, false)).as(c[0]).isInstanceOf(SchemaException.class)
                    .satisfies(e -> assertThat(((SchemaException) e).pointer()).isEqualTo("/tools/0/function/parameters" + c[1]));
        }
    }

    /** Two tools whose definitions share a name but not a schema: each call is checked against its own. */
    @Test
    void sameNamedDefinitionsOfTwoToolsStayApart() {
        List<ToolCalls.Function> fs = List.of(
                new ToolCalls.Function("a", ToolCallsParseTest.json("{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/T\"}},"
                        + "\"required\":[\"x\"],\"$defs\":{\"T\":{\"type\":\"integer\"}}}")),
                new ToolCalls.Function("b", ToolCallsParseTest.json("{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/T\"}},"
                        + "\"required\":[\"x\"],\"$defs\":{\"T\":{\"type\":\"boolean\"}}}")));
        String hermes = ToolCalls.grammar(ToolCalls.Format.HERMES, fs, false);
        assertThat(verdict(hermes, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 5}}\n</tool_call>")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(hermes, "<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": true}}\n</tool_call>")).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(hermes, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": t")).isEqualTo(GrammarVerdict.REFUSED);
        String xml = ToolCalls.grammar(ToolCalls.Format.XML, fs, false);
        assertThat(verdict(xml, "<tool_call>\n<function=a>\n<parameter=x>\n5\n</parameter>\n</function>\n</tool_call>"))
                .isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(xml, "<tool_call>\n<function=b>\n<parameter=x>\nfalse\n</parameter>\n</function>\n</tool_call>"))
                .isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(xml, "<tool_call>\n<function=b>\n<parameter=x>\n5")).isEqualTo(GrammarVerdict.REFUSED);
    }

    /** A constrained reply, split anywhere: the pieces joined are the calls the whole reply parses to. */
    @Test
    void streamedPiecesJoinToTheWholeReplysCalls() {
        streams(ToolCalls.Format.XML, List.of(WEATHER, "Sure.\n" + WEATHER + "\n" + WRITE, WRITE,
                "<tool_call>\n<function=get_time>\n</function>\n</tool_call>"));
        streams(ToolCalls.Format.GLM_XML, List.of(GLM_WEATHER, "Sure.\n" + GLM_WEATHER + "\n" + GLM_WRITE, GLM_WRITE,
                "<tool_call>get_time</tool_call>", "<tool_call>get_time\n</tool_call>"));
    }

    private static void streams(ToolCalls.Format format, List<String> replies) {
        streams(format, FUNCTIONS, replies);
    }

    private static void streams(ToolCalls.Format format, List<ToolCalls.Function> functions, List<String> replies) {
        Random rnd = new Random(7);
        for (String reply : replies) {
            ToolCalls.Reply whole = ToolCalls.parse(format, reply, functions);
            assertThat(whole.calls()).as(reply).isNotEmpty();
            for (int trial = 0; trial < 40; trial++) {
                SplitStream.Fed fed = SplitStream.feed(format, false, functions, reply, rnd, 6);
                ToolStream s = fed.stream();
                List<ToolStream.Piece> pieces = fed.pieces();
                assertThat(s.wellFormed()).as(reply).isTrue();
                assertThat(s.content()).isEqualTo(whole.content());
                List<StringBuilder> args = new ArrayList<>();
                List<String> names = new ArrayList<>();
                for (ToolStream.Piece p : pieces) {
                    switch (p) {
                        case ToolStream.CallStart cs -> {
                            names.add(cs.name());
                            args.add(new StringBuilder());
                        }
                        case ToolStream.CallArguments a -> args.get(a.index()).append(a.delta());
                        case ToolStream.CallEnd e -> assertThat(e.call().arguments()).isEqualTo(args.get(e.index()).toString());
                        default -> { }
                    }
                }
                assertThat(names).isEqualTo(whole.calls().stream().map(ToolCalls.Call::name).toList());
                for (int k = 0; k < names.size(); k++) {
                    assertThat(args.get(k).toString()).as(reply).isEqualTo(whole.calls().get(k).arguments());
                }
            }
        }
    }

    /**
     * Qwen3-Coder sometimes leaves out the first call's {@code <tool_call>}: a declared function's
     * whole {@code <function=NAME>} also begins the calls (as llama.cpp reads them), whole and
     * streamed, under "auto" with the late grammar from there (the call still ends with
     * {@code </tool_call>}); text that only looks like it ({@code <functional>}, an undeclared name)
     * stays content, and is released while streaming.
     */
    @Test
    void aFirstCallWithoutItsOpeningTagIsACall() {
        String bare = WEATHER.substring("<tool_call>\n".length());
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.XML, "Let me look.\n" + bare, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me look.");
        assertThat(r.calls()).singleElement().satisfies(c -> assertThat(c.arguments()).isEqualTo("{\"city\":\"Rome\",\"days\":3}"));
        assertThat(ToolCalls.parse(ToolCalls.Format.XML, bare + "\n" + WRITE, FUNCTIONS).calls()).hasSize(2);
        for (String content : List.of("#include <functional>\nint main() {}", "<function=get_wind>\n</function>\n</tool_call>",
                bare + " and more words")) {
            assertThat(ToolCalls.parse(ToolCalls.Format.XML, content, FUNCTIONS).calls()).as(content).isEmpty();
        }
        assertThat(ToolCalls.parse(ToolCalls.Format.GLM_XML, "<function=get_weather>\n</function>", FUNCTIONS).calls())
                .as("GLM's calls always have their tag").isEmpty();
        streams(ToolCalls.Format.XML, List.of(bare, "Let me look.\n" + bare + "\n" + WRITE));
        String late = ToolCalls.lateGrammar(ToolCalls.Format.XML, FUNCTIONS, true);
        assertThat(verdict(late, bare)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, bare + "\n" + WRITE)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, bare.replace("</tool_call>", ""))).as("its </tool_call> still ends it").isEqualTo(GrammarVerdict.GOES_ON);
        assertThat(verdict(late, bare + "\n" + bare)).as("only the first may leave it out").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(ToolCalls.openings(ToolCalls.Format.XML, FUNCTIONS)).containsExactly("<tool_call>", "<function=get_weather>",
                "<function=write_file>", "<function=get_time>");
        // streamed free text that only looks like an opening is released
        ToolStream s = new ToolStream(ToolCalls.Format.XML, false, FUNCTIONS);
        StringBuilder sent = new StringBuilder();
        for (String piece : List.of("#include <fun", "ctional>", "\nint x;")) {
            for (ToolStream.Piece p : s.push(piece)) {
                sent.append(((ToolStream.Content) p).text());
            }
        }
        assertThat(sent.toString()).isEqualTo("#include <functional>\nint x;");
    }

    /** Two calls as MiniMax M2's template writes them (one block; the weather's values typed by their schemas). */
    static final String MINIMAX = "<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Rome</parameter>\n"
            + "<parameter name=\"days\">3</parameter>\n</invoke>\n<invoke name=\"write_file\">\n<parameter name=\"path\">/tmp/a \"b\".txt"
            + "</parameter>\n<parameter name=\"content\">line 1\n  <b>line</b> 2\n</parameter>\n<parameter name=\"mode\">null</parameter>\n"
            + "<parameter name=\"options\">{\"append\": true}</parameter>\n</invoke>\n</minimax:tool_call>";

    /**
     * MiniMax M2: the template detected, its calls (one block, several {@code <invoke>}s) read with
     * their values typed, whole and streamed; the grammars (forced, one call, and under "auto")
     * allow the template's layout and refuse what it does not write; a raw string never holds
     * {@code </parameter>}; text after the block, an undeclared function, a second value of a
     * parameter are no calls.
     */
    @Test
    void miniMaxCallsAreInvokesInOneBlock() throws Exception {
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("MiniMax-M2"), "", ""))).isEqualTo(ToolCalls.Format.MINIMAX_XML);
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.MINIMAX_XML, "Let me check.\n" + MINIMAX, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}",
                "{\"path\":\"/tmp/a \\\"b\\\".txt\",\"content\":\"line 1\\n  <b>line</b> 2\\n\",\"mode\":null,\"options\":{\"append\":true}}");
        for (String notCalls : List.of(MINIMAX + " done", MINIMAX.replace("get_weather", "get_wind"),
                MINIMAX.replace("<parameter name=\"days\">3", "<parameter name=\"city\">3"), "<minimax:tool_call>\nhello")) {
            assertThat(ToolCalls.parse(ToolCalls.Format.MINIMAX_XML, notCalls, FUNCTIONS).calls()).as(notCalls).isEmpty();
        }
        assertThat(ToolCalls.parse(ToolCalls.Format.MINIMAX_XML, MINIMAX.substring(0, MINIMAX.indexOf("</minimax")), FUNCTIONS).calls())
                .as("the block's end cut off").hasSize(2);
        streams(ToolCalls.Format.MINIMAX_XML, List.of(MINIMAX, "Sure.\n" + MINIMAX,
                "<minimax:tool_call>\n<invoke name=\"get_time\">\n</invoke>\n</minimax:tool_call>"));
        String forced = ToolCalls.grammar(ToolCalls.Format.MINIMAX_XML, FUNCTIONS, true);
        String one = ToolCalls.grammar(ToolCalls.Format.MINIMAX_XML, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.MINIMAX_XML, FUNCTIONS, true);
        String weather = "<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Rome</parameter>\n</invoke>\n"
                + "</minimax:tool_call>";
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, weather)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("<minimax:tool_call>\n<invoke name=\"get_wind\">",
                    "<minimax:tool_call>\n<invoke name=\"get_weather\">\n</invoke>", // city is required
                    "<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Ro</parameter>x",
                    "<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Rome</parameter>\n"
                            + "<parameter name=\"days\">9</parameter>", // maximum 7
                    "<tool_call>\n<function=get_weather>", weather + " and more")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, MINIMAX)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, MINIMAX)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, MINIMAX)).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        String write = "<minimax:tool_call>\n<invoke name=\"write_file\">\n<parameter name=\"path\">a</parameter>\n"
                + "<parameter name=\"content\">x</parameter>y";
        assertThat(verdict(forced, write)).as("a raw string never holds its end").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, write.replace("x</parameter>y", "x</param y"))).isEqualTo(GrammarVerdict.GOES_ON);
        assertThatThrownBy(() -> ToolCalls.grammar(ToolCalls.Format.MINIMAX_XML, List.of(new ToolCalls.Function("f",
                ToolCallsParseTest.json("{\"type\":\"object\",\"properties\":{\"a\\\"b\":{\"type\":\"string\"}}}"))), false))
                .as("a name with a quote cannot be written").isInstanceOf(SchemaException.class);
    }

    /**
     * Seed-OSS: the XML format's calls in {@code <seed:tool_call>} blocks, each value between its
     * tags without line breaks: the template detected, its own call read back; calls read with
     * their values typed (a raw string keeps its line breaks), whole and streamed; the grammars
     * write the layout and refuse Qwen's line breaks around a number, other blocks and what follows.
     */
    @Test
    void seedCallsAreXmlInTheirOwnBlocks() throws Exception {
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("ByteDance-Seed-OSS"), "", ""))).isEqualTo(ToolCalls.Format.SEED_XML);
        String weather = "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Rome</parameter>\n<parameter=days>3</parameter>\n"
                + "</function>\n</seed:tool_call>";
        String write = "<seed:tool_call>\n<function=write_file>\n<parameter=path>/tmp/a \"b\".txt</parameter>\n"
                + "<parameter=content>\nline 1\n  <b>line</b> 2\n</parameter>\n<parameter=mode>null</parameter>\n"
                + "<parameter=options>{\"append\": true}</parameter>\n</function>\n</seed:tool_call>";
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.SEED_XML, "Let me check.\n" + weather + "\n" + write, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}",
                "{\"path\":\"/tmp/a \\\"b\\\".txt\",\"content\":\"\\nline 1\\n  <b>line</b> 2\\n\",\"mode\":null,\"options\":{\"append\":true}}");
        for (String notCalls : List.of(weather + " done", weather.replace("get_weather", "get_wind"), WEATHER)) {
            assertThat(ToolCalls.parse(ToolCalls.Format.SEED_XML, notCalls, FUNCTIONS).calls()).as(notCalls).isEmpty();
        }
        streams(ToolCalls.Format.SEED_XML, List.of(weather, "Sure.\n" + weather + "\n" + write,
                "<seed:tool_call>\n<function=get_time>\n</function>\n</seed:tool_call>"));
        String forced = ToolCalls.grammar(ToolCalls.Format.SEED_XML, FUNCTIONS, true);
        String one = ToolCalls.grammar(ToolCalls.Format.SEED_XML, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.SEED_XML, FUNCTIONS, true);
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, weather)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("<seed:tool_call>\n<function=get_wind>", "<seed:tool_call>\n<function=get_weather>\n</function>",
                    weather.replace(">3<", ">9<"), weather.replace(">3<", ">\n3\n<"), WEATHER, weather + " and more")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, weather + "\n" + write)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, weather + "\n" + write)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, weather + "\n<seed:tool_call>")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
    }

    /**
     * muse-glimmer: each call a message to its function, {@code to=NAME<|message|>} and an ATEM
     * block ({@code <atem:invoke>} and {@code <atem:parameter>} elements, MiniMax M2's layout), as
     * its envelope leaves a reply ({@code <|start|>assistant} left out); the template detected, its
     * own call read back; calls read whole and streamed, the content before them without its
     * message's end; a "to=" that begins no message to a declared function is text; the grammars
     * write the raw reply (the next message's start included) and refuse what the schemas do not admit.
     */
    @Test
    void museCallsAreMessagesToFunctions() throws Exception {
        ToolCalls.Format f = ToolCalls.Format.MUSE;
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("muse-glimmer"), "", ""))).isEqualTo(f);
        String weather = "to=get_weather<|message|><atem:function_calls>\n<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">Rome"
                + "</atem:parameter>\n<atem:parameter name=\"days\">3</atem:parameter>\n</atem:invoke>\n</atem:function_calls>";
        String write = "to=write_file<|message|><atem:function_calls>\n<atem:invoke name=\"write_file\">\n<atem:parameter name=\"path\">/tmp/a"
                + "</atem:parameter>\n<atem:parameter name=\"content\">line 1\nline 2</atem:parameter>\n<atem:parameter name=\"options\">"
                + "{\"append\": true}</atem:parameter>\n</atem:invoke>\n</atem:function_calls>";
        String reply = "Let me check, to=do it.<|eom|> " + weather + "<|eom|> " + write;
        ToolCalls.Reply r = ToolCalls.parse(f, reply, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me check, to=do it.");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}",
                "{\"path\":\"/tmp/a\",\"content\":\"line 1\\nline 2\",\"options\":{\"append\":true}}");
        assertThat(ToolCalls.parse(f, " " + weather + "<|eom|><|start|>assistant " + write + "<|eom|>", FUNCTIONS).calls())
                .as("the next message's start kept, a last <|eom|>").hasSize(2);
        assertThat(ToolCalls.parse(f, reply.replace("get_weather", "get_wind"), FUNCTIONS).calls()).as("calls begin at a message to a declared function")
                .extracting(ToolCalls.Call::name).containsExactly("write_file");
        for (String notCalls : List.of(reply + " done", weather.replace("get_weather", "get_wind"), "to=self<|message|>hm<|eom|>",
                reply.replace("<|eom|> to=write_file", " to=write_file"), weather.replace("<atem:function_calls>", ""))) {
            assertThat(ToolCalls.parse(f, notCalls, FUNCTIONS).calls()).as(notCalls).isEmpty();
        }
        streams(f, List.of(weather, reply, "Sure. " + weather + "<|eom|>"));
        String forced = ToolCalls.grammar(f, FUNCTIONS, true);
        String one = ToolCalls.grammar(f, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(f, FUNCTIONS, true);
        String raw = " " + weather + "<|eom|><|start|>assistant " + write.replace("{\"append\": true}", "{\"append\":true}");
        assertThat(verdict(forced, raw)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, " " + weather)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, " " + weather + "<|eom|>")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(late, raw.substring(1))).isEqualTo(GrammarVerdict.MAY_END);
        for (String refused : List.of(weather.replace("get_weather\">", "get_wind\">"), weather.replace(">3<", ">9<"),
                weather.replace("Rome", "Ro</atem:parameter>me"), weather + " and more", weather.replace("</atem:function_calls>", "</minimax:tool_call>"))) {
            assertThat(verdict(forced, " " + refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            assertThat(verdict(late, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
        }
    }

    /**
     * DeepSeek V3.1's, its R1 distill's (Qwen) and Firefunction v2's templates render calls in the
     * history, which read back, but not the tools (llama.cpp's probe finds no tool name: "does not
     * natively describe tools"); the server logs a warning for them. Other templates show the tools.
     */
    @Test
    void someTemplatesRenderCallsButNotTheTools() throws Exception {
        for (String t : List.of("deepseek-ai-DeepSeek-V3.1", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "fireworks-ai-llama-3-firefunction-v2")) {
            ChatTemplateRenderer r = new ChatTemplateRenderer(templates().get(t), "", "");
            assertThat(ToolCalls.showsTools(r)).as(t).isFalse();
            assertThat(ToolCalls.detect(r)).as(t).isNotEqualTo(ToolCalls.Format.NONE);
        }
        assertThat(ToolCalls.showsTools(new ChatTemplateRenderer(templates().get("Qwen-Qwen3-0.6B"), "", ""))).isTrue();
    }

    /** Functions whose values MiniMax M3 writes nested: an array of objects, a union, booleans, a free object. */
    static final List<ToolCalls.Function> M3_FUNCTIONS = List.of(FUNCTIONS.getFirst(),
            new ToolCalls.Function("plan_trip", ToolCallsParseTest.json("""
                    {"type":"object","properties":{
                     "stops":{"type":"array","minItems":1,"items":{"$ref":"#/$defs/Stop"}},
                     "budget":{"anyOf":[{"type":"number"},{"type":"null"}]},
                     "flags":{"type":"array","items":{"type":"boolean"}},
                     "note":{"type":["string","null"]},
                     "meta":{"type":"object"}},
                     "required":["stops"],
                     "$defs":{"Stop":{"type":"object","properties":{"city":{"type":"string"},"nights":{"type":"integer","minimum":1}},
                      "required":["city"]}}}""")),
            FUNCTIONS.getLast());

    /**
     * MiniMax M3: its calls' tags all begin with {@code ]<]minimax[>[}, a parameter's name is its
     * tag and values nest as elements, as its template's {@code to_xml} writes them: the template
     * detected, its own calls read back; calls read by their schemas (a value that may be a string
     * raw, an object's members and an array's items as elements, a union's first alternative that
     * reads, numbers and a free object as JSON), whole, streamed and cut short; the grammars write
     * the template's layout and refuse what the schemas do not admit; what cannot be enforced is a 400.
     */
    @Test
    void miniMaxM3NestsValuesAsElements() throws Exception {
        ToolCalls.Format f = ToolCalls.Format.MINIMAX_M3;
        String ns = MiniMaxM3ToolCalls.NS;
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("MiniMax-M3"), "", ""))).isEqualTo(f);
        String weather = ns + "<invoke name=\"get_weather\">" + ns + "<city>Rome" + ns + "</city>" + ns + "<days>3" + ns + "</days>" + ns + "</invoke>";
        String trip = ns + "<invoke name=\"plan_trip\">" + ns + "<stops>" + ns + "<item>" + ns + "<city>Paris" + ns + "</city>" + ns + "<nights>2"
                + ns + "</nights>" + ns + "</item>" + ns + "<item>" + ns + "<city>Nice \"sud\"" + ns + "</city>" + ns + "</item>" + ns + "</stops>"
                + ns + "<budget>1200.5" + ns + "</budget>" + ns + "<flags>" + ns + "<item>true" + ns + "</item>" + ns + "<item>false" + ns
                + "</item>" + ns + "</flags>" + ns + "<note>line 1\nline 2" + ns + "</note>" + ns + "<meta>{\"a\": [1]}" + ns + "</meta>" + ns + "</invoke>";
        String open = MiniMaxM3ToolCalls.OPEN;
        String close = MiniMaxM3ToolCalls.CLOSE;
        String reply = "Let me check.\n" + open + "\n" + weather + "\n" + trip + "\n" + close;
        ToolCalls.Reply r = ToolCalls.parse(f, reply, M3_FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}",
                "{\"stops\":[{\"city\":\"Paris\",\"nights\":2},{\"city\":\"Nice \\\"sud\\\"\"}],\"budget\":1200.5,\"flags\":[true,false],"
                        + "\"note\":\"line 1\\nline 2\",\"meta\":{\"a\": [1]}}");
        assertThat(ToolCalls.parse(f, open + "\n" + ns + "<invoke name=\"get_time\">" + ns + "</invoke>", M3_FUNCTIONS).calls())
                .as("the block's end missing at the reply's end").singleElement().extracting(ToolCalls.Call::arguments).isEqualTo("{}");
        for (String notCalls : List.of(reply + " done", reply.replace("get_weather", "get_wind"), reply.replace("<days>3", "<days>three"),
                reply.replace("<days>", "<hours>").replace("</days>", "</hours>"), reply.replace("<flags>", "<flags>x"),
                reply.replace(weather, weather.replace(ns + "</invoke>", ns + "<days>4" + ns + "</days>" + ns + "</invoke>")),
                "<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Rome</parameter>\n</invoke>\n</minimax:tool_call>")) {
            assertThat(ToolCalls.parse(f, notCalls, M3_FUNCTIONS).calls()).as(notCalls).isEmpty();
        }
        // a call cut short: the JSON read so far, each cut's a prefix of the whole's
        String whole = r.calls().getLast().arguments();
        for (int cut = 0; cut < trip.length(); cut++) {
            MiniMaxM3ToolCalls.Reader partial = new MiniMaxM3ToolCalls.Reader(trip.substring(0, cut), 0, true);
            assertThat(partial.call(M3_FUNCTIONS)).as(trip.substring(0, cut)).isTrue();
            assertThat(whole).as(trip.substring(0, cut)).startsWith(partial.out.toString());
        }
        streams(f, M3_FUNCTIONS, List.of(reply, open + "\n" + weather + "\n" + close, open + ns + "<invoke name=\"get_time\">" + ns + "</invoke>" + close));
        String forced = ToolCalls.grammar(f, M3_FUNCTIONS, true);
        String one = ToolCalls.grammar(f, M3_FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(f, M3_FUNCTIONS, true);
        String written = trip.replace("{\"a\": [1]}", "{\"a\":[1]}");
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, open + "\n" + weather + "\n" + close)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, open + "\n" + written + "\n" + close)).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(open + "\n" + weather.replace("get_weather", "get_wind"), open + "\n" + weather.replace("<days>3", "<days>9"),
                    open + "\n" + weather.replace("Rome", "Ro]<me"), open + "\n" + written.replace(ns + "<stops>" + ns + "<item>" + ns + "<city>Paris" + ns
                            + "</city>" + ns + "<nights>2" + ns + "</nights>" + ns + "</item>" + ns + "<item>" + ns + "<city>Nice \"sud\"" + ns + "</city>"
                            + ns + "</item>" + ns + "</stops>", ns + "<stops>" + ns + "</stops>"),
                    open + "\n" + weather + "\n" + close + " and more", open + "\n" + ns + "<invoke name=\"get_weather\">" + ns + "</invoke>")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, open + "\n" + weather + "\n" + written + "\n" + close)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, open + "\n" + weather + "\n" + ns + "<invoke")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
        // what cannot be enforced: a pattern on a raw string, a union that may be a string but not every one, a recursive reference
        for (String[] c : new String[][] {{"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^x\"}}}", "/properties/a/pattern"},
                {"{\"type\":\"object\",\"properties\":{\"a\":{\"anyOf\":[{\"type\":\"string\",\"maxLength\":3},{\"type\":\"integer\"}]}}}", "/properties/a"},
                {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/N\"}},\"$defs\":{\"N\":{\"type\":\"object\","
                        + "\"properties\":{\"next\":{\"$ref\":\"#/$defs/N\"}}}}}", null},
                {"{\"type\":\"object\",\"properties\":{\"a b\":{\"type\":\"string\"}}}", "/properties/a b"}}) {
            List<ToolCalls.Function> fs = List.of(new ToolCalls.Function("f", ToolCallsParseTest.json(c[0])));
            assertThatThrownBy(() -> ToolCalls.grammar(f, fs, false)).as(c[0]).isInstanceOf(SchemaException.class)
                    .satisfies(e -> assertThat(((SchemaException) e).pointer()).startsWith("/tools/0/function/parameters" + (c[1] == null ? "" : c[1])));
        }
    }

    /**
     * MiniCPM5: {@code <function name="NAME">} calls of {@code <param name="P">} elements, a value
     * holding {@code <}, {@code &} or a line break in a CDATA section: the template detected, its
     * own calls read back; calls read (a CDATA section's text raw), whole and streamed; the
     * grammars write plain text without those characters or a CDATA section without {@code ]]>}.
     */
    @Test
    void miniCpmCallsAreFunctionElements() throws Exception {
        ToolCalls.Format f = ToolCalls.Format.MINICPM5;
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("openbmb-MiniCPM5-1B"), "", ""))).isEqualTo(f);
        String weather = "<function name=\"get_weather\"><param name=\"city\">Rome</param><param name=\"days\">3</param></function>";
        String write = "<function name=\"write_file\"><param name=\"path\">/tmp/a \"b\".txt</param>"
                + "<param name=\"content\"><![CDATA[line 1\n  <b>line</b> & 2]\n]]></param><param name=\"mode\">null</param></function>";
        ToolCalls.Reply r = ToolCalls.parse(f, "Let me check.\n" + weather + "\n" + write, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}",
                "{\"path\":\"/tmp/a \\\"b\\\".txt\",\"content\":\"line 1\\n  <b>line</b> & 2]\\n\",\"mode\":null}");
        for (String notCalls : List.of(weather + " done", weather.replace("get_weather", "get_wind"), WEATHER,
                write.replace("]]></param>", "]]> </param>"), weather.replace("\"city\">", "\"city\" >"))) {
            assertThat(ToolCalls.parse(f, notCalls, FUNCTIONS).calls()).as(notCalls).isEmpty();
        }
        streams(f, List.of(weather, "Sure.\n" + weather + "\n" + write, "<function name=\"get_time\"></function>"));
        String forced = ToolCalls.grammar(f, FUNCTIONS, true);
        String one = ToolCalls.grammar(f, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(f, FUNCTIONS, true);
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, weather)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(verdict(g, write.replace("/tmp/a \"b\".txt", "/tmp/a").replace("<b>line</b> & 2]", "x]]>y"))).as("no ]]> inside")
                    .isEqualTo(GrammarVerdict.REFUSED);
            for (String refused : List.of("<function name=\"get_wind\">", weather.replace(">3<", ">9<"), weather.replace(">Rome<", ">Ro<me<"),
                    weather.replace(">Rome<", ">Ro\nme<"), weather + " and more", "<function name=\"get_weather\"></function>")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        String cdata = write.replace("<param name=\"mode\">null</param>", "");
        assertThat(verdict(forced, weather + "\n" + cdata)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, weather + "\n" + cdata)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, weather + "\n<function")).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
    }

    /**
     * Tencent Hy3: GLM's key and value pairs in tags of its own ({@code :opensource}), the calls in
     * one block: the template detected, its own calls read back; calls read with their values
     * typed, whole and streamed; the grammars write the template's layout (a line break after each
     * element) and refuse GLM's tags, an undeclared name, a value against its schema, text after.
     */
    @Test
    void hunyuanCallsArePairsInOneBlock() throws Exception {
        ToolCalls.Format f = ToolCalls.Format.HUNYUAN;
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("tencent-Hy3"), "", ""))).isEqualTo(f);
        String weather = "<tool_call:opensource>get_weather<tool_sep:opensource>\n<arg_key:opensource>city</arg_key:opensource>\n"
                + "<arg_value:opensource>Rome</arg_value:opensource>\n<arg_key:opensource>days</arg_key:opensource>\n"
                + "<arg_value:opensource>3</arg_value:opensource>\n</tool_call:opensource>";
        String write = "<tool_call:opensource>write_file<tool_sep:opensource>\n<arg_key:opensource>path</arg_key:opensource>\n"
                + "<arg_value:opensource>/tmp/a \"b\".txt</arg_value:opensource>\n<arg_key:opensource>content</arg_key:opensource>\n"
                + "<arg_value:opensource>line 1\n  <b>line</b> 2\n</arg_value:opensource>\n<arg_key:opensource>mode</arg_key:opensource>\n"
                + "<arg_value:opensource>null</arg_value:opensource>\n</tool_call:opensource>";
        String block = "<tool_calls:opensource>\n" + weather + "\n" + write + "\n</tool_calls:opensource>";
        ToolCalls.Reply r = ToolCalls.parse(f, "Let me check.\n" + block, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Let me check.");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}",
                "{\"path\":\"/tmp/a \\\"b\\\".txt\",\"content\":\"line 1\\n  <b>line</b> 2\\n\",\"mode\":null}");
        assertThat(ToolCalls.parse(f, block.replace("\n</tool_calls:opensource>", ""), FUNCTIONS).calls()).as("the end left out").hasSize(2);
        for (String notCalls : List.of(block + " done", block.replace("get_weather", "get_wind"), GLM_WEATHER,
                block.replace("<tool_sep:opensource>", ""))) {
            assertThat(ToolCalls.parse(f, notCalls, FUNCTIONS).calls()).as(notCalls).isEmpty();
        }
        streams(f, List.of(block, "Sure.\n" + block,
                "<tool_calls:opensource>\n<tool_call:opensource>get_time<tool_sep:opensource>\n</tool_call:opensource>\n</tool_calls:opensource>"));
        String forced = ToolCalls.grammar(f, FUNCTIONS, true);
        String one = ToolCalls.grammar(f, FUNCTIONS, false);
        String late = ToolCalls.lateGrammar(f, FUNCTIONS, true);
        String single = "<tool_calls:opensource>\n" + weather + "\n</tool_calls:opensource>";
        for (String g : List.of(forced, one, late)) {
            assertThat(verdict(g, single)).as(g).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of("<tool_calls:opensource>\n<tool_call:opensource>get_wind", single.replace(">3<", ">9<"),
                    single.replace(">Rome<", ">" + "x".repeat(25) + "<"), "<tool_call>" + GLM_WEATHER, single + " and more",
                    "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n</tool_call:opensource>")) {
                assertThat(verdict(g, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        assertThat(verdict(forced, block)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, block)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(one, single.replace("\n</tool_calls", "\n<tool_call:opensource"))).as("one call only").isEqualTo(GrammarVerdict.REFUSED);
    }

    /**
     * DeepSeek V3.2 and V4: {@code <｜DSML｜invoke>} calls in one block ({@code function_calls},
     * V4 {@code tool_calls}), each parameter saying whether its value is a string: the templates
     * detected; values read as they say (a number sent as a string stays one), whole and
     * streamed; the grammars write {@code string="true"} for strings, {@code "false"} for other
     * values, either for a value that may be both; they refuse the other block's name and a raw
     * string holding its end.
     */
    @Test
    void deepSeekCallsAreInvokesInOneBlock() throws Exception {
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("deepseek-ai-DeepSeek-V3.2"), "", "")))
                .isEqualTo(ToolCalls.Format.DEEPSEEK_V32);
        assertThat(ToolCalls.detect(new ChatTemplateRenderer(templates().get("deepseek-ai-DeepSeek-V4"), "", "")))
                .isEqualTo(ToolCalls.Format.DEEPSEEK_V4);
        String p = "<｜DSML｜parameter name=\"";
        String weather = "<｜DSML｜invoke name=\"get_weather\">\n" + p + "city\" string=\"true\">Rome</｜DSML｜parameter>\n"
                + p + "days\" string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>";
        String write = "<｜DSML｜invoke name=\"write_file\">\n" + p + "path\" string=\"true\">/tmp/a \"b\".txt</｜DSML｜parameter>\n"
                + p + "content\" string=\"true\">line 1\n  <b>x</b></｜DSML｜parameter>\n" + p + "mode\" string=\"false\">null</｜DSML｜parameter>\n"
                + "</｜DSML｜invoke>";
        String v32 = "<｜DSML｜function_calls>\n" + weather + "\n" + write + "\n</｜DSML｜function_calls>";
        String v4 = v32.replace("function_calls", "tool_calls");
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.DEEPSEEK_V32, "Checking.\n\n" + v32, FUNCTIONS);
        assertThat(r.content()).isEqualTo("Checking.");
        assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactly("{\"city\":\"Rome\",\"days\":3}",
                "{\"path\":\"/tmp/a \\\"b\\\".txt\",\"content\":\"line 1\\n  <b>x</b>\",\"mode\":null}");
        assertThat(ToolCalls.parse(ToolCalls.Format.DEEPSEEK_V4, v4, FUNCTIONS).calls()).hasSize(2);
        assertThat(ToolCalls.parse(ToolCalls.Format.DEEPSEEK_V4, v32, FUNCTIONS).calls()).as("V3.2's block in V4's format").isEmpty();
        assertThat(ToolCalls.parse(ToolCalls.Format.DEEPSEEK_V32, v32.replace("\"mode\" string=\"false\">null", "\"mode\" string=\"true\">null"),
                FUNCTIONS).calls().get(1).arguments()).as("a value said to be a string is one").contains("\"mode\":\"null\"");
        assertThat(ToolCalls.parse(ToolCalls.Format.DEEPSEEK_V32, v32.replace("string=\"false\">3", "string=\"maybe\">3"), FUNCTIONS)
                .calls()).isEmpty();
        streams(ToolCalls.Format.DEEPSEEK_V32, List.of(v32, "Sure.\n\n" + v32));
        streams(ToolCalls.Format.DEEPSEEK_V4, List.of(v4));
        String forced = ToolCalls.grammar(ToolCalls.Format.DEEPSEEK_V32, FUNCTIONS, true);
        String late = ToolCalls.lateGrammar(ToolCalls.Format.DEEPSEEK_V4, FUNCTIONS, true);
        assertThat(verdict(forced, v32)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, v4)).isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(late, v32)).as("V3.2's block under V4's grammar").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, v32.replace("string=\"false\">3", "string=\"true\">3"))).as("a number is JSON").isEqualTo(GrammarVerdict.REFUSED);
        assertThat(verdict(forced, v32.replace("\"mode\" string=\"false\">null", "\"mode\" string=\"true\">any text")))
                .as("a value that may be a string or null: either").isEqualTo(GrammarVerdict.MAY_END);
        assertThat(verdict(forced, "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"write_file\">\n" + p + "path\" string=\"true\">a"
                + "</｜DSML｜parameter>y")).as("a raw string never holds its end").isEqualTo(GrammarVerdict.REFUSED);
    }

    /** A reply cut inside a raw value: the call stays, its arguments the part written. */
    @Test
    void aCallCutShortKeepsWhatWasWritten() {
        ToolStream s = new ToolStream(ToolCalls.Format.XML, true, FUNCTIONS);
        s.push("<tool_call>\n<function=write_file>\n<parameter=path>\n/tmp/x\n</parameter>\n<parameter=content>\nhello\n</para");
        s.finish();
        assertThat(s.calls()).singleElement().satisfies(c -> {
            assertThat(c.complete()).isFalse();
            assertThat(c.arguments()).isEqualTo("{\"path\":\"/tmp/x\",\"content\":\"hello\\n</para");
        });
        assertThat(s.wellFormed()).isFalse();
    }
}
