package ai.llmref.server.engine;

import ai.llmref.llama.LogitsRow;
import ai.llmref.llama.StreamingDetokenizer;
import ai.llmref.llama.Vocabulary;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The log-probabilities of one request's tokens, handed out with the text they make. A token is
 * computed when it is sampled (the logits are overwritten by the next decode) and released once
 * some of its text has been released: text held back (an incomplete character, a possible stop
 * string) holds its tokens back too, and the tokens of a stop string that cut the output are never
 * released. So the tokens a response lists are exactly those whose text it contains, the last one
 * perhaps only in part. Scheduler thread only.
 */
final class LogprobTrack {
    private final int top;
    private final Vocabulary vocab;
    private final List<Pending> pending = new ArrayList<>();
    /** The bytes of all tokens computed so far, as the detokenizer got them. */
    private byte[] tokens = new byte[256];
    private int tokensLength;
    /**
     * How far those bytes are decoded ({@code decodedBytes}, a point where the detokenizer cuts too)
     * and the UTF-8 length of their text ({@code decodedLength}): the two differ where the bytes are
     * not valid UTF-8 (an invalid byte becomes U+FFFD, three bytes of text), so a token's place in
     * the released text is counted in text, not in token bytes.
     */
    private int decodedBytes;
    private int decodedLength;
    /** The output text released so far, as UTF-8 ({@code releasedLength} bytes of it). */
    private byte[] released = new byte[256];
    private int releasedLength;
    /** Code points of {@code released[0..scanned)}: token offsets only grow, so counting goes on from there. */
    private int scanned;
    private int scannedPoints;

    /** A token not yet handed out; {@code byteOffset}: where its text starts in the output's UTF-8 bytes. */
    private record Pending(int byteOffset, int token, byte[] bytes, float logprob, List<TokenLogprob.Alternative> top) {}

    LogprobTrack(int top, Vocabulary vocab) {
        this.top = top;
        this.vocab = vocab;
    }

    /** How many alternatives each token lists. */
    int top() {
        return top;
    }

    /** Records a sampled token with its log-probability ({@link #of}). */
    void add(TokenLogprob t) {
        pending.add(new Pending(textOffset(), t.token(), t.bytes(), t.logprob(), t.top()));
        byte[] b = t.bytes();
        if (tokensLength + b.length > tokens.length) {
            tokens = Arrays.copyOf(tokens, Math.max(tokens.length * 2, tokensLength + b.length));
        }
        System.arraycopy(b, 0, tokens, tokensLength, b.length);
        tokensLength += b.length;
    }

    /**
     * Where the next token's text starts in the output, in UTF-8 bytes: the text of the token bytes
     * so far, decoded in the pieces the detokenizer decodes them in, plus the bytes of a character
     * still incomplete (counted as they are: the next token's bytes may complete it).
     */
    private int textOffset() {
        int complete = StreamingDetokenizer.completePrefix(tokens, decodedBytes, tokensLength);
        if (complete > decodedBytes) {
            decodedLength += new String(tokens, decodedBytes, complete - decodedBytes, StandardCharsets.UTF_8)
                    .getBytes(StandardCharsets.UTF_8).length;
            decodedBytes = complete;
        }
        return decodedLength + (tokensLength - decodedBytes);
    }

    /**
     * {@code token} with its log-probability under the logits row (log-softmax: {@link LogitsRow#logSumExp})
     * and the {@code top} most likely tokens ({@link LogitsRow#top}); text offset -1 (not placed in a text yet). Reads the
     * row and the (thread-safe) vocabulary only: it runs on the sampling pool's threads.
     */
    static TokenLogprob of(LogitsRow row, int token, int top, Vocabulary vocab) {
        int[] bestIds = new int[top];
        float[] bestValues = new float[top];
        int kept = row.top(top, bestIds, bestValues);
        float logZ = (float) row.logSumExp();
        List<TokenLogprob.Alternative> alternatives = new ArrayList<>(kept);
        for (int i = 0; i < kept; i++) {
            alternatives.add(new TokenLogprob.Alternative(bestIds[i], vocab.tokenBytes(bestIds[i], false), bestValues[i] - logZ));
        }
        return new TokenLogprob(token, vocab.tokenBytes(token, false), -1, row.logit(token) - logZ,
                List.copyOf(alternatives));
    }

    /**
     * After {@code text} was released: the tokens now to hand out, those that start inside the text
     * released so far (a token without bytes, once the text has reached it).
     */
    List<TokenLogprob> release(String text) {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        if (releasedLength + b.length > released.length) {
            released = Arrays.copyOf(released, Math.max(released.length * 2, releasedLength + b.length));
        }
        System.arraycopy(b, 0, released, releasedLength, b.length);
        releasedLength += b.length;
        List<TokenLogprob> out = new ArrayList<>();
        while (!pending.isEmpty()) {
            Pending p = pending.get(0);
            if (!(p.byteOffset < releasedLength || p.bytes.length == 0 && p.byteOffset <= releasedLength)) {
                break;
            }
            pending.remove(0);
            out.add(new TokenLogprob(p.token, p.bytes, codePointsBefore(p.byteOffset), p.logprob, p.top));
        }
        return out;
    }

    /** Characters (code points) of the released text whose UTF-8 encoding starts before byte {@code end}. */
    private int codePointsBefore(int end) {
        int stop = Math.min(end, releasedLength);
        for (; scanned < stop; scanned++) {
            if ((released[scanned] & 0xC0) != 0x80) {
                scannedPoints++;
            }
        }
        return scannedPoints;
    }
}
