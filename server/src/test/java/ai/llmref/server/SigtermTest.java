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
        List<String> cmd = ServerOutput.command("-Dserver.port=0", "-Dserver.admin-port=0", "-Dengine.slots=4", "-Dengine.slot-context=200",
                "-Dengine.threads=2", "-Dserver.shutdown-grace-ms=20000",
                "ai.llmref.server.Main", "--model", TestServer.model().toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        ServerOutput out = new ServerOutput(p);
        try {
            int[] port = out.ports.get(60, TimeUnit.SECONDS);
            out.ready.get(60, TimeUnit.SECONDS);
            // the positions llama.cpp gave each slot: 200 rounded up to a multiple of 256 (the line said 200)
            assertThat(out.all()).contains("4 slots of 256 positions");
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
                String first = TestServer.nextEvent(body);
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
            assertThat(refused.body()).contains("\"code\":\"unavailable\"").contains("shutting down"); // not "model_loading"
            assertThat(refused.headers().firstValue("retry-after")).isPresent();
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

    /**
     * SIGTERM with more work than the grace allows: when the grace is over every request still
     * running or queued gets an answer (a stream's error event, or 503 before any header) and its
     * access line, and the process exits. Before, the listeners stopped first: the handlers still
     * waiting were interrupted, streams broke off without an error event, and most requests never
     * wrote an access line.
     */
    @Test
    void sigtermPastTheGraceAnswersAndLogsWhatIsLeft() throws Exception {
        List<String> cmd = ServerOutput.command("-Dserver.port=0", "-Dserver.admin-port=0", "-Dengine.slots=2", "-Dengine.slot-context=4096",
                "-Dengine.threads=1", "-Dengine.threads-batch=1", "-Dserver.shutdown-grace-ms=1000",
                "ai.llmref.server.Main", "--model", TestServer.model().toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        ServerOutput out = new ServerOutput(p);
        try {
            int[] port = out.ports.get(60, TimeUnit.SECONDS);
            out.ready.get(60, TimeUnit.SECONDS);
            String api = "http://127.0.0.1:" + port[0];
            String admin = "http://127.0.0.1:" + port[1];
            HttpClient http = HttpClient.newHttpClient();
            // 3000 tokens each over a 4096-position slot: seconds per request on a CPU, far past the grace
            List<CompletableFuture<String>> answers = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                answers.add(http.sendAsync(HttpRequest.newBuilder(URI.create(api + "/v1/completions"))
                                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Once upon a time " + i
                                        + "\",\"max_tokens\":3000,\"stream\":" + (i % 2 == 0) + "}")).build(),
                        HttpResponse.BodyHandlers.ofString())
                        .handle((r, e) -> e != null ? "BROKEN " + e : r.statusCode() + " " + r.body()));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            String probe = "";
            while (!(probe.contains("\"slots_busy\":2") && probe.contains("\"queued\":4")) && System.nanoTime() < deadline) {
                probe = http.send(HttpRequest.newBuilder(URI.create(admin + "/health/ready")).build(),
                        HttpResponse.BodyHandlers.ofString()).body();
            }
            assertThat(probe).as("two running, four queued").contains("\"slots_busy\":2").contains("\"queued\":4");
            p.toHandle().destroy(); // SIGTERM
            for (int i = 0; i < answers.size(); i++) {
                String a = answers.get(i).get(30, TimeUnit.SECONDS);
                if (i % 2 == 0) { // streams: headers went out at once, so the end is an error event
                    assertThat(a).as("stream " + i).startsWith("200 ").doesNotContain("BROKEN")
                            .contains("data: {\"error\":{").contains("\"code\":\"unavailable\"");
                } else {
                    assertThat(a).as("answer " + i).startsWith("503 ").contains("\"code\":\"unavailable\"");
                }
            }
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("process exits").isTrue();
            assertThat(p.exitValue()).isEqualTo(143);
            out.awaitEnd();
            assertThat(out.lines.stream().filter(l -> l.contains("\"type\":\"access\"") && l.contains("\"route\":\"/v1/completions\"")))
                    .as(out.all()).hasSize(6);
            assertThat(out.all()).doesNotContain("unexpected error").doesNotContain("hs_err").contains("\"msg\":\"stopped\"");
        } finally {
            p.destroyForcibly();
        }
    }
}
