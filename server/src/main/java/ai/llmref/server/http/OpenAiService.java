package ai.llmref.server.http;

import ai.llmref.server.ServedModel;
import ai.llmref.server.engine.EngineException;
import ai.llmref.server.engine.FinishReason;
import ai.llmref.server.engine.GenerationEvent;
import ai.llmref.server.engine.GenerationRequest;
import ai.llmref.server.engine.RequestHandle;
import ai.llmref.server.engine.TokenLogprob;
import ai.llmref.server.observe.AccessLog;
import ai.llmref.server.observe.ServerMetrics;
import ai.llmref.server.observe.Tracing;
import ai.llmref.server.structured.MarkerFilter;
import ai.llmref.server.structured.ReasoningStream;
import ai.llmref.server.structured.ToolCalls;
import ai.llmref.server.structured.ToolStream;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.StatusCode;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.ServerConnectionException;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;

/**
 * The OpenAI-compatible routes. Handlers run on virtual threads: they parse and validate, submit
 * to the engine and stream what comes back; they never touch native code.
 */
public final class OpenAiService implements HttpService {
    private static final System.Logger LOG = System.getLogger(OpenAiService.class.getName());
    private static final byte[] DONE = "data: [DONE]\n\n".getBytes(StandardCharsets.US_ASCII);
    /** An SSE comment: every SSE client skips it (see {@link #KEEP_ALIVE_NANOS}). */
    private static final byte[] KEEP_ALIVE = ": keep-alive\n\n".getBytes(StandardCharsets.US_ASCII);
    /**
     * A stream that has had nothing to send for this long (queued behind busy slots, a long prompt
     * being decoded) gets a {@link #KEEP_ALIVE} comment: writing is the only way a handler learns
     * that its client has gone (the second write after the client closed fails), so without it a
     * client that gave up kept its place in the queue and had its prompt decoded. It also keeps
     * proxies with a read timeout from cutting a stream that waits.
     */
    static final long KEEP_ALIVE_NANOS = TimeUnit.MILLISECONDS.toNanos(1000);

    private final Supplier<ServedModel> models;
    private final Supplier<String> unready;
    private final Json json;
    private final Limits limits;
    private final ServerMetrics metrics;
    private final Tracing tracing;

    /** Request limits enforced here (the body size before parsing, the time a request may take). */
    /** @param maxChoices most choices ({@code n}) a request may ask for (and no more than the slots) */
    public record Limits(long maxBodyBytes, int maxTokens, int maxPromptTokens, long requestTimeoutMillis, int maxChoices,
                         long bodyTimeoutMillis) {}

    /**
     * @param unready why the server is not ready (a readiness status word), or null when it is:
     *                what the API port's {@code /health} answers
     */
    public OpenAiService(Supplier<ServedModel> models, Supplier<String> unready, Json json, Limits limits, ServerMetrics metrics,
            Tracing tracing) {
        this.models = models;
        this.unready = unready;
        this.json = json;
        this.limits = limits;
        this.metrics = metrics;
        this.tracing = tracing;
    }

    @Override
    public void routing(HttpRules rules) {
        route(rules, "POST", "/v1/chat/completions", this::chat);
        route(rules, "POST", "/v1/completions", this::completion);
        route(rules, "POST", "/v1/responses", this::responses);
        route(rules, "POST", "/v1/responses/input_tokens", this::responsesInputTokens);
        route(rules, "POST", "/v1/chat/completions/input_tokens", this::chatInputTokens);
        // a stored response's routes: none is stored, each says so (instead of "no route")
        route(rules, "GET", "/v1/responses/{id}", this::storedResponse);
        route(rules, "DELETE", "/v1/responses/{id}", this::storedResponse);
        route(rules, "GET", "/v1/responses/{id}/input_items", this::storedResponse);
        route(rules, "POST", "/v1/responses/{id}/cancel", this::storedResponse);
        route(rules, "POST", "/v1/messages", this::messages, true);
        route(rules, "POST", "/v1/messages/count_tokens", this::countTokens, true);
        route(rules, "POST", "/v1/embeddings", this::embeddings);
        route(rules, "GET", "/v1/models", this::models);
        route(rules, "GET", "/v1/models/{id}", this::model);
        route(rules, "POST", "/infill", this::infill);
        route(rules, "POST", "/completion", this::nativeCompletion);
        route(rules, "POST", "/completions", this::nativeCompletion);
        route(rules, "POST", "/tokenize", this::tokenize);
        route(rules, "POST", "/detokenize", this::detokenize);
        route(rules, "POST", "/apply-template", this::applyTemplate);
        route(rules, "GET", "/props", this::props);
        route(rules, "GET", "/health", this::health);
        route(rules, "GET", "/v1/health", this::health);
        // the OpenAI routes without "/v1", as llama-server serves them: a client whose base URL lacks "/v1" reaches them
        route(rules, "POST", "/chat/completions", this::chat);
        route(rules, "POST", "/responses", this::responses);
        route(rules, "POST", "/responses/input_tokens", this::responsesInputTokens);
        route(rules, "POST", "/chat/completions/input_tokens", this::chatInputTokens);
        route(rules, "GET", "/models", this::models);
    }

    @FunctionalInterface
    private interface Handler {
        void handle(ServerRequest req, ServerResponse res, Exchange x) throws Exception;
    }

    /** One request in flight: its access-log entry and its trace span. */
    record Exchange(AccessLog.Entry log, Span span) {}

    private void route(HttpRules rules, String method, String path, Handler h) {
        route(rules, method, path, h, false);
    }

    /** @param anthropic errors in Anthropic's envelope ({@code {"type":"error","error":{"type","message"}}}) */
    private void route(HttpRules rules, String method, String path, Handler h, boolean anthropic) {
        switch (method) {
            case "POST" -> rules.post(path, (req, res) -> handle(req, res, method, path, h, anthropic));
            case "DELETE" -> rules.delete(path, (req, res) -> handle(req, res, method, path, h, anthropic));
            default -> rules.get(path, (req, res) -> handle(req, res, method, path, h, anthropic));
        }
    }

    /**
     * Every route: errors become the OpenAI envelope (nothing internal leaks to the client); each
     * request is counted, timed, traced and logged as one JSON line.
     */
    private void handle(ServerRequest req, ServerResponse res, String method, String route, Handler h, boolean anthropic) {
        Span span = tracing.startRequest(method, route, name -> req.headers().first(HeaderNames.create(name)).orElse(null));
        Exchange x = new Exchange(new AccessLog.Entry(method, route), span);
        if (span.getSpanContext().isValid()) {
            x.log().traceId = span.getSpanContext().getTraceId();
        }
        req.context().get(AuthFilter.KeyId.class).ifPresent(k -> x.log().keyId = k.value());
        req.context().get(RequestIdFilter.RequestId.class).ifPresent(id -> {
            x.log().requestId = id.value();
            span.setAttribute("http.request.id", id.value());
        });
        try {
            h.handle(req, res, x);
        } catch (ApiException e) {
            x.log().errorCode = e.code();
            try {
                sendError(res, e, anthropic);
            } catch (UncheckedIOException | ServerConnectionException gone) {
                // a body timeout closed the connection: nothing reaches the client; the status was set
                // before the write, so the access line and the metrics still say why
                LOG.log(System.Logger.Level.DEBUG, "no answer sent: " + gone.getMessage());
            }
        } catch (EngineException e) {
            ApiException api = fromEngine(e);
            x.log().errorCode = api.code();
            sendError(res, api, anthropic);
        } catch (UncheckedIOException | ServerConnectionException e) {
            // a stream cut off because its client read nothing past the deadline timed out
            x.log().errorCode = e instanceof StalledWrites.Cut ? "timeout" : "client_disconnected";
            LOG.log(System.Logger.Level.DEBUG, "client connection lost: " + e.getMessage());
        } catch (Exception e) {
            x.log().errorCode = "internal_error";
            LOG.log(System.Logger.Level.ERROR, "unexpected error on " + route, e);
            sendError(res, new ApiException(500, "server_error", "internal_error", null, "internal server error"), anthropic);
        } finally {
            int status = res.status().code();
            metrics.request(route, status, System.nanoTime() - x.log().startNanos);
            String code = x.log().errorCode;
            if (status == 200 && code != null) {
                metrics.streamError(route, code); // a stream that failed after its 200 (or whose client left)
            }
            span.setAttribute("http.response.status_code", status);
            if (status >= 500 || status == 200 && code != null && !code.equals("client_disconnected")) {
                // OpenTelemetry's server-span rule (5xx is an error, 4xx the client's), and a stream's failure after its 200
                span.setStatus(StatusCode.ERROR, code != null ? code : "HTTP " + status);
            }
            span.end();
            AccessLog.log(x.log(), status);
        }
    }

    static ApiException fromEngine(EngineException e) {
        return switch (e.kind()) {
            case QUEUE_FULL -> new ApiException(429, "rate_limit_error", "queue_full", null, e.getMessage());
            case CONTEXT_LENGTH -> new ApiException(400, "invalid_request_error", "context_length_exceeded", null, e.getMessage());
            case INVALID_REQUEST -> new ApiException(400, "invalid_request_error", "invalid_request", null, e.getMessage());
            case UNAVAILABLE -> new ApiException(503, "server_error", "unavailable", null, e.getMessage());
            case INTERNAL -> new ApiException(500, "server_error", "internal_error", null, "generation failed");
        };
    }

    private void sendError(ServerResponse res, ApiException e, boolean anthropic) {
        if (!anthropic) {
            sendError(res, e);
        } else if (!res.isSent()) {
            statusAndRetry(res, e);
            sendJson(res, MessageObjects.error(json, e));
        }
    }

    void sendError(ServerResponse res, ApiException e) {
        if (res.isSent()) {
            return;
        }
        ObjectNode err = json.object();
        ObjectNode body = err.putObject("error");
        body.put("message", e.getMessage());
        body.put("type", e.type());
        body.put("code", e.code());
        if (e.param() != null) {
            body.put("param", e.param());
        } else {
            body.putNull("param");
        }
        statusAndRetry(res, e);
        sendJson(res, err);
    }

    private static void statusAndRetry(ServerResponse res, ApiException e) {
        res.status(Status.create(e.status()));
        if (e.status() == 429) {
            res.header(HeaderNames.RETRY_AFTER, "1");
        }
        if (e.status() == 503) {
            res.header(HeaderNames.RETRY_AFTER, "5");
        }
    }

    private void sendJson(ServerResponse res, JsonNode node) {
        res.header(HeaderNames.CONTENT_TYPE, "application/json");
        res.send(json.write(node));
    }

    private CompletionParser parser(ServedModel m) {
        return new CompletionParser(m, limits.maxTokens(), limits.maxPromptTokens(), limits.maxChoices());
    }

    /**
     * llama-server's {@code GET /health} (and {@code /v1/health}) on the API port, which scripts
     * and llama-swap poll: 200 {@code {"status": "ok"}} when the server is ready (as the admin
     * port's readiness probe says), else 503 naming the status. Behind the API key like every API
     * route (llama-server leaves it open); the probes stay on the admin port.
     */
    private void health(ServerRequest req, ServerResponse res, Exchange x) {
        String why = unready.get();
        if (why != null) {
            throw new ApiException(503, "server_error", "not_ready", null, "the server is not ready (" + why
                    + "); the admin port's /health/ready says why");
        }
        ObjectNode out = json.object();
        out.put("status", "ok");
        sendJson(res, out);
    }

    private ServedModel ready() {
        ServedModel m = models.get();
        if (m == null) {
            throw new ApiException(503, "server_error", "model_loading", null, "the model is not loaded yet; retry shortly");
        }
        return m;
    }

    /** Reads at most the configured body size (413 beyond), then parses one JSON object. */
    private ObjectNode body(ServerRequest req) {
        long declared = req.headers().contentLength().orElse(-1L);
        if (declared > limits.maxBodyBytes()) {
            throw tooLarge();
        }
        byte[] bytes;
        BodyDeadline deadline = BodyDeadline.arm(limits.bodyTimeoutMillis());
        try (InputStream in = req.content().inputStream()) {
            bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, limits.maxBodyBytes() + 1));
            if (bytes.length > limits.maxBodyBytes()) {
                throw tooLarge();
            }
        } catch (IOException | RuntimeException e) {
            if (deadline.disarm()) {
                throw bodyTimeout(); // whatever the read ended with: the deadline closed the connection
            }
            if (e instanceof ApiException || e instanceof UncheckedIOException || e instanceof ServerConnectionException) {
                throw (RuntimeException) e; // too large; or the client went away (handled as a disconnect)
            }
            // broken framing (bad chunk sizes, a body shorter than its Content-Length): Helidon throws unchecked
            throw ApiException.badRequest(null, "the request body could not be read");
        } finally {
            if (deadline.disarm()) {
                Thread.interrupted(); // fired after the read ended: the thread serves the connection's next request
            }
        }
        return json.parseObject(bytes);
    }

    /** The connection is closed by then (see {@link BodyDeadline}): the answer is for the access line and metrics. */
    private ApiException bodyTimeout() {
        return new ApiException(408, "invalid_request_error", "request_timeout", null,
                "the request body did not arrive within " + limits.bodyTimeoutMillis() + " ms");
    }

    private ApiException tooLarge() {
        return new ApiException(413, "invalid_request_error", "request_too_large", null,
                "the request body exceeds " + limits.maxBodyBytes() + " bytes");
    }

    /**
     * The metrics and access-log route of requests to a method and path without a route: counted and
     * logged like every request, under this one name (their paths would bound no cardinality).
     */
    public static final String UNMATCHED = "(unmatched)";

    /** Any method and path without a route (the API filter has already run). */
    public void unknownRoute(ServerRequest req, ServerResponse res) {
        // the path is not echoed: after Helidon's normalisation it is no longer quite the client's text
        handle(req, res, AccessLog.method(req.prologue().method().text()), UNMATCHED, (rq, rs, x) -> {
            throw new ApiException(404, "invalid_request_error", "unknown_route", null, "there is no route for this method and path");
        }, false);
    }

    // --- completions -----------------------------------------------------------------------------

    private void chat(ServerRequest req, ServerResponse res, Exchange x) throws Exception {
        ServedModel m = ready();
        ObjectNode body = body(req);
        generate(m, parser(m).chat(body), "chatcmpl-", x, openAi(res, true));
    }

    private void completion(ServerRequest req, ServerResponse res, Exchange x) throws Exception {
        ServedModel m = ready();
        ObjectNode body = body(req);
        generate(m, parser(m).completion(body), "cmpl-", x, openAi(res, false));
    }

    /** The chat and completions answer: whole or streamed, as the request asked. */
    private Answer openAi(ServerResponse res, boolean chat) {
        return (handles, p, id, created, deadline, observed) -> {
            if (p.stream()) {
                stream(res, handles, p, id, created, chat, deadline, observed);
            } else {
                whole(res, handles, p, id, created, chat, deadline, observed);
            }
        };
    }

    /** llama-server's {@code /infill}: fill in the middle for code editors, answered in llama-server's shape. */
    private void infill(ServerRequest req, ServerResponse res, Exchange x) throws Exception {
        ServedModel m = ready();
        ObjectNode body = body(req);
        llamaRoute(m, parser(m).infill(body), "infill-", x, res);
    }

    /**
     * llama-server's own completion route ({@code /completion}, {@code /completions}): one prompt,
     * llama-server's fields, answered in its shape (the /infill result, with
     * {@code completion_probabilities} and {@code tokens} when asked).
     */
    private void nativeCompletion(ServerRequest req, ServerResponse res, Exchange x) throws Exception {
        ServedModel m = ready();
        ObjectNode body = body(req);
        llamaRoute(m, parser(m).nativeCompletion(body), "cmpl-", x, res);
    }

    /** /infill and /completion: generated, answered in llama-server's shape. */
    private void llamaRoute(ServedModel m, CompletionParser.Native in, String idPrefix, Exchange x, ServerResponse res) throws Exception {
        generate(m, in.parsed(), idPrefix, x, (handles, parsed, id, created, deadline, observed) -> {
            InfillObjects o = new InfillObjects(json, parsed.model(), parsed.request().prompt().length, in.truncated(), in.responseFields(),
                    in.probs(), in.returnTokens());
            llamaAnswer(res, handles, parsed, deadline, observed, o);
        });
    }

    /** An answer in llama-server's shape: streamed lines, or the whole result. */
    private void llamaAnswer(ServerResponse res, List<RequestHandle> handles, CompletionParser.Parsed parsed, long deadline,
            Finished observed, InfillObjects o) throws Exception {
        if (parsed.stream()) {
            typedStream(res, handles, parsed, deadline, observed, o::events);
        } else {
            Answered a = answered(handles, parsed, deadline, observed);
            sendJson(res, o.result(a.reply().content() == null ? "" : a.reply().content(), a.done(), a.choice().logprobs));
        }
    }

    /** The Responses API: the request read as a chat request, the answer in the Responses shapes. */
    private void responses(ServerRequest req, ServerResponse res, Exchange x) throws Exception {
        ServedModel m = ready();
        ObjectNode body = body(req);
        ResponsesRequest r = ResponsesRequest.of(body);
        CompletionParser.Parsed p = r.parse(parser(m));
        generate(m, p, "resp_", x, (handles, parsed, id, created, deadline, observed) -> {
            ResponseObjects o = new ResponseObjects(json, r, id, created, parsed.model(), this::chatLogprobs);
            if (parsed.stream()) {
                typedStream(res, handles, parsed, deadline, observed, o::events);
            } else {
                Answered a = answered(handles, parsed, deadline, observed);
                String status = ResponseObjects.status(a.done().reason());
                sendJson(res, o.response(status, o.output(a.reply(), status, a.choice().logprobs), a.done(), a.reply().reasoningTokens()));
            }
        });
    }

    /** Anthropic's Messages API: the request read as a chat request, the answer in Anthropic's shapes. */
    private void messages(ServerRequest req, ServerResponse res, Exchange x) throws Exception {
        ServedModel m = ready();
        ObjectNode body = body(req);
        MessagesRequest r = MessagesRequest.of(body);
        CompletionParser.Parsed p = r.parse(parser(m));
        generate(m, p, "msg_", x, (handles, parsed, id, created, deadline, observed) -> {
            MessageObjects o = new MessageObjects(json, id, parsed.model(), parsed.request().prompt().length, r.omitsThinking());
            if (parsed.stream()) {
                typedStream(res, handles, parsed, deadline, observed, o::events);
            } else {
                Answered a = answered(handles, parsed, deadline, observed);
                sendJson(res, o.message(a.reply(), a.done()));
            }
        });
    }

    /** {@code /v1/messages/count_tokens}: the prompt's tokens, as the request would be rendered (nothing generated). */
    private void countTokens(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        ObjectNode body = body(req);
        ObjectNode out = json.object();
        out.put("input_tokens", MessagesRequest.forCount(body).promptTokens(parser(m)));
        sendJson(res, out);
    }

    /**
     * OpenAI's {@code POST /v1/responses/input_tokens}: the prompt tokens a Responses request would
     * take, counted as {@code /v1/responses} renders it (its errors too), not checked against the
     * limits; nothing is generated.
     */
    private void responsesInputTokens(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        ObjectNode body = body(req);
        sendInputTokens(res, ResponsesRequest.of(body).promptTokens(parser(m)));
    }

    /**
     * A stored response's routes (retrieve, delete, its input items, cancel): this server stores
     * none ({@code store} is always false, {@code background} refused), so each is a 404 that
     * says so.
     */
    private void storedResponse(ServerRequest req, ServerResponse res, Exchange x) {
        ready();
        String id = req.path().pathParameters().get("id");
        throw new ApiException(404, "invalid_request_error", "not_found", null, "response '" + CompletionParser.abbreviate(id)
                + "' not found: this server keeps no responses (each is answered with store false); send the whole"
                + " conversation in 'input'");
    }

    /** llama-server's {@code POST /v1/chat/completions/input_tokens}: a chat request's prompt tokens, as the chat route counts them. */
    private void chatInputTokens(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        ObjectNode body = body(req);
        sendInputTokens(res, parser(m).chatPromptTokens(body, false).length);
    }

    private void sendInputTokens(ServerResponse res, int count) {
        ObjectNode out = json.object();
        out.put("object", "response.input_tokens");
        out.put("input_tokens", count);
        sendJson(res, out);
    }

    /** What a route does with its submitted requests: answers the client, whole or streamed. */
    @FunctionalInterface
    private interface Answer {
        void send(List<RequestHandle> handles, CompletionParser.Parsed p, String id, long created, long deadline, Finished observed)
                throws Exception;
    }

    private void generate(ServedModel m, CompletionParser.Parsed p, String idPrefix, Exchange x, Answer answer) throws Exception {
        long submittedEpoch = Tracing.nowEpochNanos();
        x.log().stream = p.stream();
        List<RequestHandle> handles = new ArrayList<>(p.choices());
        try {
            for (GenerationRequest r : p.requests()) {
                handles.add(m.engine().submit(r));
            }
        } catch (RuntimeException e) {
            handles.forEach(RequestHandle::cancel); // a full queue for a later choice: none of them runs
            throw e;
        }
        Finished observed = new Finished(x, submittedEpoch);
        String id = idPrefix + handles.getFirst().id();
        long created = System.currentTimeMillis() / 1000;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(limits.requestTimeoutMillis());
        try {
            answer.send(handles, p, id, created, deadline, observed);
        } finally {
            handles.forEach(RequestHandle::cancel); // no-op when finished; frees the slots when this handler leaves early
        }
    }

    /** One choice's event stream and what the handler has gathered of it. */
    private static final class Choice {
        final int index;
        final RequestHandle handle;
        /** The prompt text this choice sends back first (echo), or null. */
        final String echo;
        final StringBuilder text = new StringBuilder();
        final List<TokenLogprob> logprobs = new ArrayList<>();
        List<TokenLogprob> promptLogprobs = List.of();
        final ToolStream tools;
        /** A reasoning model's reply as it comes (null: nothing to split off), and its reasoning so far. */
        private final ReasoningStream reasoning;
        final StringBuilder reasoningText = new StringBuilder();
        /** The markup around a chat reply's text, left out before anything else reads it (null: none). */
        private final MarkerFilter envelope;
        GenerationEvent.Done done;

        Choice(int index, RequestHandle handle, String echo, OutputContract contract, CompletionParser.Reasoning reasoning,
                ReasoningStream.Tags tags, MarkerFilter.Envelope envelope) {
            this.index = index;
            this.envelope = envelope.none() ? null : new MarkerFilter(envelope);
            this.handle = handle;
            this.echo = echo;
            this.tools = new ToolStream(contract.format(), contract.callForced(), contract.functions());
            this.reasoning = reasoning.stream(tags, contract.reasoningEnd());
        }

        /**
         * Generated text split into what is reasoning and what is content (all content without a
         * reasoning model); the reasoning is kept. {@code end}: the reply ended, held text is released.
         */
        ReasoningStream.Split split(String text, int tokens, boolean end) {
            if (envelope != null) {
                text = envelope.push(text) + (end ? envelope.finish() : "");
            }
            if (reasoning == null) {
                return new ReasoningStream.Split("", text);
            }
            StringBuilder r = new StringBuilder();
            StringBuilder content = new StringBuilder();
            List<ReasoningStream.Piece> pieces = new ArrayList<>(reasoning.push(text, tokens));
            if (end) {
                pieces.addAll(reasoning.finish());
            }
            for (ReasoningStream.Piece p : pieces) {
                (p instanceof ReasoningStream.Reasoning ? r : content).append(p.text());
            }
            reasoningText.append(r);
            return new ReasoningStream.Split(r.toString(), content.toString());
        }

        /** The generated tokens spent on reasoning ({@link ReasoningStream#reasoningTokens}); once done. */
        int reasoningTokens() {
            return reasoning == null ? 0 : reasoning.reasoningTokens(done.completionTokens());
        }

        /** The reply's reasoning, or null when it has none. */
        String reasoning() {
            return reasoningText.isEmpty() ? null : reasoningText.toString();
        }
    }

    private record Event(Choice choice, GenerationEvent event) {}

    /**
     * The next event of any unfinished choice (the lowest index first when several wait), or a 504
     * when the deadline passes (every choice cancelled).
     */
    private Event next(List<Choice> choices, long deadline) throws InterruptedException {
        return next(choices, deadline, null);
    }

    /**
     * As {@link #next(List, long)}; a stream passes {@code out}, to which a {@link #KEEP_ALIVE}
     * comment goes after each {@link #KEEP_ALIVE_NANOS} without an event (a client gone makes it fail:
     * {@link UncheckedIOException}, which ends the handler and so cancels every choice).
     */
    private Event next(List<Choice> choices, long deadline, OutputStream out) throws InterruptedException {
        Thread me = Thread.currentThread();
        for (Choice c : choices) {
            c.handle.notify(me);
        }
        long quietSince = System.nanoTime();
        while (true) {
            for (Choice c : choices) {
                if (c.done == null) {
                    GenerationEvent e = c.handle.poll();
                    if (e != null) {
                        return new Event(c, e);
                    }
                }
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                choices.forEach(c -> c.handle.cancel());
                throw new ApiException(504, "server_error", "timeout", null, "the request took longer than "
                        + limits.requestTimeoutMillis() + " ms and was cancelled");
            }
            long wait = Math.min(left, TimeUnit.MILLISECONDS.toNanos(250));
            if (out != null) {
                long quiet = System.nanoTime() - quietSince;
                if (quiet >= KEEP_ALIVE_NANOS) {
                    keepAlive(out);
                    quietSince = System.nanoTime();
                    quiet = 0;
                }
                wait = Math.min(wait, KEEP_ALIVE_NANOS - quiet);
            }
            java.util.concurrent.locks.LockSupport.parkNanos(wait);
            if (Thread.interrupted()) {
                throw new InterruptedException("the handler was interrupted while waiting for tokens");
            }
        }
    }

    private List<Choice> choices(List<RequestHandle> handles, CompletionParser.Parsed p) {
        List<Choice> out = new ArrayList<>(handles.size());
        for (int i = 0; i < handles.size(); i++) {
            out.add(new Choice(i, handles.get(i), p.echo(i), p.contract(), p.reasoning(), p.tags(), p.envelope()));
        }
        return out;
    }

    /**
     * One Done for usage, the access log and the trace: the first choice's, with each prompt's
     * tokens counted once (choices {@code i * n} are the prompts' first) and every choice's
     * generated tokens.
     */
    private static GenerationEvent.Done combined(List<Choice> choices, int n) {
        GenerationEvent.Done first = choices.getFirst().done;
        int prompt = 0;
        int cached = 0;
        for (int i = 0; i < choices.size(); i += n) {
            prompt += choices.get(i).done.promptTokens();
            cached += choices.get(i).done.cachedPromptTokens();
        }
        int generated = choices.stream().mapToInt(c -> c.done.completionTokens()).sum();
        return new GenerationEvent.Done(first.reason(), prompt, generated, cached, first.timings(), first.stopSequence());
    }

    /** Records a finished generation in the access log and the trace. */
    private final class Finished {
        private final Exchange x;
        private final long submittedEpoch;

        Finished(Exchange x, long submittedEpoch) {
            this.x = x;
            this.submittedEpoch = submittedEpoch;
        }

        /** A failure after the 200 (an error event in the stream): its code goes to the access line, as a refused request's does. */
        ApiException failed(ApiException e) {
            x.log().errorCode = e.code();
            return e;
        }

        void record(GenerationEvent.Done d) {
            AccessLog.Entry e = x.log();
            e.promptTokens = d.promptTokens();
            e.completionTokens = d.completionTokens();
            e.cachedTokens = d.cachedPromptTokens();
            e.queueMillis = TimeUnit.NANOSECONDS.toMillis(d.timings().queuedNanos());
            e.ttftMillis = TimeUnit.NANOSECONDS.toMillis(d.timings().firstTokenNanos());
            e.finishReason = d.reason().wire();
            tracing.phases(x.span(), submittedEpoch, d);
        }

        Span streamSpan() {
            return tracing.startStream(x.span());
        }
    }

    /** Every choice's whole output: waits until each is done (a failure is thrown). */
    private List<Choice> gather(List<RequestHandle> handles, CompletionParser.Parsed p, long deadline) throws InterruptedException {
        List<Choice> choices = choices(handles, p);
        int open = choices.size();
        while (open > 0) {
            Event ev = next(choices, deadline);
            Choice c = ev.choice();
            switch (ev.event()) {
                case GenerationEvent.Text t -> {
                    gathered(p, c, c.split(t.text(), t.tokens(), false).content());
                    c.logprobs.addAll(t.logprobs());
                }
                case GenerationEvent.Constrained k -> c.tools.constrain();
                case GenerationEvent.PromptLogprobs pl -> c.promptLogprobs = pl.tokens();
                case GenerationEvent.Failed f -> throw f.error();
                case GenerationEvent.Done d -> {
                    gathered(p, c, c.split("", 0, true).content());
                    c.done = d;
                    open--;
                }
            }
        }
        return choices;
    }

    /** A choice's content text, gathered: into its tool stream (read as a stream would read it, and kept there) or its text. */
    private static void gathered(CompletionParser.Parsed p, Choice c, String content) {
        if (p.contract().toolsActive()) {
            c.tools.push(content);
        } else {
            c.text.append(content);
        }
    }

    private void whole(ServerResponse res, List<RequestHandle> handles, CompletionParser.Parsed p, String id, long created, boolean chat,
            long deadline, Finished observed) throws Exception {
        List<Choice> choices = gather(handles, p, deadline);
        GenerationEvent.Done all = combined(choices, p.n());
        observed.record(all);
        ObjectNode out = envelope(id, created, p.model(), chat ? "chat.completion" : "text_completion");
        ArrayNode array = out.putArray("choices");
        for (Choice c : choices) {
            Reply r = reply(p.contract(), c);
            ObjectNode choice = array.addObject();
            choice.put("index", c.index);
            if (chat) {
                ObjectNode msg = choice.putObject("message");
                msg.put("role", "assistant");
                msg.put("content", r.content());
                if (r.reasoning() != null) {
                    msg.put("reasoning_content", r.reasoning());
                }
                if (!r.calls().isEmpty()) {
                    toolCalls(msg, r.calls());
                }
            } else {
                choice.put("text", c.echo == null ? r.content() : c.echo + r.content());
            }
            List<TokenLogprob> logprobs = c.logprobs;
            if (c.echo != null) {
                logprobs = new ArrayList<>(placed(c.echo, c.promptLogprobs));
                logprobs.addAll(shifted(c.logprobs, c.echo));
            }
            logprobs(choice, p, chat, logprobs);
            choice.put("finish_reason", r.finish());
        }
        reasoningUsage(usage(out.putObject("usage"), all), choices, p);
        sendJson(res, out);
    }

    /**
     * Before a stream's 200: with a grammar, the first event, which is a refusal when llama.cpp
     * cannot compile the grammar (thrown here, so that it is still an HTTP status; every choice has
     * the same grammar, so the first one's answer stands for all), else null. Then the stream's
     * headers.
     */
    private Event beginEventStream(ServerResponse res, List<Choice> choices, CompletionParser.Parsed p, long deadline)
            throws InterruptedException {
        Event first = null;
        if (p.request().sampling().grammar() != null || p.request().late() != null && p.request().late().required()) {
            first = next(choices.subList(0, 1), deadline);
            if (first.event() instanceof GenerationEvent.Failed f) {
                throw f.error();
            }
        }
        res.header(HeaderNames.CONTENT_TYPE, "text/event-stream");
        res.header(HeaderNames.CACHE_CONTROL, "no-cache");
        return first;
    }

    private void stream(ServerResponse res, List<RequestHandle> handles, CompletionParser.Parsed p, String id, long created, boolean chat,
            long deadline, Finished observed) throws Exception {
        List<Choice> choices = choices(handles, p);
        // Without a grammar nothing the client sent can fail before the first token, so the 200 and
        // the headers go out now, while the prompt is decoded: the client has handled them by the
        // time the first token arrives (llama-server does the same). A grammar is compiled on the
        // scheduler thread and may be refused there; such a request waits for its first event so
        // that a refusal is still an HTTP status, not an event inside a 200 stream.
        Event first = beginEventStream(res, choices, p, deadline);
        String object = chat ? "chat.completion.chunk" : "text_completion";
        Span streamSpan = observed.streamSpan();
        // Not closed here: Helidon's commit after the handler flushes what is buffered and then
        // writes the terminating chunk, back to back (see the end).
        StalledWrites out = new StalledWrites(res.outputStream(), deadline);
        try {
            for (Choice c : choices) {
                if (chat) {
                    ObjectNode ch = chunk(id, created, p.model(), object);
                    ObjectNode delta = ch.withArray("choices").addObject().put("index", c.index).putObject("delta");
                    delta.put("role", "assistant");
                    delta.put("content", "");
                    ((ObjectNode) ch.get("choices").get(0)).putNull("finish_reason");
                    write(out, nullUsage(p, ch));
                } else if (c.echo != null && !p.request().promptLogprobs()) {
                    write(out, nullUsage(p, textChunk(id, created, p.model(), object, false, c.index, c.echo, null))); // echo: the prompt first
                } else if (first == null && c.index == 0) {
                    EarlyHeaders.send(res); // the status line and headers, no body bytes yet
                }
            }
            int open = choices.size();
            Event ev = first;
            while (open > 0) {
                if (ev == null) {
                    try {
                        ev = next(choices, deadline, out);
                    } catch (ApiException timeout) {
                        writeError(out, observed.failed(timeout));
                        return;
                    }
                }
                Choice c = ev.choice();
                switch (ev.event()) {
                    case GenerationEvent.Text t -> {
                        ReasoningStream.Split split = c.split(t.text(), t.tokens(), false);
                        reasoningChunk(out, p, id, created, object, c, split.reasoning());
                        String text = split.content();
                        if (p.contract().toolsActive()) {
                            toolPieces(out, p, id, created, object, c, c.tools.push(text));
                        } else if (!text.isEmpty() || !t.logprobs().isEmpty()) {
                            c.text.append(text);
                            ObjectNode ch = textChunk(id, created, p.model(), object, chat, c.index, text, null);
                            if (p.request().logprobs() >= 0) {
                                logprobs((ObjectNode) ch.get("choices").get(0), p, chat,
                                        c.echo == null ? t.logprobs() : shifted(t.logprobs(), c.echo));
                            }
                            write(out, nullUsage(p, ch));
                        }
                    }
                    case GenerationEvent.Constrained k -> toolPieces(out, p, id, created, object, c, c.tools.constrain());
                    case GenerationEvent.PromptLogprobs pl -> { // echo with logprobs: the prompt and its tokens first
                        ObjectNode ch = textChunk(id, created, p.model(), object, false, c.index, c.echo, null);
                        logprobs((ObjectNode) ch.get("choices").get(0), p, false, placed(c.echo, pl.tokens()));
                        write(out, nullUsage(p, ch));
                    }
                    case GenerationEvent.Failed f -> {
                        writeError(out, observed.failed(fromEngine(f.error())));
                        return;
                    }
                    case GenerationEvent.Done d -> {
                        c.done = d;
                        open--;
                        ReasoningStream.Split held = c.split("", 0, true); // what the reasoning stream held: a tag that never came
                        reasoningChunk(out, p, id, created, object, c, held.reasoning());
                        if (p.contract().toolsActive()) {
                            toolPieces(out, p, id, created, object, c, c.tools.push(held.content()));
                            toolPieces(out, p, id, created, object, c, c.tools.finish()); // the rest of a call cut short
                        } else if (!held.content().isEmpty()) {
                            c.text.append(held.content());
                            write(out, nullUsage(p, textChunk(id, created, p.model(), object, chat, c.index, held.content(), null)));
                        }
                        Reply r;
                        try {
                            r = reply(p.contract(), c);
                        } catch (ApiException invalid) {
                            writeError(out, observed.failed(invalid));
                            return;
                        }
                        if (p.contract().toolsActive() && !c.tools.callsStarted()) { // a free reply: parsed at its end
                            String content = r.content() == null ? "" : r.content();
                            String rest = content.substring(Math.min(c.tools.released(), content.length()));
                            if (!rest.isEmpty()) {
                                write(out, nullUsage(p, textChunk(id, created, p.model(), object, chat, c.index, rest, null)));
                            }
                            for (int i = 0; i < r.calls().size(); i++) {
                                ToolCalls.Call call = r.calls().get(i);
                                write(out, nullUsage(p, toolCallChunk(id, created, p.model(), object, c.index, i, call.id(), call.name(),
                                        call.arguments())));
                            }
                        }
                        ObjectNode finish = textChunk(id, created, p.model(), object, chat, c.index, null, r.finish());
                        if (open > 0) {
                            write(out, nullUsage(p, finish));
                        } else {
                            // The last events stay buffered: Helidon's commit sends them and the
                            // terminating chunk back to back, so a client that stops reading at
                            // [DONE] has usually received the end of the body too and can reuse the
                            // connection (java.net.http closes one whose body it did not finish).
                            buffer(out, nullUsage(p, finish));
                        }
                    }
                }
                ev = null;
            }
            GenerationEvent.Done all = combined(choices, p.n());
            observed.record(all);
            if (p.includeUsage()) {
                ObjectNode u = chunk(id, created, p.model(), object);
                u.putArray("choices");
                reasoningUsage(usage(u.putObject("usage"), all), choices, p);
                buffer(out, u);
            }
            out.write(DONE);
        } finally {
            out.end();
            streamSpan.end();
        }
    }

    /**
     * A chunk before the last: with {@code stream_options.include_usage} it carries {@code "usage": null},
     * as OpenAI documents ("all other chunks will also include a usage field, but with a null value");
     * strict clients read the field on every chunk.
     */
    private static ObjectNode nullUsage(CompletionParser.Parsed p, ObjectNode chunk) {
        return p.includeUsage() ? chunk.putNull("usage") : chunk;
    }

    /**
     * A stream's output, watched for a client that has stopped reading. The handler checks the
     * request's deadline only while it waits for events; a write to a client that reads nothing
     * blocks once the socket's buffers are full, and would block until the client reads or goes,
     * holding the connection and every event generated meanwhile past any timeout. So a write still
     * blocked {@link #STALL_NANOS} after the deadline is ended by interrupting the handler's virtual
     * thread, which closes the socket (a virtual thread interrupted in socket I/O closes it); the
     * write then fails as for a client that went away. Helidon's own last write (the body's end,
     * after the handler returns) is not watched.
     */
    static final class StalledWrites extends OutputStream {
        static final long STALL_NANOS = TimeUnit.SECONDS.toNanos(1);

        /** The handler's write was ended: the client read nothing past the request's deadline. */
        static final class Cut extends UncheckedIOException {
            Cut() {
                super(new IOException("the client read nothing past the request's deadline"));
            }
        }
        private final OutputStream out;
        private final long deadline;
        private final Thread handler = Thread.currentThread();
        private final Thread watchdog;
        /** When the write in progress began (never 0), or 0; guarded by this. */
        private long writingSince;
        /** The watchdog interrupted the handler; guarded by this. */
        private boolean interrupted;
        private boolean ended;

        StalledWrites(OutputStream out, long deadline) {
            this.out = out;
            this.deadline = deadline;
            this.watchdog = Thread.ofVirtual().name("stream-write-deadline").start(this::watch);
        }

        private void watch() {
            try {
                while (true) {
                    long wait;
                    synchronized (this) {
                        long now = System.nanoTime();
                        if (ended) {
                            return;
                        }
                        if (now - deadline >= 0 && writingSince != 0 && now - writingSince >= STALL_NANOS) {
                            interrupted = true;
                            handler.interrupt();
                            return;
                        }
                        wait = now - deadline < 0 ? deadline - now : writingSince != 0 ? writingSince + STALL_NANOS - now : STALL_NANOS;
                    }
                    java.util.concurrent.locks.LockSupport.parkNanos(Math.max(wait, TimeUnit.MILLISECONDS.toNanos(1)));
                    if (Thread.interrupted()) {
                        return; // ended
                    }
                }
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "the stream write watchdog failed", e);
            }
        }

        private synchronized void enter() {
            writingSince = System.nanoTime() | 1;
        }

        private synchronized void exit() {
            writingSince = 0;
            if (interrupted) {
                Thread.interrupted(); // the handler's thread serves the connection's next request, if any
                throw new Cut();
            }
        }

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            enter();
            try {
                out.write(b, off, len);
            } finally {
                exit();
            }
        }

        @Override
        public void flush() throws IOException {
            enter();
            try {
                out.flush();
            } finally {
                exit();
            }
        }

        /** The handler is done with the stream: the watchdog stops. */
        void end() {
            synchronized (this) {
                ended = true;
                if (interrupted) {
                    Thread.interrupted();
                }
            }
            watchdog.interrupt();
        }
    }

    // --- the Responses API ---------------------------------------------------------------------------

    /** A one-choice answer (the Responses and Messages APIs), whole: the choice and its checked reply. */
    private record Answered(Choice choice, Reply reply) {
        GenerationEvent.Done done() {
            return choice.done;
        }
    }

    private Answered answered(List<RequestHandle> handles, CompletionParser.Parsed p, long deadline, Finished observed)
            throws InterruptedException {
        Choice c = gather(handles, p, deadline).getFirst();
        observed.record(c.done);
        return new Answered(c, reply(p.contract(), c));
    }

    /**
     * A streamed answer of typed events ({@link TypedStream}: the Responses API, Anthropic's
     * Messages API). The envelope's first events go at once (the headers with them, as for chat);
     * the text part opens with the first text that is surely not a tool call (at once without
     * tools), the calls follow when the reply ends, then the final event with the whole reply.
     */
    private void typedStream(ServerResponse res, List<RequestHandle> handles, CompletionParser.Parsed p, long deadline,
            Finished observed, java.util.function.Function<OutputStream, TypedStream> make) throws Exception {
        List<Choice> choices = choices(handles, p);
        Choice c = choices.getFirst();
        Event first = beginEventStream(res, choices, p, deadline); // a refused grammar is still an HTTP status (see stream)
        Span streamSpan = observed.streamSpan();
        StalledWrites out = new StalledWrites(res.outputStream(), deadline);
        TypedStream ev = make.apply(out);
        try {
            ev.start();
            boolean tools = p.contract().toolsActive();
            // with tools the text opens with the first text that is surely not a call; after a
            // reasoning part, with the first content
            TypedTools parts = new TypedTools(ev, c, !tools && p.reasoning() == CompletionParser.Reasoning.OFF);
            Event e = first;
            while (true) {
                if (e == null) {
                    try {
                        e = next(choices, deadline, out);
                    } catch (ApiException timeout) {
                        ev.failed(observed.failed(timeout));
                        return;
                    }
                }
                switch (e.event()) {
                    case GenerationEvent.Text t -> {
                        ReasoningStream.Split split = c.split(t.text(), t.tokens(), false);
                        String text = parts.reasoning(split);
                        if (tools) {
                            parts.send(c.tools.push(text));
                        } else {
                            c.text.append(text);
                            c.logprobs.addAll(t.logprobs());
                            if (!text.isEmpty() || !t.logprobs().isEmpty()) {
                                parts.open();
                                ev.text(text, t.logprobs());
                            }
                        }
                    }
                    case GenerationEvent.Constrained k -> parts.send(c.tools.constrain());
                    case GenerationEvent.PromptLogprobs ignored -> { }
                    case GenerationEvent.Failed f -> {
                        ev.failed(observed.failed(fromEngine(f.error())));
                        return;
                    }
                    case GenerationEvent.Done d -> {
                        c.done = d;
                        String held = parts.reasoning(c.split("", 0, true)); // what the reasoning stream held
                        parts.endReasoning();
                        if (tools) {
                            parts.send(c.tools.push(held));
                            parts.send(c.tools.finish()); // the rest of a call cut short
                        } else {
                            c.text.append(held);
                            parts.open();
                            if (!held.isEmpty()) {
                                ev.text(held, List.of());
                            }
                        }
                        Reply r;
                        try {
                            r = reply(p.contract(), c);
                        } catch (ApiException invalid) {
                            ev.failed(observed.failed(invalid));
                            return;
                        }
                        if (!tools || !c.tools.callsStarted()) { // the text, then the calls a free reply's parse found
                            String content = r.content() == null ? "" : r.content();
                            if (tools) {
                                String rest = content.substring(Math.min(c.tools.released(), content.length()));
                                if (!rest.isEmpty() || r.calls().isEmpty()) {
                                    parts.open();
                                }
                                if (!rest.isEmpty()) {
                                    ev.text(rest, List.of());
                                }
                            }
                            int index = parts.first();
                            if (parts.open) {
                                ev.closeText(content, c.logprobs, d.reason());
                                index++;
                            }
                            for (ToolCalls.Call call : r.calls()) {
                                ev.call(index++, call);
                            }
                        }
                        observed.record(d);
                        ev.finish(r, c.logprobs, d);
                        return;
                    }
                }
                e = null;
            }
        } finally {
            out.end();
            streamSpan.end();
        }
    }

    /**
     * A typed stream's text part and the calls {@link ToolStream} releases as they come: content
     * opens the text part; the first call closes it (its text is then the reply's content, whole)
     * and the calls follow it, numbered after it.
     */
    private static final class TypedTools {
        private final TypedStream ev;
        private final Choice choice;
        boolean open;
        /** The first call's output index, once a call began; else -1. */
        private int base = -1;
        /** The reasoning part: 0 none yet, 1 open, 2 closed (it is output item or block 0). */
        private int reasoning;

        TypedTools(TypedStream ev, Choice choice, boolean open) {
            this.ev = ev;
            this.choice = choice;
            if (open) {
                open();
            }
        }

        /** Sends a split's reasoning (opening the reasoning part at its first piece); returns its content. */
        String reasoning(ReasoningStream.Split split) {
            if (!split.reasoning().isEmpty()) {
                if (reasoning == 0) {
                    ev.openReasoning();
                    reasoning = 1;
                }
                ev.reasoning(split.reasoning());
            }
            if (!split.content().isEmpty()) {
                endReasoning();
            }
            return split.content();
        }

        /** The reasoning part, if open, ends: the content or the reply's end came. */
        void endReasoning() {
            if (reasoning == 1) {
                ev.closeReasoning(choice.reasoningText.toString());
                reasoning = 2;
            }
        }

        /** The index of the first item or block after the reasoning part. */
        int first() {
            return reasoning == 0 ? 0 : 1;
        }

        void open() {
            if (!open) {
                endReasoning();
                ev.openText();
                open = true;
            }
        }

        void send(List<ToolStream.Piece> pieces) {
            for (ToolStream.Piece piece : pieces) {
                switch (piece) {
                    case ToolStream.Content t -> {
                        open();
                        ev.text(t.text(), List.of());
                    }
                    case ToolStream.CallStart s -> {
                        if (base < 0) {
                            if (open) {
                                String content = choice.tools.content();
                                ev.closeText(content == null ? "" : content, List.of(), FinishReason.STOP);
                            }
                            base = first() + (open ? 1 : 0);
                        }
                        ev.callStart(base + s.index(), s.id(), s.name());
                    }
                    case ToolStream.CallArguments a -> ev.callArguments(base + a.index(), a.delta());
                    case ToolStream.CallEnd x -> ev.callEnd(base + x.index(), x.call());
                }
            }
        }
    }

    /** An error inside a 200 event stream: one {@code data:} event with the OpenAI error envelope. */
    private void writeError(OutputStream out, ApiException api) {
        ObjectNode err = json.object();
        ObjectNode e = err.putObject("error").put("message", api.getMessage()).put("type", api.type()).put("code", api.code());
        if (api.param() != null) {
            e.put("param", api.param());
        } else {
            e.putNull("param");
        }
        write(out, err);
    }

    /**
     * The reply as sent: content (null for a reply that is only tool calls), calls, finish_reason,
     * and a reasoning model's reasoning (null: none) and the tokens it took.
     */
    record Reply(String content, List<ToolCalls.Call> calls, String finish, String reasoning, int reasoningTokens) {}

    /**
     * Checks a finished output against the request's contract and splits off tool calls. An output
     * that ended by "stop" must satisfy the enforced format; if it does not, the grammar let
     * through what it should not have: a 500, logged and counted. A "length" cut is returned as
     * is (legitimately incomplete).
     */
    private Reply reply(OutputContract c, Choice choice) {
        GenerationEvent.Done d = choice.done;
        boolean stop = d.reason() == FinishReason.STOP;
        if (c.toolsActive()) {
            ToolStream stream = choice.tools;
            stream.finish();
            if (stream.callsStarted()) { // calls a grammar wrote, read as they came
                ToolCalls.Reply tr = new ToolCalls.Reply(stream.content(), stream.calls());
                if (stop) {
                    invalidIf(stream.wellFormed() ? List.of() : List.of("the calls do not end where the grammar ends them"), "tool_call");
                    invalidIf(c.callViolations(tr, true), "tool_call");
                }
                return new Reply(tr.content(), tr.calls(), stop ? "tool_calls" : d.reason().wire(), choice.reasoning(), choice.reasoningTokens());
            }
            String text = stream.text();
            ToolCalls.Reply tr = c.limitCalls(ToolCalls.parse(c.format(), text, c.functions()));
            if (stop) {
                invalidIf(c.callViolations(tr, false), "tool_call");
            }
            if (!tr.calls().isEmpty()) {
                return new Reply(tr.content(), tr.calls(), stop ? "tool_calls" : d.reason().wire(), choice.reasoning(), choice.reasoningTokens());
            }
            return new Reply(text, List.of(), d.reason().wire(), choice.reasoning(), choice.reasoningTokens());
        }
        String text = choice.text.toString();
        if (stop) {
            invalidIf(c.violations(text), c.schema() != null ? "json_schema" : "json_object");
        }
        return new Reply(text, List.of(), d.reason().wire(), choice.reasoning(), choice.reasoningTokens());
    }

    private void invalidIf(List<String> violations, String check) {
        if (violations.isEmpty()) {
            return;
        }
        metrics.structuredOutputInvalid(check);
        LOG.log(System.Logger.Level.ERROR, "structured output failed its " + check + " check (grammar bug): " + violations);
        throw new ApiException(500, "server_error", "structured_output_invalid", null,
                "the generated output does not satisfy the requested " + check + " format; this is a server bug and has been logged");
    }

    private void toolCalls(ObjectNode msg, List<ToolCalls.Call> calls) {
        ArrayNode arr = msg.putArray("tool_calls");
        for (ToolCalls.Call c : calls) {
            ObjectNode o = arr.addObject();
            o.put("id", c.id());
            o.put("type", "function");
            o.putObject("function").put("name", c.name()).put("arguments", c.arguments());
        }
    }

    /**
     * What {@link ToolStream} releases of a chat reply with tools, as chunks: content; a call's
     * start (its id, type and name, empty arguments), then its arguments piece by piece, as OpenAI
     * streams them (clients concatenate the argument deltas). A call's end sends nothing.
     */
    private void toolPieces(OutputStream out, CompletionParser.Parsed p, String id, long created, String object, Choice c,
            List<ToolStream.Piece> pieces) {
        for (ToolStream.Piece piece : pieces) {
            switch (piece) {
                case ToolStream.Content t -> write(out, nullUsage(p, textChunk(id, created, p.model(), object, true, c.index, t.text(), null)));
                case ToolStream.CallStart s -> write(out, nullUsage(p, toolCallChunk(id, created, p.model(), object, c.index, s.index(),
                        s.id(), s.name(), "")));
                case ToolStream.CallArguments a -> write(out, nullUsage(p, toolCallChunk(id, created, p.model(), object, c.index, a.index(),
                        null, null, a.delta())));
                case ToolStream.CallEnd e -> { }
            }
        }
    }

    /**
     * A stream delta of call {@code index}: its start (id, type and name, with arguments) where
     * {@code callId} is set, else more of its arguments (clients concatenate argument deltas).
     */
    private ObjectNode toolCallChunk(String id, long created, String model, String object, int choiceIndex, int index,
            String callId, String name, String arguments) {
        ObjectNode c = chunk(id, created, model, object);
        ObjectNode choice = c.putArray("choices").addObject();
        choice.put("index", choiceIndex);
        ObjectNode tc = choice.putObject("delta").putArray("tool_calls").addObject();
        tc.put("index", index);
        if (callId == null) {
            tc.putObject("function").put("arguments", arguments);
        } else {
            tc.put("id", callId);
            tc.put("type", "function");
            tc.putObject("function").put("name", name).put("arguments", arguments);
        }
        choice.putNull("finish_reason");
        return c;
    }

    /**
     * A choice's {@code logprobs}: null unless the request asked for them; chat: {@code {"content":
     * [{token, logprob, bytes, top_logprobs}]}}; completions: the legacy {@code tokens},
     * {@code token_logprobs}, {@code top_logprobs} (one object per token), {@code text_offset}.
     */
    private void logprobs(ObjectNode choice, CompletionParser.Parsed p, boolean chat, List<TokenLogprob> tokens) {
        if (p.request().logprobs() < 0) {
            choice.putNull("logprobs");
            return;
        }
        ObjectNode lp = choice.putObject("logprobs");
        if (chat) {
            chatLogprobs(lp.putArray("content"), tokens);
            lp.putNull("refusal");
        } else {
            ArrayNode text = lp.putArray("tokens");
            ArrayNode values = lp.putArray("token_logprobs");
            ArrayNode top = lp.putArray("top_logprobs");
            ArrayNode offsets = lp.putArray("text_offset");
            for (TokenLogprob t : tokens) {
                text.add(t.text());
                offsets.add(t.textOffset());
                if (Float.isNaN(t.logprob())) { // the prompt's first token: nothing before it
                    values.addNull();
                    top.addNull();
                    continue;
                }
                values.add(finite(t.logprob()));
                ObjectNode alternatives = top.addObject();
                for (TokenLogprob.Alternative a : t.top()) {
                    if (!alternatives.has(a.text())) { // two tokens can print alike (bytes of a split character)
                        alternatives.put(a.text(), finite(a.logprob()));
                    }
                }
            }
        }
    }

    /** Per token: {@code token}, {@code logprob}, {@code bytes}, {@code top_logprobs} (chat's and the Responses API's shape). */
    private void chatLogprobs(ArrayNode content, List<TokenLogprob> tokens) {
        for (TokenLogprob t : tokens) {
            ObjectNode o = content.addObject();
            o.put("token", t.text()).put("logprob", finite(t.logprob()));
            bytes(o.putArray("bytes"), t.bytes());
            ArrayNode top = o.putArray("top_logprobs");
            for (TokenLogprob.Alternative a : t.top()) {
                ObjectNode alt = top.addObject().put("token", a.text()).put("logprob", finite(a.logprob()));
                bytes(alt.putArray("bytes"), a.bytes());
            }
        }
    }

    /**
     * The prompt's tokens placed in the echoed prompt: each one's offset (code points) is where its
     * piece starts among the pieces joined, less the space a tokenizer adds in front of the first
     * word when the pieces are exactly that space and the echo (SentencePiece models); otherwise the
     * pieces' own offsets.
     */
    static List<TokenLogprob> placed(String echo, List<TokenLogprob> prompt) {
        StringBuilder pieces = new StringBuilder();
        for (TokenLogprob t : prompt) {
            pieces.append(t.text());
        }
        int lead = !pieces.toString().equals(echo) && pieces.toString().equals(" " + echo) ? 1 : 0;
        List<TokenLogprob> out = new ArrayList<>(prompt.size());
        int at = 0;
        for (TokenLogprob t : prompt) {
            out.add(new TokenLogprob(t.token(), t.bytes(), Math.max(0, at - lead), t.logprob(), t.top()));
            at += t.text().codePointCount(0, t.text().length());
        }
        return out;
    }

    /** The completion's tokens placed after the echoed prompt. */
    static List<TokenLogprob> shifted(List<TokenLogprob> tokens, String echo) {
        int by = echo.codePointCount(0, echo.length());
        return tokens.stream().map(t -> new TokenLogprob(t.token(), t.bytes(), t.textOffset() + by, t.logprob(), t.top())).toList();
    }

    /** OpenAI's floor for a token the model all but rules out (JSON has no -Infinity). */
    static float finite(float logprob) {
        return Float.isFinite(logprob) ? logprob : -9999f;
    }

    static void bytes(ArrayNode out, byte[] bytes) {
        for (byte b : bytes) {
            out.add(b & 0xff);
        }
    }

    /** A chat stream's reasoning delta ({@code delta.reasoning_content}, as llama-server and DeepSeek send it); none for "". */
    private void reasoningChunk(OutputStream out, CompletionParser.Parsed p, String id, long created, String object, Choice c,
            String reasoning) {
        if (reasoning.isEmpty()) {
            return;
        }
        ObjectNode ch = chunk(id, created, p.model(), object);
        ObjectNode choice = ch.putArray("choices").addObject();
        choice.put("index", c.index);
        choice.putObject("delta").put("reasoning_content", reasoning);
        choice.putNull("finish_reason");
        write(out, nullUsage(p, ch));
    }

    private ObjectNode textChunk(String id, long created, String model, String object, boolean chat, int index, String text,
            String finish) {
        ObjectNode c = chunk(id, created, model, object);
        ObjectNode choice = c.putArray("choices").addObject();
        choice.put("index", index);
        if (chat) {
            ObjectNode delta = choice.putObject("delta");
            if (text != null) {
                delta.put("content", text);
            }
        } else {
            choice.put("text", text == null ? "" : text);
            choice.putNull("logprobs");
        }
        if (finish == null) {
            choice.putNull("finish_reason");
        } else {
            choice.put("finish_reason", finish);
        }
        return c;
    }

    private ObjectNode chunk(String id, long created, String model, String object) {
        return envelope(id, created, model, object);
    }

    private ObjectNode envelope(String id, long created, String model, String object) {
        ObjectNode o = json.object();
        o.put("id", id);
        o.put("object", object);
        o.put("created", created);
        o.put("model", model);
        o.put("system_fingerprint", "ai-llm-reference-app");
        return o;
    }

    private static ObjectNode usage(ObjectNode u, GenerationEvent.Done d) {
        u.put("prompt_tokens", d.promptTokens());
        u.put("completion_tokens", d.completionTokens());
        u.put("total_tokens", d.promptTokens() + d.completionTokens());
        u.putObject("prompt_tokens_details").put("cached_tokens", d.cachedPromptTokens());
        return u;
    }

    /** For a reasoning model's reply: {@code completion_tokens_details.reasoning_tokens}, every choice's together. */
    private static void reasoningUsage(ObjectNode u, List<Choice> choices, CompletionParser.Parsed p) {
        if (p.reasoning() != CompletionParser.Reasoning.OFF) {
            u.putObject("completion_tokens_details").put("reasoning_tokens", choices.stream().mapToInt(Choice::reasoningTokens).sum());
        }
    }

    private void write(OutputStream out, JsonNode node) {
        buffer(out, node);
        try {
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void keepAlive(OutputStream out) {
        try {
            out.write(KEEP_ALIVE);
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** One SSE event into the response's buffer, not yet flushed. */
    private void buffer(OutputStream out, JsonNode node) {
        try {
            out.write("data: ".getBytes(StandardCharsets.US_ASCII));
            out.write(json.write(node));
            out.write("\n\n".getBytes(StandardCharsets.US_ASCII));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    // --- embeddings, models, tokenizer -------------------------------------------------------------

    private void embeddings(ServerRequest req, ServerResponse res, Exchange x) throws Exception {
        ServedModel m = ready();
        ObjectNode body = body(req);
        String modelId = parser(m).checkModel(body);
        JsonNode input = Params.get(body, "input");
        List<int[]> inputs = new ArrayList<>();
        String shapes = "'input' must be a string, an array of token ids, or an array of 1 to 256 of those";
        if (input == null) {
            throw ApiException.badRequest("input", "'input' is required");
        } else if (input.isTextual()) {
            inputs.add(m.tokenize(input.textValue(), false));
        } else if (input.isArray() && !input.isEmpty() && input.get(0).isNumber()) {
            inputs.add(tokenIds(input, "input", m)); // one input as token ids (OpenAI's array of integers)
        } else if (input.isArray() && !input.isEmpty() && input.size() <= 256) {
            for (int k = 0; k < input.size(); k++) {
                JsonNode i = input.get(k);
                if (i.isTextual()) {
                    inputs.add(m.tokenize(i.textValue(), false));
                } else if (i.isArray() && !i.isEmpty()) {
                    inputs.add(tokenIds(i, "input[" + k + "]", m));
                } else {
                    throw ApiException.badRequest("input", shapes);
                }
            }
        } else {
            throw ApiException.badRequest("input", shapes);
        }
        String format = Params.string(body, "encoding_format");
        if (format != null && !format.equals("float") && !format.equals("base64")) {
            throw ApiException.badValue("encoding_format", "'encoding_format' must be 'float' or 'base64'");
        }
        if (Params.get(body, "dimensions") != null) {
            throw ApiException.unsupported("dimensions", "'dimensions' is not supported: the model's embedding size is fixed");
        }
        List<float[]> vectors;
        CompletableFuture<List<float[]>> pending = m.engine().embed(inputs);
        try {
            vectors = pending.get(limits.requestTimeoutMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof EngineException ee ? ee : new EngineException(EngineException.Kind.INTERNAL, "embedding failed");
        } catch (TimeoutException e) {
            pending.cancel(false); // the scheduler skips the inputs left
            throw new ApiException(504, "server_error", "timeout", null, "the embedding request timed out");
        } catch (InterruptedException e) {
            pending.cancel(false);
            throw e;
        }
        ObjectNode out = json.object();
        out.put("object", "list");
        ArrayNode data = out.putArray("data");
        int tokens = 0;
        for (int i = 0; i < vectors.size(); i++) {
            ObjectNode d = data.addObject();
            d.put("object", "embedding");
            d.put("index", i);
            if ("base64".equals(format)) {
                ByteBuffer buf = ByteBuffer.allocate(vectors.get(i).length * 4).order(ByteOrder.LITTLE_ENDIAN);
                for (float f : vectors.get(i)) {
                    buf.putFloat(f);
                }
                d.put("embedding", Base64.getEncoder().encodeToString(buf.array()));
            } else {
                ArrayNode v = d.putArray("embedding");
                for (float f : vectors.get(i)) {
                    v.add(f);
                }
            }
            tokens += inputs.get(i).length;
        }
        out.put("model", modelId);
        out.putObject("usage").put("prompt_tokens", tokens).put("total_tokens", tokens);
        sendJson(res, out);
    }

    /** An input given as token ids (as OpenAI's clients send a pre-tokenized input): each an id of the model's vocabulary. */
    private static int[] tokenIds(JsonNode array, String where, ServedModel m) {
        int[] ids = new int[array.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode t = array.get(i);
            if (!t.isIntegralNumber() || !t.canConvertToInt() || t.intValue() < 0 || t.intValue() >= m.vocabSize()) {
                throw ApiException.badValue("input", where + "[" + i + "] must be a token id in 0.." + (m.vocabSize() - 1));
            }
            ids[i] = t.intValue();
        }
        return ids;
    }

    private void models(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        ObjectNode out = json.object();
        out.put("object", "list");
        modelObject(out.putArray("data").addObject(), m);
        // Anthropic's list (anthropic-java's models().list()): one page
        out.put("has_more", false).put("first_id", m.id()).put("last_id", m.id());
        sendJson(res, out);
    }

    private void model(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        String id = req.path().pathParameters().get("id");
        if (!id.equals(m.id())) {
            throw new ApiException(404, "invalid_request_error", "model_not_found", "model", "the model '"
                    + CompletionParser.abbreviate(id) + "' does not exist");
        }
        sendJson(res, modelObject(json.object(), m));
    }

    /**
     * llama-server's {@code GET /props}, what clients such as SillyTavern read to size their
     * prompts and pick a prompt format: the slot's context ({@code default_generation_settings.n_ctx}),
     * the slots, the chat template and the special tokens' text. {@code ?model=} must name the
     * served model when given. The model's file path is not given (its id is, as
     * {@code model_alias}).
     */
    private void props(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        String asked = req.query().first("model").orElse(null);
        if (asked != null && !asked.equals(m.id())) {
            throw new ApiException(404, "invalid_request_error", "model_not_found", "model", "the model '"
                    + CompletionParser.abbreviate(asked) + "' does not exist; this server serves '" + m.id() + "'");
        }
        ObjectNode o = json.object();
        ObjectNode settings = o.putObject("default_generation_settings");
        settings.put("id", 0);
        settings.put("n_ctx", m.slotContext());
        settings.put("is_processing", false);
        o.put("total_slots", m.slots());
        o.put("model_alias", m.id());
        String template = m.chatTemplateSource();
        if (template != null) {
            o.put("chat_template", template);
        }
        o.put("bos_token", m.bosText());
        o.put("eos_token", m.eosText());
        o.putObject("modalities").put("vision", false).put("audio", false);
        o.put("build_info", "ai-llm-reference-app");
        o.put("is_sleeping", false);
        sendJson(res, o);
    }

    /**
     * The served model, in OpenAI's shape ({@code object}, {@code created}, {@code owned_by}) and
     * Anthropic's ({@code type}, {@code display_name}, {@code created_at}, {@code lifecycle},
     * {@code max_input_tokens}: the longest prompt, which leaves a slot's context a token to
     * generate, {@code max_tokens}: the most a request may generate), one object for both APIs' clients, each reading its own fields.
     */
    private ObjectNode modelObject(ObjectNode o, ServedModel m) {
        o.put("id", m.id());
        o.put("object", "model");
        o.put("created", m.loadedAtEpochSeconds());
        o.put("owned_by", "ai-llm-reference-app");
        o.put("type", "model");
        o.put("display_name", m.id());
        o.put("created_at", java.time.Instant.ofEpochSecond(m.loadedAtEpochSeconds()).toString());
        o.put("lifecycle", "active");
        o.put("max_input_tokens", Math.min(limits.maxPromptTokens(), m.slotContext() - 1));
        o.put("max_tokens", Math.min(limits.maxTokens(), m.slotContext() - 1));
        return o;
    }

    private void tokenize(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        ObjectNode body = body(req);
        String content = Params.string(body, "content");
        if (content == null) {
            throw ApiException.badRequest("content", "'content' is required");
        }
        Boolean addSpecial = Params.bool(body, "add_special");
        Boolean parseSpecial = Params.bool(body, "parse_special"); // llama-server's default: parsed
        Boolean withPieces = Params.bool(body, "with_pieces");
        int[] tokens = m.tokenizeRaw(content, addSpecial != null && addSpecial, parseSpecial == null || parseSpecial);
        ObjectNode out = json.object();
        ArrayNode arr = out.putArray("tokens");
        for (int t : tokens) {
            if (withPieces != null && withPieces) {
                ObjectNode p = arr.addObject().put("id", t);
                byte[] bytes = m.pieceBytes(t);
                String text = utf8(bytes);
                if (text != null) {
                    p.put("piece", text);
                } else { // a part of a character: its bytes, as llama-server gives them
                    bytes(p.putArray("piece"), bytes);
                }
            } else {
                arr.add(t);
            }
        }
        sendJson(res, out);
    }

    /** The text of bytes that are valid UTF-8, else null. */
    private static String utf8(byte[] bytes) {
        try {
            return java.nio.charset.StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            return null;
        }
    }

    /**
     * llama-server's {@code /apply-template}: a chat request's prompt as text, rendered as the chat
     * route renders it (template, tools, {@code chat_template_kwargs}, {@code reasoning_effort}),
     * nothing generated: {@code {"prompt": "..."}}.
     */
    private void applyTemplate(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        ObjectNode body = body(req);
        ObjectNode out = json.object();
        out.put("prompt", parser(m).chatPromptText(body));
        sendJson(res, out);
    }

    private void detokenize(ServerRequest req, ServerResponse res, Exchange x) {
        ServedModel m = ready();
        ObjectNode body = body(req);
        JsonNode tokens = Params.get(body, "tokens");
        if (tokens == null || !tokens.isArray()) {
            throw ApiException.badRequest("tokens", "'tokens' must be an array of token ids");
        }
        int[] ids = new int[tokens.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode t = tokens.get(i);
            if (!t.isIntegralNumber() || !t.canConvertToInt() || t.intValue() < 0 || t.intValue() >= m.vocabSize()) {
                throw ApiException.badValue("tokens", "tokens[" + i + "] must be a token id in 0.." + (m.vocabSize() - 1));
            }
            ids[i] = t.intValue();
        }
        ObjectNode out = json.object();
        out.put("content", m.detokenizeShown(ids));
        sendJson(res, out);
    }
}
