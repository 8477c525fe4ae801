package ai.llmref.llama;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/** Where the test data lives. A missing model fails the test: it never skips. */
final class TestModels {
    private TestModels() {}

    /** {@code ../shared/models/stories260K.gguf}, the real tiny Llama every native test uses. */
    static Path stories() {
        String p = System.getProperty("test.model");
        if (p == null) {
            throw new IllegalStateException("system property test.model is not set (Maven sets it to ../shared/models/stories260K.gguf)");
        }
        Path path = Path.of(p);
        if (!Files.isRegularFile(path)) {
            throw new IllegalStateException("the test model " + path + " is missing: these tests need the real model");
        }
        return path;
    }

    /** native/target/native-build.properties: where the verified llama.cpp source and libraries are. */
    static Properties nativeBuild() {
        Path file = Path.of(System.getProperty("native.build.info"));
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException("the native build info " + file + " is missing: build the native module first", e);
        }
        return p;
    }

    /** The pinned llama.cpp source tree (for its vocab test vectors and templates). */
    static Path llamaCppSource() {
        return Path.of(nativeBuild().getProperty("llama.cpp.dir"));
    }

    /**
     * Layers to offload in the native integration tests: 0 (CPU) unless the system property
     * {@code test.gpu-layers} says otherwise (scripts/gpu-verify.sh runs them with every layer on the GPU).
     */
    static int gpuLayers() {
        return Integer.getInteger("test.gpu-layers", 0);
    }

    /** The model parameters of the native integration tests. */
    static ModelParams params() {
        return ModelParams.defaults().withGpuLayers(gpuLayers());
    }

    /** A context small enough for stories260K, on the calling thread. */
    static ContextParams small(int sequences) {
        return ContextParams.defaults().withContextSize(256 * sequences).withBatch(256, 256).withSequences(sequences)
                .withThreads(2, 2);
    }
}
