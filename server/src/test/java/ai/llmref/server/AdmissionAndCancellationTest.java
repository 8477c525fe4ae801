package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.engine.Engine;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** A client that goes away frees its slot; a full queue answers 429 with Retry-After. */
class AdmissionAndCancellationTest {

    static String longStream() {
        return "{\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"temperature\":0.8,\"seed\":1,\"stream\":true}";
    }

    @Test
    void disconnectingClientFreesItsSlot() throws Exception {
        try (TestServer s = TestServer.start(Map.of("engine.slots", "2"))) {
            Engine engine = s.server.engine();
            HttpResponse<InputStream> r = s.http.send(HttpRequest.newBuilder(URI.create(s.base() + "/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(longStream())).build(),
                    HttpResponse.BodyHandlers.ofInputStream());
            assertThat(r.statusCode()).isEqualTo(200);
            BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8));
            assertThat(TestServer.nextEvent(in)).startsWith("data: ");
            assertThat(engine.stats().busySlots()).isEqualTo(1);
            in.close(); // the client goes away mid-stream
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (engine.stats().busySlots() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertThat(engine.stats().busySlots()).as("slot freed after disconnect").isZero();
            // and the server serves the next request normally
            assertThat(s.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3}").statusCode()).isEqualTo(200);
        }
    }

    @Test
    void aStreamWhoseClientLeftWhileQueuedIsCancelledBeforeItRuns() throws Exception {
        try (TestServer s = TestServer.start(Map.of("engine.slots", "1"))) {
            Engine engine = s.server.engine();
            engine.stallFor(6000); // nothing runs meanwhile: the request stays queued
            try (java.net.Socket client = new java.net.Socket("127.0.0.1", s.server.port())) {
                byte[] body = longStream().getBytes(StandardCharsets.UTF_8);
                client.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                client.getOutputStream().write(body);
                BufferedReader in = new BufferedReader(new InputStreamReader(client.getInputStream(), StandardCharsets.US_ASCII));
                assertThat(in.readLine()).isEqualTo("HTTP/1.1 200 OK"); // the headers come while it waits
                assertThat(engine.stats().queued()).isEqualTo(1);
            } // the client gives up
            // its handler learns it from a keep-alive write and cancels it, while the scheduler still stands
            awaitCounted(s, "/v1/completions", System.nanoTime() + Duration.ofSeconds(4).toNanos());
            assertThat(s.getAdmin("/metrics").body()).as("the handler ended while the request was queued")
                    .containsPattern("llmref_requests_total\\{[^}]*route=\"/v1/completions\"[^}]*} 1");
            engine.stallFor(0);
            // the scheduler drops it from the queue: it never takes the slot (its prompt is not decoded)
            waitFor(() -> engine.stats().queued() == 0);
            assertThat(s.getAdmin("/metrics").body()).containsPattern("llmref_prompt_tokens_total (0|0\\.0)\\n");
            assertThat(s.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3}").statusCode()).isEqualTo(200);
        }
    }

    @Test
    void aClientThatStopsReadingIsCutOffAfterTheDeadline() throws Exception {
        try (TestServer s = TestServer.start(Map.of("engine.slots", "16", "engine.threads", "1", "engine.threads-batch", "1", "limits.request-timeout-ms", "20000"))) {
            // megabytes of chunks (16 choices with 20 alternatives a token): more than the sockets buffer
            String request = "{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":200,"
                    + "\"temperature\":0,\"logit_bias\":{\"2\":-100},\"logprobs\":true,\"top_logprobs\":20,\"n\":16,\"stream\":true}";
            try (java.net.Socket client = new java.net.Socket()) {
                client.setReceiveBufferSize(4096);
                client.connect(new java.net.InetSocketAddress("127.0.0.1", s.server.port()));
                byte[] body = request.getBytes(StandardCharsets.UTF_8);
                client.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                long sent = System.nanoTime();
                client.getOutputStream().write(body);
                waitFor(() -> s.server.engine().stats().busySlots() > 0);
                while (!s.server.engine().idle() && System.nanoTime() - sent < Duration.ofSeconds(18).toNanos()) {
                    Thread.sleep(20); // all generated, within the request's time
                }
                assertThat((System.nanoTime() - sent) / 1_000_000).as("generated before the deadline").isLessThan(18_000);
                // the client reads nothing: the handler's writes block (it has not ended) ...
                assertThat(s.getAdmin("/metrics").body()).doesNotContainPattern("llmref_requests_total\\{[^}]*route=\"/v1/chat/completions\"");
                // ... and it must still end soon after the deadline
                awaitCounted(s, "/v1/chat/completions", sent + Duration.ofSeconds(27).toNanos());
                assertThat(s.getAdmin("/metrics").body()).as("the handler ended while its client read nothing")
                        .containsPattern("llmref_requests_total\\{[^}]*route=\"/v1/chat/completions\"[^}]*} 1");
                // and the connection was closed: what the client reads now ends before the stream's end
                client.setSoTimeout(10_000);
                String got;
                try {
                    got = new String(client.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                } catch (java.net.SocketException reset) {
                    got = "";
                }
                assertThat(got).doesNotContain("[DONE]");
            }
            waitFor(() -> s.server.engine().idle());
            assertThat(s.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3}").statusCode()).isEqualTo(200);
        }
    }

    @Test
    void requestTimeoutCancelsAndFreesTheSlot() throws Exception {
        try (TestServer s = TestServer.start(Map.of("limits.request-timeout-ms", "300", "engine.slots", "1"))) {
            s.server.engine().stallFor(1500);
            HttpResponse<String> r = s.post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":50}");
            assertThat(r.statusCode()).as(r.body()).isEqualTo(504);
            assertThat(r.body()).contains("\"code\":\"timeout\"");
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while ((s.server.engine().stats().busySlots() > 0 || s.server.engine().stats().queued() > 0) && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertThat(s.server.engine().stats().busySlots()).isZero();
        }
    }

    @Test
    void aStreamGetsItsHeadersBeforeTheFirstTokenAndATimeoutBecomesAnErrorEvent() throws Exception {
        try (TestServer s = TestServer.start(Map.of("limits.request-timeout-ms", "1500", "engine.slots", "1"))) {
            s.server.engine().stallFor(3000); // the request stays queued: no token can come before the timeout
            long sent = System.nanoTime();
            HttpResponse<InputStream> r = s.http.send(HttpRequest.newBuilder(URI.create(s.base() + "/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(longStream())).build(),
                    HttpResponse.BodyHandlers.ofInputStream());
            long headersMs = (System.nanoTime() - sent) / 1_000_000;
            // send() returns with the headers; the first body bytes (the timeout event) come at 1500 ms
            assertThat(headersMs).as("headers sent on admission, not with the first event").isLessThan(1200);
            assertThat(s.server.engine().stats().queued()).as("headers arrive while the request is still queued").isEqualTo(1);
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(r.headers().firstValue("content-type")).hasValue("text/event-stream");
            String body = new String(r.body().readAllBytes(), StandardCharsets.UTF_8);
            assertThat((System.nanoTime() - sent) / 1_000_000).as("the event came with the timeout").isGreaterThanOrEqualTo(1400);
            // while it waited: keep-alive comments (one a second), then the event
            assertThat(body).startsWith(": keep-alive\n\n").contains("\"code\":\"timeout\"").doesNotContain("[DONE]");
            assertThat(body.replace(": keep-alive\n\n", "")).startsWith("data: {\"error\":");
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while ((s.server.engine().stats().busySlots() > 0 || s.server.engine().stats().queued() > 0) && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertThat(s.server.engine().stats().busySlots()).isZero();
        }
    }

    @Test
    void fullQueueAnswers429WithRetryAfter() throws Exception {
        try (TestServer s = TestServer.start(Map.of("engine.slots", "1", "engine.queue-capacity", "1"))) {
            s.server.engine().stallFor(3000); // hold the scheduler so that requests pile up
            // one for the slot, one waiting for it
            CompletableFuture<HttpResponse<String>> first = s.http.sendAsync(request(s), HttpResponse.BodyHandlers.ofString());
            waitFor(() -> s.server.engine().stats().queued() == 1);
            CompletableFuture<HttpResponse<String>> second = s.http.sendAsync(request(s), HttpResponse.BodyHandlers.ofString());
            waitFor(() -> s.server.engine().stats().queued() == 2);
            HttpResponse<String> third = s.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3}");
            assertThat(third.statusCode()).as(third.body()).isEqualTo(429);
            assertThat(third.headers().firstValue("retry-after")).isPresent();
            assertThat(third.body()).contains("\"type\":\"rate_limit_error\"").contains("\"code\":\"queue_full\"");
            // the queued ones are served once the scheduler runs again
            assertThat(first.get().statusCode()).isEqualTo(200);
            assertThat(second.get().statusCode()).isEqualTo(200);
        }
    }

    @Test
    void theQueueCapacityCountsOnlyRequestsWaitingForABusySlot() throws Exception {
        try (TestServer s = TestServer.start(Map.of("engine.slots", "4", "engine.queue-capacity", "1"))) {
            // the scheduler has not yet moved anything into the 4 free slots: 4 choices and one more
            // request are 4 requests for free slots and 1 waiting, which the queue has room for
            s.server.engine().stallFor(3000);
            CompletableFuture<HttpResponse<String>> four = s.http.sendAsync(HttpRequest.newBuilder(URI.create(s.base() + "/v1/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Hello\",\"max_tokens\":5,\"n\":4}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            waitFor(() -> s.server.engine().stats().queued() == 4);
            CompletableFuture<HttpResponse<String>> fifth = s.http.sendAsync(request(s), HttpResponse.BodyHandlers.ofString());
            waitFor(() -> s.server.engine().stats().queued() == 5);
            HttpResponse<String> sixth = s.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3}");
            assertThat(sixth.statusCode()).as(sixth.body()).isEqualTo(429);
            assertThat(sixth.body()).contains("\"code\":\"queue_full\"");
            assertThat(four.get().statusCode()).as(four.get().body()).isEqualTo(200);
            assertThat(four.get().body()).contains("\"index\":3");
            assertThat(fifth.get().statusCode()).as(fifth.get().body()).isEqualTo(200);
            waitFor(() -> s.server.engine().idle());
            // every ended request gave its place back
            for (int i = 0; i < 5; i++) {
                assertThat(s.post("/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":3,\"n\":4}").statusCode()).isEqualTo(200);
            }
        }
    }

    private static HttpRequest request(TestServer s) {
        return HttpRequest.newBuilder(URI.create(s.base() + "/v1/completions")).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"Hello\",\"max_tokens\":5}")).build();
    }

    /** Polls the metrics until a request on the route has been counted (its handler ended), or the deadline passes. */
    private static void awaitCounted(TestServer s, String route, long deadlineNanos) throws Exception {
        while (s.getAdmin("/metrics").body().lines().noneMatch(l -> l.startsWith("llmref_requests_total{") && l.contains(route))
                && System.nanoTime() < deadlineNanos) {
            Thread.sleep(50);
        }
    }

    private static void waitFor(java.util.function.BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (!cond.getAsBoolean() && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertThat(cond.getAsBoolean()).isTrue();
    }
}
