package ai.llmref.llama;

/** A GBNF grammar that llama.cpp could not parse. */
public class GrammarException extends LlamaException {
    private static final long serialVersionUID = 1L;

    public GrammarException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }

    public GrammarException(String nativeFunction, String message, Throwable cause) {
        super(nativeFunction, message, cause);
    }
}
