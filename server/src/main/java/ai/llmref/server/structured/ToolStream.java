package ai.llmref.server.structured;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A reply with tools, as it is generated: which text is surely content and may be sent now, and,
 * where a grammar makes the calls well-formed, each call as it is written.
 *
 * <p><b>Free replies</b> (tool_choice "auto" before a grammar applies): text before a tool call is
 * content; a call (and anything that may begin one) is held until the reply ends and is parsed.
 * What is released is always a prefix of the content that {@link ToolCalls#parse} finds in the
 * whole reply. Hermes: text streams up to the first {@code <tool_call>}; a tail that could begin
 * the tag, and trailing whitespace (parse trims it), wait for the next piece. Llama 3 JSON: a reply
 * whose first non-space character is <code>{</code> or {@code <} may be a call and is held whole;
 * any other reply is content.
 *
 * <p><b>Constrained replies</b> (a forced call, whose grammar applies from the start; or under
 * "auto" once the server's grammar applies from the first call on, {@link #constrain}): the calls
 * are read as they come, in the layout the grammar gives them (Hermes {@code <tool_call>} blocks, or
 * the Llama 3 JSON; name first, then the arguments; or XML blocks, {@link XmlToolCalls}). A call
 * starts ({@link CallStart}) once its name is whole, its arguments follow piece by piece in the
 * compact form of {@link CompactJson}, and it ends ({@link CallEnd}) when its object closes (XML:
 * at {@code </function>}; each parameter's value is its JSON, a raw string's characters escaped as
 * they come, a value that may be a string or another type once it is whole; Gemma: its notation
 * read as JSON as it comes, {@link GemmaToolCalls.Reader}). A reply cut short (max_tokens) ends with its last
 * call incomplete. Streamed or not, a reply goes through this class, so both give the same calls.
 */
public final class ToolStream {
    private static final String OPEN = "<tool_call>";
    private static final String PYTHON_TAG = "<|python_tag|>";
    /** A call's head up to its arguments, in the grammar's order. */
    /** The longest call head read (a grammar writes a name of at most 64 characters and little space around it). */
    private static final int MAX_HEAD = 1024;
    private static final Pattern HEAD = Pattern.compile("\\s*\\{\\s*\"name\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"\\s*,\\s*\"(?:arguments|parameters)\"\\s*:");
    /** Cohere's call head: its id (the call's index), its name, its parameters. */
    private static final Pattern COHERE_HEAD = Pattern.compile(
            "\\s*\\{\\s*\"tool_call_id\"\\s*:\\s*\"[0-9]{0,4}\"\\s*,\\s*\"tool_name\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"\\s*,\\s*\"parameters\"\\s*:");

    /** Command R+'s call head: its name, its parameters. */
    private static final Pattern TOOL_NAME_HEAD = Pattern.compile(
            "\\s*\\{\\s*\"tool_name\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"\\s*,\\s*\"parameters\"\\s*:");

    /** Apertus's call head: the name as the key of the arguments. */
    private static final Pattern KEYED_HEAD = Pattern.compile("\\s*\\{\\s*\"((?:[^\"\\\\]|\\\\.)*)\"\\s*:");

    /** What may be sent now: content text, or part of a call. */
    public sealed interface Piece {}

    /** Content text. */
    public record Content(String text) implements Piece {}

    /** Call {@code index} (of this reply's calls) begins: its id and name. */
    public record CallStart(int index, String id, String name) implements Piece {}

    /** More of call {@code index}'s arguments. */
    public record CallArguments(int index, String delta) implements Piece {}

    /** Call {@code index} is whole ({@link ToolCalls.Call#complete}), or was cut short. */
    public record CallEnd(int index, ToolCalls.Call call) implements Piece {}

    private enum Scan { OPEN_TAG, HEAD, ARGUMENTS, CLOSE_OBJECT, CLOSE_TAG, BETWEEN, AFTER, FAILED,
        BARE_NAME, MISTRAL_MARKER, MISTRAL_ID, NEMO_LIST, NEMO_NEXT, HARMONY_HEAD, XML_FUNCTION, XML_NAME, XML_ELEMENT, XML_PARAMETER, GLM_KEY_CLOSE, GLM_VALUE_OPEN, XML_VALUE_LINE, XML_RAW, XML_JSON, XML_VALUE_CLOSE,
        MM_INVOKE, MM_NAME_CLOSE, MM_KEY_CLOSE, DS_KIND, KIMI_NEXT, KIMI_INDEX, KIMI_CALL_END, GEMMA_CALL, GEMMA_ARGS, GEMMA_END, LIST_CLOSE, LINE_NEXT, HEAD_END, R1_NEXT, R1_FENCE, JSON_ARGS, R1_FENCE_END, FN_NAME_END, FN_END, MC_VALUE_START, MC_CDATA_END, CR_FENCE, SOLAR_ID, SOLAR_NAME, SOLAR_CALL_END, M3_BLOCK, MUSE_RECIPIENT, MUSE_BLOCK, MUSE_NEXT, V31_SEP, V31_CALL_END, PY_LIST, PY_CALL, PY_OPEN, PY_KEY, PY_VALUE_START, PY_QUOTED, PY_AFTER, PY_NEXT, PY_END }

    private final ToolCalls.Format format;
    private final List<ToolCalls.Function> functions;
    /** The XML formats' layout. */
    private final XmlToolCalls.Dialect dialect;
    /** What begins a call (all formats but Llama 3's): {@code <tool_call>}, {@code [TOOL_CALLS]}, {@code to=functions.}, {@code <minimax:tool_call>} or Kimi's section. */
    private final String open;
    /** What a free reply's call may begin with besides {@link #bare}: {@link #open}; none for muse-glimmer, whose calls begin at a message to a declared function, not at any "to=". */
    private final String freeOpen;
    /** What ends a block of one call ({@code </tool_call>}, Seed-OSS's {@code </seed:tool_call>}). */
    private final String close;
    /** What also begins the first call (XML: {@link ToolCalls#bareOpeners}). */
    private final List<String> bare;
    /** XML: the called function's parameters, the one being read, its raw text, how much of it is sent, the names written. */
    private XmlToolCalls.Plan plan;
    private XmlToolCalls.Param param;
    /** How the value being read is written: its parameter's kind, or as a DeepSeek parameter says. */
    private XmlToolCalls.Kind valueKind;
    /** The block of MiniMax's and DeepSeek's calls (Kimi's section; null for other formats). */
    private final ToolCalls.Block block;
    private final StringBuilder value = new StringBuilder();
    private int valueSent;
    private final java.util.Set<String> written = new java.util.HashSet<>();
    private final StringBuilder text = new StringBuilder();
    private int released;
    private boolean holding;
    /** The calls are read from {@link #scanned} on (constrained); -1 while the reply is free. */
    private int scanned = -1;
    private Scan scan;
    private int literal; // characters of the expected tag matched so far
    private final StringBuilder head = new StringBuilder();
    private CompactJson arguments;
    private final StringBuilder args = new StringBuilder();
    private String callId;
    private String callName;
    private final List<ToolCalls.Call> calls = new ArrayList<>();
    /** The content, once the first call began (null: none). */
    private String content;
    private boolean started;
    /** A call's name was read and its end not yet. */
    private boolean callOpen;
    /** A call's arguments, read whole, were not a JSON object (the compact rewrite assumes JSON). */
    private boolean malformed;
    /** What ends the raw value being read: its parameter's end, or a CDATA section's (MiniCPM5). */
    private String rawEnd;
    /** What comes after an element head's attributes ({@link Scan#HEAD_END}). */
    private Scan headNext;
    /** muse-glimmer, after a message's block: 0, its {@code <|eom|>} due; 1, the next message's start or recipient; 2, its recipient. */
    private int museStep;
    /** Gemma: the reader of the arguments being written (null between calls). */
    private GemmaToolCalls.Reader gemma;

    /** A reply; a forced call's is constrained from its start. */
    public ToolStream(ToolCalls.Format format, boolean forced) {
        this(format, forced, List.of());
    }

    /** A reply to a request declaring {@code functions} (the XML format reads its values by their schemas). */
    public ToolStream(ToolCalls.Format format, boolean forced, List<ToolCalls.Function> functions) {
        this.format = format;
        this.functions = functions;
        this.dialect = XmlToolCalls.Dialect.of(format);
        String opening = ToolCalls.opening(format);
        this.open = opening == null ? OPEN : opening;
        this.freeOpen = format == ToolCalls.Format.MUSE ? null : open;
        this.close = ToolCalls.callBlock(format).close();
        this.bare = ToolCalls.bareOpeners(format, functions);
        this.block = ToolCalls.block(format);
        if (forced) {
            begin(0);
        }
    }

    /** Adds generated text; returns what may be sent now (possibly nothing). */
    public List<Piece> push(String piece) {
        text.append(piece);
        if (scanned >= 0) {
            return scan();
        }
        String out = free();
        return out.isEmpty() ? List.of() : List.of(new Content(out));
    }

    /**
     * The grammar applies from the first call on (sent right after the text that began it): from
     * there the calls are read as they come. Returns what may be sent now: the content before the
     * call that was held, and what of the call is already whole. Nothing changes where the text
     * shows no call's start (a reply that could not hold one).
     */
    public List<Piece> constrain() {
        if (scanned >= 0) {
            return List.of();
        }
        int first = firstCall();
        if (first < 0) {
            return List.of();
        }
        List<Piece> out = new ArrayList<>();
        String before = text.substring(0, first).stripTrailing();
        if (before.length() > released) {
            out.add(new Content(before.substring(released)));
            released = before.length();
        }
        begin(first);
        if (!bare.isEmpty() && text.indexOf(open, first) != first) { // a call without its block's start (ToolCalls#bareOpeners)
            scan = format == ToolCalls.Format.KIMI ? Scan.KIMI_NEXT : Scan.XML_FUNCTION;
        }
        out.addAll(scan());
        return out;
    }

    private void begin(int at) {
        scanned = at;
        scan = format == ToolCalls.Format.LLAMA3_JSON ? Scan.HEAD : Scan.OPEN_TAG;
        holding = true;
    }

    /** The free reply's rule (see the class comment): the content that may be released now. */
    private String free() {
        if (holding) {
            return "";
        }
        int safe;
        if (format != ToolCalls.Format.LLAMA3_JSON) {
            int tag = ToolCalls.firstOpening(text, freeOpen, bare, Math.max(0, released - longestOpening()));
            if (tag >= 0) {
                holding = true;
                safe = tag;
            } else {
                int partial = freeOpen == null ? 0 : ReasoningStream.partial(text, freeOpen);
                for (String b : bare) {
                    partial = Math.max(partial, ReasoningStream.partial(text, b));
                }
                safe = text.length() - partial; // a tail that may begin the tag waits
                String e = messageEnd();
                if (e != null) { // a message's end that may end the content (left out there) waits too
                    int end = text.length();
                    while (end > 0 && Character.isWhitespace(text.charAt(end - 1))) {
                        end--;
                    }
                    if (end >= e.length() && text.substring(end - e.length(), end).equals(e)) {
                        safe = Math.min(safe, end - e.length());
                    }
                }
            }
        } else if (released > 0) {
            safe = text.length(); // the reply's start showed it is content
        } else {
            int lead = 0;
            while (lead < text.length() && Character.isWhitespace(text.charAt(lead))) {
                lead++;
            }
            if (lead == text.length()) {
                return "";
            }
            if (text.charAt(lead) == '{' || text.charAt(lead) == '<') {
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

    /** Reads the constrained reply's new text. */
    private List<Piece> scan() {
        List<Piece> out = new ArrayList<>();
        while (scanned < text.length() && scan != Scan.FAILED) {
            char c = text.charAt(scanned);
            switch (scan) {
                case OPEN_TAG -> tag(c, open, switch (format) {
                    case XML, SEED_XML -> Scan.XML_FUNCTION;
                    case GLM_XML, MINICPM5 -> Scan.XML_NAME;
                    case MINIMAX_XML, DEEPSEEK_V32, DEEPSEEK_V4, HUNYUAN, KIMI3 -> Scan.MM_INVOKE;
                    case KIMI -> Scan.KIMI_NEXT;
                    case GEMMA -> Scan.GEMMA_CALL;
                    case MISTRAL, HARMONY -> Scan.BARE_NAME;
                    case MISTRAL_NEMO, NEMOTRON_V2, APRIEL, COHERE, APERTUS, GRANITE -> Scan.NEMO_LIST;
                    case COMMAND_R -> Scan.CR_FENCE;
                    case MINIMAX_M3 -> Scan.M3_BLOCK;
                    case MUSE -> Scan.MUSE_RECIPIENT;
                    case MINIMAX_M1 -> Scan.LINE_NEXT;
                    case DEEPSEEK_R1, DEEPSEEK_V31, SOLAR -> Scan.R1_NEXT;
                    case FUNCTIONARY_V31, FUNCTIONARY_V32 -> Scan.BARE_NAME;
                    case LFM2 -> Scan.PY_LIST;
                    default -> Scan.HEAD;
                });
                case BARE_NAME -> { // a name that ends where something else begins (Mistral's '[', GPT-OSS's header)
                    if (ToolCalls.isNameChar(c)) {
                        scanned++;
                        head.append(c);
                        scan = head.length() > MAX_HEAD ? Scan.FAILED : scan;
                        continue;
                    }
                    if (head.isEmpty()) {
                        scan = Scan.FAILED;
                        continue;
                    }
                    startCall(head.toString(), out); // what follows the name is read next
                    head.setLength(0);
                    args.setLength(0);
                    scan = switch (format) {
                        case MISTRAL -> Scan.MISTRAL_MARKER;
                        case KIMI -> Scan.KIMI_INDEX;
                        case GEMMA -> Scan.GEMMA_ARGS;
                        case DEEPSEEK_R1 -> Scan.R1_FENCE;
                        case DEEPSEEK_V31 -> Scan.V31_SEP;
                        case SOLAR -> Scan.FN_NAME_END; // the arguments' marker
                        case FUNCTIONARY_V31 -> Scan.FN_NAME_END;
                        case FUNCTIONARY_V32 -> Scan.JSON_ARGS; // white space, then the arguments' object
                        case LFM2 -> Scan.PY_OPEN;
                        default -> Scan.HARMONY_HEAD;
                    };
                }
                case HARMONY_HEAD -> {
                    scanned++;
                    head.append(c);
                    if (head.toString().endsWith("<|message|>")) {
                        head.setLength(0);
                        arguments = new CompactJson();
                        scan = Scan.ARGUMENTS;
                    } else if (head.length() > 64 + "<|message|>".length()) {
                        scan = Scan.FAILED;
                    }
                }
                case NEMO_LIST -> tag(c, "[", Scan.HEAD);
                case NEMO_NEXT -> {
                    scanned++;
                    if (c == ',') {
                        scan = Scan.HEAD; // the next call
                    } else if (c == ']') {
                        scan = block == null ? Scan.AFTER : Scan.LIST_CLOSE; // a block's end follows the list (Nemo's, Granite's have none)
                    } else if (!Character.isWhitespace(c)) {
                        scan = Scan.FAILED;
                    }
                }
                case MISTRAL_MARKER -> {
                    scanned++;
                    head.append(c);
                    if (head.toString().equals(ToolCalls.MISTRAL_ARGS)) {
                        head.setLength(0);
                        arguments = new CompactJson();
                        scan = Scan.ARGUMENTS;
                    } else if (head.toString().equals(ToolCalls.MISTRAL_CALL_ID)) {
                        head.setLength(0);
                        scan = Scan.MISTRAL_ID;
                    } else if (!ToolCalls.MISTRAL_ARGS.startsWith(head.toString()) && !ToolCalls.MISTRAL_CALL_ID.startsWith(head.toString())) {
                        scan = Scan.FAILED;
                    }
                }
                case MISTRAL_ID -> {
                    if (c == '[') {
                        scan = Scan.MISTRAL_MARKER; // [ARGS] follows the id
                    } else if (c < 128 && Character.isLetterOrDigit(c)) {
                        scanned++;
                    } else {
                        scan = Scan.FAILED;
                    }
                }
                case XML_FUNCTION -> tag(c, XmlToolCalls.FUNCTION, Scan.XML_NAME);
                case MM_INVOKE -> { // inside MiniMax's or DeepSeek's block: a call's <invoke name=", or the block's end
                    scanned++;
                    if (head.isEmpty() && Character.isWhitespace(c)) {
                        continue;
                    }
                    head.append(c);
                    String h = head.toString();
                    if (h.equals(dialect.invoke())) {
                        head.setLength(0);
                        scan = Scan.XML_NAME;
                    } else if (h.equals(block.close())) {
                        head.setLength(0);
                        scan = format == ToolCalls.Format.MUSE ? Scan.MUSE_NEXT : Scan.BETWEEN; // muse-glimmer: another message may follow
                        museStep = 0;
                    } else if (!dialect.invoke().startsWith(h) && !block.close().startsWith(h)) {
                        scan = Scan.FAILED;
                    }
                }
                case DS_KIND -> { // after a DeepSeek parameter's name: whether its value is a string
                    scanned++;
                    head.append(c);
                    String h = head.toString();
                    if (h.equals(XmlToolCalls.DSML_STRING) || h.equals(XmlToolCalls.DSML_JSON)) {
                        head.setLength(0);
                        valueKind = h.equals(XmlToolCalls.DSML_STRING) ? XmlToolCalls.Kind.RAW : XmlToolCalls.Kind.JSON;
                        scan = Scan.XML_VALUE_LINE;
                    } else if (!XmlToolCalls.DSML_STRING.startsWith(h) && !XmlToolCalls.DSML_JSON.startsWith(h)) {
                        scan = Scan.FAILED;
                    }
                }
                case KIMI_NEXT -> { // in Kimi's section: a call's start and its id's prefix, or the section's end
                    scanned++;
                    if (head.isEmpty() && Character.isWhitespace(c)) {
                        continue;
                    }
                    head.append(c);
                    String h = head.toString();
                    if (h.equals(ToolCalls.KIMI_CALL + ToolCalls.KIMI_ID)) {
                        head.setLength(0);
                        scan = Scan.BARE_NAME;
                    } else if (h.equals(ToolCalls.KIMI_CLOSE)) {
                        head.setLength(0);
                        scan = Scan.AFTER;
                    } else if (!(ToolCalls.KIMI_CALL + ToolCalls.KIMI_ID).startsWith(h) && !ToolCalls.KIMI_CLOSE.startsWith(h)) {
                        scan = Scan.FAILED;
                    }
                }
                case KIMI_INDEX -> { // ":INDEX<|tool_call_argument_begin|>" after the name
                    scanned++;
                    head.append(c);
                    String h = head.toString();
                    int digits = 1;
                    while (digits < h.length() && h.charAt(digits) >= '0' && h.charAt(digits) <= '9') {
                        digits++;
                    }
                    String rest = h.substring(Math.min(digits, h.length()));
                    if (h.charAt(0) != ':' || !rest.isEmpty() && (digits == 1 || !ToolCalls.KIMI_ARGS.startsWith(rest))) {
                        scan = Scan.FAILED;
                    } else if (rest.equals(ToolCalls.KIMI_ARGS)) {
                        head.setLength(0);
                        arguments = new CompactJson();
                        scan = Scan.ARGUMENTS;
                    }
                }
                case KIMI_CALL_END -> tag(c, ToolCalls.KIMI_CALL_END, Scan.KIMI_NEXT);
                case R1_NEXT -> { // in DeepSeek R1's block: a call's start up to its name, or the block's end (Solar Open's: up to its id)
                    scanned++;
                    if (head.isEmpty() && Character.isWhitespace(c)) {
                        continue;
                    }
                    head.append(c);
                    String h = head.toString();
                    String call = format == ToolCalls.Format.SOLAR ? ToolCalls.SOLAR_CALL
                            : format == ToolCalls.Format.DEEPSEEK_V31 ? ToolCalls.R1_CALL_BEGIN : ToolCalls.R1_CALL;
                    if (h.equals(call)) {
                        head.setLength(0);
                        scan = format == ToolCalls.Format.SOLAR ? Scan.SOLAR_ID : Scan.BARE_NAME;
                    } else if (h.equals(block.close())) {
                        head.setLength(0);
                        scan = Scan.AFTER;
                    } else if (!call.startsWith(h) && !block.close().startsWith(h)) {
                        scan = Scan.FAILED;
                    }
                }
                case SOLAR_ID -> { // Solar Open's call id, then the mark before its name
                    if (c == '<') {
                        scan = Scan.SOLAR_NAME;
                        head.setLength(0);
                        continue;
                    }
                    scanned++;
                    head.append(c);
                    scan = head.length() > ToolCalls.MAX_ID ? Scan.FAILED : scan;
                }
                case R1_FENCE -> tag(c, ToolCalls.R1_FENCE, Scan.JSON_ARGS);
                case CR_FENCE -> tag(c, ToolCalls.CR_FENCE, Scan.NEMO_LIST); // Command R+'s list in its fenced block
                case FN_NAME_END -> tag(c, format == ToolCalls.Format.SOLAR ? ToolCalls.SOLAR_ARGS : ">", Scan.JSON_ARGS);
                case FN_END -> tag(c, ToolCalls.FUNCTIONARY_CLOSE, Scan.BETWEEN);
                case SOLAR_NAME -> tag(c, ToolCalls.SOLAR_NAME, Scan.BARE_NAME);
                case M3_BLOCK -> m3(c, out);
                case MUSE_RECIPIENT -> { // muse-glimmer's message's recipient, up to <|message|>
                    if (c == '<') {
                        head.setLength(0);
                        scan = Scan.MUSE_BLOCK;
                    } else {
                        scanned++;
                        head.append(c);
                        scan = head.length() > ToolCalls.MAX_ID ? Scan.FAILED : scan;
                    }
                }
                case MUSE_BLOCK -> tag(c, ToolCalls.MUSE_MESSAGE + block.open(), Scan.MM_INVOKE);
                case MUSE_NEXT -> { // after a message's block: its end, the next message's start, its recipient
                    scanned++;
                    if (head.isEmpty() && Character.isWhitespace(c)) {
                        continue;
                    }
                    head.append(c);
                    String h = head.toString();
                    // in order: <|eom|>, then the next message's start (which the envelope leaves out), then its recipient
                    String expected = museStep == 0 ? ToolCalls.MUSE_END : ToolCalls.MUSE_TO;
                    if (h.equals(expected)) {
                        head.setLength(0);
                        museStep++;
                        scan = expected.equals(ToolCalls.MUSE_TO) ? Scan.MUSE_RECIPIENT : scan;
                    } else if (museStep == 1 && h.equals(ToolCalls.MUSE_NEXT)) {
                        head.setLength(0);
                        museStep = 2;
                    } else if (!expected.startsWith(h) && !(museStep == 1 && ToolCalls.MUSE_NEXT.startsWith(h))) {
                        scan = Scan.FAILED;
                    }
                }
                case SOLAR_CALL_END -> tag(c, ToolCalls.SOLAR_CALL_END, Scan.R1_NEXT);
                case V31_SEP -> tag(c, ToolCalls.R1_SEP, Scan.JSON_ARGS); // DeepSeek V3.1: the arguments after the separator
                case V31_CALL_END -> tag(c, ToolCalls.R1_CALL_END, Scan.R1_NEXT);
                case JSON_ARGS -> { // the arguments' JSON follows (nothing taken here)
                    arguments = new CompactJson();
                    scan = Scan.ARGUMENTS;
                }
                case R1_FENCE_END -> tag(c, ToolCalls.R1_FENCE_END, Scan.R1_NEXT);
                case PY_LIST -> tag(c, "[", Scan.PY_CALL);
                case PY_CALL -> { // LFM2's list: a call's name after white space
                    if (Character.isWhitespace(c)) {
                        scanned++;
                    } else {
                        scan = Scan.BARE_NAME;
                    }
                }
                case PY_OPEN -> {
                    ToolCalls.Function f = functions.stream().filter(x -> x.name().equals(callName)).findFirst().orElse(null);
                    if (f == null || c != '(') {
                        scan = Scan.FAILED;
                        continue;
                    }
                    scanned++;
                    plan = XmlToolCalls.plan(f);
                    written.clear();
                    scan = Scan.PY_KEY;
                }
                case PY_KEY -> { // KEY= (white space before it), or the call's end
                    if (head.isEmpty() && Character.isWhitespace(c)) {
                        scanned++;
                    } else if (head.isEmpty() && c == ')' && written.isEmpty()) {
                        scanned++;
                        argumentText("{}", out);
                        endCall(out);
                        scan = Scan.PY_NEXT;
                    } else if (c == '=') {
                        scanned++;
                        if (head.isEmpty() || Character.isDigit(head.charAt(0)) || !openArgument(out)) {
                            scan = Scan.FAILED;
                            continue;
                        }
                        scan = Scan.PY_VALUE_START;
                    } else if (c < 128 && (Character.isLetterOrDigit(c) || c == '_') && head.length() < MAX_HEAD) {
                        scanned++;
                        head.append(c);
                    } else {
                        scan = Scan.FAILED;
                    }
                }
                case PY_VALUE_START -> { // a value: JSON, or a string in single quotes (Python's)
                    if (Character.isWhitespace(c)) {
                        scanned++;
                    } else if (c == '\'') {
                        scanned++;
                        argumentText("\"", out);
                        arguments = new CompactJson(); // its characters escaped as JSON's
                        value.setLength(0);
                        scan = Scan.PY_QUOTED;
                    } else {
                        arguments = new CompactJson();
                        scan = Scan.XML_JSON; // a JSON value, read as the XML formats read theirs
                    }
                }
                case PY_QUOTED -> { // read as PythonToolCalls reads it: escapes as JSON's, and \xHH
                    scanned++;
                    StringBuilder delta = new StringBuilder();
                    if (!value.isEmpty()) { // an escape
                        value.append(c);
                        String e = value.toString();
                        if (e.length() == 2 + PythonToolCalls.hexDigits(e.charAt(1), '\'')) {
                            Character ch = PythonToolCalls.escaped(e);
                            if (ch == null) {
                                scan = Scan.FAILED;
                                continue;
                            }
                            arguments.raw(ch, delta);
                            value.setLength(0);
                        }
                    } else if (c == '\\') {
                        value.append(c);
                    } else if (c == '\'') {
                        arguments.flush(delta);
                        delta.append('"');
                        arguments = null;
                        scan = Scan.PY_AFTER;
                    } else {
                        arguments.raw(c, delta);
                    }
                    if (!delta.isEmpty()) {
                        argumentText(delta.toString(), out);
                    }
                }
                case PY_AFTER -> { // after a value: the next argument, or the call's end
                    scanned++;
                    if (c == ',') {
                        scan = Scan.PY_KEY;
                    } else if (c == ')') {
                        argumentText("}", out);
                        endCall(out);
                        scan = Scan.PY_NEXT;
                    } else if (!Character.isWhitespace(c)) {
                        scan = Scan.FAILED;
                    }
                }
                case PY_NEXT -> { // after a call: the next one, or the list's end
                    scanned++;
                    if (c == ',') {
                        scan = Scan.PY_CALL;
                    } else if (c == ']') {
                        scan = Scan.PY_END;
                    } else if (!Character.isWhitespace(c)) {
                        scan = Scan.FAILED;
                    }
                }
                case PY_END -> tag(c, PythonToolCalls.CLOSE, Scan.AFTER);
                case GEMMA_CALL -> tag(c, GemmaToolCalls.CALL_WORD, Scan.BARE_NAME);
                case GEMMA_ARGS -> { // Gemma's notation, read as it comes and sent as JSON
                    scanned++;
                    if (gemma == null) {
                        if (c != '{') { // the arguments are an object
                            scan = Scan.FAILED;
                            continue;
                        }
                        gemma = new GemmaToolCalls.Reader();
                    }
                    StringBuilder delta = new StringBuilder();
                    if (!gemma.feed(c, delta)) {
                        scan = Scan.FAILED;
                        continue;
                    }
                    if (!delta.isEmpty()) {
                        argumentText(delta.toString(), out);
                    }
                    if (gemma.done()) {
                        gemma = null;
                        endCall(out);
                        scan = Scan.GEMMA_END;
                    }
                }
                case GEMMA_END -> tag(c, GemmaToolCalls.CALL_END, Scan.BETWEEN);
                case LIST_CLOSE -> tag(c, block.close(), Scan.AFTER);
                case LINE_NEXT -> { // MiniMax M1's block: a call's JSON (a line each), or the block's end
                    if (Character.isWhitespace(c)) {
                        scanned++;
                    } else {
                        scan = c == '{' ? Scan.HEAD : Scan.LIST_CLOSE;
                    }
                }
                case HEAD_END -> { // an element head's attributes up to its end (Kimi K3's <|sep|>), read as XmlToolCalls reads them
                    scanned++;
                    head.append(c);
                    String h = head.toString();
                    int lt = h.indexOf('<');
                    if (h.endsWith(dialect.headEnd())) {
                        head.setLength(0);
                        scan = headNext;
                    } else if (lt >= 0 && !dialect.headEnd().startsWith(h.substring(lt)) || h.length() > XmlToolCalls.MAX_ATTRIBUTES + dialect.headEnd().length()) {
                        scan = Scan.FAILED;
                    }
                }
                // '>' right after the '"' (XmlToolCalls reads '">' as one); Hy3's separator
                case MM_NAME_CLOSE -> {
                    if (dialect != XmlToolCalls.Dialect.HY && c != '>') {
                        scan = Scan.FAILED;
                    } else {
                        tag(c, dialect == XmlToolCalls.Dialect.HY ? XmlToolCalls.HY_SEP : ">", Scan.XML_ELEMENT);
                    }
                }
                case MM_KEY_CLOSE -> {
                    if (c != '>') {
                        scan = Scan.FAILED;
                    } else {
                        tag(c, ">", Scan.XML_VALUE_LINE);
                    }
                }
                case XML_NAME -> {
                    boolean glm = dialect == XmlToolCalls.Dialect.GLM;
                    if (glm && head.isEmpty() && Character.isWhitespace(c)) {
                        scanned++; // a late grammar allows space after the tag
                        continue;
                    }
                    if (glm ? ToolCalls.isNameChar(c) : c != nameStop()) {
                        scanned++;
                        head.append(c);
                        scan = head.length() > MAX_HEAD ? Scan.FAILED : scan;
                        continue;
                    }
                    scanned += glm || dialect == XmlToolCalls.Dialect.HY ? 0 : 1; // GLM, Hy3: what follows the name is read next
                    String name = head.toString();
                    head.setLength(0);
                    ToolCalls.Function f = functions.stream().filter(x -> x.name().equals(name)).findFirst().orElse(null);
                    if (f == null) {
                        scan = Scan.FAILED;
                        continue;
                    }
                    plan = XmlToolCalls.plan(f);
                    written.clear();
                    args.setLength(0);
                    startCall(name, out);
                    if (dialect.headEnd() != null) { // Kimi K3: the attributes after the name
                        headNext = Scan.XML_ELEMENT;
                        scan = Scan.HEAD_END;
                    } else {
                        // MiniMax, DeepSeek, MiniCPM5: the '>' after '"'
                        scan = dialect.invokes() || dialect == XmlToolCalls.Dialect.MINICPM ? Scan.MM_NAME_CLOSE : Scan.XML_ELEMENT;
                    }
                }
                case XML_ELEMENT -> {
                    scanned++;
                    if (head.isEmpty() && Character.isWhitespace(c)) {
                        continue;
                    }
                    head.append(c);
                    if (head.toString().equals(dialect.parameter)) {
                        head.setLength(0);
                        scan = Scan.XML_PARAMETER;
                    } else if (head.toString().equals(dialect.callEnd)) {
                        head.setLength(0);
                        argumentText(written.isEmpty() ? "{}" : "}", out);
                        endCall(out);
                        scan = switch (dialect) {
                            case QWEN, SEED -> Scan.CLOSE_TAG;
                            case MINIMAX, DSML, HY, KIMI3, ATEM -> Scan.MM_INVOKE; // the block may hold another call
                            case GLM, MINICPM -> Scan.BETWEEN; // the block's end was the call's
                        };
                    } else if (!dialect.parameter.startsWith(head.toString()) && !dialect.callEnd.startsWith(head.toString())) {
                        scan = Scan.FAILED;
                    }
                }
                case XML_PARAMETER -> {
                    boolean glm = dialect.pairs();
                    if (c != (glm ? '<' : nameStop())) {
                        scanned++;
                        head.append(c);
                        scan = head.length() > MAX_HEAD ? Scan.FAILED : scan;
                        continue;
                    }
                    // GLM, Hy3: '<' begins the key's end tag; DeepSeek: '"' begins string="..."
                    scanned += glm || dialect == XmlToolCalls.Dialect.DSML ? 0 : 1;
                    if (!openArgument(out)) {
                        scan = Scan.FAILED;
                        continue;
                    }
                    value.setLength(0);
                    valueSent = 0;
                    valueKind = param.kind();
                    scan = switch (dialect) {
                        case GLM, HY -> Scan.GLM_KEY_CLOSE;
                        case MINIMAX, MINICPM, ATEM -> Scan.MM_KEY_CLOSE;
                        case KIMI3 -> {
                            headNext = Scan.XML_VALUE_LINE; // after the type attribute
                            yield Scan.HEAD_END;
                        }
                        case DSML -> Scan.DS_KIND;
                        case QWEN, SEED -> Scan.XML_VALUE_LINE;
                    };
                }
                case GLM_KEY_CLOSE -> tag(c, dialect.keyEnd(), Scan.GLM_VALUE_OPEN);
                case GLM_VALUE_OPEN -> tag(c, dialect.valueOpen(), Scan.XML_VALUE_LINE);
                case XML_VALUE_LINE -> {
                    if (c == '\n' && dialect == XmlToolCalls.Dialect.QWEN) {
                        scanned++; // the line break after the tag is the layout's
                    }
                    arguments = new CompactJson();
                    if (valueKind == XmlToolCalls.Kind.JSON) {
                        scan = Scan.XML_JSON;
                    } else {
                        if (valueKind == XmlToolCalls.Kind.RAW) {
                            argumentText("\"", out);
                        }
                        rawEnd = dialect.valueEnd;
                        scan = dialect == XmlToolCalls.Dialect.MINICPM ? Scan.MC_VALUE_START : Scan.XML_RAW;
                    }
                }
                case MC_VALUE_START -> { // MiniCPM5: a CDATA section's start, or the raw text (read again from its start)
                    scanned++;
                    value.append(c);
                    if (value.toString().equals(XmlToolCalls.CDATA_OPEN)) {
                        value.setLength(0);
                        rawEnd = XmlToolCalls.CDATA_CLOSE;
                        scan = Scan.XML_RAW;
                    } else if (!XmlToolCalls.CDATA_OPEN.startsWith(value.toString())) {
                        scanned -= value.length();
                        value.setLength(0);
                        scan = Scan.XML_RAW;
                    }
                }
                case MC_CDATA_END -> {
                    if (!dialect.valueEnd.startsWith(String.valueOf(c)) && literal == 0) {
                        scan = Scan.FAILED; // the parameter's end right after the section's, as XmlToolCalls reads it
                    } else {
                        tag(c, dialect.valueEnd, Scan.XML_ELEMENT);
                    }
                }
                case XML_RAW -> {
                    scanned++;
                    value.append(c);
                    if (endsWith(value, rawEnd)) {
                        value.setLength(value.length() - rawEnd.length());
                        if (valueKind == XmlToolCalls.Kind.RAW) {
                            sendRaw(value.length(), out);
                            StringBuilder end = new StringBuilder();
                            arguments.flush(end);
                            argumentText(end.append('"').toString(), out);
                        } else {
                            argumentText(JsonSchemaGrammar.dump(plan.value(param, valueKind, value.toString())), out);
                        }
                        arguments = null;
                        // the value's end is its closing tag's (after a CDATA section's end, the tag follows)
                        scan = rawEnd.equals(dialect.valueEnd) ? Scan.XML_ELEMENT : Scan.MC_CDATA_END;
                    } else if (valueKind == XmlToolCalls.Kind.RAW) {
                        sendRaw(value.length() - ReasoningStream.partial(value, rawEnd), out); // a tail that may begin the end waits
                    }
                }
                case XML_JSON -> {
                    int before = args.length();
                    if (arguments.feed(c, args)) {
                        scanned++;
                    }
                    if (args.length() > before) {
                        out.add(new CallArguments(calls.size(), args.substring(before)));
                    }
                    if (arguments.done()) {
                        arguments = null;
                        scan = format == ToolCalls.Format.LFM2 ? Scan.PY_AFTER : Scan.XML_VALUE_CLOSE;
                    }
                }
                case XML_VALUE_CLOSE -> tag(c, dialect.valueClose, Scan.XML_ELEMENT);
                case HEAD -> {
                    head.append(c);
                    scanned++;
                    String h = head.toString();
                    String lead = h.stripLeading();
                    if (format == ToolCalls.Format.LLAMA3_JSON && lead.startsWith("<")) {
                        if (lead.equals(PYTHON_TAG)) {
                            head.setLength(0); // the python tag before a Llama 3 call
                        } else if (!PYTHON_TAG.startsWith(lead)) {
                            scan = Scan.FAILED;
                        }
                        continue;
                    }
                    Matcher m = (format == ToolCalls.Format.COHERE ? COHERE_HEAD : format == ToolCalls.Format.APERTUS ? KEYED_HEAD
                            : format == ToolCalls.Format.COMMAND_R ? TOOL_NAME_HEAD : HEAD).matcher(h);
                    if (m.lookingAt()) {
                        head.setLength(0);
                        startCall(decode(m.group(1)), out);
                        arguments = new CompactJson();
                        args.setLength(0);
                        scan = Scan.ARGUMENTS;
                    } else if (!m.hitEnd() || head.length() > MAX_HEAD) {
                        scan = Scan.FAILED;
                    }
                }
                case ARGUMENTS -> {
                    int before = args.length();
                    boolean taken = arguments.feed(c, args);
                    if (taken) {
                        scanned++;
                    }
                    if (args.length() > before) {
                        out.add(new CallArguments(calls.size(), args.substring(before)));
                    }
                    if (arguments.done() && (format == ToolCalls.Format.MISTRAL || format == ToolCalls.Format.HARMONY
                            || format == ToolCalls.Format.KIMI || format == ToolCalls.Format.DEEPSEEK_R1
                            || format == ToolCalls.Format.FUNCTIONARY_V31 || format == ToolCalls.Format.FUNCTIONARY_V32
                            || format == ToolCalls.Format.SOLAR || format == ToolCalls.Format.DEEPSEEK_V31)) {
                        endCall(out); // the arguments are the call's end
                        arguments = null;
                        scan = switch (format) {
                            case MISTRAL, FUNCTIONARY_V32 -> Scan.BETWEEN;
                            case KIMI -> Scan.KIMI_CALL_END;
                            case DEEPSEEK_R1 -> Scan.R1_FENCE_END;
                            case FUNCTIONARY_V31 -> Scan.FN_END;
                            case SOLAR -> Scan.SOLAR_CALL_END;
                            case DEEPSEEK_V31 -> Scan.V31_CALL_END;
                            default -> Scan.AFTER;
                        };
                    } else if (arguments.done()) {
                        scan = Scan.CLOSE_OBJECT;
                    }
                }
                case CLOSE_OBJECT -> {
                    scanned++;
                    if (c == '}') {
                        endCall(out);
                        arguments = null;
                        scan = switch (format) {
                            case HERMES -> Scan.CLOSE_TAG;
                            case MISTRAL_NEMO, NEMOTRON_V2, APRIEL, COHERE, APERTUS, GRANITE, COMMAND_R, FIREFUNCTION -> Scan.NEMO_NEXT;
                            case MINIMAX_M1 -> Scan.LINE_NEXT;
                            default -> Scan.AFTER;
                        };
                    } else if (format == ToolCalls.Format.MISTRAL_NEMO ? !nemoId(c) : !Character.isWhitespace(c)) {
                        scan = Scan.FAILED;
                    }
                }
                case CLOSE_TAG -> tag(c, close, Scan.BETWEEN);
                case BETWEEN -> {
                    if (Character.isWhitespace(c)) {
                        scanned++;
                    } else {
                        scan = Scan.OPEN_TAG; // the next call
                    }
                }
                case AFTER -> {
                    scanned++;
                    if (!Character.isWhitespace(c)) {
                        scan = Scan.FAILED;
                    }
                }
                default -> throw new IllegalStateException(scan.name());
            }
        }
        return out;
    }

    /** The call text beyond which MiniMax M3's call is read again only where an element may have ended (at '>'). */
    private static final int M3_EVERY_CHARACTER = 8192;

    /**
     * MiniMax M3's block: a call's text ({@link #head}) read again as it grows
     * ({@link MiniMaxM3ToolCalls.Reader}): the call starts once its name is whole, its arguments
     * are sent as the JSON read so far grows, and it ends with its {@code NS</invoke>}; or the block's end.
     */
    private void m3(char c, List<Piece> out) {
        scanned++;
        if (head.isEmpty() && Character.isWhitespace(c)) {
            return;
        }
        head.append(c);
        if (head.length() > M3_EVERY_CHARACTER && c != '>') {
            return;
        }
        String h = head.toString();
        if (!callOpen && h.equals(MiniMaxM3ToolCalls.CLOSE)) {
            head.setLength(0);
            scan = Scan.AFTER;
            return;
        }
        if (!callOpen && MiniMaxM3ToolCalls.CLOSE.startsWith(h)) {
            return;
        }
        MiniMaxM3ToolCalls.Reader r = new MiniMaxM3ToolCalls.Reader(h, 0, true);
        if (!r.call(functions) || !r.ended && r.at != h.length()) {
            scan = Scan.FAILED;
            return;
        }
        if (!callOpen && r.function != null) {
            startCall(r.function.name(), out);
            args.setLength(0);
        }
        if (!callOpen) {
            return;
        }
        String a = r.out.toString();
        if (a.startsWith(args.toString())) {
            if (a.length() > args.length()) {
                out.add(new CallArguments(calls.size(), a.substring(args.length())));
                args.append(a, args.length(), a.length());
            }
        } else if (!r.ended) {
            malformed = true; // what was sent is not the arguments' start (a union read as another alternative at last)
        }
        if (!r.ended) {
            endCall(out);
            head.setLength(0);
        }
    }

    /**
     * The key read ({@link #head}, then cleared) opens an argument: a declared parameter not written
     * yet, sent as the object's next key; false where it is not one.
     */
    private boolean openArgument(List<Piece> out) {
        param = plan.param(head.toString());
        head.setLength(0);
        if (param == null || !written.add(param.name())) {
            return false;
        }
        argumentText((written.size() == 1 ? "{" : ",") + JsonSchemaGrammar.dump(
                com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.textNode(param.name())) + ":", out);
        return true;
    }

    /** A character of Nemo's {@code , "id": "..."} after the arguments (the grammar writes it exactly). */
    private static boolean nemoId(char c) {
        return Character.isWhitespace(c) || c == ',' || c == ':' || c == '"' || c < 128 && Character.isLetterOrDigit(c);
    }

    /** A call begins: its name is whole. */
    private void startCall(String name, List<Piece> out) {
        callId = ToolCalls.newId(format);
        callName = name;
        callOpen = true;
        if (!started) {
            started = true;
            String before = text.substring(0, Math.max(0, firstCall())).stripTrailing();
            String e = messageEnd();
            if (e != null && before.endsWith(e)) { // the text's message ended before the call's
                before = before.substring(0, before.length() - e.length()).stripTrailing();
            }
            content = before.isBlank() ? null : before;
        }
        out.add(new CallStart(calls.size(), callId, name));
    }

    /** The call is whole. */
    private void endCall(List<Piece> out) {
        if (!jsonObject(args.toString())) {
            malformed = true; // not what a grammar writes (a control character between tokens, say): no well-formed reply
        }
        ToolCalls.Call call = new ToolCalls.Call(callId, callName, args.toString(), true);
        calls.add(call);
        out.add(new CallEnd(calls.size() - 1, call));
        callOpen = false;
    }

    private static boolean jsonObject(String text) {
        try {
            com.fasterxml.jackson.databind.JsonNode n = SchemaValidator.read(text);
            return n != null && n.isObject();
        } catch (java.io.IOException e) {
            return false;
        }
    }

    /** Arguments text of the call being read. */
    private void argumentText(String t, List<Piece> out) {
        args.append(t);
        out.add(new CallArguments(calls.size(), t));
    }

    /** Sends the raw value's characters up to {@code upTo}, escaped. */
    private void sendRaw(int upTo, List<Piece> out) {
        if (upTo <= valueSent) {
            return;
        }
        StringBuilder t = new StringBuilder();
        for (int i = valueSent; i < upTo; i++) {
            arguments.raw(value.charAt(i), t);
        }
        valueSent = upTo;
        if (!t.isEmpty()) {
            argumentText(t.toString(), out);
        }
    }

    private static boolean endsWith(StringBuilder v, String suffix) {
        return v.length() >= suffix.length() && v.substring(v.length() - suffix.length()).equals(suffix);
    }

    /** Reads {@code c} as the next character of {@code tag} (whitespace may come before it), then {@code next}. */
    private void tag(char c, String tag, Scan next) {
        if (literal == 0 && Character.isWhitespace(c)) {
            scanned++;
        } else if (c == tag.charAt(literal)) {
            scanned++;
            if (++literal == tag.length()) {
                literal = 0;
                scan = next;
            }
        } else {
            scan = Scan.FAILED;
        }
    }

    /**
     * Where the first call begins: Hermes, the first {@code <tool_call>} (XML: or a declared
     * function's {@code <function=NAME>}, {@link ToolCalls#bareOpeners}); Llama 3, the reply's
     * first non-space character where it is <code>{</code> or {@code <}; -1 where the text shows none.
     */
    private int firstCall() {
        if (format != ToolCalls.Format.LLAMA3_JSON) {
            return ToolCalls.firstOpening(text, freeOpen, bare, 0);
        }
        int i = 0;
        while (i < text.length() && Character.isWhitespace(text.charAt(i))) {
            i++;
        }
        return i < text.length() && (text.charAt(i) == '{' || text.charAt(i) == '<') ? i : -1;
    }

    /** What ends a function's or a parameter's name in Qwen's layout ({@code >}), MiniMax's and DeepSeek's ({@code "}, then more). */
    private char nameStop() {
        return dialect == XmlToolCalls.Dialect.HY ? '<' : dialect.invokes() || dialect == XmlToolCalls.Dialect.MINICPM ? '"' : '>';
    }

    /** The longest text that begins a call (its tail may be in text already released). */
    /** What ends a message that the content may end with and that is left out there (GigaChat 3's, muse-glimmer's), or null. */
    private String messageEnd() {
        return format == ToolCalls.Format.GIGACHAT3 ? ToolCalls.GIGACHAT3_MESSAGE_END : format == ToolCalls.Format.MUSE ? ToolCalls.MUSE_END : null;
    }

    private int longestOpening() {
        int n = open.length();
        for (String b : bare) {
            n = Math.max(n, b.length());
        }
        return n;
    }

    private static String decode(String jsonStringBody) {
        try {
            return SchemaValidator.EXACT.readTree("\"" + jsonStringBody + "\"").textValue();
        } catch (java.io.IOException e) {
            return jsonStringBody;
        }
    }

    /**
     * At the reply's end: what is left to send (the rest of a call cut short, and its end), once.
     * Afterwards {@link #calls} and {@link #content} tell the reply where {@link #callsStarted}.
     */
    public List<Piece> finish() {
        if (!callOpen) {
            return List.of();
        }
        List<Piece> out = new ArrayList<>();
        if (scan == Scan.MC_VALUE_START) {
            scan = Scan.XML_RAW; // the start of a CDATA section that never came: text
        }
        if (scan == Scan.XML_RAW && valueKind == XmlToolCalls.Kind.JSON_FIRST) {
            argumentText("\"", out); // a value that may be a string, cut short: its text as a string's start
            valueSent = 0;
        }
        if (scan == Scan.XML_RAW) {
            sendRaw(value.length(), out);
        }
        if (arguments != null) {
            int before = args.length();
            arguments.flush(args);
            if (args.length() > before) {
                out.add(new CallArguments(calls.size(), args.substring(before)));
            }
        }
        ToolCalls.Call cut = new ToolCalls.Call(callId, callName, args.toString(), false);
        calls.add(cut);
        out.add(new CallEnd(calls.size() - 1, cut));
        arguments = null;
        callOpen = false;
        return out;
    }

    /** True once a call began (a constrained reply): the reply is {@link #content} and {@link #calls}. */
    public boolean callsStarted() {
        return started;
    }

    /** True when the constrained reply holds calls only, each whole, in the grammar's layout (after {@link #finish}). */
    public boolean wellFormed() {
        return started && scan != Scan.FAILED && !callOpen && !malformed && calls.stream().allMatch(ToolCalls.Call::complete)
                && (scan == Scan.BETWEEN || scan == Scan.AFTER || scan == Scan.OPEN_TAG && literal == 0
                        // Solar Open's block's end may be the end of generation
                        || format == ToolCalls.Format.SOLAR && scan == Scan.R1_NEXT && head.isEmpty() && !calls.isEmpty()
                        // muse-glimmer's calls end with a message's block (<|eom|> may follow)
                        || format == ToolCalls.Format.MUSE && scan == Scan.MUSE_NEXT && head.isEmpty());
    }

    /** The content before the first call (null: none), once {@link #callsStarted}. */
    public String content() {
        return content;
    }

    /** The calls read so far. */
    public List<ToolCalls.Call> calls() {
        return List.copyOf(calls);
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
