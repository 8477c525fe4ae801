package ai.llmref.server;

import ai.llmref.llama.ChatTemplates;
import ai.llmref.llama.InvalidInputException;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.chat.ChatMessage;
import ai.llmref.server.chat.ChatTemplateException;
import ai.llmref.server.chat.ChatTemplateRenderer;
import ai.llmref.server.config.ServerConfig;
import ai.llmref.server.http.PromptModel;
import ai.llmref.server.structured.ReasoningStream;
import ai.llmref.server.structured.ToolCalls;
import java.util.List;
import java.util.Map;

/** Binds a chat template to a model's special tokens, in the configured rendering mode. */
final class ChatRendering {
    private static final System.Logger LOG = System.getLogger(ChatRendering.class.getName());

    private ChatRendering() {}

    /** A special token's text ({@code <s>}), "" for none (-1): what a template sees as {@code bos_token}. */
    static String text(Vocabulary v, int token) {
        return token >= 0 ? v.tokenText(token) : "";
    }

    /**
     * {@code jinja} (default): the template runs in the Jinja engine with the model's BOS/EOS text;
     * when the tokenizer adds BOS (or EOS) itself, one leading BOS (trailing EOS) text is removed
     * from the output, as llama-server does, so the prompt does not start with two BOS tokens.
     * {@code builtin}: when llama.cpp recognises the template, its built-in renderer
     * ({@code llama_chat_apply_template}) is used, exactly as llama.cpp renders it; other templates
     * still run in Jinja.
     */
    static PromptModel.ChatRenderer of(String source, LlamaModel model, ServerConfig.ChatTemplateMode mode) {
        return of(source, model, mode, ServerConfig.ReasoningFormat.AUTO);
    }

    /** As {@link #of(String, LlamaModel, ServerConfig.ChatTemplateMode)}; {@code reasoning} says whether {@code <think>} blocks are split off. */
    static PromptModel.ChatRenderer of(String source, LlamaModel model, ServerConfig.ChatTemplateMode mode,
            ServerConfig.ReasoningFormat reasoning) {
        Vocabulary v = model.vocabulary();
        String bos = text(v, v.bos());
        String eos = text(v, v.eos());
        boolean builtin = mode == ServerConfig.ChatTemplateMode.BUILTIN && recognised(source);
        ChatTemplateRenderer jinja;
        try {
            jinja = new ChatTemplateRenderer(source, bos, eos, v.addsBos(), v.addsEos());
        } catch (ChatTemplateException e) {
            if (!builtin) {
                throw e;
            }
            jinja = null; // the built-in renderer serves; tools need Jinja, so none
        }
        ChatTemplateRenderer renderer = jinja;
        ToolCalls.Format format = renderer == null ? ToolCalls.Format.NONE : ToolCalls.detect(renderer);
        LOG.log(System.Logger.Level.INFO, "chat template tool-call format: " + format);
        if (format != ToolCalls.Format.NONE && !ToolCalls.showsTools(renderer)) {
            LOG.log(System.Logger.Level.WARNING, "the chat template renders tool calls but not the tools: the model sees only what a system "
                    + "message says of them (describe them there); calls are read and constrained as the template renders them");
        }
        if (builtin) {
            LOG.log(System.Logger.Level.INFO, "chat template: llama.cpp built-in renderer (Jinja for requests with tools)");
        }
        boolean harmony = reasoning == ServerConfig.ReasoningFormat.AUTO && ReasoningStream.harmonyUsedBy(source);
        ReasoningStream.Tags found = ReasoningStream.tagsOf(source);
        boolean thinks = reasoning == ServerConfig.ReasoningFormat.AUTO && found != null && !harmony;
        ReasoningStream.Tags tags = found == null ? ReasoningStream.THINK : found;
        ai.llmref.server.structured.MarkerFilter.Envelope envelope = ai.llmref.server.structured.MarkerFilter.Envelope.of(source, tags);
        LOG.log(System.Logger.Level.INFO, "chat template reasoning: " + (harmony ? "harmony analysis messages returned apart from the content"
                : thinks ? tags.open() + " blocks returned apart from the content"
                : reasoning == ServerConfig.ReasoningFormat.NONE ? "returned in the content (model.reasoning-format none)" : "none"));
        return new PromptModel.ChatRenderer() {
            @Override
            public String render(List<PromptModel.Message> messages, List<Map<String, Object>> tools) {
                return render(messages, tools, Map.of());
            }

            @Override
            public String source() {
                return source;
            }

            @Override
            public String render(List<PromptModel.Message> messages, List<Map<String, Object>> tools, Map<String, Object> variables) {
                boolean plain = (tools == null || tools.isEmpty()) && messages.stream().allMatch(m -> m.toolCalls() == null && m.toolCallId() == null);
                // enable_thinking alone keeps a request on the built-in renderer, which has no such
                // variable (llama-server without Jinja ignores it too); other variables need Jinja
                boolean noVariables = variables.isEmpty() || variables.keySet().equals(java.util.Set.of("enable_thinking"));
                if (builtin && noVariables && (plain || renderer == null)) {
                    return ChatTemplates.apply(source,
                            // an assistant turn that only called tools has no content: "", as the Jinja path passes it
                            messages.stream().map(m -> new ChatTemplates.Message(m.role(), m.content() == null ? "" : m.content())).toList(), true);
                }
                if (renderer == null) {
                    throw ai.llmref.server.http.ApiException.unsupported("chat_template_kwargs",
                            "the chat template runs in llama.cpp's built-in renderer, which takes no extra variables");
                }
                // enable_thinking is true unless the request says otherwise, as llama.cpp passes it
                // (DeepSeek R1's template closes its <think> block where it is not true)
                Map<String, Object> vars = variables;
                if (!vars.containsKey("enable_thinking")) {
                    vars = new java.util.LinkedHashMap<>(variables);
                    vars.put("enable_thinking", true);
                }
                return renderer.render(messages.stream()
                        .map(m -> new ChatMessage(m.role(), m.content(), historyIds(format, m.toolCalls()),
                                ToolCalls.historyId(format, m.toolCallId()), m.name(), m.reasoningContent()))
                        .toList(), true, tools,
                        vars);
            }

            @Override
            public ToolCalls.Format toolFormat() {
                return format;
            }

            @Override
            public boolean reasoningTags() {
                return thinks;
            }

            @Override
            public boolean harmony() {
                return harmony;
            }

            @Override
            public ReasoningStream.Tags thinkTags() {
                return tags;
            }

            @Override
            public ai.llmref.server.structured.MarkerFilter.Envelope envelope() {
                return envelope;
            }

            @Override
            public boolean thinkingSwitch() {
                return thinks && renderer != null && ReasoningStream.switchedBy(source);
            }
        };
    }

    /** The calls with their ids as the format's template takes them ({@link ToolCalls#historyId}). */
    private static List<Map<String, Object>> historyIds(ToolCalls.Format format, List<Map<String, Object>> calls) {
        if (calls == null || !ToolCalls.mapsHistoryIds(format)) {
            return calls;
        }
        return calls.stream().map(c -> {
            Map<String, Object> copy = new java.util.LinkedHashMap<>(c);
            if (c.get("id") instanceof String id) {
                copy.put("id", ToolCalls.historyId(format, id));
            }
            return (Map<String, Object>) copy;
        }).toList();
    }

    private static boolean recognised(String source) {
        try {
            ChatTemplates.apply(source, List.of(new ChatTemplates.Message("user", "x")), true);
            return true;
        } catch (InvalidInputException e) {
            return false;
        }
    }
}
