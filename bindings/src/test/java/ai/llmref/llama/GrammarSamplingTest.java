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
