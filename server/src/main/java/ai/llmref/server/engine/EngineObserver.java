package ai.llmref.server.engine;

/** Hooks the scheduler calls (on its thread) for metrics; implementations must be quick and never throw. */
public interface EngineObserver {
    /** A slot produced a token {@code gapNanos} after its previous one (not called for the first token). */
    void tokenGenerated(long gapNanos);

    /** A request ended (also when cancelled); {@code done} carries its counts and timings. */
    void finished(GenerationEvent.Done done);

    /**
     * One scheduler step ended: {@code tokens} went into its batch, {@code promptTokens} of them
     * prompt tokens (the rest the generating slots' next tokens), and {@code outputs} of them were
     * sampled; the batch held {@code sequenceRuns} runs of consecutive sequence ids (with
     * per-sequence KV streams llama.cpp decodes at least one micro-batch per run, and a prompt
     * chunk's tokens after its first in micro-batches of their own), and llama.cpp ran its previous
     * compute graph again for {@code graphsReused} of its micro-batches instead of building one
     * ({@link ai.llmref.llama.LlamaContext#graphsReused}). Its time in four consecutive phases:
     * {@code schedule} (cancellations, admissions, building the batch), {@code decode} (llama_decode
     * until the device has finished), {@code sample} (every slot's next token) and {@code emit}
     * (detokenizing, stop strings, handing text to the requests). Of the decode phase,
     * {@code decodeCallNanos} went to the {@code llama_decode} call itself, before it returned (the
     * host's part: the batch split, the inputs, the graph's build or reuse, the launch; on a GPU the
     * rest is the wait for the device, on a CPU nearly all of it is the call).
     */
    record Step(int tokens, int promptTokens, int outputs, int sequenceRuns, int graphsReused, long scheduleNanos,
            long decodeNanos, long decodeCallNanos, long sampleNanos, long emitNanos) {
        /** The whole step: its four phases. */
        public long nanos() {
            return scheduleNanos + decodeNanos + sampleNanos + emitNanos;
        }

        /** {@code generation} for a step of generating slots' next tokens only, {@code prompt} for one with prompt tokens. */
        public String kind() {
            return promptTokens > 0 ? "prompt" : "generation";
        }
    }

    /** One scheduler step ended ({@link Step}). */
    default void stepCompleted(Step step) {}

    /**
     * A step's picks on the sampling pool ended: {@code rows} picked on the host (argmaxes and llama.cpp chains), in
     * {@code pickNanos} of picking summed over the threads; {@code helpers} threads besides the
     * scheduler took part, {@code helpersAhead} of them woken while the device still decoded, the
     * last of them starting {@code helperStartNanos} after the work was handed out (see
     * {@link ai.llmref.llama.SamplingPool}). Called only for steps with such rows.
     */
    default void samplingCompleted(int rows, int helpers, int helpersAhead, long pickNanos, long helperStartNanos) {}

    /** A request's cached prompt prefix was copied from another free slot into the lowest free one. */
    default void prefixCopied() {}

    /**
     * A greedy chain was attached to a slot's sequence for sampling on the device
     * ({@code engine.device-sampling}); each attach makes llama.cpp reserve its compute buffers again.
     */
    default void deviceSamplerAttached() {}

    /** A request's reasoning took its budget: the engine closes the reasoning in the model's place. */
    default void reasoningBudgetSpent() {}

    EngineObserver NONE = new EngineObserver() {
        @Override
        public void tokenGenerated(long gapNanos) {}

        @Override
        public void finished(GenerationEvent.Done done) {}
    };
}
