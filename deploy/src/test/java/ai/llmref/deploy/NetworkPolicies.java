package ai.llmref.deploy;

import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyEgressRule;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyIngressRule;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPeer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Default-deny checks: nothing is admitted that no rule names explicitly. */
final class NetworkPolicies {
    private NetworkPolicies() {}

    static List<String> defaultDenyViolations(NetworkPolicy np) {
        String w = "NetworkPolicy/" + np.getMetadata().getName();
        List<String> v = new ArrayList<>();
        List<String> types = np.getSpec().getPolicyTypes() == null ? List.of() : np.getSpec().getPolicyTypes();
        if (!types.contains("Ingress") || !types.contains("Egress")) {
            v.add(w + ": policyTypes must list Ingress and Egress (whatever no rule admits is denied), has " + types);
        }
        for (NetworkPolicyIngressRule r : list(np.getSpec().getIngress())) {
            if (r.getFrom() == null || r.getFrom().isEmpty()) {
                v.add(w + ": an ingress rule without 'from' admits every source");
            }
            if (r.getPorts() == null || r.getPorts().isEmpty()) {
                v.add(w + ": an ingress rule without 'ports' admits every port");
            }
            list(r.getFrom()).forEach(p -> peer(v, w, p));
        }
        for (NetworkPolicyEgressRule r : list(np.getSpec().getEgress())) {
            if (r.getTo() == null || r.getTo().isEmpty()) {
                v.add(w + ": an egress rule without 'to' admits every destination");
            }
            if (r.getPorts() == null || r.getPorts().isEmpty()) {
                v.add(w + ": an egress rule without 'ports' admits every port");
            }
            list(r.getTo()).forEach(p -> peer(v, w, p));
        }
        return v;
    }

    private static void peer(List<String> v, String w, NetworkPolicyPeer p) {
        if (p.getIpBlock() != null) {
            v.add(w + ": ipBlock " + p.getIpBlock().getCidr() + " (peers are selected by namespace and pod labels)");
        }
        if (p.getNamespaceSelector() != null && empty(p.getNamespaceSelector())) {
            v.add(w + ": an empty namespaceSelector admits every namespace");
        }
    }

    /** Whether the policy's podSelector (matchLabels only) selects pods with these labels. */
    static boolean selects(NetworkPolicy np, Map<String, String> podLabels) {
        LabelSelector s = np.getSpec().getPodSelector();
        if (s.getMatchExpressions() != null && !s.getMatchExpressions().isEmpty()) {
            throw new AssertionError("matchExpressions in podSelector are not evaluated by this test");
        }
        Map<String, String> want = s.getMatchLabels() == null ? Map.of() : s.getMatchLabels();
        return want.entrySet().stream().allMatch(e -> e.getValue().equals(podLabels.get(e.getKey())));
    }

    /**
     * Whether the policies admit a connection from one pod to another's port (by number and name),
     * as an enforcing CNI would: each direction is open unless a policy of the pod's namespace
     * selects the pod for that direction, and then only what one of those policies' rules names.
     * Pods are (namespace, namespace labels, pod labels); selectors by matchLabels only.
     */
    static boolean admits(List<NetworkPolicy> policies, Pod from, Pod to, int port, String portName) {
        return allowed(policies, from, to, port, portName, true) && allowed(policies, to, from, port, portName, false);
    }

    record Pod(String namespace, Map<String, String> namespaceLabels, Map<String, String> labels) {}

    private static boolean allowed(List<NetworkPolicy> policies, Pod self, Pod peer, int port, String portName, boolean egress) {
        String type = egress ? "Egress" : "Ingress";
        boolean selected = false;
        for (NetworkPolicy np : policies) {
            List<String> types = np.getSpec().getPolicyTypes() == null ? List.of("Ingress") : np.getSpec().getPolicyTypes();
            if (!self.namespace().equals(np.getMetadata().getNamespace()) || !types.contains(type) || !selects(np, self.labels())) {
                continue;
            }
            selected = true;
            List<List<NetworkPolicyPeer>> peers = new ArrayList<>();
            List<List<io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPort>> ports = new ArrayList<>();
            if (egress) {
                list(np.getSpec().getEgress()).forEach(r -> { peers.add(list(r.getTo())); ports.add(list(r.getPorts())); });
            } else {
                list(np.getSpec().getIngress()).forEach(r -> { peers.add(list(r.getFrom())); ports.add(list(r.getPorts())); });
            }
            for (int i = 0; i < peers.size(); i++) {
                boolean peerOk = peers.get(i).isEmpty() || peers.get(i).stream().anyMatch(p -> matches(p, np.getMetadata().getNamespace(), peer));
                boolean portOk = ports.get(i).isEmpty() || ports.get(i).stream().anyMatch(p -> p.getPort() == null
                        || (p.getPort().getIntVal() != null ? p.getPort().getIntVal() == port : p.getPort().getStrVal().equals(portName)));
                if (peerOk && portOk) {
                    return true;
                }
            }
        }
        return !selected;
    }

    private static boolean matches(NetworkPolicyPeer p, String policyNamespace, Pod peer) {
        if (p.getIpBlock() != null) {
            return false;
        }
        boolean ns = p.getNamespaceSelector() == null ? policyNamespace.equals(peer.namespace()) : labelsMatch(p.getNamespaceSelector(), peer.namespaceLabels());
        return ns && (p.getPodSelector() == null || labelsMatch(p.getPodSelector(), peer.labels()));
    }

    private static boolean labelsMatch(LabelSelector s, Map<String, String> labels) {
        if (s.getMatchExpressions() != null && !s.getMatchExpressions().isEmpty()) {
            throw new AssertionError("matchExpressions are not evaluated by this test");
        }
        Map<String, String> want = s.getMatchLabels() == null ? Map.of() : s.getMatchLabels();
        return want.entrySet().stream().allMatch(e -> e.getValue().equals(labels.get(e.getKey())));
    }

    static boolean empty(LabelSelector s) {
        return (s.getMatchLabels() == null || s.getMatchLabels().isEmpty())
                && (s.getMatchExpressions() == null || s.getMatchExpressions().isEmpty());
    }

    private static <T> List<T> list(List<T> l) {
        return l == null ? List.of() : l;
    }
}
