package ai.llmref.llama;

/**
 * Root of every error the bindings raise. When a native call failed or was refused before it was
 * made, {@link #nativeFunction()} names the llama.cpp function and the message says which input
 * or condition was at fault.
 */
public class LlamaException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String nativeFunction;
    private final String detail;

    public LlamaException(String nativeFunction, String message) {
        this(nativeFunction, message, null);
    }

    public LlamaException(String nativeFunction, String message, Throwable cause) {
        super(nativeFunction == null ? message : nativeFunction + ": " + message, cause);
        this.nativeFunction = nativeFunction;
        this.detail = message;
    }

    /** The message without the native function's name: what a server may show its clients. */
    public String detail() {
        return detail;
    }

    /** The llama.cpp / ggml function concerned, or {@code null} when none is. */
    public String nativeFunction() {
        return nativeFunction;
    }
}
