package ai.llmref.server.http;

import ai.llmref.server.observe.AccessLog;
import ai.llmref.server.observe.ServerMetrics;
import io.helidon.http.HeaderNames;
import io.helidon.webserver.http.Filter;
import io.helidon.webserver.http.FilterChain;
import io.helidon.webserver.http.RoutingRequest;
import io.helidon.webserver.http.RoutingResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * {@code Authorization: Bearer <key>} (or {@code x-api-key: <key>}, as Anthropic's clients send it)
 * on every API route when keys are configured. Keys are
 * compared as SHA-256 digests with {@link MessageDigest#isEqual} against every configured key,
 * so timing reveals neither which key nor how much of it matched. Keys are never logged: the
 * request's access line names the key that let it in by its {@link KeyId}, the first 16 hex
 * digits of its SHA-256 digest ({@code printf %s "$KEY" | sha256sum | cut -c1-16}).
 */
public final class AuthFilter implements Filter {
    /**
     * The metrics and access-log route of refused requests: their paths are not used (they bound
     * no cardinality and may carry whatever an unauthenticated client sent).
     */
    public static final String ROUTE = "(unauthenticated)";
    private static final io.helidon.http.HeaderName X_API_KEY = HeaderNames.create("x-api-key");

    /** Which configured key let a request in, registered in the request's context for its access line. */
    public record KeyId(String value) {}

    private final List<byte[]> digests;
    private final List<KeyId> ids;
    private final OpenAiService errors;
    private final ServerMetrics metrics;

    public AuthFilter(List<String> keys, OpenAiService errors, ServerMetrics metrics) {
        this.digests = keys.stream().map(AuthFilter::sha256).toList();
        this.ids = digests.stream().map(d -> new KeyId(HexFormat.of().formatHex(d, 0, 8))).toList();
        this.errors = errors;
        this.metrics = metrics;
    }

    @Override
    public void filter(FilterChain chain, RoutingRequest req, RoutingResponse res) {
        String header = req.headers().first(HeaderNames.AUTHORIZATION).orElse("");
        // Anthropic's clients send the key as x-api-key
        String apiKey = req.headers().first(X_API_KEY).orElse("");
        int matched = -1;
        String key = header.regionMatches(true, 0, "Bearer ", 0, 7) ? header.substring(7).trim() : apiKey.isEmpty() ? null : apiKey.trim();
        if (key != null) {
            byte[] presented = sha256(key);
            for (int i = 0; i < digests.size(); i++) {
                matched = MessageDigest.isEqual(digests.get(i), presented) ? i : matched; // no early exit
            }
        }
        if (matched >= 0) {
            req.context().register(ids.get(matched));
            chain.proceed();
            return;
        }
        // not the path: before authentication it is anyone's text (ids, tokens, junk), so it stays out of the log
        AccessLog.Entry entry = RequestIdFilter.refusal(req, ROUTE, "invalid_api_key");
        res.header(HeaderNames.WWW_AUTHENTICATE, "Bearer");
        errors.sendError(res, new ApiException(401, "authentication_error", "invalid_api_key", null,
                header.isEmpty() && apiKey.isEmpty() ? "missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>')"
                        : "invalid API key"));
        metrics.refused(entry, 401);
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
