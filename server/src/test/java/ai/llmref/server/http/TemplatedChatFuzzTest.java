package ai.llmref.server.http;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Sampler;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.TestRendering;
import ai.llmref.server.chat.ChatTemplateException;
import ai.llmref.server.engine.GenerationRequest;
import ai.llmref.server.structured.PinnedTemplates;
import ai.llmref.server.structured.ToolCalls;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;

/**
 * Fuzzes chat requests through each chat template of the pinned llama.cpp tree
 * ({@code models/templates/*.jinja}), as the server binds a template: its tool-call format, its
 * reasoning tags and its reply's envelope ({@code ChatRendering}), with the real model's
 * vocabulary. {@link RequestParsingFuzzTest} parses bodies through stories260K's one template, so
 * it never reaches the tool-call formats, their grammars and their history rendering; this target
 * does.
 *
 * <p>An input is three parts, each ended by a line break: a template's file name without
 * {@code .jinja} (another text picks one by its hash), the API ({@code chat}, {@code responses},
 * {@code messages}; another text picks one by its hash), and the body. The property: the body is
 * accepted, its prompt and {@code max_tokens} within the limits and <b>every grammar the request
 * carries (from the start or late: a tool call's, a response format's) one that llama.cpp's
 * grammar sampler loads</b> (no grammar comes from a client, so one that llama.cpp refuses is the
 * server's bug, a failed request where a call was asked for); or it is refused with a 4xx
 * {@link ApiException} whose message leaks nothing, or the template itself refuses it
 * ({@code raise_exception}, a 400 in the server). No other exception.
 *
 * <p>Without {@code JAZZER_FUZZ=1} it runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/http/TemplatedChatFuzzTestInputs/body/}.
 */
class TemplatedChatFuzzTest {
    /** Room for a template's tool instructions in stories260K's small vocabulary (a few characters a token). */
    static final int SLOT_CONTEXT = 65_536;
    static final int MAX_TOKENS = 64;
    static final int MAX_PROMPT_TOKENS = 60_000;
    static final List<String> APIS = List.of("chat", "responses", "messages");

    private static LlamaModel model;
    private static final Map<String, PromptModel> PROMPTS = new HashMap<>();
    private static final Json JSON = new Json(16);

    @FuzzTest(maxDuration = "30s")
    void body(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        String[] parts = text.split("\n", 3);
        if (parts.length < 3) {
            return;
        }
        String template = pick(PinnedTemplates.all(), parts[0]);
        String api = APIS.contains(parts[1]) ? parts[1] : APIS.get(Math.floorMod(parts[1].hashCode(), APIS.size()));
        PromptModel prompts = prompts(template);
        if (prompts == null) {
            return; // a template the server could not start with (it says why at start-up)
        }
        byte[] body = parts[2].getBytes(StandardCharsets.UTF_8);
        CompletionParser parser = new CompletionParser(prompts, MAX_TOKENS, MAX_PROMPT_TOKENS, 4);
        try {
            CompletionParser.Parsed p = switch (api) {
                case "responses" -> ResponsesRequest.of(JSON.parseObject(body)).parse(parser);
                case "messages" -> MessagesRequest.of(JSON.parseObject(body)).parse(parser);
                default -> parser.chat(JSON.parseObject(body));
            };
            GenerationRequest r = p.request();
            assertThat(r.prompt().length).isBetween(1, MAX_PROMPT_TOKENS);
            assertThat(r.maxTokens()).isBetween(1, MAX_TOKENS);
            for (GenerationRequest choice : p.requests()) {
                loads(choice.sampling().grammar(), template, prompts);
                loads(choice.late() == null ? null : choice.late().grammar(), template, prompts);
            }
        } catch (ApiException e) {
            RequestParsingFuzzTest.assertClientError(e, parts[2]);
        } catch (ChatTemplateException e) {
            // the template's own refusal; ServedModel turns it into a 400 with the template's message
            assertThat(e.getMessage()).isNotBlank();
            LeakMarkers.assertNoLeak(e.getMessage(), parts[2]);
        }
    }

    /** llama.cpp's grammar sampler takes the grammar (with the real vocabulary). */
    private static void loads(String grammar, String template, PromptModel prompts) {
        if (grammar == null) {
            return;
        }
        try (Sampler s = Sampler.builder(model.vocabulary()).grammar(grammar, "root").build()) {
            assertThat(s).isNotNull();
        } catch (RuntimeException e) {
            throw new AssertionError("llama.cpp refuses the grammar made for template " + template + " (tool-call format "
                    + prompts.toolFormat() + "): " + e.getMessage() + "\n" + grammar, e);
        }
    }

    /** The template named by {@code name}, or one picked by its hash. */
    static String pick(Map<String, Path> all, String name) {
        if (all.containsKey(name)) {
            return name;
        }
        List<String> names = List.copyOf(all.keySet());
        return names.get(Math.floorMod(name.hashCode(), names.size()));
    }

    /** The model as the server would serve it with {@code template}; null where the template does not compile. */
    static synchronized PromptModel prompts(String template) {
        if (model == null) {
            model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
        }
        if (PROMPTS.containsKey(template)) {
            return PROMPTS.get(template);
        }
        PromptModel.ChatRenderer renderer;
        try {
            renderer = TestRendering.of(Files.readString(PinnedTemplates.all().get(template)), model);
        } catch (ChatTemplateException e) {
            renderer = null;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        PromptModel prompts = renderer == null ? null : served(template, renderer, model.vocabulary());
        PROMPTS.put(template, prompts);
        return prompts;
    }

    /** What {@code ServedModel} gives request parsing, with this renderer. */
    private static PromptModel served(String template, PromptModel.ChatRenderer renderer, Vocabulary v) {
        return new VocabularyPrompts(v, SLOT_CONTEXT) {
            @Override
            public String renderChat(List<Message> messages) {
                return renderChat(messages, null, Map.of());
            }

            @Override
            public String renderChat(List<Message> messages, List<Map<String, Object>> tools) {
                return renderChat(messages, tools, Map.of());
            }

            @Override
            public String renderChat(List<Message> messages, List<Map<String, Object>> tools, Map<String, Object> variables) {
                return renderer.render(messages, tools, variables);
            }

            @Override
            public ToolCalls.Format toolFormat() {
                return renderer.toolFormat();
            }

            @Override
            public boolean reasoningTags() {
                return renderer.reasoningTags();
            }

            @Override
            public boolean harmony() {
                return renderer.harmony();
            }

            @Override
            public boolean thinkingSwitch() {
                return renderer.thinkingSwitch();
            }

            @Override
            public ai.llmref.server.structured.ReasoningStream.Tags thinkTags() {
                return renderer.thinkTags();
            }

            @Override
            public ai.llmref.server.structured.MarkerFilter.Envelope envelope() {
                return renderer.envelope();
            }

            @Override
            public String toString() {
                return template;
            }
        };
    }

    @AfterAll
    static synchronized void closeModel() {
        PROMPTS.clear();
        if (model != null) {
            model.close();
            model = null;
        }
    }
}
