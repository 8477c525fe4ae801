package ai.llmref.server.engine;

import java.util.List;

/** What a request's stream carries, in order: text pieces, then exactly one {@link Done} or {@link Failed}. */
public sealed interface GenerationEvent {

    /**
     * Newly generated text (never splits a UTF-8 character), with the log-probabilities of the
     * tokens it releases when the request asked for them (else empty), and how many generated
     * tokens were counted since the previous Text: a token whose text is held back (half a
     * character, a possible stop string) counts with the text that releases it.
     */
    record Text(String text, List<TokenLogprob> logprobs, int tokens) implements GenerationEvent {
        public Text(String text) {
            this(text, List.of(), 0);
        }
    }

    /**
     * The prompt's tokens with their log-probabilities (the first has none: NaN, no alternatives),
     * once, before any text; only for a request that asked for them.
     */
    record PromptLogprobs(List<TokenLogprob> tokens) implements GenerationEvent {}

    /** The end, with counts and timings; {@code stopSequence}: the stop string that ended it, or null. */
    record Done(FinishReason reason, int promptTokens, int completionTokens, int cachedPromptTokens,
                Timings timings, String stopSequence) implements GenerationEvent {
        public Done(FinishReason reason, int promptTokens, int completionTokens, int cachedPromptTokens, Timings timings) {
            this(reason, promptTokens, completionTokens, cachedPromptTokens, timings, null);
        }
    }

    /**
     * The request's {@link LateGrammar} applies from here on: it was found in the text sent so far,
     * and allows it. Sent at most once, right after the text in which the grammar's start was found.
     */
    record Constrained() implements GenerationEvent {}

    /** The request could not be completed. */
    record Failed(EngineException error) implements GenerationEvent {}

    /** Per-request timings in nanoseconds (queue wait, prefill, decode) for logs and metrics. */
    record Timings(long queuedNanos, long prefillNanos, long decodeNanos, long firstTokenNanos) {}
}
