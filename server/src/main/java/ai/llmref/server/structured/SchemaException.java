package ai.llmref.server.structured;

/**
 * A JSON schema this server cannot enforce exactly (an unsupported keyword, format or
 * combination) or one that is malformed. The message names the keyword and its JSON pointer in
 * the schema; the HTTP layer answers it as a 400.
 */
public final class SchemaException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String pointer;
    private final String keyword;

    public SchemaException(String pointer, String keyword, String message) {
        super(message + " (at " + (pointer.isEmpty() ? "#" : "#" + pointer) + ")", null, false, false);
        this.pointer = pointer;
        this.keyword = keyword;
    }

    /** JSON pointer (RFC 6901) of the offending schema within the request's schema; "" for the root. */
    public String pointer() {
        return pointer;
    }

    /** The keyword at fault, or null when the schema as a whole is at fault. */
    public String keyword() {
        return keyword;
    }
}
