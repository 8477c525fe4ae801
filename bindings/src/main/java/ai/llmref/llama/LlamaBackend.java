package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.*;

import ai.llmref.llama.internal.LogBridge;
import ai.llmref.llama.internal.Native;
import ai.llmref.llama.internal.NativeLibraries;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/**
 * The process-wide llama.cpp runtime: native libraries, backend plugins, logging. Initialised once
 * ({@link #initialize()}), shut down once ({@link #shutdown()}); everything else in this package
 * calls {@link #initialize()} itself, so most code never touches this class.
 */
public final class LlamaBackend {
    private static volatile LlamaBackend instance;
    private static boolean shutDown;

    private final NativeLibraries.Loaded libraries;

    private LlamaBackend(NativeLibraries.Loaded libraries) {
        this.libraries = libraries;
    }

    /** Loads the libraries, routes logging to Java, loads backend plugins and inits llama.cpp. */
    public static synchronized LlamaBackend initialize() {
        if (shutDown) {
            throw new IllegalStateException("the llama.cpp backend was shut down; it cannot be initialised again in this process");
        }
        if (instance == null) {
            NativeLibraries.Loaded loaded = NativeLibraries.load();
            LogBridge.install();
            LlamaBackend backend = new LlamaBackend(loaded);
            backend.loadBackendPlugins(loaded.directory());
            llama_backend_init();
            instance = backend;
        }
        return instance;
    }

    /**
     * The backend if {@link #initialize()} has completed and it is not shut down, without waiting
     * for an initialisation in progress or starting one (for readers such as a metrics scrape).
     */
    public static java.util.Optional<LlamaBackend> ifInitialized() {
        return java.util.Optional.ofNullable(instance);
    }

    /** Frees llama.cpp's global state. Close every model and context first. */
    public static synchronized void shutdown() {
        if (instance != null && !shutDown) {
            llama_backend_free();
        }
        shutDown = true;
        instance = null;
    }

    /**
     * Loads every ggml backend plugin ({@code libggml-cpu*.so}, {@code libggml-cuda.so} ...) found in
     * {@code dir}. Plugins already loaded are kept. Returns the devices known afterwards.
     */
    public List<Device> loadBackendPlugins(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new NativeLibraryException("ggml_backend_load_all_from_path", dir + " is not a directory");
        }
        try (Arena arena = Arena.ofConfined()) {
            ggml_backend_load_all_from_path(Native.cString(arena, dir.toString(), "ggml_backend_load_all_from_path", "the plugin directory"));
        }
        return devices();
    }

    /** Every device the loaded backends expose, with their memory as of now. */
    public List<Device> devices() {
        List<Device> out = new ArrayList<>();
        long n = ggml_backend_dev_count();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(ValueLayout.JAVA_LONG);
            MemorySegment total = arena.allocate(ValueLayout.JAVA_LONG);
            for (long i = 0; i < n; i++) {
                MemorySegment dev = ggml_backend_dev_get(i);
                ggml_backend_dev_memory(dev, free, total);
                out.add(new Device(
                        Native.string(ggml_backend_dev_name(dev)),
                        Native.string(ggml_backend_dev_description(dev)),
                        Device.Type.of(ggml_backend_dev_type(dev)),
                        free.get(ValueLayout.JAVA_LONG, 0),
                        total.get(ValueLayout.JAVA_LONG, 0)));
            }
        }
        return List.copyOf(out);
    }

    /** True when at least one GPU device is available to offload to. */
    public boolean hasGpu() {
        return devices().stream().anyMatch(Device::isGpu);
    }

    /** Where the native libraries were loaded from. */
    public Path libraryDirectory() {
        return libraries.directory();
    }

    public String librarySource() {
        return libraries.source();
    }

    /** {@code build-info.properties} of the native build (tree, variant, flags), if present. */
    public Properties buildInfo() {
        Properties copy = new Properties();
        copy.putAll(libraries.buildInfo());
        return copy;
    }

    /** llama.cpp's own summary of CPU features and backends. */
    public String systemInfo() {
        return Native.string(llama_print_system_info());
    }

    public boolean supportsGpuOffload() {
        return llama_supports_gpu_offload();
    }

    public int maxParallelSequences() {
        return (int) llama_max_parallel_sequences();
    }
}
