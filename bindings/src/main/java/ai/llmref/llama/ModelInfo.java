package ai.llmref.llama;

import java.util.Optional;

/** What a loaded model is, from llama.cpp's accessors. */
public record ModelInfo(
        String architecture,
        String description,
        long parameterCount,
        long sizeBytes,
        int trainContextLength,
        int embeddingSize,
        int layerCount,
        int headCount,
        int headCountKv,
        int vocabSize,
        Optional<String> chatTemplate) {}
