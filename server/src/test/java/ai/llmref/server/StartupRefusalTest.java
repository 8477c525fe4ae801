package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real process (Main) refusing to start: each refusal is one line naming the key, exit status
 * 2, no stack trace, and the process never serves (docs/server.md, "Configuration").
 */
class StartupRefusalTest {

    @TempDir Path dir;

    /** Runs Main with {@code args} (after {@code --model}) and {@code env}; it must exit within 60 s. */
    static ServerOutput.Exit run(Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(ServerOutput.command("ai.llmref.server.Main", "--model", TestServer.model().toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().keySet().removeIf(k -> k.startsWith("LLMREF_"));
        pb.environment().putAll(env);
        return ServerOutput.runToExit(pb);
    }

    /**
     * One line, exit status 2, nothing served, no stack trace on stderr (a JSON log record may carry
     * one in its "error" field, as Helidon's record of a failed listener does).
     */
    static void refused(ServerOutput.Exit e, String line) {
        assertThat(e.status()).as(e.all()).isEqualTo(2);
        assertThat(e.lines()).as(e.all()).contains(line);
        assertThat(e.lines()).as(e.all()).noneMatch(l -> l.startsWith("\tat ") || l.startsWith("Exception in thread")
                || l.startsWith("Caused by"));
        assertThat(e.all()).doesNotContain("llama_model_load").doesNotContain("listening on");
    }

    @Test
    void aPortInUseStopsStartUpNamingItsKey() throws Exception {
        try (ServerSocket taken = new ServerSocket()) {
            taken.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            int port = taken.getLocalPort();
            // before: Helidon logged the failed listener, the server logged "listening on 127.0.0.1:-1"
            // and the process exited with status 0, as if it had been asked to stop
            refused(run(Map.of("LLMREF_SERVER_ADMIN__PORT", "0"), "--port", Integer.toString(port), "--host", "127.0.0.1"),
                    "invalid configuration: server.port cannot be listened on at 127.0.0.1 (Address already in use), got '" + port + "'");
            refused(run(Map.of("LLMREF_SERVER_ADMIN__PORT", Integer.toString(port)), "--port", "0", "--host", "127.0.0.1"),
                    "invalid configuration: server.admin-port cannot be listened on at 127.0.0.1 (Address already in use), got '"
                            + port + "'");
        }
    }

    @Test
    void aHostThatDoesNotResolveStopsStartUpInOneLine() throws Exception {
        // before: Helidon's IllegalArgumentException (UnknownHostException) as a stack trace, status 1
        refused(run(Map.of("LLMREF_SERVER_ADMIN__PORT", "0"), "--port", "0", "--host", "no-such-host.invalid"),
                "invalid configuration: server.host must be an IP address or a host name this node resolves, got 'no-such-host.invalid'");
    }

    @Test
    void anOtlpEndpointTheExporterRefusesStopsStartUpInOneLine() throws Exception {
        // before: the exporter's IllegalArgumentException as a stack trace, status 1
        for (String endpoint : List.of("otel-collector:4318", "grpc://otel-collector:4317", "http://")) {
            refused(run(Map.of("LLMREF_TRACING_ENABLED", "true", "LLMREF_TRACING_OTLP__ENDPOINT", endpoint,
                            "LLMREF_SERVER_ADMIN__PORT", "0"), "--port", "0", "--host", "127.0.0.1"),
                    "invalid configuration: tracing.otlp-endpoint must be an http:// or https:// URL with a host, "
                            + "e.g. http://otel-collector:4318, got '" + endpoint + "'");
        }
    }
}
