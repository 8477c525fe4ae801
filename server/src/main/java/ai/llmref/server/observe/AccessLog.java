package ai.llmref.server.observe;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.lang.System.Logger.Level;
import java.time.Instant;

/**
 * One JSON line per request on the logger {@code ai.llmref.access}: route, status, tokens, timings,
 * trace id, the id of the API key that let the request in. Never the prompt, the output or any
 * header value (API keys stay out of logs).
 */
public final class AccessLog {
    private static final System.Logger LOG = System.getLogger("ai.llmref.access");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What a handler learned about its request, filled in as it goes. */
    private static final java.util.Set<String> METHODS =
            java.util.Set.of("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH");

    /**
     * A request's method as logged and traced where no route chose it: HTTP's own methods as they
     * are, any other as {@code _OTHER} (OpenTelemetry's name), since the client chose its text.
     */
    public static String method(String text) {
        return METHODS.contains(text) ? text : "_OTHER";
    }

    public static final class Entry {
        public final long startNanos = System.nanoTime();
        public final String method;
        public final String route;
        public String traceId;
        /** The request's id (X-Request-Id, the client's or a new one); null before it had one. */
        public String requestId;
        /** The API key that let the request in, as {@code AuthFilter.KeyId}; null without keys. */
        public String keyId;
        public int promptTokens = -1;
        public int completionTokens = -1;
        public int cachedTokens = -1;
        public long queueMillis = -1;
        public long ttftMillis = -1;
        public String finishReason;
        public String errorCode;
        public boolean stream;

        public Entry(String method, String route) {
            this.method = method;
            this.route = route;
        }
    }

    private AccessLog() {}

    public static void log(Entry e, int status) {
        if (!LOG.isLoggable(Level.INFO)) {
            return;
        }
        ObjectNode o = JSON.createObjectNode();
        o.put("ts", Instant.now().toString());
        o.put("type", "access");
        o.put("method", e.method);
        o.put("route", e.route);
        o.put("status", status);
        o.put("duration_ms", (System.nanoTime() - e.startNanos) / 1_000_000.0);
        if (e.requestId != null) {
            o.put("request_id", e.requestId);
        }
        if (e.traceId != null) {
            o.put("trace_id", e.traceId);
        }
        if (e.keyId != null) {
            o.put("key_id", e.keyId);
        }
        if (e.promptTokens >= 0) {
            o.put("prompt_tokens", e.promptTokens);
            o.put("completion_tokens", e.completionTokens);
            o.put("cached_tokens", e.cachedTokens);
            o.put("queue_ms", e.queueMillis);
            o.put("ttft_ms", e.ttftMillis);
            o.put("finish_reason", e.finishReason);
            o.put("stream", e.stream);
        }
        if (e.errorCode != null) {
            o.put("error_code", e.errorCode);
        }
        LOG.log(Level.INFO, o.toString());
    }
}
