package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** A chat reply read in its template's envelope, whole and in pieces of any size. */
class MarkerFilterTest {
    static final MarkerFilter.Envelope FUNCTIONARY_V32 = MarkerFilter.Envelope.of(">>>all", ReasoningStream.THINK);

    private static String pieces(MarkerFilter.Envelope envelope, String reply, Random rnd) {
        MarkerFilter f = new MarkerFilter(envelope);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < reply.length();) {
            int n = 1 + rnd.nextInt(6);
            out.append(f.push(reply.substring(i, Math.min(reply.length(), i + n))));
            i += n;
        }
        return out.append(f.push("")).append(f.finish()).toString();
    }

    /**
     * Functionary v3.2: the reply is read after its prompt's {@code >>>}; the recipient of text
     * ({@code >>>all} and a line break) is left out where it begins the reply, and nowhere else; a
     * message to a function keeps its {@code >>>}; a reply that begins with no name (no
     * recipient), or was cut short before its recipient was whole, is the model's text alone.
     */
    @Test
    void functionaryV32RepliesAreReadAfterThePromptsRecipientMark() {
        assertThat(FUNCTIONARY_V32).isEqualTo(new MarkerFilter.Envelope(">>>", ">>>all\n", List.of()));
        assertThat(MarkerFilter.Envelope.of("{{ '<|im_start|>' }}", ReasoningStream.THINK).none()).isTrue();
        Random rnd = new Random(41);
        for (String[] c : new String[][] {{"all\nHello there", "Hello there"}, {"get_weather\n{\"city\": \"Rome\"}", ">>>get_weather\n{\"city\": \"Rome\"}"},
                {"all\nSure.>>>get_time\n{}", "Sure.>>>get_time\n{}"}, {"all\nA>>>all\nB", "A>>>all\nB"}, {"al", "al"}, {"all", "all"},
                {"", ""}, {"alligator", ">>>alligator"}, {" are here", " are here"}, {"\nHi", "\nHi"}}) {
            assertThat(MarkerFilter.strip(FUNCTIONARY_V32, c[0])).as(c[0]).isEqualTo(c[1]);
            for (int trial = 0; trial < 20; trial++) {
                assertThat(pieces(FUNCTIONARY_V32, c[0], rnd)).as(c[0]).isEqualTo(c[1]);
            }
        }
    }
}
