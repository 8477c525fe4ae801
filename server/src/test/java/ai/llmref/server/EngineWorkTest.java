package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.server.engine.Engine;
import ai.llmref.server.engine.EngineException;
import ai.llmref.server.engine.GenerationEvent;
import ai.llmref.server.engine.GenerationRequest;
import ai.llmref.server.engine.RequestHandle;
import ai.llmref.server.engine.SamplingParams;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The scheduler's share-out of work, on the engine of a real server (stories260K): embeddings take
 * turns with generation steps, a cancelled embedding job is dropped, queued requests that gave up
 * leave the queue, and {@link Engine#idle} never reports idle while a request is in flight.
 */
class EngineWorkTest {
    private static final int[] PROMPT = {1, 300, 301, 302, 303};

    private static GenerationRequest greedy(int maxTokens) {
        return new GenerationRequest(PROMPT, maxTokens, List.of(), SamplingParams.greedy());
    }

    /** Greedy with stories260K's end of text (id 2) banned: it runs its whole max_tokens. */
    private static GenerationRequest endless(int maxTokens) {
        return new GenerationRequest(PROMPT, maxTokens, List.of(), new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(2, -100f), null));
    }

    /** {@code n} inputs of {@code length} tokens each, different from one another. */
    private static List<int[]> inputs(int n, int length) {
        List<int[]> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int[] in = new int[length];
            in[0] = 1;
            for (int k = 1; k < length; k++) {
                in[k] = 3 + (i * 7 + k * 13) % 500;
            }
            out.add(in);
        }
        return out;
    }

    /** Events of {@code h} so far: tokens counted, true once it ended. */
    private static boolean drain(RequestHandle h, int[] tokens) {
        GenerationEvent e;
        while ((e = h.poll()) != null) {
            if (e instanceof GenerationEvent.Done || e instanceof GenerationEvent.Failed) {
                return true;
            }
            tokens[0]++;
        }
        return false;
    }

    @Test
    void embeddingsTakeTurnsWithGenerationAndTheHeartbeatGoesOn() throws Exception {
        try (TestServer t = TestServer.start(Map.of("engine.slots", "2"))) {
            Engine engine = t.server.engine();
            RequestHandle h = engine.submit(endless(TestServer.SLOT_CONTEXT - PROMPT.length));
            int[] tokens = {0};
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (tokens[0] == 0 && !drain(h, tokens) && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            assertThat(tokens[0]).as("the stream started").isPositive();
            List<int[]> many = inputs(256, 200);
            int before = tokens[0];
            long maxHeartbeatAge = 0;
            boolean ended = false;
            long started = System.nanoTime();
            CompletableFuture<List<float[]>> job = engine.embed(many);
            while (!job.isDone()) {
                maxHeartbeatAge = Math.max(maxHeartbeatAge, engine.stats().heartbeatAgeNanos());
                ended |= drain(h, tokens);
                Thread.sleep(1);
            }
            long jobMillis = (System.nanoTime() - started) / 1_000_000;
            int during = tokens[0] - before;
            // before, the job ran whole between two steps: the stream got nothing meanwhile and the
            // heartbeat (which liveness reads) stood still for the whole job
            assertThat(during).as("tokens streamed while a %d ms embedding job ran", jobMillis).isGreaterThanOrEqualTo(ended ? 1 : 20);
            assertThat(maxHeartbeatAge / 1_000_000).as("heartbeat age during a %d ms job", jobMillis).isLessThan(Math.max(200, jobMillis / 4));
            List<float[]> vectors = job.get();
            assertThat(vectors).hasSize(many.size());
            // each vector is what the input alone gives
            for (int i : new int[] {0, 127, 255}) {
                assertThat(engine.embed(List.of(many.get(i))).get(30, TimeUnit.SECONDS).get(0)).as("input " + i).containsExactly(vectors.get(i));
            }
            assertThat(Arrays.equals(vectors.get(0), vectors.get(1))).isFalse();
            h.cancel();
        }
    }

    @Test
    void anEmbeddingJobWhoseCallerGaveUpIsDropped() throws Exception {
        try (TestServer t = TestServer.start(Map.of("engine.slots", "1"))) {
            Engine engine = t.server.engine();
            List<int[]> many = inputs(128, 200);
            long t0 = System.nanoTime();
            assertThat(engine.embed(many).get(60, TimeUnit.SECONDS)).hasSize(128);
            long fullNanos = System.nanoTime() - t0;
            CompletableFuture<List<float[]>> abandoned = engine.embed(many);
            abandoned.cancel(false); // what the handler does after its timeout (504)
            long t1 = System.nanoTime();
            List<float[]> one = engine.embed(List.of(many.get(3))).get(60, TimeUnit.SECONDS);
            long afterNanos = System.nanoTime() - t1;
            assertThat(one).hasSize(1);
            assertThat(afterNanos).as("the next job waited for at most one input of the abandoned one (a whole job: %d ms)",
                    fullNanos / 1_000_000).isLessThan(fullNanos / 4);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (!engine.idle() && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertThat(engine.idle()).isTrue();
        }
    }

    @Test
    void theQueueCapacityCountsOnlyEmbeddingJobsWaitingForTheContext() throws Exception {
        // found by EngineScheduleFuzzTest: queue capacity + 1 jobs at once onto an idle embeddings
        // context got a 429 for the last one whenever the scheduler had not yet taken the first
        try (TestServer t = TestServer.start(Map.of("engine.queue-capacity", "2"))) {
            Engine engine = t.server.engine();
            for (int round = 0; round < 2; round++) {
                engine.stallFor(1500); // the scheduler takes no job meanwhile
                List<CompletableFuture<List<float[]>>> jobs = new ArrayList<>();
                for (int i = 0; i < 3; i++) { // one the idle context is about to take, two waiting
                    jobs.add(engine.embed(inputs(1, 8)));
                }
                assertThatThrownBy(() -> engine.embed(inputs(1, 8))).isInstanceOf(EngineException.class)
                        .hasMessageContaining("2 embedding requests are waiting")
                        .extracting(e -> ((EngineException) e).kind()).isEqualTo(EngineException.Kind.QUEUE_FULL);
                if (round == 1) {
                    jobs.removeFirst().cancel(false); // its caller gave up (a timeout): its place is free at once
                    jobs.add(engine.embed(inputs(1, 8)));
                }
                for (CompletableFuture<List<float[]>> j : jobs) {
                    assertThat(j.get(60, TimeUnit.SECONDS)).hasSize(1);
                }
            }
        }
    }

    @Test
    void anEmbeddingInputMayBeAsLongAsASlot() throws Exception {
        // llama.cpp rounds a slot's positions up (300 becomes 512 here); the embeddings context had
        // kept the configured 300 as its batch, so inputs the engine accepted failed with a 500
        try (TestServer t = TestServer.start(Map.of("engine.slots", "2", "engine.slot-context", "300"))) {
            Engine engine = t.server.engine();
            int positions = engine.slotContext();
            assertThat(positions).isGreaterThanOrEqualTo(300);
            List<float[]> v = engine.embed(inputs(1, positions)).get(60, TimeUnit.SECONDS);
            assertThat(v).hasSize(1);
            assertThat(v.get(0)).isNotEmpty();
            assertThatThrownBy(() -> engine.embed(inputs(1, positions + 1))).isInstanceOf(EngineException.class)
                    .hasMessageContaining("the limit is " + positions);
        }
    }

    @Test
    void cancelledRequestsBehindAWaitingOneLeaveTheQueue() throws Exception {
        try (TestServer t = TestServer.start(Map.of("engine.slots", "1", "engine.queue-capacity", "2"))) {
            Engine engine = t.server.engine();
            RequestHandle running = engine.submit(endless(TestServer.SLOT_CONTEXT - PROMPT.length));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (engine.stats().busySlots() == 0 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            RequestHandle waiting = engine.submit(greedy(4));
            RequestHandle gaveUp = engine.submit(greedy(4));
            gaveUp.cancel();
            // the queue is full (2) until the scheduler drops the cancelled one, behind a live one
            while (engine.stats().queued() > 1 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertThat(engine.stats().queued()).isEqualTo(1);
            GenerationEvent e = gaveUp.poll(); // its end follows its leaving the queue
            while (e == null && System.nanoTime() < deadline) {
                Thread.sleep(1);
                e = gaveUp.poll();
            }
            assertThat(e).isInstanceOf(GenerationEvent.Done.class);
            assertThat(((GenerationEvent.Done) e).reason().name()).isEqualTo("CANCELLED");
            RequestHandle next = engine.submit(greedy(4)); // was refused with QUEUE_FULL (429)
            running.cancel();
            for (RequestHandle h : List.of(waiting, next)) {
                int[] tokens = {0};
                while (!drain(h, tokens) && System.nanoTime() < deadline + TimeUnit.SECONDS.toNanos(20)) {
                    Thread.sleep(1);
                }
                assertThat(tokens[0]).as("request " + h.id() + " generated").isPositive();
            }
        }
    }

    @Test
    void theEngineIsNeverIdleWhileARequestIsInFlight() throws Exception {
        try (TestServer t = TestServer.start(Map.of("engine.slots", "1"))) {
            Engine engine = t.server.engine();
            int idleSeen = 0;
            for (int i = 0; i < 300; i++) {
                RequestHandle h = engine.submit(greedy(1));
                int[] tokens = {0};
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                boolean ended = false;
                while (!ended && System.nanoTime() < deadline) {
                    // read before the events: an event already there means the request may have ended
                    boolean idle = engine.idle();
                    ended = drain(h, tokens);
                    if (idle && !ended) {
                        idleSeen++; // a drain would have stopped the engine under this request
                        while (!ended && System.nanoTime() < deadline) { // let it end before the next
                            ended = drain(h, tokens);
                        }
                    }
                }
                assertThat(ended).as("request " + i + " ended").isTrue();
            }
            assertThat(idleSeen).as("times idle() was true while a request was queued or running").isZero();
        }
    }

    /**
     * Closing the engine during a long decode (one 2,500-token prompt in one micro-batch: seconds on
     * the CPU; 16,000 tokens took 223 s, and close 19 s, a graph node being the unit) aborts the decode at its next graph node: close returns well before the decode would
     * have ended, the request fails as "the engine stopped", and the contexts are freed, so the
     * model can be closed after it (before, close waited 30 s and gave up, the decode still running).
     */
    @Test
    void closeAbortsADecodeUnderWay() throws Exception {
        int length = 2_500;
        Map<String, String> big = Map.of("engine.slots", "1", "engine.slot-context", "4096", "engine.batch-size", "4096",
                "engine.ubatch-size", "4096", "engine.prefill-chunk", "4096");
        int[] prompt = inputs(1, length).getFirst();
        long decodeNanos;
        try (TestServer t = TestServer.start(big)) {
            long t0 = System.nanoTime();
            RequestHandle h = t.server.engine().submit(new GenerationRequest(prompt, 1, List.of(), SamplingParams.greedy()));
            GenerationEvent e;
            while (!((e = h.poll()) instanceof GenerationEvent.Done)) {
                if (e instanceof GenerationEvent.Failed f) {
                    throw f.error();
                }
                Thread.sleep(5);
            }
            decodeNanos = System.nanoTime() - t0;
        }
        assertThat(decodeNanos).as("the prompt's decode takes long enough to be stopped part-way").isGreaterThan(TimeUnit.MILLISECONDS.toNanos(800));
        try (TestServer t = TestServer.start(big)) {
            Engine engine = t.server.engine();
            RequestHandle h = engine.submit(new GenerationRequest(prompt, 1, List.of(), SamplingParams.greedy()));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (engine.stats().heartbeatAgeNanos() < decodeNanos / 4 && System.nanoTime() < deadline) {
                Thread.sleep(5); // the scheduler is inside the decode
            }
            long t0 = System.nanoTime();
            engine.close();
            long closeNanos = System.nanoTime() - t0;
            System.out.printf("closeAbortsADecodeUnderWay: decode %d ms, close %d ms%n", decodeNanos / 1_000_000, closeNanos / 1_000_000);
            assertThat(closeNanos).as("close during a %d ms decode", decodeNanos / 1_000_000).isLessThan(decodeNanos / 2);
            GenerationEvent e = h.poll();
            while (e instanceof GenerationEvent.Text) {
                e = h.poll();
            }
            assertThat(e).isInstanceOfSatisfying(GenerationEvent.Failed.class,
                    f -> assertThat(f.error().getMessage()).contains("the engine stopped"));
            assertThat(engine.stats().running()).isFalse();
        }
    }
}
