package ai.llmref.llama;

import static ai.llmref.llama.TestModels.argmax;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** A pool's picks are exactly what each sampler's own {@link Sampler#sample} picks, with any number of threads. */
class SamplingPoolTest extends StoriesModelTest {
    private static final String[] PROMPTS = {"Once upon a time", "Tom had a big", "The cat", "Lily and Ben went to the",
        "One day, a little girl", "The sun was", "Sam liked to play with his", "There was a big red", "Mom said",
        "The dog ran to the", "Anna found a", "The bird sang"};

    /** One decode of every prompt, each in its own sequence; returns each prompt's output position. */
    private static int[] decodeAll(LlamaContext ctx, Batch batch, Vocabulary v) {
        int[] outputs = new int[PROMPTS.length];
        batch.clear();
        for (int s = 0; s < PROMPTS.length; s++) {
            int[] prompt = v.tokenize(PROMPTS[s], true, false);
            for (int i = 0; i < prompt.length; i++) {
                if (i == prompt.length - 1) {
                    outputs[s] = batch.size();
                }
                batch.add(prompt[i], i, s, i == prompt.length - 1);
            }
        }
        ctx.decode(batch);
        return outputs;
    }

    /**
     * Greedy, greedy with logit bias (the in-place paths) and llama.cpp chains (seeded draws, with a
     * top-p too, penalties, a grammar), in turn: the chains run on the helpers as well.
     */
    private static Sampler sampler(Vocabulary v, int i, float[] logits) {
        Sampler.Builder b = Sampler.builder(v);
        switch (i % 6) {
            case 1 -> b.logitBias(argmax(logits), Float.NEGATIVE_INFINITY).logitBias(7, 3.5f);
            case 2 -> b.temperature(0.9f).seed(1000 + i);
            case 3 -> b.penalties(64, 1.2f, 0f, 0f);
            case 4 -> b.topP(0.9f).temperature(1.1f).seed(2000 + i);
            case 5 -> b.grammar("root ::= [a-z ]+", "root");
            default -> { }
        }
        return b.build();
    }

    /** What each sampler picks alone at its output: what a pool call must give it. */
    private static int[] picksAlone(LlamaContext ctx, Sampler[] samplers, int[] outputs) {
        int[] picks = new int[samplers.length];
        for (int i = 0; i < samplers.length; i++) {
            picks[i] = samplers[i].sample(ctx, outputs[i]);
        }
        return picks;
    }

    /** One pool call over every sampler, with arrays of its own: no errors, each sampler's own pick. */
    private static int[] sampleChecked(SamplingPool pool, LlamaContext ctx, Sampler[] samplers, int[] outputs, int[] expected,
                                       String what) {
        int n = samplers.length;
        int[] tokens = new int[n];
        RuntimeException[] errors = new RuntimeException[n];
        pool.sample(ctx, samplers, outputs, n, tokens, errors);
        assertThat(errors).as(what).containsOnlyNulls();
        assertThat(tokens).as(what).containsExactly(expected);
        return tokens;
    }

    /** How many of the first n samplers of {@link #sampler} pick by argmax alone. */
    private static int argmaxRows(int n) {
        int rows = 0;
        for (int i = 0; i < n; i++) {
            rows += i % 6 <= 1 ? 1 : 0;
        }
        return rows;
    }

    @Test
    void picksWhatEachSamplerPicksAloneAndLeavesTheLogitsAsTheyWere() {
        Vocabulary v = model.vocabulary();
        int n = PROMPTS.length;
        try (LlamaContext ctx = model.newContext(TestModels.small(n)); Batch batch = ctx.newBatch(256)) {
            int[] outputs = decodeAll(ctx, batch, v);
            float[][] before = new float[n][];
            int[] expected = new int[n];
            for (int i = 0; i < n; i++) {
                before[i] = ctx.logits(outputs[i]);
                try (Sampler alone = sampler(v, i, before[i])) {
                    expected[i] = alone.sample(ctx, outputs[i]);
                }
            }
            assertThat(java.util.Arrays.stream(expected).distinct().count()).as("the prompts give different tokens").isGreaterThan(3);
            for (int threads : new int[] {1, 2, 4, 7}) {
                List<Sampler> samplers = new ArrayList<>();
                try (SamplingPool pool = new SamplingPool(threads)) {
                    for (int i = 0; i < n; i++) {
                        samplers.add(sampler(v, i, before[i]));
                    }
                    int[] tokens = new int[n];
                    RuntimeException[] errors = new RuntimeException[n];
                    pool.sample(ctx, samplers.toArray(Sampler[]::new), outputs, n, tokens, errors);
                    assertThat(errors).as(threads + " threads").containsOnlyNulls();
                    assertThat(tokens).as(threads + " threads").containsExactly(expected);
                    // the call's own account: every row sampled on the host (argmaxes and chains), by the
                    // calling thread and at most min(threads, work / 2, rows) - 1 woken helpers (those that
                    // start before the last row is taken), a chain counting as CHAIN_UNITS argmaxes
                    int argmaxes = argmaxRows(n);
                    int units = argmaxes + SamplingPool.CHAIN_UNITS * (n - argmaxes);
                    assertThat(pool.lastRows()).as(threads + " threads").isEqualTo(n);
                    assertThat(pool.lastHelpers()).as(threads + " threads")
                            .isBetween(0, threads == 1 ? 0 : Math.min(Math.min(threads, (units + 1) / 2), n) - 1);
                    assertThat(pool.lastPickNanos()).as(threads + " threads").isPositive();
                    if (pool.lastHelpers() == 0) {
                        assertThat(pool.lastHelperStartNanos()).isZero();
                    } else {
                        assertThat(pool.lastHelperStartNanos()).isNotNegative();
                    }
                } finally {
                    samplers.forEach(Sampler::close);
                }
                for (int i = 0; i < n; i++) {
                    assertThat(ctx.logits(outputs[i])).as("logits of sequence %d restored", i).containsExactly(before[i]);
                }
            }
        }
    }

    /**
     * With fewer draws and chains than threads, each plain draw is cut into chunks that the threads
     * share: the picks stay those of each sampler alone, call after call (the generators advance
     * alike), with a chunk whose every token is banned, a boosted token and an uneven last chunk.
     */
    @Test
    void aPlainDrawSplitIntoChunksPicksWhatItsSamplerPicksAlone() {
        Vocabulary v = model.vocabulary();
        int n = 3;
        try (LlamaContext ctx = model.newContext(TestModels.small(PROMPTS.length)); Batch batch = ctx.newBatch(256)) {
            int[] outputs = java.util.Arrays.copyOf(decodeAll(ctx, batch, v), n);
            for (int chunk : new int[] {64, 100}) {
                for (int threads : new int[] {2, 4}) {
                    Sampler[] pooled = splitSamplers(v);
                    Sampler[] alone = splitSamplers(v);
                    try (SamplingPool pool = new SamplingPool(threads, chunk)) {
                        for (Sampler s : pooled) {
                            assertThat(s.plainDraw() != null || s.argmaxOnly()).isTrue();
                        }
                        List<Integer> drawn = new ArrayList<>();
                        for (int call = 0; call < 40; call++) {
                            int[] tokens = new int[n];
                            RuntimeException[] errors = new RuntimeException[n];
                            pool.sample(ctx, pooled, outputs, n, tokens, errors);
                            assertThat(errors).containsOnlyNulls();
                            for (int i = 0; i < n; i++) {
                                assertThat(tokens[i]).as("call %d, sequence %d, chunks of %d, %d threads", call, i, chunk, threads)
                                        .isEqualTo(alone[i].sample(ctx, outputs[i]));
                            }
                            assertThat(tokens[1]).as("banned").isGreaterThanOrEqualTo(100);
                            drawn.add(tokens[0]);
                            assertThat(pool.lastRows()).isEqualTo(n);
                            // two draws: cut into chunks only when there are more threads than draws
                            assertThat(pool.lastSplitDraws()).isEqualTo(threads > 2 ? 2 : 0);
                        }
                        assertThat(drawn.stream().distinct().count()).as("draws, not one token").isGreaterThan(3);
                    } finally {
                        for (int i = 0; i < n; i++) {
                            pooled[i].close();
                            alone[i].close();
                        }
                    }
                }
            }
        }
    }

    /** A plain draw at 1.3, one that bans tokens 0 to 99 (whole chunks of 64) and boosts one, and a greedy pick. */
    private static Sampler[] splitSamplers(Vocabulary v) {
        Sampler.Builder banned = Sampler.builder(v).temperature(0.7f).seed(99).logitBias(300, 2.5f);
        for (int t = 0; t < 100; t++) {
            banned.logitBias(t, Float.NEGATIVE_INFINITY);
        }
        return new Sampler[] {Sampler.builder(v).temperature(1.3f).seed(5).build(), banned.build(), Sampler.greedy(v)};
    }

    /**
     * Helpers woken for one call may start only after it returned (they were parked, the rows all
     * taken): they must then take nothing. Each call gets its own token array, checked again after
     * the helpers had time to run: no call's tokens change after it returned.
     */
    @Test
    void helpersThatWakeLateTakeNothingFromLaterCalls() throws InterruptedException {
        Vocabulary v = model.vocabulary();
        int n = PROMPTS.length;
        try (LlamaContext ctx = model.newContext(TestModels.small(n)); Batch batch = ctx.newBatch(256);
                SamplingPool pool = new SamplingPool(4)) {
            int[] outputs = decodeAll(ctx, batch, v);
            Sampler[] samplers = IntStream.range(0, n).mapToObj(i -> Sampler.greedy(v)).toArray(Sampler[]::new);
            int[] expected = picksAlone(ctx, samplers, outputs);
            try {
                List<int[]> calls = new ArrayList<>();
                for (int call = 0; call < 300; call++) {
                    if (call % 3 == 0) {
                        Thread.sleep(0, 200_000); // let the helpers park, so that some wake late
                    }
                    calls.add(sampleChecked(pool, ctx, samplers, outputs, expected, "call " + call));
                }
                Thread.sleep(50);
                for (int call = 0; call < calls.size(); call++) {
                    assertThat(calls.get(call)).as("call %d after the helpers ran", call).containsExactly(expected);
                }
            } finally {
                for (Sampler s : samplers) {
                    s.close();
                }
            }
        }
    }

    /**
     * Helpers woken ahead of the rows ({@link SamplingPool#wakeAhead}, as the server does while the
     * device decodes; a sleep stands in for the device here) take part in the call that follows and
     * change nothing of its picks or of any earlier call's; those for which no call comes go back to
     * sleep, and a {@link SamplingPool#forEachRow} call in between sends them back at once.
     */
    @Test
    void helpersWokenAheadTakeRowsAndThoseForWhichNoneComeGoBack() throws InterruptedException {
        Vocabulary v = model.vocabulary();
        int n = PROMPTS.length;
        try (LlamaContext ctx = model.newContext(TestModels.small(n)); Batch batch = ctx.newBatch(256);
                SamplingPool pool = new SamplingPool(4)) {
            int[] outputs = decodeAll(ctx, batch, v);
            Sampler[] samplers = IntStream.range(0, n)
                    .mapToObj(i -> i % 2 == 0 ? Sampler.greedy(v) : Sampler.builder(v).logitBias(3, -2f).build()).toArray(Sampler[]::new);
            int[] expected = picksAlone(ctx, samplers, outputs);
            try {
                List<int[]> calls = new ArrayList<>();
                int joinedAhead = 0;
                // 150 calls, more while no helper woken ahead has taken part: on a loaded 2-core
                // machine (a CI run beside other builds) a helper may not run before the caller has
                // taken every row, many calls in a row
                for (int call = 0; call < 150 || joinedAhead == 0 && call < 3000; call++) {
                    int woken = pool.wakeAhead(System.nanoTime() + 2_000_000, n);
                    assertThat(woken).as("at most the helpers the call would wake for %d argmaxes", n).isBetween(0, 3);
                    Thread.sleep(2);
                    calls.add(sampleChecked(pool, ctx, samplers, outputs, expected, "call " + call));
                    assertThat(pool.lastHelpersAhead()).isBetween(0, pool.lastHelpers());
                    joinedAhead += pool.lastHelpersAhead();
                }
                assertThat(joinedAhead).as("helpers woken ahead that took part").isPositive();
                // woken for rows 2 s away, then a forEachRow call: the helpers waiting are sent back (its
                // parts run on their threads) instead of holding its parts until they give up
                pool.wakeAhead(System.nanoTime() + 2_000_000_000L, n);
                float[][] seen = new float[n][];
                long before = System.nanoTime();
                pool.forEachRow(ctx, outputs, n, (i, row) -> seen[i] = row.toArray());
                long took = System.nanoTime() - before;
                for (int i = 0; i < n; i++) {
                    assertThat(seen[i]).isEqualTo(ctx.logits(outputs[i]));
                }
                assertThat(took).as("forEachRow waited for the helpers woken ahead to give up").isLessThan(2_000_000_000L);
                // woken for rows that never come: they give up and the next call wakes helpers as usual
                assertThat(pool.wakeAhead(System.nanoTime() + 1_000_000, n)).isBetween(0, 3);
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (pool.standingHelpers() > 0 && System.nanoTime() < deadline) {
                    Thread.sleep(1);
                }
                assertThat(pool.standingHelpers()).as("helpers still waiting 10 s later").isZero();
                sampleChecked(pool, ctx, samplers, outputs, expected, "the call after the helpers gave up");
                assertThat(pool.lastHelpersAhead()).isZero();
                Thread.sleep(20);
                for (int call = 0; call < calls.size(); call++) {
                    assertThat(calls.get(call)).as("call %d after the helpers ran", call).containsExactly(expected);
                }
                // nothing is woken too close to the rows, for too few rows, or without helpers
                assertThat(pool.wakeAhead(System.nanoTime() + SamplingPool.MIN_AHEAD_NANOS / 2, n)).isZero();
                assertThat(pool.wakeAhead(System.nanoTime() + 5_000_000, SamplingPool.MIN_PARALLEL_ROWS - 1)).isZero();
                try (SamplingPool alone = new SamplingPool(1)) {
                    assertThat(alone.wakeAhead(System.nanoTime() + 5_000_000, n)).isZero();
                }
            } finally {
                for (Sampler s : samplers) {
                    s.close();
                }
            }
            pool.close();
            assertThatThrownBy(() -> pool.wakeAhead(System.nanoTime() + 5_000_000, n))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        }
    }

    @Test
    void aFailingSequenceGetsItsErrorAndTheOthersStillTheirTokens() {
        Vocabulary v = model.vocabulary();
        int n = PROMPTS.length;
        try (LlamaContext ctx = model.newContext(TestModels.small(n)); Batch batch = ctx.newBatch(256);
             SamplingPool pool = new SamplingPool(4)) {
            int[] outputs = decodeAll(ctx, batch, v);
            int[] indices = outputs.clone();
            indices[5] = outputs[5] - 1; // a prompt position without an output
            Sampler[] samplers = new Sampler[n];
            try {
                for (int i = 0; i < n; i++) {
                    samplers[i] = Sampler.greedy(v);
                }
                int[] tokens = new int[n];
                RuntimeException[] errors = new RuntimeException[n];
                pool.sample(ctx, samplers, indices, n, tokens, errors);
                assertThat(errors[5]).isInstanceOf(InvalidInputException.class).hasMessageContaining("has no output");
                assertThat(tokens[5]).isEqualTo(-1);
                for (int i = 0; i < n; i++) {
                    if (i != 5) {
                        assertThat(errors[i]).isNull();
                        assertThat(tokens[i]).isEqualTo(argmax(ctx.logits(outputs[i])));
                    }
                }
                Sampler[] twice = samplers.clone();
                twice[3] = twice[2];
                assertThatThrownBy(() -> pool.sample(ctx, twice, outputs, n, tokens, errors))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("given twice");
                assertThatThrownBy(() -> pool.sample(ctx, samplers, outputs, n + 1, tokens, errors))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not fit");
                AtomicReference<Throwable> offThread = new AtomicReference<>();
                Thread t = Thread.ofPlatform().start(() -> {
                    try {
                        pool.sample(ctx, samplers, outputs, n, tokens, errors);
                    } catch (Throwable e) {
                        offThread.set(e);
                    }
                });
                t.join();
                assertThat(offThread.get()).isInstanceOf(IllegalStateException.class).hasMessageContaining("belongs to thread");
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            } finally {
                for (Sampler s : samplers) {
                    if (s != null) {
                        s.close();
                    }
                }
            }
            pool.close();
            assertThatThrownBy(() -> pool.sample(ctx, new Sampler[0], new int[0], 0, new int[0], new RuntimeException[0]))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        }
        assertThatThrownBy(() -> new SamplingPool(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new SamplingPool(257)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void forEachRowHandsEveryTaskItsRowOnAnyNumberOfThreadsAndKeepsNone() {
        Vocabulary v = model.vocabulary();
        int n = PROMPTS.length;
        try (LlamaContext ctx = model.newContext(TestModels.small(n)); Batch batch = ctx.newBatch(256)) {
            int[] outputs = decodeAll(ctx, batch, v);
            for (int threads : new int[] {1, 2, 5}) {
                try (SamplingPool pool = new SamplingPool(threads)) {
                    float[][] seen = new float[n][];
                    Set<String> workers = ConcurrentHashMap.newKeySet();
                    AtomicReference<LogitsRow> kept = new AtomicReference<>();
                    pool.forEachRow(ctx, outputs, n, (i, row) -> {
                        seen[i] = row.toArray();
                        assertThat(row.logit(7)).isEqualTo(seen[i][7]);
                        assertThat(row.size()).isEqualTo(v.size());
                        workers.add(Thread.currentThread().getName());
                        kept.set(row);
                    });
                    for (int i = 0; i < n; i++) {
                        assertThat(seen[i]).as("row %d, %d threads", i, threads).isEqualTo(ctx.logits(outputs[i]));
                    }
                    assertThat(workers).as("threads that took rows").hasSize(threads);
                    // a row kept past the call is closed, not memory the next decode reuses
                    assertThatThrownBy(() -> kept.get().logit(0)).isInstanceOf(IllegalStateException.class);
                    assertThatThrownBy(() -> kept.get().logSumExp()).isInstanceOf(IllegalStateException.class);
                    assertThatThrownBy(() -> kept.get().top(3, new int[3], new float[3])).isInstanceOf(IllegalStateException.class);
                    // a failing task fails the call, once every task is done
                    assertThatThrownBy(() -> pool.forEachRow(ctx, outputs, n, (i, row) -> {
                        if (i == n - 1) {
                            throw new IllegalArgumentException("task " + i);
                        }
                    })).isInstanceOf(IllegalArgumentException.class).hasMessage("task " + (n - 1));
                    assertThatThrownBy(() -> pool.forEachRow(ctx, new int[] {outputs[0] + 1}, 1, (i, row) -> { }))
                            .as("a position without logits").isInstanceOf(RuntimeException.class);
                }
            }
        }
    }
}
