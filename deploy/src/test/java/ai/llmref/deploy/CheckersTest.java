package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The checks the other tests rely on, shown to catch what they are meant to catch. */
class CheckersTest {
    @Test
    void unknownFieldsAreFoundAtAnyDepth() {
        HasMetadata d = KubeObjects.parseAll("""
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: x, lables: {a: b}}
                spec:
                  selector: {matchLabels: {a: b}}
                  template:
                    metadata: {labels: {a: b}}
                    spec:
                      containers:
                        - name: c
                          image: i
                          securityContext: {readOnlyRootFileSystem: true}
                """, "typos").get(0);
        assertThat(KubeObjects.unknownFields(d)).hasSize(2)
                .anyMatch(s -> s.contains("lables")).anyMatch(s -> s.contains("readOnlyRootFileSystem"));
    }

    @Test
    void anUnhardenedPodFailsTheRestrictedPosture() {
        Pod p = (Pod) KubeObjects.parseAll("""
                apiVersion: v1
                kind: Pod
                metadata: {name: p}
                spec:
                  hostNetwork: true
                  volumes:
                    - {name: h, hostPath: {path: /}}
                    - {name: t, emptyDir: {}}
                  containers:
                    - name: c
                      image: i
                      ports: [{containerPort: 80, hostPort: 80}]
                      securityContext: {privileged: true, capabilities: {add: [NET_ADMIN]}}
                      volumeMounts: [{name: h, mountPath: /host}]
                """, "bad pod").get(0);
        List<String> v = PodPosture.violations("bad", p.getSpec());
        assertThat(String.join("\n", v)).contains("automountServiceAccountToken", "hostNetwork", "runAsNonRoot", "runAsUser",
                "seccompProfile", "appArmorProfile", "hostPath", "sizeLimit", "allowPrivilegeEscalation", "privileged",
                "readOnlyRootFilesystem", "drop must contain ALL", "adds capabilities", "hostPort 80", "limits are mandatory",
                "/host must be readOnly");
    }

    @Test
    void allowAllNetworkRulesAreCaught() {
        NetworkPolicy np = (NetworkPolicy) KubeObjects.parseAll("""
                apiVersion: networking.k8s.io/v1
                kind: NetworkPolicy
                metadata: {name: n}
                spec:
                  podSelector: {}
                  policyTypes: [Ingress]
                  ingress:
                    - {}
                    - from: [{namespaceSelector: {}}]
                      ports: [{port: 80}]
                  egress:
                    - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
                """, "open policy").get(0);
        assertThat(String.join("\n", NetworkPolicies.defaultDenyViolations(np))).contains("policyTypes", "without 'from'",
                "without 'ports'", "empty namespaceSelector", "ipBlock 0.0.0.0/0");
    }
}
