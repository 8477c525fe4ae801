package ai.llmref.server.engine;

import ai.llmref.llama.Sampler;
import java.util.List;
import java.util.Map;

/**
 * Sampling settings of one request, already validated by the HTTP layer. {@code temperature 0}
 * (or no seed-able randomness wanted) means greedy.
 */
public record SamplingParams(float temperature, float topP, int topK, float minP, Long seed,
                             float presencePenalty, float frequencyPenalty, Map<Integer, Float> logitBias,
                             String grammar, LlamaStages llama) {

    /** OpenAI's settings alone (llama.cpp's other stages at their defaults). */
    public SamplingParams(float temperature, float topP, int topK, float minP, Long seed, float presencePenalty, float frequencyPenalty,
            Map<Integer, Float> logitBias, String grammar) {
        this(temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty, logitBias, grammar, LlamaStages.DEFAULT);
    }

    /**
     * llama.cpp's sampling settings beyond OpenAI's, as llama-server takes them (its names and
     * defaults, which leave each stage out): {@code repeat_penalty} over {@code repeat_last_n}
     * tokens (also the window of the presence and frequency penalties), {@code typical_p},
     * {@code top_n_sigma}, XTC, DRY, Mirostat, the dynamic temperature, {@code min_keep}, the
     * stages' order ({@code samplers}) and {@code ignore_eos}.
     */
    public record LlamaStages(float repeatPenalty, int penaltyWindow, float typicalP, float topNSigma, float xtcProbability,
                              float xtcThreshold, float dryMultiplier, float dryBase, int dryAllowedLength, int dryWindow,
                              List<String> dryBreakers, int mirostat, float mirostatTau, float mirostatEta, float dynatempRange,
                              float dynatempExponent, int minKeep, List<Sampler.Stage> order, boolean ignoreEos) {
        public static final LlamaStages DEFAULT = new LlamaStages(1f, 64, 1f, -1f, 0f, 0.1f, 0f, 1.75f, 2, 64,
                List.of("\n", ":", "\"", "*"), 0, 5f, 0.1f, 0f, 1f, 0, Sampler.DEFAULT_ORDER, false);

        public LlamaStages {
            dryBreakers = List.copyOf(dryBreakers);
            order = List.copyOf(order);
        }

        /**
         * How many of the prompt's last tokens the history of llama.cpp's repetition penalty and
         * DRY holds (llama-server feeds them the prompt): 0 without those stages.
         */
        public int promptWindow() {
            return Math.max(repeatPenalty != 1f ? penaltyWindow : 0, dryMultiplier > 0 ? dryWindow : 0);
        }
    }

    /** The same sampling with {@code grammar} enforced. */
    public SamplingParams withGrammar(String grammar) {
        return new SamplingParams(temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty, logitBias, grammar, llama);
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
        return new SamplingParams(temperature, topP, topK, minP, newSeed, presencePenalty, frequencyPenalty, logitBias, grammar, llama);
    }

    public boolean isGreedy() {
        return temperature < GREEDY_BELOW;
    }
}
