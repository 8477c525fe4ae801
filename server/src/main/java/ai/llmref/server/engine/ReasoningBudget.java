package ai.llmref.server.engine;

import java.util.function.Supplier;

/**
 * A cap on a reasoning model's reasoning (llama-server's {@code reasoning_budget_tokens},
 * Anthropic's {@code thinking.budget_tokens}): once the output has written {@code tokens} tokens and
 * is still reasoning, the engine writes {@code forced} in the model's place (a closing message and
 * {@code </think>}), and the model goes on with its answer.
 *
 * @param tokens  the most tokens of output the reasoning may take (its opening tag included, where
 *                the reply writes one); 0 closes it at once
 * @param forced  the tokens written when the budget is spent (at least one)
 * @param tracker makes, per request, what tells where the output is ({@link Tracker})
 */
public record ReasoningBudget(int tokens, int[] forced, Supplier<Tracker> tracker) {
    public ReasoningBudget {
        if (tokens < 0 || forced == null || forced.length == 0 || tracker == null) {
            throw new IllegalArgumentException("a reasoning budget needs tokens >= 0, forced tokens and a tracker");
        }
    }

    /** Follows an output's text (one per request: it keeps state). */
    public interface Tracker {
        /** Adds the output's next text. */
        void push(String text);

        /** Whether the output is inside its reasoning now (not before it begins, not after it ends). */
        boolean reasoning();
    }
}
