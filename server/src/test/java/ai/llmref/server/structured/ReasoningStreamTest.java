package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link ReasoningStream}: the reasoning and the content of a reply, whole and streamed alike. */
class ReasoningStreamTest {

    private static ReasoningStream.Split streamed(String reply, boolean open, List<String> pieces) {
        return streamed(reply, open, null, pieces);
    }

    private static ReasoningStream.Split streamed(String reply, boolean open, String alsoEnds, List<String> pieces) {
        ReasoningStream s = new ReasoningStream(open, alsoEnds);
        StringBuilder reasoning = new StringBuilder();
        StringBuilder content = new StringBuilder();
        for (String piece : pieces) {
            collect(s.push(piece), reasoning, content);
        }
        collect(s.finish(), reasoning, content);
        return new ReasoningStream.Split(reasoning.toString(), content.toString());
    }

    private static void collect(List<ReasoningStream.Piece> out, StringBuilder reasoning, StringBuilder content) {
        for (ReasoningStream.Piece p : out) {
            assertThat(p.text()).as("no empty piece").isNotEmpty();
            (p instanceof ReasoningStream.Reasoning ? reasoning : content).append(p.text());
        }
    }

    @Test
    void aReplySplitsAtItsTags() {
        assertThat(ReasoningStream.split("<think>\nLet me see.\n</think>\n\nParis.", false))
                .isEqualTo(new ReasoningStream.Split("Let me see.", "Paris."));
        assertThat(ReasoningStream.split("  <think>a</think>b", false)).isEqualTo(new ReasoningStream.Split("a", "b"));
        assertThat(ReasoningStream.split("Paris. <think>no</think>", false)).as("a tag after text is content")
                .isEqualTo(new ReasoningStream.Split("", "Paris. <think>no</think>"));
        assertThat(ReasoningStream.split("Let me see.\n</think>\n\nParis.", true)).as("the prompt left <think> open")
                .isEqualTo(new ReasoningStream.Split("Let me see.", "Paris."));
        assertThat(ReasoningStream.split("Let me see, cut short", true)).isEqualTo(new ReasoningStream.Split("Let me see, cut short", ""));
        assertThat(ReasoningStream.split("<think>still thinking", false)).isEqualTo(new ReasoningStream.Split("still thinking", ""));
        assertThat(ReasoningStream.split("a</think>b</think>c", true)).as("the first close ends it")
                .isEqualTo(new ReasoningStream.Split("a", "b</think>c"));
        assertThat(ReasoningStream.split("<think></think>\n\nHi", false)).isEqualTo(new ReasoningStream.Split("", "Hi"));
        assertThat(ReasoningStream.split(" Hi ", false)).as("content is as written").isEqualTo(new ReasoningStream.Split("", " Hi "));
    }

    /**
     * Gemma 4's thought channel: {@code <|channel>thought}, a line break, the reasoning and
     * {@code <channel|>} (its markers shown as text); the same reply split whole and streamed in
     * pieces of every size; the prompt's open and closed channel; the tags read from Gemma 4's
     * template, {@code <think>} from others.
     */
    @Test
    void gemmasThoughtChannelIsTheReasoning() throws Exception {
        ReasoningStream.Tags g = ReasoningStream.CHANNEL;
        String reply = "<|channel>thought\nThe user wants a city.\n<channel|>Paris.";
        assertThat(ReasoningStream.split(reply, false, null, g)).isEqualTo(new ReasoningStream.Split("The user wants a city.", "Paris."));
        assertThat(ReasoningStream.split(reply, false)).as("not <think>: all content").isEqualTo(new ReasoningStream.Split("", reply));
        assertThat(ReasoningStream.split("Paris.", false, null, g)).isEqualTo(new ReasoningStream.Split("", "Paris."));
        assertThat(ReasoningStream.split("Hmm.\n<channel|>Paris.", true, null, g)).as("the prompt opened the channel")
                .isEqualTo(new ReasoningStream.Split("Hmm.", "Paris."));
        assertThat(ReasoningStream.split("<|channel>thought\ncut sh", false, null, g)).isEqualTo(new ReasoningStream.Split("cut sh", ""));
        for (int size = 1; size <= reply.length(); size++) {
            ReasoningStream s = new ReasoningStream(false, null, false, g);
            StringBuilder reasoning = new StringBuilder();
            StringBuilder content = new StringBuilder();
            for (int at = 0; at < reply.length(); at += size) {
                collect(s.push(reply.substring(at, Math.min(reply.length(), at + size))), reasoning, content);
            }
            collect(s.finish(), reasoning, content);
            assertThat(reasoning.toString()).as("pieces of " + size).isEqualTo("The user wants a city.");
            assertThat(content.toString()).isEqualTo("Paris.");
        }
        // the content's tail of empty blocks and lone closes, which Gemma 4 may write after its answer, is left out
        for (String[] c : new String[][] {{"<|channel>thought\nR<channel|>Paris.<|channel>thought\n<channel|>", "R", "Paris."},
                {"Paris.<channel|>", "", "Paris."}, {"Paris.\n<|channel>thought <channel|><channel|>\n", "", "Paris.\n"},
                {"Paris.<|channel>thought\nmore<channel|>", "", "Paris.<|channel>thought\nmore<channel|>"},
                {"Paris. <channel|> and more", "", "Paris. <channel|> and more"}, {"Paris.<|channel>thou", "", "Paris.<|channel>thou"},
                {"a < b <channel|>", "", "a < b "}}) {
            assertThat(ReasoningStream.split(c[0], false, null, g)).as(c[0]).isEqualTo(new ReasoningStream.Split(c[1], c[2]));
            for (int size = 1; size <= c[0].length(); size++) {
                ReasoningStream s = new ReasoningStream(false, null, false, g);
                StringBuilder reasoning = new StringBuilder();
                StringBuilder content = new StringBuilder();
                for (int at = 0; at < c[0].length(); at += size) {
                    collect(s.push(c[0].substring(at, Math.min(c[0].length(), at + size))), reasoning, content);
                }
                collect(s.finish(), reasoning, content);
                assertThat(new ReasoningStream.Split(reasoning.toString(), content.toString())).as(c[0] + " in pieces of " + size)
                        .isEqualTo(new ReasoningStream.Split(c[1], c[2]));
            }
        }
        assertThat(g.leftOpen("<|turn>model\n<|channel>thought\n")).isTrue();
        assertThat(g.leftOpen("<|turn>model\n<|channel>thought\n<channel|>")).isFalse();
        assertThat(g.closedAtEnd("<|turn>model\n<|channel>thought\n<channel|>")).as("asked not to think").isTrue();
        assertThat(g.closedAtEnd("<|turn>model\n")).isFalse();
        assertThat(ReasoningStream.THINK.leftOpen("<|turn>model\n<|channel>thought\n")).isFalse();
        java.nio.file.Path templates = XmlToolCallsTest.templatesDir();
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("google-gemma-4-31B-it.jinja")))).isSameAs(g);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("google-gemma-4-31B-it-interleaved.jinja"))))
                .isSameAs(g);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("Qwen-Qwen3-0.6B.jinja"))))
                .isSameAs(ReasoningStream.THINK);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("google-gemma-2-2b-it.jinja")))).isNull();
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("ByteDance-Seed-OSS.jinja"))))
                .isSameAs(ReasoningStream.SEED);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("Cohere2MoE.jinja")))).isSameAs(ReasoningStream.COHERE);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("Apertus-8B-Instruct.jinja"))))
                .isSameAs(ReasoningStream.APERTUS);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("tencent-Hy3.jinja")))).isSameAs(ReasoningStream.HY);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("MiniMax-M3.jinja")))).isSameAs(ReasoningStream.MINIMAX_M3);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("muse-glimmer.jinja")))).isSameAs(ReasoningStream.MUSE);
        assertThat(ReasoningStream.split("<mm:think>hm</mm:think>Hi", false, null, ReasoningStream.MINIMAX_M3))
                .isEqualTo(new ReasoningStream.Split("hm", "Hi"));
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("upstage-Solar-Open-100B.jinja"))))
                .isSameAs(ReasoningStream.SOLAR);
        // Solar Open's low effort: the template writes an empty reasoning message before the reply's
        assertThat(ReasoningStream.SOLAR.closedAtEnd("<|begin|>assistant<|think|><|end|><|begin|>assistant")).isTrue();
        assertThat(ReasoningStream.SOLAR.closedAtEnd("<|end|><|begin|>user<|content|>Hi<|end|><|begin|>assistant")).isFalse();
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("Apriel-1.6-15b-Thinker-fixed.jinja"))))
                .isSameAs(ReasoningStream.APRIEL);
        assertThat(ReasoningStream.tagsOf(java.nio.file.Files.readString(templates.resolve("unsloth-Apriel-1.5.jinja")))).as("no opening")
                .isNull();
        assertThat(ReasoningStream.split("First, the sky.\n[BEGIN FINAL RESPONSE]\nBlue.", true, null, ReasoningStream.APRIEL))
                .isEqualTo(new ReasoningStream.Split("First, the sky.", "Blue."));
        assertThat(ReasoningStream.split("<|inner_prefix|>hm<|inner_suffix|>Hi", false, null, ReasoningStream.APERTUS))
                .isEqualTo(new ReasoningStream.Split("hm", "Hi"));
        assertThat(ReasoningStream.split("hm\n</think:opensource>\n\nHi", true, null, ReasoningStream.HY))
                .isEqualTo(new ReasoningStream.Split("hm", "Hi"));
        assertThat(ReasoningStream.split("<seed:think>\nhm\n</seed:think>\nHi", false, null, ReasoningStream.SEED))
                .isEqualTo(new ReasoningStream.Split("hm", "Hi"));
    }

    @Test
    void thePromptsOpenTagIsFound() {
        assertThat(ReasoningStream.THINK.leftOpen("<|im_start|>assistant\n<think>\n")).isTrue();
        assertThat(ReasoningStream.THINK.leftOpen("<｜Assistant｜><think>\n")).isTrue();
        assertThat(ReasoningStream.THINK.leftOpen("<|im_start|>assistant\n<think>\n\n</think>\n\n")).isFalse();
        assertThat(ReasoningStream.THINK.leftOpen("<|im_start|>assistant\n")).isFalse();
        assertThat(ReasoningStream.usedBy("{{ '<think>' }}{{ x.split('</think>') }}")).isTrue();
        assertThat(ReasoningStream.usedBy("{{ '<|im_start|>' }}")).isFalse();
    }

    @Test
    void textThatMayBeATagWaits() {
        ReasoningStream s = new ReasoningStream(false);
        assertThat(s.push(" <thi")).isEmpty();
        assertThat(s.push("nk>\nI")).containsExactly(new ReasoningStream.Reasoning("I"));
        assertThat(s.push(" think </th")).containsExactly(new ReasoningStream.Reasoning(" think"));
        assertThat(s.push("ink>\n")).isEmpty();
        assertThat(s.inContent()).isTrue();
        assertThat(s.push("\nParis")).containsExactly(new ReasoningStream.Content("Paris"));
        assertThat(s.finish()).isEmpty();
        ReasoningStream plain = new ReasoningStream(false);
        assertThat(plain.push("<b")).containsExactly(new ReasoningStream.Content("<b"));
        assertThat(plain.push("old>")).containsExactly(new ReasoningStream.Content("old>"));
    }

    /**
     * The reasoning's tokens: those of the pieces up to the one that ended it (the piece with
     * {@code </think>} counts whole), all of them for a reply that ended inside it, 0 without.
     */
    @Test
    void theReasoningsTokensAreCounted() {
        ReasoningStream s = new ReasoningStream(false);
        s.push("<think>", 1);
        s.push("Let", 1);
        s.push(" me", 1);
        s.push(" see</th", 2);
        s.push("ink>\n\nPar", 2);
        s.push("is", 1);
        s.finish();
        assertThat(s.reasoningTokens(8)).as("through the piece with </think> (7 of 8)").isEqualTo(7);
        ReasoningStream cut = new ReasoningStream(true);
        cut.push("Let", 1);
        cut.push(" me", 1);
        cut.finish();
        assertThat(cut.reasoningTokens(3)).as("ended inside: all of the reply").isEqualTo(3);
        ReasoningStream none = new ReasoningStream(false);
        none.push("Hi", 1);
        none.push(" <think>x</think>", 3);
        none.finish();
        assertThat(none.reasoningTokens(4)).isZero();
        ReasoningStream empty = new ReasoningStream(true);
        empty.push("\n</think>", 2);
        empty.push("Hi", 1);
        assertThat(empty.reasoningTokens(3)).as("an empty block is no reasoning").isZero();
    }

    /**
     * With tools in the XML format, a call also ends the reasoning (Qwen 3.5 may call without
     * closing it): the call is the content's start; before it, and without that end, it is reasoning.
     */
    @Test
    void aCallAlsoEndsTheReasoningWhereAsked() {
        String reply = "I should check the weather.\n<tool_call>\n<function=get_weather>\n</function>\n</tool_call>";
        assertThat(ReasoningStream.split(reply, true, "<tool_call>"))
                .isEqualTo(new ReasoningStream.Split("I should check the weather.", reply.substring(reply.indexOf("<tool_call>"))));
        assertThat(ReasoningStream.split(reply, true)).isEqualTo(new ReasoningStream.Split(reply, ""));
        assertThat(ReasoningStream.split("a</think>b<tool_call>", true, "<tool_call>")).as("</think> first")
                .isEqualTo(new ReasoningStream.Split("a", "b<tool_call>"));
        ReasoningStream s = new ReasoningStream(true, "<tool_call>");
        assertThat(s.push("Let me call. <tool_")).containsExactly(new ReasoningStream.Reasoning("Let me call."));
        assertThat(s.inReasoning()).isTrue();
        assertThat(s.push("call>\n<function=f>")).containsExactly(new ReasoningStream.Content("<tool_call>\n<function=f>"));
        assertThat(s.inContent()).isTrue();
    }

    /**
     * GPT-OSS's harmony messages: the analysis channel is the reasoning, the final channel (and a
     * commentary preamble) the content; the markers are llama.cpp's rendering of them as text
     * ({@code <|end|>} too, or not at all). A reply without messages is content.
     */
    @Test
    void harmonyMessagesSplitByChannel() {
        String reply = "<|channel|>analysis<|message|>User says hi. Respond.<|end|><|start|>assistant<|channel|>final<|message|>Hello!";
        assertThat(ReasoningStream.splitHarmony(reply, false)).isEqualTo(new ReasoningStream.Split("User says hi. Respond.", "Hello!"));
        assertThat(ReasoningStream.splitHarmony(reply.replace("<|end|>", ""), false))
                .isEqualTo(new ReasoningStream.Split("User says hi. Respond.", "Hello!"));
        assertThat(ReasoningStream.splitHarmony("Think more.<|end|><|start|>assistant<|channel|>final<|message|>Yes", true))
                .as("the prompt left the analysis open").isEqualTo(new ReasoningStream.Split("Think more.", "Yes"));
        assertThat(ReasoningStream.splitHarmony("<|channel|>final <|constrain|>json<|message|>{\"a\":1}", false))
                .isEqualTo(new ReasoningStream.Split("", "{\"a\":1}"));
        assertThat(ReasoningStream.splitHarmony("Plain words.", false)).isEqualTo(new ReasoningStream.Split("", "Plain words."));
        String longHeader = "<|channel|>" + "x".repeat(300) + "<|message|>text";
        assertThat(ReasoningStream.splitHarmony(longHeader, false)).as("not a header").isEqualTo(new ReasoningStream.Split("", longHeader));
        assertThat(ReasoningStream.harmonyLeftOpen("<|start|>assistant<|channel|>analysis<|message|>Let me")).isTrue();
        assertThat(ReasoningStream.harmonyLeftOpen("<|start|>assistant<|channel|>analysis<|message|>x<|end|><|start|>assistant")).isFalse();
        assertThat(ReasoningStream.harmonyLeftOpen("<|start|>assistant")).isFalse();
        ReasoningStream s = new ReasoningStream(false, null, true);
        assertThat(s.push("<|channel|>analysis<|mess")).isEmpty();
        assertThat(s.push("age|>Hmm<|e")).containsExactly(new ReasoningStream.Reasoning("Hmm"));
        assertThat(s.inReasoning()).isTrue();
        assertThat(s.push("nd|><|start|>assistant<|channel|>final<|message|>Hi")).containsExactly(new ReasoningStream.Content("Hi"));
        assertThat(s.inContent()).isTrue();
    }

    /** Random replies, split at random places, streamed give what the whole reply gives. */
    @Test
    void streamedGivesWhatWholeGives() {
        Random rnd = new Random(20261128);
        String[] atoms = {"<think>", "</think>", "<", "</", "</th", "<thi", "think", ">", " ", "\n", "\t", "a", "Paris", "é", "😀", "\n\n",
            "<tool_call>", "<tool_"};
        for (int i = 0; i < 20_000; i++) {
            StringBuilder reply = new StringBuilder();
            int n = rnd.nextInt(12);
            for (int k = 0; k < n; k++) {
                reply.append(atoms[rnd.nextInt(atoms.length)]);
            }
            String r = reply.toString();
            boolean open = rnd.nextBoolean();
            List<String> pieces = new java.util.ArrayList<>();
            int at = 0;
            while (at < r.length()) {
                int len = 1 + rnd.nextInt(Math.min(6, r.length() - at));
                if (Character.isHighSurrogate(r.charAt(at + len - 1)) && at + len < r.length()) {
                    len++; // a piece never splits a surrogate pair (the detokenizer sends whole characters)
                }
                pieces.add(r.substring(at, at + len));
                at += len;
            }
            String also = rnd.nextBoolean() ? "<tool_call>" : null;
            if (rnd.nextInt(4) == 0) { // harmony messages, of the same atoms and the markers
                String h = r.replace("<think>", "<|channel|>analysis<|message|>").replace("</think>", "<|end|><|start|>assistant<|channel|>final<|message|>")
                        .replace("<tool_", "<|start|>").replace("think", "<|end|>");
                ReasoningStream hs = new ReasoningStream(open, null, true);
                StringBuilder hr = new StringBuilder();
                StringBuilder hc = new StringBuilder();
                for (int hat = 0; hat < h.length(); ) {
                    int len = Math.min(h.length() - hat, 1 + rnd.nextInt(6));
                    if (Character.isHighSurrogate(h.charAt(hat + len - 1)) && hat + len < h.length()) {
                        len++;
                    }
                    collect(hs.push(h.substring(hat, hat + len)), hr, hc);
                    hat += len;
                }
                collect(hs.finish(), hr, hc);
                assertThat(new ReasoningStream.Split(hr.toString(), hc.toString())).as(h).isEqualTo(ReasoningStream.splitHarmony(h, open));
                continue;
            }
            assertThat(streamed(r, open, also, pieces)).as("%s open=%s also=%s pieces=%s", r, open, also, pieces)
                    .isEqualTo(ReasoningStream.split(r, open, also));
            assertThat(streamed(r, open, also, List.of(r))).isEqualTo(ReasoningStream.split(r, open, also));
        }
    }
}
