package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.http.AuthFilter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** {@code server.warmup-requests}: the server sends itself requests after loading, before readiness. */
class WarmupTest {
    static final String KEY = "sk-warmup-0123456789abcdef";
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void warmUpRequestsPassAuthAndReadinessWaitsForThem() throws Exception {
        try (TestServer t = TestServer.start(Map.of("server.warmup-requests", "60", "auth.api-keys", KEY))) {
            assertThat(t.server.state()).isEqualTo(Server.State.READY);
            assertThat(t.server.warmupDone()).isEqualTo(60);
            String metrics = t.getAdmin("/metrics").body();
            // the generation routes take turns: each answered its share, none refused
            assertThat(Server.WARMUP_ROUTES).hasSize(5);
            for (String route : Server.WARMUP_ROUTES) {
                assertThat(count(metrics, route, "200")).as(route + "\n" + metrics).isEqualTo(12);
                assertThat(count(metrics, route, "401")).isZero();
            }
            assertThat(count(metrics, AuthFilter.ROUTE, "401")).isZero();
            assertThat(t.getAdmin("/health/ready").statusCode()).isEqualTo(200);
            // llama-server's /health on the API port, behind the key like every API route
            for (String path : new String[] {"/health", "/v1/health"}) {
                HttpResponse<String> ok = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(t.base() + path))
                        .header("Authorization", "Bearer " + KEY).build(), HttpResponse.BodyHandlers.ofString());
                assertThat(ok.statusCode()).as(ok.body()).isEqualTo(200);
                assertThat(JSON.readTree(ok.body()).get("status").asText()).isEqualTo("ok");
                assertThat(t.get(path).statusCode()).as("without the key").isEqualTo(401);
            }
        }
    }

    @Test
    void whileWarmingTheApiServesReadinessSaysSoAndDrainStopsTheWarmUp() throws Exception {
        // far more warm-up than the test waits for; started here, as TestServer.start waits for READY
        Server s = Server.start(TestServer.config(Map.of("server.warmup-requests", "100000")));
        HttpClient http = HttpClient.newHttpClient();
        try {
            long end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!(s.state() == Server.State.WARMING && s.warmupDone() >= 5) && System.nanoTime() < end) {
                Thread.sleep(20);
            }
            assertThat(s.state()).isEqualTo(Server.State.WARMING);
            HttpResponse<String> ready = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.adminPort() + "/health/ready")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(ready.statusCode()).isEqualTo(503);
            JsonNode body = JSON.readTree(ready.body());
            assertThat(body.get("status").asText()).isEqualTo("warming");
            assertThat(body.get("warmup_requests").asInt()).isEqualTo(100000);
            assertThat(body.get("warmup_done").asInt()).isBetween(5, 100000);
            HttpResponse<String> live = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.adminPort() + "/health/live")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(live.statusCode()).isEqualTo(200);
            // the API port's /health (llama-server's) follows readiness
            HttpResponse<String> apiHealth = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/health")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(apiHealth.statusCode()).isEqualTo(503);
            assertThat(JSON.readTree(apiHealth.body()).at("/error/message").asText()).contains("warming");
            HttpResponse<String> started = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.adminPort() + "/health/started")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(started.statusCode()).isEqualTo(200);
            HttpResponse<String> api = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/v1/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Once upon a time\",\"max_tokens\":3,\"temperature\":0}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(api.statusCode()).as(api.body()).isEqualTo(200);
        } finally {
            long t0 = System.nanoTime();
            s.drainAndStop(Duration.ofSeconds(10));
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).as("drain ends the warm-up").isLessThan(Duration.ofSeconds(10));
        }
        assertThat(s.warmupDone()).isLessThan(100000);
    }

    /** Each route is warmed streamed and whole, with bodies its parser accepts (the test above: all answered 200). */
    @Test
    void eachRouteIsWarmedStreamedAndWhole() throws Exception {
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (int i = 0; i < 2 * Server.WARMUP_ROUTES.size(); i++) {
            Server.WarmupRequest r = Server.warmupRequest(i);
            JsonNode body = JSON.readTree(r.body());
            assertThat(body.get("temperature").asInt()).isZero();
            seen.add(r.route() + " " + body.get("stream").asBoolean());
        }
        assertThat(seen).hasSize(2 * Server.WARMUP_ROUTES.size());
    }

    /** The llmref_requests_total sample for a route and status, 0 when absent. */
    private static double count(String metrics, String route, String status) {
        Matcher m = Pattern.compile("(?m)^llmref_requests_total\\{([^}]*)\\} ([0-9.eE+]+)$").matcher(metrics);
        double sum = 0;
        while (m.find()) {
            if (m.group(1).contains("route=\"" + route + "\"") && m.group(1).contains("status=\"" + status + "\"")) {
                sum += Double.parseDouble(m.group(2));
            }
        }
        return sum;
    }
}
