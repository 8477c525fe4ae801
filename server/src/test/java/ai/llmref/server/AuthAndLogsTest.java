package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * API keys guard every API route (401 missing / 401 wrong / 200 right); probes and metrics stay
 * open; and nothing logged during the whole exchange contains a key or a prompt.
 */
class AuthAndLogsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String KEY = "sk-test-0123456789abcdef";
    static final String FILE_KEY = "sk-file-fedcba9876543210";
    static final String SECRET_PROMPT = "Zanzibar-pineapple-secret-prompt";

    @TempDir Path tmp;

    record Route(String method, String path, String body) {}

    static final List<Route> ROUTES = List.of(
            new Route("POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"" + SECRET_PROMPT + "\"}],\"max_tokens\":3}"),
            new Route("POST", "/v1/completions", "{\"prompt\":\"" + SECRET_PROMPT + "\",\"max_tokens\":3}"),
            new Route("POST", "/v1/embeddings", "{\"input\":\"" + SECRET_PROMPT + "\"}"),
            new Route("GET", "/v1/models", null),
            new Route("GET", "/v1/models/stories260K", null),
            new Route("POST", "/tokenize", "{\"content\":\"" + SECRET_PROMPT + "\"}"),
            new Route("POST", "/detokenize", "{\"tokens\":[1,2]}"));

    @Test
    void everyApiRouteNeedsAKeyAndNothingSecretIsLogged() throws Exception {
        Path keys = Files.writeString(tmp.resolve("api-keys"), "# keys\n" + FILE_KEY + "\n");
        keys.toFile().setReadOnly();
        List<String> logged = new ArrayList<>();
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord r) {
                logged.add(r.getLoggerName() + " " + r.getMessage() + " " + java.util.Arrays.toString(r.getParameters())
                        + (r.getThrown() == null ? "" : " " + r.getThrown()));
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        Logger root = Logger.getLogger("");
        java.util.logging.Level before = root.getLevel();
        root.setLevel(java.util.logging.Level.ALL);
        root.addHandler(capture);
        try (TestServer t = TestServer.start(Map.of("auth.api-keys", KEY, "auth.api-keys-file", keys.toString()))) {
            for (Route r : ROUTES) {
                HttpResponse<String> missing = send(t, r, null);
                assertThat(missing.statusCode()).as(r.path()).isEqualTo(401);
                assertThat(missing.headers().firstValue("www-authenticate")).hasValue("Bearer");
                JsonNode err = JSON.readTree(missing.body()).get("error");
                assertThat(err.get("type").asText()).isEqualTo("authentication_error");
                assertThat(send(t, r, "Bearer sk-wrong-0000000000000000").statusCode()).as(r.path()).isEqualTo(401);
                assertThat(send(t, r, "Basic " + KEY).statusCode()).as(r.path()).isEqualTo(401);
                assertThat(send(t, r, "Bearer " + KEY).statusCode()).as(r.path()).isEqualTo(200);
                assertThat(send(t, r, "Bearer " + FILE_KEY).statusCode()).as(r.path()).isEqualTo(200);
            }
            for (String probe : List.of("/health/started", "/health/ready", "/health/live", "/metrics")) {
                assertThat(t.getAdmin(probe).statusCode()).as(probe).isEqualTo(200);
            }
            assertThat(Files.readString(keys)).isEqualTo("# keys\n" + FILE_KEY + "\n"); // read, never written
        } finally {
            root.removeHandler(capture);
            root.setLevel(before);
        }
        assertThat(logged).isNotEmpty();
        assertThat(logged).anySatisfy(l -> assertThat(l).contains("\"type\":\"access\"").contains("\"status\":401"));
        assertThat(logged).anySatisfy(l -> assertThat(l).contains("\"route\":\"/v1/completions\"").contains("\"completion_tokens\":3"));
        // each admitted request's access line names the key that let it in by its digest's first 16 hex digits
        String keyId = "\"key_id\":\"" + sha256Prefix(KEY) + "\"";
        String fileKeyId = "\"key_id\":\"" + sha256Prefix(FILE_KEY) + "\"";
        List<String> access = logged.stream().filter(l -> l.contains("\"type\":\"access\"")).toList();
        for (Route r : ROUTES) {
            String route = "\"route\":\"" + (r.path().startsWith("/v1/models/") ? "/v1/models/{id}" : r.path()) + "\"";
            assertThat(access).as(r.path()).filteredOn(l -> l.contains(route) && l.contains("\"status\":200"))
                    .hasSize(2)
                    .anySatisfy(l -> assertThat(l).contains(keyId))
                    .anySatisfy(l -> assertThat(l).contains(fileKeyId));
        }
        assertThat(access).filteredOn(l -> l.contains("\"status\":401")).hasSize(3 * ROUTES.size())
                .noneSatisfy(l -> assertThat(l).contains("key_id"));
        assertThat(String.join("\n", logged)).doesNotContain(KEY).doesNotContain(FILE_KEY).doesNotContain("sk-wrong")
                .doesNotContain(SECRET_PROMPT).doesNotContain("Zanzibar");
    }

    @Test
    void tooShortKeysStopStartUp() {
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> TestServer.start(Map.of("auth.api-keys", "short")))
                .hasMessageContaining("API keys must be at least 16 printable ASCII characters");
    }

    static String sha256Prefix(String key) throws Exception {
        byte[] d = java.security.MessageDigest.getInstance("SHA-256").digest(key.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        return java.util.HexFormat.of().formatHex(d, 0, 8);
    }

    static HttpResponse<String> send(TestServer t, Route r, String authorization) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(t.base() + r.path()));
        if (authorization != null) {
            b.header("Authorization", authorization);
        }
        if (r.method().equals("POST")) {
            b.header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(r.body()));
        }
        return t.http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }
}
