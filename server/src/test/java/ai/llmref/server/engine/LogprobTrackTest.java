package ai.llmref.server.engine;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.StreamingDetokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Which tokens {@link LogprobTrack} hands out with which text, fed as the engine feeds it: each
 * token's bytes go to a detokenizer and to the track, and the detokenizer's text is released. No
 * model: the tokens are byte strings.
 */
class LogprobTrackTest {

    private static TokenLogprob token(int id, byte... bytes) {
        return new TokenLogprob(id, bytes, -1, -0.5f, List.of());
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Pushes each token through a detokenizer and the track; returns, per token pushed, the ids handed out then. */
    private static List<List<Integer>> stream(List<byte[]> tokens) {
        StreamingDetokenizer detok = new StreamingDetokenizer(null, false);
        LogprobTrack track = new LogprobTrack(0, null);
        List<List<Integer>> out = new ArrayList<>();
        for (int i = 0; i < tokens.size(); i++) {
            track.add(token(i, tokens.get(i)));
            List<Integer> ids = new ArrayList<>();
            for (TokenLogprob t : track.release(detok.pushBytes(tokens.get(i)))) {
                ids.add(t.token());
            }
            out.add(ids);
        }
        return out;
    }

    @Test
    void aTokenAfterAnInvalidByteWaitsForItsOwnText() {
        // 0x80 alone is no UTF-8 character: its text is U+FFFD, three bytes; the next token's text
        // starts after those three bytes, not after one
        LogprobTrack track = new LogprobTrack(0, null);
        track.add(token(1, (byte) 0x80));
        track.add(token(2, utf8("zz")));
        List<TokenLogprob> first = track.release("\uFFFD");
        assertThat(first).extracting(TokenLogprob::token).containsExactly(1);
        assertThat(first.get(0).textOffset()).isZero();
        List<TokenLogprob> second = track.release("zz");
        assertThat(second).extracting(TokenLogprob::token).containsExactly(2);
        assertThat(second.get(0).textOffset()).as("code points before it: U+FFFD").isEqualTo(1);
    }

    @Test
    void eachTokenComesWithTheTextThatContainsItsFirstByte() {
        byte[] euro = utf8("€"); // E2 82 AC, split over two tokens
        List<byte[]> tokens = List.of(utf8("a"), new byte[] {euro[0]}, new byte[] {euro[1], euro[2], 'b'},
                new byte[] {(byte) 0xE2}, utf8("c"), new byte[] {(byte) 0xFF, (byte) 0xFE}, utf8("d"));
        // the half euro waits for its second half; an incomplete E2 followed by 'c' becomes U+FFFD then 'c';
        // FF FE are two U+FFFD: each token comes out with the first piece of text that contains its start
        assertThat(stream(tokens)).containsExactly(List.of(0), List.of(), List.of(1, 2), List.of(), List.of(3, 4), List.of(5),
                List.of(6));
    }

    @Test
    void textOffsetsCountCodePointsOfTheReleasedText() {
        LogprobTrack track = new LogprobTrack(0, null);
        StreamingDetokenizer detok = new StreamingDetokenizer(null, false);
        List<byte[]> tokens = List.of(new byte[] {(byte) 0xC3}, utf8("x"), utf8("é"), new byte[] {(byte) 0x80}, utf8("y"));
        StringBuilder text = new StringBuilder();
        List<TokenLogprob> out = new ArrayList<>();
        for (int i = 0; i < tokens.size(); i++) {
            track.add(token(i, tokens.get(i)));
            String piece = detok.pushBytes(tokens.get(i));
            text.append(piece);
            out.addAll(track.release(piece));
        }
        assertThat(text.toString()).isEqualTo("\uFFFDxé\uFFFDy");
        assertThat(out).extracting(TokenLogprob::textOffset).containsExactly(0, 1, 2, 3, 4);
    }
}
