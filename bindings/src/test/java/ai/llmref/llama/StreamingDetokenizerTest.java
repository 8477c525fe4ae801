package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** A multi-byte character split across tokens is never emitted broken. */
class StreamingDetokenizerTest extends StoriesModelTest {
    @Test
    void holdsBackIncompleteCharactersUntilTheyComplete() {
        StreamingDetokenizer d = new StreamingDetokenizer(model.vocabulary(), false);
        byte[] snowman = "☃".getBytes(StandardCharsets.UTF_8); // E2 98 83
        assertThat(d.pushBytes(new byte[] {'a', snowman[0]})).isEqualTo("a");
        assertThat(d.pendingBytes()).isEqualTo(1);
        assertThat(d.pushBytes(new byte[] {snowman[1]})).isEmpty();
        assertThat(d.pushBytes(new byte[] {snowman[2], 'b'})).isEqualTo("☃b");
        byte[] emoji = "😀".getBytes(StandardCharsets.UTF_8); // 4 bytes
        for (int i = 0; i < 3; i++) {
            assertThat(d.pushBytes(new byte[] {emoji[i]})).isEmpty();
        }
        assertThat(d.pushBytes(new byte[] {emoji[3]})).isEqualTo("😀");
        assertThat(d.flush()).isEmpty();
    }

    @Test
    void anUnfinishedCharacterBecomesAReplacementAtTheEnd() {
        StreamingDetokenizer d = new StreamingDetokenizer(model.vocabulary(), false);
        assertThat(d.pushBytes(new byte[] {'x', (byte) 0xE6, (byte) 0x97})).isEqualTo("x");
        assertThat(d.flush()).isEqualTo("\uFFFD");
        // stray continuation bytes are not held back forever: they decode as replacement characters
        assertThat(d.pushBytes(new byte[] {(byte) 0x80, 'y'})).isEqualTo("\uFFFDy");
    }

    @Test
    void randomSplitsAlwaysReassembleExactly() {
        String text = "Tim saw a café, a ☃ and 日本語 — 😀 done.";
        byte[] all = text.getBytes(StandardCharsets.UTF_8);
        Random r = new Random(7);
        for (int trial = 0; trial < 500; trial++) {
            StreamingDetokenizer d = new StreamingDetokenizer(model.vocabulary(), false);
            StringBuilder out = new StringBuilder();
            int i = 0;
            while (i < all.length) {
                int n = Math.min(all.length - i, 1 + r.nextInt(4));
                byte[] piece = java.util.Arrays.copyOfRange(all, i, i + n);
                String emitted = d.pushBytes(piece);
                assertThat(emitted).doesNotContain("\uFFFD");
                out.append(emitted);
                i += n;
            }
            out.append(d.flush());
            assertThat(out.toString()).isEqualTo(text);
        }
    }

    @Test
    void streamingRealByteFallbackTokensMatchesDetokenize() {
        // stories260K's 512-token vocabulary spells non-ASCII text with byte tokens (<0xE2> ...), so
        // these characters really arrive split across tokens.
        Vocabulary v = model.vocabulary();
        String text = "Lily saw a ☃ and said 日本 😀!";
        int[] tokens = v.tokenize(text, false, false);
        assertThat(tokens.length).isGreaterThan(text.length() / 2);
        StreamingDetokenizer d = new StreamingDetokenizer(v, false);
        StringBuilder streamed = new StringBuilder();
        boolean heldBack = false;
        for (int t : tokens) {
            String piece = d.push(t);
            assertThat(piece).doesNotContain("\uFFFD");
            heldBack |= d.pendingBytes() > 0;
            streamed.append(piece);
        }
        streamed.append(d.flush());
        assertThat(heldBack).as("some character was split across tokens").isTrue();
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        for (int t : tokens) {
            bytes.writeBytes(v.tokenBytes(t, false));
        }
        assertThat(streamed.toString()).isEqualTo(bytes.toString(StandardCharsets.UTF_8));
        // llama_detokenize drops the leading space SPM puts on the first word; otherwise the same text
        assertThat(streamed.toString()).isEqualTo(" " + v.detokenize(tokens, false, false));
        assertThat(streamed.toString()).contains("☃").contains("日本").contains("😀");
    }
}
