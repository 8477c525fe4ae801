package ai.llmref.server.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import ai.llmref.llama.ContextParams;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Sampler;
import ai.llmref.llama.Vocabulary;
import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterAll;

/**
 * Fuzzes the engine's scheduler with a real model (stories260K): requests of every sampling kind,
 * with prefixes shared or not, log-probabilities, stop strings, and cancellations, submitted at
 * once or as earlier ones progress, so that they share decode steps in ever other compositions,
 * take over slots whose cache holds another prompt, have their prefix copied from slot to slot,
 * and leave while others run. What one request gets must not depend on what else ran beside it,
 * beyond the last bits of the arithmetic.
 *
 * <p>The input ({@link FuzzedDataProvider}) picks one of three engine configurations (text made
 * in the scheduler or during the next decode, one sampling thread or two, device sampling) and up
 * to {@link #MAX_REQUESTS} requests. Each request: a prompt (a prefix of one of three story
 * beginnings, then up to six tokens from the whole vocabulary), {@code max_tokens} 0 to
 * {@link #MAX_TOKENS}, up to two stop strings, a kind (greedy, with penalties, with a logit bias,
 * with a grammar; seeded draws with top-k/top-p/min-p, with DRY, with Mirostat; an unseeded draw;
 * greedy with a late grammar, also a required one, or with a reasoning budget; an embedding job
 * in the configuration with an embeddings context; {@code /infill}'s {@code n_indent} on some),
 * log-probabilities (0 to 3 alternatives, the
 * prompt's too), a cancellation (right away, or after some texts), and when it is submitted (at
 * once, or after the request before it has had some events). Before each input the engine's slots
 * are filled with fixed prompts, so that an input starts from the same caches.
 *
 * <p>Properties:
 * <ul>
 * <li>every request is accepted and ends with exactly one {@code Done} (none {@code Failed}),
 * nothing after it; the prompt's log-probabilities come once, first, one per prompt token, only
 * when asked; the engine is idle afterwards;</li>
 * <li>counts: the prompt's tokens, generated tokens at most {@code max_tokens} and exactly that
 * with {@code length}, the texts' tokens at most the generated ones, cached prompt tokens fewer
 * than the prompt's (none with the prompt's log-probabilities); {@code cancelled} only for a
 * request that was cancelled;</li>
 * <li>stop strings: the output contains none, and a stop sequence reported is one of them;</li>
 * <li>log-probabilities: each token's alternatives as many as asked, most likely first, none
 * above zero; under a plain greedy pick the token's is the most likely's;</li>
 * <li>late grammars: applied at most once, where their start first came, the output from there
 * what they allow; a required one's output never ends by the model's end before it applies;</li>
 * <li>embeddings: one vector of norm 1 per input, the same bits beside generation as alone;</li>
 * <li>a reasoning budget: where the output's first {@code budget} tokens have no full stop and it
 * goes on, the budget's end comes right after them (checked in the run alone);</li>
 * <li>line limits: every line after the first that holds text is indented as asked; an output they
 * end early ends by {@code length} at a line's start;</li>
 * <li>the engine closed part-way (one input in eight, read last): {@link Engine#close} returns
 * with every request submitted before it ended, done or failed as unavailable, and later ones are
 * refused as unavailable; the next input starts a new engine;</li>
 * <li>a request whose output is determined (greedy or seeded), run alone three times in a row, gets
 * the same output the last two times, bit for bit: tokens, log-probabilities, finish (nothing of
 * a request outlives it in its slot);</li>
 * <li>a greedy request gets the output it gets alone (text, finish reason, tokens, stop sequence;
 * one cancelled, a prefix of it), except where a near tie explains the difference: llama.cpp's
 * logits of a sequence differ in their last bits with the batch it is decoded in (see
 * {@link #unexplained}).</li>
 * </ul>
 *
 * <p>Without {@code JAZZER_FUZZ=1} it runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/engine/EngineScheduleFuzzTestInputs/schedule/}.
 */
class EngineScheduleFuzzTest {
    static final int SLOTS = 4;
    static final int SLOT_CONTEXT = 128;
    static final int MAX_REQUESTS = SLOTS * 2; // the slots and the queue: never a 429 (with at most 5 embedding jobs)
    static final int MAX_TOKENS = 24;
    static final int BASE_TOKENS = 40;
    static final long INPUT_LIMIT_NANOS = TimeUnit.SECONDS.toNanos(60);
    static final List<String> STOPS = List.of(".", " ", "e", "the", ", ", "\n", "Lily", "he", "ed", "a l");
    static final String[] BASES = {
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.",
        "One day, a big dog came to the garden. The dog was very happy and wanted to play with the ball.",
        "Tom had a red car. He liked to drive it around the house and make loud noises. His mom said",
    };
    static final String GRAMMAR = "root ::= [a-z ]+ \".\"";

    /** The configurations an input picks from: the scheduler's paths that differ. */
    static final EngineConfig[] CONFIGS = {
        // text made by the scheduler after each step, one sampling thread, small prompt chunks
        // and an embeddings context, whose inputs take turns with the steps
        new EngineConfig(SLOTS, SLOT_CONTEXT, 32, 32, 8, SLOTS, 1, 1, ContextParams.FlashAttention.AUTO, true, 1, false,
                ContextParams.KvCacheType.F16, ContextParams.KvCacheType.F16, false, false),
        // text made during the next decode (a token held back a step), the sampling pool's helper woken ahead
        new EngineConfig(SLOTS, SLOT_CONTEXT, 64, 32, 16, SLOTS, 1, 1, ContextParams.FlashAttention.AUTO, false, 2, true,
                ContextParams.KvCacheType.F16, ContextParams.KvCacheType.F16, false, true),
        // greedy picks (with at most a logit bias) on the device that computes the logits
        new EngineConfig(SLOTS, SLOT_CONTEXT, 32, 32, 8, SLOTS, 1, 1, ContextParams.FlashAttention.AUTO, false, 1, false,
                ContextParams.KvCacheType.F16, ContextParams.KvCacheType.F16, true, false),
    };

    private static LlamaModel model;
    private static Vocabulary vocab;
    private static int[][] bases;
    private static final Engine[] ENGINES = new Engine[CONFIGS.length];
    /** Outputs of requests run alone, by request (and configuration): the same request recurs as the fuzzer mutates. */
    private static final Map<String, Outcome> ALONE = new LinkedHashMap<>(256, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Outcome> eldest) {
            return size() > 4096;
        }
    };

    private static synchronized Engine engine(int config) {
        if (model == null) {
            model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
            vocab = model.vocabulary();
            budgetEnd = vocab.tokenize(BUDGET_END, false, false);
            bases = new int[BASES.length][];
            for (int i = 0; i < BASES.length; i++) {
                int[] t = vocab.tokenize(BASES[i], true, false);
                bases[i] = Arrays.copyOf(t, Math.min(t.length, BASE_TOKENS));
            }
        }
        if (ENGINES[config] == null) {
            ENGINES[config] = Engine.start(model, CONFIGS[config]);
        }
        return ENGINES[config];
    }

    /** What the inputs so far made happen (printed at the end: what a run covered). */
    private static final Map<String, Integer> SEEN = new TreeMap<>();

    private static void saw(String what) {
        synchronized (SEEN) {
            SEEN.merge(what, 1, Integer::sum);
        }
    }

    @AfterAll
    static synchronized void close() {
        System.out.println("EngineScheduleFuzzTest saw " + SEEN);
        for (int i = 0; i < ENGINES.length; i++) {
            if (ENGINES[i] != null) {
                ENGINES[i].close();
                ENGINES[i] = null;
            }
        }
        if (model != null) {
            model.close();
            model = null;
        }
    }

    /**
     * Request kinds: sampling settings, all but {@link #UNSEEDED} determining the output; greedy
     * with a late grammar (the way a tool call under "auto" is constrained once it begins), also
     * one required (no end before it applies); or an embedding (with configuration 0, which has
     * an embeddings context; greedy with the others).
     */
    static final int GREEDY = 0, PENALTIES = 1, BIAS = 2, SEEDED = 3, DRY = 4, MIROSTAT = 5, GRAMMAR_KIND = 6, UNSEEDED = 7,
            LATE = 8, LATE_REQUIRED = 9, EMBED = 10, BUDGET = 11;
    /**
     * {@link #BUDGET}: greedy with a reasoning budget, the output's first sentence standing for its
     * reasoning (reasoning until the text has a full stop); once the budget's tokens are spent
     * inside it, {@link #BUDGET_END} is written in the model's place.
     */
    static final String BUDGET_END = " The end.";
    private static int[] budgetEnd;
    /** The late grammar's start, and what it allows from there. */
    static final String LATE_START = "he";
    static final String LATE_GRAMMAR = "root ::= \"he\" [a-z ]* \".\"";
    static final java.util.regex.Pattern LATE_OUTPUT = java.util.regex.Pattern.compile("he[a-z ]*\\.?");

    /** One request of an input. */
    record Plan(int[] prompt, int maxTokens, List<String> stop, int kind, SamplingParams sampling, int logprobs,
                boolean promptLogprobs, int cancelAfter, int gate, int budget, int indent) {
        boolean determined() {
            return kind != UNSEEDED;
        }

        GenerationRequest request() {
            LateGrammar late = kind == LATE || kind == LATE_REQUIRED
                    ? new LateGrammar(LATE_GRAMMAR, List.of(LATE_START), null, null, kind == LATE_REQUIRED) : null;
            ReasoningBudget reasoning = kind == BUDGET ? new ReasoningBudget(budget, budgetEnd, FirstSentence::new) : null;
            return new GenerationRequest(prompt, maxTokens, stop, sampling, logprobs, promptLogprobs, late, reasoning, null,
                    indent > 0 ? new LineLimits(indent, 0) : null);
        }

        /** The same request with {@code /infill}'s {@code n_indent}. */
        Plan withIndent(int spaces) {
            return new Plan(prompt, maxTokens, stop, kind, sampling, logprobs, promptLogprobs, cancelAfter, gate, budget, spaces);
        }

        /** The same request with a reasoning budget of {@code tokens}. */
        Plan withBudget(int tokens) {
            return new Plan(prompt, maxTokens, stop, BUDGET, sampling, logprobs, promptLogprobs, cancelAfter, gate, tokens, indent);
        }

        boolean late() {
            return kind == LATE || kind == LATE_REQUIRED;
        }

        /**
         * The same request with the 20 most likely alternatives of each token (none with a late
         * grammar: the server never asks for both), without cancellation or gate: what it gets alone.
         */
        Plan alone() {
            return new Plan(prompt, maxTokens, stop, kind, sampling, late() || kind == EMBED ? -1 : GenerationRequest.MAX_TOP_LOGPROBS,
                    false, -1, 0, budget, indent);
        }

        String key() {
            return kind + "|" + budget + "|" + indent + "|" + Arrays.toString(prompt) + "|" + maxTokens + "|" + stop + "|" + sampling;
        }

        @Override
        public String toString() {
            return "Plan[prompt=" + Arrays.toString(prompt) + ", maxTokens=" + maxTokens + ", stop=" + stop + ", kind=" + kind
                    + ", sampling=" + sampling + ", logprobs=" + logprobs + ", promptLogprobs=" + promptLogprobs
                    + ", cancelAfter=" + cancelAfter + ", gate=" + gate + ", budget=" + budget + ", indent=" + indent + "]";
        }
    }

    /** {@link #BUDGET}'s reasoning: the output until its first full stop. */
    static final class FirstSentence implements ReasoningBudget.Tracker {
        private boolean ended;

        @Override
        public void push(String text) {
            ended |= text.contains(".");
        }

        @Override
        public boolean reasoning() {
            return !ended;
        }
    }

    /**
     * A reasoning budget at work, in the run alone (whose tokens are known): where the output has no
     * full stop in its first {@code budget} tokens and goes on, the budget's end comes right after them.
     */
    private static void checkBudget(Plan p, Outcome alone, String where) {
        List<TokenLogprob> tokens = alone.logprobs;
        java.io.ByteArrayOutputStream text = new java.io.ByteArrayOutputStream();
        int end = Math.min(p.budget(), tokens.size());
        for (int j = 0; j < end; j++) {
            text.writeBytes(tokens.get(j).bytes());
        }
        if (text.toString(java.nio.charset.StandardCharsets.UTF_8).contains(".") || alone.done.completionTokens() <= p.budget()) {
            return; // the reasoning ended (or the output did) within the budget
        }
        saw("reasoning budget spent");
        for (int j = p.budget(); j < Math.min(tokens.size(), p.budget() + budgetEnd.length); j++) {
            assertThat(tokens.get(j).token()).as(where + ": token " + j + " of a spent reasoning budget's end").isEqualTo(budgetEnd[j - p.budget()]);
        }
    }

    /** What a request got. */
    static final class Outcome {
        final StringBuilder text = new StringBuilder();
        int textTokens;
        int texts;
        int events;
        int promptEvents;
        List<TokenLogprob> prompt = List.of();
        final List<TokenLogprob> logprobs = new ArrayList<>();
        GenerationEvent.Done done;
        GenerationEvent.Failed failed;
        int constrained;
        /** Where the text was when the late grammar applied. */
        int constrainedAt = -1;
        java.util.concurrent.CompletableFuture<List<float[]>> embedding;
        boolean cancelled;
        /** Submitted after the engine was closed (and refused as unavailable). */
        boolean refused;
        final List<String> problems = new ArrayList<>();

        boolean ended() {
            return refused || (embedding != null ? embedding.isDone() : done != null || failed != null);
        }

        void take(GenerationEvent e) {
            if (ended()) {
                problems.add("an event after the end: " + e);
                return;
            }
            events++;
            switch (e) {
                case GenerationEvent.Text t -> {
                    if (t.text().isEmpty() && t.logprobs().isEmpty()) {
                        problems.add("an empty text");
                    }
                    if (t.tokens() < 0) {
                        problems.add("a text of " + t.tokens() + " tokens");
                    }
                    text.append(t.text());
                    textTokens += t.tokens();
                    logprobs.addAll(t.logprobs());
                    texts++;
                }
                case GenerationEvent.PromptLogprobs p -> {
                    if (texts > 0 || promptEvents > 0) {
                        problems.add("the prompt's log-probabilities after a text or twice");
                    }
                    promptEvents++;
                    prompt = p.tokens();
                }
                case GenerationEvent.Done d -> done = d;
                case GenerationEvent.Failed f -> failed = f;
                case GenerationEvent.Constrained c -> {
                    constrained++;
                    constrainedAt = text.length();
                }
            }
        }

        @Override
        public String toString() {
            return "Outcome[text=" + text + ", textTokens=" + textTokens + ", done=" + done + ", failed="
                    + (failed == null ? null : failed.error().kind() + " " + failed.error().getMessage()) + ", cancelled=" + cancelled
                    + ", problems=" + problems + "]";
        }
    }

    @FuzzTest(maxDuration = "60s")
    void schedule(FuzzedDataProvider data) {
        int config = data.consumeInt(0, CONFIGS.length - 1);
        Engine engine = engine(config);
        int count = data.consumeInt(1, MAX_REQUESTS);
        List<Plan> plans = new ArrayList<>();
        int embeddings = 0;
        for (int i = 0; i < count; i++) {
            // at most queue capacity + 1 embedding jobs at once: those the engine accepts whatever its timing
            Plan p = plan(data, CONFIGS[config].embeddings() && embeddings <= CONFIGS[config].queueCapacity());
            embeddings += p.kind() == EMBED ? 1 : 0;
            plans.add(p);
        }
        // read last, so that the inputs made before this kind keep their meaning: greedy requests given a reasoning budget
        for (int i = 0; i < plans.size() && data.remainingBytes() > 0; i++) {
            if (plans.get(i).kind() == GREEDY && data.consumeBoolean()) {
                plans.set(i, plans.get(i).withBudget(data.consumeInt(0, 8)));
            }
        }
        // and line limits (a code completion's n_indent) on requests without a late grammar
        for (int i = 0; i < plans.size() && data.remainingBytes() > 0; i++) {
            Plan p = plans.get(i);
            if (p.kind() != EMBED && !p.late() && data.consumeInt(0, 3) == 0) {
                plans.set(i, p.withIndent(data.consumeInt(1, 4)));
            }
        }
        // and, now and then, the engine closed part-way, as a server stops: read last as well
        int closeAfter = data.remainingBytes() > 0 && data.consumeInt(0, 7) == 0 ? data.consumeInt(0, 30) : -1;
        reset(engine);
        Outcome[] got = run(engine, plans, closeAfter);
        String context = "configuration " + config + ", requests " + plans + ", outcomes " + Arrays.toString(got);
        if (!engine.stats().running()) {
            synchronized (EngineScheduleFuzzTest.class) {
                ENGINES[config] = null; // the next input starts another
            }
            for (int i = 0; i < plans.size(); i++) {
                checkClosed(plans.get(i), got[i], context + ", request " + i);
            }
            saw("closed part-way");
            return;
        }
        idle(engine, context);
        saw("inputs");
        saw("configuration " + config);
        for (int i = 0; i < plans.size(); i++) {
            check(plans.get(i), got[i], context + ", request " + i);
            saw("kind " + plans.get(i).kind());
            saw(got[i].cancelled ? "cancelled" : "not cancelled");
            saw(got[i].constrained > 0 ? "constrained" : "free");
            if (got[i].done != null) {
                saw("finish " + got[i].done.reason());
                saw(got[i].done.cachedPromptTokens() > 0 ? "prefix reused" : "no prefix reused");
            }
        }
        for (int i = 0; i < plans.size(); i++) {
            Plan p = plans.get(i);
            Outcome o = got[i];
            if (!p.determined()) {
                continue;
            }
            if (p.kind() == EMBED) {
                if (!o.cancelled) {
                    // the embeddings context decodes one input at a time: its vectors are the same bits beside generation
                    Outcome alone = run(engine, List.of(p.alone()))[0];
                    idle(engine, context);
                    assertThat(alone.embedding.join().getFirst()).as(context + ", request " + i + ": beside others, then alone")
                            .containsExactly(o.embedding.join().getFirst());
                }
                continue;
            }
            Outcome alone;
            synchronized (ALONE) {
                alone = ALONE.get(config + "|" + p.key());
            }
            if (alone == null) {
                alone = alone(engine, p, context + ", request " + i);
                synchronized (ALONE) {
                    ALONE.put(config + "|" + p.key(), alone);
                }
            }
            if (p.kind() == BUDGET) {
                checkBudget(p, alone, context + ", request " + i + " alone: " + alone);
            }
            if (!p.sampling().isGreedy() || p.late()) {
                // a draw that a row's last bits move goes to any token the chain allows; and a near
                // tie is told by the alternatives, which the server never asks for with a late grammar
                continue;
            }
            String where = context + ", request " + i + ": with the others " + o + ", alone " + alone;
            boolean cancelled = o.done.reason() == FinishReason.CANCELLED;
            String a = alone.text.toString();
            String w = o.text.toString();
            boolean same = cancelled ? a.startsWith(w) : a.equals(w) && o.done.reason() == alone.done.reason()
                    && o.done.completionTokens() == alone.done.completionTokens()
                    && java.util.Objects.equals(o.done.stopSequence(), alone.done.stopSequence());
            saw(same ? "same beside others as alone" : "a near tie beside others");
            if (!same) {
                String why = unexplained(p, alone, a, w, cancelled);
                if (why != null) {
                    fail(why + ": " + where);
                }
            }
        }
    }

    /**
     * The request's output alone on the engine, with each token's 20 most likely alternatives. It
     * runs three times, one run after the other, in the same slot. The last two must be the same,
     * bit for bit: nothing of a request's sampling outlives it in its slot. (They decode the same
     * tokens the same way: the prompt's cached but for its last token, decoded alone. The first
     * decodes what it finds uncached of the prompt in chunks, and a token's logits computed in a
     * chunk differ in their last bits from the same token's decoded alone.)
     */
    private static Outcome alone(Engine engine, Plan p, String context) {
        Outcome[] runs = new Outcome[3];
        for (int k = 0; k < runs.length; k++) {
            runs[k] = run(engine, List.of(p.alone()))[0];
            idle(engine, context);
            check(p.alone(), runs[k], context + " alone");
        }
        Outcome[] twice = {runs[1], runs[2]};
        String where = context + ": alone, then alone again " + twice[0] + " " + twice[1];
        assertThat(twice[1].text.toString()).as(where).isEqualTo(twice[0].text.toString());
        assertThat(twice[1].done.reason()).as(where).isEqualTo(twice[0].done.reason());
        assertThat(twice[1].done.completionTokens()).as(where).isEqualTo(twice[0].done.completionTokens());
        assertThat(twice[1].done.stopSequence()).as(where).isEqualTo(twice[0].done.stopSequence());
        assertThat(twice[1].logprobs.size()).as(where).isEqualTo(twice[0].logprobs.size());
        for (int j = 0; j < twice[0].logprobs.size(); j++) {
            TokenLogprob x = twice[0].logprobs.get(j);
            TokenLogprob y = twice[1].logprobs.get(j);
            assertThat(y.token()).as(where + ", token " + j).isEqualTo(x.token());
            assertThat(y.logprob()).as(where + ", token " + j).isEqualTo(x.logprob());
        }
        return twice[0];
    }

    /**
     * Why the output beside others ({@code w}) differs from the output alone ({@code a}) in a way
     * the batch's arithmetic cannot explain, or null when it can. llama.cpp's logits of a sequence
     * depend, in their last bits, on what else is in the batch (a stream per sequence, micro-batches
     * of several tokens: 1e-6 at first, up to 1e-2 some tokens on, with stories260K on this CPU),
     * so where two tokens nearly tie a greedy pick may go different ways. A difference is explained
     * where it begins: at the token of the run alone that covers it, another of its 20 alternatives
     * begins the text beside others (or is begun by it) and scores within {@link #TIE} of the
     * token picked (its log-probability with the request's logit bias or presence and frequency
     * penalties). Where the output alone ended
     * with a stop string, the difference after it is not judged (the tokens of a stop string are not
     * handed out, so neither are their alternatives).
     */
    private static String unexplained(Plan p, Outcome alone, String a, String w, boolean cancelled) {
        int k = 0;
        while (k < a.length() && k < w.length() && a.charAt(k) == w.charAt(k)) {
            k++;
        }
        if (cancelled && k == w.length()) {
            return null;
        }
        if (k == a.length() && alone.done.stopSequence() != null) {
            return null; // alone ended with a stop string here: its tokens are not handed out, nor their alternatives
        }
        int at = a.codePointCount(0, k);
        List<TokenLogprob> tokens = alone.logprobs;
        for (int j = 0; j < tokens.size(); j++) {
            int from = tokens.get(j).textOffset();
            int to = j + 1 < tokens.size() ? tokens.get(j + 1).textOffset() : Integer.MAX_VALUE;
            if (from > at || to < at || to == at && j + 1 < tokens.size() && k < a.length()) {
                continue; // the difference is not in this token's text (nor at its end, where the text ends)
            }
            String rest = w.substring(Math.min(w.length(), a.offsetByCodePoints(0, Math.min(from, a.codePointCount(0, a.length())))));
            if (tied(p, tokens, j, rest)) {
                return null;
            }
        }
        return "the output beside others differs from the output alone at character " + k + " where no near tie explains it";
    }

    /** Log-probability gap under which two greedy candidates count as tied across batches. */
    static final float TIE = 0.05f;

    private static boolean tied(Plan p, List<TokenLogprob> tokens, int j, String rest) {
        TokenLogprob e = tokens.get(j);
        float picked = score(p, tokens, j, e.token(), e.logprob());
        for (TokenLogprob.Alternative alt : e.top()) {
            if (alt.token() == e.token()) {
                continue;
            }
            String text = alt.text();
            boolean begins = rest.startsWith(text) || text.startsWith(rest);
            float s = score(p, tokens, j, alt.token(), alt.logprob());
            if (begins && s != Float.NEGATIVE_INFINITY && Math.abs(s - picked) <= TIE) {
                return true;
            }
        }
        return false;
    }

    /** What a greedy chain compares for {@code token} at output position {@code j}: its log-probability with the request's bias and penalties. */
    private static float score(Plan p, List<TokenLogprob> tokens, int j, int token, float logprob) {
        SamplingParams s = p.sampling();
        float score = logprob + s.logitBias().getOrDefault(token, 0f);
        if (s.presencePenalty() != 0 || s.frequencyPenalty() != 0) {
            int count = 0;
            for (int i = Math.max(0, j - s.llama().penaltyWindow()); i < j; i++) {
                count += tokens.get(i).token() == token ? 1 : 0;
            }
            score -= count * s.frequencyPenalty() + (count > 0 ? s.presencePenalty() : 0);
        }
        return score;
    }

    private static Plan plan(FuzzedDataProvider data, boolean embeddings) {
        int[] base = bases[data.consumeInt(0, bases.length - 1)];
        int keep = data.consumeInt(1, base.length);
        int extra = data.consumeInt(0, 6);
        int[] prompt = Arrays.copyOf(base, keep + extra);
        for (int i = keep; i < prompt.length; i++) {
            prompt[i] = data.consumeInt(0, vocab.size() - 1);
        }
        int maxTokens = data.consumeInt(0, MAX_TOKENS);
        List<String> stop = new ArrayList<>();
        for (int n = data.consumeInt(0, 2); n > 0; n--) {
            String s = data.consumeBoolean() ? STOPS.get(data.consumeInt(0, STOPS.size() - 1)) : data.consumeAsciiString(3);
            if (!s.isEmpty()) {
                stop.add(s);
            }
        }
        int kind = data.consumeInt(GREEDY, EMBED);
        if (kind == EMBED && !embeddings) {
            kind = GREEDY;
        }
        long seed = data.consumeInt(0, 1000);
        SamplingParams sampling = switch (kind) {
            // presence and frequency penalties alone (no repetition penalty): a shift of the log-probabilities the test can repeat
            case PENALTIES -> new SamplingParams(0f, 1f, 0, 0f, null, 0.5f, 0.3f, Map.of(), null,
                    stages(1f, data.consumeInt(1, 32), 0f, 0));
            case BIAS -> {
                Map<Integer, Float> bias = new TreeMap<>();
                for (int n = data.consumeInt(1, 3); n > 0; n--) {
                    bias.put(data.consumeInt(0, vocab.size() - 1), data.consumeBoolean() ? Float.NEGATIVE_INFINITY : 5f);
                }
                yield new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, bias, null);
            }
            case SEEDED -> new SamplingParams(0.8f, 0.9f, 40, 0.05f, seed, 0f, 0f, Map.of(), null);
            case DRY -> new SamplingParams(1f, 1f, 0, 0f, seed, 0f, 0f, Map.of(), null, stages(1.1f, 64, 0.8f, 0));
            case MIROSTAT -> new SamplingParams(1f, 1f, 0, 0f, seed, 0f, 0f, Map.of(), null, stages(1f, 64, 0f, 2));
            case GRAMMAR_KIND -> new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(), GRAMMAR);
            case UNSEEDED -> new SamplingParams(1f, 1f, 0, 0f, null, 0f, 0f, Map.of(), null);
            default -> SamplingParams.greedy(); // GREEDY, LATE, LATE_REQUIRED, EMBED
        };
        int logprobs = kind == EMBED ? -1 : data.consumeInt(-1, 3);
        boolean promptLogprobs = logprobs >= 0 && data.consumeBoolean();
        int cancelAfter = data.consumeInt(0, 3) == 0 ? data.consumeInt(0, 6) : -1;
        int gate = data.consumeInt(0, 3);
        return new Plan(prompt, maxTokens, List.copyOf(stop), kind, sampling, logprobs, promptLogprobs, cancelAfter, gate, -1, 0);
    }

    /** llama.cpp's stages at their defaults but a repetition penalty over a window, DRY and Mirostat. */
    private static SamplingParams.LlamaStages stages(float repeatPenalty, int window, float dryMultiplier, int mirostat) {
        SamplingParams.LlamaStages d = SamplingParams.LlamaStages.DEFAULT;
        return new SamplingParams.LlamaStages(repeatPenalty, window, d.typicalP(), d.topNSigma(), d.xtcProbability(), d.xtcThreshold(),
                dryMultiplier, d.dryBase(), d.dryAllowedLength(), d.dryWindow(), d.dryBreakers(), mirostat, d.mirostatTau(),
                d.mirostatEta(), d.dynatempRange(), d.dynatempExponent(), d.minKeep(), Sampler.DEFAULT_ORDER, false);
    }

    /** Fills every slot's cache with a fixed prompt (four requests at once), so that each input starts alike. */
    private static void reset(Engine engine) {
        List<Plan> fill = new ArrayList<>();
        for (int i = 0; i < SLOTS; i++) {
            int[] prompt = {vocab.bos(), 300 + i, 301 + i, 302 + i, 303 + i, 304 + i};
            fill.add(new Plan(prompt, 4, List.of(), GREEDY, SamplingParams.greedy(), -1, false, -1, 0, -1, 0));
        }
        Outcome[] got = run(engine, fill);
        for (Outcome o : got) {
            assertThat(o.done).as("a reset request: %s", o).isNotNull();
        }
        idle(engine, "after the reset");
    }

    /** Submits the plans in order (each when its gate opens), cancels as planned, and collects every event. */
    private static Outcome[] run(Engine engine, List<Plan> plans) {
        return run(engine, plans, -1);
    }

    /**
     * A request's end when the engine was closed while it ran: refused after the close, or ended
     * (done as usual, or failed as unavailable: "the engine stopped").
     */
    private static void checkClosed(Plan p, Outcome o, String where) {
        String w = where + " (engine closed part-way): " + o;
        if (o.refused) {
            return;
        }
        if (o.embedding != null) {
            assertThat(o.embedding.isDone()).as(w).isTrue();
            if (o.embedding.isCompletedExceptionally() && !o.embedding.isCancelled()) {
                Throwable t = o.embedding.exceptionNow();
                assertThat(t).as(w).isInstanceOf(EngineException.class);
                assertThat(((EngineException) t).kind()).as(w).isEqualTo(EngineException.Kind.UNAVAILABLE);
                return;
            }
        } else if (o.failed != null) {
            assertThat(o.problems).as(w).isEmpty();
            assertThat(o.failed.error().kind()).as(w).isEqualTo(EngineException.Kind.UNAVAILABLE);
            return;
        }
        check(p, o, where);
    }

    /**
     * As {@link #run(Engine, List)}; with {@code closeAfter} 0 or more, the engine is closed once the
     * requests have had that many events: every request submitted must have ended when
     * {@link Engine#close} returns, and those submitted after it are refused as unavailable.
     */
    private static Outcome[] run(Engine engine, List<Plan> plans, int closeAfter) {
        Thread me = Thread.currentThread();
        RequestHandle[] handles = new RequestHandle[plans.size()];
        Outcome[] got = new Outcome[plans.size()];
        long deadline = System.nanoTime() + INPUT_LIMIT_NANOS;
        int submitted = 0;
        int events = 0;
        boolean closed = false;
        while (true) {
            boolean progressed = false;
            if (submitted < plans.size()) {
                Plan p = plans.get(submitted);
                Outcome before = submitted == 0 ? null : got[submitted - 1];
                if (before == null || p.gate() == 0 || before.ended() || before.events >= 2 * p.gate()) {
                    got[submitted] = new Outcome();
                    if (closed) {
                        assertThat(org.assertj.core.api.Assertions.catchThrowable(() -> {
                            if (p.kind() == EMBED) {
                                engine.embed(List.of(p.prompt()));
                            } else {
                                engine.submit(p.request());
                            }
                        })).as("a request after the engine closed").isInstanceOf(EngineException.class)
                                .extracting(t -> ((EngineException) t).kind()).isEqualTo(EngineException.Kind.UNAVAILABLE);
                        got[submitted].refused = true;
                        submitted++;
                        continue;
                    }
                    try {
                        if (p.kind() == EMBED) {
                            got[submitted].embedding = engine.embed(List.of(p.prompt()));
                        } else {
                            handles[submitted] = engine.submit(p.request());
                            handles[submitted].notify(me);
                        }
                    } catch (EngineException e) {
                        fail("request " + submitted + " refused (" + e.kind() + ": " + e.getMessage() + "): " + plans);
                    }
                    if (p.cancelAfter() == 0) {
                        cancel(handles[submitted], got[submitted]);
                    }
                    submitted++;
                    progressed = true;
                }
            }
            boolean all = submitted == plans.size();
            for (int i = 0; i < submitted; i++) {
                Outcome o = got[i];
                GenerationEvent e;
                while (handles[i] != null && (e = handles[i].poll()) != null) {
                    o.take(e);
                    events++;
                    progressed = true;
                }
                int after = plans.get(i).cancelAfter();
                if (after > 0 && !o.cancelled && (o.texts >= after || o.embedding != null)) {
                    cancel(handles[i], o);
                }
                all &= o.ended();
            }
            if (!closed && closeAfter >= 0 && events >= closeAfter) {
                long t0 = System.nanoTime();
                engine.close();
                closed = true;
                assertThat(System.nanoTime() - t0).as("the engine's close").isLessThan(TimeUnit.SECONDS.toNanos(10));
                for (int i = 0; i < submitted; i++) { // every request submitted before has ended
                    GenerationEvent e;
                    while (handles[i] != null && (e = handles[i].poll()) != null) {
                        got[i].take(e);
                    }
                    assertThat(got[i].ended()).as("request %d when the engine's close returned: %s", i, got[i]).isTrue();
                }
                continue;
            }
            if (all) {
                for (int i = 0; i < submitted; i++) {
                    GenerationEvent late = handles[i] == null ? null : handles[i].poll();
                    if (late != null) {
                        got[i].problems.add("an event after the end: " + late);
                    }
                }
                return got;
            }
            if (System.nanoTime() > deadline) {
                fail("requests not ended within " + TimeUnit.NANOSECONDS.toSeconds(INPUT_LIMIT_NANOS) + " s: " + plans + " "
                        + Arrays.toString(got) + " " + engine.stats());
            }
            if (!progressed) {
                LockSupport.parkNanos(200_000);
            }
        }
    }

    /** A generation's cancellation, or an embedding's caller giving up (its future cancelled). */
    private static void cancel(RequestHandle h, Outcome o) {
        if (h != null) {
            h.cancel();
        } else {
            o.embedding.cancel(false);
        }
        o.cancelled = true;
    }

    /** Waits until the engine has nothing queued or running. */
    private static void idle(Engine engine, String context) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!engine.idle()) {
            if (System.nanoTime() > deadline) {
                fail("the engine is not idle after every request ended: " + engine.stats() + "; " + context);
            }
            LockSupport.parkNanos(100_000);
        }
        Engine.Stats s = engine.stats();
        assertThat(s.busySlots()).as(context).isZero();
        assertThat(s.queued()).as(context).isZero();
        assertThat(s.running()).as(context).isTrue();
    }

    private static void check(Plan p, Outcome o, String where) {
        String w = where + ": " + o;
        if (p.kind() == EMBED) {
            if (o.embedding.isCancelled()) {
                assertThat(o.cancelled).as(w).isTrue();
                return;
            }
            List<float[]> vectors = o.embedding.join();
            assertThat(vectors).as(w).hasSize(1);
            double norm = 0;
            for (float f : vectors.getFirst()) {
                assertThat(Float.isFinite(f)).as(w).isTrue();
                norm += (double) f * f;
            }
            assertThat(Math.sqrt(norm)).as(w + ": an embedding's norm").isCloseTo(1.0, org.assertj.core.data.Offset.offset(1e-3));
            return;
        }
        assertThat(o.problems).as(w).isEmpty();
        assertThat(o.failed).as(w).isNull();
        GenerationEvent.Done d = o.done;
        assertThat(d.promptTokens()).as(w).isEqualTo(p.prompt().length);
        if (d.reason() == FinishReason.CANCELLED) {
            assertThat(o.cancelled).as(w + ": cancelled, but never asked").isTrue();
        }
        assertThat(d.completionTokens()).as(w).isBetween(0, p.maxTokens());
        if (d.reason() == FinishReason.LENGTH && d.completionTokens() < p.maxTokens()) {
            // only a line limit ends an output by length before max_tokens: at a line's start, its indentation kept
            assertThat(p.indent()).as(w + ": length before max_tokens").isPositive();
            String tail = o.text.substring(o.text.lastIndexOf("\n") + 1);
            assertThat(o.text.indexOf("\n")).as(w).isGreaterThanOrEqualTo(0);
            assertThat(tail.isBlank() && tail.chars().allMatch(c -> c == ' ' || c == '\t')).as(w + ": a line limit's cut").isTrue();
            saw("a line limit reached");
        }
        assertThat(o.textTokens).as(w).isLessThanOrEqualTo(d.completionTokens());
        assertThat(d.cachedPromptTokens()).as(w).isBetween(0, Math.max(0, p.prompt().length - 1));
        if (p.promptLogprobs()) {
            assertThat(d.cachedPromptTokens()).as(w).isZero();
        }
        String text = o.text.toString();
        assertThat(o.constrained).as(w).isLessThanOrEqualTo(p.late() ? 1 : 0);
        int start = text.indexOf(LATE_START);
        if (o.constrained == 1) {
            // applied where its start first came, and from there the output is what the grammar allows
            assertThat(start).as(w).isGreaterThanOrEqualTo(0).isLessThanOrEqualTo(o.constrainedAt);
            assertThat(LATE_OUTPUT.matcher(text.substring(start)).matches()).as(w + ": the output after the late grammar applied").isTrue();
        } else if (p.kind() == LATE_REQUIRED && d.reason() == FinishReason.STOP) {
            assertThat(d.stopSequence()).as(w + ": a required late grammar's output ended before it applied").isNotNull();
        }
        if (p.indent() > 0) {
            // every line after the first that the output holds text of is indented at least as asked
            String[] lines = text.split("\n", -1);
            for (int i = 1; i < lines.length; i++) {
                int spaces = 0;
                while (spaces < lines[i].length() && (lines[i].charAt(spaces) == ' ' || lines[i].charAt(spaces) == '\t')) {
                    spaces++;
                }
                if (spaces < lines[i].length()) {
                    assertThat(spaces).as(w + ": line " + i + " indented less than n_indent").isGreaterThanOrEqualTo(p.indent());
                }
            }
            saw(lines.length > 1 ? "indented lines" : "one line");
        }
        // stop strings apply until a late grammar does
        String free = o.constrained == 1 ? text.substring(0, start) : text;
        for (String s : p.stop()) {
            assertThat(free).as(w + ": a stop string in the output").doesNotContain(s);
        }
        if (d.stopSequence() != null) {
            assertThat(d.reason()).as(w).isEqualTo(FinishReason.STOP);
            assertThat(p.stop()).as(w).contains(d.stopSequence());
        }
        if (p.logprobs() < 0) {
            assertThat(o.logprobs).as(w).isEmpty();
        } else {
            assertThat(o.logprobs.size()).as(w).isLessThanOrEqualTo(d.completionTokens());
            int offset = 0;
            for (TokenLogprob t : o.logprobs) {
                assertThat(t.top()).as(w).hasSize(p.logprobs());
                assertThat(t.logprob()).as(w).isLessThanOrEqualTo(1e-6f);
                assertThat(t.textOffset()).as(w).isGreaterThanOrEqualTo(offset);
                offset = t.textOffset();
                for (int k = 1; k < t.top().size(); k++) {
                    assertThat(t.top().get(k).logprob()).as(w).isLessThanOrEqualTo(t.top().get(k - 1).logprob());
                }
                if (!t.top().isEmpty()) {
                    assertThat(t.logprob()).as(w).isLessThanOrEqualTo(t.top().getFirst().logprob());
                    if (p.kind() == GREEDY) {
                        assertThat(t.logprob()).as(w + ": a greedy pick that is not the most likely").isEqualTo(t.top().getFirst().logprob());
                    }
                }
            }
        }
        if (p.promptLogprobs() && d.reason() != FinishReason.CANCELLED) {
            assertThat(o.promptEvents).as(w).isEqualTo(1);
        }
        if (!p.promptLogprobs()) {
            assertThat(o.promptEvents).as(w).isZero();
        }
        if (o.promptEvents == 1) {
            assertThat(o.prompt).as(w).hasSize(p.prompt().length);
            for (int i = 0; i < p.prompt().length; i++) {
                TokenLogprob t = o.prompt.get(i);
                assertThat(t.token()).as(w).isEqualTo(p.prompt()[i]);
                if (i == 0) {
                    assertThat(t.logprob()).as(w).isNaN();
                } else {
                    assertThat(t.logprob()).as(w).isLessThanOrEqualTo(1e-6f);
                    assertThat(t.top()).as(w).hasSize(p.logprobs());
                }
            }
        }
    }
}
