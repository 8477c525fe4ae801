package ai.llmref.server;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.engine.Engine;
import ai.llmref.server.http.ApiException;
import ai.llmref.server.http.PromptModel;
import ai.llmref.server.structured.ToolCalls;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * The loaded model as the HTTP layer sees it: tokenizer, chat template, engine.
 *
 * <p>HTTP handlers run on virtual threads, and a virtual thread inside a native call holds its
 * carrier: llama.cpp's tokenizer takes about 90 ms for a 1 MiB text with a 128k vocabulary
 * (docs/architecture.md), during which that carrier runs no other request's code. So a
 * tokenization of more than {@value #INLINE_CHARS} characters, and a detokenization of more than
 * {@value #INLINE_TOKENS} tokens, called from a virtual thread, runs on one of a few platform
 * threads of its own ({@code llmref-tokenizer-N}) while the virtual thread waits unmounted;
 * shorter ones (well under a millisecond) run in place.
 */
public final class ServedModel implements PromptModel, AutoCloseable {
    static final int INLINE_CHARS = 16 * 1024;
    static final int INLINE_TOKENS = 4096;

    private final String id;
    private final LlamaModel model;
    private final Vocabulary vocab;
    private final Engine engine;
    private final ChatRenderer chatRenderer;
    private final long loadedAt = System.currentTimeMillis() / 1000;
    private final ai.llmref.llama.ModelInfo info;
    private final ExecutorService nativeWork;
    private final AtomicLong offloaded = new AtomicLong();

    ServedModel(String id, LlamaModel model, Engine engine, ChatRenderer chatRenderer) {
        this.id = id;
        this.model = model;
        this.vocab = model.vocabulary();
        this.engine = engine;
        this.chatRenderer = chatRenderer;
        this.info = model.info();
        AtomicInteger n = new AtomicInteger();
        this.nativeWork = Executors.newFixedThreadPool(Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors() / 2)),
                r -> Thread.ofPlatform().daemon().name("llmref-tokenizer-" + n.incrementAndGet()).unstarted(r));
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
        return offPinning(text.length() > INLINE_CHARS, () -> vocab.tokenize(text, true, chat));
    }

    /** The model's recommended sampling in use (model.sampling-defaults), set once at load; null: none. */
    private volatile com.fasterxml.jackson.databind.node.ObjectNode samplingDefaults;

    @Override
    public com.fasterxml.jackson.databind.node.ObjectNode samplingDefaults() {
        return samplingDefaults;
    }

    /** Sets the recommended sampling (at load, before the model serves). */
    void samplingDefaults(com.fasterxml.jackson.databind.node.ObjectNode defaults) {
        this.samplingDefaults = defaults;
    }

    @Override
    public int bosToAdd() {
        return vocab.addsBos() ? vocab.bos() : -1;
    }

    @Override
    public int fimRepository() {
        return vocab.fimRepository();
    }

    @Override
    public int fimSeparator() {
        return vocab.fimSeparator();
    }

    @Override
    public int[] fillInTheMiddle() {
        return vocab.fillInTheMiddle();
    }

    @Override
    public int[] tokenizePlain(String text) {
        return tokenizeRaw(text, false);
    }

    @Override
    public int[] tokenizeInside(String text) {
        return vocab.tokenize(text, false, true);
    }

    /** Tokens of text, special-token text not parsed (a prefix or suffix around an insertion). */
    public int[] tokenizeRaw(String text, boolean addSpecial) {
        return tokenizeRaw(text, addSpecial, false);
    }

    /** Tokens of text as /tokenize returns them: special-token text parsed when asked (llama-server's default). */
    public int[] tokenizeRaw(String text, boolean addSpecial, boolean parseSpecial) {
        return offPinning(text.length() > INLINE_CHARS, () -> vocab.tokenize(text, addSpecial, parseSpecial));
    }

    /** A token's bytes as its piece shows them (special tokens as their text): a part of a UTF-8 character for byte tokens. */
    public byte[] pieceBytes(int token) {
        return vocab.tokenBytes(token, true);
    }

    @Override
    public String detokenize(int[] tokens) {
        return offPinning(tokens.length > INLINE_TOKENS, () -> vocab.detokenize(tokens, false, false));
    }

    /** Text of tokens as /detokenize gives it: special tokens as their text (llama-server's), so that /tokenize's ids come back as sent. */
    public String detokenizeShown(int[] tokens) {
        return offPinning(tokens.length > INLINE_TOKENS, () -> vocab.detokenize(tokens, false, true));
    }

    /** How many calls ran on the tokenizer threads instead of the calling virtual thread. */
    long offloadedCalls() {
        return offloaded.get();
    }

    /** Runs a long native call on a platform thread when called from a virtual thread (see class comment). */
    private <T> T offPinning(boolean longCall, Supplier<T> work) {
        if (!longCall || !Thread.currentThread().isVirtual()) {
            return work.get();
        }
        offloaded.incrementAndGet();
        Future<T> f = nativeWork.submit(work::get);
        try {
            return f.get();
        } catch (InterruptedException e) {
            f.cancel(false); // a native call cannot be stopped; its result is dropped
            Thread.currentThread().interrupt();
            throw new CancellationException("interrupted while waiting for the tokenizer");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(e.getCause()); // a Supplier throws nothing checked
        }
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
    public boolean reasoningTags() {
        return chatRenderer.reasoningTags();
    }

    @Override
    public boolean harmony() {
        return chatRenderer.harmony();
    }

    @Override
    public boolean thinkingSwitch() {
        return chatRenderer.thinkingSwitch();
    }

    @Override
    public ai.llmref.server.structured.ReasoningStream.Tags thinkTags() {
        return chatRenderer.thinkTags();
    }

    @Override
    public ai.llmref.server.structured.MarkerFilter.Envelope envelope() {
        return chatRenderer.envelope();
    }

    @Override
    public String renderChat(List<Message> messages, List<Map<String, Object>> tools) {
        return renderChat(messages, tools, Map.of());
    }

    @Override
    public String renderChat(List<Message> messages, List<Map<String, Object>> tools, Map<String, Object> variables) {
        try {
            return chatRenderer.render(messages, tools, variables);
        } catch (ai.llmref.server.chat.ChatTemplateException | ai.llmref.llama.LlamaException e) {
            // Template errors (raise_exception in the template, e.g. unsupported role order; llama.cpp's
            // built-in renderer refusing a message) are the client's to fix. Any other exception is a
            // bug of the renderer: a 500 with its stack trace in the log, not a 400 that blames the
            // client and shows it the exception's text.
            throw new ApiException(400, "invalid_request_error", "chat_template_error", "messages",
                    "the model's chat template rejected the messages: "
                            + (e instanceof ai.llmref.llama.LlamaException le ? le.detail() : e.getMessage()));
        }
    }

    /** The chat template the server renders with (the model's, the operator's, or ChatML), or null where none is kept. */
    public String chatTemplateSource() {
        return chatRenderer.source();
    }

    /** The text of the model's BOS (EOS) token, "" where it has none. */
    public String bosText() {
        return ChatRendering.text(vocab, vocab.bos());
    }

    public String eosText() {
        return ChatRendering.text(vocab, vocab.eos());
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
        nativeWork.shutdown();
        boolean idle = ai.llmref.server.engine.Waits.pastInterrupts(java.time.Duration.ofSeconds(10),
                nanos -> nativeWork.awaitTermination(nanos, java.util.concurrent.TimeUnit.NANOSECONDS));
        engine.close(); // waits likewise
        if (idle) {
            model.close();
        } else {
            // freeing the vocabulary under a running tokenization would crash the process
            System.getLogger(ServedModel.class.getName()).log(System.Logger.Level.WARNING,
                    "a tokenization still runs after 10 s: the model stays loaded until the process exits");
        }
    }
}
