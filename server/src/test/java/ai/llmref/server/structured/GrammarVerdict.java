package ai.llmref.server.structured;

import ai.llmref.llama.Sampler;
import ai.llmref.llama.Vocabulary;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;

/**
 * What llama.cpp's grammar engine makes of a text under a grammar, advanced over it byte by byte
 * as the engine advances a late grammar: refused, allowed and going on, or allowed to end there.
 */
public enum GrammarVerdict {
    REFUSED, GOES_ON, MAY_END;

    /** The verdict of {@code grammar} (start rule {@code root}) on {@code text}, with the vocabulary's end of generation as the end. */
    public static GrammarVerdict of(Vocabulary vocab, String grammar, String text) {
        return of(vocab, grammar, text, vocab.eos());
    }

    /** As {@link #of(Vocabulary, String, String)}, with {@code end} (an end-of-generation token) as the end. */
    public static GrammarVerdict of(Vocabulary vocab, String grammar, String text, int end) {
        try (Sampler s = Sampler.builder(vocab).grammar(grammar, "root").build()) {
            if (!s.advanceGrammar(text.getBytes(StandardCharsets.UTF_8))) {
                return REFUSED;
            }
            return s.grammarAllows(end) ? MAY_END : GOES_ON;
        }
    }

    /** A JSON text of a test, read (a schema, arguments). */
    public static JsonNode json(String s) {
        try {
            return SchemaCorpus.MAPPER.readTree(s);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
