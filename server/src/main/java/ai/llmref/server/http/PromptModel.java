package ai.llmref.server.http;

import java.util.List;

/** What request parsing needs from the served model: its id, tokenizer, chat template and limits. */
public interface PromptModel {

    /** A chat message after validation (text content only). */
    record Message(String role, String content) {}

    String id();

    /**
     * Tokens of a prompt. Chat prompts come from the template and may hold special-token text
     * (e.g. {@code <|im_start|>}), so they are parsed for special tokens; plain completions are not.
     */
    int[] tokenize(String text, boolean chat);

    /** The model's chat template applied to the messages, ending with the assistant's turn. */
    String renderChat(List<Message> messages);

    int vocabSize();

    /** Positions per slot: prompt plus generated tokens must fit. */
    int slotContext();
}
