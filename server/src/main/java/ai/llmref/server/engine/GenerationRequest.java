package ai.llmref.server.engine;

import java.util.List;

/**
 * One generation as the engine sees it: tokens in, limits, sampling. Built and validated by the
 * HTTP layer.
 *
 * @param prompt    prompt tokens (BOS included where the model wants it)
 * @param maxTokens most tokens to generate (0: the prompt alone is decoded, e.g. for its log-probabilities)
 * @param stop      stop strings (the output ends before the first one found; it is not returned)
 * @param sampling  sampling settings
 * @param logprobs  -1: no log-probabilities; 0..20: each token's, with this many most likely alternatives
 * @param promptLogprobs also each prompt token's (but the first), given the tokens before it; the
 *                  whole prompt is decoded then (no prefix reuse), in chunks of at most
 *                  {@code Engine.PROMPT_LOGPROBS_CHUNK} tokens
 * @param late      a grammar that applies from a point of the output on, or null (it needs a sampling
 *                  without a grammar of its own)
 * @param budget    a cap on a reasoning model's reasoning, or null
 * @param preserved control tokens the output shows as their text, and a grammar may pick (a
 *                  tool-call format's markers, such as Mistral's {@code [TOOL_CALLS]}, as
 *                  llama-server's preserved tokens); other control tokens show as nothing
 * @param lines     limits on the output's lines ({@code /infill}'s {@code n_indent}, {@code t_max_predict_ms}), or null
 */
public record GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling, int logprobs,
                                boolean promptLogprobs, LateGrammar late, ReasoningBudget budget, int[] preserved, LineLimits lines) {
    public static final int MAX_TOP_LOGPROBS = 20;

    public GenerationRequest {
        if (logprobs < -1 || logprobs > MAX_TOP_LOGPROBS) {
            throw new IllegalArgumentException("logprobs must be -1..." + MAX_TOP_LOGPROBS + ", got " + logprobs);
        }
        if (promptLogprobs && logprobs < 0) {
            throw new IllegalArgumentException("promptLogprobs needs logprobs >= 0");
        }
        if (late != null && sampling.grammar() != null) {
            throw new IllegalArgumentException("a late grammar cannot follow a grammar that applies from the start");
        }
        preserved = preserved == null ? new int[0] : preserved.clone();
        lines = lines == null || !lines.any() ? null : lines;
    }

    /** Without preserved tokens or line limits. */
    public GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling, int logprobs,
                             boolean promptLogprobs, LateGrammar late, ReasoningBudget budget) {
        this(prompt, maxTokens, stop, sampling, logprobs, promptLogprobs, late, budget, null, null);
    }

    /** Whether the output shows {@code token} as its text although it is a control token. */
    public boolean preserves(int token) {
        for (int t : preserved) {
            if (t == token) {
                return true;
            }
        }
        return false;
    }

    /** Without a reasoning budget. */
    public GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling, int logprobs,
                             boolean promptLogprobs, LateGrammar late) {
        this(prompt, maxTokens, stop, sampling, logprobs, promptLogprobs, late, null);
    }

    /** Without a late grammar. */
    public GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling, int logprobs,
                             boolean promptLogprobs) {
        this(prompt, maxTokens, stop, sampling, logprobs, promptLogprobs, null);
    }

    /** Without the prompt's log-probabilities. */
    public GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling, int logprobs) {
        this(prompt, maxTokens, stop, sampling, logprobs, false, null);
    }

    /** Without log-probabilities. */
    public GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling) {
        this(prompt, maxTokens, stop, sampling, -1, false, null);
    }
}
