package ai.llmref.llama;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Turns a stream of tokens into text pieces that never split a UTF-8 character: bytes of an
 * incomplete character are held back until the token that completes it arrives. The concatenation
 * of everything returned equals the UTF-8 decoding of all the tokens' bytes. Not thread-safe: one
 * per stream.
 */
public final class StreamingDetokenizer {
    private final Vocabulary vocabulary;
    private final boolean special;
    private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

    public StreamingDetokenizer(Vocabulary vocabulary, boolean renderSpecialTokens) {
        this.vocabulary = vocabulary;
        this.special = renderSpecialTokens;
    }

    /** Adds a token; returns the text that is now complete (possibly empty). */
    public String push(int token) {
        return pushBytes(vocabulary.sharedTokenBytes(token, special));
    }

    /** Adds raw bytes (exposed for tests of the UTF-8 logic). */
    public String pushBytes(byte[] bytes) {
        pending.writeBytes(bytes);
        byte[] all = pending.toByteArray();
        int complete = completePrefix(all);
        pending.reset();
        pending.write(all, complete, all.length - complete);
        return new String(all, 0, complete, StandardCharsets.UTF_8);
    }

    /** Ends the stream: held-back bytes of a character that never completed become U+FFFD. */
    public String flush() {
        byte[] rest = pending.toByteArray();
        pending.reset();
        return new String(rest, StandardCharsets.UTF_8);
    }

    /** Bytes still held back. */
    public int pendingBytes() {
        return pending.size();
    }

    /**
     * Length of the longest prefix that does not end inside a UTF-8 character. Only a trailing
     * incomplete sequence (a lead byte whose continuation bytes have not all arrived) is held back;
     * invalid bytes elsewhere are passed on and decoded as U+FFFD.
     */
    static int completePrefix(byte[] b) {
        return completePrefix(b, 0, b.length);
    }

    /**
     * As {@link #completePrefix(byte[])} for {@code b[from..to)}: the end of its longest prefix that
     * does not end inside a UTF-8 character, as an index into {@code b}. Where a stream of bytes is
     * cut at these points, decoding the pieces one by one gives the text this detokenizer gives.
     */
    public static int completePrefix(byte[] b, int from, int to) {
        int n = to - from;
        // A character is at most 4 bytes: look at most 3 bytes back for its lead byte.
        for (int back = 1; back <= Math.min(3, n); back++) {
            int c = b[to - back] & 0xff;
            if ((c & 0xC0) == 0x80) {
                continue; // continuation byte: keep looking for the lead
            }
            int need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
            return need > back ? to - back : to;
        }
        return to;
    }
}
