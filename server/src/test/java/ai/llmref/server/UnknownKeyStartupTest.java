package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real process (Main) given misspelled keys in its file, its environment and its system
 * properties: it exits with status 2 and names each key, where it came from and the key meant,
 * before it loads the model or listens.
 */
class UnknownKeyStartupTest {

    @Test
    void misspelledKeysStopTheProcessBeforeItListens(@TempDir Path dir) throws Exception {
        Path config = dir.resolve("config.yaml");
        Files.writeString(config, """
                server:
                  port: 0
                  admin-port: 0
                engine:
                  slots: 2
                  prefil-chunk: 8
                """);
        List<String> cmd = ServerOutput.command("-Dengine.threads=2", "-Dengine.sampling-wake-ahaed=false",
                "ai.llmref.server.Main", "--config", config.toString(), "--model", TestServer.model().toString());
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("LLMREF_LIMITS_MAX_TOKENS", "16");
        ServerOutput.Exit exit = ServerOutput.runToExit(pb);
        String all = exit.all();
        assertThat(exit.status()).as(all).isEqualTo(2);
        assertThat(exit.lines()).as(all).contains(
                "invalid configuration: engine.sampling-wake-ahaed (from system property -Dengine.sampling-wake-ahaed) "
                        + "is not a known key; did you mean engine.sampling-wake-ahead?",
                "invalid configuration: limits.max.tokens (from environment variable LLMREF_LIMITS_MAX_TOKENS) "
                        + "is not a known key; did you mean limits.max-tokens (LLMREF_LIMITS_MAX__TOKENS)?",
                "invalid configuration: engine.prefil-chunk (from file " + config + ") is not a known key; "
                        + "did you mean engine.prefill-chunk?");
        assertThat(all).as("never listened, never loaded").doesNotContain("listening on").doesNotContain("llama_model_load");
    }
}
