package ai.llmref.server.engine;

/** Why a generation ended, as OpenAI names it. */
public enum FinishReason {
    /** End of generation token or a stop string. */
    STOP("stop"),
    /** max_tokens reached, or the slot's context is full. */
    LENGTH("length"),
    /** The client went away or the request was cancelled (never sent to a client). */
    CANCELLED("cancelled");

    private final String wire;

    FinishReason(String wire) {
        this.wire = wire;
    }

    public String wire() {
        return wire;
    }
}
