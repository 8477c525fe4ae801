package ai.llmref.nativebuild;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A toolchain whose g++ links libstdc++ statically by default (as the GCC in /opt/gcc on the
 * project's GPU machine does) must still give libraries that share the process's one C++ runtime:
 * with a private copy in each library the JVM crashed in std::locale code there as soon as the CUDA
 * plugin brought in the shared libstdc++.so.6 (docs/gpu.md). This builds the cpu variant for real,
 * into a cache folder of its own, with CXX set to such a compiler (g++ plus -static-libstdc++).
 */
class CxxRuntimeTest {

    @TempDir Path tmp;

    @Test
    void aCompilerThatLinksTheCxxRuntimeStaticallyStillGivesLibrariesThatNeedTheSharedOne() throws Exception {
        Path script = Path.of(System.getProperty("native.build.script"));
        Path source = Path.of(load(Path.of(System.getProperty("native.build.info"))).getProperty("llama.cpp.dir"));
        Path cxx = tmp.resolve("toolchain/g++");
        Files.createDirectories(cxx.getParent());
        Files.writeString(cxx, "#!/bin/sh\nexec g++ -static-libstdc++ \"$@\"\n");
        Files.setPosixFilePermissions(cxx, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path info = tmp.resolve("info.properties");

        ProcessBuilder pb = new ProcessBuilder("bash", script.toString(), "--variant", "cpu", "--info", info.toString())
                .redirectErrorStream(true);
        pb.environment().keySet().removeIf(k -> k.startsWith("LLAMA_CPP_"));
        pb.environment().put("LLAMA_CPP_DIR", source.toString());
        pb.environment().put("AIREF_CACHE_DIR", tmp.resolve("cache").toString());
        pb.environment().put("CXX", cxx.toString());
        pb.environment().put("CC", "gcc");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(20, TimeUnit.MINUTES)).as(out).isTrue();
        assertThat(p.exitValue()).as(out).isZero();
        assertThat(out).contains(cxx + " links the C++ runtime statically by default: linking /")
                .contains("libstdc++.so.6 instead");

        Path libs = Path.of(load(info).getProperty("native.lib.dir"));
        List<Path> built;
        try (Stream<Path> files = Files.list(libs)) {
            built = files.filter(f -> f.getFileName().toString().matches("lib.*\\.so.*") && !Files.isSymbolicLink(f)).toList();
        }
        assertThat(built).extracting(f -> f.getFileName().toString())
                .anyMatch(n -> n.startsWith("libllama.so")).anyMatch(n -> n.startsWith("libggml-base.so"));
        for (Path lib : built) {
            assertThat(needed(lib)).as(lib + " NEEDED").contains("libstdc++.so.6");
        }
        // Without the fix libggml.so carried libstdc++'s code: 1.8 MB instead of some tens of KB.
        try (Stream<Path> files = Files.list(libs)) {
            Path ggml = files.filter(f -> f.getFileName().toString().startsWith("libggml.so") && !Files.isSymbolicLink(f))
                    .findFirst().orElseThrow();
            assertThat(Files.size(ggml)).as(ggml + " size").isLessThan(512 * 1024);
        }
    }

    private static List<String> needed(Path lib) throws Exception {
        Process p = new ProcessBuilder("readelf", "-d", lib.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(out).isZero();
        return out.lines().filter(l -> l.contains("(NEEDED)"))
                .map(l -> l.substring(l.indexOf('[') + 1, l.lastIndexOf(']'))).toList();
    }

    private static Properties load(Path file) throws IOException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
        }
        return p;
    }
}
