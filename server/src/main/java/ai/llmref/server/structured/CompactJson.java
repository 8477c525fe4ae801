package ai.llmref.server.structured;

import java.io.IOException;

/**
 * Rewrites one JSON value as it arrives, character by character, in the compact form Jackson
 * writes ({@link JsonSchemaGrammar#dump} of the value read exactly): no whitespace, strings
 * escaped as Jackson escapes them (quote, backslash, control characters; nothing else), numbers as
 * Jackson writes the exact number. A tool call's arguments stream through it, so that the pieces a
 * client joins are the arguments sent whole, however the model spaced or escaped them. Output is
 * given as soon as it is certain: a string's characters one by one (a surrogate pair together), a
 * number when the character after it shows where it ends. Keys are kept as written, in order (a
 * repeated key too, where a tree would keep the last). The input is assumed to be JSON (a grammar
 * made it); on other input the output is unspecified but the method does not fail.
 */
final class CompactJson {
    private enum State { VALUE, STRING, ESCAPE, UNICODE, NUMBER, LITERAL, DONE }

    private State state = State.VALUE;
    private int depth;
    private final StringBuilder number = new StringBuilder();
    private final StringBuilder unicode = new StringBuilder();
    /** A high surrogate decoded and not yet written: its pair may follow. */
    private char high;

    /** True once the value is complete. */
    boolean done() {
        return state == State.DONE;
    }

    /**
     * Takes the next character of the value, its compact form appended to {@code out}; false when
     * the value had ended before {@code c} (then {@code c} is not taken: it follows the value).
     */
    boolean feed(char c, StringBuilder out) {
        switch (state) {
            case DONE -> {
                return false;
            }
            case STRING -> {
                if (c == '\\') {
                    state = State.ESCAPE;
                } else if (c == '"') {
                    flushHigh(out);
                    out.append('"');
                    state = State.VALUE;
                    endIfTop();
                } else {
                    character(c, out);
                }
                return true;
            }
            case ESCAPE -> {
                if (c == 'u') {
                    unicode.setLength(0);
                    state = State.UNICODE;
                } else {
                    character(switch (c) {
                        case 'b' -> '\b';
                        case 'f' -> '\f';
                        case 'n' -> '\n';
                        case 'r' -> '\r';
                        case 't' -> '\t';
                        default -> c; // \" \\ \/
                    }, out);
                    state = State.STRING;
                }
                return true;
            }
            case UNICODE -> {
                unicode.append(c);
                if (unicode.length() == 4) {
                    state = State.STRING;
                    try {
                        character((char) Integer.parseInt(unicode, 0, 4, 16), out);
                    } catch (NumberFormatException e) {
                        out.append("\\u").append(unicode); // not JSON: kept as written
                    }
                }
                return true;
            }
            case NUMBER -> {
                if (c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
                    number.append(c);
                    return true;
                }
                out.append(number(number.toString()));
                number.setLength(0);
                state = State.VALUE;
                if (endIfTop()) {
                    return false;
                }
                return feed(c, out);
            }
            case LITERAL -> {
                if (c >= 'a' && c <= 'z') {
                    out.append(c);
                    return true;
                }
                state = State.VALUE;
                if (endIfTop()) {
                    return false;
                }
                return feed(c, out);
            }
            default -> { // VALUE: between tokens
                switch (c) {
                    case '{', '[' -> {
                        depth++;
                        out.append(c);
                    }
                    case '}', ']' -> {
                        depth--;
                        out.append(c);
                        endIfTop();
                    }
                    case ':', ',' -> out.append(c);
                    case '"' -> {
                        out.append('"');
                        state = State.STRING;
                    }
                    case ' ', '\t', '\n', '\r' -> { }
                    default -> {
                        if (c >= 'a' && c <= 'z') {
                            out.append(c);
                            state = State.LITERAL;
                        } else {
                            number.append(c);
                            state = State.NUMBER;
                        }
                    }
                }
                return true;
            }
        }
    }

    /**
     * At the end of the input with the value incomplete (an output cut short): what is held (a
     * number's characters as written, a lone high surrogate) is appended.
     */
    void flush(StringBuilder out) {
        if (state == State.NUMBER) {
            out.append(number);
            number.setLength(0);
        }
        flushHigh(out);
    }

    /** One character of a raw string (not JSON: a quote or a backslash is itself), escaped as Jackson writes it; {@link #flush} ends it. */
    void raw(char c, StringBuilder out) {
        character(c, out);
    }

    /** At depth 0 after a whole value: done. */
    private boolean endIfTop() {
        if (depth <= 0 && state == State.VALUE) {
            state = State.DONE;
            return true;
        }
        return false;
    }

    private void character(char c, StringBuilder out) {
        if (high != 0) {
            char h = high;
            high = 0;
            escape(h, out);
            if (Character.isLowSurrogate(c)) {
                escape(c, out);
                return;
            }
        }
        if (Character.isHighSurrogate(c)) {
            high = c;
            return;
        }
        escape(c, out);
    }

    private void flushHigh(StringBuilder out) {
        if (high != 0) {
            escape(high, out);
            high = 0;
        }
    }

    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    /** One character of a string as Jackson writes it. */
    private static void escape(char c, StringBuilder out) {
        switch (c) {
            case '"' -> out.append("\\\"");
            case '\\' -> out.append("\\\\");
            case '\b' -> out.append("\\b");
            case '\t' -> out.append("\\t");
            case '\n' -> out.append("\\n");
            case '\f' -> out.append("\\f");
            case '\r' -> out.append("\\r");
            default -> {
                if (c < 0x20) {
                    out.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 0xF]);
                } else {
                    out.append(c);
                }
            }
        }
    }

    /** A number as Jackson writes the exact value it reads (as {@link ToolCalls#parse} reads arguments), or as written when it does not read. */
    private static String number(String raw) {
        try {
            return JsonSchemaGrammar.dump(SchemaValidator.EXACT.readTree(raw));
        } catch (IOException | NumberFormatException | IllegalStateException e) {
            return raw;
        }
    }

    /** The compact form of a JSON text's first value, or of as much of it as the text holds. */
    static String of(String json) {
        CompactJson c = new CompactJson();
        StringBuilder out = new StringBuilder();
        int i = 0;
        while (i < json.length() && c.feed(json.charAt(i), out)) {
            i++;
        }
        if (c.state == State.NUMBER && c.depth == 0) {
            c.feed(' ', out); // a number alone ends with the text
        }
        c.flush(out);
        return out.toString();
    }
}
