package ai.llmref.server.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * A reply of a reasoning model, as it is generated: the reasoning between {@code <think>} and
 * {@code </think>}, and the content after it (DeepSeek R1, QwQ, Qwen 3 and the other templates
 * that write these tags; llama-server's {@code reasoning_format} "deepseek").
 *
 * <p>The reasoning begins where the prompt left a {@code <think>} open (the template's generation
 * prompt ends with it: {@code open}), or where the reply itself opens with {@code <think>} after
 * optional white space; a reply that opens with anything else is all content. The reasoning ends
 * at the first {@code </think>}; a reply cut short before it is all reasoning. White space around
 * the reasoning and between {@code </think>} and the content is dropped, as llama.cpp trims it.
 *
 * <p>With tools in the XML format (Qwen 3.5, Nemotron 3 Nano), a {@code <tool_call>} also ends the
 * reasoning, and begins the content: these models may go from reasoning to a call without
 * {@code </think>}, and llama.cpp ends their reasoning there too ({@code alsoEnds}).
 *
 * <p>Streamed or whole, a reply gives the same two texts: what {@link #push} and {@link #finish}
 * release, joined, is what {@link #split} gives the whole reply. Text that may still turn out to
 * be a tag, and white space that may turn out to be trailing, wait for the next piece.
 */
public final class ReasoningStream {
    public static final String OPEN = "<think>";
    public static final String CLOSE = "</think>";

    /**
     * What opens and closes a reply's reasoning block: {@code <think>} and {@code </think>}
     * ({@link #THINK}), Gemma 4's thought channel, {@code <|channel>thought} and {@code <channel|>}
     * ({@link #CHANNEL}), or Seed-OSS's {@code <seed:think>} and {@code </seed:think>}
     * ({@link #SEED}); the last two are control tokens that a chat reply shows as text where the
     * template is theirs.
     *
     * @param markers the tags' control tokens, which a reply must show as text to be split (Gemma
     *                4's, Seed-OSS's; none for {@code <think>}, which models have as text or as tokens shown as text)
     */
    public record Tags(String open, String close, List<String> markers) {
        /** A rendered prompt that leaves the reasoning open: it ends with the open tag and white space. */
        public boolean leftOpen(String prompt) {
            return endsWith(prompt, open);
        }

        /**
         * A rendered prompt that ends with a closed block: the template wrote the reply's (empty)
         * reasoning itself. Solar Open's close is also how any of its prompts ends (the last turn's
         * end, the reply's start), so there the whole empty block is looked for.
         */
        public boolean closedAtEnd(String prompt) {
            return endsWith(prompt, equals(SOLAR) ? open + close : close);
        }

        private static boolean endsWith(String prompt, String tag) {
            int i = prompt.length();
            while (i > 0 && isSpace(prompt.charAt(i - 1))) {
                i--;
            }
            return prompt.startsWith(tag, i - tag.length());
        }
    }

    /** {@code <think>} … {@code </think>}: DeepSeek R1, QwQ, Qwen 3 and the other templates that show both tags. */
    public static final Tags THINK = new Tags(OPEN, CLOSE, List.of());
    /** Gemma 4's thought channel: {@code <|channel>thought}, a line break, the reasoning, {@code <channel|>}. */
    public static final Tags CHANNEL = new Tags("<|channel>thought", "<channel|>", List.of("<|channel>", "<channel|>"));
    /** ByteDance Seed-OSS's {@code <seed:think>} … {@code </seed:think>} (its template's think tokens). */
    public static final Tags SEED = new Tags("<seed:think>", "</seed:think>", List.of("<seed:think>", "</seed:think>"));
    /** Command R7B's and Cohere2 MoE's {@code <|START_THINKING|>} … {@code <|END_THINKING|>}. */
    public static final Tags COHERE = new Tags("<|START_THINKING|>", "<|END_THINKING|>", List.of("<|START_THINKING|>", "<|END_THINKING|>"));
    /**
     * Apriel 1.6's reasoning: its prompt opens it with "Here are my reasoning steps:" and a line
     * break, and the model ends it with {@code [BEGIN FINAL RESPONSE]}; plain text, no control tokens.
     */
    public static final Tags APRIEL = new Tags("Here are my reasoning steps:", "[BEGIN FINAL RESPONSE]", List.of());
    /** Apertus's {@code <|inner_prefix|>} … {@code <|inner_suffix|>}. */
    public static final Tags APERTUS = new Tags("<|inner_prefix|>", "<|inner_suffix|>", List.of("<|inner_prefix|>", "<|inner_suffix|>"));
    /**
     * Kimi K3's think element, {@code <|open|>think<|sep|>} … {@code <|close|>think<|sep|>} (its
     * markers control tokens); its reply's text is then in a response element, whose markers
     * {@link #envelope} are left out of the content.
     */
    public static final Tags KIMI3 = new Tags(XmlToolCalls.K3_OPEN + "think" + XmlToolCalls.K3_SEP, XmlToolCalls.K3_CLOSE + "think"
            + XmlToolCalls.K3_SEP, List.of(XmlToolCalls.K3_OPEN, XmlToolCalls.K3_CLOSE, XmlToolCalls.K3_SEP));
    /** Kimi K3's template: its markup's markers (llama.cpp's test). */
    private static final List<String> KIMI3_SIGN = List.of(XmlToolCalls.K3_OPEN, XmlToolCalls.K3_CLOSE, ToolCalls.K3_END_OF_MESSAGE);
    /** Tencent Hy3's {@code <think:opensource>} … {@code </think:opensource>}. */
    public static final Tags HY = new Tags("<think:opensource>", "</think:opensource>", List.of("<think:opensource>", "</think:opensource>"));
    /**
     * Upstage Solar Open's reasoning: a message of its own, {@code <|think|>} … {@code <|end|>}, then
     * the reply's next message begins ({@code <|begin|>assistant}); control tokens but the role's name.
     */
    public static final Tags SOLAR = new Tags("<|think|>", "<|end|><|begin|>assistant", List.of("<|think|>", "<|end|>", "<|begin|>"));
    /**
     * MiniMax M3's {@code <mm:think>} … {@code </mm:think>}; a reply without reasoning begins with a
     * bare {@code </mm:think>} (its template writes one, and the prompt does where thinking is
     * disabled), left out of the content ({@link #leading}).
     */
    public static final Tags MINIMAX_M3 = new Tags("<mm:think>", "</mm:think>", List.of("<mm:think>", "</mm:think>"));
    /**
     * muse-glimmer's reasoning: a message to itself, {@code  to=self<|message|>} … {@code <|eom|>}
     * (the prompt ends with the message's {@code <|start|>assistant}); its answer is a message to
     * the user, whose recipient and start ({@link #envelope}) are left out of the content.
     */
    public static final Tags MUSE = new Tags("to=self<|message|>", "<|eom|>", List.of("<|start|>", "<|message|>", "<|eom|>", "<|eot|>"));
    /** Solar Open's template: its closed reasoning message (llama.cpp's sign of it). */
    private static final String SOLAR_SIGN = "<|begin|>assistant<|think|><|end|>";
    /** How Hy3's template makes its think tags (of their names and a suffix, so neither is in its source). */
    private static final String HY_SIGN = "'<think{}>'.format(HYTK)";

    /** The tags a chat template writes reasoning in (Gemma 4's channel, Seed-OSS's, Cohere's, Apertus's, Apriel 1.6's, Hy3's, or {@code <think>}), or null for none. */
    public static Tags tagsOf(String templateSource) {
        if (templateSource == null) {
            return null;
        }
        if (templateSource.contains(HY_SIGN)) {
            return HY;
        }
        if (KIMI3_SIGN.stream().allMatch(templateSource::contains)) {
            return KIMI3;
        }
        if (templateSource.contains(SOLAR_SIGN)) {
            return SOLAR;
        }
        if (templateSource.contains(MUSE.open()) && templateSource.contains(MUSE.close()) && templateSource.contains("<atem:")) {
            return MUSE;
        }
        for (Tags t : List.of(CHANNEL, SEED, COHERE, APERTUS, APRIEL, MINIMAX_M3, THINK)) {
            if (templateSource.contains(t.open()) && templateSource.contains(t.close())) {
                return t;
            }
        }
        return null;
    }

    /**
     * What a chat reply's text is wrapped in, left out of its content (the markup is no text the
     * model says): Kimi K3's response element, {@code <|open|>response<|sep|>} and
     * {@code <|close|>response<|sep|>}, and the message's end, {@code <|close|>message<|sep|>}
     * (llama.cpp's Kimi K3 parser reads them so); Solar Open's content section, {@code <|content|>};
     * muse-glimmer's next message's start, {@code <|start|>assistant}, and its message to the user
     * up to the text, {@code  to=user<|message|>}; none for other tags.
     */
    public static List<String> envelope(Tags tags) {
        return tags == KIMI3 ? List.of(ToolCalls.K3_RESPONSE, ToolCalls.K3_RESPONSE_END, XmlToolCalls.K3_CLOSE + "message" + XmlToolCalls.K3_SEP)
                : tags == SOLAR ? List.of(SOLAR_CONTENT) : tags == MUSE ? List.of(ToolCalls.MUSE_NEXT, MUSE_TO_USER) : List.of();
    }

    /** Solar Open's content section's start, and the end of its messages, left out where it ends the reply. */
    static final String SOLAR_CONTENT = "<|content|>";
    static final String SOLAR_END = "<|end|>";

    /** muse-glimmer's message to the user up to its text. */
    static final String MUSE_TO_USER = " to=user<|message|>";

    /**
     * What a chat reply's text may begin with and is left out there: MiniMax M3's bare
     * {@code </mm:think>}; muse-glimmer's message without a recipient (the user's), {@code <|message|>}; null for others.
     */
    public static String leading(Tags tags) {
        return tags == MINIMAX_M3 ? MINIMAX_M3.close() : tags == MUSE ? ToolCalls.MUSE_MESSAGE : null;
    }

    /** What a chat reply's text may end with and is left out there ({@link #envelope}): Solar Open's {@code <|end|>}, muse-glimmer's {@code <|eom|>}; null for others. */
    public static String trailing(Tags tags) {
        return tags == SOLAR ? SOLAR_END : tags == MUSE ? MUSE.close() : null;
    }

    /** What may be sent now. */
    public sealed interface Piece {
        String text();
    }

    /** Reasoning text. */
    public record Reasoning(String text) implements Piece {}

    /** Content text. */
    public record Content(String text) implements Piece {}

    /** The reply's two texts, whole. */
    public record Split(String reasoning, String content) {}

    private enum State { START, REASONING, AFTER_CLOSE, CONTENT }

    private State state;
    /** Text not yet released: in START the reply so far; in REASONING a tail that may be white space before a tag, or a tag's start. */
    private final StringBuilder held = new StringBuilder();
    /** In REASONING: no reasoning text released yet (its leading white space is dropped). */
    private boolean reasoningEmpty = true;
    /** Generated tokens counted so far ({@link #push(String, int)}), and those up to the reasoning's end (-1: not ended yet). */
    private int tokens;
    private int tokensToEnd = -1;
    private boolean reasoned;

    /** Text that also ends the reasoning and begins the content (kept there), or null. */
    private final String alsoEnds;
    /** What opens and closes the reasoning block. */
    private final Tags tags;

    /** A reply; {@code open}: the prompt left a {@code <think>} open ({@link Tags#leftOpen}). */
    public ReasoningStream(boolean open) {
        this(open, null);
    }

    /** A reply whose reasoning also ends where {@code alsoEnds} begins (null: only at {@code </think>}). */
    public ReasoningStream(boolean open, String alsoEnds) {
        this(open, alsoEnds, false);
    }

    /** As {@link #ReasoningStream(boolean, String)}; {@code harmony}: the reply is harmony messages ({@link HarmonyStream}), not tags. */
    public ReasoningStream(boolean open, String alsoEnds, boolean harmony) {
        this(open, alsoEnds, harmony, THINK);
    }

    /** A reply whose block is written with {@code tags} ({@link #THINK}, {@link #CHANNEL}, ...); other arguments as above. */
    public ReasoningStream(boolean open, String alsoEnds, boolean harmony, Tags tags) {
        state = open ? State.REASONING : State.START;
        this.alsoEnds = alsoEnds;
        this.tags = tags;
        this.harmony = harmony ? new HarmonyStream(open) : null;
    }

    /** The harmony reply's reader, or null for a reply with {@code <think>} tags. */
    private final HarmonyStream harmony;

    /** Whether a chat template writes harmony messages (GPT-OSS). */
    public static boolean harmonyUsedBy(String templateSource) {
        return HarmonyStream.usedBy(templateSource);
    }

    /** Whether a rendered harmony prompt (with any prefill) ends inside an analysis message. */
    public static boolean harmonyLeftOpen(String prompt) {
        return HarmonyStream.leftOpen(prompt);
    }

    /** A whole harmony reply's reasoning and content. */
    public static Split splitHarmony(String reply, boolean open) {
        return joined(new ReasoningStream(open, null, true), reply);
    }

    /** A whole reply's two texts, as a stream releases them. */
    private static Split joined(ReasoningStream s, String reply) {
        StringBuilder r = new StringBuilder();
        StringBuilder c = new StringBuilder();
        for (List<Piece> pieces : List.of(s.push(reply), s.finish())) {
            for (Piece p : pieces) {
                (p instanceof Reasoning ? r : c).append(p.text());
            }
        }
        return new Split(r.toString(), c.toString());
    }

    /**
     * Whether a chat template that writes reasoning tags thinks when asked: it reads
     * {@code enable_thinking} (Qwen 3, SmolLM 3, GLM 4.6, Gemma 4 and the templates that leave the block open).
     */
    public static boolean switchedBy(String templateSource) {
        return usedBy(templateSource) && templateSource.contains("enable_thinking");
    }

    /** Whether a chat template writes reasoning tags (its source shows {@code <think>} and {@code </think>}, Gemma 4's channel or Seed-OSS's tags). */
    public static boolean usedBy(String templateSource) {
        return tagsOf(templateSource) != null;
    }

    /** A whole reply's reasoning and content. */
    public static Split split(String reply, boolean open) {
        return split(reply, open, null);
    }

    /** A whole reply's reasoning and content, the reasoning also ending where {@code alsoEnds} begins. */
    public static Split split(String reply, boolean open, String alsoEnds) {
        return split(reply, open, alsoEnds, THINK);
    }

    /** As {@link #split(String, boolean, String)}, for a block written with {@code tags}. */
    public static Split split(String reply, boolean open, String alsoEnds, Tags tags) {
        if (tags == CHANNEL) { // the content's tail of empty blocks: see content()
            return joined(new ReasoningStream(open, alsoEnds, false, tags), reply);
        }
        String r;
        if (open) {
            r = reply;
        } else {
            String t = stripLeading(reply);
            if (!t.startsWith(tags.open())) {
                return new Split("", reply);
            }
            r = t.substring(tags.open().length());
        }
        int close = r.indexOf(tags.close());
        int also = alsoEnds == null ? -1 : r.indexOf(alsoEnds);
        if (also >= 0 && (close < 0 || also < close)) {
            return new Split(strip(r.substring(0, also)), r.substring(also));
        }
        if (close < 0) {
            return new Split(strip(r), "");
        }
        return new Split(strip(r.substring(0, close)), stripLeading(r.substring(close + tags.close().length())));
    }

    /**
     * Adds generated text and the tokens it counts (the engine's count for that piece); the
     * reasoning's tokens are those up to the piece that ended it ({@link #reasoningTokens}).
     */
    public List<Piece> push(String text, int tokens) {
        this.tokens += tokens;
        List<Piece> out = push(text);
        if (tokensToEnd < 0 && inContent()) {
            tokensToEnd = (harmony == null ? reasoned : harmony.reasoned()) ? this.tokens : 0;
        }
        return out;
    }

    /**
     * The generated tokens the reasoning took: up to the piece that ended it, all of
     * {@code total} for a reply that ended inside it, 0 without reasoning.
     */
    public int reasoningTokens(int total) {
        if (!(harmony == null ? reasoned : harmony.reasoned())) {
            return 0;
        }
        return tokensToEnd >= 0 ? tokensToEnd : total;
    }

    /** Adds generated text; returns what may be sent now (possibly nothing). */
    public List<Piece> push(String text) {
        if (harmony != null) {
            return harmony.push(text);
        }
        List<Piece> out = new ArrayList<>(2);
        String rest = text;
        while (!rest.isEmpty()) {
            rest = switch (state) {
                case START -> start(rest, out);
                case REASONING -> reasoning(rest, out);
                case AFTER_CLOSE -> {
                    String t = stripLeading(rest);
                    if (!t.isEmpty()) {
                        state = State.CONTENT;
                    }
                    yield t;
                }
                case CONTENT -> {
                    content(rest, out);
                    yield "";
                }
            };
        }
        return out;
    }

    /** The reply ended: what was held is released. */
    public List<Piece> finish() {
        if (harmony != null) {
            return harmony.finish();
        }
        List<Piece> out = new ArrayList<>(1);
        if (state == State.CONTENT && !held.isEmpty() && artifact(held) != Artifact.WHOLE) { // Gemma 4's only (content())
            out.add(new Content(held.toString())); // markers with text of their own: content, as written
        } else if (state == State.START && !held.isEmpty()) {
            out.add(new Content(held.toString())); // white space, or the start of a tag that never came
        } else if (state == State.REASONING) {
            String tail = stripTrailing(held.toString()); // a tag's start stays; white space before the end goes
            if (!tail.isEmpty()) {
                out.add(new Reasoning(tail));
                reasoned = true;
            }
        }
        held.setLength(0);
        if (state != State.CONTENT) {
            state = State.CONTENT;
        }
        return out;
    }

    /** The reply is inside its reasoning now (not before a block opens, not after it closes). */
    public boolean inReasoning() {
        if (harmony != null) {
            return harmony.inReasoning();
        }
        return state == State.REASONING;
    }

    /** The reply has left its reasoning (or had none): what comes now is content. */
    public boolean inContent() {
        if (harmony != null) {
            return harmony.inContent();
        }
        return state == State.CONTENT || state == State.AFTER_CLOSE;
    }

    /**
     * Content text. Where the tags are tokens (Gemma 4's), the content's tail of empty blocks
     * ({@code <|channel>thought} and {@code <channel|>} with white space at most between) and lone
     * {@code <channel|>}s is held, and left out at the reply's end: Gemma 4 may write them after
     * its answer, and llama.cpp leaves them out too. Followed by other text, they are content.
     */
    private void content(String text, List<Piece> out) {
        if (tags != CHANNEL) {
            out.add(new Content(text));
            return;
        }
        held.append(text);
        int send = held.length();
        if (!blockInContent) { // after a block with text of its own in the content, a close is that block's
            for (int lt = held.indexOf("<"); lt >= 0; lt = held.indexOf("<", lt + 1)) {
                if (artifact(held.subSequence(lt, held.length())) != Artifact.NONE) {
                    send = lt;
                    break;
                }
            }
        }
        if (held.substring(0, send).contains(tags.open())) {
            send = held.length(); // the block's close follows: no empty block's
            blockInContent = true;
        }
        if (send > 0) {
            out.add(new Content(held.substring(0, send)));
        }
        held.delete(0, send);
    }

    /** Content released so far holds a block with text of its own (Gemma 4's markers shown as written). */
    private boolean blockInContent;

    private enum Artifact { NONE, PART, WHOLE }

    /** Whether text is empty blocks and lone closes ({@link #content}), all of them or the start of some, or neither. */
    private Artifact artifact(CharSequence text) {
        String s = text.toString();
        int i = 0;
        while (i < s.length()) {
            if (isSpace(s.charAt(i))) {
                i++;
                continue;
            }
            if (s.startsWith(tags.close(), i)) {
                i += tags.close().length();
                continue;
            }
            if (s.startsWith(tags.open(), i)) {
                int j = i + tags.open().length();
                while (j < s.length() && isSpace(s.charAt(j))) {
                    j++;
                }
                if (s.startsWith(tags.close(), j)) {
                    i = j + tags.close().length();
                    continue;
                }
                return tags.close().startsWith(s.substring(j)) ? Artifact.PART : Artifact.NONE;
            }
            String rest = s.substring(i);
            return tags.close().startsWith(rest) || tags.open().startsWith(rest) ? Artifact.PART : Artifact.NONE;
        }
        return Artifact.WHOLE;
    }

    private String start(String text, List<Piece> out) {
        held.append(text);
        String t = stripLeading(held.toString());
        if (t.startsWith(tags.open())) {
            held.setLength(0);
            state = State.REASONING;
            return t.substring(tags.open().length());
        }
        if (!tags.open().startsWith(t)) { // not a reasoning reply: all of it is content
            String all = held.toString();
            held.setLength(0);
            state = State.CONTENT;
            content(all, out);
        }
        return "";
    }

    private String reasoning(String text, List<Piece> out) {
        held.append(text);
        String h = held.toString();
        if (reasoningEmpty) {
            h = stripLeading(h);
        }
        int close = h.indexOf(tags.close());
        int also = alsoEnds == null ? -1 : h.indexOf(alsoEnds);
        if (also >= 0 && (close < 0 || also < close)) {
            String r = stripTrailing(h.substring(0, also));
            if (!r.isEmpty()) {
                out.add(new Reasoning(r));
                reasoned = true;
            }
            held.setLength(0);
            state = State.CONTENT; // the marker is the content's start
            out.add(new Content(h.substring(also)));
            return "";
        }
        if (close >= 0) {
            String r = stripTrailing(h.substring(0, close));
            if (!r.isEmpty()) {
                out.add(new Reasoning(r));
                reasoned = true;
            }
            held.setLength(0);
            state = State.AFTER_CLOSE;
            return h.substring(close + tags.close().length());
        }
        // hold a tail that may begin the tag (or the other end), and the white space before it
        int keep = Math.min(h.length() - partial(h, tags.close()), alsoEnds == null ? h.length() : h.length() - partial(h, alsoEnds));
        int send = keep;
        while (send > 0 && isSpace(h.charAt(send - 1))) {
            send--;
        }
        if (send > 0) {
            out.add(new Reasoning(h.substring(0, send)));
            reasoned = true;
            reasoningEmpty = false;
        }
        held.setLength(0);
        held.append(h, send, h.length());
        return "";
    }

    /**
     * The length of the longest tail of {@code h} that begins {@code tag} (but is not all of it):
     * what a stream holds back until the next piece shows whether the tag came (shared by the
     * reasoning, harmony and tool-call streams).
     */
    static int partial(CharSequence h, String tag) {
        for (int k = Math.min(tag.length() - 1, h.length()); k > 0; k--) {
            int from = h.length() - k;
            int i = 0;
            while (i < k && h.charAt(from + i) == tag.charAt(i)) {
                i++;
            }
            if (i == k) {
                return k;
            }
        }
        return 0;
    }

    private static boolean isSpace(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
    }

    private static String stripLeading(String s) {
        int i = 0;
        while (i < s.length() && isSpace(s.charAt(i))) {
            i++;
        }
        return s.substring(i);
    }

    private static String stripTrailing(String s) {
        int i = s.length();
        while (i > 0 && isSpace(s.charAt(i - 1))) {
            i--;
        }
        return s.substring(0, i);
    }

    private static String strip(String s) {
        return stripTrailing(stripLeading(s));
    }
}
