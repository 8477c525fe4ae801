package ai.llmref.llama;

import ai.llmref.bindings.ffi.llama_token_data;
import ai.llmref.bindings.ffi.llama_token_data_array;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;

/** Where the test data lives. A missing model fails the test: it never skips. */
final class TestModels {
    /** The first maximum of {@code logits}, as llama.cpp's greedy sampler picks it (the tests' plain reference). */
    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * llama.cpp's candidates array over {@code logits} in token order (ids 0.., p 0, nothing
     * selected, not sorted), as {@code llama_sampler_sample} fills it, in {@code arena}; its data
     * is {@code llama_token_data_array.data(array)}, {@code logits.length} entries.
     */
    static MemorySegment candidates(Arena arena, float[] logits) {
        MemorySegment data = llama_token_data.allocateArray(logits.length, arena);
        for (int i = 0; i < logits.length; i++) {
            MemorySegment el = llama_token_data.asSlice(data, i);
            llama_token_data.id(el, i);
            llama_token_data.logit(el, logits[i]);
            llama_token_data.p(el, 0f);
        }
        MemorySegment array = llama_token_data_array.allocate(arena);
        llama_token_data_array.data(array, data);
        llama_token_data_array.size(array, logits.length);
        llama_token_data_array.selected(array, -1);
        llama_token_data_array.sorted(array, false);
        return array;
    }

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

    /**
     * stories260K with its attention read as 2 heads of 32 (1 KV head) instead of 8 of 8: the same
     * tensors (64 query rows, 32 key and value rows per layer) under three changed numbers, written
     * to {@code dir}. Its output is no longer a story, but it is a valid model whose heads a
     * quantized KV cache (blocks of 32 values) fits, as a real model's 64 or 128 do.
     */
    static Path wideHeads(Path dir) throws IOException {
        Map<String, Integer> changes = new HashMap<>(Map.of("llama.attention.head_count", 2,
                "llama.attention.head_count_kv", 1, "llama.rope.dimension_count", 32));
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(stories())).order(ByteOrder.LITTLE_ENDIAN);
        b.position(16);
        long keys = b.getLong();
        for (long k = 0; k < keys; k++) {
            String key = ggufString(b);
            int type = b.getInt();
            Integer value = changes.remove(key);
            if (value != null) {
                if (type != 4) {
                    throw new IllegalStateException(key + " is not a uint32 in " + stories());
                }
                b.putInt(b.position(), value);
            }
            skipGgufValue(b, type);
        }
        if (!changes.isEmpty()) {
            throw new IllegalStateException("keys not found in " + stories() + ": " + changes.keySet());
        }
        return Files.write(dir.resolve("stories260K-wide-heads.gguf"), b.array());
    }

    private static String ggufString(ByteBuffer b) {
        byte[] s = new byte[Math.toIntExact(b.getLong())];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    /** GGUF value types: 0-7 and 10-12 fixed-size numbers and bool, 8 string, 9 array (element type, count). */
    private static void skipGgufValue(ByteBuffer b, int type) {
        int[] sizes = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        switch (type) {
            case 8 -> ggufString(b);
            case 9 -> {
                int element = b.getInt();
                long n = b.getLong();
                for (long i = 0; i < n; i++) {
                    skipGgufValue(b, element);
                }
            }
            default -> b.position(b.position() + sizes[type]);
        }
    }
}
