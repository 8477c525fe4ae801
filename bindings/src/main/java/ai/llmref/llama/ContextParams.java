package ai.llmref.llama;

/**
 * How to create a context. Validated here; limits that depend on the model or the build are
 * checked when the context is created.
 *
 * @param contextSize   KV cache size in tokens across all sequences; 0 = the model's training context
 * @param batchSize     most tokens one {@link LlamaContext#decode} may carry
 * @param ubatchSize    physical micro-batch size ({@code <= batchSize})
 * @param sequences     parallel sequences (slots) the context holds, {@code n_seq_max}
 * @param threads       threads for single-token generation
 * @param threadsBatch  threads for prompt / batch processing
 * @param flashAttention flash attention policy
 * @param typeK         K cache element type
 * @param typeV         V cache element type (quantized types need flash attention)
 * @param embeddings    compute embeddings (pooled per sequence unless pooling is NONE)
 * @param pooling       embedding pooling
 * @param unifiedKv     one KV buffer shared by all sequences (else each gets contextSize/sequences)
 */
public record ContextParams(int contextSize, int batchSize, int ubatchSize, int sequences, int threads,
                            int threadsBatch, FlashAttention flashAttention, KvCacheType typeK,
                            KvCacheType typeV, boolean embeddings, Pooling pooling, boolean unifiedKv) {

    public enum FlashAttention {
        AUTO(-1), DISABLED(0), ENABLED(1);
        final int nativeValue;
        FlashAttention(int v) {
            nativeValue = v;
        }
    }

    /**
     * KV cache element types llama.cpp accepts. The quantized ones store blocks of 32 values, so a
     * model's attention head size must be a multiple of 32 for them (llama.cpp refuses the context
     * otherwise), and a quantized V cache needs flash attention.
     */
    public enum KvCacheType {
        F32(0), F16(1), BF16(30), Q8_0(8), Q4_0(2), Q4_1(3), IQ4_NL(20), Q5_0(6), Q5_1(7);
        final int ggmlType;
        KvCacheType(int t) {
            ggmlType = t;
        }

        /** ggml's name of the type, as llama.cpp's logs and options spell it: {@code f16}, {@code q8_0} ... */
        public String ggmlName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }

        /** Block-quantized (not F32, F16 or BF16). */
        public boolean quantized() {
            return this != F32 && this != F16 && this != BF16;
        }
    }

    public enum Pooling {
        UNSPECIFIED(-1), NONE(0), MEAN(1), CLS(2), LAST(3), RANK(4);
        final int nativeValue;
        Pooling(int v) {
            nativeValue = v;
        }
    }

    public static final int MAX_CONTEXT = 1 << 24;

    public ContextParams {
        require(contextSize >= 0 && contextSize <= MAX_CONTEXT, "contextSize", contextSize, "0 (model default) to " + MAX_CONTEXT);
        require(batchSize >= 1 && batchSize <= MAX_CONTEXT, "batchSize", batchSize, "1 to " + MAX_CONTEXT);
        require(ubatchSize >= 1 && ubatchSize <= batchSize, "ubatchSize", ubatchSize, "1 to batchSize (" + batchSize + ")");
        require(sequences >= 1 && sequences <= 256, "sequences", sequences, "1 to 256");
        require(threads >= 1 && threads <= 1024, "threads", threads, "1 to 1024");
        require(threadsBatch >= 1 && threadsBatch <= 1024, "threadsBatch", threadsBatch, "1 to 1024");
        if (flashAttention == null || typeK == null || typeV == null || pooling == null) {
            throw new IllegalArgumentException("flashAttention, typeK, typeV and pooling must not be null");
        }
        if (typeV.quantized() && flashAttention == FlashAttention.DISABLED) {
            throw new IllegalArgumentException("typeV " + typeV + " is quantized, which needs flash attention (AUTO or ENABLED), got DISABLED");
        }
    }

    private static void require(boolean ok, String name, int value, String range) {
        if (!ok) {
            throw new IllegalArgumentException(name + " must be " + range + ", got " + value);
        }
    }

    /** One sequence, the model's context length, batch 2048 / ubatch 512, one thread per core. */
    public static ContextParams defaults() {
        int cores = Math.max(1, Runtime.getRuntime().availableProcessors());
        return new ContextParams(0, 2048, 512, 1, cores, cores, FlashAttention.AUTO, KvCacheType.F16,
                KvCacheType.F16, false, Pooling.UNSPECIFIED, false);
    }

    public ContextParams withContextSize(int n) {
        return new ContextParams(n, batchSize, ubatchSize, sequences, threads, threadsBatch, flashAttention, typeK, typeV, embeddings, pooling, unifiedKv);
    }

    public ContextParams withBatch(int batch, int ubatch) {
        return new ContextParams(contextSize, batch, ubatch, sequences, threads, threadsBatch, flashAttention, typeK, typeV, embeddings, pooling, unifiedKv);
    }

    public ContextParams withSequences(int n) {
        return new ContextParams(contextSize, batchSize, ubatchSize, n, threads, threadsBatch, flashAttention, typeK, typeV, embeddings, pooling, unifiedKv);
    }

    public ContextParams withThreads(int gen, int batch) {
        return new ContextParams(contextSize, batchSize, ubatchSize, sequences, gen, batch, flashAttention, typeK, typeV, embeddings, pooling, unifiedKv);
    }

    public ContextParams withFlashAttention(FlashAttention fa) {
        return new ContextParams(contextSize, batchSize, ubatchSize, sequences, threads, threadsBatch, fa, typeK, typeV, embeddings, pooling, unifiedKv);
    }

    public ContextParams withKvCacheTypes(KvCacheType k, KvCacheType v) {
        return new ContextParams(contextSize, batchSize, ubatchSize, sequences, threads, threadsBatch, flashAttention, k, v, embeddings, pooling, unifiedKv);
    }

    public ContextParams withEmbeddings(Pooling p) {
        return new ContextParams(contextSize, batchSize, ubatchSize, sequences, threads, threadsBatch, flashAttention, typeK, typeV, true, p, unifiedKv);
    }

    public ContextParams withUnifiedKv(boolean unified) {
        return new ContextParams(contextSize, batchSize, ubatchSize, sequences, threads, threadsBatch, flashAttention, typeK, typeV, embeddings, pooling, unified);
    }
}
