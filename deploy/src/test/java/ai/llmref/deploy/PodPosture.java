package ai.llmref.deploy;

import io.fabric8.kubernetes.api.model.Capabilities;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.PodSecurityContext;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.SecurityContext;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * The pod posture the deployment model demands, checked field by field: Pod Security Standard
 * "restricted" plus what this project adds (read-only root, no service-account token, limits,
 * size-limited temp, read-only mounts but /tmp). Returns violations rather than failing at the
 * first, so one run names them all.
 */
final class PodPosture {
    /** Volume types PSS "restricted" admits (image volumes: admitted since Kubernetes 1.33). */
    private static final Set<String> RESTRICTED_VOLUME_TYPES = Set.of(
            "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret", "image");

    private PodPosture() {}

    static List<String> violations(String where, PodSpec spec) {
        List<String> v = new ArrayList<>();
        if (!Boolean.FALSE.equals(spec.getAutomountServiceAccountToken())) {
            v.add(where + ": automountServiceAccountToken must be false");
        }
        for (var f : Map.of("hostNetwork", nz(spec.getHostNetwork()), "hostPID", nz(spec.getHostPID()),
                "hostIPC", nz(spec.getHostIPC())).entrySet()) {
            if (f.getValue()) {
                v.add(where + ": " + f.getKey() + " must not be true");
            }
        }
        PodSecurityContext psc = spec.getSecurityContext();
        if (psc == null) {
            v.add(where + ": no pod securityContext");
            psc = new PodSecurityContext();
        }
        if (!Boolean.TRUE.equals(psc.getRunAsNonRoot())) {
            v.add(where + ": pod securityContext.runAsNonRoot must be true");
        }
        if (psc.getRunAsUser() == null || psc.getRunAsUser() <= 0) {
            v.add(where + ": pod securityContext.runAsUser must be a numeric non-root uid, is " + psc.getRunAsUser());
        }
        if (psc.getRunAsGroup() == null || psc.getRunAsGroup() <= 0) {
            v.add(where + ": pod securityContext.runAsGroup must be a numeric non-root gid, is " + psc.getRunAsGroup());
        }
        String seccomp = psc.getSeccompProfile() == null ? null : psc.getSeccompProfile().getType();
        if (!"RuntimeDefault".equals(seccomp) && !"Localhost".equals(seccomp)) {
            v.add(where + ": pod seccompProfile must be RuntimeDefault or Localhost, is " + seccomp);
        }
        String apparmor = psc.getAppArmorProfile() == null ? null : psc.getAppArmorProfile().getType();
        if (!"RuntimeDefault".equals(apparmor) && !"Localhost".equals(apparmor)) {
            v.add(where + ": pod appArmorProfile must be RuntimeDefault or Localhost, is " + apparmor);
        }
        if (psc.getSysctls() != null && !psc.getSysctls().isEmpty()) {
            v.add(where + ": no sysctls");
        }
        Set<String> emptyDirs = new java.util.HashSet<>();
        for (Volume vol : list(spec.getVolumes())) {
            String type = volumeType(vol);
            if (!RESTRICTED_VOLUME_TYPES.contains(type)) {
                v.add(where + ": volume " + vol.getName() + " of type " + type + " is not allowed (hostPath and the like)");
            }
            if (vol.getEmptyDir() != null) {
                emptyDirs.add(vol.getName());
                if (vol.getEmptyDir().getSizeLimit() == null) {
                    v.add(where + ": emptyDir " + vol.getName() + " needs a sizeLimit");
                }
            }
            if (vol.getPersistentVolumeClaim() != null && !Boolean.TRUE.equals(vol.getPersistentVolumeClaim().getReadOnly())) {
                v.add(where + ": persistentVolumeClaim " + vol.getName() + " must be mounted readOnly");
            }
        }
        List<Container> all = new ArrayList<>(list(spec.getContainers()));
        all.addAll(list(spec.getInitContainers()));
        if (spec.getEphemeralContainers() != null && !spec.getEphemeralContainers().isEmpty()) {
            v.add(where + ": no ephemeral containers in a manifest");
        }
        for (Container c : all) {
            String cw = where + " container " + c.getName();
            SecurityContext sc = c.getSecurityContext();
            if (sc == null) {
                v.add(cw + ": no securityContext");
                continue;
            }
            if (!Boolean.FALSE.equals(sc.getAllowPrivilegeEscalation())) {
                v.add(cw + ": allowPrivilegeEscalation must be false");
            }
            if (Boolean.TRUE.equals(sc.getPrivileged())) {
                v.add(cw + ": privileged");
            }
            if (!Boolean.TRUE.equals(sc.getReadOnlyRootFilesystem())) {
                v.add(cw + ": readOnlyRootFilesystem must be true");
            }
            if (Boolean.FALSE.equals(sc.getRunAsNonRoot()) || (sc.getRunAsUser() != null && sc.getRunAsUser() == 0)) {
                v.add(cw + ": runs as root");
            }
            Capabilities caps = sc.getCapabilities();
            if (caps == null || caps.getDrop() == null || !caps.getDrop().contains("ALL")) {
                v.add(cw + ": capabilities.drop must contain ALL");
            }
            if (caps != null && caps.getAdd() != null && !caps.getAdd().isEmpty()) {
                v.add(cw + ": adds capabilities " + caps.getAdd());
            }
            if (sc.getSeccompProfile() != null && "Unconfined".equals(sc.getSeccompProfile().getType())) {
                v.add(cw + ": seccomp Unconfined");
            }
            if (sc.getAppArmorProfile() != null && "Unconfined".equals(sc.getAppArmorProfile().getType())) {
                v.add(cw + ": AppArmor Unconfined");
            }
            if (sc.getProcMount() != null && !"Default".equals(sc.getProcMount())) {
                v.add(cw + ": procMount " + sc.getProcMount());
            }
            for (ContainerPort p : list(c.getPorts())) {
                if (p.getHostPort() != null && p.getHostPort() != 0) {
                    v.add(cw + ": hostPort " + p.getHostPort());
                }
            }
            Map<String, Quantity> limits = c.getResources() == null ? null : c.getResources().getLimits();
            if (limits == null || !limits.containsKey("cpu") || !limits.containsKey("memory")) {
                v.add(cw + ": CPU and memory limits are mandatory, has " + (limits == null ? "none" : limits.keySet()));
            }
            for (VolumeMount m : list(c.getVolumeMounts())) {
                if (!Boolean.TRUE.equals(m.getReadOnly()) && !emptyDirs.contains(m.getName())) {
                    v.add(cw + ": mount " + m.getMountPath() + " must be readOnly (only emptyDir temp space is writable)");
                }
            }
        }
        return v;
    }

    /** The server container's probes: the real endpoints on the admin port, minutes for start-up. */
    static List<String> probeViolations(String where, Container c) {
        List<String> v = new ArrayList<>();
        check(v, where + " startupProbe", c.getStartupProbe(), "/health/started");
        check(v, where + " readinessProbe", c.getReadinessProbe(), "/health/ready");
        check(v, where + " livenessProbe", c.getLivenessProbe(), "/health/live");
        Probe s = c.getStartupProbe();
        if (s != null) {
            int budget = nz(s.getPeriodSeconds(), 10) * nz(s.getFailureThreshold(), 3);
            if (budget < 300) {
                v.add(where + " startupProbe allows only " + budget + " s; a large model needs minutes");
            }
        }
        return v;
    }

    private static void check(List<String> v, String where, Probe p, String path) {
        if (p == null || p.getHttpGet() == null) {
            v.add(where + ": missing (an httpGet on " + path + ")");
            return;
        }
        if (!path.equals(p.getHttpGet().getPath())) {
            v.add(where + ": path " + p.getHttpGet().getPath() + ", expected " + path);
        }
        Object port = p.getHttpGet().getPort() == null ? null : p.getHttpGet().getPort().getValue();
        if (!"admin".equals(port) && !Objects.equals(9090, port)) {
            v.add(where + ": port " + port + ", expected the admin port");
        }
    }

    static String volumeType(Volume vol) {
        if (vol.getConfigMap() != null) return "configMap";
        if (vol.getSecret() != null) return "secret";
        if (vol.getEmptyDir() != null) return "emptyDir";
        if (vol.getPersistentVolumeClaim() != null) return "persistentVolumeClaim";
        if (vol.getProjected() != null) return "projected";
        if (vol.getDownwardAPI() != null) return "downwardAPI";
        if (vol.getCsi() != null) return "csi";
        if (vol.getEphemeral() != null) return "ephemeral";
        if (vol.getImage() != null) return "image";
        if (vol.getHostPath() != null) return "hostPath";
        return "other";
    }

    private static boolean nz(Boolean b) {
        return Boolean.TRUE.equals(b);
    }

    private static int nz(Integer i, int def) {
        return i == null ? def : i;
    }

    private static <T> List<T> list(List<T> l) {
        return l == null ? List.of() : l;
    }
}
