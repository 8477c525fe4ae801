package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes the tool-call grammars of every format against their readers, in llama.cpp's grammar
 * engine: what a call's grammar lets a model write, the server must read back as calls of the
 * declared functions with arguments valid under their schemas. Where it does not, the server
 * answers a well-behaved model with a 500 ({@code structured_output_invalid}: the output check
 * catches what the grammar let through) or, worse, with calls that are not what was written.
 *
 * <p>An input is three parts, each ended by a line break: a format's name ({@link ToolCalls.Format};
 * another text picks one by its hash), the grammar ({@code forced}: {@link ToolCalls#grammar} for
 * one call; {@code several}: the same for one or more; {@code late} and {@code late-parallel}:
 * {@link ToolCalls#lateGrammar}, the grammar that applies once a model begins a call under
 * {@code tool_choice} "auto"; another text picks one by its hash), and a JSON schema, the
 * parameters of a function {@code f} declared beside a fixed {@code get_time}. A schema the
 * format's grammar cannot enforce is refused ({@link SchemaException}); otherwise the grammar is
 * walked ({@link GrammarWalk}, stories260K's vocabulary, an order seeded by the input), and
 * wherever it allows the end the text so far is read as the server reads it:
 * <ul>
 * <li>by a {@link ToolStream} (the reader of calls a grammar wrote, fed the text in pieces of 1 to
 * 16 characters; under "auto", told where the grammar applied): calls started, well-formed, at
 * least one (exactly one for {@code forced}), each complete, naming a declared function, its
 * arguments valid under that function's schema ({@code oneOf} read as {@code anyOf}, as the
 * converters enforce it), and no content beside them;</li>
 * <li>by {@link ToolCalls#parse} (the reader of a whole reply): the same calls, names and
 * arguments as JSON values.</li>
 * </ul>
 * A dead end (neither the end nor any token allowed) or a step over
 * {@link GrammarWalk#STEP_LIMIT_MILLIS} fails too.
 *
 * <p>Without {@code JAZZER_FUZZ=1} it runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/structured/ToolGrammarFuzzTestInputs/walk/}.
 */
class ToolGrammarFuzzTest {
    /** Most tokens a walk generates: a call's markup in stories260K's vocabulary is mostly a token a character. */
    static final int MAX_TOKENS = 400;
    static final List<String> GRAMMARS = List.of("forced", "several", "late", "late-parallel");
    static final List<ToolCalls.Format> FORMATS = Arrays.stream(ToolCalls.Format.values()).filter(f -> f != ToolCalls.Format.NONE).toList();
    static final JsonNode TIME_PARAMS = read("""
            {"type":"object","properties":{"timezone":{"type":"string","maxLength":16}},"required":["timezone"]}""");
    /**
     * A pinned template of each format: the server reads a reply through the markup its template
     * wraps replies in ({@link MarkerFilter.Envelope#of}) before it reads calls.
     */
    static final Map<ToolCalls.Format, String> TEMPLATES = Map.ofEntries(
            Map.entry(ToolCalls.Format.HERMES, "Qwen-Qwen2.5-7B-Instruct"),
            Map.entry(ToolCalls.Format.LLAMA3_JSON, "meta-llama-Llama-3.1-8B-Instruct"),
            Map.entry(ToolCalls.Format.XML, "Qwen3-Coder"),
            Map.entry(ToolCalls.Format.GLM_XML, "GLM-4.6"),
            Map.entry(ToolCalls.Format.MISTRAL, "Mistral-Small-3.2-24B-Instruct-2506"),
            Map.entry(ToolCalls.Format.MISTRAL_NEMO, "mistralai-Mistral-Nemo-Instruct-2407"),
            Map.entry(ToolCalls.Format.HARMONY, "openai-gpt-oss-120b"),
            Map.entry(ToolCalls.Format.MINIMAX_XML, "MiniMax-M2"),
            Map.entry(ToolCalls.Format.KIMI, "Kimi-K2-Instruct"),
            Map.entry(ToolCalls.Format.DEEPSEEK_V32, "deepseek-ai-DeepSeek-V3.2"),
            Map.entry(ToolCalls.Format.DEEPSEEK_V4, "deepseek-ai-DeepSeek-V4"),
            Map.entry(ToolCalls.Format.GEMMA, "google-gemma-4-31B-it"),
            Map.entry(ToolCalls.Format.NEMOTRON_V2, "NVIDIA-Nemotron-Nano-v2"),
            Map.entry(ToolCalls.Format.APRIEL, "unsloth-Apriel-1.5"),
            Map.entry(ToolCalls.Format.SEED_XML, "ByteDance-Seed-OSS"),
            Map.entry(ToolCalls.Format.COHERE, "CohereForAI-c4ai-command-r7b-12-2024-tool_use"),
            Map.entry(ToolCalls.Format.MINIMAX_M1, "MiniMax-M1"),
            Map.entry(ToolCalls.Format.HUNYUAN, "tencent-Hy3"),
            Map.entry(ToolCalls.Format.DEEPSEEK_R1, "llama-cpp-deepseek-r1"),
            Map.entry(ToolCalls.Format.FUNCTIONARY_V31, "meetkai-functionary-medium-v3.1"),
            Map.entry(ToolCalls.Format.GIGACHAT, "GigaChat3.1-10B-A1.8B"),
            Map.entry(ToolCalls.Format.APERTUS, "Apertus-8B-Instruct"),
            Map.entry(ToolCalls.Format.KIMI3, "Kimi-K3"),
            Map.entry(ToolCalls.Format.GRANITE, "ibm-granite-granite-3.3-2B-Instruct"),
            Map.entry(ToolCalls.Format.LFM2, "LFM2-8B-A1B"),
            Map.entry(ToolCalls.Format.MINICPM5, "openbmb-MiniCPM5-1B"),
            Map.entry(ToolCalls.Format.FUNCTIONARY_V32, "meetkai-functionary-medium-v3.2"),
            Map.entry(ToolCalls.Format.GIGACHAT3, "GigaChat3-10B-A1.8B"),
            Map.entry(ToolCalls.Format.COMMAND_R, "CohereForAI-c4ai-command-r-plus-tool_use"),
            Map.entry(ToolCalls.Format.SOLAR, "upstage-Solar-Open-100B"),
            Map.entry(ToolCalls.Format.MINIMAX_M3, "MiniMax-M3"),
            Map.entry(ToolCalls.Format.MUSE, "muse-glimmer"),
            Map.entry(ToolCalls.Format.DEEPSEEK_V31, "deepseek-ai-DeepSeek-V3.1"),
            Map.entry(ToolCalls.Format.FIREFUNCTION, "fireworks-ai-llama-3-firefunction-v2"));
    private static final Map<ToolCalls.Format, MarkerFilter.Envelope> ENVELOPES = new java.util.concurrent.ConcurrentHashMap<>();
    /** Where a walk that closes tries first: ends of strings, arrays, objects, markup and lines. */
    static final Set<String> CLOSING = Set.of("\"", "]", "}", "<", ">", "\n");

    private static LlamaModel model;
    private static GrammarWalk walk;

    private static synchronized GrammarWalk walker() {
        if (model == null) {
            model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
            walk = new GrammarWalk(model.vocabulary(), MAX_TOKENS, CLOSING);
        }
        return walk;
    }

    @AfterAll
    static synchronized void closeModel() {
        if (model != null && !walk.leftRunning()) {
            model.close();
            model = null;
        }
    }

    /** Each format's template above is one the server reads in that format. */
    @Test
    void eachFormatsTemplateIsOfThatFormat() {
        assertThat(TEMPLATES.keySet()).containsExactlyInAnyOrderElementsOf(FORMATS);
        for (Map.Entry<ToolCalls.Format, String> e : TEMPLATES.entrySet()) {
            assertThat(ToolCalls.detect(new ai.llmref.server.chat.ChatTemplateRenderer(PinnedTemplates.read(e.getValue()), "<s>", "</s>")))
                    .as(e.getValue()).isEqualTo(e.getKey());
        }
    }

    /** The markup a reply of this format's template is wrapped in, as the server finds it in the template. */
    static MarkerFilter.Envelope envelope(ToolCalls.Format format) {
        return ENVELOPES.computeIfAbsent(format, f -> {
            String source = PinnedTemplates.read(TEMPLATES.get(f));
            ReasoningStream.Tags tags = ReasoningStream.tagsOf(source);
            return MarkerFilter.Envelope.of(source, tags == null ? ReasoningStream.THINK : tags);
        });
    }

    @FuzzTest(maxDuration = "30s")
    void walk(byte[] input) {
        String[] parts = new String(input, StandardCharsets.UTF_8).split("\n", 3);
        if (parts.length < 3) {
            return;
        }
        ToolCalls.Format format = FORMATS.stream().filter(f -> f.name().equals(parts[0])).findFirst()
                .orElse(FORMATS.get(Math.floorMod(parts[0].hashCode(), FORMATS.size())));
        String kind = GRAMMARS.contains(parts[1]) ? parts[1] : GRAMMARS.get(Math.floorMod(parts[1].hashCode(), GRAMMARS.size()));
        JsonNode schema;
        try {
            schema = SchemaCorpus.MAPPER.readTree(parts[2]);
        } catch (JsonProcessingException e) {
            return; // not JSON: the request parser's concern, fuzzed elsewhere
        }
        if (schema == null || !schema.isObject()) {
            return; // parameters are an object schema (the request parser refuses others)
        }
        String grammar;
        List<ToolCalls.Function> functions;
        try {
            // as the request parser declares them: parameters that do not describe an object are refused there
            functions = List.of(new ToolCalls.Function("f", ToolCalls.argumentsSchema(schema)), new ToolCalls.Function("get_time", TIME_PARAMS));
            grammar = switch (kind) {
                case "forced" -> ToolCalls.grammar(format, functions, false);
                case "several" -> ToolCalls.grammar(format, functions, true);
                case "late" -> ToolCalls.lateGrammar(format, functions, false);
                default -> ToolCalls.lateGrammar(format, functions, true);
            };
        } catch (SchemaException e) {
            assertThat(e.getMessage()).as("a refusal says what it refuses").isNotBlank();
            return;
        }
        Map<String, JsonNode> enforced = Map.of("f", SchemaGrammarFuzzTest.oneOfAsAnyOf(functions.getFirst().parameters()), "get_time", TIME_PARAMS);
        long seed = Arrays.hashCode(input);
        int piece = 1 + (int) Math.floorMod(seed, 16L);
        String what = "format " + format + ", " + kind + " grammar, schema: " + schema;
        walker().watched(grammar, seed, text -> check(format, kind, functions, enforced, text, piece, what + "\ngrammar:\n" + grammar), what);
    }

    /** Text the grammar may end with, read as the server reads it (see the class comment). */
    private static void check(ToolCalls.Format format, String kind, List<ToolCalls.Function> functions, Map<String, JsonNode> enforced,
            String text, int piece, String what) {
        String at = "text " + GrammarWalk.quote(text) + "; " + what;
        boolean forced = !kind.startsWith("late");
        MarkerFilter.Envelope envelope = envelope(format);
        MarkerFilter filter = envelope.none() ? null : new MarkerFilter(envelope);
        ToolStream stream = new ToolStream(format, forced, functions);
        List<String> openings = ToolCalls.openings(format, functions);
        for (int i = 0; i < text.length(); ) {
            int end = Math.min(text.length(), text.offsetByCodePoints(i, Math.min(piece, text.codePointCount(i, text.length()))));
            stream.push(filter == null ? text.substring(i, end) : filter.push(text.substring(i, end)));
            i = end;
            // under "auto" the server is told that the late grammar applies right after the text that began the call
            if (!forced && !stream.callsStarted() && openings != null && openings.stream().anyMatch(stream.text()::contains)) {
                stream.constrain();
            }
        }
        if (filter != null) {
            stream.push(filter.finish());
        }
        if (!forced && !stream.callsStarted()) {
            stream.constrain(); // a call that begins at the reply's start (an opening pattern, not a literal)
        }
        stream.finish();
        assertThat(stream.callsStarted()).as("calls started; %s", at).isTrue();
        assertThat(stream.wellFormed()).as("the calls end where the grammar ends them; %s", at).isTrue();
        List<ToolCalls.Call> calls = stream.calls();
        assertThat(calls).as("calls; %s", at).isNotEmpty();
        if (kind.equals("forced")) {
            assertThat(calls).as("one call; %s", at).hasSize(1);
        }
        assertThat(stream.content()).as("content beside the calls; %s", at).isNullOrEmpty();
        for (ToolCalls.Call c : calls) {
            assertThat(c.complete()).as("%s complete; %s", c, at).isTrue();
            assertThat(enforced).as("%s names a declared function; %s", c, at).containsKey(c.name());
            JsonNode args;
            try {
                args = SchemaValidator.read(c.arguments());
            } catch (JsonProcessingException e) {
                throw new AssertionError("the arguments of " + c + " are not JSON; " + at, e);
            }
            assertThat(SchemaValidator.validate(enforced.get(c.name()), args)).as("%s under its schema; %s", c, at).isEmpty();
        }
        ToolCalls.Reply whole = ToolCalls.parse(format, stream.text(), functions); // what the stream read, as the server parses it
        assertThat(whole.calls()).as("the whole reply's calls; %s", at).hasSameSizeAs(calls);
        for (int i = 0; i < calls.size(); i++) {
            assertThat(whole.calls().get(i).name()).as("call %d's name; %s", i, at).isEqualTo(calls.get(i).name());
            assertSameJson(whole.calls().get(i).arguments(), calls.get(i).arguments(), "call " + i + "'s arguments; " + at);
        }
    }

    /**
     * The same JSON value, numbers compared exactly; where a number's exponent is beyond a
     * BigDecimal's, the same text (both readers keep such a number as written).
     */
    static void assertSameJson(String actual, String expected, String what) {
        try {
            assertThat(SchemaValidator.EXACT.readTree(actual)).as(what).isEqualTo(SchemaValidator.EXACT.readTree(expected));
        } catch (NumberFormatException e) {
            assertThat(actual).as(what).isEqualTo(expected);
        } catch (JsonProcessingException e) {
            throw new AssertionError("not JSON: " + what, e);
        }
    }

    private static JsonNode read(String json) {
        try {
            return SchemaCorpus.MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
