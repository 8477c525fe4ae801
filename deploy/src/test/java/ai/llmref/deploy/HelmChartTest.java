package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.LimitRange;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ResourceQuota;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.Toleration;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyEgressRule;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * helm/llmref rendered for each profile with Helm itself (helm-java), every object parsed with the
 * fabric8 Kubernetes model, and the posture, GPU scheduling, network and schema rules checked.
 */
class HelmChartTest {
    @Test
    void lintsCleanInStrictMode() {
        LintResult r = new Helm(Chart.dir()).lint().strict().call();
        assertThat(r.getMessages()).as("helm lint --strict").noneMatch(m -> m.contains("[WARNING]") || m.contains("[ERROR]"));
        assertThat(r.isFailed()).as("helm lint --strict failed: %s", r.getMessages()).isFalse();
    }

    @ParameterizedTest
    @ValueSource(strings = {"default", "gpu", "mig", "cpu", "hardened-production"})
    void everyObjectParsesWithoutUnknownFields(String profile) {
        List<HasMetadata> objects = Chart.objects(profile);
        assertThat(objects).extracting(HasMetadata::getKind)
                .contains("Deployment", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Pod");
        List<String> unknown = new ArrayList<>();
        for (HasMetadata o : objects) {
            unknown.addAll(KubeObjects.unknownFields(o));
            assertThat(o.getMetadata().getLabels()).as(KubeObjects.describe(o) + " labels")
                    .containsEntry("app.kubernetes.io/part-of", "ai-llm-reference-app")
                    .containsEntry("app.kubernetes.io/instance", Chart.RELEASE);
        }
        assertThat(unknown).as("fields the Kubernetes model does not know (typos, misplaced keys)").isEmpty();
        assertThat(objects.stream().filter(o -> o.getKind().contains("Cluster")))
                .as("a namespaced chart creates no cluster-scoped objects").isEmpty();
    }

    @ParameterizedTest
    @ValueSource(strings = {"default", "gpu", "mig", "cpu", "hardened-production"})
    void everyPodHasTheRestrictedPosture(String profile) {
        List<HasMetadata> objects = Chart.objects(profile);
        List<String> violations = new ArrayList<>();
        for (Deployment d : KubeObjects.ofKind(objects, Deployment.class)) {
            PodSpec spec = d.getSpec().getTemplate().getSpec();
            violations.addAll(PodPosture.violations(KubeObjects.describe(d), spec));
            violations.addAll(PodPosture.probeViolations(KubeObjects.describe(d), server(d)));
        }
        for (Pod p : KubeObjects.ofKind(objects, Pod.class)) {
            violations.addAll(PodPosture.violations(KubeObjects.describe(p), p.getSpec()));
        }
        assertThat(violations).isEmpty();
        ServiceAccount sa = KubeObjects.single(objects, ServiceAccount.class);
        assertThat(sa.getAutomountServiceAccountToken()).isFalse();
        assertThat(deployment(objects).getSpec().getTemplate().getSpec().getServiceAccountName())
                .isEqualTo(sa.getMetadata().getName());
    }

    @ParameterizedTest
    @ValueSource(strings = {"default", "gpu", "mig", "cpu", "hardened-production"})
    void configComesFromAReadOnlyConfigMapThatRollsThePods(String profile) {
        List<HasMetadata> objects = Chart.objects(profile);
        Deployment d = deployment(objects);
        Container c = server(d);
        ConfigMap cm = KubeObjects.single(objects, ConfigMap.class);
        Map<String, Object> config = Yaml.map(cm.getData().get("config.yaml"));

        assertThat(c.getArgs()).containsExactly("--config", "/etc/llmref/config.yaml");
        VolumeMount cfgMount = mount(c, "/etc/llmref/config.yaml");
        assertThat(cfgMount.getReadOnly()).isTrue();
        assertThat(volume(d, cfgMount.getName()).getConfigMap().getName()).isEqualTo(cm.getMetadata().getName());
        assertThat(d.getSpec().getTemplate().getMetadata().getAnnotations().get("checksum/config")).matches("[0-9a-f]{64}");

        // The ports the server listens on are the ports the pod declares and the probes use.
        assertThat(Yaml.at(config, "server.host")).isEqualTo("0.0.0.0");
        assertThat(c.getPorts()).extracting(p -> p.getName() + "=" + p.getContainerPort())
                .containsExactlyInAnyOrder("http=" + Yaml.at(config, "server.port"), "admin=" + Yaml.at(config, "server.admin-port"));
        // The model file is on the read-only model volume.
        VolumeMount modelMount = mount(c, "/models");
        assertThat(modelMount.getReadOnly()).isTrue();
        assertThat((String) Yaml.at(config, "model.path")).startsWith("/models/").endsWith(".gguf");
        Volume model = volume(d, modelMount.getName());
        assertThat(model.getPersistentVolumeClaim() != null || model.getImage() != null).as("model volume is a PVC or an image volume").isTrue();
        // API keys: a Secret mounted as a file, named by auth.api-keys-file.
        String keysFile = (String) Yaml.at(config, "auth.api-keys-file");
        assertThat(keysFile).startsWith("/etc/llmref/secrets/");
        VolumeMount keysMount = mount(c, "/etc/llmref/secrets");
        assertThat(keysMount.getReadOnly()).isTrue();
        assertThat(volume(d, keysMount.getName()).getSecret().getItems()).extracting(i -> "/etc/llmref/secrets/" + i.getPath())
                .containsExactly(keysFile);
        assertThat(Yaml.at(config, "auth.api-keys")).as("keys never travel in the ConfigMap").isNull();
        // /tmp: the one writable path, size-limited.
        Volume tmp = volume(d, mount(c, "/tmp").getName());
        assertThat(tmp.getEmptyDir().getSizeLimit()).isNotNull();
        // Every key the chart writes is one the server reads.
        assertThat(ServerKeys.leaves(config)).isSubsetOf(ServerKeys.all());
        // Enough time between SIGTERM and SIGKILL for the server's own drain.
        long grace = ((Number) Yaml.at(config, "server.shutdown-grace-ms")).longValue() / 1000;
        assertThat(d.getSpec().getTemplate().getSpec().getTerminationGracePeriodSeconds()).isGreaterThan(grace);
    }

    /** /tmp, the pod's one writable path: a 64 MiB tmpfs, so nothing the pod writes reaches the node's disk. */
    @ParameterizedTest
    @ValueSource(strings = {"default", "gpu", "mig", "cpu", "hardened-production"})
    void tmpIsASmallTmpfsNotTheNodesDisk(String profile) {
        Deployment d = deployment(Chart.objects(profile));
        Container c = server(d);
        Volume tmp = volume(d, mount(c, "/tmp").getName());
        assertThat(tmp.getEmptyDir()).as("an emptyDir").isNotNull();
        assertThat(tmp.getEmptyDir().getMedium()).as("memory, not the node's disk").isEqualTo("Memory");
        assertThat(tmp.getEmptyDir().getSizeLimit()).isEqualTo(new Quantity("64Mi"));
        // It counts against the memory limit: a small share of it.
        assertThat(tmp.getEmptyDir().getSizeLimit().getNumericalAmount().multiply(java.math.BigDecimal.valueOf(16)))
                .isLessThanOrEqualTo(c.getResources().getLimits().get("memory").getNumericalAmount());
        assertThat(c.getVolumeMounts()).filteredOn(m -> !m.getMountPath().equals("/tmp"))
                .as("every other mount read-only").allMatch(m -> Boolean.TRUE.equals(m.getReadOnly()));
    }

    @Test
    void tmpGoesToTheNodesDiskOnlyWhenAskedTo() {
        Deployment d = deployment(KubeObjects.parseAll(Chart.renderWith("default", "tmp:\n  medium: \"\"\n"), "tmp on disk"));
        Volume tmp = volume(d, mount(server(d), "/tmp").getName());
        assertThat(tmp.getEmptyDir().getMedium()).isNull();
        assertThat(tmp.getEmptyDir().getSizeLimit()).isEqualTo(new Quantity("64Mi"));
    }

    @Test
    void aConfigChangeChangesTheChecksum() {
        String before = checksum(Chart.objects("default"));
        String after = checksum(KubeObjects.parseAll(Chart.renderWith("default", "config:\n  engine:\n    slots: 7\n"), "slots 7"));
        assertThat(after).isNotEqualTo(before);
    }

    @Test
    void aQuantizedKvCacheAndATwoGpuSplitReachTheServerConfig() {
        ConfigMap cm = KubeObjects.single(KubeObjects.parseAll(Chart.renderWith("default",
                "config:\n  engine:\n    kv-cache-type-k: q8_0\n    kv-cache-type-v: q8_0\n  model:\n    split-mode: layer\n"
                        + "    tensor-split: \"3,1\"\n"), "q8_0 KV cache, two GPUs"), ConfigMap.class);
        Map<String, Object> config = Yaml.map(cm.getData().get("config.yaml"));
        assertThat(Yaml.at(config, "engine.kv-cache-type-k")).isEqualTo("q8_0");
        assertThat(Yaml.at(config, "engine.kv-cache-type-v")).isEqualTo("q8_0");
        assertThat(Yaml.at(config, "model.tensor-split")).isEqualTo("3,1");
        assertThat(ServerKeys.leaves(config)).isSubsetOf(ServerKeys.all());
    }

    /**
     * Server keys (ServerKeys.all()) that the chart's config does not take, and why. The schema must
     * take every other key, and nothing else.
     */
    static final Map<String, String> NOT_IN_CHART_CONFIG = Map.of(
            "server.host", "the chart sets 0.0.0.0: a pod listens on its own address",
            "server.port", "the chart sets it from ports.http, which the container port, the Service and the NetworkPolicy follow",
            "server.admin-port", "the chart sets it from ports.admin, which the probes and the metrics scrape follow",
            "model.path", "the chart sets it from model.file on the read-only /models volume",
            "auth.api-keys", "a secret: API keys come only from the Secret named in auth, never from values",
            "auth.api-keys-file", "the chart points it at that Secret, mounted read-only");

    /** The dotted server keys values.schema.json takes under config. */
    static Set<String> schemaConfigKeys() {
        Set<String> keys = new TreeSet<>();
        Object sections = Yaml.at(schema(), "properties.config.properties");
        Yaml.keys(sections).forEach(section -> Yaml.keys(Yaml.at(sections, section + ".properties"))
                .forEach(k -> keys.add(section + "." + k)));
        return keys;
    }

    static Map<String, Object> schema() {
        return Yaml.map(Repo.read("helm/llmref/values.schema.json"));
    }

    @Test
    void theSchemaTakesEveryServerKeyButTheChartOwnedAndSecretOnes() {
        Set<String> server = ServerKeys.all();
        Set<String> schema = schemaConfigKeys();
        assertThat(NOT_IN_CHART_CONFIG.keySet()).as("the exclusions are server keys").isSubsetOf(server);
        assertThat(schema).as("every key the schema takes is one the server reads").isSubsetOf(server);
        Set<String> expected = new TreeSet<>(server);
        expected.removeAll(NOT_IN_CHART_CONFIG.keySet());
        assertThat(schema).as("every server key an operator may set, and none of the exclusions").isEqualTo(expected);
    }

    @Test
    void theServersOwnDefaultsPassTheSchemaAndReachTheConfigFile() {
        // Every key the schema takes, set to application.yaml's default (a sample where it has none):
        // Helm validates them against the schema while rendering, and each reaches config.yaml as given.
        Map<String, Object> defaults = Yaml.map(Repo.read("server/src/main/resources/application.yaml"));
        Map<String, Object> samples = Map.of("model.id", "llama-3.1-8b-instruct", "engine.ubatch-size", 256, "engine.threads", 0,
                "engine.threads-batch", 4, "engine.device-sampling", "auto");
        StringBuilder values = new StringBuilder("config:\n");
        Map<String, Object> given = new java.util.LinkedHashMap<>();
        String section = null;
        for (String key : schemaConfigKeys()) {
            Object v = Yaml.at(defaults, key);
            if (v == null) {
                v = samples.get(key);
            }
            assertThat(v).as("a value for %s (application.yaml has none: add a sample)", key).isNotNull();
            given.put(key, v);
            String[] parts = key.split("\\.");
            if (!parts[0].equals(section)) {
                section = parts[0];
                values.append("  ").append(section).append(":\n");
            }
            values.append("    ").append(parts[1]).append(": ").append(v instanceof String t ? "\"" + t + "\"" : v).append('\n');
        }
        Map<String, Object> config = config(KubeObjects.parseAll(Chart.renderWith("default", values.toString()), "every server default"));
        given.forEach((key, v) -> assertThat(String.valueOf(Yaml.at(config, key)))
                .as(key).isEqualTo(v instanceof Double d && d == Math.rint(d) ? String.valueOf(d.longValue()) : String.valueOf(v)));
        assertThat(ServerKeys.leaves(config)).isSubsetOf(ServerKeys.all());
    }

    @Test
    void extraEnvTakesExactlyTheVariablesOfTheKeysConfigTakes() {
        Set<String> names = new TreeSet<>(Yaml.strings(Yaml.at(schema(), "properties.extraEnv.items.properties.name.enum")));
        Set<String> expected = new TreeSet<>();
        schemaConfigKeys().forEach(k -> expected.add(ServerKeys.envName(k)));
        assertThat(names).isEqualTo(expected);
        for (String n : names) {
            String key = ServerKeys.keyOfEnv(n);
            assertThat(ServerKeys.all()).as(n).contains(key);
            assertThat(NOT_IN_CHART_CONFIG).as(n + " sets " + key).doesNotContainKey(key);
            assertThat(key).as(n).doesNotStartWith("auth.");
        }
        // The server's API key variables exist and are exactly what the schema keeps out.
        assertThat(ServerKeys.keyOfEnv("LLMREF_AUTH_API__KEYS")).isEqualTo("auth.api-keys");
        assertThat(names).doesNotContain("LLMREF_AUTH_API__KEYS", "LLMREF_AUTH_API__KEYS__FILE");
        // Only a literal value: no valueFrom, so nothing in extraEnv reads a Secret either.
        assertThat(Yaml.keys(Yaml.at(schema(), "properties.extraEnv.items.properties"))).containsExactlyInAnyOrder("name", "value");
    }

    @Test
    void extraEnvReachesTheServerContainerAndNoProfileCarriesAKeyInTheEnvironment() {
        Deployment d = deployment(KubeObjects.parseAll(Chart.renderWith("default",
                "extraEnv:\n  - name: LLMREF_ENGINE_SLOTS\n    value: \"8\"\n  - name: LLMREF_LIMITS_MAX__TOKENS\n    value: \"512\"\n"), "extraEnv"));
        assertThat(server(d).getEnv()).extracting(e -> e.getName() + "=" + e.getValue())
                .containsExactly("LLMREF_ENGINE_SLOTS=8", "LLMREF_LIMITS_MAX__TOKENS=512");
        for (String profile : List.of("default", "gpu", "mig", "cpu", "hardened-production")) {
            Container c = server(deployment(Chart.objects(profile)));
            List<io.fabric8.kubernetes.api.model.EnvVar> env = c.getEnv() == null ? List.of() : c.getEnv();
            assertThat(env).as(profile).noneMatch(e -> {
                String key = ServerKeys.keyOfEnv(e.getName());
                return key != null && key.startsWith("auth.") || e.getValue() != null && e.getValue().contains("-Dauth.");
            });
        }
    }

    /**
     * The server takes LLMREF_ variables before its config file, so a drain set through extraEnv is
     * the drain the pod runs: the grace period must cover that one, not config's.
     */
    @Test
    void theGracePeriodCoversADrainSetThroughExtraEnv() {
        String drain = "extraEnv:\n  - name: LLMREF_SERVER_SHUTDOWN__GRACE__MS\n    value: \"120000\"\n";
        assertThat(ServerKeys.keyOfEnv("LLMREF_SERVER_SHUTDOWN__GRACE__MS")).isEqualTo("server.shutdown-grace-ms");
        Deployment d = deployment(KubeObjects.parseAll(Chart.renderWith("default", drain + "terminationGracePeriodSeconds: 130\n"), "long drain"));
        assertThat(server(d).getEnv()).extracting(e -> e.getName() + "=" + e.getValue()).containsExactly("LLMREF_SERVER_SHUTDOWN__GRACE__MS=120000");
        long preStop = server(d).getLifecycle().getPreStop().getSleep().getSeconds();
        assertThat(d.getSpec().getTemplate().getSpec().getTerminationGracePeriodSeconds()).isGreaterThanOrEqualTo(preStop + 120 + 5);
        assertThatThrownBy(() -> Chart.renderWith("default", drain + "terminationGracePeriodSeconds: 129\n"))
                .hasMessageContaining("terminationGracePeriodSeconds (129) must be at least");
    }

    @ParameterizedTest
    @ValueSource(strings = {"default", "gpu", "mig", "cpu", "hardened-production"})
    void networkPolicyDeniesByDefault(String profile) {
        List<HasMetadata> objects = Chart.objects(profile);
        Deployment d = deployment(objects);
        NetworkPolicy np = KubeObjects.single(objects, NetworkPolicy.class);
        assertThat(NetworkPolicies.defaultDenyViolations(np)).isEmpty();
        assertThat(NetworkPolicies.selects(np, d.getSpec().getTemplate().getMetadata().getLabels())).isTrue();
        // The admin port (no auth) is open to the metrics scraper (and helm test), never to API clients.
        np.getSpec().getIngress().forEach(rule -> {
            boolean admin = rule.getPorts().stream().anyMatch(p -> "admin".equals(p.getPort().getValue()));
            boolean http = rule.getPorts().stream().anyMatch(p -> "http".equals(p.getPort().getValue()));
            boolean helmTest = rule.getFrom().stream().anyMatch(f -> f.getPodSelector() != null
                    && "helm-test".equals(f.getPodSelector().getMatchLabels().get("app.kubernetes.io/component")));
            assertThat(admin && http && !helmTest).as("one rule opening both ports to the same clients").isFalse();
        });
        // Egress: nothing, or DNS and the trace collector when the profile enables them.
        for (NetworkPolicyEgressRule e : np.getSpec().getEgress()) {
            assertThat(e.getPorts()).allMatch(p -> Set.of(53, 4318).contains(p.getPort().getIntVal()));
        }
        // The Services select the server pods; the admin Service is headless.
        for (Service s : KubeObjects.ofKind(objects, Service.class)) {
            assertThat(d.getSpec().getTemplate().getMetadata().getLabels()).containsAllEntriesOf(s.getSpec().getSelector());
        }
    }

    @Test
    void defaultProfileSchedulesOneWholeGpuOntoTheGpuPool() {
        Deployment d = deployment(Chart.objects("default"));
        PodSpec spec = d.getSpec().getTemplate().getSpec();
        assertThat(server(d).getResources().getLimits()).containsEntry("nvidia.com/gpu", new Quantity("1"));
        assertThat(spec.getNodeSelector()).containsEntry("nvidia.com/gpu.present", "true");
        assertThat(spec.getTolerations()).anyMatch(HelmChartTest::gpuToleration);
        assertThat(d.getSpec().getTemplate().getMetadata().getLabels()).containsEntry("ai.llmref/accelerator", "gpu");
        Map<String, Object> config = config(Chart.objects("default"));
        assertThat(Yaml.at(config, "model.gpu-layers")).isEqualTo(-1);
        assertThat(Yaml.at(config, "model.require-gpu")).as("a GPU pod on the CPU is not ready").isEqualTo(true);
        assertThat(spec.getRuntimeClassName()).isNull();
        assertThat(d.getSpec().getReplicas()).isEqualTo(1);
    }

    @Test
    void migProfileRequestsAMigSliceInsteadOfAWholeGpu() {
        Deployment d = deployment(Chart.objects("mig"));
        Map<String, Quantity> limits = server(d).getResources().getLimits();
        assertThat(limits).containsEntry("nvidia.com/mig-3g.40gb", new Quantity("1")).doesNotContainKey("nvidia.com/gpu");
        assertThat(d.getSpec().getTemplate().getSpec().getNodeSelector())
                .containsEntry("nvidia.com/gpu.present", "true").containsEntry("nvidia.com/mig.strategy", "mixed");
        assertThat(d.getSpec().getTemplate().getSpec().getTolerations()).anyMatch(HelmChartTest::gpuToleration);
    }

    @Test
    void cpuProfileAsksForNoGpuAndOffloadsNothing() {
        List<HasMetadata> objects = Chart.objects("cpu");
        Deployment d = deployment(objects);
        PodSpec spec = d.getSpec().getTemplate().getSpec();
        Container c = server(d);
        assertThat(c.getResources().getLimits().keySet()).noneMatch(k -> k.startsWith("nvidia.com/"));
        assertThat(c.getResources().getRequests().keySet()).noneMatch(k -> k.startsWith("nvidia.com/"));
        assertThat(spec.getNodeSelector()).doesNotContainKey("nvidia.com/gpu.present");
        assertThat(spec.getTolerations() == null ? List.<Toleration>of() : spec.getTolerations()).noneMatch(HelmChartTest::gpuToleration);
        assertThat(d.getSpec().getTemplate().getMetadata().getLabels()).containsEntry("ai.llmref/accelerator", "cpu");
        assertThat(Yaml.at(config(objects), "model.gpu-layers")).isEqualTo(0);
        assertThat(Yaml.at(config(objects), "model.require-gpu")).isEqualTo(false);
    }

    @Test
    void hardenedProductionProfile() {
        List<HasMetadata> objects = Chart.objects("hardened-production");
        Deployment d = deployment(objects);
        PodSpec spec = d.getSpec().getTemplate().getSpec();
        assertThat(server(d).getImage()).as("pulled by digest").matches(".+@sha256:[0-9a-f]{64}");
        assertThat(spec.getRuntimeClassName()).isEqualTo("nvidia");
        assertThat(spec.getPriorityClassName()).isEqualTo("llm-inference");
        assertThat(spec.getTopologySpreadConstraints()).isNotEmpty();
        assertThat(d.getSpec().getReplicas()).as("KEDA owns the replica count").isNull();
        assertThat(server(d).getResources().getLimits()).containsEntry("nvidia.com/gpu", new Quantity("1"));
        assertThat(volume(d, mount(server(d), "/tmp").getName()).getEmptyDir().getMedium()).isEqualTo("Memory");
        // The model: an image volume, one read-only copy per pod (no volume shared between pods), by digest.
        Volume model = volume(d, mount(server(d), "/models").getName());
        assertThat(model.getPersistentVolumeClaim()).isNull();
        assertThat(model.getImage().getReference()).matches(".+@sha256:[0-9a-f]{64}");
        assertThat(spec.getVolumes()).as("no PVC, so nothing any other pod mounts").allMatch(v -> v.getPersistentVolumeClaim() == null);
        assertThat(KubeObjects.single(objects, PodDisruptionBudget.class).getSpec().getMinAvailable().getIntVal()).isEqualTo(2);

        NetworkPolicy np = KubeObjects.single(objects, NetworkPolicy.class);
        assertThat(np.getSpec().getIngress().get(0).getFrom()).singleElement()
                .satisfies(f -> assertThat(f.getNamespaceSelector().getMatchLabels()).containsEntry("kubernetes.io/metadata.name", "api-gateway"));
        assertThat(np.getSpec().getEgress()).hasSize(2);

        GenericKubernetesResource keda = single(KubeObjects.generic(objects, "ScaledObject"));
        assertThat(keda.getApiVersion()).isEqualTo("keda.sh/v1alpha1");
        assertThat(Yaml.at(keda.getAdditionalProperties(), "spec.scaleTargetRef.name")).isEqualTo(d.getMetadata().getName());
        List<?> triggers = (List<?>) Yaml.at(keda.getAdditionalProperties(), "spec.triggers");
        assertThat((String) Yaml.at(triggers.get(0), "metadata.query")).contains("llmref_queue_depth");
        assertThat(KubeObjects.ofKind(objects, HorizontalPodAutoscaler.class)).isEmpty();

        GenericKubernetesResource sm = single(KubeObjects.generic(objects, "ServiceMonitor"));
        assertThat(sm.getMetadata().getLabels()).containsEntry("release", "kube-prometheus-stack");
        assertThat(Yaml.at(sm.getAdditionalProperties(), "spec.podTargetLabels")).isEqualTo(List.of("ai.llmref/accelerator"));
        Service admin = KubeObjects.ofKind(objects, Service.class).stream()
                .filter(s -> s.getSpec().getPorts().stream().anyMatch(p -> "admin".equals(p.getName()))).findFirst().orElseThrow();
        @SuppressWarnings("unchecked")
        Map<String, String> smSelector = (Map<String, String>) Yaml.at(sm.getAdditionalProperties(), "spec.selector.matchLabels");
        assertThat(admin.getMetadata().getLabels()).containsAllEntriesOf(smSelector);

        // the file's rules, with every metric selector of an expression scoped to the release's pods
        GenericKubernetesResource rule = single(KubeObjects.generic(objects, "PrometheusRule"));
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> groups = (List<Map<String, Object>>) Yaml.at(rule.getAdditionalProperties(), "spec.groups");
        String scope = "namespace=\"" + Chart.NAMESPACE + "\",pod=~\"" + Chart.RELEASE + "-llmref-[a-z0-9]+-[a-z0-9]+\"";
        assertThat(groups.toString()).contains("absent(llmref_ready{" + scope + "})");
        for (Map<String, Object> g : groups) {
            @SuppressWarnings("unchecked")
            List<Map<String, Object>> rules = (List<Map<String, Object>>) g.get("rules");
            for (Map<String, Object> r : rules) {
                String expr = (String) r.get("expr");
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?<![A-Za-z0-9_])llmref_[a-z_]+(?![a-z_])(\\{[^}]*})?").matcher(expr);
                int selectors = 0;
                while (m.find()) {
                    assertThat(m.group()).as(r.get("alert") + ": " + expr).contains("{" + scope);
                    selectors++;
                }
                assertThat(selectors).as(expr).isPositive();
                r.put("expr", expr.replace("{" + scope + "}", "").replace("{" + scope + ",", "{"));
            }
        }
        assertThat(groups).isEqualTo(Yaml.map(Repo.read("observability/prometheus/llmref-alerts.yaml")).get("groups"));

    }

    /**
     * KEDA's query finds the release's pods by the labels every scrape path of the docs gives the
     * series (the chart's ServiceMonitor and observability/'s collector example both set namespace
     * and pod; only the ServiceMonitor sets service), and by the names the Deployment gives its pods.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llm", "llm.v2"})
    void kedaQueriesTheReleasesPodsByLabelsEveryScrapePathSets(String release) {
        String values = "autoscaling:\n  keda:\n    enabled: true\nmetrics:\n  serviceMonitor:\n    enabled: false\n";
        Path f = writeValues(values);
        List<HasMetadata> objects;
        try {
            objects = KubeObjects.parseAll(Chart.template(f).withName(release).call(), "keda " + release);
        } finally {
            f.toFile().delete();
        }
        Deployment d = deployment(objects);
        GenericKubernetesResource keda = single(KubeObjects.generic(objects, "ScaledObject"));
        String query = (String) Yaml.at(((List<?>) Yaml.at(keda.getAdditionalProperties(), "spec.triggers")).get(0), "metadata.query");
        assertThat(MetricNames.inPromQl(query)).containsExactly("llmref_queue_depth");

        Set<String> collectorLabels = new TreeSet<>();
        for (Object r : (List<?>) Yaml.at(((List<?>) Yaml.at(Yaml.map(Repo.read(ObservabilityTest.COLLECTOR)),
                "receivers.prometheus.config.scrape_configs")).get(0), "relabel_configs")) {
            if (Yaml.at(r, "target_label") != null) {
                collectorLabels.add((String) Yaml.at(r, "target_label"));
            }
        }
        Map<String, String> matchers = new java.util.LinkedHashMap<>();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("([a-z_]+)\\s*(=~|=)\\s*\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(query);
        while (m.find()) {
            matchers.put(m.group(1) + m.group(2), m.group(3).replace("\\\\", "\\"));
        }
        assertThat(matchers.keySet()).as(query).containsExactlyInAnyOrder("namespace=", "pod=~");
        assertThat(collectorLabels).as("labels the collector example sets").contains("namespace", "pod");
        assertThat(matchers.get("namespace=")).isEqualTo(Chart.NAMESPACE);
        // PromQL regexes are anchored, as String.matches is.
        String pods = matchers.get("pod=~");
        String name = d.getMetadata().getName();
        assertThat(name + "-7c9d8f6b5d-x2kqz").as("a pod of this Deployment").matches(pods);
        assertThat(name + "-test").as("the helm test pod").doesNotMatch(pods);
        assertThat(name + "-canary-7c9d8f6b5d-x2kqz").as("a pod of another Deployment").doesNotMatch(pods);
        if (name.contains(".")) {
            assertThat(name.replace('.', 'x') + "-7c9d8f6b5d-x2kqz").as("a dot in the name is not a wildcard").doesNotMatch(pods);
        }
    }

    private static Path writeValues(String yaml) {
        try {
            Path f = Files.createTempFile(Repo.target(), "values-", ".yaml");
            Files.writeString(f, yaml);
            return f;
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /**
     * A PDB that allows no eviction at the fewest replicas the release may run blocks every drain of
     * their nodes (node pool upgrades, autoscaler scale-down); one that allows at least one renders,
     * with the disruption controller's rounding (percentages round up).
     */
    @Test
    void podDisruptionBudgetsThatLeaveRoomForOneEvictionRender() {
        for (String values : List.of("replicaCount: 3\npodDisruptionBudget:\n  minAvailable: 2\n",
                "replicaCount: 3\npodDisruptionBudget:\n  minAvailable: \"50%\"\n",
                "replicaCount: 1\npodDisruptionBudget:\n  maxUnavailable: \"10%\"\n",
                "replicaCount: 0\npodDisruptionBudget:\n  minAvailable: 1\n",
                "autoscaling:\n  hpa:\n    enabled: true\n    minReplicas: 2\npodDisruptionBudget:\n  minAvailable: 1\n")) {
            PodDisruptionBudget pdb = KubeObjects.single(KubeObjects.parseAll(Chart.renderWith("default", values), values), PodDisruptionBudget.class);
            assertThat(KubeObjects.unknownFields(pdb)).as(values).isEmpty();
            assertThat(pdb.getSpec().getMinAvailable() != null || pdb.getSpec().getMaxUnavailable() != null).as(values).isTrue();
        }
        assertThat(KubeObjects.single(Chart.objects("hardened-production"), PodDisruptionBudget.class).getSpec().getMinAvailable().getIntVal())
                .as("hardened-production: 2 of at least 3").isEqualTo(2);
    }

    @Test
    void hpaScalesOnTheQueueDepthMetric() {
        List<HasMetadata> objects = KubeObjects.parseAll(Chart.renderWith("default", "autoscaling:\n  hpa:\n    enabled: true\n"), "hpa");
        HorizontalPodAutoscaler hpa = KubeObjects.single(objects, HorizontalPodAutoscaler.class);
        assertThat(hpa.getSpec().getMetrics()).singleElement()
                .satisfies(m -> assertThat(m.getPods().getMetric().getName()).isEqualTo("llmref_queue_depth"));
        assertThat(hpa.getSpec().getScaleTargetRef().getName()).isEqualTo(deployment(objects).getMetadata().getName());
        assertThat(deployment(objects).getSpec().getReplicas()).isNull();
        objects.forEach(o -> assertThat(KubeObjects.unknownFields(o)).isEmpty());
    }

    @Test
    void imageVolumeCarriesTheModelWhenAsked() {
        List<HasMetadata> objects = KubeObjects.parseAll(Chart.renderWith("default",
                "model:\n  source: image\n  image:\n    reference: registry.example.com/models/llama:q4\n"), "image volume");
        Deployment d = deployment(objects);
        Volume model = volume(d, mount(server(d), "/models").getName());
        assertThat(model.getImage().getReference()).isEqualTo("registry.example.com/models/llama:q4");
        assertThat(PodPosture.violations("image volume", d.getSpec().getTemplate().getSpec())).isEmpty();
    }

    /**
     * The deployment model says a pod shares no volume with another; a model PVC is one claim for
     * every replica. docs/deployment.md (2.3) keeps it as a stated departure on the grounds checked
     * here: read-only in the volume and in the mount of every pod that has it, and no pod (the helm
     * test pod included) that mounts it writable.
     */
    @Test
    void aSharedModelClaimIsReadOnlyEverywhereAndADocumentedDeparture() {
        Map<String, List<HasMetadata>> outputs = new java.util.LinkedHashMap<>();
        for (String profile : List.of("default", "gpu", "mig", "cpu", "hardened-production")) {
            outputs.put(profile, Chart.objects(profile));
        }
        for (String dir : List.of("k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu")) {
            outputs.put(dir, KustomizeTest.build(dir));
        }
        int shared = 0;
        for (var e : outputs.entrySet()) {
            List<PodSpec> pods = new ArrayList<>();
            KubeObjects.ofKind(e.getValue(), Deployment.class).forEach(d -> pods.add(d.getSpec().getTemplate().getSpec()));
            KubeObjects.ofKind(e.getValue(), Pod.class).forEach(p -> pods.add(p.getSpec()));
            for (PodSpec spec : pods) {
                for (Volume v : spec.getVolumes() == null ? List.<Volume>of() : spec.getVolumes()) {
                    if (v.getPersistentVolumeClaim() == null) {
                        continue;
                    }
                    shared++;
                    assertThat(v.getPersistentVolumeClaim().getReadOnly()).as(e.getKey() + " claim " + v.getName()).isTrue();
                    spec.getContainers().forEach(c -> c.getVolumeMounts().stream().filter(m -> m.getName().equals(v.getName()))
                            .forEach(m -> assertThat(m.getReadOnly()).as(e.getKey() + " mount of " + v.getName()).isTrue()));
                }
            }
        }
        assertThat(shared).as("the default profile and k8s/ use the shared claim").isPositive();
        String doc = Repo.read("docs/deployment.md");
        assertThat(doc).contains("does not share volumes with other pods", "**The shared PVC departs from the deployment model.**");
    }

    @Test
    void namespaceGuardsAreOffByDefault() {
        for (String profile : List.of("default", "gpu", "mig", "cpu", "hardened-production")) {
            assertThat(kinds(Chart.objects(profile))).as(profile).doesNotContain("ResourceQuota", "LimitRange");
        }
    }

    /** namespaceGuards: k8s/base's quota and limit range for the release's namespace, which the release's own pods fit. */
    @ParameterizedTest
    @ValueSource(strings = {"default", "cpu", "hardened-production"})
    void namespaceGuardsRenderK8sBasesQuotaAndLimitRangeWhichTheWorkloadFits(String profile) {
        List<HasMetadata> objects = KubeObjects.parseAll(Chart.renderWith(profile, "namespaceGuards:\n  enabled: true\n"), "guards " + profile);
        ResourceQuota quota = KubeObjects.single(objects, ResourceQuota.class);
        LimitRange limits = KubeObjects.single(objects, LimitRange.class);
        for (HasMetadata o : List.of(quota, limits)) {
            assertThat(KubeObjects.unknownFields(o)).isEmpty();
            assertThat(o.getMetadata().getNamespace()).as("the release's namespace, as Helm applies it").isNull();
            assertThat(o.getMetadata().getLabels()).containsEntry("app.kubernetes.io/instance", Chart.RELEASE)
                    .containsEntry("app.kubernetes.io/part-of", "ai-llm-reference-app");
        }
        // The same as k8s/base's.
        ResourceQuota base = KubeObjects.single(KubeObjects.parseAll(Repo.read("k8s/base/resourcequota.yaml"), "base quota"), ResourceQuota.class);
        LimitRange baseLimits = KubeObjects.single(KubeObjects.parseAll(Repo.read("k8s/base/limitrange.yaml"), "base limits"), LimitRange.class);
        assertThat(quota.getSpec().getHard()).isEqualTo(base.getSpec().getHard());
        assertThat(limits.getSpec().getLimits()).isEqualTo(baseLimits.getSpec().getLimits());
        // The release's own pods fit: each server container under the container ceiling, the most
        // replicas (and their GPUs) under the quota.
        Deployment d = deployment(objects);
        Map<String, Quantity> max = limits.getSpec().getLimits().stream().filter(l -> l.getType().equals("Container")).findFirst().orElseThrow().getMax();
        server(d).getResources().getLimits().forEach((resource, q) -> {
            assertThat(max).as("a ceiling for " + resource).containsKey(resource);
            assertThat(q.getNumericalAmount()).as(resource).isLessThanOrEqualTo(max.get(resource).getNumericalAmount());
        });
        Map<String, Object> values = Yaml.map(Repo.read(profile.equals("default") ? "helm/llmref/values.yaml" : "helm/profiles/" + profile + ".yaml"));
        Object keda = Yaml.at(values, "autoscaling.keda.maxReplicaCount");
        int replicas = keda != null ? (Integer) keda : d.getSpec().getReplicas();
        java.math.BigDecimal pods = quota.getSpec().getHard().get("pods").getNumericalAmount();
        assertThat(java.math.BigDecimal.valueOf(replicas + 1)).as("replicas and the helm test pod").isLessThanOrEqualTo(pods);
        Quantity gpu = server(d).getResources().getLimits().get("nvidia.com/gpu");
        if (gpu != null) {
            assertThat(gpu.getNumericalAmount()).isLessThanOrEqualTo(quota.getSpec().getHard().get("requests.nvidia.com/gpu").getNumericalAmount());
        }
    }

    @Test
    void helmTestPodChecksReadinessAuthAndMetrics() {
        Pod test = KubeObjects.single(Chart.objects("default"), Pod.class);
        assertThat(test.getMetadata().getAnnotations()).containsEntry(Chart.HOOK_ANNOTATION, "test");
        String script = String.join("\n", test.getSpec().getContainers().get(0).getCommand());
        assertThat(script).contains("/health/ready", "401", "llmref_ready");
    }

    static Stream<Arguments> badValues() {
        return Stream.of(
                Arguments.of("negative GPU count", "gpu:\n  count: -1\n", "at '/gpu/count': minimum"),
                Arguments.of("zero GPUs on a GPU profile", "gpu:\n  count: 0\n", "at '/gpu/count': minimum"),
                Arguments.of("GPU count as text", "gpu:\n  count: two\n", "at '/gpu/count'"),
                Arguments.of("unknown GPU resource", "gpu:\n  resourceName: nvidia.com/gpus\n", "at '/gpu/resourceName'"),
                Arguments.of("missing CPU limit", "resources:\n  limits:\n    cpu: null\n", "missing property 'cpu'"),
                Arguments.of("missing memory limit", "resources:\n  limits:\n    memory: null\n", "missing property 'memory'"),
                Arguments.of("no limits at all", "resources:\n  limits: null\n", "missing property 'limits'"),
                Arguments.of("GPU smuggled into resources", "resources:\n  limits:\n    nvidia.com/gpu: 2\n", "additional properties 'nvidia.com/gpu'"),
                Arguments.of("unknown top-level key", "replicas: 3\n", "additional properties 'replicas'"),
                Arguments.of("unknown nested key", "probes:\n  startup:\n    initialDelay: 5\n", "additional properties 'initialDelay'"),
                Arguments.of("misspelt server setting", "config:\n  engine:\n    slot: 8\n", "additional properties 'slot'"),
                Arguments.of("unknown split mode", "config:\n  model:\n    split-mode: rows\n", "at '/config/model/split-mode'"),
                Arguments.of("tensor parallelism without flash attention",
                        "config:\n  model:\n    split-mode: tensor\n  engine:\n    flash-attention: disabled\n", "at '/config/engine/flash-attention'"),
                Arguments.of("tensor split not numbers", "config:\n  model:\n    tensor-split: \"3;1\"\n", "at '/config/model/tensor-split'"),
                Arguments.of("unknown KV cache type", "config:\n  engine:\n    kv-cache-type-k: q3_k\n", "at '/config/engine/kv-cache-type-k'"),
                Arguments.of("quantized V cache without flash attention",
                        "config:\n  engine:\n    kv-cache-type-v: q8_0\n    flash-attention: disabled\n", "at '/config/engine/kv-cache-type-v'"),
                Arguments.of("chart-owned server setting", "config:\n  server:\n    port: 80\n", "additional properties 'port'"),
                Arguments.of("root user", "securityContext:\n  runAsUser: 0\n", "at '/securityContext/runAsUser': minimum"),
                Arguments.of("unconfined seccomp", "securityContext:\n  seccompProfile:\n    type: Unconfined\n", "at '/securityContext/seccompProfile/type'"),
                Arguments.of("hostPath model", "model:\n  hostPath: /data/models\n", "additional properties 'hostPath'"),
                Arguments.of("latest tag", "image:\n  tag: latest\n", "at '/image/tag'"),
                Arguments.of("short digest", "image:\n  digest: sha256:abc\n", "at '/image/digest'"),
                Arguments.of("auth without a Secret", "auth:\n  existingSecret: \"\"\n", "at '/auth/existingSecret'"),
                Arguments.of("a secret through extraEnv", "extraEnv:\n  - name: AWS_SECRET_ACCESS_KEY\n    value: x\n", "at '/extraEnv/0/name'"),
                Arguments.of("an API key as a literal in extraEnv",
                        "extraEnv:\n  - name: LLMREF_AUTH_API__KEYS\n    value: sk-0123456789abcdef0123\n", "at '/extraEnv/0/name'"),
                Arguments.of("an API key from a Secret through extraEnv", "extraEnv:\n  - name: LLMREF_AUTH_API__KEYS\n"
                        + "    valueFrom:\n      secretKeyRef:\n        name: keys\n        key: api-keys\n", "at '/extraEnv/0"),
                Arguments.of("another key file through extraEnv",
                        "extraEnv:\n  - name: LLMREF_AUTH_API__KEYS__FILE\n    value: /tmp/keys\n", "at '/extraEnv/0/name'"),
                Arguments.of("an auth key after the API key", "extraEnv:\n  - name: LLMREF_ENGINE_SLOTS\n    value: \"8\"\n"
                        + "  - name: LLMREF_AUTH_API__KEYS\n    value: sk-0123456789abcdef0123\n", "at '/extraEnv/1/name'"),
                Arguments.of("a chart-owned key through extraEnv", "extraEnv:\n  - name: LLMREF_SERVER_PORT\n    value: \"80\"\n", "at '/extraEnv/0/name'"),
                Arguments.of("a misspelt key through extraEnv", "extraEnv:\n  - name: LLMREF_ENGINE_SLOT\n    value: \"8\"\n", "at '/extraEnv/0/name'"),
                Arguments.of("an API key as a system property", "jvmOptions: \"-Xss1m -Dauth.api-keys=sk-0123456789abcdef0123\"\n", "at '/jvmOptions'"),
                Arguments.of("a server setting as a system property", "jvmOptions: \"-Dserver.port=80\"\n", "at '/jvmOptions'"),
                Arguments.of("API keys in the server config", "config:\n  auth:\n    api-keys: sk-0123456789abcdef0123\n", "additional properties 'auth'"),
                Arguments.of("the model path in the server config", "config:\n  model:\n    path: /etc/passwd\n", "additional properties 'path'"),
                Arguments.of("unknown chat template mode", "config:\n  model:\n    chat-template-mode: mustache\n", "at '/config/model/chat-template-mode'"),
                Arguments.of("request line limit below the server's minimum", "config:\n  limits:\n    max-request-line-bytes: 100\n",
                        "at '/config/limits/max-request-line-bytes': minimum"),
                Arguments.of("header timeout above the server's maximum", "config:\n  limits:\n    header-timeout-ms: 3600001\n",
                        "at '/config/limits/header-timeout-ms': maximum"),
                Arguments.of("tmp on huge pages", "tmp:\n  medium: HugePages-2Mi\n", "at '/tmp/medium'"),
                Arguments.of("tmp without a size limit", "tmp:\n  sizeLimit: null\n", "missing property 'sizeLimit'"),
                Arguments.of("model path escaping the volume", "model:\n  file: ../etc/passwd.gguf\n", "at '/model/file'"),
                Arguments.of("privileged port", "ports:\n  http: 80\n", "at '/ports/http': minimum"),
                Arguments.of("the API on the admin port", "ports:\n  http: 9090\n", "ports.http and ports.admin (9090) must differ"),
                Arguments.of("grace shorter than the drain", "terminationGracePeriodSeconds: 10\n", "terminationGracePeriodSeconds (10) must be at least"),
                Arguments.of("grace shorter than a drain set through extraEnv", "extraEnv:\n  - name: LLMREF_SERVER_SHUTDOWN__GRACE__MS\n"
                        + "    value: \"120000\"\n", "terminationGracePeriodSeconds (45) must be at least preStopSleepSeconds + server.shutdown-grace-ms/1000 + 5 = 130"
                        + " (server.shutdown-grace-ms 120000, from extraEnv LLMREF_SERVER_SHUTDOWN__GRACE__MS)"),
                Arguments.of("more than 64 replicas", "replicaCount: 65\n", "at '/replicaCount': maximum"),
                Arguments.of("an HPA beyond 64 replicas", "autoscaling:\n  hpa:\n    maxReplicas: 65\n", "at '/autoscaling/hpa/maxReplicas': maximum"),
                Arguments.of("KEDA beyond 64 replicas", "autoscaling:\n  keda:\n    maxReplicaCount: 1000\n",
                        "at '/autoscaling/keda/maxReplicaCount': maximum"),
                Arguments.of("namespace guards without a pods quota", "namespaceGuards:\n  enabled: true\n  resourceQuota:\n    hard:\n      pods: null\n",
                        "missing property 'pods'"),
                Arguments.of("a pods quota below the replicas", "replicaCount: 3\nnamespaceGuards:\n  enabled: true\n  resourceQuota:\n    hard:\n"
                        + "      pods: \"2\"\n", "namespaceGuards.resourceQuota.hard.pods (2) is below the most replicas the release may run (3)"),
                Arguments.of("a pods quota below the KEDA ceiling", "autoscaling:\n  keda:\n    enabled: true\n    maxReplicaCount: 20\n"
                        + "namespaceGuards:\n  enabled: true\n", "is below the most replicas the release may run (20)"),
                Arguments.of("a quantity that is not one", "namespaceGuards:\n  resourceQuota:\n    hard:\n      limits.cpu: lots\n",
                        "at '/namespaceGuards/resourceQuota/hard/limits.cpu'"),
                Arguments.of("an unknown limit range type", "namespaceGuards:\n  limitRange:\n    limits:\n      - type: Node\n",
                        "at '/namespaceGuards/limitRange/limits/0/type'"),
                Arguments.of("KEDA scaling to zero, where no pod exports the queue that would bring one back",
                        "autoscaling:\n  keda:\n    enabled: true\n    minReplicaCount: 0\n", "at '/autoscaling/keda/minReplicaCount': minimum"),
                Arguments.of("a PDB that keeps the one replica from ever being evicted", "podDisruptionBudget:\n  minAvailable: 1\n",
                        "podDisruptionBudget allows no eviction at 1 replica (minAvailable 1)"),
                Arguments.of("a PDB with maxUnavailable 0", "replicaCount: 3\npodDisruptionBudget:\n  maxUnavailable: 0\n",
                        "podDisruptionBudget allows no eviction at 3 replicas (maxUnavailable 0)"),
                Arguments.of("a PDB percentage that rounds up to every pod", "replicaCount: 3\npodDisruptionBudget:\n  minAvailable: \"90%\"\n",
                        "podDisruptionBudget allows no eviction at 3 replicas (minAvailable 90%)"),
                Arguments.of("a PDB at the HPA's floor", "autoscaling:\n  hpa:\n    enabled: true\n    minReplicas: 2\n"
                        + "podDisruptionBudget:\n  minAvailable: 2\n", "podDisruptionBudget allows no eviction at 2 replicas (minAvailable 2)"),
                Arguments.of("a PDB at KEDA's floor", "autoscaling:\n  keda:\n    enabled: true\n    minReplicaCount: 2\n"
                        + "podDisruptionBudget:\n  minAvailable: \"100%\"\n", "podDisruptionBudget allows no eviction at 2 replicas (minAvailable 100%)"),
                Arguments.of("a PDB count as text", "podDisruptionBudget:\n  maxUnavailable: \"1\"\n", "at '/podDisruptionBudget/maxUnavailable'"),
                Arguments.of("an HPA whose floor is above its ceiling", "autoscaling:\n  hpa:\n    enabled: true\n    minReplicas: 5\n    maxReplicas: 3\n",
                        "autoscaling.hpa.minReplicas (5) is above autoscaling.hpa.maxReplicas (3)"),
                Arguments.of("KEDA whose floor is above its ceiling", "autoscaling:\n  keda:\n    enabled: true\n    minReplicaCount: 6\n"
                        + "    maxReplicaCount: 2\n", "autoscaling.keda.minReplicaCount (6) is above autoscaling.keda.maxReplicaCount (2)"),
                Arguments.of("two autoscalers", "autoscaling:\n  hpa:\n    enabled: true\n  keda:\n    enabled: true\n", "not both"),
                Arguments.of("image volume without reference", "model:\n  source: image\n", "model.image.reference"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badValues")
    void rejectsBadValues(String what, String values, String mentioned) {
        assertThatThrownBy(() -> Chart.renderWith("default", values)).as(what).hasMessageContaining(mentioned);
    }

    @Test
    void rejectionsComeFromTheSchemaNotFromChance() {
        // The same mechanism, one message shown in full: Helm names the schema and the failing key.
        assertThatThrownBy(() -> Chart.renderWith("default", "gpu:\n  count: -1\n"))
                .hasMessageContaining("values don't meet the specifications of the schema")
                .hasMessageContaining("/gpu/count");
    }

    @Test
    void notesNameTheClientsTheNetworkPolicyAllows() {
        // the chart's own selector
        assertThat(Chart.notes("{}")).contains("a pod the NetworkPolicy allows: pods of this namespace labelled ai.llmref/client=true:");
        // an operator's own labels and namespaces, which the notes used to replace with the default label
        String own = Chart.notes("""
                networkPolicy:
                  ingress:
                    namespaces: [apps, batch]
                    podSelectors:
                      - matchLabels: {app: chat-ui, tier: web}
                      - matchExpressions: [{key: team, operator: In, values: [ml]}]
                """);
        assertThat(own).contains("pods of this namespace labelled app=chat-ui,tier=web; or pods of this namespace labelled team In [ml]; "
                + "or any pod of namespace(s) apps, batch:").doesNotContain("ai.llmref/client");
        assertThat(Chart.notes("networkPolicy:\n  ingress:\n    podSelectors: []\n"))
                .contains("it allows none yet: set networkPolicy.ingress.podSelectors or networkPolicy.ingress.namespaces");
        assertThat(Chart.notes("networkPolicy:\n  enabled: false\n")).contains("Call the API from any pod (networkPolicy.enabled is false):");
    }

    // --- helpers ------------------------------------------------------------------------------

    static Deployment deployment(List<HasMetadata> objects) {
        return KubeObjects.single(objects, Deployment.class);
    }

    static Container server(Deployment d) {
        return d.getSpec().getTemplate().getSpec().getContainers().stream()
                .filter(c -> c.getName().equals("server")).findFirst().orElseThrow();
    }

    static VolumeMount mount(Container c, String path) {
        return c.getVolumeMounts().stream().filter(m -> m.getMountPath().equals(path)).findFirst()
                .orElseThrow(() -> new AssertionError("no mount at " + path));
    }

    static Volume volume(Deployment d, String name) {
        return d.getSpec().getTemplate().getSpec().getVolumes().stream().filter(v -> v.getName().equals(name)).findFirst()
                .orElseThrow(() -> new AssertionError("no volume " + name));
    }

    static Map<String, Object> config(List<HasMetadata> objects) {
        return Yaml.map(KubeObjects.single(objects, ConfigMap.class).getData().get("config.yaml"));
    }

    static String checksum(List<HasMetadata> objects) {
        return deployment(objects).getSpec().getTemplate().getMetadata().getAnnotations().get("checksum/config");
    }

    static boolean gpuToleration(Toleration t) {
        return "nvidia.com/gpu".equals(t.getKey()) && "Exists".equals(t.getOperator()) && "NoSchedule".equals(t.getEffect());
    }

    static <T> T single(List<T> list) {
        assertThat(list).hasSize(1);
        return list.get(0);
    }

    static Set<String> kinds(List<HasMetadata> objects) {
        Set<String> out = new TreeSet<>();
        objects.forEach(o -> out.add(o.getKind()));
        return out;
    }
}
