package ai.llmref.server.http;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;

/** What an error message must not show a client: stack frames, class and package names, file paths. */
public final class LeakMarkers {
    private LeakMarkers() {}

    // ("at ai." is not listed: an abbreviated echo of client text ends in "..." and can form it; "ai.llmref" covers frames)
    public static final List<String> INTERNALS = List.of("Exception", "\tat ", "ai.llmref", "com.fasterxml",
            "io.helidon", "com.hubspot", "java.lang", "java.util", "java.io", "/work/", "/root/", "/tmp/", "/usr/", ".java:",
            ".gguf", "MemorySegment", "llama_", "ReadFeature", "ALLOW_", "jinjava");

    /** Fails when {@code message} holds a marker that the client's own {@code input} did not bring. */
    public static void assertNoLeak(String message, String input) {
        for (String marker : INTERNALS) {
            if (!input.contains(marker)) {
                assertThat(message).as("error message leaks '%s'", marker).doesNotContain(marker);
            }
        }
    }
}
