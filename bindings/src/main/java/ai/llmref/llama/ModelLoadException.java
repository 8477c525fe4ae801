package ai.llmref.llama;

/** llama.cpp could not load a (valid-looking) model, or the load was cancelled. */
public class ModelLoadException extends LlamaException {
    private static final long serialVersionUID = 1L;

    public ModelLoadException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }

    public ModelLoadException(String nativeFunction, String message, Throwable cause) {
        super(nativeFunction, message, cause);
    }
}
