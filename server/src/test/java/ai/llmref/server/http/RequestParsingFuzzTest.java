package ai.llmref.server.http;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.chat.ChatMessage;
import ai.llmref.server.chat.ChatTemplateRenderer;
import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;

/**
 * Fuzzes request parsing in process: the JSON body reader, {@link CompletionParser} (chat and
 * completions bodies, Responses API bodies after {@link ResponsesRequest}, Messages API bodies
 * after {@link MessagesRequest}, the model check of
 * embeddings) and the tokenizer calls behind /tokenize, /detokenize and /v1/embeddings, with the
 * real model's vocabulary and the real chat-template renderer. The property: a body is either
 * accepted or refused with a 4xx {@link ApiException} whose message leaks nothing internal; no
 * other exception, no native abort.
 *
 * <p>Without {@code JAZZER_FUZZ=1} each method runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/http/RequestParsingFuzzTestInputs/<method>/}
 * (regression mode, part of every test run). docs/reliability.md has the command that fuzzes.
 */
class RequestParsingFuzzTest {
    static final int SLOT_CONTEXT = 256;
    static final int MAX_TOKENS = 64;
    static final int MAX_PROMPT_TOKENS = 200;

    private static LlamaModel model;
    private static PromptModel prompts;
    private static final Json JSON = new Json(16);

    /** The real model's tokenizer and template; only the slot size (an engine setting) is fixed here. */
    static synchronized PromptModel prompts() {
        if (prompts == null) {
            model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
            Vocabulary v = model.vocabulary();
            ChatTemplateRenderer renderer = new ChatTemplateRenderer(
                    model.chatTemplate().orElse(ChatTemplateRenderer.defaultTemplate()),
                    v.bos() >= 0 ? v.tokenText(v.bos()) : "", v.eos() >= 0 ? v.tokenText(v.eos()) : "", v.addsBos(), v.addsEos());
            prompts = new VocabularyPrompts(v, SLOT_CONTEXT) {
                @Override
                public String renderChat(List<Message> messages) {
                    return renderer.render(messages.stream().map(m -> ChatMessage.of(m.role(), m.content())).toList(), true, null);
                }

                /** With template variables (chat_template_kwargs) and each turn's reasoning, as the server renders. */
                @Override
                public String renderChat(List<Message> messages, List<java.util.Map<String, Object>> tools,
                        java.util.Map<String, Object> variables) {
                    return renderer.render(messages.stream().map(m -> new ChatMessage(m.role(), m.content(), m.toolCalls(), m.toolCallId(),
                            m.name(), m.reasoningContent())).toList(), true, tools, variables);
                }

                /** Three byte tokens stand for fill-in-the-middle tokens, so that a suffix is parsed as for a code model. */
                @Override
                public int[] fillInTheMiddle() {
                    return new int[] {4, 5, 6};
                }

                /** Reasoning is split off, as for a template that writes think tags. */
                @Override
                public boolean reasoningTags() {
                    return true;
                }
            };
        }
        return prompts;
    }

    @AfterAll
    static synchronized void closeModel() {
        if (model != null) {
            model.close();
            model = null;
            prompts = null;
        }
    }

    @FuzzTest(maxDuration = "30s")
    void chatBody(byte[] body) {
        parse(body, p -> p.chat(JSON.parseObject(body)));
    }

    /** A Responses API body: read as a chat request, then parsed as one (its errors renamed). */
    @FuzzTest(maxDuration = "30s")
    void responsesBody(byte[] body) {
        parse(body, p -> ResponsesRequest.of(JSON.parseObject(body)).parse(p));
    }

    /** An Anthropic Messages API body: read as a chat request, then parsed as one (its errors renamed). */
    @FuzzTest(maxDuration = "30s")
    void messagesBody(byte[] body) {
        parse(body, p -> MessagesRequest.of(JSON.parseObject(body)).parse(p));
    }

    @FuzzTest(maxDuration = "30s")
    void completionBody(byte[] body) {
        parse(body, p -> p.completion(JSON.parseObject(body)));
    }

    /** A /completion body (llama-server's own route: mixed prompts, n_predict, n_probs, json_schema, logit_bias pairs). */
    @FuzzTest(maxDuration = "30s")
    void nativeBody(byte[] body) {
        parse(body, p -> {
            CompletionParser.Native n = p.nativeCompletion(JSON.parseObject(body));
            assertThat(n.probs()).isBetween(0, 20);
            return n.parsed();
        });
    }

    /**
     * An /infill body: the prefix, suffix, prompt and other files laid out and cut to the window,
     * and the fields it shares with /completion (n_probs, return_tokens, json_schema, logit_bias
     * pairs). The prompt always fits the slot's context.
     */
    @FuzzTest(maxDuration = "30s")
    void infillBody(byte[] body) {
        parse(body, p -> {
            CompletionParser.Native n = p.infill(JSON.parseObject(body));
            assertThat(n.probs()).isBetween(0, 20);
            return n.parsed();
        });
    }

    /**
     * What /tokenize, /detokenize and /v1/embeddings do with a body's text and ids: the model check,
     * tokenizing with and without special-token parsing, pieces, and detokenizing valid ids.
     */
    @FuzzTest(maxDuration = "30s")
    void tokenizerBody(FuzzedDataProvider data) {
        PromptModel pm = prompts();
        Vocabulary v = model.vocabulary();
        boolean addSpecial = data.consumeBoolean();
        boolean parseSpecial = data.consumeBoolean();
        int[] ids = new int[data.consumeInt(0, 16)];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = data.consumeInt(0, pm.vocabSize() - 1);
        }
        String text = data.consumeRemainingAsString();
        int[] tokens = v.tokenize(text, addSpecial, parseSpecial);
        for (int t : tokens) {
            assertThat(t).isBetween(0, pm.vocabSize() - 1);
            assertThat(v.tokenToPiece(t, true)).isNotNull();
        }
        assertThat(v.detokenize(tokens, false, false)).isNotNull();
        assertThat(v.detokenize(ids, false, false)).isNotNull();
        ObjectNode body = JSON.object().put("model", text).put("input", text);
        parse(text.getBytes(StandardCharsets.UTF_8), p -> p.checkModel(body));
    }

    private static void parse(byte[] input, Function<CompletionParser, Object> parse) {
        CompletionParser parser = new CompletionParser(prompts(), MAX_TOKENS, MAX_PROMPT_TOKENS, 4);
        try {
            Object parsed = parse.apply(parser);
            if (parsed instanceof CompletionParser.Parsed p) {
                assertThat(p.request().prompt().length).isBetween(1, MAX_PROMPT_TOKENS);
                assertThat(p.request().maxTokens()).isBetween(1, MAX_TOKENS);
                assertThat(p.request().prompt().length + p.request().maxTokens()).isLessThanOrEqualTo(SLOT_CONTEXT);
            }
        } catch (ApiException e) {
            assertClientError(e, new String(input, StandardCharsets.UTF_8));
        } catch (ai.llmref.server.chat.ChatTemplateException e) {
            // the template's own refusal; ServedModel turns it into a 400 with the template's message
            assertThat(e.getMessage()).isNotBlank();
            LeakMarkers.assertNoLeak(e.getMessage(), new String(input, StandardCharsets.UTF_8));
        }
    }

    /** A refusal is a 4xx in the OpenAI shape whose message is for the client. */
    static void assertClientError(ApiException e, String input) {
        assertThat(e.status()).as(e.getMessage()).isBetween(400, 499);
        assertThat(e.type()).isNotBlank();
        assertThat(e.code()).isNotBlank();
        assertThat(e.getMessage()).isNotBlank();
        LeakMarkers.assertNoLeak(e.getMessage(), input);
    }
}
