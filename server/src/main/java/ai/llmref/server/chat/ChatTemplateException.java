package ai.llmref.server.chat;

/**
 * A chat template could not be compiled or refused to render: a syntax error, a
 * {@code raise_exception(...)} in the template (its message is this exception's message), a
 * construct or helper the renderer does not support, or a safety limit (output size, work).
 * The server answers 400 for render-time failures: the request's conversation is what the
 * template rejected.
 */
public final class ChatTemplateException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
