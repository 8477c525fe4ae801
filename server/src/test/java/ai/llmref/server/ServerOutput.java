package ai.llmref.server;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The output of a server process (Main) a test started: every line kept, the ports it listens on
 * and its readiness as futures, which fail once the process has ended without reaching them.
 */
final class ServerOutput {
    static final Pattern LISTENING = Pattern.compile("listening on [0-9.]+:(\\d+) \\(API\\), (\\d+) \\(health, metrics\\)");

    final List<String> lines = new CopyOnWriteArrayList<>();
    /** API port, then admin port. */
    final CompletableFuture<int[]> ports = new CompletableFuture<>();
    final CompletableFuture<Void> ready = new CompletableFuture<>();
    private final Thread reader;

    /** The command that runs the server's Main in a JVM of its own, with this test run's class path: {@code rest} follows the class path. */
    static List<String> command(String... rest) {
        List<String> cmd = new java.util.ArrayList<>(List.of(java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path")));
        cmd.addAll(List.of(rest));
        return cmd;
    }

    /** What a finished server process printed and its exit status. */
    record Exit(int status, List<String> lines, String all) {}

    /** Starts {@code pb} (stdout and stderr together) and waits for the process to exit, within 60 s. */
    static Exit runToExit(ProcessBuilder pb) throws Exception {
        Process p = pb.redirectErrorStream(true).start();
        ServerOutput out = new ServerOutput(p);
        try {
            org.assertj.core.api.Assertions.assertThat(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)).as("exited").isTrue();
            out.awaitEnd();
        } finally {
            p.destroyForcibly();
        }
        return new Exit(p.exitValue(), out.lines, out.all());
    }

    ServerOutput(Process process) {
        reader = Thread.ofVirtual().start(() -> read(process));
    }

    private void read(Process process) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                lines.add(line);
                Matcher m = LISTENING.matcher(line);
                if (m.find()) {
                    ports.complete(new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))});
                }
                if (line.contains("ready in")) {
                    ready.complete(null);
                }
            }
        } catch (IOException | RuntimeException e) {
            ports.completeExceptionally(e);
            ready.completeExceptionally(e);
        }
        ports.completeExceptionally(new AssertionError("the server exited before listening"));
        ready.completeExceptionally(new AssertionError("the server exited before it was ready"));
    }

    /** Waits (up to 10 s) until the process's output has been read to its end. */
    void awaitEnd() throws InterruptedException {
        reader.join(10_000);
    }

    String all() {
        return String.join("\n", lines);
    }
}
