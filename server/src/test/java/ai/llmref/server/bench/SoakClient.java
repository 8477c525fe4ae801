package ai.llmref.server.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The soak and load client of {@code scripts/soak.sh} and of {@code SoakTest}: many concurrent
 * clients against a running server, for a set time, each response checked against its request's
 * greedy reference.
 *
 * <p>First, one request at a time, it records the greedy (temperature 0) output of every request
 * it will send: a few prompts, each on /v1/completions, /v1/chat/completions and /v1/responses
 * (its typed events; a length cut is {@code incomplete}, read as "length"), each with a short
 * and a long {@code max_tokens}; on the completions and chat routes the odd prompts also carry
 * llama.cpp's repetition penalty and DRY (each its own DRY setting: stages made off the
 * scheduler, copied into every chain, with the prompt fed to their history), still greedy and so
 * still reproducible. Then {@code --clients} virtual threads send requests back to back
 * for the warm-up and then for {@code --duration}; each request is one of
 * <ul>
 *   <li>{@code whole}: non-streaming, short; the text, finish reason and token count must equal
 *       the reference;</li>
 *   <li>{@code stream}: streaming, short, over the JDK HTTP client (kept-alive connections); the
 *       concatenated chunks must equal the reference; its time to first token and the gaps
 *       between its chunks are recorded, separately for gaps while slow readers are active;</li>
 *   <li>{@code cancel}: streaming, long, over a raw socket that the client closes after a random
 *       number of events (0 = right after sending the request); what arrived must be a prefix of
 *       the reference;</li>
 *   <li>{@code slow}: streaming, long, over a raw socket with a 4 KiB receive buffer read at most
 *       256 bytes at a time, sleeping after every event, so that the server's writes block once
 *       the socket buffers are full; the text must equal the reference.</li>
 * </ul>
 * With {@code --server-pid} (Linux) it samples the server's resident memory, open descriptors and
 * threads from {@code /proc} during the run. At the end it waits until the server's /metrics
 * show no busy slot and no queued request. It prints one JSON report on stdout and exits 1 when
 * a goal failed (any 5xx, any mismatch, any other error, slots left busy).
 *
 * <pre>
 * java -cp server/target/test-classes:server/target/libs/* ai.llmref.server.bench.SoakClient \
 *   --url http://127.0.0.1:8080 --admin http://127.0.0.1:9090 --clients 16 --duration 600 \
 *   [--warmup 30] [--server-pid PID] [--seed 1] [--cancel 0.15] [--slow 0.1] [--stream 0.45]
 *   [--short-tokens 48] [--long-tokens 160] [--sample 10] [--slow-pause-ms 40] [--raw FILE.jsonl]
 * </pre>
 */
public final class SoakClient {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] PROMPTS = {
        "Once upon a time, Lily found a red ball in the park.",
        "Tom had a little boat. One day,",
        "The cat saw a big tree and wanted to climb it.",
        "Sue and Ben went to the beach with their mom.",
        "There was a shiny star in the sky. Max",
        "Mia liked to draw pictures of birds.",
    };
    private static final String[] ROUTES = {"/v1/completions", "/v1/chat/completions", "/v1/responses"};
    private static final int RESPONSES = 2;
    private static final int SLOW_READ_BYTES = 256;
    private static final int SLOW_RECEIVE_BUFFER = 4096;

    private SoakClient() {}

    public enum Kind { WHOLE, STREAM, CANCEL, SLOW }

    public record Options(URI url, URI admin, int clients, double warmupSeconds, double durationSeconds, long seed,
                          double cancelShare, double slowShare, double streamShare, int shortTokens, int longTokens,
                          long serverPid, double sampleSeconds, long slowPauseMillis, Duration timeout, Path raw) {}

    /** What one request is: prompt, route, length. */
    record Shape(int prompt, int route, int maxTokens) {
        String key() {
            return prompt + ROUTES[route] + maxTokens;
        }
    }

    record Reference(String text, String finish, int completionTokens) {}

    /** One request's outcome; {@code error} is null when it behaved (a planned cancel included). */
    record Outcome(Kind kind, Shape shape, long sentNanos, long endNanos, long ttftNanos, int status, String error, String detail,
                   List<long[]> gaps, int eventsBeforeCancel) {}

    public static void main(String[] args) throws Exception {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("SoakClient: " + e.getMessage());
            System.exit(2);
            return;
        }
        ObjectNode report = run(o);
        System.out.println(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(report));
        System.exit(report.path("goals").path("met").asBoolean() ? 0 : 1);
    }

    public static Options parse(String... args) {
        URI url = null;
        URI admin = null;
        int clients = 16;
        double warmup = 10;
        double duration = 60;
        long seed = 1;
        double cancel = 0.15;
        double slow = 0.10;
        double stream = 0.45;
        int shortTokens = 48;
        int longTokens = 160;
        long pid = 0;
        double sample = 10;
        long pause = 40;
        Duration timeout = Duration.ofSeconds(120);
        Path raw = null;
        for (int i = 0; i < args.length; i += 2) {
            String a = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(a + " needs a value");
            }
            String v = args[i + 1];
            switch (a) {
                case "--url" -> url = URI.create(v.replaceAll("/+$", ""));
                case "--admin" -> admin = URI.create(v.replaceAll("/+$", ""));
                case "--clients" -> clients = Integer.parseInt(v);
                case "--warmup" -> warmup = Double.parseDouble(v);
                case "--duration" -> duration = Double.parseDouble(v);
                case "--seed" -> seed = Long.parseLong(v);
                case "--cancel" -> cancel = Double.parseDouble(v);
                case "--slow" -> slow = Double.parseDouble(v);
                case "--stream" -> stream = Double.parseDouble(v);
                case "--short-tokens" -> shortTokens = Integer.parseInt(v);
                case "--long-tokens" -> longTokens = Integer.parseInt(v);
                case "--server-pid" -> pid = Long.parseLong(v);
                case "--sample" -> sample = Double.parseDouble(v);
                case "--slow-pause-ms" -> pause = Long.parseLong(v);
                case "--timeout" -> timeout = Duration.ofSeconds(Long.parseLong(v));
                case "--raw" -> raw = Path.of(v);
                default -> throw new IllegalArgumentException("unknown option " + a);
            }
        }
        if (url == null || admin == null) {
            throw new IllegalArgumentException("--url and --admin are required");
        }
        if (clients < 1 || !(duration > 0) || warmup < 0 || shortTokens < 1 || longTokens < 1 || !(sample > 0)) {
            throw new IllegalArgumentException("--clients, --duration, --short-tokens, --long-tokens, --sample must be positive");
        }
        if (cancel < 0 || slow < 0 || stream < 0 || cancel + slow + stream > 1) {
            throw new IllegalArgumentException("--cancel, --slow and --stream are shares: non-negative, at most 1 together");
        }
        return new Options(url, admin, clients, warmup, duration, seed, cancel, slow, stream, shortTokens, longTokens, pid,
                sample, pause, timeout, raw);
    }

    // --- the run ------------------------------------------------------------------------------------

    public static ObjectNode run(Options o) throws Exception {
        ObjectNode report = JSON.createObjectNode();
        ObjectNode cfg = report.putObject("config");
        cfg.put("url", o.url().toString()).put("clients", o.clients()).put("warmup_s", o.warmupSeconds())
                .put("duration_s", o.durationSeconds()).put("seed", o.seed()).put("share_cancel", o.cancelShare())
                .put("share_slow", o.slowShare()).put("share_stream", o.streamShare())
                .put("share_whole", round(1 - o.cancelShare() - o.slowShare() - o.streamShare(), 3))
                .put("short_tokens", o.shortTokens()).put("long_tokens", o.longTokens()).put("slow_pause_ms", o.slowPauseMillis());

        Map<String, Reference> refs = new ConcurrentHashMap<>();
        try (HttpClient http = client()) {
            for (int p = 0; p < PROMPTS.length; p++) {
                for (int r = 0; r < ROUTES.length; r++) {
                    for (int len : new int[] {o.shortTokens(), o.longTokens()}) {
                        Shape s = new Shape(p, r, len);
                        refs.put(s.key(), reference(http, o, s));
                    }
                }
            }
        }
        ObjectNode rn = report.putObject("references");
        rn.put("count", refs.size());
        rn.put("distinct_texts", new HashSet<>(refs.values().stream().map(Reference::text).toList()).size());
        rn.put("finish_stop", refs.values().stream().filter(r -> r.finish().equals("stop")).count());

        if (o.warmupSeconds() > 0) {
            List<Outcome> w = load(o, refs, o.warmupSeconds(), o.seed() * 7919 + 1, new AtomicInteger());
            report.put("warmup_requests", w.size());
        }
        Sampler sampler = new Sampler(o.serverPid(), o.sampleSeconds());
        Sample start = Sample.of(o.serverPid());
        sampler.start();
        AtomicInteger slowActive = new AtomicInteger();
        long t0 = System.nanoTime();
        List<Outcome> all = load(o, refs, o.durationSeconds(), o.seed(), slowActive);
        long t1 = System.nanoTime();
        boolean idle = waitIdle(o, Duration.ofSeconds(15));
        Map<String, Double> metrics = scrape(o);
        Sample end = Sample.of(o.serverPid());
        sampler.stop();
        if (o.raw() != null) {
            writeRaw(o.raw(), all, t0);
        }
        summarize(report, o, all, (t1 - t0) / 1e9, start, end, sampler.timeline, metrics, idle);
        return report;
    }

    private static HttpClient client() {
        return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    }

    /** Runs the mix with {@code o.clients()} clients for {@code seconds}; one list of outcomes. */
    private static List<Outcome> load(Options o, Map<String, Reference> refs, double seconds, long seed, AtomicInteger slowActive)
            throws Exception {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        List<Outcome> all = Collections.synchronizedList(new ArrayList<>());
        try (HttpClient http = client(); ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> fs = new ArrayList<>();
            for (int c = 0; c < o.clients(); c++) {
                SplittableRandom rnd = new SplittableRandom(seed * 1_000_003L + c);
                fs.add(pool.submit(() -> {
                    while (System.nanoTime() < deadline) {
                        all.add(one(http, o, refs, rnd, slowActive));
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get();
            }
        }
        return all;
    }

    private static Outcome one(HttpClient http, Options o, Map<String, Reference> refs, SplittableRandom rnd, AtomicInteger slowActive) {
        double x = rnd.nextDouble();
        Kind kind = x < o.cancelShare() ? Kind.CANCEL : x < o.cancelShare() + o.slowShare() ? Kind.SLOW
                : x < o.cancelShare() + o.slowShare() + o.streamShare() ? Kind.STREAM : Kind.WHOLE;
        int len = kind == Kind.CANCEL || kind == Kind.SLOW ? o.longTokens() : o.shortTokens();
        Shape s = new Shape(rnd.nextInt(PROMPTS.length), rnd.nextInt(ROUTES.length), len);
        Reference ref = refs.get(s.key());
        return switch (kind) {
            case WHOLE -> whole(http, o, s, ref);
            case STREAM -> stream(http, o, s, ref, slowActive);
            case CANCEL -> raw(o, s, ref, kind, rnd.nextInt(0, 24), slowActive, rnd);
            case SLOW -> {
                slowActive.incrementAndGet();
                try {
                    yield raw(o, s, ref, kind, Integer.MAX_VALUE, slowActive, rnd);
                } finally {
                    slowActive.decrementAndGet();
                }
            }
        };
    }

    static String body(Shape s, boolean stream) {
        ObjectNode b = JSON.createObjectNode();
        if (s.route() == RESPONSES) {
            // instructions make the prompt differ from the chat route's (references must tell routes apart)
            b.put("instructions", "Tell a story.").put("input", PROMPTS[s.prompt()]).put("max_output_tokens", s.maxTokens())
                    .put("temperature", 0);
            if (stream) {
                b.put("stream", true);
            }
            return b.toString();
        }
        if (s.route() == 0) {
            b.put("prompt", PROMPTS[s.prompt()]);
        } else {
            b.putArray("messages").addObject().put("role", "user").put("content", PROMPTS[s.prompt()]);
        }
        b.put("max_tokens", s.maxTokens());
        b.put("temperature", 0);
        if (s.prompt() % 2 == 1) {
            b.put("repeat_penalty", 1.1).put("repeat_last_n", 128).put("dry_multiplier", 0.5 + s.prompt()).put("dry_allowed_length", 2);
        }
        if (stream) {
            b.put("stream", true);
            b.putObject("stream_options").put("include_usage", true);
        }
        return b.toString();
    }

    private static HttpRequest request(Options o, Shape s, boolean stream) {
        return HttpRequest.newBuilder(URI.create(o.url() + ROUTES[s.route()])).timeout(o.timeout())
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body(s, stream))).build();
    }

    private static Reference reference(HttpClient http, Options o, Shape s) throws Exception {
        HttpResponse<String> r = http.send(request(o, s, false), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IllegalStateException("reference request " + s + " failed: HTTP " + r.statusCode() + " " + r.body());
        }
        return reference(JSON.readTree(r.body()), s);
    }

    private static Outcome whole(HttpClient http, Options o, Shape s, Reference ref) {
        long sent = System.nanoTime();
        try {
            HttpResponse<String> r = http.send(request(o, s, false), HttpResponse.BodyHandlers.ofString());
            long end = System.nanoTime();
            if (r.statusCode() != 200) {
                return new Outcome(Kind.WHOLE, s, sent, end, 0, r.statusCode(), "http_" + r.statusCode(), abbreviate(r.body()), List.of(), 0);
            }
            Reference got = reference(JSON.readTree(r.body()), s);
            String diff = compare(ref, got);
            return new Outcome(Kind.WHOLE, s, sent, end, 0, 200, diff == null ? null : "mismatch", diff, List.of(), 0);
        } catch (Exception e) {
            return failed(Kind.WHOLE, s, sent, e);
        }
    }

    private static Reference reference(JsonNode n, Shape s) {
        if (s.route() == RESPONSES) {
            return new Reference(n.at("/output/0/content/0/text").asText(), finish(n.path("status").asText()),
                    n.path("usage").path("output_tokens").asInt());
        }
        JsonNode choice = n.path("choices").path(0);
        String text = s.route() == 0 ? choice.path("text").asText() : choice.path("message").path("content").asText();
        return new Reference(text, choice.path("finish_reason").asText(), n.path("usage").path("completion_tokens").asInt());
    }

    /** A response's status as the finish reason it stands for. */
    private static String finish(String status) {
        return switch (status) {
            case "completed" -> "stop";
            case "incomplete" -> "length";
            default -> status;
        };
    }

    private static String compare(Reference want, Reference got) {
        if (!want.text().equals(got.text())) {
            return "text differs: want " + abbreviate(JSON.valueToTree(want.text()).toString()) + " got "
                    + abbreviate(JSON.valueToTree(got.text()).toString());
        }
        if (!want.finish().equals(got.finish())) {
            return "finish_reason " + got.finish() + ", want " + want.finish();
        }
        if (want.completionTokens() != got.completionTokens()) {
            return "completion_tokens " + got.completionTokens() + ", want " + want.completionTokens();
        }
        return null;
    }

    /** A stream over the JDK client; gaps are {nanos, slow readers active at its end}. */
    private static Outcome stream(HttpClient http, Options o, Shape s, Reference ref, AtomicInteger slowActive) {
        long sent = System.nanoTime();
        try {
            HttpResponse<InputStream> r = http.send(request(o, s, true), HttpResponse.BodyHandlers.ofInputStream());
            if (r.statusCode() != 200) {
                String b;
                try (InputStream in = r.body()) {
                    b = new String(in.readAllBytes(), StandardCharsets.UTF_8);
                }
                return new Outcome(Kind.STREAM, s, sent, System.nanoTime(), 0, r.statusCode(), "http_" + r.statusCode(), abbreviate(b), List.of(), 0);
            }
            try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                Events ev = readEvents(in, s, Integer.MAX_VALUE, 0, slowActive, null);
                return finishStream(Kind.STREAM, s, ref, sent, ev, 200);
            }
        } catch (Exception e) {
            return failed(Kind.STREAM, s, sent, e);
        }
    }

    /** What a stream delivered. */
    static final class Events {
        final StringBuilder text = new StringBuilder();
        String finish;
        int completionTokens = -1;
        boolean done;
        String error;
        int count;
        long firstText;
        final List<long[]> gaps = new ArrayList<>();
    }

    /**
     * Reads SSE events until [DONE], the end of the stream, or {@code stopAfter} events. With
     * {@code pauseMillis} > 0 it sleeps after each event (a slow reader).
     */
    private static Events readEvents(BufferedReader in, Shape s, int stopAfter, long pauseMillis, AtomicInteger slowActive,
            SplittableRandom rnd) throws IOException, InterruptedException {
        Events ev = new Events();
        long last = 0;
        String line;
        while (ev.count < stopAfter && (line = in.readLine()) != null) {
            if (!line.startsWith("data:")) {
                continue;
            }
            String data = line.substring(5).trim();
            if (data.equals("[DONE]")) {
                ev.done = true;
                break;
            }
            long now = System.nanoTime();
            ev.count++;
            JsonNode chunk = JSON.readTree(data);
            String type = chunk.path("type").asText("");
            if (chunk.has("error") || type.equals("error") || type.equals("response.failed")) {
                ev.error = chunk.has("error") ? chunk.get("error").toString() : chunk.toString();
                break;
            }
            if (type.equals("response.completed") || type.equals("response.incomplete")) {
                // the Responses API's last event (no [DONE] follows)
                ev.finish = finish(chunk.path("response").path("status").asText());
                ev.completionTokens = chunk.path("response").path("usage").path("output_tokens").asInt(-1);
                ev.done = true;
                break;
            }
            JsonNode choice = chunk.path("choices").path(0);
            String t = s.route() == 0 ? choice.path("text").asText("")
                    : s.route() == RESPONSES ? (type.equals("response.output_text.delta") ? chunk.path("delta").asText("") : "")
                    : choice.path("delta").path("content").asText("");
            if (!t.isEmpty()) {
                if (ev.firstText == 0) {
                    ev.firstText = now;
                } else if (slowActive != null) {
                    ev.gaps.add(new long[] {now - last, slowActive.get()});
                }
                last = now;
                ev.text.append(t);
            }
            if (choice.path("finish_reason").isTextual()) {
                ev.finish = choice.path("finish_reason").textValue();
            }
            if (chunk.path("usage").path("completion_tokens").isInt()) {
                ev.completionTokens = chunk.path("usage").path("completion_tokens").intValue();
            }
            if (pauseMillis > 0) {
                Thread.sleep(pauseMillis / 2 + rnd.nextLong(pauseMillis + 1));
            }
        }
        return ev;
    }

    private static Outcome finishStream(Kind kind, Shape s, Reference ref, long sent, Events ev, int status) {
        long end = System.nanoTime();
        long ttft = ev.firstText == 0 ? 0 : ev.firstText - sent;
        if (ev.error != null) {
            return new Outcome(kind, s, sent, end, ttft, status, "stream_error_event", abbreviate(ev.error), ev.gaps, ev.count);
        }
        if (!ev.done || ev.finish == null) {
            return new Outcome(kind, s, sent, end, ttft, status, "truncated_stream", "no finish_reason/[DONE] after " + ev.count + " events",
                    ev.gaps, ev.count);
        }
        String diff = compare(ref, new Reference(ev.text.toString(), ev.finish, ev.completionTokens));
        return new Outcome(kind, s, sent, end, ttft, status, diff == null ? null : "mismatch", diff, ev.gaps, ev.count);
    }

    /** A stream over a raw socket: cancelled after {@code stopAfter} events, or read slowly to the end. */
    private static Outcome raw(Options o, Shape s, Reference ref, Kind kind, int stopAfter, AtomicInteger slowActive, SplittableRandom rnd) {
        long sent = System.nanoTime();
        boolean slow = kind == Kind.SLOW;
        try (Socket sock = new Socket()) {
            if (slow) {
                sock.setReceiveBufferSize(SLOW_RECEIVE_BUFFER); // before connecting: it sets the TCP window
            }
            sock.setTcpNoDelay(true);
            sock.connect(new InetSocketAddress(o.url().getHost(), o.url().getPort()), 10_000);
            sock.setSoTimeout((int) o.timeout().toMillis());
            byte[] body = body(s, true).getBytes(StandardCharsets.UTF_8);
            OutputStream out = sock.getOutputStream();
            out.write(("POST " + ROUTES[s.route()] + " HTTP/1.1\r\nHost: " + o.url().getHost() + ":" + o.url().getPort()
                    + "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: " + body.length
                    + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            if (stopAfter == 0) {
                return new Outcome(kind, s, sent, System.nanoTime(), 0, 0, null, null, List.of(), 0); // gone before any answer
            }
            InputStream in = new BufferedInputStream(sock.getInputStream(), slow ? SLOW_READ_BYTES : 8192);
            String statusLine = asciiLine(in);
            int status = statusLine == null ? -1 : Integer.parseInt(statusLine.split(" ")[1]);
            boolean chunked = false;
            long length = -1;
            for (String h; (h = asciiLine(in)) != null && !h.isEmpty(); ) {
                String lower = h.toLowerCase();
                chunked |= lower.startsWith("transfer-encoding:") && lower.contains("chunked");
                if (lower.startsWith("content-length:")) {
                    length = Long.parseLong(lower.substring(15).trim());
                }
            }
            InputStream content = chunked ? new Chunked(in, slow ? SLOW_READ_BYTES : 8192) : length >= 0 ? new Limited(in, length) : in;
            if (status != 200) {
                String b = new String(content.readAllBytes(), StandardCharsets.UTF_8);
                return new Outcome(kind, s, sent, System.nanoTime(), 0, status, "http_" + status, abbreviate(b), List.of(), 0);
            }
            BufferedReader reader = new BufferedReader(new InputStreamReader(content, StandardCharsets.UTF_8), slow ? SLOW_READ_BYTES : 8192);
            Events ev = readEvents(reader, s, stopAfter, slow ? o.slowPauseMillis() : 0, null, rnd);
            if (kind == Kind.CANCEL && !ev.done && ev.error == null) {
                // closed mid-stream on purpose: what came must be the start of the reference
                boolean prefix = ref.text().startsWith(ev.text.toString());
                return new Outcome(kind, s, sent, System.nanoTime(), 0, 200, prefix ? null : "mismatch",
                        prefix ? null : "cancelled stream's text is not a prefix of the reference", List.of(), ev.count);
            }
            return finishStream(kind, s, ref, sent, ev, 200);
        } catch (Exception e) {
            return failed(kind, s, sent, e);
        }
    }

    private static Outcome failed(Kind kind, Shape s, long sent, Exception e) {
        if (e instanceof InterruptedException) {
            Thread.currentThread().interrupt();
        }
        return new Outcome(kind, s, sent, System.nanoTime(), 0, -1, "io_" + e.getClass().getSimpleName(), abbreviate(String.valueOf(e)),
                List.of(), 0);
    }

    private static String asciiLine(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int c;
        while ((c = in.read()) >= 0) {
            if (c == '\n') {
                String s = b.toString(StandardCharsets.US_ASCII);
                return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
            }
            b.write(c);
        }
        return b.size() == 0 ? null : b.toString(StandardCharsets.US_ASCII);
    }

    /** HTTP/1.1 chunked transfer decoding; each read returns at most {@code maxRead} bytes. */
    static final class Chunked extends InputStream {
        private final InputStream in;
        private final int maxRead;
        private long left;
        private boolean eof;

        Chunked(InputStream in, int maxRead) {
            this.in = in;
            this.maxRead = maxRead;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (eof) {
                return -1;
            }
            if (left == 0) {
                String size = asciiLine(in);
                if (size == null) {
                    eof = true;
                    return -1;
                }
                if (size.isEmpty()) { // the CRLF after the previous chunk's data
                    size = asciiLine(in);
                    if (size == null) {
                        eof = true;
                        return -1;
                    }
                }
                int semi = size.indexOf(';');
                left = Long.parseLong((semi >= 0 ? size.substring(0, semi) : size).trim(), 16);
                if (left == 0) {
                    for (String t; (t = asciiLine(in)) != null && !t.isEmpty(); ) {
                        // trailers
                    }
                    eof = true;
                    return -1;
                }
            }
            int n = in.read(b, off, (int) Math.min(Math.min(len, maxRead), left));
            if (n < 0) {
                eof = true;
                return -1;
            }
            left -= n;
            return n;
        }
    }

    /** A body of known length. */
    static final class Limited extends InputStream {
        private final InputStream in;
        private long left;

        Limited(InputStream in, long length) {
            this.in = in;
            this.left = length;
        }

        @Override
        public int read() throws IOException {
            if (left <= 0) {
                return -1;
            }
            int c = in.read();
            left--;
            return c;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (left <= 0) {
                return -1;
            }
            int n = in.read(b, off, (int) Math.min(len, left));
            if (n > 0) {
                left -= n;
            }
            return n;
        }
    }

    // --- the server's side: /metrics and /proc --------------------------------------------------------

    private static final Pattern SERIES = Pattern.compile("(?m)^(llmref_[a-z_]+(?:\\{[^}]*\\})?) ([0-9.eE+-]+)$");

    static Map<String, Double> scrape(Options o) throws Exception {
        try (HttpClient http = client()) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(o.admin() + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString());
            Map<String, Double> out = new TreeMap<>();
            Matcher m = SERIES.matcher(r.body());
            while (m.find()) {
                out.put(m.group(1), Double.parseDouble(m.group(2)));
            }
            return out;
        }
    }

    /** Waits until the server reports no busy slot and no queued request (cancelled streams are noticed at the next write). */
    private static boolean waitIdle(Options o, Duration max) throws Exception {
        long end = System.nanoTime() + max.toNanos();
        while (true) {
            Map<String, Double> m = scrape(o);
            if (m.getOrDefault("llmref_slots_busy", -1.0) == 0 && m.getOrDefault("llmref_queue_depth", -1.0) == 0) {
                return true;
            }
            if (System.nanoTime() > end) {
                return false;
            }
            Thread.sleep(100);
        }
    }

    /** Resident memory, open descriptors and threads of a process (Linux /proc); -1 when unknown. */
    record Sample(double atSeconds, long rssKiB, long fds, long threads) {
        static Sample of(long pid) {
            return of(pid, 0);
        }

        static Sample of(long pid, double at) {
            if (pid <= 0) {
                return new Sample(at, -1, -1, -1);
            }
            long rss = -1;
            long threads = -1;
            long fds = -1;
            try {
                for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                    if (line.startsWith("VmRSS:")) {
                        rss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                    } else if (line.startsWith("Threads:")) {
                        threads = Long.parseLong(line.replaceAll("[^0-9]", ""));
                    }
                }
                try (var s = Files.list(Path.of("/proc/" + pid + "/fd"))) {
                    fds = s.count();
                }
            } catch (IOException | RuntimeException e) {
                // not Linux, or the process is gone: unknown
            }
            return new Sample(at, rss, fds, threads);
        }
    }

    /** Samples the server every {@code seconds} while the load runs. */
    static final class Sampler {
        final List<Sample> timeline = Collections.synchronizedList(new ArrayList<>());
        private final long pid;
        private final double seconds;
        private volatile boolean running = true;
        private Thread thread;

        Sampler(long pid, double seconds) {
            this.pid = pid;
            this.seconds = seconds;
        }

        void start() {
            long t0 = System.nanoTime();
            thread = Thread.ofVirtual().start(() -> {
                while (running && pid > 0) {
                    timeline.add(Sample.of(pid, round((System.nanoTime() - t0) / 1e9, 1)));
                    try {
                        Thread.sleep((long) (seconds * 1000));
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
        }

        void stop() throws InterruptedException {
            running = false;
            thread.interrupt();
            thread.join();
        }
    }

    // --- the report ---------------------------------------------------------------------------------

    private static void summarize(ObjectNode r, Options o, List<Outcome> all, double wall, Sample start, Sample end,
            List<Sample> timeline, Map<String, Double> metrics, boolean idle) {
        r.put("wall_s", round(wall, 2));
        r.put("requests", all.size());
        r.put("requests_per_s", round(all.size() / wall, 2));
        ObjectNode byKind = r.putObject("by_kind");
        for (Kind k : Kind.values()) {
            byKind.put(k.name().toLowerCase(), all.stream().filter(x -> x.kind() == k).count());
        }
        r.put("chat_requests", all.stream().filter(x -> x.shape().route() == 1).count());
        r.put("responses_requests", all.stream().filter(x -> x.shape().route() == RESPONSES).count());
        r.put("cancelled_before_answer", all.stream().filter(x -> x.kind() == Kind.CANCEL && x.status() == 0).count());
        Map<String, Integer> errors = new TreeMap<>();
        all.stream().filter(x -> x.error() != null).forEach(x -> errors.merge(x.error(), 1, Integer::sum));
        ObjectNode en = r.putObject("errors_by_kind");
        errors.forEach(en::put);
        long errorCount = all.stream().filter(x -> x.error() != null).count();
        long fivexx = all.stream().filter(x -> x.status() >= 500).count();
        long mismatches = all.stream().filter(x -> "mismatch".equals(x.error())).count();
        r.put("errors", errorCount);
        r.put("client_seen_5xx", fivexx);
        r.put("mismatches", mismatches);
        ArrayNode first = r.putArray("first_errors");
        all.stream().filter(x -> x.error() != null).limit(5).forEach(x -> first.add(x.kind() + " " + x.shape() + ": " + x.error() + ": " + x.detail()));
        Map<Integer, Integer> statuses = new TreeMap<>();
        all.stream().filter(x -> x.status() != 0).forEach(x -> statuses.merge(x.status(), 1, Integer::sum));
        ObjectNode sn = r.putObject("client_statuses");
        statuses.forEach((k, v) -> sn.put(Integer.toString(k), v));

        List<Outcome> ok = all.stream().filter(x -> x.error() == null && x.status() == 200).toList();
        r.set("latency_ms_whole", LoadGenerator.stats(ok.stream().filter(x -> x.kind() == Kind.WHOLE)
                .mapToDouble(x -> (x.endNanos() - x.sentNanos()) / 1e6).toArray(), 2));
        r.set("latency_ms_stream", LoadGenerator.stats(ok.stream().filter(x -> x.kind() == Kind.STREAM)
                .mapToDouble(x -> (x.endNanos() - x.sentNanos()) / 1e6).toArray(), 2));
        r.set("ttft_ms_stream", LoadGenerator.stats(ok.stream().filter(x -> x.kind() == Kind.STREAM && x.ttftNanos() > 0)
                .mapToDouble(x -> x.ttftNanos() / 1e6).toArray(), 2));
        r.set("slow_stream_s", LoadGenerator.stats(ok.stream().filter(x -> x.kind() == Kind.SLOW)
                .mapToDouble(x -> (x.endNanos() - x.sentNanos()) / 1e9).toArray(), 2));
        List<long[]> gaps = ok.stream().filter(x -> x.kind() == Kind.STREAM).flatMap(x -> x.gaps().stream()).toList();
        r.set("stream_gap_ms", LoadGenerator.stats(gaps.stream().mapToDouble(g -> g[0] / 1e6).toArray(), 2));
        r.set("stream_gap_ms_while_slow_readers", LoadGenerator.stats(gaps.stream().filter(g -> g[1] > 0)
                .mapToDouble(g -> g[0] / 1e6).toArray(), 2));
        r.set("stream_gap_ms_without_slow_readers", LoadGenerator.stats(gaps.stream().filter(g -> g[1] == 0)
                .mapToDouble(g -> g[0] / 1e6).toArray(), 2));

        ObjectNode srv = r.putObject("server_process");
        srv.put("pid", o.serverPid());
        srv.put("rss_kib_start", start.rssKiB()).put("rss_kib_end", end.rssKiB());
        srv.put("rss_kib_max", timeline.stream().mapToLong(Sample::rssKiB).max().orElse(-1));
        srv.put("fds_start", start.fds()).put("fds_end", end.fds());
        srv.put("fds_max", timeline.stream().mapToLong(Sample::fds).max().orElse(-1));
        srv.put("threads_start", start.threads()).put("threads_end", end.threads());
        ArrayNode tl = srv.putArray("timeline");
        synchronized (timeline) {
            for (Sample s : timeline) {
                tl.addArray().add(s.atSeconds()).add(s.rssKiB()).add(s.fds()).add(s.threads());
            }
        }
        srv.put("timeline_columns", "seconds, rss_kib, fds, threads");

        ObjectNode mn = r.putObject("metrics_end");
        for (String k : List.of("llmref_slots_busy", "llmref_slots_total", "llmref_queue_depth", "llmref_kv_cache_cells_used",
                "llmref_kv_cache_cells_total", "llmref_ready", "llmref_engine_prefix_copies_total", "llmref_engine_sequence_runs_total", "llmref_engine_graphs_reused_total",
                "llmref_engine_device_sampler_attaches_total",
                "llmref_engine_step_phase_seconds_count{phase=\"decode\"}")) {
            mn.put(k, metrics.getOrDefault(k, Double.NaN));
        }
        ObjectNode served = mn.putObject("requests_total");
        long server5xx = 0;
        for (Map.Entry<String, Double> e : metrics.entrySet()) {
            if (e.getKey().startsWith("llmref_requests_total{")) {
                served.put(e.getKey().substring("llmref_requests_total".length()), e.getValue().longValue());
                if (e.getKey().contains("status=\"5")) {
                    server5xx += e.getValue().longValue();
                }
            }
        }
        mn.put("server_counted_5xx", server5xx);

        ObjectNode goals = r.putObject("goals");
        goals.put("no_5xx", fivexx == 0 && server5xx == 0);
        goals.put("no_mismatch", mismatches == 0);
        goals.put("no_errors", errorCount == 0);
        goals.put("slots_free_at_end", idle);
        goals.put("fd_growth", start.fds() < 0 ? 0 : end.fds() - start.fds());
        goals.put("rss_growth_kib", start.rssKiB() < 0 ? 0 : end.rssKiB() - start.rssKiB());
        goals.put("met", fivexx == 0 && server5xx == 0 && mismatches == 0 && errorCount == 0 && idle);
    }

    private static void writeRaw(Path file, List<Outcome> all, long t0) throws IOException {
        List<String> lines = new ArrayList<>();
        synchronized (all) {
            for (Outcome x : all) {
                ObjectNode n = JSON.createObjectNode();
                n.put("kind", x.kind().name().toLowerCase()).put("route", ROUTES[x.shape().route()]).put("prompt", x.shape().prompt())
                        .put("max_tokens", x.shape().maxTokens()).put("sent_ms", round((x.sentNanos() - t0) / 1e6, 1))
                        .put("ms", round((x.endNanos() - x.sentNanos()) / 1e6, 1)).put("status", x.status()).put("events", x.eventsBeforeCancel());
                if (x.ttftNanos() > 0) {
                    n.put("ttft_ms", round(x.ttftNanos() / 1e6, 2));
                }
                if (x.error() != null) {
                    n.put("error", x.error()).put("detail", x.detail());
                }
                lines.add(n.toString());
            }
        }
        Files.write(file, lines);
    }

    private static double round(double v, int digits) {
        double f = Math.pow(10, digits);
        return Math.round(v * f) / f;
    }

    private static String abbreviate(String s) {
        return s == null ? null : s.length() <= 300 ? s : s.substring(0, 297) + "...";
    }
}
