package ai.llmref.llama;

/** A model file that is missing, unreadable, not GGUF, or has an impossible header; refused before llama.cpp sees it. */
public class InvalidModelFileException extends LlamaException {
    private static final long serialVersionUID = 1L;

    public InvalidModelFileException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }

    public InvalidModelFileException(String nativeFunction, String message, Throwable cause) {
        super(nativeFunction, message, cause);
    }
}
