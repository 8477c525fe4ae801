package ai.llmref.server.structured;

import java.util.List;

/**
 * A chat reply's text as it comes, without the markup its template wraps it in
 * ({@link Envelope}): markers left out wherever they stand (Kimi K3's response element), and a
 * reply that begins inside markup its prompt opened read with that markup's start (Functionary
 * v3.2's prompt ends with {@code >>>}, the reply's first recipient after it; a leading
 * {@code >>>all\n}, the recipient of text, is left out; a reply that begins with no name is text),
 * and markup that ends the reply left out there (Solar Open's {@code <|end|>}, after its content section),
 * or begins it (MiniMax M3's bare {@code </mm:think>} before a reply without reasoning).
 * What {@link #push} and {@link #finish}
 * release, joined, is the whole text so read. A tail that may begin a marker waits for the next
 * piece; at the end it is text.
 */
public final class MarkerFilter {
    /**
     * What a template wraps a reply's text in: {@code prefix}, what its prompt opened (the reply
     * read after it where it begins with a name, a recipient's); {@code leading}, markup left out
     * where it begins the reply (null: none);
     * {@code markers}, markup left out wherever it stands; {@code trailing}, markup left out where
     * it ends the reply, white space at most after it (null: none).
     */
    public record Envelope(String prefix, String leading, List<String> markers, String trailing) {
        public static final Envelope NONE = new Envelope("", null, List.of());

        public Envelope {
            markers = List.copyOf(markers);
        }

        public Envelope(String prefix, String leading, List<String> markers) {
            this(prefix, leading, markers, null);
        }

        /** No markup. */
        public boolean none() {
            return prefix.isEmpty() && leading == null && markers.isEmpty() && trailing == null;
        }

        /** A template's envelope: Kimi K3's response element ({@link ReasoningStream#envelope}), Functionary v3.2's recipients. */
        public static Envelope of(String templateSource, ReasoningStream.Tags tags) {
            if (templateSource != null && templateSource.contains(ToolCalls.FUNCTIONARY_V32_TEXT)) {
                return new Envelope(ToolCalls.FUNCTIONARY_V32_OPEN, ToolCalls.FUNCTIONARY_V32_TEXT + "\n", List.of());
            }
            List<String> markers = ReasoningStream.envelope(tags);
            String trailing = ReasoningStream.trailing(tags);
            String leading = ReasoningStream.leading(tags);
            return markers.isEmpty() && trailing == null && leading == null ? NONE : new Envelope("", leading, markers, trailing);
        }
    }

    private final Envelope envelope;
    private final StringBuilder held = new StringBuilder();
    private boolean started;
    /** Whether the reply's start is read (its leading markup left out, or not there). */
    private boolean leadingRead;

    public MarkerFilter(Envelope envelope) {
        this.envelope = envelope;
        this.leadingRead = envelope.leading() == null;
    }

    public MarkerFilter(List<String> markers) {
        this(new Envelope("", null, markers));
    }

    /** Adds text; returns what may be sent now, the markup left out. */
    public String push(String text) {
        if (!started) {
            started = true;
            held.append(envelope.prefix());
        }
        held.append(text);
        if (!leadingRead) {
            String h = held.toString();
            if (h.startsWith(envelope.leading())) {
                held.delete(0, envelope.leading().length());
                leadingRead = true;
            } else if (envelope.leading().startsWith(h)) {
                return ""; // it may still begin so
            } else {
                leadingRead = true;
                if (!ToolCalls.isNameChar(h.charAt(envelope.prefix().length()))) {
                    held.delete(0, envelope.prefix().length()); // no recipient: the model's text
                }
            }
        }
        StringBuilder out = new StringBuilder();
        int at = 0;
        while (true) {
            int first = -1;
            String found = null;
            for (String m : envelope.markers()) {
                int i = held.indexOf(m, at);
                if (i >= 0 && (first < 0 || i < first)) {
                    first = i;
                    found = m;
                }
            }
            if (found == null) {
                break;
            }
            out.append(held, at, first);
            at = first + found.length();
        }
        CharSequence rest = held.subSequence(at, held.length());
        int keep = 0;
        for (String m : envelope.markers()) {
            keep = Math.max(keep, ReasoningStream.partial(rest, m));
        }
        if (envelope.trailing() != null) { // the trailing markup and white space after it, or its start, wait
            int end = rest.length();
            while (end > 0 && Character.isWhitespace(rest.charAt(end - 1))) {
                end--;
            }
            boolean whole = end >= envelope.trailing().length()
                    && rest.subSequence(end - envelope.trailing().length(), end).toString().equals(envelope.trailing());
            keep = Math.max(keep, whole ? rest.length() - end + envelope.trailing().length() : ReasoningStream.partial(rest, envelope.trailing()));
        }
        out.append(rest, 0, rest.length() - keep);
        held.delete(0, held.length() - keep);
        return out.toString();
    }

    /**
     * The reply ended: the tail held (no marker's whole) is text; a reply that ended while it
     * could still have begun with the leading markup is the model's text alone (the prefix was the prompt's).
     */
    public String finish() {
        if (!started) {
            return "";
        }
        String tail = held.toString();
        held.setLength(0);
        if (!leadingRead) {
            leadingRead = true;
            return tail.substring(Math.min(tail.length(), envelope.prefix().length()));
        }
        String t = tail.stripTrailing();
        return envelope.trailing() != null && t.endsWith(envelope.trailing()) ? t.substring(0, t.length() - envelope.trailing().length()) : tail;
    }

    /** A whole text without the markup. */
    public static String strip(List<String> markers, String text) {
        return strip(new Envelope("", null, markers), text);
    }

    /** A whole reply read in its envelope. */
    public static String strip(Envelope envelope, String text) {
        MarkerFilter f = new MarkerFilter(envelope);
        return f.push(text) + f.finish();
    }
}
