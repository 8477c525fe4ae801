package ai.llmref.llama;

/** A decode stopped because {@link LlamaContext#abort()} was called. */
public class DecodeAbortedException extends DecodeException {
    private static final long serialVersionUID = 1L;

    public DecodeAbortedException(String nativeFunction, String message) {
        super(nativeFunction, message);
    }
}
