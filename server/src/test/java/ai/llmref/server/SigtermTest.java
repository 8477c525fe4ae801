package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The real process gets SIGTERM while several streams run: readiness goes down, new requests get
 * 503, the streams finish, native resources are freed and the process exits.
 */
class SigtermTest {

    @Test
    void sigtermDrainsRunningStreamsThenExits() throws Exception {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "-Dserver.port=0", "-Dserver.admin-port=0", "-Dengine.slots=4", "-Dengine.slot-context=256",
                "-Dengine.threads=2", "-Dserver.shutdown-grace-ms=20000",
                "ai.llmref.server.Main", "--model", TestServer.model().toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        ServerOutput out = new ServerOutput(p);
        try {
            int[] port = out.ports.get(60, TimeUnit.SECONDS);
            out.ready.get(60, TimeUnit.SECONDS);
            String api = "http://127.0.0.1:" + port[0];
            String admin = "http://127.0.0.1:" + port[1];
            HttpClient http = HttpClient.newHttpClient();
            List<CompletableFuture<String>> streams = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                HttpResponse<InputStream> r = http.send(HttpRequest.newBuilder(URI.create(api + "/v1/completions"))
                        .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Once upon a time " + i
                                + "\",\"max_tokens\":200,\"temperature\":0.9,\"seed\":" + i + ",\"stream\":true}")).build(),
                        HttpResponse.BodyHandlers.ofInputStream());
                assertThat(r.statusCode()).isEqualTo(200);
                BufferedReader body = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8));
                String first = body.readLine();
                assertThat(first).startsWith("data: ");
                streams.add(CompletableFuture.supplyAsync(() -> {
                    StringBuilder all = new StringBuilder(first).append('\n');
                    try (body) {
                        String l;
                        while ((l = body.readLine()) != null) {
                            all.append(l).append('\n');
                        }
                    } catch (Exception e) {
                        all.append("BROKEN ").append(e);
                    }
                    return all.toString();
                }));
            }
            p.toHandle().destroy(); // SIGTERM (Process.destroy() would also close our end of its output)
            // while draining: readiness down, new work refused with 503
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            int readyStatus = 200;
            while (readyStatus == 200 && System.nanoTime() < deadline) {
                readyStatus = http.send(HttpRequest.newBuilder(URI.create(admin + "/health/ready")).build(),
                        HttpResponse.BodyHandlers.discarding()).statusCode();
            }
            assertThat(readyStatus).isEqualTo(503);
            HttpResponse<String> refused = http.send(HttpRequest.newBuilder(URI.create(api + "/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"late\",\"max_tokens\":2}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(refused.statusCode()).isEqualTo(503);
            for (CompletableFuture<String> s : streams) {
                String body = s.get(30, TimeUnit.SECONDS);
                assertThat(body).doesNotContain("BROKEN").contains("\"finish_reason\":\"");
                assertThat(body.strip()).endsWith("data: [DONE]"); // each stream ran to its end
            }
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("process exits within the grace period").isTrue();
            assertThat(p.exitValue()).as("terminated by SIGTERM, not by a crash").isEqualTo(143);
            out.awaitEnd();
            assertThat(out.all()).contains("\"msg\":\"stopped\"").doesNotContain("SIGSEGV").doesNotContain("hs_err");
        } finally {
            p.destroyForcibly();
        }
    }
}
