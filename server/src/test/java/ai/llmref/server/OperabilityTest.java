package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.llmref.server.config.ServerConfig;
import ai.llmref.server.observe.PrometheusText;
import ai.llmref.server.observe.Tracing;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.data.SpanData;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** Probes, metrics, tracing: what an operator relies on. */
class OperabilityTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static final List<String> METRICS = List.of("llmref_requests_total", "llmref_request_duration_seconds_bucket",
            "llmref_time_to_first_token_seconds_bucket", "llmref_inter_token_latency_seconds_bucket", "llmref_queue_wait_seconds_bucket",
            "llmref_prompt_tokens_total", "llmref_generated_tokens_total", "llmref_slots_busy", "llmref_slots_total",
            "llmref_queue_depth", "llmref_queue_capacity", "llmref_kv_cache_cells_used", "llmref_kv_cache_cells_total",
            "llmref_device_memory_free_bytes", "llmref_device_memory_total_bytes", "llmref_model_load_seconds",
            "llmref_model_layers_offloaded", "llmref_model_layers_total", "llmref_gpu_devices", "llmref_ready",
            "llmref_build_info", "llmref_model_info", "llmref_engine_step_phase_seconds_bucket", "llmref_engine_decode_call_seconds_bucket", "llmref_engine_step_seconds_bucket", "llmref_engine_step_tokens_total", "llmref_engine_batch_tokens_total",
            "llmref_engine_step_outputs_total", "llmref_engine_sequence_runs_total", "llmref_engine_graphs_reused_total", "llmref_engine_prefix_copies_total", "llmref_engine_device_sampler_attaches_total",
            "llmref_engine_sampling_rows_total", "llmref_engine_sampling_pick_seconds_bucket", "llmref_model_buffer_bytes", "llmref_context_buffer_bytes",
            "llmref_kv_cache_type_info");

    @Test
    void readinessIsDownWhileLoadingAndUpAfter() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        Map<String, String> cfg = new HashMap<>(Map.of("server.port", "0", "server.admin-port", "0",
                "model.path", TestServer.model().toString(), "engine.slot-context", "256", "engine.threads", "2", "engine.threads-batch", "2"));
        Server s = Server.start(ServerConfig.from(ServerConfig.load(null, cfg)), Tracing.disabled(), f -> {
            try {
                release.await(); // a slow load: held until the test has looked at the probes
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        HttpClient http = HttpClient.newHttpClient();
        String admin = "http://127.0.0.1:" + s.adminPort();
        try {
            assertThat(status(http, admin + "/health/started")).isEqualTo(503);
            HttpResponse<String> ready = http.send(HttpRequest.newBuilder(URI.create(admin + "/health/ready")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(ready.statusCode()).isEqualTo(503);
            assertThat(JSON.readTree(ready.body()).get("status").asText()).isEqualTo("loading");
            assertThat(status(http, admin + "/health/live")).isEqualTo(200);
            HttpResponse<String> api = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"x\"}")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(api.statusCode()).isEqualTo(503);
            assertThat(api.body()).contains("\"code\":\"model_loading\"");
            assertThat(scrape(http, admin)).contains("llmref_ready 0");
            release.countDown();
            assertThat(s.awaitLoaded(Duration.ofSeconds(60))).isEqualTo(Server.State.READY);
            assertThat(status(http, admin + "/health/started")).isEqualTo(200);
            assertThat(status(http, admin + "/health/ready")).isEqualTo(200);
            assertThat(status(http, admin + "/health/live")).isEqualTo(200);
        } finally {
            release.countDown();
            s.drainAndStop(Duration.ofSeconds(5));
        }
    }

    @Test
    void readinessRefusesCpuWhenAGpuIsRequired() throws Exception {
        try (TestServer t = TestServer.start(Map.of("model.require-gpu", "true"))) {
            HttpResponse<String> ready = t.getAdmin("/health/ready");
            assertThat(ready.statusCode()).isEqualTo(503);
            JsonNode body = JSON.readTree(ready.body());
            assertThat(body.get("status").asText()).isEqualTo("not_on_gpu");
            assertThat(body.get("reason").asText()).contains("no GPU device is visible");
            assertThat(body.at("/placement/layers_offloaded").asInt()).isZero();
            assertThat(t.getAdmin("/health/live").statusCode()).isEqualTo(200);
            // the metric tells what the probe tells (it said 1: LlmrefNotReady never fired)
            assertThat(t.metric("llmref_ready")).isZero();
        }
        try (TestServer t = TestServer.start(Map.of())) { // auto: a CPU node runs on CPU and says so
            HttpResponse<String> ready = t.getAdmin("/health/ready");
            assertThat(ready.statusCode()).isEqualTo(200);
            JsonNode body = JSON.readTree(ready.body());
            assertThat(body.at("/placement/gpu_devices").asInt()).isZero();
            assertThat(body.at("/placement/device").asText()).startsWith("CPU");
            assertThat(t.metric("llmref_ready")).isEqualTo(1);
        }
    }

    @Test
    void livenessFailsWhenTheSchedulerStalls() throws Exception {
        try (TestServer t = TestServer.start(Map.of("server.liveness-stall-ms", "300"))) {
            assertThat(t.getAdmin("/health/live").statusCode()).isEqualTo(200);
            t.server.engine().stallFor(1500);
            Thread.sleep(600);
            HttpResponse<String> live = t.getAdmin("/health/live");
            assertThat(live.statusCode()).isEqualTo(503);
            assertThat(JSON.readTree(live.body()).get("scheduler_heartbeat_age_ms").asLong()).isGreaterThanOrEqualTo(300);
            Thread.sleep(1200);
            assertThat(t.getAdmin("/health/live").statusCode()).isEqualTo(200);
        }
    }

    @Test
    void probesSayStoppedWhenTheSchedulerHasStopped() throws Exception {
        try (TestServer t = TestServer.start()) {
            assertThat(t.getAdmin("/health/ready").statusCode()).isEqualTo(200);
            t.server.engine().close(); // the scheduler ends (as after an unexpected error) while the server is READY
            assertThat(t.server.engine().stats().running()).isFalse();
            for (String probe : List.of("/health/ready", "/health/live")) {
                HttpResponse<String> r = t.getAdmin(probe);
                assertThat(r.statusCode()).as(probe).isEqualTo(503);
                // not "ready": the body must say why the probe fails
                assertThat(JSON.readTree(r.body()).get("status").asText()).as(probe).isEqualTo("stopped");
            }
            assertThat(t.metric("llmref_ready")).isZero();
        }
    }

    @Test
    void readinessGoesDownDuringDrainAndNewWorkGets503() throws Exception {
        TestServer t = TestServer.start(Map.of("engine.slots", "1"));
        CompletableFuture<HttpResponse<String>> running = t.http.sendAsync(HttpRequest.newBuilder(URI.create(t.base() + "/v1/completions"))
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Once upon a time\",\"max_tokens\":120,\"stream\":true}")).build(),
                HttpResponse.BodyHandlers.ofString());
        while (t.server.engine().stats().busySlots() == 0) {
            Thread.sleep(5);
        }
        // keep the stream running while we look (released below: a fixed stall was too short for a
        // loaded 2-core machine, where the stream could end before the checks ran)
        t.server.engine().stallFor(30_000);
        Thread drain = Thread.ofVirtual().start(() -> t.server.drainAndStop(Duration.ofSeconds(20)));
        while (t.server.state() != Server.State.DRAINING) {
            Thread.sleep(2);
        }
        assertThat(t.getAdmin("/health/ready").statusCode()).isEqualTo(503);
        HttpResponse<String> refused = t.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":2}");
        assertThat(refused.statusCode()).isEqualTo(503);
        assertThat(refused.headers().firstValue("retry-after")).isPresent();
        t.server.engine().stallFor(0);
        HttpResponse<String> done = running.get();
        assertThat(done.statusCode()).isEqualTo(200);
        assertThat(done.body()).endsWith("data: [DONE]\n\n"); // the running stream finished
        drain.join();
        assertThat(t.server.state()).isEqualTo(Server.State.STOPPED);
    }

    @Test
    void metricsExposeEverythingAndMatchTheTraffic() throws Exception {
        try (TestServer t = TestServer.start()) {
            long completionTokens = 0;
            long promptTokens = 0;
            for (int i = 0; i < 5; i++) {
                boolean chat = i % 2 == 0;
                HttpResponse<String> r = chat
                        ? t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Story " + i + "\"}],\"max_tokens\":" + (5 + i) + "}")
                        : t.post("/v1/completions", "{\"prompt\":\"The dog " + i + "\",\"temperature\":0,\"max_tokens\":" + (5 + i) + "}");
                assertThat(r.statusCode()).isEqualTo(200);
                JsonNode usage = JSON.readTree(r.body()).get("usage");
                completionTokens += usage.get("completion_tokens").asLong();
                promptTokens += usage.get("prompt_tokens").asLong();
            }
            assertThat(t.post("/v1/completions", "{\"prompt\":5}").statusCode()).isEqualTo(400);
            // a request is counted once its answer is written, so the client may see the answer first
            String m = scrape(t.http, t.admin());
            for (long end = System.nanoTime() + 5_000_000_000L; !m.contains("status=\"400\"} 1") && System.nanoTime() < end; ) {
                Thread.sleep(20);
                m = scrape(t.http, t.admin());
            }
            for (String name : METRICS) {
                assertThat(m).as(name).containsPattern("(?m)^" + name + "[ {]");
            }
            PrometheusText.validate(m); // what a scraper reads: format, histogram buckets, counter names
            assertThat(value(m, "llmref_generated_tokens_total")).isEqualTo(completionTokens);
            assertThat(value(m, "llmref_prompt_tokens_total")).isEqualTo(promptTokens);
            assertThat(value(m, "llmref_requests_total{route=\"/v1/chat/completions\",status=\"200\"}")).isEqualTo(3);
            assertThat(value(m, "llmref_requests_total{route=\"/v1/completions\",status=\"200\"}")).isEqualTo(2);
            assertThat(value(m, "llmref_requests_total{route=\"/v1/completions\",status=\"400\"}")).isEqualTo(1);
            assertThat(value(m, "llmref_time_to_first_token_seconds_count")).isEqualTo(5);
            assertThat(value(m, "llmref_request_duration_seconds_count{route=\"/v1/completions\"}")).isEqualTo(3);
            assertThat(value(m, "llmref_inter_token_latency_seconds_count")).isEqualTo(completionTokens - 5);
            // Each request's last sampled token ends it (an end-of-generation pick is sampled but not counted as
            // generated); every other sampled token is decoded again, as is each prompt token not reused from the cache.
            long outputs = value(m, "llmref_engine_step_outputs_total");
            assertThat(outputs).isBetween(completionTokens, completionTokens + 5);
            assertThat(value(m, "llmref_engine_batch_tokens_total"))
                    .isEqualTo(promptTokens - value(m, "llmref_cached_prompt_tokens_total") + outputs - 5);
            long steps = value(m, "llmref_engine_step_phase_seconds_count{phase=\"decode\"}");
            assertThat(steps).isPositive().isLessThanOrEqualTo(outputs);
            double phases = 0;
            for (String phase : List.of("schedule", "decode", "sample", "emit")) {
                assertThat(value(m, "llmref_engine_step_phase_seconds_count{phase=\"" + phase + "\"}")).as(phase).isEqualTo(steps);
                phases += number(m, "llmref_engine_step_phase_seconds_sum{phase=\"" + phase + "\"}");
            }
            // The steps by kind: the requests ran one after another, so each prompt's tokens went into
            // steps of their own ("prompt") and every other decoded token into "generation" steps.
            long promptSteps = value(m, "llmref_engine_step_seconds_count{kind=\"prompt\"}");
            assertThat(promptSteps).isGreaterThanOrEqualTo(5);
            assertThat(promptSteps + value(m, "llmref_engine_step_seconds_count{kind=\"generation\"}")).isEqualTo(steps);
            assertThat(value(m, "llmref_engine_step_tokens_total{kind=\"prompt\"}"))
                    .isEqualTo(promptTokens - value(m, "llmref_cached_prompt_tokens_total"));
            assertThat(value(m, "llmref_engine_step_tokens_total{kind=\"generation\"}")).isEqualTo(outputs - 5);
            assertThat(number(m, "llmref_engine_step_seconds_sum{kind=\"prompt\"}") + number(m, "llmref_engine_step_seconds_sum{kind=\"generation\"}"))
                    .as("the steps' time by kind is their phases' time").isCloseTo(phases, within(1e-6 * steps));
            assertThat(m).containsPattern("(?m)^llmref_engine_step_phase_seconds_sum\\{phase=\"decode\"\\} [0-9.E-]*[1-9]");
            // the llama_decode call's part of the decode phase, once per step: on the CPU the call is the decode
            assertThat(value(m, "llmref_engine_decode_call_seconds_count")).isEqualTo(steps);
            double call = number(m, "llmref_engine_decode_call_seconds_sum");
            double decode = number(m, "llmref_engine_step_phase_seconds_sum{phase=\"decode\"}");
            assertThat(call).isPositive().isLessThanOrEqualTo(decode);
            assertThat(call / decode).as("the call's share of the decode phase on the CPU").isGreaterThan(0.5);
            // the greedy (temperature 0) completions' picks went through the sampling pool (on the CPU the
            // scheduler picks alone: no helper starts)
            long rows = value(m, "llmref_engine_sampling_rows_total");
            assertThat(rows).isPositive().isLessThanOrEqualTo(outputs);
            assertThat(value(m, "llmref_engine_sampling_pick_seconds_count")).isPositive().isLessThanOrEqualTo(steps);
            assertThat(m).containsPattern("(?m)^llmref_engine_sampling_pick_seconds_sum [0-9.E-]*[1-9]");
            assertThat(m).doesNotContain("llmref_engine_sampling_helper_start_seconds_count");
            assertThat(value(m, "llmref_engine_sampling_helpers_total")).isZero();
            assertThat(value(m, "llmref_engine_sampling_helpers_ahead_total")).isZero();
            assertThat(value(m, "llmref_slots_total")).isEqualTo(4);
            assertThat(value(m, "llmref_kv_cache_cells_total")).isEqualTo(4 * TestServer.SLOT_CONTEXT);
            assertThat(value(m, "llmref_ready")).isEqualTo(1);
            assertThat(value(m, "llmref_model_layers_total")).isEqualTo(6);
            assertThat(value(m, "llmref_gpu_devices")).isZero();
            assertThat(m).containsPattern("llmref_device_memory_total_bytes\\{device=\"CPU\",type=\"cpu\"\\} [1-9]")
                    .contains("llmref_build_info{version=").contains("llama_cpp_tree=\"fd570ef54b10ec5fecb739e7e04c8ce44a6f415a\"")
                    .contains("llmref_model_info{");
        }
    }

    @Test
    void aTraceHasAllPhasesUnderTheCallersTraceparent() throws Exception {
        InMemorySpanExporter exporter = InMemorySpanExporter.create();
        try (TestServer t = TestServer.start(Map.of("limits.request-timeout-ms", "1500"), Tracing.to(exporter, "test"))) {
            String traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
            String parentSpan = "00f067aa0ba902b7";
            HttpResponse<String> r = t.http.send(HttpRequest.newBuilder(URI.create(t.base() + "/v1/completions"))
                    .header("traceparent", "00-" + traceId + "-" + parentSpan + "-01")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"stream\":true}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).isEqualTo(200);
            long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
            while (exporter.getFinishedSpanItems().size() < 5 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            List<SpanData> spans = exporter.getFinishedSpanItems();
            assertThat(spans).extracting(SpanData::getName).contains("POST /v1/completions", "queue_wait", "prefill", "decode", "stream");
            assertThat(spans).allSatisfy(s -> assertThat(s.getTraceId()).isEqualTo(traceId));
            SpanData request = spans.stream().filter(s -> s.getName().equals("POST /v1/completions")).findFirst().orElseThrow();
            assertThat(request.getParentSpanId()).isEqualTo(parentSpan);
            assertThat(spans.stream().filter(s -> !s.getName().startsWith("POST"))).allSatisfy(s ->
                    assertThat(s.getParentSpanId()).isEqualTo(request.getSpanId()));
            SpanData decode = spans.stream().filter(s -> s.getName().equals("decode")).findFirst().orElseThrow();
            assertThat(decode.getAttributes().asMap().toString()).contains("llm.completion_tokens=8");
            assertThat(request.getStatus().getStatusCode()).isEqualTo(io.opentelemetry.api.trace.StatusCode.UNSET);
            assertThat(request.getAttributes().asMap().toString()).contains("http.request.id=" + r.headers().firstValue("x-request-id").orElseThrow());

            // a stream that times out after its 200: the request's span is an error, with the code
            exporter.reset();
            t.server.engine().stallFor(3000);
            HttpResponse<String> late = t.post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":8,\"stream\":true}");
            assertThat(late.statusCode()).isEqualTo(200);
            assertThat(late.body()).contains("\"code\":\"timeout\"");
            deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
            while (exporter.getFinishedSpanItems().stream().noneMatch(s -> s.getName().equals("POST /v1/completions")) && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            SpanData failed = exporter.getFinishedSpanItems().stream().filter(s -> s.getName().equals("POST /v1/completions")).findFirst().orElseThrow();
            assertThat(failed.getStatus().getStatusCode()).isEqualTo(io.opentelemetry.api.trace.StatusCode.ERROR);
            assertThat(failed.getStatus().getDescription()).isEqualTo("timeout");
        }
    }

    static int status(HttpClient http, String url) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(url)).build(), HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    static String scrape(HttpClient http, String admin) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(admin + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("content-type")).hasValueSatisfying(v -> assertThat(v).startsWith("text/plain"));
        return r.body();
    }

    static long value(String metrics, String series) {
        return (long) number(metrics, series);
    }

    static double number(String metrics, String series) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(series) + " ([0-9.eE+-]+)$").matcher(metrics);
        assertThat(m.find()).as("series " + series + " in\n" + metrics).isTrue();
        return Double.parseDouble(m.group(1));
    }
}
