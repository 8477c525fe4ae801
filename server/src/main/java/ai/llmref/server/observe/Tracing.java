package ai.llmref.server.observe;

import ai.llmref.server.engine.GenerationEvent;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.api.trace.TracerProvider;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.exporter.otlp.http.trace.OtlpHttpSpanExporter;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import io.opentelemetry.sdk.trace.samplers.Sampler;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * OpenTelemetry spans per request: {@code request} (server span, continuing the caller's W3C
 * {@code traceparent}) with children {@code queue_wait}, {@code prefill}, {@code decode} (timed by
 * the engine) and {@code stream} (SSE delivery). Export is off unless configured (OTLP/HTTP).
 */
public final class Tracing implements AutoCloseable {
    private static final TextMapGetter<Function<String, String>> HEADERS = new TextMapGetter<>() {
        @Override
        public Iterable<String> keys(Function<String, String> carrier) {
            return java.util.List.of("traceparent", "tracestate");
        }

        @Override
        public String get(Function<String, String> carrier, String key) {
            return carrier == null ? null : carrier.apply(key);
        }
    };

    private final SdkTracerProvider provider;
    private final Tracer tracer;

    private Tracing(SdkTracerProvider provider) {
        this.provider = provider;
        this.tracer = (provider == null ? TracerProvider.noop() : provider).get("ai.llmref.server");
    }

    /** No export; incoming trace ids are still read (for the access log). */
    public static Tracing disabled() {
        return new Tracing(null);
    }

    /**
     * Export over OTLP/HTTP (protobuf) to a collector at {@code endpoint} (e.g.
     * {@code http://collector:4318}; {@code /v1/traces} is appended), sampling the given ratio of
     * new traces. HTTP rather than gRPC: it needs only the JDK's HTTP client.
     */
    public static Tracing otlp(String endpoint, String serviceName, double sampleRatio) {
        String url = endpoint.endsWith("/v1/traces") ? endpoint : endpoint.replaceAll("/+$", "") + "/v1/traces";
        SpanExporter exporter = OtlpHttpSpanExporter.builder().setEndpoint(url).build();
        return new Tracing(provider(BatchSpanProcessor.builder(exporter).build(), serviceName, sampleRatio));
    }

    /** Export synchronously to {@code exporter} (tests use an in-memory exporter). */
    public static Tracing to(SpanExporter exporter, String serviceName) {
        return new Tracing(provider(SimpleSpanProcessor.create(exporter), serviceName, 1.0));
    }

    private static SdkTracerProvider provider(io.opentelemetry.sdk.trace.SpanProcessor processor, String service, double ratio) {
        return SdkTracerProvider.builder()
                .setResource(Resource.getDefault().merge(Resource.create(Attributes.of(AttributeKey.stringKey("service.name"), service))))
                .setSampler(Sampler.parentBased(Sampler.traceIdRatioBased(ratio)))
                .addSpanProcessor(processor)
                .build();
    }

    /** Starts the request span, continuing {@code traceparent} if the caller sent one. */
    public Span startRequest(String method, String route, Function<String, String> header) {
        Context parent = W3CTraceContextPropagator.getInstance().extract(Context.root(), header, HEADERS);
        Span span = tracer.spanBuilder(method + " " + route).setParent(parent).setSpanKind(SpanKind.SERVER)
                .setAttribute("http.request.method", method).setAttribute("http.route", route).startSpan();
        if (!span.getSpanContext().isValid()) {
            // not recording: keep the caller's trace id for the logs anyway
            Span remote = Span.fromContext(parent);
            return remote.getSpanContext().isValid() ? Span.wrap(remote.getSpanContext()) : span;
        }
        return span;
    }

    /** The engine's phases as child spans, from the request's submission time (epoch nanos). */
    public void phases(Span request, long submittedEpochNanos, GenerationEvent.Done done) {
        GenerationEvent.Timings t = done.timings();
        long q0 = submittedEpochNanos;
        long p0 = q0 + t.queuedNanos();
        long d0 = p0 + t.prefillNanos();
        long end = d0 + t.decodeNanos();
        child(request, "queue_wait", q0, p0, Map.of());
        child(request, "prefill", p0, d0, Map.of("llm.prompt_tokens", (long) done.promptTokens(), "llm.cached_tokens", (long) done.cachedPromptTokens()));
        child(request, "decode", d0, end, Map.of("llm.completion_tokens", (long) done.completionTokens()));
    }

    /** A span covering SSE delivery. */
    public Span startStream(Span request) {
        return tracer.spanBuilder("stream").setParent(Context.root().with(request)).startSpan();
    }

    private void child(Span parent, String name, long startEpochNanos, long endEpochNanos, Map<String, Long> attrs) {
        Span s = tracer.spanBuilder(name).setParent(Context.root().with(parent))
                .setStartTimestamp(startEpochNanos, TimeUnit.NANOSECONDS).startSpan();
        attrs.forEach(s::setAttribute);
        s.end(endEpochNanos, TimeUnit.NANOSECONDS);
    }

    public static long nowEpochNanos() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000_000L + now.getNano();
    }

    /**
     * Flushes what spans are queued, for at most 2 s: the chart leaves 5 s after the drain for the
     * listeners, the native frees and this; a collector that accepts and never answers held the
     * exit for 5 s here, the whole margin, so that the kubelet's SIGKILL could come first.
     */
    @Override
    public void close() {
        if (provider != null) {
            provider.shutdown().join(2, TimeUnit.SECONDS);
        }
    }
}
