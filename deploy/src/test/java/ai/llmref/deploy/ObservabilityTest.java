package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * observability/: the alert rules, the Grafana dashboard and the collector example are well formed
 * and use only metric names the server declares, as do the chart and docs/deployment.md
 * (ImageLayoutTest checks the same names against a running server's /metrics).
 */
class ObservabilityTest {
    static final String ALERTS = "observability/prometheus/llmref-alerts.yaml";
    static final String DASHBOARD = "observability/grafana/llmref-dashboard.json";
    static final String COLLECTOR = "observability/otel/collector.yaml";

    /** Every metric name used in the assets, with where it is used. */
    static Map<String, Set<String>> usedMetricNames() {
        Map<String, Set<String>> used = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : alertExpressions().entrySet()) {
            MetricNames.inPromQl(e.getValue()).forEach(n -> used.computeIfAbsent(n, k -> new TreeSet<>()).add(ALERTS + " " + e.getKey()));
        }
        JsonNode dash = dashboard();
        for (JsonNode panel : dash.get("panels")) {
            for (JsonNode t : panel.path("targets")) {
                MetricNames.inPromQl(t.get("expr").asString())
                        .forEach(n -> used.computeIfAbsent(n, k -> new TreeSet<>()).add(DASHBOARD + " " + panel.get("title").asString()));
            }
        }
        for (JsonNode v : dash.at("/templating/list")) {
            Matcher m = Pattern.compile("label_values\\(\\s*([A-Za-z_:][A-Za-z0-9_:]*)").matcher(v.path("definition").asString(""));
            if (m.find()) {
                used.computeIfAbsent(m.group(1), k -> new TreeSet<>()).add(DASHBOARD + " variable " + v.get("name").asString());
            }
        }
        // Names the collector example, the chart's templates (autoscalers) and the operator docs mention.
        List<String> texts = new ArrayList<>(List.of(COLLECTOR, "docs/deployment.md", "helm/llmref/values.yaml"));
        Repo.files(Repo.path("helm/llmref/templates"), ".yaml", ".tpl", ".txt").forEach(f -> texts.add(Repo.root().relativize(f).toString()));
        for (String file : texts) {
            MetricNames.mentioned(Repo.read(file)).forEach(n -> used.computeIfAbsent(n, k -> new TreeSet<>()).add(file));
        }
        return used;
    }

    static Map<String, String> alertExpressions() {
        Map<String, String> out = new LinkedHashMap<>();
        for (Object g : (List<?>) Yaml.map(Repo.read(ALERTS)).get("groups")) {
            for (Object r : (List<?>) Yaml.at(g, "rules")) {
                out.put((String) Yaml.at(r, "alert"), (String) Yaml.at(r, "expr"));
            }
        }
        return out;
    }

    static JsonNode dashboard() {
        return JsonMapper.builder().build().readTree(Repo.read(DASHBOARD));
    }

    /** The names ServerMetrics declares, with _bucket/_sum/_count for its histograms. */
    static Set<String> declaredByTheServer() {
        String src = Repo.read("server/src/main/java/ai/llmref/server/observe/ServerMetrics.java");
        Set<String> out = new TreeSet<>();
        Matcher m = Pattern.compile("\\.(counter|gauge|histogram)\\(\"(llmref_[a-z0-9_]+)\"").matcher(src);
        while (m.find()) {
            out.add(m.group(2));
            if (m.group(1).equals("histogram")) {
                out.addAll(List.of(m.group(2) + "_bucket", m.group(2) + "_sum", m.group(2) + "_count"));
            }
        }
        assertThat(out).as("metric declarations found in ServerMetrics.java").hasSizeGreaterThan(15);
        return out;
    }

    @Test
    void assetsUseOnlyMetricNamesTheServerDeclares() {
        Map<String, Set<String>> used = usedMetricNames();
        assertThat(used).isNotEmpty();
        Set<String> declared = declaredByTheServer();
        Map<String, Set<String>> unknown = new LinkedHashMap<>(used);
        unknown.keySet().removeAll(declared);
        assertThat(unknown).as("names the server does not declare, and where").isEmpty();
    }

    @Test
    void alertRulesCoverTheOperationalRisksAndAreWellFormed() {
        List<String> alerts = new ArrayList<>();
        for (Object g : (List<?>) Yaml.map(Repo.read(ALERTS)).get("groups")) {
            assertThat(Yaml.keys(g)).containsExactlyInAnyOrder("name", "rules");
            for (Object r : (List<?>) Yaml.at(g, "rules")) {
                assertThat(Yaml.keys(r)).containsExactlyInAnyOrder("alert", "expr", "for", "labels", "annotations");
                assertThat((String) Yaml.at(r, "for")).matches("\\d+[smh]");
                assertThat(Yaml.at(r, "labels.severity")).isIn("warning", "critical");
                assertThat(Yaml.keys(Yaml.at(r, "annotations"))).containsExactlyInAnyOrder("summary", "description");
                assertThat(balanced((String) Yaml.at(r, "expr"))).as("parentheses of " + Yaml.at(r, "alert")).isTrue();
                alerts.add((String) Yaml.at(r, "alert"));
            }
        }
        assertThat(alerts).doesNotHaveDuplicates().contains("LlmrefNotReady", "LlmrefQueueSaturated", "LlmrefTimeToFirstTokenP99High",
                "LlmrefHighErrorRate", "LlmrefGpuMemoryLow", "LlmrefRunningOnCpuOnGpuNode");
        Map<String, String> exprs = alertExpressions();
        assertThat(exprs.get("LlmrefQueueSaturated")).contains("llmref_queue_depth", "llmref_queue_capacity");
        assertThat(exprs.get("LlmrefTimeToFirstTokenP99High")).contains("histogram_quantile(0.99", "llmref_time_to_first_token_seconds_bucket");
        assertThat(exprs.get("LlmrefHighErrorRate")).contains("status=~\"5..\"");
        assertThat(exprs.get("LlmrefGpuMemoryLow")).contains("llmref_device_memory_free_bytes{type=\"gpu\"}");
        assertThat(exprs.get("LlmrefRunningOnCpuOnGpuNode")).contains("ai_llmref_accelerator=\"gpu\"", "llmref_gpu_devices", "llmref_model_layers_offloaded");
    }

    /**
     * The kubelet restarts a container whose startup probe has failed for periodSeconds x
     * failureThreshold (the chart's 15 minutes): a pod whose model never loads, or failed to load,
     * restarts once a window, and each restart leaves a gap of failed scrapes in its llmref_ready
     * series. Prometheus drops a pending alert whose expression returns nothing, so a plain
     * selector with a {@code for:} as long as the window never fired for such a pod. The rule must
     * not fire within the window (a load may take it all) and must bridge the gaps of restarts.
     */
    @Test
    void notReadyAlertFiresForAPodThatRestartsOnceEveryStartupWindow() {
        Map<String, Object> values = Yaml.map(Repo.read("helm/llmref/values.yaml"));
        long window = ((Number) Yaml.at(values, "probes.startup.periodSeconds")).longValue()
                * ((Number) Yaml.at(values, "probes.startup.failureThreshold")).longValue();
        long scrape = seconds((String) Yaml.at(values, "metrics.serviceMonitor.interval"));
        Object rule = null;
        for (Object g : (List<?>) Yaml.map(Repo.read(ALERTS)).get("groups")) {
            for (Object r : (List<?>) Yaml.at(g, "rules")) {
                if ("LlmrefNotReady".equals(Yaml.at(r, "alert"))) {
                    rule = r;
                }
            }
        }
        assertThat(rule).isNotNull();
        assertThat(seconds((String) Yaml.at(rule, "for"))).as("for: no alert while a load still has its startup window").isGreaterThanOrEqualTo(window);
        Matcher m = Pattern.compile("max_over_time\\(\\s*llmref_ready(\\{[^}]*})?\\[(\\d+[smh])]\\)").matcher((String) Yaml.at(rule, "expr"));
        assertThat(m.find()).as("llmref_ready taken over a range that outlasts a restart's failed scrapes: " + Yaml.at(rule, "expr")).isTrue();
        assertThat(seconds(m.group(2))).as("the range against the scrape interval " + scrape + " s").isGreaterThanOrEqualTo(4 * scrape);
    }

    private static long seconds(String duration) {
        long n = Long.parseLong(duration.substring(0, duration.length() - 1));
        return switch (duration.charAt(duration.length() - 1)) {
            case 's' -> n;
            case 'm' -> n * 60;
            case 'h' -> n * 3600;
            default -> throw new IllegalArgumentException(duration);
        };
    }

    @Test
    void theChartShipsTheSameRules() {
        assertThat(Repo.read("helm/llmref/files/llmref-alerts.yaml")).isEqualTo(Repo.read(ALERTS));
    }

    @Test
    void theAcceleratorLabelTheAlertsUseIsTheOneTheScrapeConfigsProduce() {
        // Pod label ai.llmref/accelerator -> target label ai_llmref_accelerator (chart ServiceMonitor, collector example).
        assertThat(Repo.read("helm/llmref/templates/servicemonitor.yaml")).contains("podTargetLabels:", "- ai.llmref/accelerator");
        Object collector = Yaml.map(Repo.read(COLLECTOR));
        List<?> jobs = (List<?>) Yaml.at(collector, "receivers.prometheus.config.scrape_configs");
        List<?> relabel = (List<?>) Yaml.at(jobs.get(0), "relabel_configs");
        assertThat(relabel).anySatisfy(r -> {
            assertThat(Yaml.strings(Yaml.at(r, "source_labels"))).containsExactly("__meta_kubernetes_pod_label_ai_llmref_accelerator");
            assertThat(Yaml.at(r, "target_label")).isEqualTo("ai_llmref_accelerator");
        });
        assertThat(relabel).anySatisfy(r -> {
            assertThat(Yaml.strings(Yaml.at(r, "source_labels"))).containsExactly("__meta_kubernetes_pod_container_port_name");
            assertThat(Yaml.at(r, "regex")).isEqualTo("admin");
            assertThat(Yaml.at(r, "action")).isEqualTo("keep");
        });
        assertThat(Yaml.at(jobs.get(0), "metrics_path")).isEqualTo("/metrics");
    }

    @Test
    void collectorPipelinesReferenceDefinedComponentsAndTheServersOtlpPort() {
        Map<String, Object> c = Yaml.map(Repo.read(COLLECTOR));
        Map<?, ?> pipelines = (Map<?, ?>) Yaml.at(c, "service.pipelines");
        assertThat(Yaml.keys(pipelines)).contains("metrics", "traces");
        for (Object p : pipelines.values()) {
            for (String kind : List.of("receivers", "processors", "exporters")) {
                Set<String> defined = Yaml.keys(c.get(kind));
                assertThat(Yaml.strings(Yaml.at(p, kind))).as(kind).isNotEmpty().allMatch(defined::contains);
            }
        }
        String endpoint = (String) Yaml.at(c, "receivers.otlp.protocols.http.endpoint");
        Object defaultPort = Yaml.at(Yaml.map(Repo.read("helm/llmref/values.yaml")), "networkPolicy.egress.otlp.port");
        assertThat(endpoint).endsWith(":" + defaultPort);
        assertThat((String) Yaml.at(Yaml.map(Repo.read("server/src/main/resources/application.yaml")), "tracing.otlp-endpoint"))
                .endsWith(":" + defaultPort);
    }

    @Test
    void dashboardIsAnImportableGrafanaDashboard() {
        JsonNode d = dashboard();
        assertThat(d.get("uid").asString()).isNotBlank();
        assertThat(d.get("title").asString()).isNotBlank();
        Set<Integer> ids = new HashSet<>();
        int queries = 0;
        for (JsonNode p : d.get("panels")) {
            assertThat(ids.add(p.get("id").asInt())).as("unique panel id " + p.get("id")).isTrue();
            assertThat(p.has("gridPos")).isTrue();
            if (p.get("type").asString().equals("row")) {
                continue;
            }
            assertThat(p.at("/datasource/uid").asString()).isEqualTo("${datasource}");
            assertThat(p.get("targets").size()).as(p.get("title").asString()).isPositive();
            for (JsonNode t : p.get("targets")) {
                assertThat(balanced(t.get("expr").asString())).as(t.get("expr").asString()).isTrue();
                queries++;
            }
        }
        assertThat(queries).isGreaterThan(20);
        List<String> vars = new ArrayList<>();
        d.at("/templating/list").forEach(v -> vars.add(v.get("name").asString()));
        assertThat(vars).containsExactly("datasource", "namespace", "pod");
        // GPU placement is on the dashboard: the operator's first question on a GPU pool.
        assertThat(usedMetricNames()).containsKeys("llmref_model_layers_offloaded", "llmref_gpu_devices", "llmref_device_memory_free_bytes");
    }

    @Test
    void tablePanelsQueryTheLatestValueAsATable() {
        // a range query in a table panel gives one row per evaluation step (hundreds per series over
        // the dashboard's 3 hours), one frame per series: the table of info labels needs one row per series
        List<String> tables = new ArrayList<>();
        for (JsonNode p : dashboard().get("panels")) {
            if (p.get("type").asString().equals("table")) {
                tables.add(p.get("title").asString());
                for (JsonNode t : p.get("targets")) {
                    assertThat(t.path("instant").asBoolean(false)).as(p.get("title").asString() + " " + t.get("expr").asString() + " instant").isTrue();
                    assertThat(t.path("range").asBoolean(true)).as(p.get("title").asString() + " " + t.get("expr").asString() + " range").isFalse();
                    assertThat(t.path("format").asString("")).as(p.get("title").asString() + " " + t.get("expr").asString() + " format").isEqualTo("table");
                }
            }
        }
        assertThat(tables).contains("Build");
    }

    @Test
    void metricNameExtractionIgnoresLabelsFunctionsAndVariables() {
        assertThat(MetricNames.inPromQl("histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{a=\"b\", pod=~\"$pod\"}[$__rate_interval])))"
                + " / on (pod) group_left (node) y and z offset 5m > bool 0"))
                .containsExactlyInAnyOrder("x_bucket", "y", "z");
    }

    private static boolean balanced(String s) {
        int depth = 0;
        for (char ch : s.toCharArray()) {
            depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
            if (depth < 0) {
                return false;
            }
        }
        return depth == 0;
    }
}
