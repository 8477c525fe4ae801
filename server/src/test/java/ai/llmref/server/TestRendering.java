package ai.llmref.server;

import ai.llmref.llama.LlamaModel;
import ai.llmref.server.config.ServerConfig;
import ai.llmref.server.http.PromptModel;

/** The server's chat rendering (template, tool-call format, reasoning tags, envelope) for tests in other packages. */
public final class TestRendering {
    private TestRendering() {}

    /** As the server binds {@code source} to {@code model} by default: Jinja, reasoning split off where the template writes it. */
    public static PromptModel.ChatRenderer of(String source, LlamaModel model) {
        return ChatRendering.of(source, model, ServerConfig.ChatTemplateMode.JINJA);
    }
}
