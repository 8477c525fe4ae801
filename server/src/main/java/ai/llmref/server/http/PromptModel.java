package ai.llmref.server.http;

import ai.llmref.server.structured.ToolCalls;
import java.util.List;
import java.util.Map;

/** What request parsing needs from the served model: its id, tokenizer, chat template and limits. */
public interface PromptModel {

    /**
     * A chat message after validation (text content only); an assistant turn may carry tool calls
     * (OpenAI-shaped, arguments as a JSON object) and its reasoning ({@code reasoning_content}), a
     * {@code tool} turn the id of the call it answers.
     */
    record Message(String role, String content, List<Map<String, Object>> toolCalls, String toolCallId, String name,
                   String reasoningContent) {
        public Message(String role, String content) {
            this(role, content, null, null, null, null);
        }
    }

    /** Renders a conversation with the chat template; knows the template's tool-call format. */
    interface ChatRenderer {
        /** The prompt ending with the assistant's turn; {@code tools} (OpenAI-shaped) go to the template, null for none. */
        String render(List<Message> messages, List<Map<String, Object>> tools);

        /** The template's source, as the server runs it (null where none is kept). */
        default String source() {
            return null;
        }

        /** How the template asks the model to write tool calls; NONE when it cannot render tools. */
        default ToolCalls.Format toolFormat() {
            return ToolCalls.Format.NONE;
        }

        /**
         * As {@link #render(List, List)}, with extra template variables (a request's
         * {@code chat_template_kwargs}, e.g. {@code enable_thinking}); empty: none.
         */
        default String render(List<Message> messages, List<Map<String, Object>> tools, Map<String, Object> variables) {
            noVariables(variables);
            return render(messages, tools);
        }

        /** A reply's {@code <think>} block is returned apart from its content (the template writes them; model.reasoning-format auto). */
        default boolean reasoningTags() {
            return false;
        }

        /** The tags of the template's reasoning blocks ({@code <think>}, or Gemma 4's thought channel). */
        default ai.llmref.server.structured.ReasoningStream.Tags thinkTags() {
            return ai.llmref.server.structured.ReasoningStream.THINK;
        }

        /** The markup the template wraps a chat reply's text in, left out of it (Kimi K3's, Functionary v3.2's; none for most). */
        default ai.llmref.server.structured.MarkerFilter.Envelope envelope() {
            return ai.llmref.server.structured.MarkerFilter.Envelope.NONE;
        }

        /**
         * The template writes harmony messages (GPT-OSS): a reply's analysis channel is returned
         * apart from its content (model.reasoning-format auto).
         */
        default boolean harmony() {
            return false;
        }

        /**
         * The template writes reasoning tags and reads {@code enable_thinking}: asked to think,
         * the model opens its reply with a {@code <think>} block.
         */
        default boolean thinkingSwitch() {
            return false;
        }
    }

    String id();

    /**
     * Tokens of a prompt. Chat prompts come from the template and may hold special-token text
     * (e.g. {@code <|im_start|>}), so they are parsed for special tokens; plain completions are not.
     */
    int[] tokenize(String text, boolean chat);

    /**
     * Tokens of text that continues an output (no BOS; special-token text parsed, as in a chat
     * prompt): what the server writes in the model's place.
     */
    default int[] tokenizeInside(String text) {
        throw ApiException.unsupported("reasoning_budget_tokens", "this model cannot take a reasoning budget");
    }

    /**
     * The sampling fields a request that leaves them out gets (the model's recommended sampling,
     * {@link SamplingDefaults}), or null for none.
     */
    default com.fasterxml.jackson.databind.node.ObjectNode samplingDefaults() {
        return null;
    }

    /** The BOS token the model's prompts begin with, or -1 when it adds none. */
    default int bosToAdd() {
        return -1;
    }

    /** The repository-level fill-in-the-middle tokens (Qwen 2.5 Coder's {@code <|repo_name|>}, {@code <|file_sep|>}), -1 each where absent. */
    default int fimRepository() {
        return -1;
    }

    default int fimSeparator() {
        return -1;
    }

    /** The model's fill-in-the-middle tokens (prefix, suffix, middle), or null when it has none. */
    default int[] fillInTheMiddle() {
        return null;
    }

    /** Tokens of a text as it reads, without BOS and without special-token parsing: a prefix or suffix around an insertion. */
    default int[] tokenizePlain(String text) {
        return tokenize(text, false);
    }

    /** The text of tokens as the model reads them (special tokens left out): a token-id prompt's echo. */
    String detokenize(int[] tokens);

    /** The model's chat template applied to the messages, ending with the assistant's turn. */
    String renderChat(List<Message> messages);

    /** The chat template applied to the messages with tool definitions (null: none). */
    default String renderChat(List<Message> messages, List<Map<String, Object>> tools) {
        if (tools != null && !tools.isEmpty()) {
            throw new UnsupportedOperationException("tools");
        }
        return renderChat(messages);
    }

    /** The chat template's tool-call format; NONE when the template cannot render tools. */
    default ToolCalls.Format toolFormat() {
        return ToolCalls.Format.NONE;
    }

    /** The chat template applied with extra template variables ({@code chat_template_kwargs}; empty: none). */
    default String renderChat(List<Message> messages, List<Map<String, Object>> tools, Map<String, Object> variables) {
        noVariables(variables);
        return renderChat(messages, tools);
    }

    /** A renderer without template variables refuses a request that sends some. */
    private static void noVariables(Map<String, Object> variables) {
        if (!variables.isEmpty()) {
            throw ApiException.unsupported("chat_template_kwargs", "this chat template takes no extra variables");
        }
    }

    /** See {@link ChatRenderer#reasoningTags()}. */
    default boolean reasoningTags() {
        return false;
    }

    /** See {@link ChatRenderer#thinkTags()}. */
    default ai.llmref.server.structured.ReasoningStream.Tags thinkTags() {
        return ai.llmref.server.structured.ReasoningStream.THINK;
    }

    /** See {@link ChatRenderer#envelope()}. */
    default ai.llmref.server.structured.MarkerFilter.Envelope envelope() {
        return ai.llmref.server.structured.MarkerFilter.Envelope.NONE;
    }

    /** See {@link ChatRenderer#harmony()}. */
    default boolean harmony() {
        return false;
    }

    /** See {@link ChatRenderer#thinkingSwitch()}. */
    default boolean thinkingSwitch() {
        return false;
    }

    int vocabSize();

    /** Positions per slot: prompt plus generated tokens must fit. */
    int slotContext();

    /** Slots (sequences decoded together): the most choices ({@code n}) one request may ask for. */
    int slots();
}
