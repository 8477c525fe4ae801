package ai.llmref.server.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.llama.ChatTemplates;
import ai.llmref.llama.InvalidInputException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Year;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * {@link ChatTemplateRenderer} against the real chat templates of the pinned llama.cpp tree
 * ({@code models/templates/*.jinja}), against llama.cpp's built-in renderer
 * ({@code llama_chat_apply_template}, through the bindings) and against the expected outputs of
 * llama.cpp's own {@code tests/test-chat-template.cpp}; then the sandbox and the Python semantics.
 */
class ChatTemplateRendererTest {

    // The conversations every template renders. D is the one llama.cpp's own tests use.
    private static final Map<String, List<ChatMessage>> CONVERSATIONS = new LinkedHashMap<>();

    static {
        CONVERSATIONS.put("A", List.of(msg("system", "You are a helpful assistant"), msg("user", "Hello"),
                msg("assistant", "Hi there"), msg("user", "Who are you")));
        CONVERSATIONS.put("B", List.of(msg("user", "Hello")));
        CONVERSATIONS.put("C", List.of(msg("user", "Hello"), msg("assistant", "Hi there"), msg("user", "Who are you")));
        CONVERSATIONS.put("D", List.of(msg("system", "You are a helpful assistant"), msg("user", "Hello"),
                msg("assistant", "Hi there"), msg("user", "Who are you"), msg("assistant", "   I am an assistant   "),
                msg("user", "Another question")));
    }

    /** Templates of the tree that cannot render conversation A at all, with the reason. None. */
    private static final Map<String, String> CANNOT_RENDER = Map.of();

    /**
     * Templates llama.cpp recognises whose own Jinja source renders differently from the
     * built-in it maps them to, and on which conversations. Each output here was checked to be
     * what transformers' Jinja2 environment (jinja2 3.1.6, trim_blocks, lstrip_blocks) renders:
     * the built-in is an approximation of the template, not the reverse. Every other
     * (template, conversation) pair must be equal; a pair listed here must differ, so the list
     * cannot go stale.
     */
    private static final Map<String, Divergence> DIVERGENT = new TreeMap<>();

    private record Divergence(Set<String> conversations, String reason) {}

    private static void divergent(String template, String conversations, String reason) {
        Set<String> set = Set.of(conversations.split(""));
        DIVERGENT.put(template, new Divergence(set, reason));
    }

    static {
        String systemPrompt = "the template writes its default system prompt when the conversation has none";
        String thinkOpen = "the generation prompt opens a reasoning block (<think>); the built-in does not";
        divergent("Bielik-11B-v3.0-Instruct", "D", "the template strips leading whitespace of assistant turns");
        divergent("Cohere2MoE", "ABCD", "the template writes Cohere's safety/identity preamble, <|START_TEXT|> wrappers"
                + " and a <|START_THINKING|> generation prompt");
        divergent("CohereForAI-c4ai-command-r-plus-tool_use", "ABCD", "the tool-use template writes its safety/system"
                + " preambles, the tool list and an 'Action:' instruction turn");
        divergent("CohereForAI-c4ai-command-r7b-12-2024-tool_use", "ABCD", "the template writes its system preamble and"
                + " <|START_RESPONSE|>/<|START_THINKING|> markers");
        divergent("GLM-4.6", "ABCD", "<think></think> before history assistant turns; no newline after the final"
                + " <|assistant|> (built-in chatglm4 writes one)");
        divergent("GLM-4.7-Flash", "ABCD", "no newline after role tags (built-in chatglm4 writes one); </think> in"
                + " history, <think> in the generation prompt");
        divergent("HuggingFaceTB-SmolLM3-3B", "ABCD", "the template always writes a '## Metadata' system block");
        divergent("Kimi-K2-Instruct", "BC", systemPrompt);
        divergent("Kimi-K2-Thinking", "ABCD", systemPrompt + "; <think></think> before history assistant turns");
        divergent("MiMo-VL", "BC", systemPrompt);
        divergent("Mistral-Small-3.2-24B-Instruct-2506", "ABCD", "v7-tekken spacing ([INST]Hello) while llama.cpp"
                + " detects [SYSTEM_PROMPT] as mistral-v7 ([INST] Hello); " + systemPrompt);
        divergent("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "ABCD", "an empty system turn when none is given, <think></think>"
                + " in history; " + thinkOpen);
        divergent("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "ABCD", "the template always writes its"
                + " function-calling system prompt");
        divergent("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "ABCD", "the template always writes its"
                + " function-calling system prompt");
        divergent("Qwen-QwQ-32B", "ABCD", thinkOpen);
        divergent("Qwen-Qwen2.5-7B-Instruct", "BC", systemPrompt);
        divergent("Qwen3.5-4B", "ABCD", thinkOpen);
        divergent("StepFun3.5-Flash", "ABCD", thinkOpen);
        for (String r1 : List.of("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B")) {
            divergent(r1, "ABCD", "no blank line after the system prompt (built-in deepseek3 writes one); " + thinkOpen);
        }
        for (String v3 : List.of("deepseek-ai-DeepSeek-V3.1", "deepseek-ai-DeepSeek-V3.2", "deepseek-ai-DeepSeek-V4",
                "deepseek-ai-DeepSeek-V4-Flash-0731")) {
            divergent(v3, "ABCD", "no blank line after the system prompt (built-in deepseek3 writes one); reasoning markers"
                    + " (<think>/</think>) in history and generation prompt");
        }
        divergent("fireworks-ai-llama-3-firefunction-v2", "ABCD", "the template appends its function-calling"
                + " instructions to the system prompt (and writes one when none is given)");
        divergent("ibm-granite-granite-3.3-2B-Instruct", "BC", systemPrompt + " (knowledge cutoff, today's date)");
        divergent("ibm-granite-granite-4.0", "BC", systemPrompt);
        divergent("inclusionai-ling-3.0-flash", "ABCD", "'detailed thinking on' where built-in bailing2 writes 'off';"
                + " <think></think> in history");
        divergent("llama-cpp-deepseek-r1", "ABCD", "EOS after each user turn, no blank line after the system prompt; "
                + thinkOpen);
        divergent("meetkai-functionary-medium-v3.1", "ABCD", "the template writes a 'Cutting Knowledge Date' system turn");
        divergent("meetkai-functionary-medium-v3.2", "ABCD", "the template always writes its function-calling system"
                + " prompt");
        for (String llama3 : List.of("meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct",
                "meta-llama-Llama-3.3-70B-Instruct")) {
            divergent(llama3, "ABCD", "the template always writes 'Cutting Knowledge Date ... Today Date ...' into the"
                    + " system turn");
        }
        divergent("mistralai-Ministral-3-14B-Reasoning-2512", "ABCD", "v7-tekken spacing while llama.cpp detects"
                + " mistral-v7; " + systemPrompt);
        divergent("mistralai-Mistral-Nemo-Instruct-2407", "AD", "the template puts the system prompt into the last user"
                + " turn; built-in mistral-v3-tekken puts it into the first");
        divergent("moonshotai-Kimi-K2", "BC", systemPrompt);
        divergent("openai-gpt-oss-120b", "ABCD", "the template always writes the harmony system header (identity,"
                + " knowledge cutoff, current date, reasoning level, channels)");
        divergent("unsloth-Apriel-1.5", "ABCD", "the template always writes its reasoning system prompt");
        divergent("unsloth-mistral-Devstral-Small-2507", "ABCD", "v7-tekken spacing while llama.cpp detects mistral-v7; "
                + systemPrompt);
        divergent("upstage-Solar-Open-100B", "ABCD", "the template always writes its provider system prompt");
    }

    private static ChatMessage msg(String role, String content) {
        return ChatMessage.of(role, content);
    }

    // ---------------------------------------------------------------------------------------------
    // The pinned llama.cpp tree

    private static Path llamaCpp() {
        String info = System.getProperty("native.build.info");
        assertThat(info).as("system property native.build.info (set by the server module's surefire config)").isNotBlank();
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(Path.of(info))) {
            p.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException("the native build info " + info + " is missing: build the native module first", e);
        }
        Path dir = Path.of(p.getProperty("llama.cpp.dir", ""));
        assertThat(dir.resolve("models/templates")).as("the pinned llama.cpp tree's templates").isDirectory();
        return dir;
    }

    private static Map<String, String> templates() {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> files = Files.list(llamaCpp().resolve("models/templates"))) {
            for (Path f : files.filter(f -> f.toString().endsWith(".jinja")).toList()) {
                out.put(f.getFileName().toString().replace(".jinja", ""), Files.readString(f));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        assertThat(out).as("models/templates/*.jinja").hasSizeGreaterThan(50);
        return out;
    }

    private static boolean llamaCppKnows(String template) {
        try {
            ChatTemplates.apply(template, List.of(new ChatTemplates.Message("user", "x")), true);
            return true;
        } catch (InvalidInputException e) {
            return false;
        }
    }

    private static String builtIn(String template, List<ChatMessage> messages) {
        return ChatTemplates.apply(template, messages.stream().map(m -> new ChatTemplates.Message(m.role(), m.content())).toList(), true);
    }

    // ---------------------------------------------------------------------------------------------
    // Real templates

    @Test
    void everyTemplateOfThePinnedTreeCompilesAndRendersAConversation() {
        Map<String, String> failures = new TreeMap<>();
        for (var t : templates().entrySet()) {
            List<ChatMessage> conversation = CONVERSATIONS.get("A");
            try {
                ChatTemplateRenderer r = new ChatTemplateRenderer(t.getValue(), "<s>", "</s>");
                String out;
                try {
                    out = r.render(conversation, true, null);
                } catch (ChatTemplateException refused) {
                    conversation = conversation.subList(1, conversation.size()); // a template may refuse system turns
                    out = r.render(conversation, true, null);
                }
                for (ChatMessage m : conversation) {
                    assertThat(out).as("%s renders the text of every message", t.getKey()).contains(m.content());
                }
                assertThat(out.indexOf("Hi there")).as("%s keeps the turns in order", t.getKey())
                        .isGreaterThan(out.indexOf("Hello")).isLessThan(out.indexOf("Who are you"));
            } catch (ChatTemplateException e) {
                failures.put(t.getKey(), e.getMessage());
            }
        }
        assertThat(failures).isEqualTo(CANNOT_RENDER);
    }

    /**
     * BOS: llama.cpp's built-ins never write the BOS text, while many templates start with
     * {@code {{ bos_token }}}. llama-server renders with the real BOS text and, when the vocabulary
     * adds BOS itself, removes one leading BOS text from the output (common/chat.cpp,
     * {@code common_chat_template_direct_apply_impl}); the renderer does the same
     * ({@code tokenizerAddsBos}), which is what the comparison uses. The special tokens are
     * llama.cpp's test defaults ({@code <s>}, {@code </s>}, tests/test-chat-template.cpp).
     * Templates that do not render a system message (Gemma's raises) are compared on the
     * conversations without one: for those, llama-server merges the system text into the first
     * user turn with "\n" while the built-ins merge it with "\n\n" (llama.cpp's own test of
     * gemma-7b-it documents both).
     */
    @Test
    void templatesLlamaCppKnowsRenderAsItsBuiltIns() {
        int known = 0;
        int allEqual = 0;
        int equalPairs = 0;
        List<String> unexpected = new ArrayList<>();
        Set<String> seen = new java.util.HashSet<>();
        for (var t : templates().entrySet()) {
            if (!llamaCppKnows(t.getValue())) {
                continue;
            }
            known++;
            seen.add(t.getKey());
            ChatTemplateRenderer r = new ChatTemplateRenderer(t.getValue(), "<s>", "</s>", true, false);
            Divergence d = DIVERGENT.getOrDefault(t.getKey(), new Divergence(Set.of(), ""));
            boolean all = true;
            for (var c : CONVERSATIONS.entrySet()) {
                if (!r.supportsSystemRole() && c.getValue().get(0).role().equals("system")) {
                    continue;
                }
                String jinja = r.render(c.getValue(), true, null);
                String reference = builtIn(t.getValue(), c.getValue());
                boolean equal = jinja.equals(reference);
                all &= equal;
                equalPairs += equal ? 1 : 0;
                if (equal == d.conversations().contains(c.getKey())) {
                    unexpected.add(t.getKey() + " / conversation " + c.getKey() + (equal ? ": now equal, update DIVERGENT"
                            : ":\n  jinja:    " + esc(jinja) + "\n  llama.cpp: " + esc(reference)));
                }
            }
            allEqual += all ? 1 : 0;
        }
        System.out.printf("templates llama.cpp knows: %d of %d; equal on every conversation: %d; equal pairs: %d%n",
                known, templates().size(), allEqual, equalPairs);
        assertThat(unexpected).as("renderings that differ from llama_chat_apply_template").isEmpty();
        assertThat(seen).as("DIVERGENT names only templates llama.cpp knows").containsAll(DIVERGENT.keySet());
        assertThat(known).isGreaterThanOrEqualTo(40);
    }

    /**
     * llama.cpp's own test (tests/test-chat-template.cpp) lists templates with the output of
     * its built-in renderer and of its Jinja path (the same string when the Jinja one is empty).
     * Both must hold here: the built-in through the bindings, the Jinja one through this renderer.
     */
    @Test
    void llamaCppsOwnTemplateTestCasesRenderAsItExpects() throws IOException {
        List<CppCase> cases = CppCase.parse(Files.readString(llamaCpp().resolve("tests/test-chat-template.cpp")));
        assertThat(cases).hasSizeGreaterThan(30);
        int sameAsBuiltIn = 0;
        for (CppCase c : cases) {
            List<ChatMessage> conversation = new ArrayList<>(CONVERSATIONS.get("D"));
            c.extra().forEach(m -> conversation.add(msg(m[0], m[1])));
            assertThat(builtIn(c.template(), conversation)).as("built-in for %s", c.name()).isEqualTo(c.expected());
            if (!c.jinja()) {
                continue;
            }
            String expected = c.expectedJinja().isEmpty() ? c.expected() : c.expectedJinja();
            sameAsBuiltIn += c.expectedJinja().isEmpty() ? 1 : 0;
            String out = new ChatTemplateRenderer(c.template(), c.bos(), c.eos()).render(conversation, true, null);
            assertThat(out).as("Jinja rendering of %s", c.name()).isEqualTo(expected);
        }
        System.out.printf("test-chat-template.cpp: %d cases, %d where the Jinja rendering is the built-in's%n", cases.size(), sameAsBuiltIn);
    }

    private static String esc(String s) {
        return s.replace("\n", "\\n");
    }

    /** One test case of llama.cpp's tests/test-chat-template.cpp, read from its C++ source. */
    private record CppCase(String name, String template, String expected, String expectedJinja, String bos, String eos,
            boolean jinja, List<String[]> extra) {

        private static final Pattern FIELD = Pattern.compile("/\\*\\s*\\.(\\w+)\\s*=?\\s*\\*/");

        static List<CppCase> parse(String cpp) {
            int start = cpp.indexOf("std::vector<TestCase> test_cases {");
            int end = cpp.indexOf("\n    };", start);
            assertThat(start).as("test_cases in test-chat-template.cpp").isPositive();
            List<Map<String, Object>> raw = new ArrayList<>();
            Matcher m = FIELD.matcher(cpp).region(start, end);
            CppReader in = new CppReader(cpp);
            while (m.find()) {
                String field = m.group(1);
                if (field.equals("name")) {
                    raw.add(new LinkedHashMap<>());
                }
                in.pos = m.end();
                raw.getLast().put(field, switch (field) {
                    case "supported_with_jinja" -> in.bool();
                    case "extra_conversation" -> in.pairs();
                    default -> in.string();
                });
            }
            List<CppCase> out = new ArrayList<>();
            for (Map<String, Object> r : raw) {
                @SuppressWarnings("unchecked")
                List<String[]> extra = (List<String[]>) r.getOrDefault("extra_conversation", List.of());
                out.add(new CppCase((String) r.get("name"), (String) r.get("template_str"), (String) r.get("expected_output"),
                        (String) r.getOrDefault("expected_output_jinja", ""), (String) r.getOrDefault("bos_token", ""),
                        (String) r.getOrDefault("eos_token", ""), (Boolean) r.getOrDefault("supported_with_jinja", true), extra));
            }
            return out;
        }
    }

    /** Reads C++ string literals ("...", u8"...", U8C("..."), adjacent ones joined), bools and {{"a", "b"}, ...}. */
    private static final class CppReader {
        private final String s;
        int pos;

        CppReader(String s) {
            this.s = s;
        }

        boolean bool() {
            skip();
            return s.startsWith("true", pos);
        }

        List<String[]> pairs() {
            List<String[]> out = new ArrayList<>();
            expect('{');
            while (true) {
                skip();
                char c = s.charAt(pos);
                if (c == '}') {
                    pos++;
                    return out;
                }
                if (c == ',') {
                    pos++;
                    continue;
                }
                expect('{');
                String a = string();
                expect(',');
                String b = string();
                expect('}');
                out.add(new String[] {a, b});
            }
        }

        String string() {
            skip();
            if (s.startsWith("U8C(", pos)) {
                pos += 4;
                String v = string();
                expect(')');
                return v;
            }
            StringBuilder b = new StringBuilder();
            while (true) {
                skip();
                if (s.startsWith("u8\"", pos)) {
                    pos += 2;
                }
                if (pos >= s.length() || s.charAt(pos) != '"') {
                    return b.toString();
                }
                for (pos++; s.charAt(pos) != '"'; ) {
                    char c = s.charAt(pos++);
                    if (c != '\\') {
                        b.append(c);
                        continue;
                    }
                    char e = s.charAt(pos++);
                    b.append(switch (e) {
                        case 'n' -> '\n';
                        case 't' -> '\t';
                        case 'r' -> '\r';
                        case '\\', '"', '\'' -> e;
                        default -> throw new IllegalStateException("unexpected escape \\" + e + " at " + pos);
                    });
                }
                pos++;
            }
        }

        private void expect(char c) {
            skip();
            assertThat(s.charAt(pos)).as("C++ source at offset %d", pos).isEqualTo(c);
            pos++;
        }

        private void skip() {
            while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
                pos++;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // API behaviour

    @Test
    void raiseExceptionFailsTheRenderWithItsMessage() {
        ChatTemplateRenderer r = new ChatTemplateRenderer("""
                {%- for m in messages %}{% if m.role not in ['user', 'assistant'] %}\
                {{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{{ m.content }}{% endfor %}""",
                "", "");
        assertThat(r.render(List.of(msg("user", "hi")), true, null)).isEqualTo("hi");
        assertThatThrownBy(() -> r.render(List.of(msg("tool", "x")), true, null))
                .isInstanceOf(ChatTemplateException.class).hasMessage("Only user and assistant roles are supported!");
        // inside a macro too
        ChatTemplateRenderer inMacro = new ChatTemplateRenderer(
                "{% macro check(m) %}{% if not m.content %}{{ raise_exception('empty message') }}{% endif %}{% endmacro %}"
                        + "{% for m in messages %}{{ check(m) }}{% endfor %}", "", "");
        assertThatThrownBy(() -> inMacro.render(List.of(msg("user", "")), true, null))
                .isInstanceOf(ChatTemplateException.class).hasMessage("empty message");
    }

    @Test
    void syntaxErrorsFailAtConstruction() {
        for (String bad : List.of(
                "{% if messages %}unclosed",
                "{% for m in messages %}{% endif %}",
                "text {% endif %}",
                "{{ messages[0 }}",
                "{{ 1 + }}",
                "{% if messages[ %}x{% endif %}",
                "{{ messages|no_such_filter }}",
                "{{ messages is no_such_test }}",
                "{% no_such_tag %}",
                "{{ 'unterminated }}",
                "{# unterminated comment")) {
            assertThatThrownBy(() -> new ChatTemplateRenderer(bad, "", "")).as(bad).isInstanceOf(ChatTemplateException.class);
        }
    }

    @Test
    void defaultTemplateIsChatMlAsLlamaCppRendersIt() {
        ChatTemplateRenderer r = new ChatTemplateRenderer(ChatTemplateRenderer.defaultTemplate(), "<s>", "</s>");
        List<ChatMessage> conversation = CONVERSATIONS.get("A");
        assertThat(r.render(conversation, true, null)).isEqualTo("""
                <|im_start|>system
                You are a helpful assistant<|im_end|>
                <|im_start|>user
                Hello<|im_end|>
                <|im_start|>assistant
                Hi there<|im_end|>
                <|im_start|>user
                Who are you<|im_end|>
                <|im_start|>assistant
                """);
        for (List<ChatMessage> c : CONVERSATIONS.values()) {
            assertThat(r.render(c, true, null)).isEqualTo(builtIn("chatml", c));
            assertThat(r.render(c, false, null)).isEqualTo(ChatTemplates.apply("chatml",
                    c.stream().map(m -> new ChatTemplates.Message(m.role(), m.content())).toList(), false));
        }
    }

    @Test
    void aLeadingBosIsRemovedOnlyWhenTheTokenizerAddsOne() {
        String template = "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{{ eos_token }}{{ bos_token }}{% endfor %}";
        List<ChatMessage> two = List.of(msg("user", "a"), msg("assistant", "b"));
        assertThat(new ChatTemplateRenderer(template, "<s>", "</s>").render(two, false, null))
                .isEqualTo("<s>[a]</s><s>[b]</s><s>");
        assertThat(new ChatTemplateRenderer(template, "<s>", "</s>", true, false).render(two, false, null))
                .as("one leading BOS removed; BOS inside the history stays").isEqualTo("[a]</s><s>[b]</s><s>");
        assertThat(new ChatTemplateRenderer("{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}", "<s>", "</s>",
                true, true).render(two, false, null)).as("one trailing EOS removed").isEqualTo("a</s>b");
    }

    @Test
    void aSystemMessageIsMergedIntoTheFirstTurnWhenTheTemplateRefusesIt() throws IOException {
        String gemma = Files.readString(llamaCpp().resolve("models/templates/google-gemma-2-2b-it.jinja"));
        ChatTemplateRenderer r = new ChatTemplateRenderer(gemma, "<bos>", "<eos>", true, false);
        assertThat(r.supportsSystemRole()).isFalse();
        assertThat(r.render(CONVERSATIONS.get("A"), true, null)).isEqualTo("""
                <start_of_turn>user
                You are a helpful assistant
                Hello<end_of_turn>
                <start_of_turn>model
                Hi there<end_of_turn>
                <start_of_turn>user
                Who are you<end_of_turn>
                <start_of_turn>model
                """);
        assertThat(new ChatTemplateRenderer(ChatTemplateRenderer.defaultTemplate(), "", "").supportsSystemRole()).isTrue();
    }

    @Test
    void toolsAndExtraVariablesReachTheTemplate() {
        List<Map<String, Object>> tools = List.of(Map.of("type", "function", "function",
                Map.of("name", "get_weather", "parameters", Map.of("type", "object"))));
        String template = "{% if tools %}{{ tools|map(attribute='function')|map(attribute='name')|join(',') }}{% endif %}"
                + "|{{ enable_thinking }}|{{ messages|length }}";
        ChatTemplateRenderer r = new ChatTemplateRenderer(template, "", "");
        assertThat(r.render(List.of(msg("user", "x")), true, tools, Map.of("enable_thinking", false)))
                .isEqualTo("get_weather|False|1");
        assertThat(r.render(List.of(msg("user", "x")), true, List.of())).as("no tools: undefined").isEqualTo("||1");
    }

    // ---------------------------------------------------------------------------------------------
    // Safety: templates come from model files

    /**
     * An assistant turn that only calls tools (OpenAI's {@code content: null}) reaches the template
     * with {@code content} "", as llama-server passes it ({@code common_chat_msg::to_json_oaicompat},
     * {@code workaround::requires_non_null_content}): LFM2 wrote {@code content|tojson} ("null")
     * into the prompt, and DeepSeek R1's concatenation of the object arguments failed the request.
     * Expected strings: Jinja2 set up as transformers does, given those messages.
     */
    @Test
    void anAssistantTurnWithOnlyToolCallsHasEmptyContentAsLlamaServerPassesIt() {
        Map<String, Object> call = Map.of("id", "call_1", "type", "function",
                "function", Map.of("name", "get_weather", "arguments", Map.of("city", "Paris")));
        List<ChatMessage> conversation = List.of(msg("user", "Weather in Paris?"),
                new ChatMessage("assistant", null, List.of(call), null, null), new ChatMessage("tool", "sunny", null, "call_1", null));
        assertThat(new ChatTemplateRenderer(templates().get("LFM2.5-Instruct"), "", "").render(conversation, true, null))
                .isEqualTo("<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n"
                        + "<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n");
        assertThat(new ChatTemplateRenderer(templates().get("llama-cpp-rwkv-world"), "", "").render(conversation, true, null))
                .isEqualTo("User: Weather in Paris?\n\nAssistant: \n\nAssistant:");
        assertThat(new ChatTemplateRenderer(templates().get("deepseek-ai-DeepSeek-R1-Distill-Llama-8B"), "", "")
                .render(conversation, true, null)).isEqualTo("<｜User｜>Weather in Paris?<｜Assistant｜><｜end▁of▁sentence｜>"
                        + "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
    }

    /**
     * Tool-call arguments reach a template as a JSON object when it reads them as one (llama.cpp's
     * {@code supports_object_arguments} capability) and as a JSON string otherwise: functionary
     * v3.2 concatenates them to a string ({@code '...' + arguments}), which failed on an object.
     * Expected: Jinja2 set up as transformers does, given the arguments string the client sent.
     */
    @Test
    void toolCallArgumentsAreAStringForATemplateThatWritesThemAsOne() {
        ChatTemplateRenderer functionary = new ChatTemplateRenderer(templates().get("meetkai-functionary-medium-v3.2"), "", "");
        assertThat(functionary.objectArguments()).isFalse();
        Map<String, Object> call = Map.of("id", "call_1", "type", "function",
                "function", Map.of("name", "get_weather", "arguments", Map.of("city", "Paris")));
        List<Map<String, Object>> tools = List.of(Map.of("type", "function", "function", Map.of("name", "get_weather",
                "description", "Get the weather", "parameters", Map.of("type", "object",
                        "properties", Map.of("city", Map.of("type", "string")), "required", List.of("city")))));
        String out = functionary.render(List.of(msg("user", "Weather in Paris?"), new ChatMessage("assistant", null, List.of(call), null, null),
                new ChatMessage("tool", "sunny", null, "call_1", "get_weather")), true, tools);
        assertThat(out).endsWith("<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n>>>get_weather\n{\"city\":\"Paris\"}<|eot_id|>"
                + "<|start_header_id|>tool<|end_header_id|>\n\nsunny<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n>>>");
        // templates that read the object keep it (Qwen 2.5 writes arguments|tojson, Llama 3.1 too)
        for (String t : List.of("Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct", "Qwen3.5-4B")) {
            assertThat(new ChatTemplateRenderer(templates().get(t), "", "").objectArguments()).as(t).isTrue();
        }
    }

    @Test
    void outputIsBounded() {
        ChatTemplateRenderer r = new ChatTemplateRenderer(
                "{% for i in range(100000) %}0123456789012345678901234567890123456789012345678901234567890123{% endfor %}", "", "");
        assertThatThrownBy(() -> r.render(List.of(msg("user", "x")), true, null))
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(String.valueOf(ChatTemplateRenderer.MAX_OUTPUT_CHARS));
        ChatTemplateRenderer doubling = new ChatTemplateRenderer(
                "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}", "", "");
        assertThatThrownBy(() -> doubling.render(List.of(msg("user", "x")), true, null)).isInstanceOf(ChatTemplateException.class);
        String huge = "x".repeat(ChatTemplateRenderer.MAX_OUTPUT_CHARS);
        assertThatThrownBy(() -> new ChatTemplateRenderer(ChatTemplateRenderer.defaultTemplate(), "", "")
                .render(List.of(msg("user", huge)), true, null)).isInstanceOf(ChatTemplateException.class);
    }

    @Test
    void valuesNestedTooDeeplyAreATemplateErrorThatNamesNoJavaClass() {
        // a tool's parameters are client input: 80 levels of objects, printed by tojson and by repr
        Map<String, Object> deep = Map.of("type", "string");
        for (int i = 0; i < 80; i++) {
            deep = Map.of("type", "object", "properties", Map.of("p", deep));
        }
        List<Map<String, Object>> tools = List.of(Map.of("type", "function", "function",
                Map.of("name", "f", "parameters", deep)));
        for (String template : List.of("{{ tools | tojson }}", "{{ tools[0] }}", "{{ tools | string }}")) {
            ChatTemplateRenderer r = new ChatTemplateRenderer(template, "", "");
            assertThatThrownBy(() -> r.render(List.of(msg("user", "x")), true, tools)).as(template)
                    .isInstanceOf(ChatTemplateException.class).hasMessageContaining("nested too deeply")
                    .message().doesNotContainPattern("[a-z]+\\.[a-z.]+\\.[A-Z]\\w*(Exception|Error)");
        }
    }

    /** A template's failure reaches the client (400 chat_template_error) and the log: Python's words, no Java class. */
    @Test
    void failuresNameNoJavaClass() {
        Map<String, String> failures = new LinkedHashMap<>();
        for (String template : List.of("{{ 'a' - 1 }}", "{{ [1] - 1 }}", "{{ messages - 1 }}", "{{ [1, 'a']|sort }}",
                "{{ 1 // 0 }}", "{{ 1 % 0 }}", "{{ 'The %s' % 'x' }}", "{{ messages[0] * 1.5 }}")) {
            assertThatThrownBy(() -> new ChatTemplateRenderer(template, "", "").render(List.of(msg("user", "x")), true, null))
                    .as(template).isInstanceOf(ChatTemplateException.class)
                    .satisfies(e -> failures.put(template, e.getMessage()));
        }
        assertThat(failures).allSatisfy((template, message) -> assertThat(message).as(template)
                .doesNotContain("java").doesNotContain("hubspot").doesNotContain("class ").doesNotContain("Exception")
                .doesNotContainPattern("\\b[a-z]+\\.[a-z]+\\.[A-Z]").contains("line 1"));
        assertThat(failures.get("{{ 'a' - 1 }}")).contains("unsupported operand type(s) for -: 'str' and 'int'"); // jinja2's TypeError
        assertThat(failures.get("{{ 1 // 0 }}")).contains("integer division or modulo by zero");
    }

    @Test
    void rangeIsPythonsAndARenderIsBoundedInTime() {
        assertThat(new ChatTemplateRenderer("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ range(True)|list }}"
                + " {{ range(2, 2)|list }} {% for i in range(3) %}{{ messages[i % 1].content }}{{ loop.index }}{% endfor %}", "", "")
                .render(List.of(msg("user", "m")), true, null)).isEqualTo("[0, 1, 2] [1, 3, 5] [5, 3, 1] [0] [] m1m2m3");
        // Jinjava read a float as its range limit: range(64.0) gave 100,000 items
        for (String bad : List.of("{{ range(64.0) }}", "{{ range('3') }}", "{{ range(1, 5, 0) }}", "{{ range(200000) }}",
                "{{ range(-9223372036854775807, 9223372036854775807) }}")) {
            assertThatThrownBy(() -> new ChatTemplateRenderer(bad, "", "").render(List.of(msg("user", "x")), true, null)).as(bad)
                    .isInstanceOf(ChatTemplateException.class);
        }
        assertThatThrownBy(() -> new ChatTemplateRenderer("{{ range(64.0) }}", "", "").render(List.of(msg("user", "x")), true, null))
                .hasMessageContaining("'float' object cannot be interpreted as an integer");
        // work that grows with each step (appending to a growing string) is stopped by time, not by the step count
        ChatTemplateRenderer growing = new ChatTemplateRenderer("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
                + "{% set ns.s = ns.s ~ 'false' %}{% endfor %}{{ ns.s|length }}", "", "");
        long t0 = System.nanoTime();
        assertThatThrownBy(() -> growing.render(List.of(msg("user", "x")), true, null)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("took longer than " + ChatTemplateRenderer.MAX_RENDER_MILLIS + " ms");
        assertThat((System.nanoTime() - t0) / 1_000_000).as("stopped near the limit").isLessThan(ChatTemplateRenderer.MAX_RENDER_MILLIS * 3);
    }

    @Test
    void workAndRecursionAreBounded() {
        ChatTemplateRenderer loops = new ChatTemplateRenderer(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "", "");
        assertThatThrownBy(() -> loops.render(List.of(msg("user", "x")), true, null))
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining("steps");
        ChatTemplateRenderer recursion = new ChatTemplateRenderer(
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "", "");
        assertThatThrownBy(() -> recursion.render(List.of(msg("user", "x")), true, null)).isInstanceOf(ChatTemplateException.class);
        assertThatThrownBy(() -> new ChatTemplateRenderer("{{ 'x' * 100000000 }}", "", "").render(List.of(), true, null))
                .isInstanceOf(ChatTemplateException.class);
    }

    @Test
    void templatesCannotReachJavaObjects() {
        for (String probe : List.of(
                "{{ ''.getClass() }}", "{{ ''.getClass().getName() }}", "{{ ''.class }}", "{{ ''.class.name }}",
                "{{ messages.getClass() }}", "{{ messages[0].getClass() }}", "{{ messages[0].class }}",
                "{{ ''.getBytes() }}", "{{ ''.repeat(3) }}", "{{ 'a'.concat('b') }}", "{{ (1).getClass() }}",
                "{{ true.getClass() }}", "{{ ____int3rpr3t3r____ }}", "{{ ____int3rpr3t3r____.getConfig() }}",
                "{{ ____int3rpr3t3r____.context }}", "{{ ____int3rpr3t3r____.config.objectMapper }}",
                "{% for m in messages %}{{ loop.getClass() }}{% endfor %}", "{% for m in messages %}{{ loop.class }}{% endfor %}",
                "{{ namespace.getClass() }}", "{{ range.__class__ }}", "{{ messages.__class__.__mro__ }}",
                "{% for m in messages %}{{ loop|pprint }}{{ loop|e }}{% endfor %}", "{% for m in messages %}{{ [loop]|e }}{% endfor %}",
                "{{ strftime_now|e }}", "{{ namespace|pprint }}", "{{ messages|pprint }}", "{{ messages[0]|xmlattr }}",
                "{% include 'META-INF/MANIFEST.MF' %}", "{% import 'x.jinja' as x %}", "{% extends 'x.jinja' %}",
                "{{ 'x'|render }}")) {
            String out;
            try {
                out = new ChatTemplateRenderer(probe, "", "").render(List.of(msg("user", "hi")), true, null);
            } catch (ChatTemplateException refused) {
                continue;
            }
            assertThat(out).as(probe).doesNotContainIgnoringCase("java").doesNotContainIgnoringCase("class")
                    .doesNotContain("hubspot").doesNotContain("@");
        }
    }

    @Test
    void messageTextIsNeverRenderedAsATemplate() {
        ChatTemplateRenderer r = new ChatTemplateRenderer(ChatTemplateRenderer.defaultTemplate(), "", "");
        String text = "{{ 7 * 7 }} {% for x in range(3) %}{{ x }}{% endfor %} {{ raise_exception('no') }}";
        assertThat(r.render(List.of(msg("user", text)), false, null)).isEqualTo("<|im_start|>user\n" + text + "<|im_end|>\n");
    }

    @Test
    void rendersConcurrently() throws Exception {
        ChatTemplateRenderer r = new ChatTemplateRenderer(templates().get("Qwen3.5-4B"), "", "");
        String expected = r.render(CONVERSATIONS.get("D"), true, null);
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<Boolean>> all = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                all.add(pool.submit(() -> r.render(CONVERSATIONS.get("D"), true, null).equals(expected)));
            }
            for (Future<Boolean> f : all) {
                assertThat(f.get()).isTrue();
            }
        } finally {
            pool.shutdownNow();
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Python/Jinja2 semantics the real templates rely on. Expected values are what transformers'
    // Jinja2 environment (jinja2 3.1.6, trim_blocks, lstrip_blocks) renders.

    private static String jinja(String template) {
        return new ChatTemplateRenderer(template, "<s>", "</s>")
                .render(List.of(msg("user", "u1"), msg("assistant", "a1"), msg("user", "u2")), true, null);
    }

    @Test
    void pythonStringMethods() {
        assertThat(jinja("{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  x'.lstrip() }}|{{ 'x  '.rstrip() }}|{{ '  x  '|trim }}"))
                .isEqualTo("x|a|x|x|x");
        assertThat(jinja("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}"
                + "|{{ 'x</think>y'.split('</think>')[-1] }}")).isEqualTo("['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a b', 'c']|y");
        assertThat(jinja("{{ 'Hello'.startswith('He') }}|{{ 'Hello'.endswith(('x', 'lo')) }}|{{ 'hello world'.title() }}"
                + "|{{ 'ab'.upper() }}|{{ 'AB'.lower() }}|{{ 'aXbX'.replace('X', '-') }}|{{ 'hELLO'.capitalize() }}"))
                .isEqualTo("True|True|Hello World|AB|ab|a-b-|Hello");
        assertThat(jinja("{{ '{}-{}'.format('a', 'b') }}|{{ '{name}!'.format(name='x') }}|{{ 'a\\tb\\u00e9\\x41' }}"))
                .isEqualTo("a-b|x!|a\tbéA");
    }

    @Test
    void pythonSlicingAndOperators() {
        assertThat(jinja("{{ 'abc'[::-1] }}|{{ [1, 2, 3][1:] }}|{{ [1, 2, 3][:-1] }}|{{ 'hello'[1:4] }}|{{ [1, 2, 3, 4, 5][::2] }}"
                + "|{{ 'hello'[-1] }}|{{ messages[::-1][0].content }}")).isEqualTo("cba|[2, 3]|[1, 2]|ell|[1, 3, 5]|o|u2");
        assertThat(jinja("{{ 1+1 }}|{{ 7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 3 }}|{{ 1 / 2 }}|{{ 'ab' * 2 }}|{{ [1] + [2] }}|{{ 'a' ~ 1 }}"))
                .isEqualTo("2|3|1|8|0.5|abab|[1, 2]|a1");
        assertThat(jinja("{% if not x is defined %}undefined{% endif %}|{% if not messages is defined %}no{% else %}yes{% endif %}"
                + "|{{ messages[0] is mapping }}|{{ 'a' is string }}|{{ messages is iterable }}|{{ 'a' in 'cat' }}|{{ 'x' not in ['a'] }}"))
                .isEqualTo("undefined|yes|True|True|True|True|True");
        assertThat(jinja("{% set ns = namespace(n=0, last=messages|length - 1) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                + "{% endfor %}{{ ns.n }}/{{ ns.last }}")).isEqualTo("3/2");
    }

    /** Expected values: jinja2 3.1.6 (Python 3.11). Java's % truncates toward zero and its float // was floor(a / b). */
    @Test
    void moduloAndFloorDivisionRoundTowardNegativeInfinityAsPythonDoes() {
        assertThat(jinja("{{ -7 % 3 }}|{{ 7 % -3 }}|{{ -7.5 % 2 }}|{{ 7.5 % -2 }}|{{ -7 % 3.0 }}|{{ 7 % 3 }}|{{ -6 % 3 }}|{{ 6 % -3 }}"
                + "|{{ -0.0 % 1 }}|{{ 5 % 2.5 }}|{{ -6.0 % 3 }}|{{ 6.0 % -3 }}|{{ 1e20 % 7 }}|{{ -1 % 1e20 }}"))
                .isEqualTo("2|-2|0.5|-0.5|2.0|1|0|0|0.0|0.0|0.0|-0.0|2.0|1e+20");
        assertThat(jinja("{{ true % 2 }}|{{ 5 % true }}|{{ -9223372036854775807 % 10 }}|{{ (-9223372036854775807 - 1) // -1 }}"))
                .isEqualTo("1|0|3|9223372036854775808");
        assertThat(jinja("{{ -7 // 2 }}|{{ 7 // -2 }}|{{ -7.5 // 2 }}|{{ 7 // 2.0 }}|{{ 1 // 0.1 }}|{{ -1 // 0.1 }}|{{ 7.0 // -2 }}"
                + "|{{ -0.0 // 1 }}|{{ 0 // -1.0 }}|{{ true // 2 }}|{{ 1e308 // 1e-308 }}"))
                .isEqualTo("-4|-4|-4.0|3.0|9.0|-10.0|-4.0|-0.0|-0.0|0|inf");
        assertThat(jinja("{% for i in range(-3, 4) %}{{ i % 3 }}{{ i // 3 }},{% endfor %}")).isEqualTo("0-1,1-1,2-1,00,10,20,01,");
        // Python raises where Java's doubles gave nan or inf
        Map<String, String> errors = Map.of("{{ 1 % 0 }}", "integer modulo by zero", "{{ 1.5 % 0 }}", "float modulo by zero",
                "{{ 1 // 0 }}", "integer division or modulo by zero", "{{ 1.5 // 0.0 }}", "float floor division by zero",
                "{{ none % 2 }}", "unsupported operand type(s) for %: 'NoneType' and 'int'",
                "{{ 2 // [1] }}", "unsupported operand type(s) for //: 'int' and 'list'");
        errors.forEach((template, message) -> assertThatThrownBy(() -> jinja(template)).as(template)
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message).hasMessageContaining("line 1"));
    }

    /**
     * Expected values: jinja2 3.1.6 (Python 3.11). Jinjava cast int ** int to a long (2**-1 gave 0, 2**64 the largest
     * long) and parsed ** beside * (3 * 2 ** 2 gave 36). Jinja2's ** groups from the left (2 ** 3 ** 2 is 64, not
     * Python's 512) and binds looser than unary minus (-2 ** 2 is 4).
     */
    @Test
    void powerIsPythonsAndBindsTighterThanMultiplication() {
        assertThat(jinja("{{ 2**-1 }}|{{ 2**3 }}|{{ 2**0.5 }}|{{ (-2)**-1 }}|{{ (-2)**3 }}|{{ 2**0 }}|{{ 0**0.0 }}"
                + "|{{ 2**-1075 }}|{{ 10**-20 }}|{{ 1.5**2 }}|{{ 2**True }}|{{ 9**0.5 }}|{{ 2**62 }}|{{ 2**63 }}|{{ (-2)**63 }}|{{ 3**40 }}"))
                .isEqualTo("0.5|8|1.4142135623730951|-0.5|-8|1|1.0|0.0|1e-20|2.25|2|3.0|4611686018427387904"
                        + "|9223372036854775808|-9223372036854775808|12157665459056928801");
        assertThat(jinja("{{ 1**100000000 }}|{{ (-1)**100000001 }}|{{ 0**100000000 }}|{{ 2**-100000000 }}|{{ 1.0**1e300 }}"))
                .isEqualTo("1|-1|0|0.0|1.0");
        assertThat(jinja("{{ 3 * 2 ** 2 }}|{{ 2 ** 2 * 3 }}|{{ 2 ** -1 * 4 }}|{{ -2 ** 2 }}|{{ 2 ** 3 ** 2 }}|{{ 2 ** [1, 2]|length }}"
                + "|{{ 8 // 2 ** 2 }}|{{ 7 % 2 ** 2 }}|{{ 1 + 2 ** 2 }}")).isEqualTo("12|12|2.0|4|64|4|2|3|5");
        Map<String, String> errors = Map.of("{{ 0**-1 }}", "0.0 cannot be raised to a negative power",
                "{{ 10.0**400 }}", "Numerical result out of range", "{{ 'a' ** 2 }}", "unsupported operand type(s) for ** or pow(): 'str' and 'int'",
                // jinja2 gives a complex number: (1.7319121124709868e-16+2.8284271247461903j)
                "{{ (-8) ** 0.5 }}", "complex",
                // Python computes it (and refuses to print more than 4300 digits); the renderer refuses to compute it
                "{{ 2**100000000 }}", "4300 digits", "{{ 10**4300 }}", "4300 digits",
                "{% set ns = namespace(x=2**4000) %}{% for i in range(30) %}{% set ns.x = ns.x * ns.x %}{% endfor %}", "4300 digits");
        errors.forEach((template, message) -> assertThatThrownBy(() -> jinja(template)).as(template)
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message).hasMessageContaining("line 1")
                .message().doesNotContain("java").doesNotContain("Exception"));
        assertThat(jinja("{{ (10**4299)|string|length }}")).isEqualTo("4300");
    }

    /**
     * Expected values: jinja2 3.1.6 (Python 3.11). Jinja2's round is Python's round (half to even on the
     * float's exact value; an int stays an int) or math.ceil/floor; Jinjava's rounded half up to a float.
     */
    @Test
    void roundIsJinja2s() {
        assertThat(jinja("{{ 2.5|round }}|{{ 3.5|round }}|{{ 5|round }}|{{ 2.675|round(2) }}|{{ 1.25|round(1) }}"
                + "|{{ 1.5|round(0, 'floor') }}|{{ 1.2|round(0, 'ceil') }}|{{ -1.5|round }}|{{ 1234.5|round(-2) }}|{{ 7|round(1) }}"
                + "|{{ (10/3)|round(3) }}|{{ 15|round(-1) }}|{{ 25|round(-1) }}|{{ true|round }}|{{ 5|round(method='ceil') }}"
                + "|{{ 0.125|round(2, 'floor') }}|{{ -0.4|round }}|{{ 1e300|round(-299) }}"))
                .isEqualTo("2.0|4.0|5|2.67|1.2|1.0|2.0|-2.0|1200.0|7|3.333|20|20|1|5.0|0.12|-0.0|1e+300");
        assertThatThrownBy(() -> jinja("{{ 1.5|round(0, 'up') }}")).hasMessageContaining("method must be common, ceil or floor");
        assertThatThrownBy(() -> jinja("{{ 'a'|round }}")).hasMessageContaining("type str doesn't define __round__ method");
    }

    /**
     * Expected values: jinja2 3.1.6 (Python 3.11). Python's ints do not overflow: Jinjava's +, -, *, unary minus, abs
     * and sum wrapped around past a long (9223372036854775807 + 1 gave -9223372036854775808), an int literal past a
     * long was a syntax error, range refused ints past 48 bits, and a slice index, a string index or a method's int
     * argument past an int was cast into it ('abc'[4294967297:] gave 'bc'). A bool is the int 1 or 0; / by zero is
     * Python's ZeroDivisionError (Jinjava gave inf).
     */
    @Test
    void intArithmeticIsExactAsInPython() {
        assertThat(jinja("{{ 9223372036854775807 + 1 }}|{{ -9223372036854775807 - 2 }}|{{ 9223372036854775807 * 2 }}|{{ 4294967296 * 4294967296 }}"
                + "|{% set x = -9223372036854775807 - 1 %}{{ -x }}|{{ x|abs }}|{{ x - 1 }}|{{ [9223372036854775807, 1]|sum }}"
                + "|{{ [9223372036854775807]|sum(start=9223372036854775807) }}"))
                .isEqualTo("9223372036854775808|-9223372036854775809|18446744073709551614|18446744073709551616|9223372036854775808"
                        + "|9223372036854775808|-9223372036854775809|9223372036854775808|18446744073709551614");
        assertThat(jinja("{{ 18446744073709551616 }}|{{ -18446744073709551616 }}|{{ 18446744073709551616 is integer }}"
                + "|{{ 18446744073709551616 // 2 }}|{{ 18446744073709551616 % 10 }}|{{ {'a': 18446744073709551616}|tojson }}"
                + "|{{ 9223372036854775808 - 1 }}|{{ (9223372036854775808 - 1) // 2 }}"))
                .isEqualTo("18446744073709551616|-18446744073709551616|True|9223372036854775808|6|{\"a\": 18446744073709551616}"
                        + "|9223372036854775807|4611686018427387903");
        // a result that fits a long again is the long: equal, a member, an int
        assertThat(jinja("{{ 2**64 - 2**64 }}|{{ (2**64 - 2**64) is integer }}|{{ 9223372036854775807 + 1 == 2**63 }}"
                + "|{{ 2**63 in [9223372036854775807 + 1] }}|{{ 12345678901234567890123 - 12345678901234567890124 }}"
                + "|{{ - -9223372036854775808 }}")).isEqualTo("0|True|True|True|-1|9223372036854775808");
        assertThat(jinja("{{ true + 1 }}|{{ true + true }}|{{ 1 - true }}|{{ true * 3 }}|{{ -true }}|{{ 1.5 + true }}|{{ true|abs }}"
                + "|{{ 'ab' * true }}|{{ true * 'ab' }}|{{ [1] * false }}")).isEqualTo("2|2|0|3|-1|2.5|1|ab|ab|[]");
        assertThat(jinja("{{ 2**64 + 0.5 }}|{{ 10**30 * 1.5 }}|{{ 1e308 * 10 }}|{{ 0.1 + 0.2 }}|{{ (-2.5)|abs }}|{{ -(2**64) }}"
                + "|{{ (-2**64)|abs }}"))
                .isEqualTo("1.8446744073709552e+19|1.5000000000000002e+30|inf|0.30000000000000004|2.5|-18446744073709551616"
                        + "|18446744073709551616");
        assertThat(jinja("{{ 10**30 / 3 }}|{{ 9007199254740993 / 1 }}|{{ 0 / -5 }}|{{ 0 / -(2**64) }}|{{ 1 / 10**400 }}"
                + "|{{ 2**1024 // 3 / 2**1000 }}|{{ -(2**70) / 3 }}|{{ (2**64 + 1) / 2 }}|{{ true / 2 }}|{{ 7 / 2 }}"))
                .isEqualTo("3.333333333333333e+29|9007199254740992.0|-0.0|-0.0|0.0|5592405.333333333|-3.935305402391371e+20"
                        + "|9.223372036854776e+18|0.5|3.5");
        assertThat(jinja("{{ range(9223372036854775806, 9223372036854775807)|list }}|{{ range(2**64, 2**64 + 2)|list }}"
                + "|{{ range(0, 2**64, 2**62)|list }}|{{ range(-9223372036854775807 - 1, 9223372036854775807, 2**62)|list }}"))
                .isEqualTo("[9223372036854775806]|[18446744073709551616, 18446744073709551617]"
                        + "|[0, 4611686018427387904, 9223372036854775808, 13835058055282163712]"
                        + "|[-9223372036854775808, -4611686018427387904, 0, 4611686018427387904]");
        assertThat(jinja("{{ 'abc'[4294967297:] }}|{{ [1, 2, 3][4294967297:] }}|{{ 'abc'[::2147483647] }}|{{ 'abc'[::-2147483648] }}"
                + "|{{ 'abc'[::9223372036854775807] }}|{{ 'abc'[4294967297] }}|{{ 'abc'[1:2**64] }}|{{ 'hello world'|truncate(4294967296) }}"
                + "|{{ 'abc'.startswith('b', 4294967297) }}|{{ [] * 9223372036854775807 }}|{{ '' * 9223372036854775807 }}"
                + "|{{ 'ab' * -9223372036854775807 }}")).isEqualTo("|[]|a|c|a||bc|hello world|False|[]||");
        Map<String, String> errors = new LinkedHashMap<>();
        errors.put("{{ 10**400 + 1.5 }}", "int too large to convert to float");
        errors.put("{{ 1 / 0 }}", "division by zero");
        errors.put("{{ 1.0 / 0 }}", "float division by zero");
        errors.put("{{ 10**400 / 1 }}", "integer division result too large for a float");
        errors.put("{{ 1 - 'a' }}", "unsupported operand type(s) for -: 'int' and 'str'");
        errors.put("{{ none - 1 }}", "unsupported operand type(s) for -: 'NoneType' and 'int'");
        errors.put("{{ -'a' }}", "bad operand type for unary -: 'str'");
        errors.put("{{ 'a'|abs }}", "bad operand type for abs(): 'str'");
        errors.put("{{ 'x' * 1.5 }}", "can't multiply sequence by non-int of type 'float'");
        errors.put("{{ 'ab' * 2**70 }}", "cannot fit 'int' into an index-sized integer");
        // Python computes these and refuses to print them (more than 4300 digits); the renderer refuses to compute them
        errors.put("{{ 10**4299 * 10 }}", "4300 digits");
        errors.put("{{ 10**4299 * 9 + 10**4299 }}", "4300 digits");
        errors.put("{{ -(10**4299 * 9) - 10**4299 }}", "4300 digits");
        // Python: OverflowError and MemoryError; the renderer's limits apply
        errors.put("{{ 'ab' * 9223372036854775807 }}", "output exceeds");
        errors.put("{{ range(2**70)|length }}", "exceeds " + ChatTemplateRenderer.MAX_COLLECTION);
        errors.forEach((template, message) -> assertThatThrownBy(() -> jinja(template)).as(template)
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message)
                .message().doesNotContain("java").doesNotContain("Exception"));
        assertThat(jinja("{{ (" + "9".repeat(4300) + ")|string|length }}")).isEqualTo("4300");
        // jinja2's lexer raises Python's ValueError for it: "Exceeds the limit (4300 digits) for integer string conversion"
        assertThatThrownBy(() -> jinja("{{ 1" + "0".repeat(4300) + " }}")).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("syntax error").hasMessageContaining("4300 digits");
    }

    /**
     * Expected values: jinja2 3.1.6 (Python 3.11). int is Python's int(value, base), then int(float(value)), then the
     * default; Jinjava's clamped to a long, read true as 0 and knew neither base prefixes nor underscores.
     */
    @Test
    void intFilterIsJinja2s() {
        assertThat(jinja("{{ '12'|int }}|{{ '3.7'|int }}|{{ ' 12 '|int }}|{{ 'abc'|int }}|{{ 'abc'|int(5) }}|{{ 3.7|int }}|{{ -3.7|int }}"
                + "|{{ true|int }}|{{ false|int }}")).isEqualTo("12|3|12|0|5|3|-3|1|0");
        assertThat(jinja("{{ '0x1A'|int(base=16) }}|{{ '1A'|int(0, 16) }}|{{ '1_000'|int }}|{{ (2**64)|int }}|{{ '99999999999999999999'|int }}"
                + "|{{ 1e20|int }}|{{ '4294967296'|int }}|{{ none|int }}|{{ [1]|int }}|{{ '-5'|int }}|{{ '1e3'|int }}|{{ '+7'|int }}"
                + "|{{ '\u0663\u0664'|int }}|{{ '\u00a012\u00a0'|int }}"))
                .isEqualTo("26|26|1000|18446744073709551616|99999999999999999999|100000000000000000000|4294967296|0|0|-5|1000|7|34|12");
        assertThat(jinja("{{ '0b101'|int(base=0) }}|{{ '0o17'|int(0, 0) }}|{{ '0x_ff'|int(0, 16) }}|{{ '010'|int(-1, 0) }}"
                + "|{{ '00'|int(-1, 0) }}|{{ '0_0'|int(-1, 0) }}|{{ '0b1'|int(0, 16) }}|{{ 'z'|int(0, 36) }}|{{ '12'|int(0, 99) }}"
                + "|{{ '12'|int(0, 'x') }}")).isEqualTo("5|15|255|10|0|0|177|35|12|12");
        assertThat(jinja("{{ '1__0'|int(-1) }}|{{ '_1'|int(-1) }}|{{ '1_'|int(-1) }}|{{ '1_0.5'|int(-1) }}|{{ '.5'|int(-1) }}"
                + "|{{ '5.'|int(-1) }}|{{ '1e_3'|int(-1) }}|{{ '- 5'|int(-1) }}|{{ 'nan'|int(-1) }}|{{ '-NaN'|int(-1) }}|{{ '0x'|int(-1, 16) }}"
                + "|{{ '1.5e2'|int }}|{{ '-2.5E-1'|int }}")).isEqualTo("-1|-1|-1|10|0|5|-1|-1|-1|-1|-1|150|0");
        // from a str, int(float(value))'s OverflowError is caught: the default; from a float it is not
        assertThat(jinja("{{ 'inf'|int }}|{{ '-Infinity'|int }}|{{ '1e400'|int }}|{{ ('1' * 5000)|int }}|{{ ('1' * 4300)|int|string|length }}"
                + "|{{ '9007199254740993'|int }}|{{ '9007199254740993.0'|int }}|{{ 1.5|int(7) }}|{{ 'x'|int(default='d') }}"))
                .isEqualTo("0|0|0|0|4300|9007199254740993|9007199254740992|1|d");
        assertThatThrownBy(() -> jinja("{{ (messages|length * 1e308 * 10)|int }}")).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("cannot convert float infinity to integer");
        // Python parses it (a power-of-two base has no digit limit) and refuses to print it; the renderer refuses it
        assertThatThrownBy(() -> jinja("{{ ('f' * 4000)|int(0, 16) }}")).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("4300 digits");
    }

    /**
     * Expected values: jinja2 3.1.6. Comparisons ({@code == != < <= > >= in not in}) are one level and chain as in
     * Python: {@code a < b < c} is {@code a < b and b < c} with b evaluated once, and stops at the first false one.
     * Jinjava refused {@code 1 < 2 < 3} and read {@code a == b == c} as {@code (a == b) == c}.
     */
    @Test
    void comparisonsChainAsInPython() {
        assertThat(jinja("{{ 1 < 2 < 3 }}|{{ 3 > 2 > 1 }}|{{ 1 < 3 < 2 }}|{{ 1 == 1 == 1 }}|{{ 1 == 1 == 2 }}|{{ 2 == 2 != 3 }}"
                + "|{{ 1 < 2 <= 2 }}|{{ 1 < 2 > 3 }}")).isEqualTo("True|True|False|True|False|True|True|False");
        assertThat(jinja("{% set x = 3 %}{{ 1 < x <= 5 }}|{{ 1 < x <= 2 }}|{{ 0 <= x < 3 }}|{{ x > 2 == true }}|{{ 1 < 2 < 3 < 4 }}"
                + "|{{ 1 < 2 < 3 > 4 }}")).isEqualTo("True|False|False|False|True|False");
        assertThat(jinja("{% set a = 'x' %}{% set b = 'x' %}{% set c = 'x' %}{{ a == b == c }}|{{ a == b == 'y' }}|{{ not 1 < 2 < 3 }}"
                + "|{{ 1 < 2 < 3 and 3 > 2 }}")).isEqualTo("True|False|False|True");
        assertThat(jinja("{{ 1 < 2 in [1, 2] }}|{{ 1 < 2 in [3] }}|{{ 'a' in 'abc' == true }}|{{ 1 not in [2] not in [[1]] }}"
                + "|{{ 1 < 2 == 2 }}|{{ 1 < 2 == true }}")).isEqualTo("True|False|False|True|True|False");
        assertThat(jinja("{% for m in messages %}{% if 0 < loop.index0 < 2 %}{{ m.role }}{% endif %}{% endfor %}")).isEqualTo("assistant");
        // the middle operand is evaluated once; a false comparison stops the chain (jinja2.Environment: the
        // sandbox HF uses refuses list.append, which the renderer allows as llama.cpp's engine does)
        assertThat(jinja("{% set calls = [] %}{{ 1 < (calls.append(1) or 5) < 9 }}{{ calls|length }}"
                + "{{ 3 < 2 < (calls.append(1) or 5) }}{{ calls|length }}")).isEqualTo("True1False1");
    }

    /**
     * Expected values: jinja2 3.1.6 (Python 3.11). {@code < <= > >=} order as sort, min and max do (Python's order):
     * Jinjava's refused a bool next to a number and two lists, compared strings by UTF-16 unit, and took None as
     * neither less nor greater than anything where Python raises.
     */
    @Test
    void orderingComparisonsAreInPythonsOrder() {
        assertThat(jinja("{{ true > 0 }}|{{ 1.5 > 1 }}|{{ 2**64 + 1 > 2**64 + 0.5 }}|{{ 9007199254740993 > 9007199254740992.0 }}"
                + "|{{ [1, 2] < [1, 3] }}|{{ [1] <= [1] }}|{{ [1, 2] >= [1] }}|{{ [2] > [1, 5] }}|{{ ['a'] < ['b'] }}"
                + "|{{ '\uff41' < '\ud83d\ude00' }}|{{ '\uff41' > '\ud83d\ude00' }}|{{ 'B' < 'a' }}"))
                .isEqualTo("True|True|True|True|True|True|True|True|True|True|False|True");
        // nan is neither less than, equal to nor greater than itself
        assertThat(jinja("{% set inf = messages|length * 1e308 * 10 %}{% set n = inf - inf %}{{ n < 1 }}|{{ n <= n }}|{{ n >= 1 }}"
                + "|{{ n > n }}|{{ inf > 2**64 }}|{{ 1 < 2 <= 2 < 3 }}|{{ [] < [0] }}|{{ 'ab' < 'abc' }}|{{ 'a' <= 'a' }}|{{ true >= 1 }}"
                + "|{{ 2**64 <= 1.0 }}")).isEqualTo("False|False|False|False|True|True|True|True|True|True|False");
        // the renderer's dict literals have str keys where Jinja2's keep ints (ByteDance-Seed-OSS compares them with an
        // int): such a key compares as its int
        assertThat(jinja("{% for k, v in {0: 0, 512: 128}|dictsort %}{{ 100 <= k }}{{ k > -1 }}{% endfor %}")).isEqualTo("FalseTrueTrueTrue");
        Map<String, String> errors = new LinkedHashMap<>();
        errors.put("{{ none < 1 }}", "'<' not supported between instances of 'NoneType' and 'int'");
        errors.put("{{ 1 > none }}", "'>' not supported between instances of 'int' and 'NoneType'");
        errors.put("{{ 'a' >= 1 }}", "'>=' not supported between instances of 'str' and 'int'");
        errors.put("{{ [1] <= ['a'] }}", "'<=' not supported between instances of 'int' and 'str'");
        errors.put("{{ {} < {} }}", "'<' not supported between instances of 'dict' and 'dict'");
        errors.put("{{ 3 > 2 > none }}", "'>' not supported between instances of 'int' and 'NoneType'");
        errors.forEach((template, message) -> assertThatThrownBy(() -> jinja(template)).as(template)
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message)
                .message().doesNotContain("java").doesNotContain("Exception"));
    }

    /**
     * Expected values: jinja2 3.1.6. Jinjava's sort took no keyword arguments (sort(attribute='n') left the list as it
     * was), compared strings by UTF-16 unit, and failed on mixed ints and floats or on lists.
     */
    @Test
    void sortAsJinja2SortsWithAttributeReverseAndCaseSensitivity() {
        assertThat(jinja("{{ [3, 1, 2]|sort }}|{{ ['b', 'A', 'a', 'B']|sort }}|{{ ['b', 'A', 'a', 'B']|sort(case_sensitive=true) }}"
                + "|{{ [3, 1, 2]|sort(reverse=true) }}|{{ [3, 1, 2]|sort(true) }}|{{ [1.5, 1, true, 0]|sort }}"))
                .isEqualTo("[1, 2, 3]|['A', 'a', 'b', 'B']|['A', 'B', 'a', 'b']|[3, 2, 1]|[3, 2, 1]|[0, 1, True, 1.5]");
        // strings by code point (U+FF41 before U+1F600; UTF-16 units order them the other way), lists item by item
        assertThat(jinja("{{ ['\uff41', '\ud83d\ude00', 'z', '\u00e9']|sort }}|{{ [[2, 'b'], [1, 'a'], [3, 'a'], [1]]|sort }}"
                + "|{{ [['b'], ['A']]|sort }}"))
                .isEqualTo("['z', '\u00e9', '\uff41', '\ud83d\ude00']|[[1], [1, 'a'], [2, 'b'], [3, 'a']]|[['A'], ['b']]");
        String people = "[{'n': 'b', 'a': {'x': 2}}, {'n': 'A', 'a': {'x': 1}}, {'n': 'c', 'a': {'x': 3}}]";
        assertThat(jinja("{{ " + people + "|sort(attribute='n')|map(attribute='n')|join(',') }}|{{ " + people
                + "|sort(attribute='a.x', reverse=true)|map(attribute='n')|join(',') }}")).isEqualTo("A,b,c|c,b,A");
        assertThat(jinja("{{ [[2, 'b'], [1, 'a'], [3, 'c']]|sort(attribute='0') }}|{{ [[2, 'b'], [1, 'a'], [3, 'c']]|sort(attribute=1, reverse=true) }}"
                + "|{{ [{'n': 'b', 'k': 1}, {'n': 'a', 'k': 2}, {'n': 'A', 'k': 1}]|sort(attribute='n,k') }}"))
                .isEqualTo("[[1, 'a'], [2, 'b'], [3, 'c']]|[[3, 'c'], [2, 'b'], [1, 'a']]"
                        + "|[{'n': 'A', 'k': 1}, {'n': 'a', 'k': 2}, {'n': 'b', 'k': 1}]");
        // stable, also reversed: items with equal keys keep their order
        assertThat(jinja("{{ [{'n': 'B'}, {'n': 'a'}, {'n': 'C'}]|sort(attribute='n', case_sensitive=true)|map(attribute='n')|join }}"
                + "|{{ [{'n': 'b', 'i': 1}, {'n': 'B', 'i': 2}, {'n': 'a', 'i': 3}]|sort(attribute='n')|map(attribute='i')|join }}"
                + "|{{ [{'n': 'b', 'i': 1}, {'n': 'B', 'i': 2}, {'n': 'a', 'i': 3}]|sort(attribute='n', reverse=true)|map(attribute='i')|join }}"))
                .isEqualTo("BCa|312|123");
        assertThat(jinja("{{ 'cba'|sort }}|{{ {'b': 1, 'a': 2}|sort }}|{{ []|sort }}|{{ [{'n': 2}, {'n': 1}]|sort(false, false, 'n') }}"
                + "|{{ [{}]|sort(attribute='n') }}|{{ [{}, {}]|sort(attribute='n') }}|{{ [{'a': [3, 1]}, {'a': [2]}]|sort(attribute='a.0') }}"))
                .isEqualTo("['a', 'b', 'c']|['a', 'b']|[]|[{'n': 1}, {'n': 2}]|[{}]|[{}, {}]|[{'a': [2]}, {'a': [3, 1]}]");
        Map<String, String> errors = Map.of("{{ [{'n': 'b'}, {}]|sort(attribute='n') }}", "'dict object' has no attribute 'n'",
                "{{ [[1], []]|sort(attribute='0') }}", "list object has no element 0",
                "{{ [{}]|sort(attribute='a.b') }}", "'dict object' has no attribute 'a'",
                "{{ [1, 'a']|sort }}", "'<' not supported between instances of 'str' and 'int'",
                "{{ [{'a': 1}, {'a': 2}]|sort }}", "'<' not supported between instances of 'dict' and 'dict'",
                "{{ [none, 1]|sort }}", "'<' not supported between instances of 'int' and 'NoneType'",
                // jinja2 sorts it; the renderer's list limit applies
                "{% set big = 'x' * 100001 %}{{ big|sort|length }}", "over " + ChatTemplateRenderer.MAX_COLLECTION + " items");
        errors.forEach((template, message) -> assertThatThrownBy(() -> jinja(template)).as(template)
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message)
                .message().doesNotContain("java").doesNotContain("Exception"));
    }

    /**
     * Expected values: jinja2 3.1.6. groupby gives (grouper, list) tuples sorted by grouper, which unpack in a for
     * loop and have .grouper and .list; Jinjava's gave Java objects that printed as &lt;object&gt;, did not unpack and
     * kept the input's order.
     */
    @Test
    void groupbyAsJinja2GroupsAndSorts() {
        String xs = "{% set xs = [{'role': 'user', 'c': 1}, {'role': 'assistant', 'c': 2}, {'role': 'user', 'c': 3}] %}";
        assertThat(jinja(xs + "{% for key, items in xs|groupby('role') %}{{ key }}:{{ items|map(attribute='c')|join(',') }};{% endfor %}"
                + "|{% for group in xs|groupby(attribute='role') %}{{ group.grouper }}={{ group.list|length }};{% endfor %}|{{ xs|groupby('role') }}"))
                .isEqualTo("assistant:2;user:1,3;|assistant=1;user=2;|[('assistant', [{'role': 'assistant', 'c': 2}]),"
                        + " ('user', [{'role': 'user', 'c': 1}, {'role': 'user', 'c': 3}])]");
        assertThat(jinja("{% for role, turns in messages|groupby('role') %}{{ role }}:{{ turns|map(attribute='content')|join('+') }} {% endfor %}"
                + "|{{ (messages|groupby('role'))[1][0] }}|{{ (messages|groupby('role'))|first|last|length }}|{{ messages|groupby('role')|length }}"
                + "|{{ (messages|groupby('role'))[0]['grouper'] }}")).isEqualTo("assistant:a1 user:u1+u2 |user|1|2|assistant");
        // HF's tojson (json.dumps, keys in their order): a tuple is a JSON array
        assertThat(jinja("{{ messages|groupby('role')|tojson }}")).isEqualTo("[[\"assistant\", [{\"role\": \"assistant\", \"content\": \"a1\"}]],"
                + " [\"user\", [{\"role\": \"user\", \"content\": \"u1\"}, {\"role\": \"user\", \"content\": \"u2\"}]]]");
        assertThat(jinja("{{ [{'a': {'b': 'x'}}, {'a': {'b': 'y'}}, {'a': {'b': 'x'}, 'i': 2}]|groupby('a.b') }}"))
                .isEqualTo("[('x', [{'a': {'b': 'x'}}, {'a': {'b': 'x'}, 'i': 2}]), ('y', [{'a': {'b': 'y'}}])]");
        assertThat(jinja("{{ [{'r': 'x'}, {}, {'r': 'a'}]|groupby('r', default='none') }}|{{ [{'r': 'x'}, {}]|groupby('r', 'zz')|map('first')|list }}"))
                .isEqualTo("[('a', [{'r': 'a'}]), ('none', [{}]), ('x', [{'r': 'x'}])]|['x', 'zz']");
        // case-insensitive by default, the grouper being the first item's own value
        assertThat(jinja("{{ [{'n': 'b'}, {'n': 'B'}, {'n': 'a'}]|groupby('n') }}|{{ [{'n': 'b'}, {'n': 'B'}, {'n': 'a'}]|groupby('n',"
                + " case_sensitive=true)|map(attribute='grouper')|list }}|{{ [{'n': 'B'}, {'n': 'b'}]|groupby('n')|map(attribute='grouper')|list }}"))
                .isEqualTo("[('a', [{'n': 'a'}]), ('b', [{'n': 'b'}, {'n': 'B'}])]|['B', 'a', 'b']|['B']");
        assertThat(jinja("{{ [[1, 'a'], [2, 'b'], [1, 'c']]|groupby(0) }}|{{ [[1, 'a'], [2, 'b'], [1, 'c']]|groupby('1')|map(attribute='grouper')|join }}"
                + "|{{ [{'k': 1}, {'k': 1.0}, {'k': true}, {'k': 0}]|groupby('k')|map(attribute='grouper')|list }}"))
                .isEqualTo("[(1, [[1, 'a'], [1, 'c']]), (2, [[2, 'b']])]|abc|[0, 1]");
        assertThat(jinja("{% for g in [{}]|groupby('r') %}[{{ g.grouper }}]{{ g.list }}{% endfor %}")).isEqualTo("[][{}]");
        Map<String, String> errors = Map.of("{{ [{'r': 'x'}, {}]|groupby('r') }}", "'dict object' has no attribute 'r'",
                "{{ [1, 'a']|groupby(0) }}", "int object has no element 0",
                "{{ [{'r': 1}, {'r': 'a'}]|groupby('r') }}", "'<' not supported between instances of 'str' and 'int'",
                // jinja2 groups it; the renderer's list limit applies
                "{% set big = 'x' * 100001 %}{{ big|groupby(0)|length }}", "over " + ChatTemplateRenderer.MAX_COLLECTION + " items");
        errors.forEach((template, message) -> assertThatThrownBy(() -> jinja(template)).as(template)
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message)
                .message().doesNotContain("java").doesNotContain("Exception"));
    }

    /**
     * Expected values: jinja2 3.1.6 (Python 3.11). min, max and dictsort order as sort does (Python's order, strings
     * lowercased unless case_sensitive); the renderer compared numbers as doubles, refused a bool next to a float or
     * two lists, took no attribute path, and let dictsort(by=...) take any value. Jinja2's dictsort gives (key, value)
     * tuples, printed as ('a', 1); the renderer's pairs are lists, as its items() and tuple literals are, so they are
     * checked through a loop here.
     */
    @Test
    void minMaxAndDictsortOrderAsJinja2Does() {
        assertThat(jinja("{{ ['b', 'A', 'a', 'B']|min }}|{{ ['b', 'A', 'a', 'B']|max }}|{{ ['b', 'A', 'a', 'B']|min(case_sensitive=true) }}"
                + "|{{ ['b', 'A', 'a', 'B']|max(true) }}|{{ ['B', 'b']|min }}{{ ['b', 'B']|min }}{{ ['B', 'b']|max }}{{ ['b', 'B']|max }}"))
                .isEqualTo("A|b|A|b|BbBb");
        assertThat(jinja("{{ [1.5, 1, true, 2]|max }}|{{ [1, true]|max }}|{{ [true, 1]|max }}|{{ [0.5, false]|min }}|{{ [2**64, 1.5]|max }}"
                + "|{{ [[2, 'b'], [1, 'a'], [1]]|min }}|{{ [['B'], ['a']]|min }}|{{ [['b'], ['a', 1]]|max }}"))
                .isEqualTo("2|1|True|False|18446744073709551616|[1]|['B']|['b']");
        assertThat(jinja("{{ [{'n': 3}, {'n': 1}]|min(attribute='n') }}|{{ [{'n': 3}, {'n': 1}]|max(attribute='n') }}"
                + "|{{ [{'n': 'b'}, {'n': 'A'}]|min(attribute='n') }}|{{ [{'a': {'x': 2}}, {'a': {'x': 1}}]|max(attribute='a.x') }}"
                + "|{{ [[2, 'b'], [1, 'a']]|min(attribute='1') }}|{{ [[2, 'b'], [1, 'a']]|max(attribute=0) }}|{{ [{}]|min(attribute='n') }}"))
                .isEqualTo("{'n': 1}|{'n': 3}|{'n': 'A'}|{'a': {'x': 2}}|[1, 'a']|[2, 'b']|{}");
        assertThat(jinja("[{{ []|min }}]|[{{ nope|max }}]|{{ 'cBa'|min }}|{{ 'cBa'|max }}|{{ {'b': 1, 'A': 2}|min }}|{{ {'b': 1, 'A': 2}|max }}"))
                .isEqualTo("[]|[]|a|c|A|b");
        String pairs = "{% for k, v in d %}{{ k }}={{ v }},{% endfor %}";
        assertThat(jinja("{% set d = {'b': 1, 'A': 2, 'a': 3}|dictsort %}" + pairs + "|{% set d = {'b': 1, 'A': 2, 'a': 3}|dictsort(true) %}"
                + pairs + "|{% set d = {'b': 1, 'A': 2, 'a': 3}|dictsort(reverse=true) %}" + pairs))
                .isEqualTo("A=2,a=3,b=1,|A=2,a=3,b=1,|b=1,A=2,a=3,");
        assertThat(jinja("{% set d = {'b': 1, 'A': 2, 'a': 3}|dictsort(by='value', reverse=true) %}" + pairs
                + "|{% set d = {'x': 'b', 'y': 'A', 'z': 'a'}|dictsort(by='value') %}" + pairs
                + "|{% set d = {'x': 'B', 'y': 'b', 'z': 'a'}|dictsort(by='value', reverse=true) %}" + pairs
                + "|{% set d = {'x': 1, 'y': 1.0, 'z': true, 'w': 0}|dictsort(false, 'value') %}" + pairs
                + "|{% set d = {'x': [2], 'y': [1, 2], 'z': [1]}|dictsort(by='value') %}" + pairs
                + "|{% set d = {'\uff41': 1, '\ud83d\ude00': 2, 'z': 3}|dictsort %}" + pairs))
                .isEqualTo("a=3,A=2,b=1,|y=A,z=a,x=b,|x=B,y=b,z=a,|w=0,x=1,y=1.0,z=True,|z=[1],y=[1, 2],x=[2],"
                        + "|z=3,\uff41=1,\ud83d\ude00=2,");
        // HF's tojson(sort_keys=True) is json.dumps': keys by code point too
        assertThat(jinja("{{ {'\uff41': 1, '\ud83d\ude00': 2, 'z': 3}|tojson(sort_keys=true) }}"))
                .isEqualTo("{\"z\": 3, \"\uff41\": 1, \"\ud83d\ude00\": 2}");
        Map<String, String> errors = Map.of("{{ [1, 'a']|min }}", "'<' not supported between instances of 'str' and 'int'",
                "{{ [1, 'a']|max }}", "'>' not supported between instances of 'str' and 'int'",
                "{{ [[1], ['a']]|max }}", "'>' not supported between instances of 'str' and 'int'",
                "{{ [none, 1]|min }}", "'<' not supported between instances of 'int' and 'NoneType'",
                "{{ [{}, {'n': 1}]|max(attribute='n') }}", "'dict object' has no attribute 'n'",
                "{{ 5|min }}", "'int' object is not iterable",
                "{{ {'b': 1, 'a': 'x'}|dictsort(by='value') }}", "'<' not supported between instances of 'str' and 'int'",
                "{{ {'b': 1}|dictsort(by='x') }}", "You can only sort by either \"key\" or \"value\"");
        errors.forEach((template, message) -> assertThatThrownBy(() -> jinja(template)).as(template)
                .isInstanceOf(ChatTemplateException.class).hasMessageContaining(message)
                .message().doesNotContain("java").doesNotContain("Exception"));
    }

    @Test
    void equalityIsPythonsAndNeverFails() {
        // Jinjava coerced both sides to a number: a bool or a non-numeric string next to a number
        // failed the render, and '1' == 1 held
        assertThat(jinja("{{ 1 == true }} {{ 0 == false }} {{ 2 == true }} {{ 1.0 == 1 }} {{ 'a' == 1 }} {{ '1' == 1 }}"
                + " {{ 'a' != true }} {{ none == false }} {{ nope == none }} {{ [1, 'a'] == [1, 'a'] }} {{ [1] == [true] }}"
                + " {{ {'a': 1} == {'a': 1.0} }} {{ {'a': 1} != {'a': 2} }} {{ messages[0] == messages[0] }} {{ 'x' == 'x' }}"))
                .isEqualTo("True True False True False False True False True True True True True True True");
        assertThat(jinja("{% set thinking = true %}{% if thinking == 1 %}one{% endif %}{% if messages|length != 'x' %}!{% endif %}"))
                .isEqualTo("one!");
    }

    @Test
    void pythonValuesPrintAsPythonDoes() {
        assertThat(jinja("{{ true }} {{ false }} {{ [1, 'a', none, true] }} {{ {'k': 1.0, 'j': 1e-05, 'i': 10000000000000000.0} }}"))
                .isEqualTo("True False [1, 'a', None, True] {'k': 1.0, 'j': 1e-05, 'i': 1e+16}");
        assertThat(jinja("{{ {'a': [1, 2.5, none, true, 'é\"\\n']}|tojson }}|{{ {'a': 1, 'b': 2}|tojson(separators=(',', ':')) }}"
                + "|{{ 'é😀'|tojson(ensure_ascii=true) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}"))
                .isEqualTo("{\"a\": [1, 2.5, null, true, \"é\\\"\\n\"]}|{\"a\":1,\"b\":2}|\"\\u00e9\\ud83d\\ude00\"|{\"a\": 2, \"b\": 1}");
        assertThat(jinja("{{ {'a': 1, 'b': [1, 2]}|tojson(indent=2) }}")).isEqualTo("{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ]\n}");
        assertThat(jinja("{{ {'a': {'b': '}}'}} }}|{{ messages|pprint }}")).as("'}}' closing a nested dict does not end the tag")
                .isEqualTo("{'a': {'b': '}}'}}|[{'role': 'user', 'content': 'u1'}, {'role': 'assistant', 'content': 'a1'},"
                        + " {'role': 'user', 'content': 'u2'}]");
    }

    @Test
    void loopsAsJinja2RunsThem() {
        assertThat(jinja("{% for m in messages %}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{% if loop.previtem %}<"
                + "{{ loop.previtem.role }}{% endif %}{% if loop.nextitem %}>{{ loop.nextitem.role }}{% endif %};{% endfor %}"))
                .isEqualTo("0TrueFalse>assistant;1FalseFalse<user>user;2FalseTrue<assistant;");
        assertThat(jinja("{% for m in messages if m.role == 'user' %}{{ loop.index }}/{{ loop.length }}:{{ m.content }};"
                + "{% else %}none{% endfor %}|{% for m in [] %}x{% else %}empty{% endfor %}")).isEqualTo("1/2:u1;2/2:u2;|empty");
        assertThat(jinja("{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }},{% endfor %}|{% for k, v in {'b': 1, 'a': 2}"
                + "|dictsort %}{{ k }}={{ v }},{% endfor %}|{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}"))
                .isEqualTo("b=1,a=2,|a=2,b=1,|ba");
        assertThat(jinja("{% for i in range(3) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 2 %}{% break %}{% endif %}"
                + "{{ i }}{% endfor %}")).isEqualTo("0");
    }

    @Test
    void aNoneOrUndefinedValueShadowsAnOuterVariableOfTheSameName() {
        // Jinjava's scopes fell through a null to the enclosing scope: a macro parameter given None
        // (or nothing) read the caller's variable of the same name, and "set x = none" in a loop
        // kept the value x had outside it.
        assertThat(jinja("{% macro f(x) %}[{{ x or '-' }}]{% endmacro %}{% set x = 'outer' %}{{ f(none) }}{{ f(nope) }}{{ f() }}"))
                .isEqualTo("[-][-][-]");
        assertThat(jinja("{% set y = 'outer' %}{% for m in messages %}{% set y = m.name %}[{{ y or '-' }}]{% endfor %}"
                + "{% macro g(content) %}{{ content is defined }}{% endmacro %}{% set content = 'c' %}{{ g(nope) }}"))
                .isEqualTo("[-][-][-]False");
        // Qwen 3.5 renders each turn through a macro render_content(content) and sets "content" from
        // it: an assistant turn without text (only tool calls) showed the previous user's text
        ChatTemplateRenderer qwen = new ChatTemplateRenderer(templates().get("Qwen3.5-4B"), "", "");
        Map<String, Object> call = Map.of("id", "call_1", "type", "function",
                "function", Map.of("name", "get_weather", "arguments", Map.of("city", "Paris")));
        String out = qwen.render(List.of(msg("user", "Weather in Paris?"),
                new ChatMessage("assistant", null, List.of(call), null, null)), false, null);
        assertThat(out).endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n<tool_call>\n<function=get_weather>\n"
                + "<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call><|im_end|>\n");
    }

    @Test
    void filtersTagsAndGlobalsOfHfTemplates() {
        assertThat(jinja("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}"
                + "|{{ messages|rejectattr('role', 'equalto', 'user')|list|length }}|{{ [3, 1, 2]|min }}{{ [3, 1, 2]|max }}"
                + "|{{ [1, 2, 3]|sum }}|{{ ('{\"a\": [1, {\"b\": null}]}'|from_json).a[1] }}|{{ messages[0].get('name', 'none') }}"))
                .isEqualTo("u1,u2|1|13|6|{'b': None}|none");
        assertThat(jinja("{{ 'abc'|first }}|{{ 'abc'|list }}|{{ {'x': 1}|list }}|{{ ['a', 'b']|map('upper')|list }}"
                + "|{{ [{'a': {'b': 1}}, {}]|map(attribute='a.b', default=0)|list }}|{{ 'hello world'|truncate(8) }}"
                + "|{{ '<a href=\"x\">&</a>'|e }}")).isEqualTo("a|['a', 'b', 'c']|['x']|['A', 'B']|[1, 0]|hello world"
                        + "|&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt;");
        assertThat(jinja("{% generation %}gen{% endgeneration %}|{% filter upper %}ab{% endfilter %}|{% filter trim %}  c  {% endfilter %}"))
                .isEqualTo("gen|AB|c");
        assertThat(jinja("{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ m('x') }}{{ m('x', b='y') }}{{ m(a='z') }}"))
                .isEqualTo("[xB][xy][zB]");
        assertThat(jinja("{{ 'line1\\nline2\\n\\nline4'|indent(2) }}|{{ 'ab\\ncd'|indent(first=true) }}"))
                .isEqualTo("line1\n  line2\n\n  line4|    ab\n    cd");
        assertThat(jinja("{{ raise_exception is defined }}|{{ strftime_now is defined }}|{{ strftime_now('%Y') }}"))
                .isEqualTo("True|True|" + Year.now());
    }

    @Test
    void whitespaceControlAsJinja2LexesIt() {
        String template = """
                A{% if true %}
                  B
                {% endif %}
                  {%- if true -%}  C  {%+ if true %}D{% endif %}{% endif %}   {# note #}
                E {{- ' F ' -}} G
                {%- for i in [1, 2] %}
                    <{{ i }}>
                {% endfor %}
                  H
                {% raw %}{{ not rendered }}{% endraw %}
                """;
        assertThat(jinja(template)).isEqualTo("A  B\nC  D   E F G    <1>\n    <2>\n  H\n{{ not rendered }}");
        // a comment after "-%}" does not strip the text that follows it (Jinjava would)
        assertThat(jinja("A{%- if true -%}\n{# c #}\n    {\nB{% endif %}")).isEqualTo("A    {\nB");
    }
}
