package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Grammars constrain output, and a grammar that allows nothing is an exception, not a crash. */
class GrammarSamplingTest extends StoriesModelTest {
    @Test
    void outputFollowsTheGrammarAndEndsWhenItIsComplete() {
        String text = generate(Sampler.builder(model.vocabulary()).grammar("root ::= (\"yes\" | \"no\") \", \" [a-z]+ \".\"", "root").build(),
                "Once upon a time", 40);
        assertThat(text).matches("(yes|no), [a-z]+\\.");
    }

    /**
     * The stages after the grammar pick first and the grammar checks that pick only (llama.cpp's
     * common sampler); a greedy chain then tries its best tokens one by one, and only past
     * {@link Sampler#GRAMMAR_PROBES} of them does the grammar go over the whole vocabulary. Each
     * greedy pick must still be the best token the grammar allows, on steps of all three kinds: the
     * unconstrained argmax allowed, the best allowed token among the probes, and beyond them.
     */
    @Test
    void greedyWithAGrammarPicksTheBestTokenItAllows() {
        Vocabulary v = model.vocabulary();
        int[] kinds = new int[3]; // argmax allowed, found among the probes, beyond them
        for (String grammar : List.of("root ::= \"Once\" (\" \" [a-z]+){8} \".\"", "root ::= [0-9]{1,4} (\" \" [0-9]{1,4}){3}")) {
            try (Sampler s = Sampler.builder(v).grammar(grammar, "root").build(); Sampler probe = Sampler.builder(v).grammar(grammar, "root").build();
                    LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64)) {
                int[] p = v.tokenize("Lily and Tom", true, false);
                ModelAndContextTest.fill(batch, p, 0);
                ctx.decode(batch);
                int pos = p.length;
                int idx = p.length - 1;
                for (int step = 0; step < 40; step++) {
                    float[] logits = ctx.logits(idx);
                    int best = -1;
                    for (int t = 0; t < logits.length; t++) {
                        if (probe.grammarAllows(t) && (best < 0 || logits[t] > logits[best])) {
                            best = t;
                        }
                    }
                    int rank = 0; // tokens ahead of the best allowed one, in llama.cpp's greedy order
                    for (int t = 0; t < logits.length; t++) {
                        if (logits[t] > logits[best] || logits[t] == logits[best] && t < best) {
                            rank++;
                        }
                    }
                    int t = s.sample(ctx, idx);
                    assertThat(t).as(grammar + ", step " + step).isEqualTo(best);
                    kinds[rank == 0 ? 0 : rank < Sampler.GRAMMAR_PROBES ? 1 : 2]++;
                    if (v.isEndOfGeneration(t)) {
                        break;
                    }
                    probe.accept(t);
                    batch.clear();
                    batch.add(t, pos++, 0, true);
                    ctx.decode(batch);
                    idx = 0;
                }
            }
        }
        assertThat(kinds[0]).as("steps where the grammar allowed the argmax").isPositive();
        assertThat(kinds[1]).as("steps where the best allowed token was among the probes").isPositive();
        assertThat(kinds[2]).as("steps where it was beyond them").isPositive();
    }

    @Test
    void seededSamplingWithAGrammarStaysInside() {
        for (int seed = 0; seed < 5; seed++) {
            String text = generate(Sampler.builder(model.vocabulary()).grammar("root ::= [0-9]{1,3} (\" \" [0-9]{1,3}){2}", "root")
                    .temperature(1.0f).topK(50).seed(seed).build(), "Tom had", 30);
            assertThat(text).as("seed " + seed).matches("[0-9]{1,3} [0-9]{1,3} [0-9]{1,3}");
        }
    }

    @Test
    void aGrammarThatAllowsNoTokenIsAnExceptionNotACrash() {
        Vocabulary v = model.vocabulary();
        Sampler.Builder b = Sampler.builder(v).grammar("root ::= \"a\"+", "root");
        try (Sampler probe = Sampler.builder(v).grammar("root ::= \"a\"+", "root").build()) {
            for (int t = 0; t < v.size(); t++) {
                if (probe.grammarAllows(t)) {
                    b.logitBias(t, Float.NEGATIVE_INFINITY); // ban every token the grammar would accept
                }
            }
        }
        try (Sampler s = b.build(); LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(32)) {
            int[] prompt = v.tokenize("Once upon a time", true, false);
            ModelAndContextTest.fill(batch, prompt, 0);
            ctx.decode(batch);
            assertThatThrownBy(() -> s.sample(ctx, prompt.length - 1)).isInstanceOf(GrammarException.class)
                    .hasMessageContaining("allows no token");
        }
    }

    @Test
    void acceptingATokenTheGrammarForbidsIsRefused() {
        Vocabulary v = model.vocabulary();
        try (Sampler s = Sampler.builder(v).grammar("root ::= \"yes\"", "root").build()) {
            int forbidden = v.tokenize("Once", false, false)[0];
            assertThat(s.grammarAllows(forbidden)).isFalse();
            assertThatThrownBy(() -> s.accept(forbidden)).isInstanceOf(InvalidInputException.class)
                    .hasMessageContaining("not allowed by the grammar");
        }
    }

    /**
     * A grammar that starts to apply part-way through an output: advanced over the text from where
     * it applies, byte by byte, it goes on from there (the output is the grammar's rest), and text
     * it does not allow leaves it refused. Every byte of ASCII has a one-byte token in stories260K's
     * vocabulary (its byte fallback).
     */
    @Test
    void aGrammarAdvancedOverTextGoesOnFromThere() {
        Vocabulary v = model.vocabulary();
        for (int b = 0; b < 256; b++) {
            int t = v.byteToken(b);
            if (t >= 0) {
                assertThat(v.tokenBytes(t, true)).containsExactly((byte) b);
            } else {
                assertThat(b).as("bytes without a one-byte token").isGreaterThanOrEqualTo(0x80);
            }
        }
        assertThat(v.byteToken('{')).isNotNegative();
        String grammar = "root ::= \"<call>\" [ ]? \"{\\\"n\\\": \" [0-9]{1,3} \"}\"";
        Sampler s = Sampler.builder(v).grammar(grammar, "root").build();
        assertThat(s.advanceGrammar("<call> {\"n\": ".getBytes(java.nio.charset.StandardCharsets.UTF_8))).isTrue();
        assertThat(s.grammarAllows(v.byteToken('<'))).isFalse();
        String rest = generate(s, "Once upon a time", 20);
        assertThat(rest).matches("[0-9]{1,3}\\}");
        try (Sampler refused = Sampler.builder(v).grammar(grammar, "root").build()) {
            assertThat(refused.advanceGrammar("<call>x".getBytes(java.nio.charset.StandardCharsets.UTF_8))).isFalse();
        }
        try (Sampler plain = Sampler.greedy(v)) {
            assertThatThrownBy(() -> plain.advanceGrammar(new byte[] {'a'})).isInstanceOf(IllegalStateException.class);
        }
    }

    /**
     * A chain built part-way takes the output so far into its penalties' history, not into its
     * grammar: after the unconstrained pick is recorded outside the grammar, a presence penalty
     * turns the pick away from it, and the grammar still takes a whole output from its start.
     */
    @Test
    void historyOutsideTheGrammarReachesThePenaltiesOnly() {
        Vocabulary v = model.vocabulary();
        String grammar = "root ::= [a-z]";
        String first = generate(Sampler.builder(v).grammar(grammar, "root").penalties(64, 1.0f, 0f, 50f).build(), "Once upon a time", 2);
        assertThat(first).matches("[a-z]");
        Sampler s = Sampler.builder(v).grammar(grammar, "root").penalties(64, 1.0f, 0f, 50f).build();
        for (int t = 0; t < v.size(); t++) { // every token spelled as the pick (the byte fallback's too)
            if (v.tokenToPiece(t, true).equals(first)) {
                s.acceptOutsideGrammar(t);
            }
        }
        s.acceptOutsideGrammar(v.byteToken('#')); // not a token the grammar allows: it never sees it
        String second = generate(s, "Once upon a time", 2);
        assertThat(second).matches("[a-z]").isNotEqualTo(first);
    }

    private String generate(Sampler sampler, String prompt, int max) {
        Vocabulary v = model.vocabulary();
        List<Integer> out = new ArrayList<>();
        try (sampler; LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64)) {
            int[] p = v.tokenize(prompt, true, false);
            ModelAndContextTest.fill(batch, p, 0);
            ctx.decode(batch);
            int pos = p.length;
            int idx = p.length - 1;
            for (int i = 0; i < max; i++) {
                int t = sampler.sample(ctx, idx);
                if (v.isEndOfGeneration(t)) {
                    return v.detokenize(out.stream().mapToInt(Integer::intValue).toArray(), false, false);
                }
                out.add(t);
                batch.clear();
                batch.add(t, pos++, 0, true);
                ctx.decode(batch);
                idx = 0;
            }
        }
        throw new AssertionError("the grammar did not end generation within " + max + " tokens: "
                + v.detokenize(out.stream().mapToInt(Integer::intValue).toArray(), false, false));
    }
}
