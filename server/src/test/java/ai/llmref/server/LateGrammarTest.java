package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.server.engine.Engine;
import ai.llmref.server.engine.FinishReason;
import ai.llmref.server.engine.GenerationEvent;
import ai.llmref.server.engine.GenerationRequest;
import ai.llmref.server.engine.LateGrammar;
import ai.llmref.server.engine.RequestHandle;
import ai.llmref.server.engine.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * A grammar that applies from a point of the output on ({@link LateGrammar}), on the engine of a
 * real server (stories260K, greedy, its end of text banned so that a free output runs its whole
 * length): the output before the point is what the model writes without the grammar; from there
 * the grammar rules, ends the output, and stop strings no longer cut it; a grammar that does not
 * allow the text at the point leaves the output free. And a grammar never picks a token whose text
 * it reads otherwise than the output shows it.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LateGrammarTest {
    private static final int[] PROMPT = {1, 300, 301, 302, 303};
    private static final int LENGTH = 48;
    private TestServer server;
    private Engine engine;
    /** The free output, and a word of it (letters, after a space) some way in. */
    private String free;
    private String word;
    private int wordAt;

    @BeforeAll
    void start() throws Exception {
        server = TestServer.start(Map.of("engine.slots", "2"));
        engine = server.server.engine();
        Result r = run(null, List.of());
        assertThat(r.reason).isEqualTo(FinishReason.LENGTH);
        assertThat(r.tokens).as("the Text events count every generated token").isEqualTo(LENGTH);
        free = r.text;
        Matcher m = Pattern.compile(" [a-zA-Z]{3,}").matcher(free);
        assertThat(m.find(12)).as("a word in " + free).isTrue();
        word = m.group();
        wordAt = m.start();
        assertThat(free.indexOf(word)).as("the word's first occurrence").isEqualTo(wordAt);
    }

    @AfterAll
    void stop() {
        server.close();
    }

    /** @param tokens the generated tokens the Text events counted, together */
    private record Result(String text, FinishReason reason, String stopSequence, int constrainedAt, int tokens) {}

    private Result run(LateGrammar late, List<String> stop) throws Exception {
        SamplingParams greedy = new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(2, -100f), null);
        return run(new GenerationRequest(PROMPT, LENGTH, stop, greedy, -1, false, late));
    }

    private Result run(GenerationRequest request) throws Exception {
        return collect(engine.submit(request));
    }

    private Result collect(RequestHandle h) throws Exception {
        StringBuilder text = new StringBuilder();
        int constrainedAt = -1;
        int tokens = 0;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        List<GenerationEvent> seen = new ArrayList<>();
        while (System.nanoTime() < deadline) {
            GenerationEvent e = h.poll();
            if (e == null) {
                Thread.sleep(1);
                continue;
            }
            seen.add(e);
            switch (e) {
                case GenerationEvent.Text t -> {
                    text.append(t.text());
                    tokens += t.tokens();
                }
                case GenerationEvent.Constrained c -> {
                    assertThat(constrainedAt).as("one Constrained event").isEqualTo(-1);
                    constrainedAt = text.length();
                }
                case GenerationEvent.Done d -> {
                    assertThat(tokens).isLessThanOrEqualTo(d.completionTokens());
                    return new Result(text.toString(), d.reason(), d.stopSequence(), constrainedAt, tokens);
                }
                case GenerationEvent.Failed f -> throw f.error();
                case GenerationEvent.PromptLogprobs p -> { }
            }
        }
        throw new AssertionError("no end within 30 s: " + seen);
    }

    private String grammarFromWord() {
        return "root ::= \"" + word + "\" [^0-9]{0,12} [0-9]";
    }

    @Test
    void fromItsLiteralTheGrammarRulesAndEndsTheOutput() throws Exception {
        Result r = run(new LateGrammar(grammarFromWord(), word, null), List.of());
        assertThat(r.text).as("free before the word, then the grammar: " + free).startsWith(free.substring(0, wordAt + word.length()))
                .matches(Pattern.quote(free.substring(0, wordAt)) + Pattern.quote(word) + "[^0-9]{0,12}[0-9]");
        assertThat(r.reason).as("the grammar ended it (its end allows only the end of text)").isEqualTo(FinishReason.STOP);
        assertThat(r.stopSequence).isNull();
        assertThat(r.constrainedAt).as("told after the text that holds the word").isGreaterThanOrEqualTo(wordAt + word.length());
    }

    /**
     * Several literals (a format's openings): the grammar applies from the one that occurs first,
     * whichever of them it is in the list; one that never occurs changes nothing.
     */
    @Test
    void ofSeveralLiteralsTheFirstToOccurBeginsTheGrammar() throws Exception {
        String later = free.substring(wordAt + word.length() + 1, wordAt + word.length() + 4);
        String grammar = "root ::= (\"" + word + "\" | \"" + later.replace("\"", "\\\"") + "\") [^0-9]{0,12} [0-9]";
        for (List<String> literals : List.of(List.of(later, word), List.of("#never#", word, later))) {
            Result r = run(new LateGrammar(grammar, literals, null, null, false), List.of());
            assertThat(r.text).as(literals.toString()).matches(Pattern.quote(free.substring(0, wordAt)) + Pattern.quote(word) + "[^0-9]{0,12}[0-9]");
            assertThat(r.constrainedAt).isGreaterThanOrEqualTo(wordAt + word.length());
        }
        assertThatThrownBy(() -> new LateGrammar(grammar, List.of(), null, null, false)).isInstanceOf(IllegalArgumentException.class);
    }

    /**
     * The chain that takes over holds the history the slot's chain had (the prompt's last tokens
     * and the whole output within the penalties' window): under a strong repetition penalty over
     * 256 tokens, a grammar that allows anything after the word changes nothing in the output.
     * Before, it held the output's last 64 tokens alone, and the text after the word differed.
     */
    @Test
    void theChainThatTakesOverPenalizesWhatTheSlotsChainDid() throws Exception {
        SamplingParams greedy = new SamplingParams(0f, 1f, 0, 0f, null, 0.5f, 0f, Map.of(2, -100f), null, penalized());
        int length = 120;
        Result plain = run(new GenerationRequest(PROMPT, length, List.of(), greedy, -1, false, null));
        Matcher m = Pattern.compile(" [a-zA-Z]{3,}").matcher(plain.text);
        assertThat(m.find(plain.text.length() / 2)).as(plain.text).isTrue();
        String late = m.group();
        assertThat(plain.text.indexOf(late)).isEqualTo(m.start());
        Result r = run(new GenerationRequest(PROMPT, length, List.of(), greedy, -1, false,
                new LateGrammar("root ::= \"" + late + "\" [^\\x00]*", late, null)));
        assertThat(r.constrainedAt).as("the grammar took over at the word").isGreaterThan(0);
        assertThat(r.text).isEqualTo(plain.text);
    }

    /**
     * A spent reasoning budget's tokens are the output's for the penalties too: under a strong
     * repetition penalty, an output whose first tokens a budget forced goes on as the output of a
     * prompt that ends with those tokens. Before, the chain had counted its own picks in their
     * place, and what followed differed.
     */
    @Test
    void forcedTokensAreInThePenaltiesHistory() throws Exception {
        SamplingParams greedy = new SamplingParams(0f, 1f, 0, 0f, null, 0.5f, 0f, Map.of(2, -100f), null, penalized());
        int[] forced = {350, 351, 352, 353};
        ai.llmref.server.engine.ReasoningBudget budget = new ai.llmref.server.engine.ReasoningBudget(0, forced,
                () -> new ai.llmref.server.engine.ReasoningBudget.Tracker() {
                    @Override
                    public void push(String text) {}

                    @Override
                    public boolean reasoning() {
                        return true;
                    }
                });
        int length = 60;
        Result r = run(new GenerationRequest(PROMPT, forced.length + length, List.of(), greedy, -1, false, null, budget));
        int[] longer = java.util.Arrays.copyOf(PROMPT, PROMPT.length + forced.length);
        System.arraycopy(forced, 0, longer, PROMPT.length, forced.length);
        Result after = run(new GenerationRequest(longer, length, List.of(), greedy, -1, false));
        assertThat(after.text).isNotEmpty();
        assertThat(r.text).endsWith(after.text);
        assertThat(r.text.length()).isGreaterThan(after.text.length());
    }

    /** llama.cpp's defaults, but a repetition penalty of 1.5 over 256 tokens. */
    private static SamplingParams.LlamaStages penalized() {
        SamplingParams.LlamaStages d = SamplingParams.LlamaStages.DEFAULT;
        return new SamplingParams.LlamaStages(1.5f, 256, d.typicalP(), d.topNSigma(), d.xtcProbability(), d.xtcThreshold(),
                d.dryMultiplier(), d.dryBase(), d.dryAllowedLength(), d.dryWindow(), d.dryBreakers(), d.mirostat(), d.mirostatTau(),
                d.mirostatEta(), d.dynatempRange(), d.dynatempExponent(), d.minKeep(), d.order(), d.ignoreEos());
    }

    @Test
    void stopStringsEndOnlyTheFreeText() throws Exception {
        Result plain = run(null, List.of(word));
        assertThat(plain.text).isEqualTo(free.substring(0, wordAt));
        assertThat(plain.stopSequence).isEqualTo(word);
        Result r = run(new LateGrammar(grammarFromWord(), word, null), List.of(word));
        assertThat(r.text).startsWith(free.substring(0, wordAt) + word).matches(".*[0-9]");
        assertThat(r.reason).isEqualTo(FinishReason.STOP);
        assertThat(r.stopSequence).isNull();
        // a stop string in the free text before the point still ends the output
        String early = free.substring(2, 6);
        Result cut = run(new LateGrammar(grammarFromWord(), word, null), List.of(early));
        assertThat(cut.text).isEqualTo(free.substring(0, free.indexOf(early)));
        assertThat(cut.constrainedAt).isEqualTo(-1);
    }

    @Test
    void aGrammarThatRefusesTheTextAtItsPointLeavesTheOutputFree() throws Exception {
        Result r = run(new LateGrammar("root ::= \"#\" [a-z]", word, null), List.of());
        assertThat(r.text).isEqualTo(free);
        assertThat(r.reason).isEqualTo(FinishReason.LENGTH);
        assertThat(r.constrainedAt).isEqualTo(-1);
    }

    @Test
    void anOpeningAppliesAtTheOutputsStartOrNever() throws Exception {
        String head = free.substring(0, 3);
        String grammar = "root ::= \"" + head.replace("\"", "\\\"") + "\" [^0-9]{0,12} [0-9]";
        Result r = run(new LateGrammar(grammar, null, Pattern.compile("\\s*(" + Pattern.quote(head) + ")")), List.of());
        assertThat(r.text).startsWith(head).matches(Pattern.quote(head) + "[^0-9]{0,12}[0-9]");
        assertThat(r.constrainedAt).isGreaterThanOrEqualTo(3);
        // an opening that the output's start rules out: free, even where the pattern occurs later
        Result never = run(new LateGrammar(grammarFromWord(), null, Pattern.compile("(" + Pattern.quote(word) + ")")), List.of());
        assertThat(never.text).isEqualTo(free);
        assertThat(never.constrainedAt).isEqualTo(-1);
    }

    /** A preamble of the output's first {@code end} characters (what a reasoning split gives, on plain text). */
    private static java.util.function.Supplier<LateGrammar.Preamble> preambleOf(int end) {
        return () -> new LateGrammar.Preamble() {
            private final StringBuilder sofar = new StringBuilder();

            @Override
            public String after(String text) {
                sofar.append(text);
                return sofar.length() < end ? null : sofar.substring(end);
            }
        };
    }

    /**
     * With a preamble (a reasoning model's reasoning), the grammar's point is looked for only after
     * it: a literal that occurs in the preamble does not start the grammar there, its first
     * occurrence after the preamble does; and an opening applies at the start of the text after it.
     */
    @Test
    void aPreambleIsPassedOverBeforeThePointIsLookedFor() throws Exception {
        int end = wordAt + word.length(); // the preamble ends after the word
        String literal = null;
        for (char ch : free.substring(end).toCharArray()) {
            if (Character.isLetter(ch) && free.substring(0, end).indexOf(ch) >= 0) {
                literal = String.valueOf(ch); // a letter of the text after the preamble that the preamble also holds
                break;
            }
        }
        assertThat(literal).as("a letter before and after the word in " + free).isNotNull();
        int at = free.indexOf(literal, end);
        String grammar = "root ::= \"" + literal + "\" [^0-9]{0,12} [0-9]";
        java.util.function.Supplier<LateGrammar.Preamble> preamble = preambleOf(end);
        Result without = run(new LateGrammar(grammar, literal, null), List.of());
        int first = free.indexOf(literal);
        assertThat(first).isLessThan(end);
        assertThat(without.text).as("without the preamble, from the letter's first occurrence")
                .matches(Pattern.quote(free.substring(0, first)) + Pattern.quote(literal) + "[^0-9]{0,12}[0-9]");
        Result r = run(new LateGrammar(grammar, literal, null, preamble), List.of());
        assertThat(r.text).as("free through the preamble and up to the letter after it: " + free)
                .matches(Pattern.quote(free.substring(0, at)) + Pattern.quote(literal) + "[^0-9]{0,12}[0-9]");
        assertThat(r.constrainedAt).isGreaterThan(at);
        assertThat(r.reason).isEqualTo(FinishReason.STOP);
        // an opening: at the start of the text after the preamble
        String head = free.substring(end, end + 2);
        String opened = "root ::= \"" + head.replace("\"", "\\\"") + "\" [^0-9]{0,12} [0-9]";
        Result o = run(new LateGrammar(opened, null, Pattern.compile("(" + Pattern.quote(head) + ")"), preamble), List.of());
        assertThat(o.text).matches(Pattern.quote(free.substring(0, end + 2)) + "[^0-9]{0,12}[0-9]");
    }

    /**
     * A required late grammar (a JSON format after a reasoning model's reasoning): the output
     * cannot end before it applies, even pushed toward its end by logit_bias; once the preamble
     * ends it applies at once, and ends the output. Without {@code required} the same push ends
     * the output at its first token.
     */
    @Test
    void aRequiredGrammarIsReachedBeforeTheOutputEnds() throws Exception {
        int end = wordAt + word.length();
        java.util.function.Supplier<LateGrammar.Preamble> preamble = preambleOf(end);
        SamplingParams pushed = new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(2, 100f), null);
        String grammar = "root ::= [^0-9]{0,12} [0-9]";
        Result free = run(new GenerationRequest(PROMPT, LENGTH, List.of(), pushed, -1, false,
                LateGrammar.opening(grammar, LateGrammar.AT_ONCE, preamble, false)));
        assertThat(free.text).as("pushed to its end, a free output ends at once").isEmpty();
        assertThat(free.reason).isEqualTo(FinishReason.STOP);
        Result r = run(new GenerationRequest(PROMPT, LENGTH, List.of(), pushed, -1, false,
                LateGrammar.opening(grammar, LateGrammar.AT_ONCE, preamble, true)));
        assertThat(r.text).as("the preamble as the model writes it, then the grammar: " + this.free)
                .matches(Pattern.quote(this.free.substring(0, end)) + "[^0-9]{0,12}[0-9]");
        assertThat(r.reason).as("the grammar ended it").isEqualTo(FinishReason.STOP);
        assertThat(r.constrainedAt).isGreaterThanOrEqualTo(end);
    }

    /** A required late grammar llama.cpp cannot compile is refused when the request starts. */
    @Test
    void aRequiredGrammarThatDoesNotCompileIsRefusedAtOnce() throws Exception {
        SamplingParams greedy = new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(2, -100f), null);
        RequestHandle h = engine.submit(new GenerationRequest(PROMPT, LENGTH, List.of(), greedy, -1, false,
                LateGrammar.opening("root ::= undefined-rule", LateGrammar.AT_ONCE, null, true)));
        GenerationEvent first = null;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (first == null && System.nanoTime() < deadline) {
            first = h.poll();
            if (first == null) {
                Thread.sleep(1);
            }
        }
        assertThat(first).isInstanceOf(GenerationEvent.Failed.class);
    }

    /**
     * A grammar reads a token's text with special tokens rendered and the output shows them as
     * nothing: where a grammar applies, such tokens are never picked, even pushed by logit_bias
     * (stories260K's {@code <s>}, id 1, reads as three characters of a string and left none).
     */
    @Test
    void grammarsNeverPickTokensTheyReadOtherwise() throws Exception {
        SamplingParams pushed = new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(1, 100f), "root ::= \"a\" [^\\n]{5}");
        Result r = run(new GenerationRequest(PROMPT, 20, List.of(), pushed));
        assertThat(r.text).as("every character the grammar counted is in the output").hasSize(6).startsWith("a");
        assertThat(r.reason).isEqualTo(FinishReason.STOP);
        // the same bias without a grammar: the token is picked (and shows as nothing)
        SamplingParams free = new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(1, 100f), null);
        Result plain = run(new GenerationRequest(PROMPT, 5, List.of(), free));
        assertThat(plain.text).isEmpty();
        assertThat(plain.reason).isEqualTo(FinishReason.LENGTH);
    }

    /**
     * The chain swap beside other work: two late-grammar requests and a free one run together
     * (two slots, so one waits and takes a slot mid-way), and each gives what it gives alone.
     */
    @Test
    void aSwapLeavesTheOtherSlotsAlone() throws Exception {
        LateGrammar late = new LateGrammar(grammarFromWord(), word, null);
        Result alone = run(late, List.of());
        SamplingParams greedy = new SamplingParams(0f, 1f, 0, 0f, null, 0f, 0f, Map.of(2, -100f), null);
        List<RequestHandle> handles = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            handles.add(engine.submit(new GenerationRequest(PROMPT, LENGTH, List.of(), greedy, -1, false, i == 1 ? null : late)));
        }
        for (int i = 0; i < 3; i++) {
            Result r = collect(handles.get(i));
            if (i == 1) {
                assertThat(r.text).as("the free request beside the swaps").isEqualTo(free);
            } else {
                assertThat(r.text).as("request " + i).isEqualTo(alone.text);
                assertThat(r.constrainedAt).isEqualTo(alone.constrainedAt);
            }
        }
    }
}
