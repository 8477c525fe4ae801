package ai.llmref.server.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The client of {@code scripts/bench-server.sh}: a closed-loop load generator for OpenAI-compatible
 * streaming endpoints, used unchanged against this server and against llama-server. A program, not
 * a unit test (tests carry no speed limits).
 *
 * <p>{@code C} streams (virtual threads) each send streaming requests back to back, {@code R}
 * requests each or until {@code --duration} has passed (a request started before the deadline
 * runs to its end). The body is a template: {@code {{n}}} becomes a random six-digit number drawn
 * per request, so that a prompt starting with it shares (almost always) no prefix with earlier
 * ones and neither server can skip prompt processing through its prefix cache; and
 * {@code "stream": true} and {@code "stream_options": {"include_usage": true}} are set on it.
 *
 * <p>Per request it records, from the moment the request is sent:
 * <ul>
 *   <li>TTFT: the arrival of the first SSE {@code data:} chunk whose {@code choices[0].text} (or
 *       {@code choices[0].delta.content}) is not empty;
 *   <li>generated tokens: {@code usage.completion_tokens} of the stream (whichever chunk carries
 *       it); when no chunk does, the number of chunks that carried text, and the summary says
 *       which ({@code tokens_from});
 *   <li>the end of generation: the chunk carrying {@code finish_reason} (else the end of the
 *       stream), for the per-stream rate {@code (tokens - 1) / (end - first token)}.
 * </ul>
 * A request whose kept-alive connection turns out closed before any response byte is sent again
 * (at most twice), as HTTP clients do; its TTFT counts from the send that got the response (the
 * failed attempt on a connection the server had closed is the client's loss, not the server's
 * time to answer), and the summary counts such retries.
 * The summary (one JSON object on stdout) gives the aggregate rate, all generated tokens over the
 * wall time from the first request sent to the last one finished, with percentiles of TTFT and of
 * the per-stream rate, and the CPU time this client used (it shares the machine with the server).
 * With {@code --server-pid} (Linux) it also reports the server's CPU time over the measured phase,
 * per generated token, and the busy CPU time of the rest of the machine ({@code other_cpu_s}), so
 * that interference from other work shows in the results.
 *
 * <pre>
 * java -cp server/target/test-classes:server/target/libs/* ai.llmref.server.bench.LoadGenerator \
 *   --url http://127.0.0.1:8080 --route /v1/completions \   (or /v1/chat/completions, /v1/responses, /v1/messages, /completion)
 *   --body '{"prompt":"{{n}} Once upon a time","max_tokens":96,"temperature":0}' \
 *   --concurrency 4 --duration 15 [--requests R] [--warmup K] [--label L] [--raw FILE.jsonl]
 *   [--server-pid PID] [--clock-ticks 100] [--timeout S]
 * </pre>
 */
public final class LoadGenerator {
    private static final ObjectMapper JSON = new ObjectMapper();

    private LoadGenerator() {}

    /** One request's outcome; times in nanoseconds from {@link System#nanoTime()}. */
    record Result(int stream, long number, long sent, long answeredSend, long firstText, long finished, long ended, int tokens,
                  boolean tokensFromUsage, int textChunks, int promptTokens, String finishReason, int retries, String error) {
        boolean ok() {
            return error == null;
        }

        double ttftMillis() {
            return (firstText - answeredSend) / 1e6;
        }

        /** Tokens after the first over the time after the first; NaN when not measurable. */
        double streamTokensPerSecond() {
            long end = finished > 0 ? finished : ended;
            if (firstText == 0 || tokens < 2 || end <= firstText) {
                return Double.NaN;
            }
            return (tokens - 1) / ((end - firstText) / 1e9);
        }
    }

    record Options(URI url, String route, String body, int concurrency, int requests, double durationSeconds,
                   int warmup, String label, Path raw, Duration timeout, long serverPid, int clockTicks) {}

    public static void main(String[] args) throws Exception {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("LoadGenerator: " + e.getMessage());
            System.err.println("usage: LoadGenerator --url URL [--route /v1/completions] (--body JSON | --body-file F) "
                    + "[--concurrency C] (--requests R | --duration S) [--warmup K] [--label L] [--raw F] [--timeout S]");
            System.exit(2);
            return;
        }
        ObjectNode summary = run(o);
        System.out.println(JSON.writeValueAsString(summary));
        if (summary.path("errors").asInt() > 0) {
            System.exit(1);
        }
    }

    static Options parse(String[] args) throws IOException {
        URI url = null;
        String route = "/v1/completions";
        String body = null;
        int concurrency = 1;
        int requests = 0;
        double duration = 0;
        int warmup = 0;
        String label = "";
        Path raw = null;
        Duration timeout = Duration.ofSeconds(300);
        long serverPid = 0;
        int clockTicks = 100;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(a + " needs a value");
            }
            String v = args[++i];
            switch (a) {
                case "--url" -> url = URI.create(v.endsWith("/") ? v.substring(0, v.length() - 1) : v);
                case "--route" -> route = v;
                case "--body" -> body = v;
                case "--body-file" -> body = Files.readString(Path.of(v));
                case "--concurrency", "-c" -> concurrency = positive(a, v);
                case "--requests", "-r" -> requests = positive(a, v);
                case "--duration", "-d" -> {
                    duration = Double.parseDouble(v);
                    if (!(duration > 0)) {
                        throw new IllegalArgumentException("--duration must be a positive number of seconds");
                    }
                }
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--label" -> label = v;
                case "--raw" -> raw = Path.of(v);
                case "--timeout" -> timeout = Duration.ofSeconds(positive(a, v));
                case "--server-pid" -> serverPid = positive(a, v);
                case "--clock-ticks" -> clockTicks = positive(a, v);
                default -> throw new IllegalArgumentException("unknown option " + a);
            }
        }
        if (url == null || body == null) {
            throw new IllegalArgumentException("--url and --body (or --body-file) are required");
        }
        if ((requests > 0) == (duration > 0)) {
            throw new IllegalArgumentException("give exactly one of --requests and --duration");
        }
        if (!(JSON.readTree(body.replace("{{n}}", "0")) instanceof ObjectNode)) {
            throw new IllegalArgumentException("the body must be a JSON object (with {{n}} replaced)");
        }
        return new Options(url, route, body, concurrency, requests, duration, warmup, label, raw, timeout, serverPid, clockTicks);
    }

    private static int positive(String name, String v) {
        int n = Integer.parseInt(v);
        if (n < 1) {
            throw new IllegalArgumentException(name + " must be at least 1");
        }
        return n;
    }

    static ObjectNode run(Options o) throws Exception {
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).executor(pool)
                    .connectTimeout(Duration.ofSeconds(10)).build();
            // Warmup: each stream sends its requests, not measured (JIT, graph shapes, connections).
            if (o.warmup() > 0) {
                List<Result> w = phase(http, pool, o, o.warmup(), 0);
                long bad = w.stream().filter(r -> !r.ok()).count();
                if (bad > 0) {
                    throw new IllegalStateException("warmup failed: " + w.stream().filter(r -> !r.ok()).findFirst().orElseThrow().error());
                }
            }
            var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
            long server0 = ticks(o.serverPid());
            long busy0 = machineBusyTicks();
            long cpu0 = os.getProcessCpuTime();
            long t0 = System.nanoTime();
            List<Result> results = phase(http, pool, o, o.requests(), o.durationSeconds());
            long t1 = System.nanoTime();
            long cpu1 = os.getProcessCpuTime();
            long busy1 = machineBusyTicks();
            long server1 = ticks(o.serverPid());
            long end = results.stream().mapToLong(Result::ended).max().orElse(t1);
            if (o.raw() != null) {
                writeRaw(o.raw(), results, t0);
            }
            ObjectNode s = summary(o, results, t0, Math.max(end, t0 + 1), (cpu1 - cpu0) / 1e9);
            // Linux only: where the CPU time of the machine went during the measured phase.
            if (busy0 >= 0 && busy1 >= 0) {
                double busy = (busy1 - busy0) / (double) o.clockTicks();
                s.put("machine_busy_cpu_s", round(busy, 3));
                if (server0 >= 0 && server1 >= 0) {
                    double server = (server1 - server0) / (double) o.clockTicks();
                    long tokens = s.path("generated_tokens").asLong();
                    s.put("server_cpu_s", round(server, 3));
                    s.put("server_cpu_us_per_token", tokens == 0 ? 0 : round(server * 1e6 / tokens, 1));
                    s.put("other_cpu_s", round(Math.max(0, busy - server - (cpu1 - cpu0) / 1e9), 3));
                }
            }
            return s;
        }
    }

    /** {@code perStream} requests per stream, or until {@code seconds} have passed when it is 0. */
    private static List<Result> phase(HttpClient http, ExecutorService pool, Options o, int perStream,
            double seconds) throws InterruptedException {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        List<List<Result>> perThread = new ArrayList<>();
        List<java.util.concurrent.Future<?>> futures = new ArrayList<>();
        for (int s = 0; s < o.concurrency(); s++) {
            List<Result> mine = new ArrayList<>();
            perThread.add(mine);
            int stream = s;
            futures.add(pool.submit(() -> {
                for (int i = 0; perStream > 0 ? i < perStream : System.nanoTime() < deadline; i++) {
                    mine.add(request(http, o, stream, ThreadLocalRandom.current().nextLong(100_000, 1_000_000)));
                }
            }));
        }
        for (var f : futures) {
            try {
                f.get();
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException("a stream failed", e.getCause());
            }
        }
        List<Result> all = new ArrayList<>();
        perThread.forEach(all::addAll);
        return all;
    }

    private static Result request(HttpClient http, Options o, int stream, long number) {
        String body;
        try {
            ObjectNode b = (ObjectNode) JSON.readTree(o.body().replace("{{n}}", Long.toString(number)));
            b.put("stream", true);
            b.putObject("stream_options").put("include_usage", true);
            body = JSON.writeValueAsString(b);
        } catch (IOException e) {
            throw new IllegalArgumentException("the body template is not JSON: " + e.getMessage(), e);
        }
        HttpRequest req = HttpRequest.newBuilder(URI.create(o.url() + o.route()))
                .timeout(o.timeout())
                .header("Content-Type", "application/json")
                .header("Accept", "text/event-stream")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
        long sent = System.nanoTime();
        long answeredSend = sent;
        long firstText = 0;
        long finished = 0;
        int usageTokens = -1;
        int promptTokens = -1;
        int textChunks = 0;
        String finish = null;
        int retries = 0;
        try {
            HttpResponse<InputStream> res = null;
            while (res == null) {
                try {
                    answeredSend = System.nanoTime();
                    res = http.send(req, HttpResponse.BodyHandlers.ofInputStream());
                } catch (IOException e) {
                    // A kept-alive connection the server has closed meanwhile (llama-server's
                    // cpp-httplib closes one after 100 requests or 5 s idle) fails before any byte
                    // of a response; a client reconnects and sends again. The time lost stays in
                    // this request's TTFT, and the summary counts the retries.
                    if (++retries > 2) {
                        throw e;
                    }
                }
            }
            try (BufferedReader in = new BufferedReader(new InputStreamReader(res.body(), StandardCharsets.UTF_8))) {
                if (res.statusCode() != 200) {
                    String text = in.lines().reduce("", (x, y) -> x + y);
                    return failed(stream, number, sent, "HTTP " + res.statusCode() + ": " + abbreviate(text));
                }
                String line;
                while ((line = in.readLine()) != null) {
                    if (!line.startsWith("data:")) {
                        continue; // blank separators, comments (": ping"), event names
                    }
                    String data = line.substring(5).trim();
                    if (data.equals("[DONE]")) {
                        // Read the response to its end, as a real client does (openai-node 6
                        // reads on after [DONE] until the body ends): java.net.http closes a
                        // kept-alive connection whose body was not read to its end.
                        while (in.read() >= 0) {
                            // discard
                        }
                        break;
                    }
                    long now = System.nanoTime();
                    JsonNode chunk = JSON.readTree(data);
                    if (chunk.has("error")) {
                        return failed(stream, number, sent, "stream error: " + abbreviate(chunk.get("error").toString()));
                    }
                    String type = chunk.path("type").asText("");
                    if (type.equals("error") || type.equals("response.failed")) {
                        return failed(stream, number, sent, "stream error: " + abbreviate(chunk.toString()));
                    }
                    if (type.equals("message_delta")) {
                        // Anthropic's Messages API: the stop reason and the final usage (message_stop follows)
                        finished = now;
                        finish = chunk.path("delta").path("stop_reason").asText();
                        usageTokens = chunk.path("usage").path("output_tokens").asInt(-1);
                        promptTokens = chunk.path("usage").path("input_tokens").asInt(-1)
                                + chunk.path("usage").path("cache_read_input_tokens").asInt(0);
                        continue;
                    }
                    if (type.equals("response.completed") || type.equals("response.incomplete")) {
                        // the Responses API's last event: the usage of the whole response (no [DONE] follows)
                        finished = now;
                        finish = chunk.path("response").path("status").asText();
                        usageTokens = chunk.path("response").path("usage").path("output_tokens").asInt(-1);
                        promptTokens = chunk.path("response").path("usage").path("input_tokens").asInt(-1);
                        continue;
                    }
                    // llama-server's /completion: pieces of content, then the result (stop: true, its counts); no [DONE]
                    boolean llamaLine = chunk.path("stop").isBoolean() && chunk.has("content");
                    if (llamaLine && chunk.get("stop").booleanValue()) {
                        finished = now;
                        finish = chunk.path("stop_type").asText();
                        usageTokens = chunk.path("tokens_predicted").asInt(-1);
                        promptTokens = chunk.path("tokens_evaluated").asInt(-1);
                    }
                    JsonNode choice = chunk.path("choices").path(0);
                    String text = llamaLine ? chunk.path("content").asText("")
                            : choice.path("text").isTextual() ? choice.path("text").textValue()
                            : choice.path("delta").path("content").isTextual() ? choice.path("delta").path("content").textValue()
                            : type.equals("response.output_text.delta") ? chunk.path("delta").asText("")
                            : type.equals("content_block_delta") ? chunk.path("delta").path("text").asText("") : "";
                    if (!text.isEmpty()) {
                        textChunks++;
                        if (firstText == 0) {
                            firstText = now;
                        }
                    }
                    if (choice.path("finish_reason").isTextual() && finished == 0) {
                        finished = now;
                        finish = choice.path("finish_reason").textValue();
                    }
                    JsonNode usage = chunk.path("usage");
                    if (usage.path("completion_tokens").isInt()) {
                        usageTokens = usage.path("completion_tokens").intValue();
                        promptTokens = usage.path("prompt_tokens").asInt(-1);
                    }
                }
            }
        } catch (IOException e) {
            return failed(stream, number, sent, e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return failed(stream, number, sent, "interrupted");
        }
        long ended = System.nanoTime();
        if (firstText == 0) {
            return failed(stream, number, sent, "the stream carried no text");
        }
        boolean fromUsage = usageTokens >= 0;
        return new Result(stream, number, sent, answeredSend, firstText, finished, ended, fromUsage ? usageTokens : textChunks, fromUsage,
                textChunks, promptTokens, finish, retries, null);
    }

    private static Result failed(int stream, long number, long sent, String why) {
        return new Result(stream, number, sent, sent, 0, 0, System.nanoTime(), 0, false, 0, -1, null, 0, why);
    }

    static ObjectNode summary(Options o, List<Result> results, long t0, long end, double clientCpuSeconds) {
        List<Result> ok = results.stream().filter(Result::ok).toList();
        long tokens = ok.stream().mapToLong(Result::tokens).sum();
        double wall = (end - t0) / 1e9;
        ObjectNode s = JSON.createObjectNode();
        s.put("label", o.label());
        s.put("url", o.url() + o.route());
        s.put("concurrency", o.concurrency());
        if (o.requests() > 0) {
            s.put("requests_per_stream", o.requests());
        } else {
            s.put("duration_s", o.durationSeconds());
        }
        s.put("requests", results.size());
        s.put("errors", results.size() - ok.size());
        s.put("retries", results.stream().mapToInt(Result::retries).sum());
        if (ok.size() < results.size()) {
            s.put("first_error", results.stream().filter(r -> !r.ok()).findFirst().orElseThrow().error());
        }
        long fromUsage = ok.stream().filter(Result::tokensFromUsage).count();
        s.put("tokens_from", fromUsage == ok.size() ? "usage" : fromUsage == 0 ? "chunks" : "mixed");
        s.put("wall_s", round(wall, 3));
        s.put("generated_tokens", tokens);
        s.put("aggregate_tps", round(tokens / wall, 2));
        s.put("requests_per_s", round(ok.size() / wall, 3));
        s.set("ttft_ms", stats(ok.stream().mapToDouble(Result::ttftMillis).toArray(), 3));
        s.set("stream_tps", stats(ok.stream().mapToDouble(Result::streamTokensPerSecond).filter(d -> !Double.isNaN(d)).toArray(), 2));
        s.set("tokens_per_request", stats(ok.stream().mapToDouble(Result::tokens).toArray(), 1));
        s.set("prompt_tokens", stats(ok.stream().mapToDouble(Result::promptTokens).filter(d -> d >= 0).toArray(), 1));
        s.set("text_chunks_per_request", stats(ok.stream().mapToDouble(Result::textChunks).toArray(), 1));
        Map<String, Integer> reasons = new TreeMap<>();
        ok.forEach(r -> reasons.merge(String.valueOf(r.finishReason()), 1, Integer::sum));
        ObjectNode fr = s.putObject("finish_reasons");
        reasons.forEach(fr::put);
        s.put("client_cpu_s", round(clientCpuSeconds, 3));
        return s;
    }

    /** mean, min, p50, p90, p95, p99, max (nearest rank). */
    static ObjectNode stats(double[] v, int digits) {
        ObjectNode n = JSON.createObjectNode();
        n.put("n", v.length);
        if (v.length == 0) {
            return n;
        }
        double[] sorted = v.clone();
        Arrays.sort(sorted);
        n.put("mean", round(Arrays.stream(sorted).average().orElse(Double.NaN), digits));
        n.put("min", round(sorted[0], digits));
        n.put("p50", round(percentile(sorted, 50), digits));
        n.put("p90", round(percentile(sorted, 90), digits));
        n.put("p95", round(percentile(sorted, 95), digits));
        n.put("p99", round(percentile(sorted, 99), digits));
        n.put("max", round(sorted[sorted.length - 1], digits));
        return n;
    }

    static double percentile(double[] sorted, double p) {
        int rank = (int) Math.ceil(p / 100 * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
    }

    private static double round(double v, int digits) {
        double f = Math.pow(10, digits);
        return Math.round(v * f) / f;
    }

    private static void writeRaw(Path file, List<Result> results, long t0) throws IOException {
        try (PrintStream out = new PrintStream(Files.newOutputStream(file), false, StandardCharsets.UTF_8)) {
            for (Result r : results) {
                ObjectNode n = JSON.createObjectNode();
                n.put("stream", r.stream());
                n.put("n", r.number());
                n.put("sent_ms", round((r.sent() - t0) / 1e6, 3));
                n.put("retries", r.retries());
                if (r.ok()) {
                    n.put("ttft_ms", round(r.ttftMillis(), 3));
                    n.put("end_ms", round((r.ended() - t0) / 1e6, 3));
                    n.put("tokens", r.tokens());
                    n.put("prompt_tokens", r.promptTokens());
                    n.put("stream_tps", round(r.streamTokensPerSecond(), 2));
                    n.put("finish_reason", r.finishReason());
                } else {
                    n.put("error", r.error());
                }
                out.println(JSON.writeValueAsString(n));
            }
        }
    }

    /** utime + stime of a process (all its threads), in clock ticks; -1 when unknown. */
    static long ticks(long pid) {
        if (pid <= 0) {
            return -1;
        }
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" "); // the name may hold spaces
            return Long.parseLong(f[11]) + Long.parseLong(f[12]); // fields 14 and 15 of proc(5)
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** Busy CPU time of the whole machine (all but idle and iowait), in clock ticks; -1 when unknown. */
    static long machineBusyTicks() {
        try {
            String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
            long busy = 0;
            for (int i = 1; i <= 8 && i < f.length; i++) {
                if (i != 4 && i != 5) {
                    busy += Long.parseLong(f[i]); // user nice system [idle iowait] irq softirq steal
                }
            }
            return busy;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    private static String abbreviate(String s) {
        return s.length() <= 300 ? s : s.substring(0, 297) + "...";
    }
}
