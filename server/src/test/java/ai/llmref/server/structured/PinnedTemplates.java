package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Stream;

/** The chat templates of the pinned llama.cpp tree ({@code models/templates/*.jinja}), found through the native build's info. */
public final class PinnedTemplates {
    private static Map<String, Path> all;

    private PinnedTemplates() {}

    /** Every template by its file name without {@code .jinja}, in name order. */
    public static synchronized Map<String, Path> all() {
        if (all == null) {
            Path dir = dir();
            Map<String, Path> found = new TreeMap<>();
            try (Stream<Path> files = Files.list(dir)) {
                files.filter(f -> f.toString().endsWith(".jinja")).forEach(f -> found.put(f.getFileName().toString().replace(".jinja", ""), f));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            assertThat(found).as("the pinned tree's templates in %s", dir).hasSizeGreaterThan(50);
            all = found;
        }
        return all;
    }

    /** The source of the template named {@code name} (its file name without {@code .jinja}). */
    public static String read(String name) {
        Path p = all().get(name);
        assertThat(p).as("chat template %s of the pinned llama.cpp tree", name).isNotNull();
        try {
            return Files.readString(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Path dir() {
        String info = System.getProperty("native.build.info");
        assertThat(info).as("system property native.build.info (set by the server module's surefire config)").isNotBlank();
        Properties build = new Properties();
        try (InputStream in = new FileInputStream(info)) {
            build.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException("the native build info " + info + " is missing: build the native module first", e);
        }
        return Path.of(build.getProperty("llama.cpp.dir", ""), "models", "templates");
    }
}
