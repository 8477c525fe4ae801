package ai.llmref.server.engine;

import ai.llmref.llama.ContextParams;

/**
 * How the engine uses the model.
 *
 * @param slots          parallel sequences decoded together (llama.cpp n_seq_max)
 * @param slotContext    positions per slot (prompt + generated); the context is slots x this
 * @param batchSize      most tokens per decode step (n_batch)
 * @param ubatchSize     physical micro-batch (n_ubatch)
 * @param prefillChunk   most prompt tokens one slot may add to a decode step, so that long prompts
 *                       do not stall running streams
 * @param queueCapacity  requests waiting for a slot before 429
 * @param threads        threads for generation steps
 * @param threadsBatch   threads for prompt processing
 * @param flashAttention flash attention policy
 * @param embeddings     also serve /v1/embeddings (a second, embeddings-mode context)
 * @param samplingThreads threads that pick the tokens after a decode, the scheduler included
 *                       (1: the scheduler alone; see {@link ai.llmref.llama.SamplingPool})
 * @param emitDuringDecode make the text of a step's tokens while the next decode runs (worth it where
 *                       llama_decode returns before the device has finished, i.e. on a GPU): each
 *                       token but a request's first and last is handed out one step later, and a stop
 *                       string costs one extra decoded position
 * @param kvCacheTypeK   element type of the generation context's K cache
 * @param deviceSampling pick greedy tokens (with at most a logit bias) on the device that computes the
 *                       logits (llama.cpp's experimental backend sampling, {@code llama_set_sampler})
 * @param samplingWakeAhead wake the sampling pool's helpers while the device decodes, at the time the
 *                       step's decode is expected to end (from the last steps with as many tokens), so
 *                       that they are running when the rows come (see
 *                       {@link ai.llmref.llama.SamplingPool#wakeAhead}); costs their spinning for
 *                       about 0.15 ms a step, and needs a decode that returns before the device has
 *                       finished (a GPU)
 * @param kvCacheTypeV   element type of its V cache. The embeddings context keeps F16 for both: it
 *                       holds one input at a time (1/slots of the generation context's positions),
 *                       and its vectors stay those of {@code llama_get_embeddings_seq} at full precision
 */
public record EngineConfig(int slots, int slotContext, int batchSize, int ubatchSize, int prefillChunk,
                           int queueCapacity, int threads, int threadsBatch,
                           ContextParams.FlashAttention flashAttention, boolean embeddings, int samplingThreads,
                           boolean emitDuringDecode, ContextParams.KvCacheType kvCacheTypeK,
                           ContextParams.KvCacheType kvCacheTypeV, boolean deviceSampling, boolean samplingWakeAhead) {

    ContextParams contextParams() {
        return ContextParams.defaults()
                .withContextSize(slots * slotContext)
                .withBatch(batchSize, ubatchSize)
                .withSequences(slots)
                .withThreads(threads, threadsBatch)
                .withFlashAttention(flashAttention)
                .withKvCacheTypes(kvCacheTypeK, kvCacheTypeV);
    }

    /** The embeddings context: one input of up to {@code positions} tokens at a time (a slot's positions as llama.cpp sized them). */
    ContextParams embeddingParams(int positions) {
        return ContextParams.defaults()
                .withContextSize(positions)
                .withBatch(positions, positions) // pooled embeddings need the whole input in one ubatch
                .withSequences(1)
                .withThreads(threads, threadsBatch)
                .withFlashAttention(flashAttention)
                .withEmbeddings(ContextParams.Pooling.MEAN);
    }
}
