package ai.llmref.server.engine;

import java.util.Map;

/**
 * Sampling settings of one request, already validated by the HTTP layer. {@code temperature 0}
 * (or no seed-able randomness wanted) means greedy.
 */
public record SamplingParams(float temperature, float topP, int topK, float minP, Long seed,
                             float presencePenalty, float frequencyPenalty, Map<Integer, Float> logitBias,
                             String grammar) {

    /** The same sampling with {@code grammar} enforced. */
    public SamplingParams withGrammar(String grammar) {
        return new SamplingParams(temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty, logitBias, grammar);
    }

    public static SamplingParams greedy() {
        return new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(), null);
    }

    /**
     * Below this temperature sampling is greedy: llama.cpp divides the logits by the temperature,
     * and a tiny one overflows them to infinity, whose softmax is NaN (its sampler then falls back
     * to the last token of the vocabulary, or asserts in a debug build).
     */
    public static final float GREEDY_BELOW = 1e-6f;

    /** The same settings with another seed. */
    public SamplingParams withSeed(long newSeed) {
        return new SamplingParams(temperature, topP, topK, minP, newSeed, presencePenalty, frequencyPenalty, logitBias, grammar);
    }

    public boolean isGreedy() {
        return temperature < GREEDY_BELOW;
    }
}
