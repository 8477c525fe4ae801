package ai.llmref.server.structured;

import ai.llmref.server.chat.ChatTemplateRenderer;
import java.util.ArrayList;
import java.util.List;

/**
 * A reply in OpenAI's harmony format (GPT-OSS), as it is generated: messages on channels, the
 * {@code analysis} channel's text the reasoning, the others' ({@code final}, {@code commentary}
 * preambles) the content:
 *
 * <pre>
 * &lt;|channel|&gt;analysis&lt;|message|&gt;REASONING&lt;|end|&gt;&lt;|start|&gt;assistant&lt;|channel|&gt;final&lt;|message|&gt;CONTENT
 * </pre>
 *
 * <p>llama.cpp shows {@code <|channel|>}, {@code <|message|>}, {@code <|start|>} and
 * {@code <|constrain|>} as their text in any output (a rule of its vocabulary for GPT-OSS) and
 * {@code <|end|>} as nothing, so the text read here has the first four and may lack the last: a
 * message's text ends at {@code <|end|>} or at the {@code <|start|>} of the next. A reply that does
 * not open with {@code <|channel|>} is all content; a header that never reaches its
 * {@code <|message|>} is content as written. A message to a function (a call: {@code to=} in its
 * role or header) and all after it are content as written from its {@code to=}, for the tool-call
 * format to read ({@link ToolCalls.Format#HARMONY}). Streamed or whole, a reply gives the same two texts.
 */
final class HarmonyStream {
    static final String CHANNEL = "<|channel|>";
    static final String MESSAGE = "<|message|>";
    static final String START = "<|start|>";
    static final String END = "<|end|>";
    /** The longest header read before it is taken for text (a channel, a recipient, a content type). */
    private static final int MAX_HEADER = 256;

    private enum State { START_OF_REPLY, HEADER, BODY, BETWEEN, ROLE, CONTENT }

    private State state;
    private final StringBuilder held = new StringBuilder();
    /** In BODY: the message's text is reasoning (the analysis channel). */
    private boolean analysis;
    private boolean reasoned;

    /** A reply; {@code open}: the prompt left an analysis message open (the reply begins with its text). */
    HarmonyStream(boolean open) {
        state = open ? State.BODY : State.START_OF_REPLY;
        analysis = open;
    }

    /** Whether a chat template writes harmony messages. */
    static boolean usedBy(String templateSource) {
        return templateSource != null && ChatTemplateRenderer.writesHarmony(templateSource);
    }

    /** Whether a rendered prompt (with any prefill) ends inside an analysis message. */
    static boolean leftOpen(String prompt) {
        int channel = prompt.lastIndexOf(CHANNEL);
        if (channel < 0) {
            return false;
        }
        String tail = prompt.substring(channel + CHANNEL.length());
        int message = tail.indexOf(MESSAGE);
        return tail.startsWith("analysis") && message >= 0 && !tail.contains(END) && !tail.contains(START)
                && !tail.substring(message).contains("<|return|>");
    }

    boolean reasoned() {
        return reasoned;
    }

    boolean inReasoning() {
        return state == State.BODY && analysis;
    }

    /** Past the reasoning: in a message that is content, or a reply without messages. */
    boolean inContent() {
        return state == State.CONTENT || state == State.BODY && !analysis;
    }

    List<ReasoningStream.Piece> push(String text) {
        List<ReasoningStream.Piece> out = new ArrayList<>(2);
        held.append(text);
        boolean progress = true;
        while (progress && !held.isEmpty()) {
            progress = switch (state) {
                case START_OF_REPLY -> startOfReply(out);
                case HEADER -> header(out);
                case BODY -> body(out);
                case BETWEEN -> between(out);
                case ROLE -> role(out);
                case CONTENT -> {
                    out.add(new ReasoningStream.Content(held.toString()));
                    held.setLength(0);
                    yield false;
                }
            };
        }
        return out;
    }

    List<ReasoningStream.Piece> finish() {
        List<ReasoningStream.Piece> out = new ArrayList<>(1);
        if (!held.isEmpty()) {
            if (state == State.BODY) {
                emit(held.toString(), out); // a tag's start that never came is text
            } else {
                out.add(new ReasoningStream.Content(held.toString())); // a header or role that never ended (CONTENT holds nothing)
            }
            held.setLength(0);
        }
        state = State.CONTENT;
        return out;
    }

    /** The text, from a recipient's {@code to=} on, is content as written (a call). */
    private static final String RECIPIENT = "to=";

    private boolean startOfReply(List<ReasoningStream.Piece> out) {
        String h = held.toString();
        String lead = h.stripLeading();
        if (lead.startsWith(RECIPIENT)) {
            held.delete(0, h.length() - lead.length());
            state = State.CONTENT; // the reply is a call (the generation prompt left the role open)
            return true;
        }
        if (lead.startsWith(CHANNEL)) {
            held.delete(0, h.length() - lead.length() + CHANNEL.length());
            state = State.HEADER;
            return true;
        }
        if (!CHANNEL.startsWith(lead) && !RECIPIENT.startsWith(lead)) {
            state = State.CONTENT; // not a harmony reply: all of it is content
            return true;
        }
        return false;
    }

    private boolean header(List<ReasoningStream.Piece> out) {
        int message = held.indexOf(MESSAGE);
        if (tooLong(message)) {
            held.insert(0, CHANNEL); // not a header: the text as written
            state = State.CONTENT;
            return true;
        }
        if (message < 0) {
            return false;
        }
        String header = held.substring(0, message);
        int to = header.indexOf(RECIPIENT);
        if (to >= 0) { // a call: "<|channel|>commentary to=functions.NAME ..."
            held.delete(0, to);
            state = State.CONTENT;
            return true;
        }
        int cut = header.length();
        for (String stop : new String[] {" ", "<|constrain|>"}) {
            int at = header.indexOf(stop);
            cut = at >= 0 ? Math.min(cut, at) : cut;
        }
        analysis = header.substring(0, cut).strip().equals("analysis");
        held.delete(0, message + MESSAGE.length());
        state = State.BODY;
        return true;
    }

    private boolean body(List<ReasoningStream.Piece> out) {
        String h = held.toString();
        int end = h.indexOf(END);
        int start = h.indexOf(START);
        int stop = end < 0 ? start : start < 0 ? end : Math.min(end, start);
        if (stop >= 0) {
            emit(h.substring(0, stop), out);
            boolean atEnd = stop == end;
            held.delete(0, stop + (atEnd ? END.length() : START.length()));
            state = atEnd ? State.BETWEEN : State.ROLE;
            return true;
        }
        int keep = Math.max(ReasoningStream.partial(h, END), ReasoningStream.partial(h, START));
        emit(h.substring(0, h.length() - keep), out);
        held.delete(0, h.length() - keep);
        return false;
    }

    /** After {@code <|end|>}: the next message's {@code <|start|>}, or text (content as written). */
    private boolean between(List<ReasoningStream.Piece> out) {
        String h = held.toString();
        if (h.startsWith(START)) {
            held.delete(0, START.length());
            state = State.ROLE;
            return true;
        }
        if (!START.startsWith(h)) {
            state = State.CONTENT;
            return true;
        }
        return false;
    }

    /** After {@code <|start|>}: the role, up to the next message's {@code <|channel|>}. */
    private boolean role(List<ReasoningStream.Piece> out) {
        int channel = held.indexOf(CHANNEL);
        if (tooLong(channel)) {
            held.insert(0, START);
            state = State.CONTENT;
            return true;
        }
        if (channel < 0) {
            return false;
        }
        int to = held.substring(0, channel).indexOf(RECIPIENT);
        if (to >= 0) { // a call: "<|start|>assistant to=functions.NAME<|channel|>commentary ..."
            held.delete(0, to);
            state = State.CONTENT;
            return true;
        }
        held.delete(0, channel + CHANNEL.length());
        state = State.HEADER;
        return true;
    }

    /**
     * Whether a header (or role) is too long to be one: the tag that ends it ({@code at}, -1 while
     * not seen) begins past {@link #MAX_HEADER}, or can no longer begin before it. Decided on the
     * text alone, so that pieces of any size decide alike.
     */
    private boolean tooLong(int at) {
        return at > MAX_HEADER || at < 0 && held.length() >= MAX_HEADER + MESSAGE.length();
    }

    private void emit(String text, List<ReasoningStream.Piece> out) {
        if (text.isEmpty()) {
            return;
        }
        if (analysis) {
            out.add(new ReasoningStream.Reasoning(text));
            reasoned = true;
        } else {
            out.add(new ReasoningStream.Content(text));
        }
    }
}
