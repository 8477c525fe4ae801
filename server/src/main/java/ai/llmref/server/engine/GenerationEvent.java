package ai.llmref.server.engine;

/** What a request's stream carries, in order: text pieces, then exactly one {@link Done} or {@link Failed}. */
public sealed interface GenerationEvent {

    /** Newly generated text (never splits a UTF-8 character; may be empty while a stop string is pending). */
    record Text(String text) implements GenerationEvent {}

    /** The end, with counts and timings. */
    record Done(FinishReason reason, int promptTokens, int completionTokens, int cachedPromptTokens,
                Timings timings) implements GenerationEvent {}

    /** The request could not be completed. */
    record Failed(EngineException error) implements GenerationEvent {}

    /** Per-request timings in nanoseconds (queue wait, prefill, decode) for logs and metrics. */
    record Timings(long queuedNanos, long prefillNanos, long decodeNanos, long firstTokenNanos) {}
}
