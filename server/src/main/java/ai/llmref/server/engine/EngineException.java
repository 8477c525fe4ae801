package ai.llmref.server.engine;

/**
 * A request the engine cannot take or finish. {@link Kind} tells the HTTP layer which status to
 * answer with.
 */
public class EngineException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public enum Kind {
        /** The admission queue is full: 429 with Retry-After. */
        QUEUE_FULL,
        /** Prompt plus max_tokens cannot fit a slot's context: 400. */
        CONTEXT_LENGTH,
        /** Bad input that only the engine could see (e.g. grammar): 400. */
        INVALID_REQUEST,
        /** Not ready yet, or draining: 503. */
        UNAVAILABLE,
        /** Anything else: 500. */
        INTERNAL
    }

    private final Kind kind;

    public EngineException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public EngineException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
