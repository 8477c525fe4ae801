package ai.llmref.server;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.engine.Engine;
import ai.llmref.server.http.ApiException;
import ai.llmref.server.http.PromptModel;
import ai.llmref.server.structured.ToolCalls;
import java.util.List;
import java.util.Map;

/** The loaded model as the HTTP layer sees it: tokenizer, chat template, engine. */
public final class ServedModel implements PromptModel, AutoCloseable {
    private final String id;
    private final LlamaModel model;
    private final Vocabulary vocab;
    private final Engine engine;
    private final ChatRenderer chatRenderer;
    private final long loadedAt = System.currentTimeMillis() / 1000;
    private final ai.llmref.llama.ModelInfo info;

    ServedModel(String id, LlamaModel model, Engine engine, ChatRenderer chatRenderer) {
        this.id = id;
        this.model = model;
        this.vocab = model.vocabulary();
        this.engine = engine;
        this.chatRenderer = chatRenderer;
        this.info = model.info();
    }

    /** The model's facts, read once at load (safe to read after close). */
    public ai.llmref.llama.ModelInfo info() {
        return info;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public int[] tokenize(String text, boolean chat) {
        return vocab.tokenize(text, true, chat);
    }

    /** Tokens of text as /tokenize returns them: special-token text is not parsed. */
    public int[] tokenizeRaw(String text, boolean addSpecial) {
        return vocab.tokenize(text, addSpecial, false);
    }

    public String piece(int token) {
        return vocab.tokenToPiece(token, true);
    }

    @Override
    public String detokenize(int[] tokens) {
        return vocab.detokenize(tokens, false, false);
    }

    @Override
    public String renderChat(List<Message> messages) {
        return renderChat(messages, null);
    }

    @Override
    public ToolCalls.Format toolFormat() {
        return chatRenderer.toolFormat();
    }

    @Override
    public String renderChat(List<Message> messages, List<Map<String, Object>> tools) {
        try {
            return chatRenderer.render(messages, tools);
        } catch (RuntimeException e) {
            // Template errors (raise_exception in the template, e.g. unsupported role order) are the client's to fix.
            throw new ApiException(400, "invalid_request_error", "chat_template_error", "messages",
                    "the model's chat template rejected the messages: "
                            + (e instanceof ai.llmref.llama.LlamaException le ? le.detail() : e.getMessage()));
        }
    }

    @Override
    public int vocabSize() {
        return vocab.size();
    }

    @Override
    public int slots() {
        return engine.config().slots();
    }

    @Override
    public int slotContext() {
        return engine.slotContext();
    }

    public Engine engine() {
        return engine;
    }

    public LlamaModel model() {
        return model;
    }

    public long loadedAtEpochSeconds() {
        return loadedAt;
    }

    /** Stops the engine, then frees the model: native resources in order. */
    @Override
    public void close() {
        engine.close();
        model.close();
    }
}
