package ai.llmref.server.engine;

import java.util.List;
import java.util.function.Supplier;
import java.util.regex.Pattern;

/**
 * A grammar that applies from a point of the output on, found while the output is generated: the
 * text before it is free, the rest must follow the grammar (tool calls under {@code tool_choice}
 * "auto": the model may answer in words or call, and a call, once begun, is well-formed). The
 * grammar is advanced over the output from that point, and applies only when it allows that text;
 * otherwise the output stays free. From then on stop strings no longer end the output: the grammar
 * decides where it ends. Exactly one of {@code literals} and {@code opening} is set.
 *
 * <p>With a {@code preamble} (a reasoning model's reasoning), the point is looked for only in the
 * text after it: a literal in that text, the opening at its start.
 *
 * <p>A {@code required} grammar is one the output must reach (a JSON response_format or a forced
 * call after a reasoning model's reasoning): until it applies the output cannot end by an
 * end-of-generation token, and a grammar that llama.cpp cannot compile is refused when the request
 * starts, as a grammar from the start is.
 *
 * @param grammar  GBNF (root {@code root}) that the output follows from the point on
 * @param literals the grammar applies from the first occurrence of any of these texts (the one
 *                 that begins first; of two there, the longer), or null
 * @param opening  the grammar applies from this pattern's group 1 when the pattern matches at the
 *                 output's start ({@link java.util.regex.Matcher#lookingAt}), or null
 * @param preamble makes, per request, what tells the output's preamble from the rest; null: none
 * @param required the output must reach the grammar (see above)
 */
public record LateGrammar(String grammar, List<String> literals, Pattern opening, Supplier<Preamble> preamble, boolean required) {
    public LateGrammar {
        if (grammar == null || (literals == null) == (opening == null)
                || literals != null && (literals.isEmpty() || literals.stream().anyMatch(l -> l == null || l.isEmpty()))) {
            throw new IllegalArgumentException("a late grammar needs its grammar and exactly one of non-empty literals and an opening pattern");
        }
        literals = literals == null ? null : List.copyOf(literals);
    }

    public LateGrammar(String grammar, String literal, Pattern opening) {
        this(grammar, literal == null ? null : List.of(literal), opening, null, false);
    }

    public LateGrammar(String grammar, String literal, Pattern opening, Supplier<Preamble> preamble) {
        this(grammar, literal == null ? null : List.of(literal), opening, preamble, false);
    }

    /** From a point found by {@code opening}, as the canonical constructor. */
    public static LateGrammar opening(String grammar, Pattern opening, Supplier<Preamble> preamble, boolean required) {
        return new LateGrammar(grammar, null, opening, preamble, required);
    }

    /** An opening that every output has: the grammar applies where the preamble ends. */
    public static final Pattern AT_ONCE = Pattern.compile("()");

    /**
     * The part of an output that comes before the text a late grammar is looked for in (one per
     * request: it keeps state). It is given the output piece by piece.
     */
    public interface Preamble {
        /**
         * The text after the preamble that {@code text} completes: null while the output is still
         * in its preamble; once it has left it, the text after it so far, which ends with
         * {@code text}'s end (it may begin in earlier pieces, or be empty).
         */
        String after(String text);
    }
}
