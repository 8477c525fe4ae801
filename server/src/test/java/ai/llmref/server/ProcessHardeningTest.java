package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real server process, as deployed: its whole filesystem read-only except its temp dir (a
 * private mount namespace: {@code unshare -m}, then a read-only remount of {@code /}, so this holds
 * for root too), a read-only config file and API-key file, HOME and the working directory
 * unwritable, and logging at its most verbose (every logger at ALL, llama.cpp's included). It is
 * driven through every route, with right, wrong and missing keys and with bad inputs, all carrying
 * a marker prompt. Then: it served; the native libraries were extracted into the temp dir; the
 * config and key files are unchanged; and nothing it printed (stdout, stderr: every log record and
 * whatever native code wrote) holds a key or the marker.
 */
class ProcessHardeningTest {
    static final String KEY = "sk-hardening-4f1e2d3c4b5a6978";
    static final String WRONG_KEY = "sk-wrongkey-0a1b2c3d4e5f6071";
    static final String MARKER = "Quokka-marmalade-7731";

    @TempDir Path dir;

    @Test
    void servesFromAReadOnlyFilesystemAndLogsNoSecretAtTheMostVerboseLevel() throws Exception {
        Path etc = Files.createDirectory(dir.resolve("etc"));
        Path keys = Files.writeString(etc.resolve("api-keys"), "# the only key\n" + KEY + "\n");
        Path logging = Files.writeString(etc.resolve("logging.properties"), """
                handlers=java.util.logging.ConsoleHandler
                .level=ALL
                java.util.logging.ConsoleHandler.level=ALL
                llama.cpp.level=ALL
                """);
        Path config = Files.writeString(etc.resolve("config.yaml"), """
                server:
                  port: 0
                  admin-port: 0
                  shutdown-grace-ms: 2000
                model:
                  path: "%s"
                  id: stories260K
                engine:
                  slots: 2
                  slot-context: 256
                  threads: 2
                  threads-batch: 2
                limits:
                  max-tokens: 16
                  max-body-bytes: 65536
                auth:
                  api-keys-file: "%s"
                """.formatted(TestServer.model(), keys));
        for (Path p : List.of(keys, logging, config)) {
            Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("r--r--r--"));
        }
        Files.setPosixFilePermissions(etc, PosixFilePermissions.fromString("r-xr-xr-x"));
        Path home = Files.createDirectory(dir.resolve("home"));
        Path cwd = Files.createDirectory(dir.resolve("cwd"));
        Path tmp = Files.createDirectory(dir.resolve("tmp"));
        FileTime configTime = Files.getLastModifiedTime(config);
        FileTime keysTime = Files.getLastModifiedTime(keys);

        List<String> cmd = new ArrayList<>(List.of("unshare", "-m", "--propagation", "private", "sh", "-c",
                // tmp stays writable (its own bind mount); then /, and with it HOME, cwd and /tmp, and /dev/shm go read-only
                "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro / && mount -o remount,bind,ro /dev/shm && cd \"$2\" && shift 2 && exec \"$@\"",
                "sh", tmp.toString(), cwd.toString(),
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-XX:-UsePerfData", "-Djava.io.tmpdir=" + tmp,
                "-Djava.util.logging.config.file=" + logging, "-cp", System.getProperty("java.class.path"),
                "ai.llmref.server.Main", "--config", config.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("HOME", home.toString());
        Process p = pb.start();
        ServerOutput output = new ServerOutput(p);
        List<String> out = output.lines;
        try {
            int[] port;
            try {
                port = output.ports.get(60, TimeUnit.SECONDS);
                output.ready.get(60, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                throw new AssertionError("no ready server; its output:\n" + String.join("\n", out), e);
            }
            // the native libraries came from the class path into the temp dir, the only writable place
            try (Stream<Path> files = Files.walk(tmp)) {
                assertThat(files.map(f -> f.getFileName().toString())).anyMatch(n -> n.startsWith("libllama.so"));
            }
            exercise("http://127.0.0.1:" + port[0], "http://127.0.0.1:" + port[1]);
            p.toHandle().destroy(); // SIGTERM: drain and stop
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
            output.awaitEnd();
        } finally {
            p.destroyForcibly();
        }
        String all = String.join("\n", out);
        assertThat(p.exitValue()).as(all).isEqualTo(143);
        // verbose for real: FINE and finer records, llama.cpp's own lines, the access log
        assertThat(all).containsAnyOf("FINE:", "FINER:", "FINEST:").contains("llama_model_loader").contains("\"type\":\"access\"");
        List<String> secrets = List.of(KEY, KEY.substring(3, 20), WRONG_KEY, WRONG_KEY.substring(3, 20), MARKER, "Quokka", "marmalade");
        List<String> leaks = new ArrayList<>();
        for (int i = 0; i < out.size(); i++) {
            String line = out.get(i);
            if (secrets.stream().anyMatch(line::contains)) {
                leaks.add((i > 0 ? out.get(i - 1) + "\n" : "") + line);
            }
        }
        assertThat(leaks).as("output lines holding a key or the prompt").isEmpty();
        // read, never written; and nothing was left in HOME or the working directory
        assertThat(Files.readString(config)).contains("api-keys-file");
        assertThat(Files.getLastModifiedTime(config)).isEqualTo(configTime);
        assertThat(Files.readString(keys)).isEqualTo("# the only key\n" + KEY + "\n");
        assertThat(Files.getLastModifiedTime(keys)).isEqualTo(keysTime);
        try (Stream<Path> h = Files.list(home); Stream<Path> c = Files.list(cwd)) {
            assertThat(h).isEmpty();
            assertThat(c).isEmpty();
        }
        Files.setPosixFilePermissions(etc, PosixFilePermissions.fromString("rwxr-xr-x")); // so @TempDir can clean up
    }

    /** Every route with the right key, a wrong one and none, and bad requests; all carry the marker. */
    private static void exercise(String api, String admin) throws Exception {
        HttpClient http = HttpClient.newHttpClient();
        String[][] routes = {
                {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"" + MARKER + "\"}],\"max_tokens\":4}"},
                {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"" + MARKER + "\"}],\"max_tokens\":4,\"stream\":true}"},
                {"/v1/completions", "{\"prompt\":\"" + MARKER + "\",\"max_tokens\":4,\"stop\":[\"" + MARKER + "\"]}"},
                {"/v1/completions", "{\"prompt\":\"" + MARKER + "\",\"max_tokens\":4,\"stream\":true}"},
                {"/v1/embeddings", "{\"input\":[\"" + MARKER + "\",\"x\"]}"},
                {"/tokenize", "{\"content\":\"" + MARKER + "\",\"with_pieces\":true}"},
                {"/detokenize", "{\"tokens\":[1,2,3]}"},
                {"/v1/models", null},
                {"/v1/models/" + MARKER, null},
                {"/v1/nothing/" + MARKER, null},
                // refused: the marker sits in the part that is wrong
                {"/v1/chat/completions", "{\"messages\":[{\"role\":\"" + MARKER + "\",\"content\":\"" + MARKER + "\"}]}"},
                {"/v1/chat/completions", "{\"model\":\"" + MARKER + "\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"},
                {"/v1/completions", "{\"prompt\":\"" + MARKER + "\",\"max_tokens\":100000}"},
                {"/v1/completions", "{\"prompt\":\"" + MARKER + "\" \"" + MARKER + "\"}"},
                {"/v1/completions", "{\"prompt\":\"" + MARKER.repeat(4000) + "\"}"},
                {"/v1/completions", "{\"prompt\":\"x\",\"logit_bias\":{\"" + MARKER + "\":1}}"},
                {"/v1/completions", "{\"prompt\":\"x\",\"response_format\":{\"type\":\"" + MARKER + "\"}}"},
        };
        int served = 0;
        for (String[] r : routes) {
            for (String auth : new String[] {"Bearer " + KEY, "Bearer " + WRONG_KEY, null, "Basic " + KEY}) {
                HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(api + r[0]));
                if (auth != null) {
                    b.header("Authorization", auth);
                }
                if (r[1] != null) {
                    b.header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(r[1]));
                }
                HttpResponse<String> res = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
                if (auth == null || !auth.equals("Bearer " + KEY)) {
                    assertThat(res.statusCode()).as(r[0]).isEqualTo(401);
                } else {
                    assertThat(res.statusCode()).as(r[0] + " " + res.body()).isLessThan(500);
                    served += res.statusCode() == 200 ? 1 : 0;
                }
            }
        }
        assertThat(served).as("requests served with the key").isGreaterThanOrEqualTo(8);
        for (String probe : List.of("/health/started", "/health/ready", "/health/live", "/metrics")) {
            assertThat(http.send(HttpRequest.newBuilder(URI.create(admin + probe)).build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode()).as(probe).isEqualTo(200);
        }
    }
}
