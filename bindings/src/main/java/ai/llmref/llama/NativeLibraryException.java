package ai.llmref.llama;

/** The native libraries could not be found or loaded; the message lists every path tried and the loader's error. */
public class NativeLibraryException extends LlamaException {
    private static final long serialVersionUID = 1L;

    public NativeLibraryException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }

    public NativeLibraryException(String nativeFunction, String message, Throwable cause) {
        super(nativeFunction, message, cause);
    }
}
