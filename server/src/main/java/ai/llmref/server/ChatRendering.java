package ai.llmref.server;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.chat.ChatMessage;
import ai.llmref.server.chat.ChatTemplateRenderer;
import ai.llmref.server.http.PromptModel;
import java.util.List;
import java.util.function.Function;

/** Binds a chat template to a model's special tokens. */
final class ChatRendering {
    private ChatRendering() {}

    /**
     * The template sees the model's BOS/EOS text. When the tokenizer adds BOS by itself (the
     * prompt is tokenized with add_special), the template's {@code bos_token} renders empty, so
     * the prompt does not start with two BOS tokens.
     */
    static Function<List<PromptModel.Message>, String> of(String source, LlamaModel model) {
        Vocabulary v = model.vocabulary();
        String bos = v.bos() >= 0 ? v.tokenText(v.bos()) : "";
        String eos = v.eos() >= 0 ? v.tokenText(v.eos()) : "";
        ChatTemplateRenderer renderer = new ChatTemplateRenderer(source, v.addsBos() ? "" : bos, eos);
        return messages -> renderer.render(messages.stream().map(m -> ChatMessage.of(m.role(), m.content())).toList(), true, null);
    }
}
