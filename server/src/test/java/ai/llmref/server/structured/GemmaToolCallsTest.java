package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Gemma 4's call grammar over the schema corpus, in llama.cpp's grammar engine (stories260K's
 * vocabulary, its markers as text): each object schema is refused (a {@link SchemaException},
 * a 400) or makes a grammar llama.cpp loads; a document the schema refuses, written in Gemma's
 * notation, never completes a call; and a document it admits, in the order the grammar writes
 * properties, completes one whose arguments read back as that document.
 */
class GemmaToolCallsTest extends StoriesVocabularyTest {

    @Test
    void theCorpusSchemasAreEnforcedOrRefused() throws Exception {
        int loaded = 0;
        int refused = 0;
        int admitted = 0;
        List<String> wrong = new ArrayList<>();
        for (SchemaCorpus.Entry e : SchemaCorpus.all()) {
            if (!e.schema().isObject() || !"object".equals(e.schema().path("type").asText())) {
                continue;
            }
            List<ToolCalls.Function> fns = List.of(new ToolCalls.Function("f", e.schema()));
            String grammar;
            try {
                grammar = ToolCalls.grammar(ToolCalls.Format.GEMMA, fns, false);
            } catch (SchemaException ex) {
                refused++;
                continue;
            }
            loaded++;
            for (JsonNode doc : e.invalid()) {
                String call = call(doc);
                if (call != null && verdict(grammar, call) == GrammarVerdict.MAY_END) {
                    wrong.add(e.name() + ": an invalid document completes a call: " + call);
                }
            }
            for (JsonNode doc : e.valid()) {
                String call = call(doc);
                if (call == null || e.unordered().contains(doc) || verdict(grammar, call) != GrammarVerdict.MAY_END) {
                    continue; // a key the notation cannot write, or properties in another order than the grammar's
                }
                admitted++;
                ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.GEMMA, call, fns);
                assertThat(r.calls()).as(call).hasSize(1);
                assertThat(SchemaValidator.EXACT.readTree(r.calls().getFirst().arguments())).as(call)
                        .isEqualTo(SchemaValidator.EXACT.readTree(doc.toString()));
                assertThat(SchemaValidator.validate(e.schema(), SchemaValidator.read(r.calls().getFirst().arguments()))).isEmpty();
            }
        }
        assertThat(wrong).isEmpty();
        assertThat(loaded).as("schemas whose grammar loads").isGreaterThan(20);
        assertThat(refused).as("schemas the notation cannot enforce").isGreaterThan(0);
        assertThat(admitted).as("valid documents that complete a call").isGreaterThan(40);
    }

    /** A document as a Gemma call of {@code f}, or null where the notation cannot write it. */
    private static String call(JsonNode doc) {
        if (!doc.isObject()) {
            return null;
        }
        try {
            return GemmaToolCalls.CALL_NAME + "f" + GemmaToolCalls.text(doc, "") + GemmaToolCalls.CALL_END;
        } catch (SchemaException e) {
            return null;
        }
    }

    /** Gemma's notation read as JSON: strings raw (quotes, backslashes and braces are text), keys quoted or not, space around. */
    @Test
    void theNotationReadsAsJson() throws Exception {
        String q = GemmaToolCalls.QUOTE;
        String text = "{a:" + q + "say \"hi\" \\ {x}\n" + q + ", " + q + "k 2" + q + " : [1, -0.50, 2e-3, true,null],c:{},d:[]}";
        GemmaToolCalls.Reader reader = new GemmaToolCalls.Reader();
        StringBuilder out = new StringBuilder();
        for (char c : text.toCharArray()) {
            assertThat(reader.feed(c, out)).isTrue();
        }
        assertThat(reader.done()).isTrue();
        assertThat(out.toString()).isEqualTo("{\"a\":\"say \\\"hi\\\" \\\\ {x}\\n\",\"k 2\":[1,-0.50,0.002,true,null],\"c\":{},\"d\":[]}");
        for (String bad : List.of("{a:1,}", "{a:tru}", "{a:" + q + "x}", "{:1}", "{a:1]", "{a b}", "[1]x", "{a:01x}")) {
            GemmaToolCalls.Reader r = new GemmaToolCalls.Reader();
            boolean ok = true;
            for (char c : bad.toCharArray()) {
                ok &= r.feed(c, new StringBuilder());
            }
            assertThat(ok && r.done()).as(bad).isFalse();
        }
    }
}
