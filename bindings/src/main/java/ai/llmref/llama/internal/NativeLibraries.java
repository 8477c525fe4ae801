package ai.llmref.llama.internal;

import ai.llmref.llama.NativeLibraryException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;

/**
 * Finds and loads libggml-base, libggml and libllama, in that order.
 *
 * <p>Where from, first match wins: the directory in system property {@code llama.native.dir} or
 * environment variable {@code LLAMA_NATIVE_DIR} (used in place, so it works on a read-only root
 * filesystem); else the libraries packaged by the {@code native} module on the class path, under
 * {@code ai/llmref/native/linux-ARCH/VARIANT/}, copied to a fresh folder under
 * {@code java.io.tmpdir}. VARIANT is {@code llama.native.variant} / {@code LLAMA_NATIVE_VARIANT},
 * else {@code cuda} when a cuda jar is on the class path, else {@code cpu}.
 */
public final class NativeLibraries {

    public static final String DIR_PROPERTY = "llama.native.dir";
    public static final String DIR_ENV = "LLAMA_NATIVE_DIR";
    public static final String VARIANT_PROPERTY = "llama.native.variant";
    public static final String VARIANT_ENV = "LLAMA_NATIVE_VARIANT";
    static final String INDEX = "native-libs.properties";
    private static final List<String> CORE = List.of("libggml-base", "libggml", "libllama");

    /** Where the libraries were loaded from and how they were built. */
    public record Loaded(Path directory, String source, Properties buildInfo) {}

    private NativeLibraries() {}

    public static Loaded load() {
        List<String> tried = new ArrayList<>();
        String explicit = setting(DIR_PROPERTY, DIR_ENV);
        if (explicit != null) {
            Path dir = Path.of(explicit).toAbsolutePath();
            loadCore(dir, tried, DIR_PROPERTY + "/" + DIR_ENV);
            return new Loaded(dir, "directory " + dir, readBuildInfo(dir));
        }
        String platform = "linux-" + arch();
        String variant = setting(VARIANT_PROPERTY, VARIANT_ENV);
        if (variant == null) {
            variant = resourceExists(platform, "cuda") ? "cuda" : "cpu";
        }
        String base = "ai/llmref/native/" + platform + "/" + variant + "/";
        if (!resourceExists(platform, variant)) {
            tried.add("classpath:" + base + INDEX + ": not found (is the native jar for " + variant
                    + " on the class path?)");
            throw failure(tried);
        }
        Path dir = extract(base);
        loadCore(dir, tried, "classpath:" + base);
        return new Loaded(dir, "classpath:" + base + " (extracted to " + dir + ")", readBuildInfo(dir));
    }

    private static void loadCore(Path dir, List<String> tried, String origin) {
        if (!Files.isDirectory(dir)) {
            tried.add(dir + " (" + origin + "): not a directory");
            throw failure(tried);
        }
        for (String lib : CORE) {
            Path file = find(dir, lib);
            if (file == null) {
                tried.add(dir.resolve(lib + ".so") + " and " + dir.resolve(lib + ".so.0") + ": no such file");
                throw failure(tried);
            }
            try {
                System.load(file.toString());
                tried.add(file + ": loaded");
            } catch (UnsatisfiedLinkError e) {
                tried.add(file + ": " + e.getMessage());
                throw failure(tried);
            }
        }
    }

    /** The soname file (libllama.so.0) if present, else the plain name (libllama.so). */
    private static Path find(Path dir, String lib) {
        for (String candidate : List.of(lib + ".so.0", lib + ".so")) {
            Path p = dir.resolve(candidate);
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        return null;
    }

    private static Path extract(String base) {
        Properties index = resource(base + INDEX);
        try {
            Path dir = Files.createTempDirectory("ai-llmref-native-");
            dir.toFile().deleteOnExit();
            List<String> files = new ArrayList<>();
            files.addAll(List.of(index.getProperty("load", "").split(",")));
            files.addAll(List.of(index.getProperty("plugins", "").split(",")));
            files.add(INDEX);
            files.add("build-info.properties");
            for (String name : files) {
                if (name.isBlank()) {
                    continue;
                }
                try (InputStream in = NativeLibraries.class.getClassLoader().getResourceAsStream(base + name)) {
                    if (in == null) {
                        throw new NativeLibraryException(null, "the native jar lists " + name
                                + " in " + base + INDEX + " but does not contain it");
                    }
                    Path target = dir.resolve(name);
                    Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
                    target.toFile().deleteOnExit();
                }
            }
            return dir;
        } catch (IOException e) {
            throw new NativeLibraryException(null, "cannot extract the native libraries from the class path to "
                    + System.getProperty("java.io.tmpdir") + " (on a read-only filesystem set "
                    + DIR_PROPERTY + " or " + DIR_ENV + " to a directory holding them): " + e, e);
        }
    }

    private static boolean resourceExists(String platform, String variant) {
        return NativeLibraries.class.getClassLoader()
                .getResource("ai/llmref/native/" + platform + "/" + variant + "/" + INDEX) != null;
    }

    private static Properties resource(String name) {
        Properties p = new Properties();
        try (InputStream in = NativeLibraries.class.getClassLoader().getResourceAsStream(name)) {
            if (in != null) {
                p.load(in);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return p;
    }

    private static Properties readBuildInfo(Path dir) {
        Properties p = new Properties();
        Path file = dir.resolve("build-info.properties");
        if (!Files.isRegularFile(file)) {
            file = dir.resolveSibling("build-info.properties"); // a cache entry's lib/ folder
        }
        if (Files.isRegularFile(file)) {
            try (InputStream in = Files.newInputStream(file)) {
                p.load(in);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return p;
    }

    private static NativeLibraryException failure(List<String> tried) {
        return new NativeLibraryException(null, "cannot load the llama.cpp native libraries. Tried:\n  "
                + String.join("\n  ", tried)
                + "\nSet " + DIR_PROPERTY + " (or " + DIR_ENV + ") to a directory holding libggml-base, libggml,"
                + " libllama and the backend plugins, or put the ai.llmref:native jar on the class path.");
    }

    private static String setting(String property, String env) {
        String v = System.getProperty(property);
        if (v == null || v.isBlank()) {
            v = System.getenv(env);
        }
        return v == null || v.isBlank() ? null : v.trim();
    }

    static String arch() {
        String a = System.getProperty("os.arch").toLowerCase(Locale.ROOT);
        return switch (a) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> a;
        };
    }
}
