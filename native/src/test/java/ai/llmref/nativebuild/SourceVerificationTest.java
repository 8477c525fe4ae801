package ai.llmref.nativebuild;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * native/build.sh refuses every source that is not the pinned tree, says what it expected and what
 * it found, and leaves nothing in the cache when it refuses. Each case runs the real script against
 * an empty cache folder of its own.
 */
class SourceVerificationTest {

    private static Path script;
    private static Path pinnedSource;
    private static Properties pin;

    @TempDir Path tmp;

    @BeforeAll
    static void locate() throws IOException {
        script = Path.of(System.getProperty("native.build.script"));
        Properties info = load(Path.of(System.getProperty("native.build.info")));
        pinnedSource = Path.of(info.getProperty("llama.cpp.dir"));
        pin = load(script.resolveSibling("pin.properties"));
    }

    @Test
    void tamperedNpmPackageIsRefusedByIntegrity() throws Exception {
        Path tgz = tmp.resolve("node-llama-cpp-3.22.1.tgz");
        Path pkg = Files.createDirectories(tmp.resolve("pkg/package/llama"));
        Files.writeString(pkg.resolve("gitRelease.bundle"), "not the real bundle");
        run(List.of("tar", "-czf", tgz.toString(), "-C", tmp.resolve("pkg").toString(), "package"), Map.of());

        Result r = build(Map.of("LLAMA_CPP_NPM_TGZ", tgz.toString()));

        assertThat(r.exit).isNotZero();
        assertThat(r.stderr)
                .contains("does not match the pinned npm package node-llama-cpp@3.22.1")
                .contains("expected integrity " + pin.getProperty("npm.integrity"))
                .containsPattern("found    integrity sha512-[A-Za-z0-9+/=]{88}");
        assertCacheHoldsNothing();
    }

    @Test
    void bundleOfAnotherTreeIsRefused() throws Exception {
        Path repo = tinyRepo();
        Path bundle = tmp.resolve("other.bundle");
        run(List.of("git", "-C", repo.toString(), "bundle", "create", bundle.toString(), "HEAD"), Map.of());
        String otherTree = run(List.of("git", "-C", repo.toString(), "rev-parse", "HEAD^{tree}"), Map.of()).trim();

        Result r = build(Map.of("LLAMA_CPP_BUNDLE", bundle.toString()));

        assertThat(r.exit).isNotZero();
        assertThat(r.stderr)
                .contains("is not the pinned llama.cpp tree")
                .contains("expected git tree " + pin.getProperty("llama.cpp.tree"))
                .contains("found    git tree " + otherTree);
        assertCacheHoldsNothing();
    }

    @Test
    void corruptBundleIsRefused() throws Exception {
        Path repo = tinyRepo();
        Path bundle = tmp.resolve("corrupt.bundle");
        run(List.of("git", "-C", repo.toString(), "bundle", "create", bundle.toString(), "HEAD"), Map.of());
        byte[] bytes = Files.readAllBytes(bundle);
        for (int i = bytes.length / 2; i < bytes.length; i++) {
            bytes[i] ^= 0x5a;
        }
        Files.write(bundle, bytes);

        Result r = build(Map.of("LLAMA_CPP_BUNDLE", bundle.toString()));

        assertThat(r.exit).isNotZero();
        assertThat(r.stderr).contains(bundle + " is not a valid git bundle");
        assertCacheHoldsNothing();
    }

    @Test
    void checkoutWithACommittedChangeIsRefused() throws Exception {
        Path clone = sharedClone();
        Files.writeString(clone.resolve("include/llama.h"), "// tampered\n", StandardOpenOption.APPEND);
        run(List.of("git", "-C", clone.toString(), "-c", "user.name=t", "-c", "user.email=t@t",
                "commit", "-q", "-am", "tamper"), Map.of());
        String found = run(List.of("git", "-C", clone.toString(), "rev-parse", "HEAD^{tree}"), Map.of()).trim();

        Result r = build(Map.of("LLAMA_CPP_DIR", clone.toString()));

        assertThat(r.exit).isNotZero();
        assertThat(r.stderr)
                .contains("LLAMA_CPP_DIR=" + clone + " is not the pinned llama.cpp tree")
                .contains("expected git tree " + pin.getProperty("llama.cpp.tree"))
                .contains("found    git tree " + found);
        assertCacheHoldsNothing();
    }

    @Test
    void checkoutWithUncommittedChangesIsRefused() throws Exception {
        Path clone = sharedClone();
        Files.writeString(clone.resolve("src/llama.cpp"), "// tampered\n", StandardOpenOption.APPEND);

        Result r = build(Map.of("LLAMA_CPP_DIR", clone.toString()));

        assertThat(r.exit).isNotZero();
        assertThat(r.stderr).contains("has local changes").contains("src/llama.cpp");
        assertCacheHoldsNothing();
    }

    @Test
    void checkoutWithChangesGitIsToldNotToCheckIsRefused() throws Exception {
        // git status reports neither change: it skips files marked skip-worktree (as a sparse checkout
        // marks the files it leaves out) and trusts files marked assume-unchanged.
        Path clone = sharedClone();
        run(List.of("git", "-C", clone.toString(), "update-index", "--skip-worktree", "src/llama.cpp"), Map.of());
        run(List.of("git", "-C", clone.toString(), "update-index", "--assume-unchanged", "include/llama.h"), Map.of());
        Files.writeString(clone.resolve("src/llama.cpp"), "// tampered\n", StandardOpenOption.APPEND);
        Files.writeString(clone.resolve("include/llama.h"), "// tampered\n", StandardOpenOption.APPEND);
        assertThat(run(List.of("git", "-C", clone.toString(), "status", "--porcelain"), Map.of())).isEmpty();

        Result r = build(Map.of("LLAMA_CPP_DIR", clone.toString()), "--source-only");

        assertThat(r.exit).as(r.stderr).isNotZero();
        assertThat(r.stderr).contains("checkout " + clone + " has files git does not check for changes")
                .contains("S src/llama.cpp").contains("h include/llama.h")
                .doesNotContain("source verified");
        assertCacheHoldsNothing();
    }

    @Test
    void cleanCheckoutOfThePinnedTreeIsAccepted() throws Exception {
        Path clone = sharedClone();

        Result r = build(Map.of("LLAMA_CPP_DIR", clone.toString()), "--source-only");

        assertThat(r.exit).as(r.stderr).isZero();
        assertThat(r.stderr).contains("llama.cpp source verified: tree " + pin.getProperty("llama.cpp.tree"));
    }

    @Test
    void plainDirectoryIsHashedAsGitWould() throws Exception {
        Path plain = Files.createDirectories(tmp.resolve("plain"));
        // git archive gives the tree's content without .git, as a release tarball would.
        run(List.of("bash", "-c", "git -C '" + pinnedSource + "' archive HEAD | tar -x -C '" + plain + "'"), Map.of());

        Result ok = build(Map.of("LLAMA_CPP_DIR", plain.toString()), "--source-only");
        assertThat(ok.exit).as(ok.stderr).isZero();

        Files.delete(plain.resolve("README.md"));
        Result refused = build(Map.of("LLAMA_CPP_DIR", plain.toString()), "--source-only");
        assertThat(refused.exit).isNotZero();
        assertThat(refused.stderr).contains("is not the pinned llama.cpp tree");
    }

    @Test
    void sourceSubsetIsCheckedFileByFileAgainstAManifestOfThePinnedTree() throws Exception {
        Result ok = build(Map.of("LLAMA_CPP_SUBSET", subset(tmp.resolve("ok"), dir -> {}).toString()), "--source-only");
        assertThat(ok.exit).as(ok.stderr).isZero();
        assertThat(ok.stderr).contains("all identical; tree " + pin.getProperty("llama.cpp.tree"))
                .contains("llama.cpp source verified");
    }

    @Test
    void sourceSubsetWithAChangedFileIsRefused() throws Exception {
        Path archive = subset(tmp.resolve("changed"), dir -> Files.writeString(dir.resolve("include/llama.h"), "\n",
                StandardOpenOption.APPEND));
        Result r = build(Map.of("LLAMA_CPP_SUBSET", archive.toString()), "--source-only");
        assertThat(r.exit).isNotZero();
        assertThat(r.stderr).contains("include/llama.h: content differs from the pinned tree")
                .contains("is not a part of the pinned llama.cpp tree");
        assertCacheHoldsNothing();
    }

    @Test
    void sourceSubsetWithAnExtraFileIsRefused() throws Exception {
        Path archive = subset(tmp.resolve("extra"), dir -> Files.writeString(dir.resolve("src/extra.cpp"), "int x;\n"));
        Result r = build(Map.of("LLAMA_CPP_SUBSET", archive.toString()), "--source-only");
        assertThat(r.exit).isNotZero();
        assertThat(r.stderr).contains("src/extra.cpp: not a file of the pinned tree");
        assertCacheHoldsNothing();
    }

    @Test
    void sourceSubsetWhoseManifestDescribesAnotherTreeIsRefused() throws Exception {
        // Change a file and its manifest entry together: only the manifest's tree hash can tell.
        Path archive = subset(tmp.resolve("forged"), dir -> {
            Path header = dir.resolve("include/llama.h");
            Files.writeString(header, "// forged\n", StandardOpenOption.APPEND);
            String blob = run(List.of("git", "hash-object", header.toString()), Map.of()).strip();
            Path manifest = dir.resolve(".llmref-source-manifest");
            List<String> lines = new ArrayList<>();
            for (String line : Files.readAllLines(manifest)) {
                lines.add(line.endsWith("\tinclude/llama.h") ? line.replaceFirst("blob [0-9a-f]{40}", "blob " + blob) : line);
            }
            Files.write(manifest, lines);
        });
        Result r = build(Map.of("LLAMA_CPP_SUBSET", archive.toString()), "--source-only");
        assertThat(r.exit).isNotZero();
        assertThat(r.stderr).containsPattern("the manifest (describes git tree [0-9a-f]{40}, not the pinned tree|is inconsistent)");
        assertCacheHoldsNothing();
    }

    @Test
    void sourceSubsetWhoseManifestListsAFileOutsideItsTreeIsRefused() throws Exception {
        // An added file listed under a folder the manifest does not list: the tree hash of the manifest
        // stays the pinned one, so only a check that every entry is part of that hash can tell.
        Path archive = subset(tmp.resolve("stray"), dir -> {
            Path extra = Files.createDirectories(dir.resolve("src/extra")).resolve("extra.cpp");
            Files.writeString(extra, "int injected = 1;\n");
            String blob = run(List.of("git", "hash-object", extra.toString()), Map.of()).strip();
            Files.writeString(dir.resolve(".llmref-source-manifest"), "100644 blob " + blob + "\tsrc/extra/extra.cpp\n",
                    StandardOpenOption.APPEND);
        });
        Result r = build(Map.of("LLAMA_CPP_SUBSET", archive.toString()), "--source-only");
        assertThat(r.exit).as(r.stderr).isNotZero();
        assertThat(r.stderr).contains("the manifest is inconsistent: 1 entries are not part of its tree, e.g. src/extra/extra.cpp")
                .contains("is not a part of the pinned llama.cpp tree");
        assertCacheHoldsNothing();
    }

    @Test
    void invalidOptionsAreRefusedBeforeAnyWork() throws Exception {
        assertThat(build(Map.of(), "--variant", "rocm").stderr).contains("--variant must be cpu or cuda, got 'rocm'");
        assertThat(build(Map.of(), "--cuda-arch", "sm_90").stderr)
                .contains("--cuda-arch must be a ';'-separated list of CUDA architectures");
        assertCacheHoldsNothing();
    }

    @Test
    void cudaVariantWithoutCublasFailsBeforeAnyWork() throws Exception {
        // A toolkit folder with a compiler and no cuBLAS: what this CI machine's /usr/local/cuda is.
        Path toolkit = Files.createDirectories(tmp.resolve("cuda/bin"));
        Path nvcc = toolkit.resolve("nvcc");
        Path realNvcc = Path.of("/usr/local/cuda/bin/nvcc");
        if (Files.isExecutable(realNvcc)) {
            Files.createSymbolicLink(nvcc, realNvcc);
        } else {
            Files.writeString(nvcc, "#!/bin/sh\necho 'Cuda compilation tools, release 13.0'\n");
            nvcc.toFile().setExecutable(true);
        }

        Result r = build(Map.of("CUDA_HOME", tmp.resolve("cuda").toString(), "CUDACXX", nvcc.toString()),
                "--variant", "cuda");

        assertThat(r.exit).isNotZero();
        assertThat(r.stderr)
                .contains("the cuda variant needs a CUDA toolkit with cuBLAS; nvcc is at " + nvcc)
                .contains("cuBLAS headers (cublas_v2.h under")
                .contains("cuBLAS library (libcublas.so under")
                .doesNotContain("source verified"); // refused before fetching or verifying sources
        assertCacheHoldsNothing();
    }

    @Test
    void cudaVariantWithoutNvccNamesWhereItLooked() throws Exception {
        Path empty = Files.createDirectories(tmp.resolve("no-cuda"));
        Result r = build(Map.of("CUDA_HOME", empty.toString(), "CUDACXX", "", "PATH", "/usr/bin:/bin"),
                "--variant", "cuda");

        assertThat(r.exit).isNotZero();
        assertThat(r.stderr).contains("nvcc not found (looked at $CUDACXX, " + empty + "/bin/nvcc and PATH)");
        assertCacheHoldsNothing();
    }

    @Test
    void unchangedInputsAreACacheHit() throws Exception {
        Properties info = load(Path.of(System.getProperty("native.build.info")));
        // The real cache this Maven run built (or reused) a moment ago, with the same default flags.
        ProcessBuilder pb = new ProcessBuilder("bash", script.toString())
                .redirectOutput(ProcessBuilder.Redirect.DISCARD);
        pb.environment().keySet().removeIf(k -> k.startsWith("LLAMA_CPP_"));
        Path entry = Path.of(info.getProperty("native.entry"));
        pb.environment().put("AIREF_CACHE_DIR", entry.getParent().getParent().toString());
        Process p = pb.start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(err).isZero();
        assertThat(err).contains("cache hit: " + info.getProperty("native.entry")).doesNotContain("building");
    }

    @Test
    void anotherCCompilerIsNotACacheHit() throws Exception {
        // A cache of its own holding the entry this Maven run built (or reused), under its key.
        Properties info = load(Path.of(System.getProperty("native.build.info")));
        Path entry = Path.of(info.getProperty("native.entry"));
        Path ownEntry = Files.createDirectories(cache().resolve("out")).resolve(entry.getFileName());
        Files.createSymbolicLink(ownEntry, entry);
        Map<String, String> source = Map.of("LLAMA_CPP_DIR", info.getProperty("llama.cpp.dir"));
        Result same = build(source);
        assertThat(same.exit).as(same.stderr).isZero();
        assertThat(same.stderr).contains("cache hit: " + ownEntry);

        // ggml's core and CPU backend are C: a different C compiler gives different libraries. This
        // one answers --version and compiles nothing, so a build with it stops at the configure step.
        Path cc = tmp.resolve("toolchain/cc");
        Files.createDirectories(cc.getParent());
        Files.writeString(cc, "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'other-cc (Other) 99.1'; exit 0; }\nexit 1\n");
        cc.toFile().setExecutable(true);
        Map<String, String> otherCc = new HashMap<>(source);
        otherCc.put("CC", cc.toString());
        Result other = build(otherCc);

        assertThat(other.stderr).doesNotContain("cache hit").containsPattern("configuring cpu-[0-9a-f]{16}")
                .doesNotContain("configuring " + entry.getFileName());
        assertThat(other.exit).as(other.stderr).isNotZero();
        assertThat(other.stderr).contains("The C compiler").contains(cc.toString());
    }

    @Test
    void gccSearchPathsFromTheEnvironmentReachNeitherTheCompilerNorTheKey() throws Exception {
        // A C compiler that answers --version with the search paths it was given, and compiles
        // nothing (the build stops at the configure step, after the key is known): were CPATH and
        // LIBRARY_PATH passed on, they would change the compiler's answer and so the key, and worse,
        // the headers and libraries a real compiler uses without the key saying so.
        Path cc = tmp.resolve("toolchain/cc");
        Files.createDirectories(cc.getParent());
        Files.writeString(cc, "#!/bin/sh\n[ \"$1\" = --version ] && { echo \"paths-cc 1.0 [$CPATH|$C_INCLUDE_PATH|$LIBRARY_PATH]\"; exit 0; }\nexit 1\n");
        cc.toFile().setExecutable(true);
        Properties info = load(Path.of(System.getProperty("native.build.info")));
        Map<String, String> plain = Map.of("LLAMA_CPP_DIR", info.getProperty("llama.cpp.dir"), "CC", cc.toString());
        Map<String, String> withPaths = new HashMap<>(plain);
        Path elsewhere = Files.createDirectories(tmp.resolve("elsewhere"));
        withPaths.put("CPATH", elsewhere.resolve("include").toString());
        withPaths.put("C_INCLUDE_PATH", elsewhere.resolve("c-include").toString());
        withPaths.put("LIBRARY_PATH", elsewhere.resolve("lib").toString());

        Result without = build(plain);
        Result with = build(withPaths);

        String key = configuredKey(without.stderr);
        assertThat(configuredKey(with.stderr)).as(with.stderr).isEqualTo(key);
        assertThat(with.stderr).contains("ignoring CPATH from the environment (CPATH=" + elsewhere.resolve("include") + ")")
                .contains("ignoring C_INCLUDE_PATH from the environment").contains("ignoring LIBRARY_PATH from the environment");
        assertThat(without.stderr).doesNotContain("ignoring");
    }

    private static String configuredKey(String stderr) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("configuring (cpu-[0-9a-f]{16})").matcher(stderr);
        assertThat(m.find()).as(stderr).isTrue();
        return m.group(1);
    }

    @Test
    void publishingRefusesAFolderHoldingOtherFilesBeforeAnyWork() throws Exception {
        // --out replaces its folder's whole content: only a new folder or an earlier publish may be given.
        Properties info = load(Path.of(System.getProperty("native.build.info")));
        Map<String, String> cached = Map.of("AIREF_CACHE_DIR", Path.of(info.getProperty("native.entry")).getParent().getParent().toString());
        Path mine = Files.createDirectories(tmp.resolve("mine"));
        Files.writeString(mine.resolve("notes.txt"), "not the script's\n");
        Files.writeString(mine.resolve("libother.so.1"), "");

        Result refused = build(cached, "--out", mine.toString());

        assertThat(refused.exit).isNotZero();
        assertThat(refused.stderr).contains("--out " + mine + " holds files that native/build.sh did not publish there (notes.txt)")
                .contains("Give a new or empty folder").doesNotContain("source verified");
        assertThat(mine.resolve("notes.txt")).exists();
        assertThat(mine.resolve("libother.so.1")).exists();

        Path fresh = tmp.resolve("fresh/native");
        Result first = build(cached, "--out", fresh.toString());
        assertThat(first.exit).as(first.stderr).isZero();
        assertThat(fresh.resolve("native-libs.properties")).exists();
        Result again = build(cached, "--out", fresh.toString());
        assertThat(again.exit).as("an earlier publish is replaced: " + again.stderr).isZero();
        assertThat(load(fresh.resolve("native-libs.properties")).getProperty("load")).contains("libllama.so");
    }

    @Test
    void aSecondBuildOnTheSameCacheSaysWhatItWaitsFor() throws Exception {
        Path clone = sharedClone();
        Files.createDirectories(cache());
        Path lock = cache().resolve(".lock");
        // Another build holding the cache's lock, for a few seconds.
        Process holder = new ProcessBuilder("flock", lock.toString(), "sleep", "5").start();
        try {
            // until it holds the lock: flock -n fails (exit 1) while another process holds it
            for (int i = 0; i < 50 && new ProcessBuilder("flock", "-n", lock.toString(), "true").start().waitFor() == 0; i++) {
                Thread.sleep(50);
            }
            Result r = build(Map.of("LLAMA_CPP_DIR", clone.toString()), "--source-only");
            assertThat(r.exit).as(r.stderr).isZero();
            assertThat(r.stderr).contains("waiting for another native/build.sh using the cache " + cache() + " to finish")
                    .contains("llama.cpp source verified");
        } finally {
            holder.destroy();
            holder.waitFor();
        }
    }

    // --- helpers -------------------------------------------------------------------------------

    private record Result(int exit, String stderr) {}

    private Path cache() {
        return tmp.resolve("cache");
    }

    private Result build(Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("bash", script.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD);
        pb.environment().keySet().removeIf(k -> k.startsWith("LLAMA_CPP_"));
        pb.environment().put("AIREF_CACHE_DIR", cache().toString());
        pb.environment().putAll(env);
        Process p = pb.start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(5, TimeUnit.MINUTES)).isTrue();
        return new Result(p.exitValue(), err);
    }

    /** The cache may hold its lock file and empty folders, never a source, build or download. */
    private void assertCacheHoldsNothing() throws IOException {
        if (!Files.exists(cache())) {
            return;
        }
        try (Stream<Path> files = Files.walk(cache())) {
            assertThat(files.filter(f -> !Files.isDirectory(f))
                            .filter(f -> !f.getFileName().toString().equals(".lock")))
                    .as("files left in the cache after a refused source")
                    .isEmpty();
        }
    }

    private Path tinyRepo() throws Exception {
        Path repo = Files.createDirectories(tmp.resolve("tiny"));
        run(List.of("git", "init", "-q", repo.toString()), Map.of());
        Files.writeString(repo.resolve("CMakeLists.txt"), "project(not_llama)\n");
        run(List.of("git", "-C", repo.toString(), "add", "."), Map.of());
        run(List.of("git", "-C", repo.toString(), "-c", "user.name=t", "-c", "user.email=t@t",
                "commit", "-q", "-m", "other"), Map.of());
        return repo;
    }

    interface DirChange {
        void apply(Path dir) throws Exception;
    }

    /** A --pack-source style archive with a few files of the pinned tree and its manifest, changed by {@code change}. */
    private Path subset(Path dir, DirChange change) throws Exception {
        Files.createDirectories(dir);
        run(List.of("bash", "-c", "git -C '" + pinnedSource + "' archive HEAD include src/llama.cpp CMakeLists.txt | tar -x -C '" + dir + "'"
                + " && git -C '" + pinnedSource + "' ls-tree -r -t --full-tree HEAD > '" + dir.resolve(".llmref-source-manifest") + "'"), Map.of());
        change.apply(dir);
        Path archive = tmp.resolve(dir.getFileName() + ".tar.xz");
        run(List.of("tar", "-cJf", archive.toString(), "-C", dir.toString(), "."), Map.of());
        return archive;
    }

    private Path sharedClone() throws Exception {
        Path clone = tmp.resolve("clone");
        run(List.of("git", "clone", "-q", "--shared", pinnedSource.toString(), clone.toString()), Map.of());
        return clone;
    }


    private static String run(List<String> cmd, Map<String, String> env) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException(cmd + " failed: " + out);
        }
        return out;
    }

    private static Properties load(Path file) throws IOException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
        }
        return p;
    }
}
