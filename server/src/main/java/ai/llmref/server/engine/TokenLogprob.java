package ai.llmref.server.engine;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A generated token with its log-probability under the model (the log-softmax of the raw logits,
 * before logit bias, penalties, temperature, truncation and grammar), and the most likely
 * alternatives at that position.
 *
 * @param token      the token id
 * @param bytes      its bytes (a piece of a UTF-8 character for byte-level tokens)
 * @param textOffset where its text starts in the output, in Unicode code points
 * @param logprob    natural log of its probability
 * @param top        the {@code n} most likely tokens at this position, most likely first (ties: lower id first)
 */
public record TokenLogprob(int token, byte[] bytes, int textOffset, float logprob, List<Alternative> top) {

    /** One of the most likely tokens at a position. */
    public record Alternative(int token, byte[] bytes, float logprob) {
        public String text() {
            return new String(bytes, StandardCharsets.UTF_8);
        }
    }

    public String text() {
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
