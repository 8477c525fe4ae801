package ai.llmref.llama;

/** The tokens would not fit the context (or the sequence's share of it). */
public class ContextOverflowException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    public ContextOverflowException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }
}
