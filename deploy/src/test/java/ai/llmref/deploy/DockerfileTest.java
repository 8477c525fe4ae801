package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Dockerfile.cuda read as code (no container engine on these machines): stages, pinned bases, the
 * final stage's contents, user and entrypoint, labels, and no secrets. ImageLayoutTest runs what
 * the build stage runs and starts what the final stage starts.
 */
class DockerfileTest {
    static final Dockerfile DOCKERFILE = Dockerfile.parse(Repo.read("Dockerfile.cuda"));
    private static final Pattern SECRET_NAME = Pattern.compile("(?i).*(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|CREDENTIAL|PRIVATE|ACCESS_KEY).*");

    @Test
    void isMultiStageWithACudaDevelBuildAndAMinimalFinalStage() {
        assertThat(DOCKERFILE.stages).extracting(Dockerfile.Stage::name).startsWith("jdk", "maven", "build");
        assertThat(DOCKERFILE.resolvedImage(DOCKERFILE.stage("build")))
                .as("a CUDA devel image on Ubuntu 22.04 (its glibc is not newer than the runtime image's)")
                .matches("nvidia/cuda:\\d+\\.\\d+\\.\\d+-devel-ubuntu22\\.04(@sha256:[0-9a-f]{64})?");
        assertThat(DOCKERFILE.resolvedImage(DOCKERFILE.last()))
                .as("a distroless base: no shell, no package manager")
                .matches("gcr\\.io/distroless/(cc|base)-debian\\d+:nonroot(@sha256:[0-9a-f]{64})?");
    }

    @Test
    void baseImagesAreNamedByVersionAndCanBePinnedByDigest() {
        for (Dockerfile.Stage s : DOCKERFILE.stages) {
            assertThat(s.image()).as("FROM goes through a build argument, so a release can pass tag@digest").matches("\\$\\{[A-Z_]+}");
            String image = DOCKERFILE.resolvedImage(s);
            String tag = image.replaceFirst("@sha256:.*", "").replaceFirst("^.*?:(?=[^/]*$)", "");
            assertThat(image).as(image).contains(":");
            assertThat(tag).as("tag of " + image).isNotEqualTo("latest");
            // A version in the tag, or (distroless, which tags no versions) the distribution release in the name.
            assertThat(tag.matches(".*\\d.*") || image.matches("gcr\\.io/distroless/[a-z]+-debian\\d+:.*"))
                    .as(image + " is named by version").isTrue();
        }
        String comments = String.join("\n", DOCKERFILE.comments);
        assertThat(comments).as("documented digest pinning").contains("@sha256:", "imagetools inspect");
    }

    @Test
    void buildStageRunsTheLayoutScriptForTheCudaVariant() {
        Dockerfile.Stage build = DOCKERFILE.stage("build");
        List<String> runs = build.all("RUN").stream().map(Dockerfile.Instruction::args).toList();
        assertThat(runs).anySatisfy(r -> assertThat(r)
                .contains("scripts/image-layout.sh", "--variant cuda", "--cuda-arch \"${CUDA_ARCH}\"", "--root /layout"));
        String defaultArch = build.all("ARG").stream().map(Dockerfile.Instruction::args)
                .filter(a -> a.startsWith("CUDA_ARCH=")).map(a -> Dockerfile.unquote(a.substring(10))).findFirst().orElseThrow();
        Matcher m = Pattern.compile("(?m)^cuda_arch=\"([^\"]+)\"").matcher(Repo.read("native/build.sh"));
        assertThat(m.find()).isTrue();
        assertThat(defaultArch).as("same default architectures as native/build.sh").isEqualTo(m.group(1));
        // The tools native/build.sh needs (scripts/prereqs.sh installs the same on a developer machine).
        String apt = runs.stream().filter(r -> r.contains("apt-get install")).findFirst().orElseThrow();
        assertThat(apt).contains("--no-install-recommends", "rm -rf /var/lib/apt/lists/*");
        for (String pkg : List.of("cmake", "ninja-build", "g++", "git", "npm", "openssl", "binutils", "ca-certificates")) {
            assertThat(apt.split("\\s+")).as("apt package " + pkg).contains(pkg);
        }
        assertThat(build.all("COPY")).extracting(Dockerfile.Instruction::args)
                .contains("--from=jdk /opt/java/openjdk /opt/java/openjdk", "--from=maven /usr/share/maven /opt/maven");
    }

    @Test
    void finalStageHoldsTheLayoutRunsAsANumericNonRootUserWithAnExecFormEntrypoint() {
        Dockerfile.Stage fin = DOCKERFILE.last();
        Set<String> allowed = Set.of("ARG", "LABEL", "COPY", "ENV", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "STOPSIGNAL");
        assertThat(fin.instructions()).extracting(Dockerfile.Instruction::keyword)
                .as("no RUN/ADD/SHELL: the final stage needs no shell, and has none").allMatch(allowed::contains);
        assertThat(fin.all("COPY")).singleElement().extracting(Dockerfile.Instruction::args)
                .isEqualTo("--from=build --chown=0:0 /layout/ /");
        assertThat(fin.all("USER")).singleElement().extracting(Dockerfile.Instruction::args).satisfies(u -> {
            assertThat(u).matches("\\d+:\\d+");
            for (String id : u.split(":")) {
                assertThat(Integer.parseInt(id)).as("uid/gid").isPositive();
            }
        });
        List<String> entrypoint = Dockerfile.execForm(fin.all("ENTRYPOINT").get(0).args());
        assertThat(entrypoint).as("exec form").containsExactly("/opt/llmref/runtime/bin/java", "@/opt/llmref/app/jvm.args");
        assertThat(Dockerfile.execForm(fin.all("CMD").get(0).args())).as("exec form").isNotNull();
        assertThat(fin.all("HEALTHCHECK")).extracting(Dockerfile.Instruction::args).allMatch("NONE"::equals);
        Map<String, String> env = DOCKERFILE.finalEnv();
        assertThat(env).containsEntry("LLAMA_NATIVE_DIR", "/opt/llmref/native")
                .doesNotContainKey("NVIDIA_VISIBLE_DEVICES"); // GPUs come from the device plugin, not the image
        // The ports the server listens on by default.
        Map<String, Object> defaults = Yaml.map(Repo.read("server/src/main/resources/application.yaml"));
        assertThat(fin.all("EXPOSE").get(0).args().split("\\s+"))
                .containsExactlyInAnyOrder(String.valueOf(Yaml.at(defaults, "server.port")), String.valueOf(Yaml.at(defaults, "server.admin-port")));
    }

    @Test
    void finalStageCarriesOciLabels() {
        Map<String, String> labels = new java.util.HashMap<>();
        DOCKERFILE.last().all("LABEL").forEach(i -> labels.putAll(Dockerfile.pairs(i.args())));
        for (String key : List.of("title", "description", "source", "version", "revision", "created", "licenses", "base.name", "documentation")) {
            assertThat(labels).as("label org.opencontainers.image." + key).containsKey("org.opencontainers.image." + key);
        }
        assertThat(labels.get("org.opencontainers.image.revision")).isEqualTo("${REVISION}");
        assertThat(labels.get("org.opencontainers.image.base.name")).isEqualTo("${RUNTIME_IMAGE}");
    }

    @Test
    void carriesNoSecrets() {
        List<String> problems = new ArrayList<>();
        DOCKERFILE.globalArgs.keySet().stream().filter(k -> SECRET_NAME.matcher(k).matches()).forEach(k -> problems.add("ARG " + k));
        for (Dockerfile.Stage s : DOCKERFILE.stages) {
            for (Dockerfile.Instruction i : s.instructions()) {
                if (i.keyword().equals("ARG") && SECRET_NAME.matcher(i.args().split("=", 2)[0]).matches()) {
                    problems.add("ARG " + i.args() + " (line " + i.line() + ")");
                }
                if (i.keyword().equals("ENV")) {
                    Dockerfile.pairs(i.args()).keySet().stream().filter(k -> SECRET_NAME.matcher(k).matches())
                            .forEach(k -> problems.add("ENV " + k + " (line " + i.line() + ")"));
                }
                if ((i.keyword().equals("COPY") || i.keyword().equals("ADD"))
                        && i.args().matches("(?i).*(\\.pem|\\.key|id_rsa|\\.npmrc|\\.netrc|\\.env|credentials|\\.docker/config).*")) {
                    problems.add("copies a credential file (line " + i.line() + ")");
                }
                if (i.keyword().equals("ADD") && i.args().matches("(?i).*https?://.*")) {
                    problems.add("ADD from a URL (line " + i.line() + ")");
                }
                if (i.keyword().equals("RUN") && i.args().matches("(?s).*(curl|wget)[^|]*\\|\\s*(ba)?sh.*")) {
                    problems.add("pipes a download into a shell (line " + i.line() + ")");
                }
            }
        }
        assertThat(problems).isEmpty();
    }

    @Test
    void dockerignoreIsAnAllowlistThatAdmitsEveryModule() {
        List<String> lines = Repo.read(".dockerignore").lines().map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        assertThat(lines.get(0)).as("everything is excluded first").isEqualTo("*");
        assertThat(lines).contains("!pom.xml", "!scripts/image-layout.sh", "!native/", "**/target/", "**/.env", "**/*.pem", "**/*.key", "**/.npmrc");
        Matcher m = Pattern.compile("<module>([^<]+)</module>").matcher(Repo.read("pom.xml"));
        while (m.find()) {
            String module = m.group(1);
            assertThat(lines).as("the root pom's module %s must reach the build stage (Maven reads every module's pom)", module)
                    .containsAnyOf("!" + module + "/", "!" + module + "/pom.xml");
        }
        assertThat(DOCKERFILE.stage("build").all("COPY")).extracting(Dockerfile.Instruction::args).contains(". .");
    }

    @Test
    void theDeploymentGuideListsTheRuntimeModulesTheLayoutScriptLinks() {
        Matcher script = Pattern.compile("(?m)^modules=([a-z.,]+)$").matcher(Repo.read("scripts/image-layout.sh"));
        assertThat(script.find()).as("modules= in scripts/image-layout.sh").isTrue();
        Set<String> linked = new java.util.TreeSet<>(List.of(script.group(1).split(",")));
        // docs/deployment.md, section 1: "/opt/llmref/runtime/   jlinked Java 25 (java.base, ... )", wrapped over lines.
        Matcher doc = Pattern.compile("jlinked Java 25 \\(([^)]*)\\)").matcher(Repo.read("docs/deployment.md"));
        assertThat(doc.find()).as("the runtime line of docs/deployment.md").isTrue();
        Set<String> documented = new java.util.TreeSet<>();
        Matcher module = Pattern.compile("\\b(java|jdk)\\.[a-z]+(\\.[a-z]+)*").matcher(doc.group(1));
        while (module.find()) {
            documented.add(module.group());
        }
        assertThat(documented).as("modules docs/deployment.md names").isEqualTo(linked);
    }
}
