package ai.llmref.server.http;

import ai.llmref.llama.ContextMemory;
import ai.llmref.server.Server;
import ai.llmref.server.engine.Engine;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerResponse;
import java.util.concurrent.TimeUnit;

/**
 * Kubernetes probes. {@code /health/started}: the model finished loading, or failed to. {@code /health/ready}:
 * loaded, scheduler running, not draining. {@code /health/live}: the scheduler's heartbeat is
 * recent (or the model is still loading). Each answers 200 or 503 with a JSON body saying why.
 */
public final class HealthService implements HttpService {
    private final Server server;
    private final Json json;

    public HealthService(Server server, Json json) {
        this.server = server;
        this.json = json;
    }

    @Override
    public void routing(HttpRules rules) {
        rules.get("/health/started", (req, res) -> started(res))
                .get("/health/ready", (req, res) -> ready(res))
                .get("/health/live", (req, res) -> live(res));
    }

    private void started(ServerResponse res) {
        Server.State s = server.state();
        // A failed load has ended the start-up too: the startup probe passes, and the liveness probe,
        // which Kubernetes runs only after it, answers 503 and gets the pod restarted within its
        // failure threshold (about 30 s with the chart's values). A 503 here kept liveness from ever
        // running, and the pod waited out the whole startup window (15 minutes) before a restart.
        boolean ok = s != Server.State.LOADING;
        send(res, ok, status(s));
    }

    private void ready(ServerResponse res) {
        Server.State s = server.state();
        Engine e = server.engine();
        ObjectNode body = status(s);
        String gpuProblem = server.gpuProblem();
        if (s == Server.State.READY && e != null && e.stats().running() && gpuProblem != null) {
            body.put("status", "not_on_gpu");
            body.put("reason", gpuProblem);
        }
        send(res, server.ready(), body);
    }

    private void live(ServerResponse res) {
        Server.State s = server.state();
        Engine e = server.engine();
        boolean ok;
        ObjectNode body = status(s);
        if (s == Server.State.LOADING || s == Server.State.DRAINING) {
            ok = true;
        } else if ((s == Server.State.READY || s == Server.State.WARMING) && e != null) {
            long age = e.stats().heartbeatAgeNanos();
            body.put("scheduler_heartbeat_age_ms", TimeUnit.NANOSECONDS.toMillis(age));
            ok = e.stats().running() && age < TimeUnit.MILLISECONDS.toNanos(server.config().http().livenessStallMillis());
        } else {
            ok = false;
        }
        send(res, ok, body);
    }

    private ObjectNode status(Server.State s) {
        ObjectNode o = json.object();
        Engine e = server.engine();
        // a scheduler that ended on its own (an unexpected error) leaves the state READY or WARMING:
        // the probes fail then, and their body must not say "ready"
        boolean schedulerGone = (s == Server.State.READY || s == Server.State.WARMING) && e != null && !e.stats().running();
        o.put("status", schedulerGone ? "stopped" : s.name().toLowerCase());
        if (s == Server.State.LOADING) {
            o.put("progress", server.loadProgress());
        }
        if (s == Server.State.WARMING) {
            o.put("warmup_done", server.warmupDone()).put("warmup_requests", server.config().http().warmupRequests());
        }
        if (s == Server.State.FAILED && server.failure() != null) {
            o.put("reason", server.failure());
        }
        if (e != null) {
            Engine.Stats st = e.stats();
            o.put("slots", st.slots()).put("slots_busy", st.busySlots()).put("queued", st.queued());
        }
        Server.Placement p = server.placementSummary();
        if (p != null) {
            o.putObject("placement").put("layers_offloaded", p.offloaded()).put("layers_total", p.total())
                    .put("gpu_devices", p.gpuDevices()).put("device", p.device());
            if (e != null) {
                // what the model and the engine's contexts hold, all devices together (per buffer: /metrics)
                ObjectNode m = o.putObject("memory").put("model_bytes", p.modelBytes());
                m.put("kv_cache_bytes", e.memoryUse().values().stream().mapToLong(ContextMemory::kvTotal).sum());
                m.put("compute_bytes", e.memoryUse().values().stream().mapToLong(ContextMemory::computeTotal).sum());
                m.put("kv_cache_type_k", e.config().kvCacheTypeK().ggmlName())
                        .put("kv_cache_type_v", e.config().kvCacheTypeV().ggmlName());
            }
        }
        return o;
    }

    private void send(ServerResponse res, boolean ok, ObjectNode body) {
        res.status(ok ? Status.OK_200 : Status.SERVICE_UNAVAILABLE_503);
        res.header(HeaderNames.CONTENT_TYPE, "application/json");
        res.send(json.write(body));
    }
}
