package ai.llmref.server.structured;

/**
 * Decides, while a reply with tools streams, which text is surely content and may be sent now:
 * text before a tool call is content; a call (and anything that may begin one) is held until the
 * reply ends and is parsed. What it releases is always a prefix of the content that
 * {@link ToolCalls#parse} finds in the whole reply, so streaming and non-streaming replies agree.
 *
 * <p>Hermes: text streams up to the first {@code <tool_call>}; a tail that could begin the tag,
 * and trailing whitespace (parse trims it), wait for the next piece. Llama 3 JSON: a reply whose
 * first non-space character is {@code {} or {@code <} may be a call and is held whole; any other
 * reply is content. A forced call is held whole.
 */
public final class ToolStream {
    private static final String TAG = "<tool_call>";
    private final ToolCalls.Format format;
    private final boolean forced;
    private final StringBuilder text = new StringBuilder();
    private int released;
    private boolean holding;

    public ToolStream(ToolCalls.Format format, boolean forced) {
        this.format = format;
        this.forced = forced;
    }

    /** Adds generated text; returns the content that may be sent now (possibly empty). */
    public String push(String piece) {
        text.append(piece);
        if (forced || holding) {
            return "";
        }
        int safe;
        if (format == ToolCalls.Format.HERMES) {
            int tag = text.indexOf(TAG, Math.max(0, released - TAG.length()));
            if (tag >= 0) {
                holding = true;
                safe = tag;
            } else {
                safe = text.length();
                for (int k = Math.min(TAG.length() - 1, text.length()); k > 0; k--) {
                    if (TAG.startsWith(text.substring(text.length() - k))) {
                        safe = text.length() - k;
                        break;
                    }
                }
            }
        } else {
            String lead = text.toString().stripLeading();
            if (lead.isEmpty()) {
                return "";
            }
            if (lead.charAt(0) == '{' || lead.charAt(0) == '<') {
                holding = true;
                return "";
            }
            safe = text.length();
        }
        while (safe > released && Character.isWhitespace(text.charAt(safe - 1))) {
            safe--;
        }
        if (safe <= released) {
            return "";
        }
        String out = text.substring(released, safe);
        released = safe;
        return out;
    }

    /** The whole reply so far. */
    public String text() {
        return text.toString();
    }

    /** How much of the reply was sent as content. */
    public int released() {
        return released;
    }
}
