package ai.llmref.server.engine;

import java.util.List;

/**
 * One generation as the engine sees it: tokens in, limits, sampling. Built and validated by the
 * HTTP layer.
 *
 * @param prompt    prompt tokens (BOS included where the model wants it)
 * @param maxTokens most tokens to generate
 * @param stop      stop strings (the output ends before the first one found; it is not returned)
 * @param sampling  sampling settings
 * @param logprobs  -1: no log-probabilities; 0..20: each token's, with this many most likely alternatives
 */
public record GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling, int logprobs) {
    public static final int MAX_TOP_LOGPROBS = 20;

    public GenerationRequest {
        if (logprobs < -1 || logprobs > MAX_TOP_LOGPROBS) {
            throw new IllegalArgumentException("logprobs must be -1..." + MAX_TOP_LOGPROBS + ", got " + logprobs);
        }
    }

    /** Without log-probabilities. */
    public GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling) {
        this(prompt, maxTokens, stop, sampling, -1);
    }
}
