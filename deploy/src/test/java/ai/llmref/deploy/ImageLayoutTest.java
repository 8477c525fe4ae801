package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.spi.ToolProvider;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.snakeyaml.engine.v2.api.Dump;
import org.snakeyaml.engine.v2.api.DumpSettings;
import org.snakeyaml.engine.v2.common.FlowStyle;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The image's final-stage tree, made by scripts/image-layout.sh (what Dockerfile.cuda runs, here
 * with --variant cpu), checked file by file and then run the way the image runs it: in a chroot
 * that holds only the tree and the runtime base image's libraries, with the root read-only, /tmp
 * the only writable mount, as the Dockerfile's USER with no capabilities, started by the
 * Dockerfile's ENTRYPOINT and ENV with the config the Helm chart's CPU profile renders.
 */
class ImageLayoutTest {
    static final Path ROOT = Repo.target().resolve("image-root");
    static final Path LAYOUT = ROOT.resolve("opt/llmref");
    static final Path ROOTFS = Repo.target().resolve("image-rootfs");
    static final String API_KEY = "test-key-0123456789abcdef";
    /** What only build-time and agent code paths of dependencies reference (see scripts/image-layout.sh). */
    static final Set<String> MODULES_LEFT_OUT = Set.of("java.compiler", "java.instrument", "jdk.attach", "jdk.jdi");

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static Process process;
    private static ProcessHandle jvm;
    private static int apiPort;
    private static int adminPort;
    private static Path log;
    private static long readyMillis;

    @BeforeAll
    static void assembleAndStart() throws Exception {
        long t0 = System.nanoTime();
        Repo.Result r = Repo.run(Duration.ofMinutes(8), Repo.root(), Map.of("JAVA_HOME", System.getProperty("java.home")),
                List.of("bash", "scripts/image-layout.sh", "--root", ROOT.toString(), "--variant", "cpu", "--cpu-variants", "host", "--prebuilt"));
        assertThat(r.ok()).as("scripts/image-layout.sh failed:\n%s", r.output()).isTrue();
        System.out.printf("image layout assembled in %d ms%n", (System.nanoTime() - t0) / 1_000_000);
        if (!"0".equals(Repo.run(Duration.ofSeconds(5), Repo.root(), Map.of(), List.of("id", "-u")).output().strip())) {
            throw new AssertionError("starting the layout as the image does (mount namespace, read-only binds, chroot, then"
                    + " the image's unprivileged user) needs root, as CI and the project's machines have");
        }
        buildRootfs();
        start();
    }

    @AfterAll
    static void stop() throws Exception {
        if (process == null) {
            return;
        }
        // SIGTERM to the server itself, as the kubelet sends it: the process changed its credentials, so
        // unshare's --kill-child (a parent-death signal) no longer reaches it.
        if (jvm != null) {
            jvm.destroy();
            try {
                jvm.onExit().get(30, java.util.concurrent.TimeUnit.SECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                jvm.destroyForcibly();
            }
        }
        process.destroy();
        if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }

    // --- the tree ---------------------------------------------------------------------------------

    @Test
    void treeHasNoShellNoPackageManagerAndNothingWritableOrSetId() throws IOException {
        Set<String> forbidden = Set.of("sh", "bash", "dash", "ash", "zsh", "busybox", "apt", "apt-get", "dpkg", "rpm", "yum",
                "dnf", "microdnf", "apk", "pip", "pip3", "curl", "wget");
        List<String> problems = new ArrayList<>();
        int files = 0;
        try (var s = Files.walk(ROOT)) {
            for (Path p : s.toList()) {
                String name = p.getFileName().toString();
                if (forbidden.contains(name)) {
                    problems.add("forbidden program " + ROOT.relativize(p));
                }
                if (Files.isSymbolicLink(p)) {
                    continue;
                }
                Set<PosixFilePermission> perms = Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS);
                if (perms.contains(PosixFilePermission.GROUP_WRITE) || perms.contains(PosixFilePermission.OTHERS_WRITE)) {
                    problems.add("writable by group or others: " + ROOT.relativize(p));
                }
                int mode = (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
                if ((mode & 06000) != 0) {
                    problems.add("setuid/setgid: " + ROOT.relativize(p));
                }
                if ((Integer) Files.getAttribute(p, "unix:uid", LinkOption.NOFOLLOW_LINKS) != 0) {
                    problems.add("not owned by root: " + ROOT.relativize(p));
                }
                files++;
            }
        }
        assertThat(problems).isEmpty();
        assertThat(files).isGreaterThan(100);
        try (var s = Files.list(ROOT)) {
            assertThat(s.map(p -> p.getFileName().toString())).as("only /opt/llmref: the base image provides the rest").containsExactly("opt");
        }
        assertThat(LAYOUT.resolve("native/libggml-cpu.so")).as("CPU backend plugin").exists();
        assertThat(LAYOUT.resolve("native/native-libs.properties")).exists();
        assertThat(LAYOUT.resolve("app/lib")).isDirectoryNotContaining("glob:**/native-*.jar");
    }

    @Test
    void everySharedLibraryResolvesInsideTheTreeOrTheBaseImage() throws IOException {
        Set<String> base = new TreeSet<>(baseImageLibs());
        base.addAll(List.of("libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-ptxjitcompiler.so.1"));
        Map<String, List<Path>> byName = new HashMap<>();
        List<Path> elves = new ArrayList<>();
        try (var s = Files.walk(LAYOUT)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                if (isElf(p)) {
                    elves.add(p);
                    byName.computeIfAbsent(p.getFileName().toString(), k -> new ArrayList<>()).add(p);
                }
            }
        }
        List<String> unresolved = new ArrayList<>();
        Map<String, String> newestSymbolVersion = new TreeMap<>();
        for (Path elf : elves) {
            String dyn = Repo.run(Duration.ofSeconds(30), Repo.root(), Map.of(), List.of("objdump", "-p", "-T", elf.toString())).output();
            Matcher m = Pattern.compile("(?m)^\\s*NEEDED\\s+(\\S+)").matcher(dyn);
            while (m.find()) {
                if (!base.contains(m.group(1)) && !byName.containsKey(m.group(1))) {
                    unresolved.add(LAYOUT.relativize(elf) + " needs " + m.group(1));
                }
            }
            Matcher v = Pattern.compile("\\b(GLIBC|GLIBCXX|CXXABI)_(\\d+(?:\\.\\d+)*)\\b").matcher(dyn);
            while (v.find()) {
                newestSymbolVersion.merge(v.group(1), v.group(2), (a, b) -> compareVersions(a, b) >= 0 ? a : b);
            }
        }
        assertThat(elves).hasSizeGreaterThan(20);
        assertThat(unresolved).as("libraries neither shipped nor in the base image").isEmpty();
        // distroless cc-debian12: glibc 2.36, GCC 12's libstdc++ (GLIBCXX_3.4.30, CXXABI_1.3.13).
        assertThat(compareVersions(newestSymbolVersion.get("GLIBC"), "2.36")).as("GLIBC_" + newestSymbolVersion.get("GLIBC")).isLessThanOrEqualTo(0);
        if (newestSymbolVersion.containsKey("GLIBCXX")) {
            assertThat(compareVersions(newestSymbolVersion.get("GLIBCXX"), "3.4.30")).as("GLIBCXX_" + newestSymbolVersion.get("GLIBCXX")).isLessThanOrEqualTo(0);
        }
    }

    @Test
    void runtimeHoldsEveryModuleTheClassPathNeeds() throws IOException {
        String listed = Repo.run(Duration.ofSeconds(30), Repo.root(), Map.of(),
                List.of(LAYOUT.resolve("runtime/bin/java").toString(), "--list-modules")).output();
        Set<String> runtime = new TreeSet<>();
        listed.lines().map(l -> l.split("@")[0].strip()).filter(l -> !l.isEmpty()).forEach(runtime::add);
        ToolProvider jdeps = ToolProvider.findFirst("jdeps").orElseThrow(() -> new AssertionError("the test JVM has no jdeps"));
        // jdeps resolves a named module's requirements before anything else and gives up on the first
        // it cannot find; the question here is only which JDK modules the code uses, so it reads
        // copies of the jars without their module descriptors.
        Path stripped = Repo.target().resolve("jdeps-jars");
        Files.createDirectories(stripped);
        List<String> args = new ArrayList<>(List.of("-s", "-q", "--multi-release", "25", "--ignore-missing-deps"));
        try (var s = Files.list(LAYOUT.resolve("app/lib"))) {
            for (Path jar : s.sorted().toList()) {
                Path copy = stripped.resolve(jar.getFileName());
                withoutModuleDescriptors(jar, copy);
                args.add(copy.toString());
            }
        }
        String out = runTool(jdeps, args.toArray(String[]::new));
        assertThat(out).as("jdeps").doesNotContain("Error");
        Map<String, Set<String>> needs = new TreeMap<>();
        Matcher m = Pattern.compile("(?m)^(\\S+)\\s+->\\s+((?:java|jdk)\\.[a-z.]+)\\s*$").matcher(out);
        while (m.find()) {
            needs.computeIfAbsent(m.group(2), k -> new TreeSet<>()).add(m.group(1));
        }
        assertThat(needs).containsKeys("java.base", "java.logging");
        needs.keySet().removeAll(MODULES_LEFT_OUT);
        Map<String, Set<String>> missing = new TreeMap<>(needs);
        missing.keySet().removeAll(runtime);
        assertThat(missing).as("modules the jars use that the jlinked runtime lacks (add them to scripts/image-layout.sh)").isEmpty();
        assertThat(runtime).doesNotContain("jdk.jdi", "jdk.attach", "jdk.compiler", "jdk.jshell");
    }

    @Test
    void launcherArgumentsNameFilesOfTheTree() throws IOException {
        List<String> args = Files.readAllLines(LAYOUT.resolve("app/jvm.args"));
        assertThat(args).contains("--enable-native-access=ALL-UNNAMED", "-Djava.io.tmpdir=/tmp", "-cp").endsWith("ai.llmref.server.Main");
        String cp = args.get(args.indexOf("-cp") + 1);
        for (String entry : cp.split(":")) {
            assertThat(ROOT.resolve(entry.substring(1))).as(entry).isRegularFile();
        }
        try (var jars = Files.list(LAYOUT.resolve("app/lib"))) {
            assertThat(cp.split(":")).hasSize((int) jars.count());
        }
        List<String> entrypoint = Dockerfile.execForm(DockerfileTest.DOCKERFILE.last().all("ENTRYPOINT").get(0).args());
        assertThat(ROOT.resolve(entrypoint.get(0).substring(1))).isExecutable();
        assertThat(ROOT.resolve(entrypoint.get(1).substring(2))).isRegularFile();
        assertThat(ROOT.resolve(DockerfileTest.DOCKERFILE.finalEnv().get("LLAMA_NATIVE_DIR").substring(1))).isDirectory();
        Map<String, String> props = new LinkedHashMap<>();
        Files.readAllLines(LAYOUT.resolve("app/layout.properties")).stream().filter(l -> l.contains("="))
                .forEach(l -> props.put(l.substring(0, l.indexOf('=')), l.substring(l.indexOf('=') + 1)));
        assertThat(props).containsEntry("variant", "cpu").containsKey("llama.cpp.tree").containsKey("java.modules");
    }

    @Test
    void scriptExplainsItselfAndRefusesWhatItDoesNotKnow() {
        Repo.Result help = Repo.run(Duration.ofSeconds(10), Repo.root(), Map.of(), List.of("bash", "scripts/image-layout.sh", "--help"));
        assertThat(help.ok()).isTrue();
        assertThat(help.output()).contains("--root DIR", "--variant", "--cuda-arch", "--prebuilt", "Dockerfile.cuda");
        Repo.Result bad = Repo.run(Duration.ofSeconds(10), Repo.root(), Map.of(),
                List.of("bash", "scripts/image-layout.sh", "--root", Repo.target().resolve("never").toString(), "--variant", "rocm"));
        assertThat(bad.exitCode()).isNotZero();
        assertThat(bad.output()).contains("--variant must be cpu or cuda");
        assertThat(Repo.target().resolve("never")).doesNotExist();
    }

    // --- the running server -------------------------------------------------------------------------

    @Test
    void serverRunsAsTheImageUserConfinedToItsTreeAndServes() throws Exception {
        assertThat(readyMillis).as("ready").isPositive();
        String user = DockerfileTest.DOCKERFILE.last().all("USER").get(0).args();
        String uid = user.split(":")[0];
        String gid = user.split(":")[1];
        Map<String, String> status = procStatus(jvm.pid());
        assertThat(status.get("Uid").split("\\s+")).containsOnly(uid);
        assertThat(status.get("Gid").split("\\s+")).containsOnly(gid);
        assertThat(status.get("Groups")).as("supplementary groups: at most the image's group (the pod's fsGroup)").isIn("", gid);
        assertThat(status.get("CapEff")).isEqualTo("0000000000000000");
        assertThat(status.get("CapPrm")).isEqualTo("0000000000000000");
        assertThat(status.get("NoNewPrivs")).isEqualTo("1");
        assertThat(Files.readSymbolicLink(Path.of("/proc/" + jvm.pid() + "/root"))).isEqualTo(ROOTFS);

        // Mounts as the process sees them: everything read-only but /tmp (and /proc, /dev).
        Map<String, String> mounts = new TreeMap<>();
        for (String line : Files.readAllLines(Path.of("/proc/" + jvm.pid() + "/mountinfo"))) {
            String[] f = line.split(" ");
            mounts.put(f[4], f[5]);
        }
        assertThat(mounts.get("/")).startsWith("ro");
        assertThat(mounts.get("/opt/llmref")).startsWith("ro");
        assertThat(mounts.get("/models/model.gguf")).startsWith("ro");
        assertThat(mounts.get("/tmp")).startsWith("rw");
        mounts.forEach((point, opts) -> {
            if (opts.startsWith("rw") && !point.equals("/tmp") && !point.equals("/proc") && !point.startsWith("/dev/")) {
                throw new AssertionError("writable mount " + point + " (" + opts + ")");
            }
        });

        assertThat(get(adminPort, "/health/started", null).statusCode()).isEqualTo(200);
        assertThat(get(adminPort, "/health/live", null).statusCode()).isEqualTo(200);
        assertThat(get(apiPort, "/v1/models", null).statusCode()).as("no key, no API").isEqualTo(401);
        assertThat(get(apiPort, "/v1/models", API_KEY).statusCode()).isEqualTo(200);
        HttpResponse<String> completion = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + apiPort + "/v1/completions"))
                .header("Authorization", "Bearer " + API_KEY).header("Content-Type", "application/json")
                .timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofString("{\"model\":\"model\",\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}"))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(completion.statusCode()).as(completion.body()).isEqualTo(200);
        JsonNode body = JsonMapper.builder().build().readTree(completion.body());
        assertThat(body.at("/choices/0/text").asString()).isNotBlank();
        assertThat(body.at("/usage/completion_tokens").asInt()).isEqualTo(12);

        String metrics = get(adminPort, "/metrics", null).body();
        assertThat(metrics).containsPattern("(?m)^llmref_ready(\\{[^}]*})? 1(\\.0)?$");
        assertThat(metrics).containsPattern("llmref_build_info\\{[^}]*variant=\"cpu\"")
                .contains("llmref_build_info{version=\"" + System.getProperty("project.version") + "\"");
        // The line docs/deployment.md tells operators to look for (GPU pods: bufferBytes={CUDA0=...}).
        // ... and llama.cpp's CPU threads: auto, every core for a model on the CPU
        int cores = Runtime.getRuntime().availableProcessors();
        assertThat(Files.readString(log)).contains("ready in").contains("ModelPlacement[offloadedLayers=")
                .contains("CPU threads " + cores + "/" + cores);
    }

    @Test
    void observabilityAssetsUseOnlyNamesOnTheLiveMetricsPage() throws Exception {
        // Traffic first, so that labelled series exist as well as their declarations.
        get(apiPort, "/v1/models", API_KEY);
        get(apiPort, "/v1/models", null);
        Set<String> offered = MetricNames.inExposition(get(adminPort, "/metrics", null).body());
        Map<String, Set<String>> used = ObservabilityTest.usedMetricNames();
        Map<String, Set<String>> absent = new LinkedHashMap<>(used);
        absent.keySet().removeAll(offered);
        assertThat(absent).as("metric names used in observability/ (and where) that the running server does not export").isEmpty();
        assertThat(used).containsKeys("llmref_ready", "llmref_queue_depth", "llmref_time_to_first_token_seconds_bucket");
    }

    // --- helpers ------------------------------------------------------------------------------------

    /** The sonames the runtime base image provides: the script's list (one source for both). */
    static List<String> baseImageLibs() {
        Matcher m = Pattern.compile("base_libs=\\$\\{BASE_IMAGE_LIBS:-\"([^\"]+)\"}").matcher(Repo.read("scripts/image-layout.sh"));
        assertThat(m.find()).as("base_libs in scripts/image-layout.sh").isTrue();
        return List.of(m.group(1).split("\\s+"));
    }

    /**
     * A root filesystem standing in for the image: the base image's part (its shared libraries, taken
     * from this Debian 12 machine as distroless cc-debian12 takes them from Debian 12; /etc/passwd
     * with nonroot 65532) plus mount points for the layout, the model, the config and the Secret.
     */
    private static void buildRootfs() throws IOException {
        if (Files.exists(ROOTFS)) {
            try (var s = Files.walk(ROOTFS)) {
                s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        Path libDir = Files.createDirectories(ROOTFS.resolve("lib/x86_64-linux-gnu"));
        for (String lib : baseImageLibs()) {
            Path host = Path.of("/lib/x86_64-linux-gnu", lib);
            assertThat(host).as("base library on this machine").exists();
            Files.copy(host, libDir.resolve(lib));
        }
        Files.createDirectories(ROOTFS.resolve("lib64"));
        Files.copy(Path.of("/lib64/ld-linux-x86-64.so.2"), ROOTFS.resolve("lib64/ld-linux-x86-64.so.2"));
        for (String d : List.of("opt/llmref", "tmp", "proc", "dev", "models", "etc/llmref/secrets", "home/nonroot")) {
            Files.createDirectories(ROOTFS.resolve(d));
        }
        for (String d : List.of("null", "zero", "random", "urandom")) {
            Files.createFile(ROOTFS.resolve("dev/" + d));
        }
        Files.createFile(ROOTFS.resolve("models/model.gguf"));
        Files.writeString(ROOTFS.resolve("etc/passwd"), "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n");
        Files.writeString(ROOTFS.resolve("etc/group"), "root:x:0:\nnonroot:x:65532:\n");
        Files.writeString(ROOTFS.resolve("etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files dns\n");
        Files.writeString(ROOTFS.resolve("etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n");

        // The Secret as the kubelet mounts it with fsGroup 65532 and defaultMode 0440.
        Path keys = ROOTFS.resolve("etc/llmref/secrets/api-keys");
        Files.writeString(keys, "# one key per line\n" + API_KEY + "\n");
        Files.setAttribute(keys, "unix:gid", 65532);
        Files.setPosixFilePermissions(keys, Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.GROUP_READ));

        // The config the chart's CPU profile renders, on loopback ports of this machine.
        apiPort = freePort();
        adminPort = freePort();
        Map<String, Object> config = HelmChartTest.config(Chart.objects("cpu"));
        @SuppressWarnings("unchecked")
        Map<String, Object> server = (Map<String, Object>) config.get("server");
        server.put("host", "127.0.0.1");
        server.put("port", apiPort);
        server.put("admin-port", adminPort);
        server.put("shutdown-grace-ms", 2000);
        assertThat(Yaml.at(config, "model.path")).isEqualTo("/models/model.gguf");
        assertThat(Yaml.at(config, "auth.api-keys-file")).isEqualTo("/etc/llmref/secrets/api-keys");
        Files.writeString(ROOTFS.resolve("etc/llmref/config.yaml"),
                new Dump(DumpSettings.builder().setDefaultFlowStyle(FlowStyle.BLOCK).build()).dumpToString(config));
    }

    private static void start() throws Exception {
        Path model = Path.of(System.getProperty("test.model", Repo.root().resolve("../shared/models/stories260K.gguf").toString()));
        assertThat(model).as("the test model (see README.md)").isRegularFile();
        List<String> env = new ArrayList<>();
        DockerfileTest.DOCKERFILE.finalEnv().forEach((k, v) -> env.add(k + "=" + v));
        String user = DockerfileTest.DOCKERFILE.last().all("USER").get(0).args();
        List<String> entrypoint = Dockerfile.execForm(DockerfileTest.DOCKERFILE.last().all("ENTRYPOINT").get(0).args());
        String r = ROOTFS.toString();
        String script = String.join("\n",
                "set -eu",
                "mount --make-rprivate /",
                "mount --bind " + q(r) + " " + q(r),
                "mount --bind -o ro " + q(LAYOUT.toString()) + " " + q(r + "/opt/llmref"),
                "mount --bind -o ro " + q(model.toString()) + " " + q(r + "/models/model.gguf"),
                "for d in null zero random urandom; do mount --bind /dev/$d " + q(r) + "/dev/$d; done",
                "mount -o remount,bind,ro " + q(r),
                "mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev tmpfs " + q(r + "/tmp"),
                "mount -t proc -o nosuid,nodev,noexec proc " + q(r + "/proc"),
                "exec env -i " + String.join(" ", env.stream().map(ImageLayoutTest::q).toList())
                        + " /usr/bin/setpriv --no-new-privs /usr/sbin/chroot --userspec=" + user + " " + q(r) + " "
                        + String.join(" ", entrypoint.stream().map(ImageLayoutTest::q).toList())
                        + " --config /etc/llmref/config.yaml");
        log = Repo.target().resolve("image-run.log");
        long t0 = System.nanoTime();
        process = new ProcessBuilder("unshare", "--mount", "--pid", "--fork", "--kill-child=SIGTERM", "bash", "-c", script)
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new AssertionError("the server exited (" + process.exitValue() + "):\n" + Files.readString(log));
            }
            if (jvm == null) {
                jvm = process.children().filter(c -> c.info().command().map(cmd -> cmd.endsWith("/java")).orElse(false))
                        .findFirst().orElse(null);
            }
            try {
                if (jvm != null && get(adminPort, "/health/ready", null).statusCode() == 200) {
                    readyMillis = (System.nanoTime() - t0) / 1_000_000;
                    System.out.printf("server ready from the layout in %d ms%n", readyMillis);
                    return;
                }
            } catch (IOException notYet) {
                // not listening yet
            }
            Thread.sleep(100);
        }
        throw new AssertionError("the server did not become ready in 90 s:\n" + Files.readString(log));
    }

    static HttpResponse<String> get(int port, String path, String key) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(10));
        if (key != null) {
            b.header("Authorization", "Bearer " + key);
        }
        return HTTP.send(b.GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    private static Map<String, String> procStatus(long pid) throws IOException {
        Map<String, String> out = new HashMap<>();
        for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            int c = line.indexOf(':');
            out.put(line.substring(0, c), line.substring(c + 1).strip());
        }
        return out;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static String q(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    private static boolean isElf(Path p) {
        try (var in = Files.newInputStream(p)) {
            byte[] magic = in.readNBytes(4);
            return magic.length == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void withoutModuleDescriptors(Path jar, Path copy) throws IOException {
        try (var in = new java.util.zip.ZipInputStream(Files.newInputStream(jar));
             var out = new java.util.zip.ZipOutputStream(Files.newOutputStream(copy))) {
            for (var e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                if (e.getName().endsWith("module-info.class")) {
                    continue;
                }
                out.putNextEntry(new java.util.zip.ZipEntry(e.getName()));
                in.transferTo(out);
                out.closeEntry();
            }
        }
    }

    private static String runTool(ToolProvider tool, String... args) {
        StringWriter out = new StringWriter();
        java.io.PrintWriter pw = new java.io.PrintWriter(out);
        tool.run(pw, pw, args);
        pw.flush();
        return out.toString();
    }

    static int compareVersions(String a, String b) {
        String[] x = a.split("\\.");
        String[] y = b.split("\\.");
        for (int i = 0; i < Math.max(x.length, y.length); i++) {
            int d = Integer.compare(i < x.length ? Integer.parseInt(x[i]) : 0, i < y.length ? Integer.parseInt(y[i]) : 0);
            if (d != 0) {
                return d;
            }
        }
        return 0;
    }
}
