package ai.llmref.server.http;

/**
 * An error answered in OpenAI's envelope: {@code {"error":{"message","type","code","param"}}}.
 * Messages are written for clients: they never carry paths, stack traces or prompt text.
 */
public final class ApiException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int status;
    private final String type;
    private final String code;
    private final String param;

    public ApiException(int status, String type, String code, String param, String message) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.code = code;
        this.param = param;
    }

    public static ApiException badRequest(String param, String message) {
        return new ApiException(400, "invalid_request_error", "invalid_request", param, message);
    }

    public static ApiException badValue(String param, String message) {
        return new ApiException(400, "invalid_request_error", "invalid_value", param, message);
    }

    public static ApiException unsupported(String param, String message) {
        return new ApiException(400, "invalid_request_error", "unsupported_parameter", param, message);
    }

    /**
     * Runs a parse whose errors name another API's fields (the chat parser's, for the Responses and
     * Messages APIs): its refusals come out with param and message passed through {@code rename}.
     */
    static <T> T renaming(java.util.function.UnaryOperator<String> rename, java.util.function.Supplier<T> parse) {
        try {
            return parse.get();
        } catch (ApiException e) {
            throw new ApiException(e.status(), e.type(), e.code(), e.param() == null ? null : rename.apply(e.param()),
                    rename.apply(e.getMessage()));
        }
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public String code() {
        return code;
    }

    public String param() {
        return param;
    }
}
