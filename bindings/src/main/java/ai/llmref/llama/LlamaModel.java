package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.*;

import ai.llmref.bindings.ffi.llama_model_params;
import ai.llmref.bindings.ffi.llama_progress_callback;
import ai.llmref.llama.internal.LogBridge;
import ai.llmref.llama.internal.Native;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A loaded model: weights, vocabulary, metadata. It may be shared between threads (tokenizing is
 * thread-safe in llama.cpp); contexts made from it belong to one thread each. Close it after its
 * contexts: {@link #close()} refuses while contexts made from it are open, and waits for calls in
 * progress on other threads (a tokenization, a context being made) to return before it frees the
 * model, so that none of them reads freed memory.
 */
public final class LlamaModel implements AutoCloseable {
    private static final Pattern OFFLOADED = Pattern.compile("offloaded (\\d+)/(\\d+) layers to GPU");
    private static final Pattern BUFFER = Pattern.compile("(\\S+) model buffer size =\\s+([0-9.]+) MiB");

    private volatile MemorySegment handle;
    private final MemorySegment vocabHandle;
    private final Path path;
    private final ModelPlacement placement;
    private final Vocabulary vocabulary;
    private final AtomicInteger openContexts = new AtomicInteger();
    /**
     * Held for reading by every native call that uses the model or its vocabulary ({@link #acquire}),
     * for writing by {@link #close()}: a model freed while another thread tokenizes or makes a
     * context from it would be read after it was freed (a crash, or a C++ exception through the C
     * API that ends the process).
     */
    private final ReentrantReadWriteLock use = new ReentrantReadWriteLock();

    private LlamaModel(MemorySegment handle, Path path, ModelPlacement placement) {
        this.handle = handle;
        this.path = path;
        this.placement = placement;
        this.vocabHandle = llama_model_get_vocab(handle);
        this.vocabulary = new Vocabulary(this, vocabHandle);
    }

    /** Validates the file (see {@link GgufFile}; the layer and expert counts unless vocabulary only) and loads it. */
    public static LlamaModel load(Path path, ModelParams params) {
        LlamaBackend.initialize();
        GgufFile.inspect(path, !params.vocabOnly());
        boolean[] cancelled = {false};
        List<String> lines = Collections.synchronizedList(new ArrayList<>());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mp = llama_model_default_params(arena);
            llama_model_params.n_gpu_layers(mp, params.gpuLayers());
            llama_model_params.main_gpu(mp, params.mainGpu());
            llama_model_params.split_mode(mp, params.splitMode().ordinal());
            float[] split = params.tensorSplit();
            if (split != null) {
                long devices = llama_max_devices();
                if (split.length > devices) {
                    throw new IllegalArgumentException("tensorSplit has " + split.length + " entries; this build supports at most "
                            + devices + " devices (llama_max_devices)");
                }
                MemorySegment shares = arena.allocate(ValueLayout.JAVA_FLOAT, devices); // zeroed: the devices not named get nothing
                MemorySegment.copy(split, 0, shares, ValueLayout.JAVA_FLOAT, 0, split.length);
                llama_model_params.tensor_split(mp, shares);
            }
            llama_model_params.load_mode(mp, params.loadMode().nativeValue);
            llama_model_params.vocab_only(mp, params.vocabOnly());
            if (params.progress() != null) {
                ModelParams.LoadProgress listener = params.progress();
                llama_model_params.progress_callback(mp, llama_progress_callback.allocate((fraction, user) -> {
                    try {
                        boolean go = listener.onProgress(fraction);
                        cancelled[0] |= !go;
                        return go;
                    } catch (Throwable t) {
                        cancelled[0] = true; // a failing listener cancels rather than crossing into C
                        return false;
                    }
                }, arena));
            }
            MemorySegment pathC = Native.cString(arena, path.toString(), "llama_model_load_from_file", "the model path");
            LogBridge.clearLastError();
            MemorySegment model = LogBridge.capturing(lines::add, () -> llama_model_load_from_file(pathC, mp));
            if (model.equals(MemorySegment.NULL)) {
                if (cancelled[0]) {
                    throw new ModelLoadException("llama_model_load_from_file", "loading " + path + " was cancelled");
                }
                throw new ModelLoadException("llama_model_load_from_file", "cannot load " + path + ": " + LogBridge.takeLastError());
            }
            return new LlamaModel(model, path, placementFrom(lines, llama_model_n_layer(model) + 1));
        }
    }

    /** Reads llama.cpp's load report; without an "offloaded" line (no GPU backend) nothing was offloaded. */
    static ModelPlacement placementFrom(List<String> lines, int offloadableLayers) {
        int offloaded = 0;
        int total = offloadableLayers;
        Map<String, Long> buffers = new LinkedHashMap<>();
        for (String line : lines) {
            Matcher m = OFFLOADED.matcher(line);
            if (m.find()) {
                offloaded = Integer.parseInt(m.group(1));
                total = Integer.parseInt(m.group(2));
            }
            Matcher b = BUFFER.matcher(line);
            if (b.find()) {
                buffers.merge(b.group(1), (long) (Double.parseDouble(b.group(2)) * 1024 * 1024), Long::sum);
            }
        }
        return new ModelPlacement(offloaded, total, Map.copyOf(buffers));
    }

    public Path path() {
        return path;
    }

    public Vocabulary vocabulary() {
        checkOpen();
        return vocabulary;
    }

    /** Where the weights went (GPU layers, buffer sizes per device). */
    public ModelPlacement placement() {
        return placement;
    }

    /** The model's facts; a vocabulary-only model ({@link ModelParams#withVocabOnly}) reports 0 layers and heads. */
    public ModelInfo info() {
        MemorySegment m = acquire();
        try {
            int layers = llama_model_n_layer(m);
            // llama.cpp aborts the process when asked for the heads of a model without layers
            return new ModelInfo(
                    metadata("general.architecture").orElse("unknown"),
                    description(m),
                    llama_model_n_params(m),
                    llama_model_size(m),
                    llama_model_n_ctx_train(m),
                    llama_model_n_embd(m),
                    layers,
                    layers > 0 ? llama_model_n_head(m) : 0,
                    layers > 0 ? llama_model_n_head_kv(m) : 0,
                    llama_vocab_n_tokens(vocabHandle),
                    chatTemplate());
        } finally {
            release();
        }
    }

    /** The model's default chat template ({@code tokenizer.chat_template}), if it has one. */
    public Optional<String> chatTemplate() {
        MemorySegment m = acquire();
        try {
            return Optional.ofNullable(Native.string(llama_model_chat_template(m, MemorySegment.NULL)));
        } finally {
            release();
        }
    }

    /** One GGUF key/value as llama.cpp renders it (arrays are summarised). */
    public Optional<String> metadata(String key) {
        MemorySegment m = acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = Native.cString(arena, key, "llama_model_meta_val_str", "the key");
            MemorySegment buf = arena.allocate(256);
            int n = llama_model_meta_val_str(m, k, buf, buf.byteSize());
            if (n < 0) {
                return Optional.empty();
            }
            if (n >= buf.byteSize()) {
                buf = arena.allocate(n + 1L);
                n = llama_model_meta_val_str(m, k, buf, buf.byteSize());
            }
            return Optional.of(Native.utf8(buf, n));
        } finally {
            release();
        }
    }

    /** Every GGUF key/value of the model, in file order. */
    public Map<String, String> metadata() {
        MemorySegment m = acquire();
        Map<String, String> out = new LinkedHashMap<>();
        try (Arena arena = Arena.ofConfined()) {
            int count = llama_model_meta_count(m);
            for (int i = 0; i < count; i++) {
                out.put(indexed(arena, m, i, true), indexed(arena, m, i, false));
            }
        } finally {
            release();
        }
        return Collections.unmodifiableMap(out);
    }

    private static String indexed(Arena arena, MemorySegment m, int i, boolean key) {
        long size = 256;
        while (true) {
            MemorySegment buf = arena.allocate(size);
            int n = key ? llama_model_meta_key_by_index(m, i, buf, size) : llama_model_meta_val_str_by_index(m, i, buf, size);
            if (n < 0) {
                return "";
            }
            if (n < size) {
                return Native.utf8(buf, n);
            }
            size = n + 1L;
        }
    }

    private static String description(MemorySegment m) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(256);
            int n = llama_model_desc(m, buf, buf.byteSize());
            return Native.utf8(buf, Math.min(Math.max(n, 0), 255));
        }
    }

    /** Creates a context for this model, owned by the calling thread. */
    public LlamaContext newContext(ContextParams params) {
        MemorySegment m = acquire();
        try {
            if (llama_model_n_layer(m) == 0) {
                throw new IllegalStateException("model " + path + " was loaded without its weights (vocabulary only): it cannot make a context");
            }
            return new LlamaContext(this, m, params); // counted open before the model is released
        } finally {
            release();
        }
    }

    /** The handle, or {@link IllegalStateException} once closed. Native calls use {@link #acquire} instead. */
    MemorySegment checkOpen() {
        MemorySegment h = handle;
        if (h == null) {
            throw new IllegalStateException("model " + path + " is closed");
        }
        return h;
    }

    /**
     * The handle, held open until {@link #release()}: {@link #close()} on another thread waits for
     * it. Every native call on the model or its vocabulary goes between the two (in a {@code try} /
     * {@code finally}). Re-entrant; never close the model while holding it (the close would wait for
     * itself).
     *
     * @throws IllegalStateException the model is closed
     */
    MemorySegment acquire() {
        use.readLock().lock();
        MemorySegment h = handle;
        if (h == null) {
            use.readLock().unlock();
            throw new IllegalStateException("model " + path + " is closed");
        }
        return h;
    }

    /** Ends an {@link #acquire()}. */
    void release() {
        use.readLock().unlock();
    }

    void contextOpened() {
        openContexts.incrementAndGet();
    }

    void contextClosed() {
        openContexts.decrementAndGet();
    }

    /**
     * Frees the model. Idempotent. Refused while contexts made from it are still open; waits for
     * calls in progress on other threads (tokenizing, making a context) to return first.
     *
     * @throws IllegalStateException contexts made from the model are open, or the calling thread is
     *                               inside a call on the model (a log handler of a tokenization)
     */
    @Override
    public void close() {
        if (use.getReadHoldCount() > 0) {
            throw new IllegalStateException("model " + path + " cannot be closed from inside a call on it");
        }
        use.writeLock().lock();
        try {
            if (handle == null) {
                return;
            }
            if (openContexts.get() > 0) {
                throw new IllegalStateException("model " + path + " still has " + openContexts.get()
                        + " open context(s); close them first");
            }
            MemorySegment h = handle;
            handle = null;
            llama_model_free(h);
        } finally {
            use.writeLock().unlock();
        }
    }

    public boolean isClosed() {
        return handle == null;
    }
}
