package ai.llmref.llama;

/** llama_decode / llama_encode returned an error code. */
public class DecodeException extends LlamaException {
    private static final long serialVersionUID = 1L;

    public DecodeException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }

    public DecodeException(String nativeFunction, String message, Throwable cause) {
        super(nativeFunction, message, cause);
    }
}
