package ai.llmref.llama;

/** An input that would reach a native call is out of range (token id, position, sequence id, batch size...). */
public class InvalidInputException extends LlamaException {
    private static final long serialVersionUID = 1L;

    public InvalidInputException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }

    public InvalidInputException(String nativeFunction, String message, Throwable cause) {
        super(nativeFunction, message, cause);
    }
}
