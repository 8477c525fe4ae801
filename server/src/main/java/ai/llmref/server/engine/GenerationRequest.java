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
 */
public record GenerationRequest(int[] prompt, int maxTokens, List<String> stop, SamplingParams sampling) {}
