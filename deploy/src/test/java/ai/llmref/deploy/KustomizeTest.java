package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.LimitRange;
import io.fabric8.kubernetes.api.model.LimitRangeItem;
import io.fabric8.kubernetes.api.model.Namespace;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ResourceQuota;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * k8s/: the kustomize output of the base and of each overlay (built by kubectl's kustomize), and
 * every plain file on its own, parsed with the fabric8 model and held to the same rules as the chart.
 */
class KustomizeTest {
    private static final Map<String, List<HasMetadata>> BUILT = new ConcurrentHashMap<>();

    static List<HasMetadata> build(String dir) {
        return BUILT.computeIfAbsent(dir, d -> {
            Path kubectl = Repo.which("kubectl");
            if (kubectl == null) {
                throw new AssertionError("kubectl (for its built-in kustomize) is not on PATH; it is part of this project's"
                        + " machine image. Install kubectl to run the k8s/ checks.");
            }
            Repo.Result r = Repo.run(Duration.ofSeconds(60), Repo.root(), Map.of(), List.of(kubectl.toString(), "kustomize", d));
            assertThat(r.ok()).as("kubectl kustomize %s:\n%s", d, r.output()).isTrue();
            return KubeObjects.parseAll(r.output(), "kustomize " + d);
        });
    }

    @ParameterizedTest
    @ValueSource(strings = {"k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu"})
    void everyObjectParsesWithoutUnknownFieldsInTheDedicatedNamespace(String dir) {
        List<HasMetadata> objects = build(dir);
        assertThat(HelmChartTest.kinds(objects)).contains("Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy",
                "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget");
        List<String> unknown = new ArrayList<>();
        for (HasMetadata o : objects) {
            unknown.addAll(KubeObjects.unknownFields(o));
            if (!(o instanceof Namespace)) {
                assertThat(o.getMetadata().getNamespace()).as(KubeObjects.describe(o)).isEqualTo("llmref");
            }
        }
        assertThat(unknown).isEmpty();
    }

    @ParameterizedTest
    @ValueSource(strings = {"k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu"})
    void namespaceEnforcesPodSecurityRestrictedAndOptsIntoSignatureChecks(String dir) {
        Namespace ns = KubeObjects.single(build(dir), Namespace.class);
        assertThat(ns.getMetadata().getLabels())
                .containsEntry("pod-security.kubernetes.io/enforce", "restricted")
                .containsEntry("pod-security.kubernetes.io/audit", "restricted")
                .containsEntry("pod-security.kubernetes.io/warn", "restricted")
                .containsEntry("policy.sigstore.dev/include", "true");
    }

    @ParameterizedTest
    @ValueSource(strings = {"k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu"})
    void quotaAndLimitRangeBoundTheNamespaceGpusIncluded(String dir) {
        List<HasMetadata> objects = build(dir);
        Map<String, Quantity> hard = KubeObjects.single(objects, ResourceQuota.class).getSpec().getHard();
        assertThat(hard).containsKeys("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "pods",
                "requests.nvidia.com/gpu", "services.loadbalancers", "services.nodeports");
        LimitRange lr = KubeObjects.single(objects, LimitRange.class);
        LimitRangeItem container = lr.getSpec().getLimits().stream().filter(l -> l.getType().equals("Container")).findFirst().orElseThrow();
        assertThat(container.getDefault()).containsKeys("cpu", "memory");
        assertThat(container.getMax()).containsKeys("cpu", "memory", "nvidia.com/gpu");

        // The workload itself fits: its limits stay under the LimitRange and its GPU under the quota.
        Container c = HelmChartTest.server(KubeObjects.single(objects, Deployment.class));
        for (var e : c.getResources().getLimits().entrySet()) {
            Quantity max = container.getMax().get(e.getKey());
            assertThat(max).as("LimitRange max for " + e.getKey()).isNotNull();
            assertThat(e.getValue().getNumericalAmount()).as(e.getKey()).isLessThanOrEqualTo(max.getNumericalAmount());
        }
        Quantity gpu = c.getResources().getLimits().get("nvidia.com/gpu");
        if (gpu != null) {
            assertThat(gpu.getNumericalAmount()).isLessThanOrEqualTo(hard.get("requests.nvidia.com/gpu").getNumericalAmount());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu"})
    void networkPoliciesDenyByDefault(String dir) {
        List<HasMetadata> objects = build(dir);
        List<NetworkPolicy> nps = KubeObjects.ofKind(objects, NetworkPolicy.class);
        NetworkPolicy denyAll = nps.stream().filter(np -> NetworkPolicies.empty(np.getSpec().getPodSelector())).findFirst()
                .orElseThrow(() -> new AssertionError("no namespace-wide default-deny policy"));
        assertThat(denyAll.getSpec().getPolicyTypes()).containsExactlyInAnyOrder("Ingress", "Egress");
        assertThat(denyAll.getSpec().getIngress()).isNullOrEmpty();
        assertThat(denyAll.getSpec().getEgress()).isNullOrEmpty();
        Deployment d = KubeObjects.single(objects, Deployment.class);
        NetworkPolicy server = nps.stream().filter(np -> np != denyAll && NetworkPolicies.selects(np, d.getSpec().getTemplate().getMetadata().getLabels()))
                .findFirst().orElseThrow();
        nps.forEach(np -> assertThat(NetworkPolicies.defaultDenyViolations(np)).as(np.getMetadata().getName()).isEmpty());
        assertThat(NetworkPolicies.defaultDenyViolations(server)).isEmpty();
        assertThat(NetworkPolicies.selects(server, d.getSpec().getTemplate().getMetadata().getLabels())).isTrue();
        assertThat(server.getSpec().getEgress()).as("the server calls nothing").isNullOrEmpty();
        for (Service s : KubeObjects.ofKind(objects, Service.class)) {
            assertThat(d.getSpec().getTemplate().getMetadata().getLabels()).containsAllEntriesOf(s.getSpec().getSelector());
        }
    }

    /**
     * The two kinds of API client the server's policy admits reach the API port through the
     * namespace's default deny (which also denies a pod of this namespace its egress), resolve the
     * Service's name, and reach nothing else of the server: not its admin port.
     */
    @ParameterizedTest
    @ValueSource(strings = {"k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu"})
    void apiClientsReachTheApiPortAndOnlyIt(String dir) {
        List<HasMetadata> objects = build(dir);
        List<NetworkPolicy> nps = KubeObjects.ofKind(objects, NetworkPolicy.class);
        Deployment d = KubeObjects.single(objects, Deployment.class);
        // The API server adds kubernetes.io/metadata.name to every namespace.
        Map<String, String> nsLabels = new java.util.HashMap<>(KubeObjects.single(objects, Namespace.class).getMetadata().getLabels());
        nsLabels.put("kubernetes.io/metadata.name", "llmref");
        NetworkPolicies.Pod server = new NetworkPolicies.Pod("llmref", nsLabels, d.getSpec().getTemplate().getMetadata().getLabels());
        NetworkPolicies.Pod here = new NetworkPolicies.Pod("llmref", nsLabels, Map.of("ai.llmref/client", "true", "app", "client"));
        NetworkPolicies.Pod elsewhere = new NetworkPolicies.Pod("gateway",
                Map.of("kubernetes.io/metadata.name", "gateway", "ai.llmref/api-access", "true"), Map.of("app", "gateway"));
        NetworkPolicies.Pod dns = new NetworkPolicies.Pod("kube-system", Map.of("kubernetes.io/metadata.name", "kube-system"),
                Map.of("k8s-app", "kube-dns"));
        NetworkPolicies.Pod unlabelled = new NetworkPolicies.Pod("llmref", nsLabels, Map.of("app", "other"));
        Container c = HelmChartTest.server(d);
        int http = c.getPorts().stream().filter(p -> p.getName().equals("http")).findFirst().orElseThrow().getContainerPort();
        int admin = c.getPorts().stream().filter(p -> p.getName().equals("admin")).findFirst().orElseThrow().getContainerPort();
        for (NetworkPolicies.Pod client : List.of(here, elsewhere)) {
            assertThat(NetworkPolicies.admits(nps, client, server, http, "http")).as("%s to the API port", client).isTrue();
            assertThat(NetworkPolicies.admits(nps, client, server, admin, "admin")).as("%s to the admin port", client).isFalse();
        }
        assertThat(NetworkPolicies.admits(nps, here, dns, 53, "dns")).as("a client here resolves the Service's name").isTrue();
        assertThat(NetworkPolicies.admits(nps, unlabelled, server, http, "http")).as("an unlabelled pod here").isFalse();
        assertThat(NetworkPolicies.admits(nps, server, dns, 53, "dns")).as("the server calls nothing").isFalse();
    }

    @ParameterizedTest
    @ValueSource(strings = {"k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu"})
    void workloadHasTheRestrictedPostureAndRealProbes(String dir) {
        List<HasMetadata> objects = build(dir);
        Deployment d = KubeObjects.single(objects, Deployment.class);
        List<String> v = new ArrayList<>(PodPosture.violations(dir, d.getSpec().getTemplate().getSpec()));
        v.addAll(PodPosture.probeViolations(dir, HelmChartTest.server(d)));
        assertThat(v).isEmpty();

        // The generated ConfigMap (hash-suffixed name, so a change rolls the pods) is the one mounted.
        ConfigMap cm = KubeObjects.single(objects, ConfigMap.class);
        assertThat(cm.getMetadata().getName()).matches("llmref-config-[a-z0-9]{10}");
        assertThat(HelmChartTest.volume(d, "config").getConfigMap().getName()).isEqualTo(cm.getMetadata().getName());
        Map<String, Object> config = Yaml.map(cm.getData().get("config.yaml"));
        assertThat(ServerKeys.leaves(config)).isSubsetOf(ServerKeys.all());
        Container c = HelmChartTest.server(d);
        assertThat(c.getPorts()).extracting(p -> p.getName() + "=" + p.getContainerPort())
                .containsExactlyInAnyOrder("http=" + Yaml.at(config, "server.port"), "admin=" + Yaml.at(config, "server.admin-port"));
        assertThat(Yaml.at(config, "server.host")).isEqualTo("0.0.0.0");
        assertThat((String) Yaml.at(config, "auth.api-keys-file")).startsWith("/etc/llmref/secrets/");
        assertThat(c.getImage()).startsWith("registry.example.com/llmref/server:");
    }

    @ParameterizedTest
    @ValueSource(strings = {"k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu"})
    void tmpIsASmallTmpfsNotTheNodesDisk(String dir) {
        Deployment d = KubeObjects.single(build(dir), Deployment.class);
        Container c = HelmChartTest.server(d);
        Volume tmp = HelmChartTest.volume(d, HelmChartTest.mount(c, "/tmp").getName());
        assertThat(tmp.getEmptyDir().getMedium()).as("memory, not the node's disk").isEqualTo("Memory");
        assertThat(tmp.getEmptyDir().getSizeLimit()).isEqualTo(new Quantity("64Mi"));
        assertThat(c.getVolumeMounts()).filteredOn(m -> !m.getMountPath().equals("/tmp"))
                .as("every other mount read-only").allMatch(m -> Boolean.TRUE.equals(m.getReadOnly()));
    }

    @Test
    void gpuOverlaySchedulesOneGpuAndRequiresIt() {
        List<HasMetadata> objects = build("k8s/overlays/gpu");
        Deployment d = KubeObjects.single(objects, Deployment.class);
        PodSpec spec = d.getSpec().getTemplate().getSpec();
        assertThat(HelmChartTest.server(d).getResources().getLimits()).containsEntry("nvidia.com/gpu", new Quantity("1"));
        assertThat(spec.getNodeSelector()).containsEntry("nvidia.com/gpu.present", "true");
        assertThat(spec.getTolerations()).anyMatch(HelmChartTest::gpuToleration);
        assertThat(d.getSpec().getTemplate().getMetadata().getLabels()).containsEntry("ai.llmref/accelerator", "gpu");
        Map<String, Object> config = Yaml.map(KubeObjects.single(objects, ConfigMap.class).getData().get("config.yaml"));
        assertThat(Yaml.at(config, "model.require-gpu")).isEqualTo(true);
        assertThat(Yaml.at(config, "model.gpu-layers")).isEqualTo(-1);
    }

    @Test
    void cpuOverlayAsksForNoGpu() {
        List<HasMetadata> objects = build("k8s/overlays/cpu");
        Deployment d = KubeObjects.single(objects, Deployment.class);
        PodSpec spec = d.getSpec().getTemplate().getSpec();
        assertThat(HelmChartTest.server(d).getResources().getLimits().keySet()).noneMatch(k -> k.startsWith("nvidia.com/"));
        assertThat(spec.getTolerations()).isNullOrEmpty();
        assertThat(spec.getNodeSelector()).doesNotContainKey("nvidia.com/gpu.present");
        Map<String, Object> config = Yaml.map(KubeObjects.single(objects, ConfigMap.class).getData().get("config.yaml"));
        assertThat(Yaml.at(config, "model.gpu-layers")).isEqualTo(0);
    }

    @Test
    void everyPlainFileParsesOnItsOwn() {
        int parsed = 0;
        for (Path f : Repo.files(Repo.path("k8s"), ".yaml")) {
            String name = f.getFileName().toString();
            if (name.equals("kustomization.yaml") || name.equals("config.yaml")) {
                continue; // kustomize's own file; the server's config (checked above)
            }
            for (HasMetadata o : KubeObjects.parseAll(Repo.read(Repo.root().relativize(f).toString()), f.toString())) {
                assertThat(KubeObjects.unknownFields(o)).as(f.toString()).isEmpty();
                parsed++;
            }
        }
        assertThat(parsed).isGreaterThanOrEqualTo(15);
    }
}
