package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Library loading runs once per JVM, so each case starts a child JVM with the test class path:
 * an explicit directory (read-only), a directory without the libraries, and the default (the
 * native jar on the class path).
 */
class NativeLibrariesTest {
    @TempDir Path tmp;

    /** Entry point of the child JVM: loads the backend and prints what it found. */
    public static void main(String[] args) {
        LlamaBackend b = LlamaBackend.initialize();
        System.out.println("source=" + b.librarySource());
        System.out.println("dir=" + b.libraryDirectory());
        b.devices().forEach(d -> System.out.println("device=" + d.name() + " " + d.type()));
        try (LlamaModel m = LlamaModel.load(Path.of(args[0]), ModelParams.defaults().withGpuLayers(0))) {
            System.out.println("layers=" + m.info().layerCount());
        }
    }

    @Test
    void explicitReadOnlyDirectoryIsUsedInPlace() throws Exception {
        Path libs = Path.of(TestModels.nativeBuild().getProperty("native.lib.dir"));
        Path ro = Files.createDirectory(tmp.resolve("ro"));
        try (var files = Files.list(libs)) {
            for (Path f : files.toList()) {
                Files.copy(f, ro.resolve(f.getFileName()));
            }
        }
        try (var files = Files.list(ro)) {
            for (Path f : files.toList()) {
                Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("r-xr-xr-x"));
            }
        }
        Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("r-xr-xr-x"));
        // java.io.tmpdir points at a file: extracting anything would fail, so the libraries must be used in place
        Path notADir = Files.writeString(tmp.resolve("not-a-dir"), "x");
        Result r = child("-Dllama.native.dir=" + ro, "-Djava.io.tmpdir=" + notADir);
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("source=directory " + ro).contains("device=CPU CPU").contains("layers=5");
    }

    @Test
    void aDirectoryWithoutLibrariesListsWhatWasTried() throws Exception {
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        Result r = child("-Dllama.native.dir=" + empty);
        assertThat(r.exit).isNotZero();
        assertThat(r.out).contains("NativeLibraryException").contains("cannot load the llama.cpp native libraries. Tried:")
                .contains(empty.resolve("libggml-base.so").toString()).contains("no such file")
                .contains("Set llama.native.dir (or LLAMA_NATIVE_DIR)");
    }

    @Test
    void aBrokenLibraryReportsTheLoadersOwnError() throws Exception {
        Path broken = Files.createDirectory(tmp.resolve("broken"));
        Files.writeString(broken.resolve("libggml-base.so.0"), "not an ELF file ".repeat(64));
        Result r = child("-Dllama.native.dir=" + broken);
        assertThat(r.exit).isNotZero();
        assertThat(r.out).contains(broken.resolve("libggml-base.so.0") + ":").contains("invalid ELF header");
    }

    @Test
    void defaultIsTheNativeJarOnTheClassPath() throws Exception {
        Result r = child();
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("source=classpath:ai/llmref/native/linux-").contains("/cpu/").contains("layers=5");
    }

    private record Result(int exit, String out) {}

    private Result child(String... jvmArgs) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-Djava.util.logging.config.file=" + System.getProperty("java.util.logging.config.file", ""));
        cmd.addAll(List.of(jvmArgs));
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(NativeLibrariesTest.class.getName());
        cmd.add(TestModels.stories().toString());
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().remove("LLAMA_NATIVE_DIR");
        pb.environment().remove("LLAMA_NATIVE_VARIANT");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(2, TimeUnit.MINUTES)).isTrue();
        return new Result(p.exitValue(), out);
    }

}
