package ai.llmref.server.structured;

import ai.llmref.server.chat.ChatMessage;
import ai.llmref.server.chat.ChatTemplateRenderer;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Tool calls for chat templates that support them: which format a template asks the model to
 * write, the grammar that forces a call ({@code tool_choice} "required" or a named function), and
 * the parsing of the model's output into OpenAI {@code tool_calls}.
 *
 * <p>Formats: {@link Format#HERMES} (Hermes 2 Pro/3, Qwen 2.5/3 and other ChatML tool templates):
 * {@code <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>}, one block per call, text
 * before the first block is the message content. {@link Format#LLAMA3_JSON} (Llama 3.1/3.2/3.3):
 * the whole reply is {@code {"name": ..., "parameters": {...}}}, optionally after
 * {@code <|python_tag|>}; one call per reply, as the template demands. {@link Format#XML}
 * (Qwen3-Coder, Qwen 3.5, Nemotron 3 Nano, StepFun 3.5 Flash): Hermes blocks around
 * {@code <function=NAME>} and one {@code <parameter=NAME>} element a value ({@link XmlToolCalls}).
 * {@link Format#GLM_XML} (GLM 4.5 to 4.7, Ling 3.0, Spark 2.5, Laguna): Hermes blocks around the
 * name and {@code <arg_key>}/{@code <arg_value>} pairs, values as in the XML format.
 * {@link Format#MISTRAL} (Mistral Small 3.2, Devstral, Ministral 3, Magistral):
 * {@code [TOOL_CALLS]NAME[ARGS]{...}} a call (Small 3.2's history adds {@code [CALL_ID]} and a
 * 9-character id before {@code [ARGS]}), the markers being control tokens the output shows for
 * such requests ({@link #markers}). {@link Format#MISTRAL_NEMO} (Mistral Nemo):
 * {@code [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": "..."}, ...]}. {@link Format#HARMONY}
 * (GPT-OSS): a message to the function, {@code to=functions.NAME<|channel|>commentary json<|message|>{...}}
 * (one call a reply: {@code <|call|>} ends the generation). {@link Format#MINIMAX_XML} (MiniMax
 * M2): one {@code <minimax:tool_call>} block of {@code <invoke name="NAME">} calls, values as in
 * the XML format ({@link XmlToolCalls.Dialect#MINIMAX}). {@link Format#KIMI} (Kimi K2):
 * {@code <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:0<|tool_call_argument_begin|>{...}<|tool_call_end|>...<|tool_calls_section_end|>},
 * the markers being control tokens (preserved, as Mistral's). {@link Format#DEEPSEEK_V32} and
 * {@link Format#DEEPSEEK_V4}: one {@code <｜DSML｜function_calls>} (V4: {@code tool_calls}) block of
 * {@code <｜DSML｜invoke>} calls, each parameter saying whether its value is a string
 * ({@link XmlToolCalls.Dialect#DSML}). {@link Format#GEMMA} (Gemma 4):
 * {@code <|tool_call>call:NAME{key:value,...}<tool_call|>} a call, the arguments in Gemma's own
 * notation ({@link GemmaToolCalls}), the markers being control tokens (preserved).
 * {@link Format#NEMOTRON_V2} (Nemotron Nano v2) and {@link Format#APRIEL} (Apriel 1.5, 1.6): a JSON
 * list of {@code {"name": ..., "arguments": {...}}} calls between {@code <TOOLCALL>} and
 * {@code </TOOLCALL>}, or {@code <tool_calls>} and {@code </tool_calls>}. {@link Format#SEED_XML}
 * (ByteDance Seed-OSS): the XML format's calls in {@code <seed:tool_call>} blocks, each value
 * between its tags without line breaks ({@link XmlToolCalls.Dialect#SEED}). {@link Format#COHERE}
 * (Command R7B, Cohere2 MoE): a JSON list of {@code {"tool_call_id": "0", "tool_name": ...,
 * "parameters": {...}}} calls between {@code <|START_ACTION|>} and {@code <|END_ACTION|>}.
 * {@link Format#MINIMAX_M1} (MiniMax M1): {@code {"name": ..., "arguments": {...}}} calls, a line
 * each, between {@code <tool_calls>} and {@code </tool_calls>}. {@link Format#HUNYUAN} (Tencent
 * Hy3): GLM's key and value pairs in tags of its own, in one block ({@link XmlToolCalls.Dialect#HY}).
 * {@link Format#DEEPSEEK_R1} (llama.cpp's DeepSeek R1 template): one block of calls, each
 * {@code <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>},
 * a line break between them, the markers being control tokens (preserved).
 * {@link Format#FUNCTIONARY_V31} (Functionary v3.1): {@code <function=NAME>{...}</function>} a
 * call, calls one after another. {@link Format#GIGACHAT} (GigaChat 3.1): the reply's one call,
 * {@code <|function_call|>{"name": ..., "arguments": {...}}}, the marker a control token (preserved).
 * {@link Format#APERTUS} (Apertus): a JSON list of {@code {"NAME": {...}}} calls, the name the key
 * of the arguments, between {@code <|tools_prefix|>} and {@code <|tools_suffix|>}. {@link Format#KIMI3}
 * (Kimi K3): one section of calls in its markup ({@link XmlToolCalls.Dialect#KIMI3}), after the
 * reply's response element, the markers being control tokens (preserved). {@link Format#GRANITE}
 * (Granite 3.3): {@code <|tool_call|>[{"name": ..., "arguments": {...}}, ...]}. {@link Format#LFM2}
 * (LFM2, LFM2.5): a list of calls in Python's notation ({@link PythonToolCalls}). {@link Format#MINICPM5}
 * (MiniCPM5): {@code <function name="NAME"><param name="P">VALUE</param></function>} a call
 * ({@link XmlToolCalls.Dialect#MINICPM}). {@link Format#FUNCTIONARY_V32} (Functionary v3.2):
 * messages to recipients, {@code >>>NAME\n{...}} a call, the reply read after the {@code >>>}
 * its prompt ends with ({@link MarkerFilter.Envelope}). {@link Format#GIGACHAT3} (GigaChat 3): the
 * reply's one call as a message of the role {@code function call} after the assistant's,
 * {@code <|message_sep|>\n\nfunction call<|role_sep|>\n{"name": ..., "arguments": {...}}}, the
 * separators being control tokens (preserved). {@link Format#COMMAND_R} (Command R+ tool use): a
 * JSON list of {@code {"tool_name": ..., "parameters": {...}}} calls in a fenced block after
 * {@code Action:}, {@code Action:\n```json\n[...]```}. {@link Format#SOLAR} (Upstage Solar Open):
 * {@code <|tool_calls|>} and calls back to back,
 * {@code <|tool_call:begin|>ID<|tool_call:name|>NAME<|tool_call:args|>{...}<|tool_call:end|>}, the
 * markers being control tokens (preserved); the block's end, {@code <|calls|>}, may be missing (it
 * may end the generation). {@link Format#MINIMAX_M3} (MiniMax M3): XML whose tags all begin with
 * {@code ]<]minimax[>[}, a parameter's name its tag, values nested as elements, all calls in one
 * block ({@link MiniMaxM3ToolCalls}). {@link Format#MUSE} (muse-glimmer): each call a message to
 * its function, {@code to=NAME<|message|><atem:function_calls>\n<atem:invoke name="NAME">\n...</atem:invoke>\n</atem:function_calls>}
 * ({@link XmlToolCalls.Dialect#ATEM}), {@code <|eom|>} and the next message's start between them.
 * {@link Format#DEEPSEEK_V31} (DeepSeek V3.1): R1's block of calls, each
 * {@code <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>}. {@link Format#FIREFUNCTION}
 * (Firefunction v2): {@code functools[{"name": ..., "arguments": {...}}, ...]}. These two
 * templates, as DeepSeek's R1 distills, render calls in the history but not the tools themselves
 * ({@link #showsTools}).
 */
public final class ToolCalls {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final String ALPHANUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static final String PROBE = "llmref_probe_tool_7c1e";
    private static final String OPEN = "<tool_call>";
    private static final String CLOSE = "</tool_call>";

    private ToolCalls() {}

    /** How a chat template asks the model to write tool calls. */
    public enum Format {
        /** The template cannot render tools, or writes calls in a format this server cannot parse. */
        NONE,
        HERMES,
        LLAMA3_JSON,
        XML,
        GLM_XML,
        MISTRAL,
        MISTRAL_NEMO,
        HARMONY,
        MINIMAX_XML,
        KIMI,
        DEEPSEEK_V32,
        DEEPSEEK_V4,
        GEMMA,
        NEMOTRON_V2,
        APRIEL,
        SEED_XML,
        COHERE,
        MINIMAX_M1,
        HUNYUAN,
        DEEPSEEK_R1,
        FUNCTIONARY_V31,
        GIGACHAT,
        APERTUS,
        KIMI3,
        GRANITE,
        LFM2,
        MINICPM5,
        FUNCTIONARY_V32,
        GIGACHAT3,
        COMMAND_R,
        SOLAR,
        MINIMAX_M3,
        MUSE,
        DEEPSEEK_V31,
        FIREFUNCTION
    }

    static final String HARMONY_OPEN = "to=functions.";
    private static final String HARMONY_MESSAGE = "<|message|>";

    /** Whether calls begin at {@code [TOOL_CALLS]} and take Mistral's ids of nine characters. */
    public static boolean mistral(Format format) {
        return format == Format.MISTRAL || format == Format.MISTRAL_NEMO;
    }

    /** Control tokens a format's calls are marked with: the output shows them (llama-server's preserved tokens). */
    public static List<String> markers(Format format) {
        return switch (format) {
            case MISTRAL -> List.of(MISTRAL_OPEN, MISTRAL_ARGS, MISTRAL_CALL_ID);
            case MISTRAL_NEMO -> List.of(MISTRAL_OPEN);
            case MINIMAX_XML, NEMOTRON_V2, APRIEL, COHERE, MINIMAX_M1, APERTUS -> List.of(block(format).open(), block(format).close());
            case KIMI -> List.of(KIMI_OPEN, KIMI_CALL, KIMI_ARGS, KIMI_CALL_END, KIMI_CLOSE);
            case DEEPSEEK_V32, DEEPSEEK_V4 -> List.of(XmlToolCalls.DSML);
            case GEMMA -> List.of(GemmaToolCalls.CALL, GemmaToolCalls.CALL_END, GemmaToolCalls.QUOTE);
            case SEED_XML -> List.of(SEED_BLOCK.open(), SEED_BLOCK.close());
            case GIGACHAT -> List.of(GIGACHAT_OPEN);
            case GIGACHAT3 -> List.of(GIGACHAT3_MESSAGE_END, GIGACHAT3_ROLE_END);
            case SOLAR -> List.of(SOLAR_BLOCK.open(), SOLAR_BLOCK.close(), SOLAR_CALL, SOLAR_NAME, SOLAR_ARGS, SOLAR_CALL_END);
            case MINIMAX_M3 -> List.of(MiniMaxM3ToolCalls.NS, "<tool_call>", "</tool_call>"); // as llama.cpp preserves them
            case MUSE -> List.of(ATEM_BLOCK.open(), ATEM_BLOCK.close(), "<atem:invoke", "<atem:parameter", "</atem:parameter>", "</atem:invoke>");
            case FUNCTIONARY_V32 -> List.of(FUNCTIONARY_V32_TEXT); // as llama.cpp preserves it
            case GRANITE -> List.of(GRANITE_OPEN);
            case LFM2 -> List.of(PythonToolCalls.OPEN, PythonToolCalls.CLOSE);
            case MINICPM5 -> List.of("<function", "<param", "</function>", "</param>"); // as llama.cpp preserves them
            case KIMI3 -> List.of(XmlToolCalls.K3_OPEN, XmlToolCalls.K3_CLOSE, XmlToolCalls.K3_SEP);
            case DEEPSEEK_R1, DEEPSEEK_V31 -> List.of(R1_BLOCK.open(), R1_BLOCK.close(), R1_CALL_BEGIN, R1_SEP, R1_CALL_END);
            case HUNYUAN -> List.of(HY_BLOCK.open(), HY_BLOCK.close(), XmlToolCalls.HY_INVOKE, XmlToolCalls.HY_SEP, XmlToolCalls.HY_KEY,
                    XmlToolCalls.HY_KEY_END, XmlToolCalls.HY_VALUE, XmlToolCalls.HY_VALUE_END, XmlToolCalls.HY_CALL_END);
            default -> List.of();
        };
    }

    static final String KIMI_OPEN = "<|tool_calls_section_begin|>";
    static final String KIMI_CLOSE = "<|tool_calls_section_end|>";
    /** A Kimi call's start, with the id's prefix: {@code functions.NAME:INDEX} follows. */
    static final String KIMI_CALL = "<|tool_call_begin|>";
    static final String KIMI_ID = "functions.";
    static final String KIMI_ARGS = "<|tool_call_argument_begin|>";
    static final String KIMI_CALL_END = "<|tool_call_end|>";
    /** DeepSeek R1's markers (llama.cpp's template): a call's start, the separator before its name, its end. */
    static final String R1_CALL_BEGIN = "<｜tool▁call▁begin｜>";
    static final String R1_SEP = "<｜tool▁sep｜>";
    static final String R1_CALL_END = "<｜tool▁call▁end｜>";
    /** An R1 call up to its name (its type is always {@code function}), and what comes between its name and its arguments, and after them. */
    static final String R1_CALL = R1_CALL_BEGIN + "function" + R1_SEP;
    static final String R1_FENCE = "```json";
    static final String R1_FENCE_END = "```" + R1_CALL_END;
    /** Firefunction v2's marker and its list's start. */
    static final String FIREFUNCTION_OPEN = "functools[";
    /** Functionary v3.1's call: {@code <function=NAME>}, the arguments' JSON object, its end. */
    static final String FUNCTIONARY_OPEN = "<function=";
    static final String FUNCTIONARY_CLOSE = "</function>";
    /** Functionary v3.2's recipient mark (its prompt ends with one: the reply begins with a recipient), and the recipient of text. */
    static final String FUNCTIONARY_V32_OPEN = ">>>";
    static final String FUNCTIONARY_V32_TEXT = ">>>all";
    /** What begins GigaChat 3.1's call. */
    static final String GIGACHAT_OPEN = "<|function_call|>";
    /** GigaChat 3's separators (control tokens): what ends a message, and a role's name; a call is a message of the role {@code function call}. */
    static final String GIGACHAT3_MESSAGE_END = "<|message_sep|>";
    static final String GIGACHAT3_ROLE_END = "<|role_sep|>";
    static final String GIGACHAT3_OPEN = GIGACHAT3_MESSAGE_END + "\n\nfunction call" + GIGACHAT3_ROLE_END + "\n";
    /** What begins Granite 3.3's list of calls. */
    static final String GRANITE_OPEN = "<|tool_call|>";
    static final String MISTRAL_OPEN = "[TOOL_CALLS]";
    static final String MISTRAL_ARGS = "[ARGS]";
    static final String MISTRAL_CALL_ID = "[CALL_ID]";

    /** Whether parameters are written one by one, values typed by their schemas ({@link XmlToolCalls}). */
    static boolean xml(Format format) {
        return format == Format.XML || format == Format.GLM_XML || format == Format.MINIMAX_XML || deepSeek(format)
                || format == Format.SEED_XML || format == Format.HUNYUAN || format == Format.KIMI3 || format == Format.MINICPM5
                || format == Format.MUSE;
    }

    /** Whether calls are DeepSeek V3.2's or V4's DSML. */
    static boolean deepSeek(Format format) {
        return format == Format.DEEPSEEK_V32 || format == Format.DEEPSEEK_V4;
    }

    /** What a reply's calls come inside of: its start and its end. */
    record Block(String open, String close) {}

    private static final Block MINIMAX_BLOCK = new Block(XmlToolCalls.MINIMAX_OPEN, XmlToolCalls.MINIMAX_CLOSE);
    private static final Block DEEPSEEK_V32_BLOCK = new Block("<" + XmlToolCalls.DSML + "function_calls>", "</" + XmlToolCalls.DSML
            + "function_calls>");
    private static final Block DEEPSEEK_V4_BLOCK = new Block("<" + XmlToolCalls.DSML + "tool_calls>", "</" + XmlToolCalls.DSML + "tool_calls>");
    private static final Block KIMI_BLOCK = new Block(KIMI_OPEN, KIMI_CLOSE);
    private static final Block NEMOTRON_V2_BLOCK = new Block("<TOOLCALL>", "</TOOLCALL>");
    private static final Block APRIEL_BLOCK = new Block("<tool_calls>", "</tool_calls>");
    private static final Block COHERE_BLOCK = new Block("<|START_ACTION|>", "<|END_ACTION|>");
    /** Command R+'s action: the word, then its list in a fenced JSON block (the fence's start {@link #CR_FENCE}). */
    private static final Block COMMAND_R_BLOCK = new Block("Action:", "```");
    static final String CR_FENCE = "```json";
    /** Solar Open's block of calls, and a call's markers: its start (its id follows), before its name, before its arguments, its end. */
    private static final Block SOLAR_BLOCK = new Block("<|tool_calls|>", "<|calls|>");
    private static final Block M3_BLOCK = new Block(MiniMaxM3ToolCalls.OPEN, MiniMaxM3ToolCalls.CLOSE);
    /**
     * muse-glimmer's block of a call's message, what begins a message to a recipient (after the
     * reply's start or the next message's {@code <|start|>assistant }), what ends its name, and what
     * ends a message that more follow ({@link #MUSE_NEXT} the next one's start).
     */
    private static final Block ATEM_BLOCK = new Block("<atem:function_calls>", "</atem:function_calls>");
    static final String MUSE_TO = "to=";
    static final String MUSE_MESSAGE = "<|message|>";
    static final String MUSE_END = "<|eom|>";
    static final String MUSE_NEXT = "<|start|>assistant";
    static final String SOLAR_CALL = "<|tool_call:begin|>";
    static final String SOLAR_NAME = "<|tool_call:name|>";
    static final String SOLAR_ARGS = "<|tool_call:args|>";
    static final String SOLAR_CALL_END = "<|tool_call:end|>";
    /** Kimi K3's section of calls, and what a reply's response element opens and closes with (before the section, or its end). */
    private static final Block K3_BLOCK = new Block(XmlToolCalls.K3_OPEN + "tools" + XmlToolCalls.K3_SEP,
            XmlToolCalls.K3_CLOSE + "tools" + XmlToolCalls.K3_SEP);
    static final String K3_RESPONSE = XmlToolCalls.K3_OPEN + "response" + XmlToolCalls.K3_SEP;
    static final String K3_RESPONSE_END = XmlToolCalls.K3_CLOSE + "response" + XmlToolCalls.K3_SEP;
    /** Kimi K3's end of a message (its end of generation). */
    static final String K3_END_OF_MESSAGE = "<|end_of_msg|>";
    private static final Block APERTUS_BLOCK = new Block("<|tools_prefix|>", "<|tools_suffix|>");
    private static final Block R1_BLOCK = new Block("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>");
    private static final Block HY_BLOCK = new Block("<tool_calls" + XmlToolCalls.HY_TAG + ">", "</tool_calls" + XmlToolCalls.HY_TAG + ">");
    /** What each call of the {@code <tool_call>} formats comes in; Seed-OSS's own. */
    private static final Block CALL_BLOCK = new Block(OPEN, CLOSE);
    private static final Block SEED_BLOCK = new Block("<seed:tool_call>", "</seed:tool_call>");

    /** The block each call comes in, for the formats with one block a call ({@link #blocks}). */
    static Block callBlock(Format format) {
        return format == Format.SEED_XML ? SEED_BLOCK : format == Format.MINICPM5 ? MINICPM_CALL : CALL_BLOCK;
    }

    /** MiniCPM5's call: its own block, from its name's start to {@code </function>}. */
    private static final Block MINICPM_CALL = new Block(XmlToolCalls.MC_FUNCTION, "</function>");

    /** LFM2's list of calls. */
    private static final Block LFM2_CALLS = new Block(PythonToolCalls.OPEN, PythonToolCalls.CLOSE);

    /** Functionary v3.1's calls, each an element. */
    private static final Block FUNCTIONARY_CALL = new Block(FUNCTIONARY_OPEN, FUNCTIONARY_CLOSE);

    /** Gemma 4's calls, each between its own markers. */
    private static final Block GEMMA_CALL = new Block(GemmaToolCalls.CALL, GemmaToolCalls.CALL_END);

    /**
     * The one block all of a reply's calls come in (MiniMax's and DeepSeek's, of {@code <invoke>}
     * calls; Kimi's section; the JSON list of Nemotron Nano v2 and Apriel); null for other formats.
     */
    static Block block(Format format) {
        return switch (format) {
            case MINIMAX_XML -> MINIMAX_BLOCK;
            case DEEPSEEK_V32 -> DEEPSEEK_V32_BLOCK;
            case DEEPSEEK_V4 -> DEEPSEEK_V4_BLOCK;
            case KIMI -> KIMI_BLOCK;
            case NEMOTRON_V2 -> NEMOTRON_V2_BLOCK;
            case APRIEL, MINIMAX_M1 -> APRIEL_BLOCK;
            case COHERE -> COHERE_BLOCK;
            case COMMAND_R -> COMMAND_R_BLOCK;
            case SOLAR -> SOLAR_BLOCK;
            case MINIMAX_M3 -> M3_BLOCK;
            case MUSE -> ATEM_BLOCK;
            case HUNYUAN -> HY_BLOCK;
            case DEEPSEEK_R1, DEEPSEEK_V31 -> R1_BLOCK;
            case APERTUS -> APERTUS_BLOCK;
            case KIMI3 -> K3_BLOCK;
            default -> null;
        };
    }

    /** Whether calls come in blocks of one call each: {@code <tool_call>} (Hermes, XML, GLM), Seed-OSS's {@code <seed:tool_call>}. */
    static boolean blocks(Format format) {
        return format == Format.HERMES || format == Format.XML || format == Format.GLM_XML || format == Format.SEED_XML
                || format == Format.MINICPM5;
    }

    /** A declared function: its name and the JSON schema of its arguments. */
    public record Function(String name, JsonNode parameters) {}

    /** What may stand at the root of a function's parameters other than an object schema's keywords. */
    private static final List<String> NOT_AN_OBJECT_ROOT = List.of("anyOf", "oneOf", "allOf", "not", "$ref", "const", "enum", "if");

    /**
     * A function's parameters as its calls' arguments are enforced and checked: a call's arguments
     * are a JSON object, so the schema must describe one. Without a {@code type} (a client's
     * {@code {}}, or {@code properties} alone) it is read as {@code "type": "object"}, as
     * llama-server's templates and OpenAI's examples take it; a {@code type} other than
     * {@code "object"}, or an alternative, reference, constant or condition at the root (the arguments
     * might then be a string, a number, null), is refused. Before, the grammar of such parameters let
     * a model write {@code "arguments": 84}, which no reader takes for a call: a 500 for a forced
     * call (found by {@code ToolGrammarFuzzTest}).
     *
     * @throws SchemaException naming the root keyword that does not describe an object
     */
    public static JsonNode argumentsSchema(JsonNode parameters) {
        JsonNode type = parameters.get("type");
        if (type != null) {
            boolean object = type.isTextual() ? type.textValue().equals("object")
                    : type.isArray() && type.size() == 1 && type.get(0).asText().equals("object");
            if (!object) {
                throw new SchemaException("/type", "type", "a function's parameters must describe an object ('type': 'object'); got 'type': "
                        + SchemaKeywords.abbreviate(type.toString()));
            }
        }
        for (String k : NOT_AN_OBJECT_ROOT) {
            if (parameters.has(k)) {
                throw new SchemaException("/" + k, k, "a function's parameters must describe an object ('type': 'object' "
                        + "with 'properties'); '" + k + "' at their root is not supported");
            }
        }
        if (type != null && type.isTextual()) {
            return parameters;
        }
        ObjectNode object = parameters.deepCopy();
        object.put("type", "object");
        return object;
    }

    /**
     * One call the model made: arguments as JSON text, as OpenAI returns them; {@code complete}
     * false for a call cut short by max_tokens (its arguments are then the part written).
     */
    public record Call(String id, String name, String arguments, boolean complete) {
        public Call(String id, String name, String arguments) {
            this(id, name, arguments, true);
        }
    }

    /** A reply split into its text and its tool calls (content null when the reply is only calls). */
    public record Reply(String content, List<Call> calls) {}

    /**
     * The template's tool-call format: the template must render a probe tool's name when given
     * tools (llama.cpp's capability probe), its source must show one of the known formats, and a
     * probe call in the history must render as text that the format reads back as that call (the
     * model writes calls as its template renders them: GLM 4.6's {@code <tool_call>} holds
     * {@code <arg_key>} elements, not Hermes JSON, and is no format here).
     */
    public static Format detect(ChatTemplateRenderer template) {
        String src = template.source();
        Format candidate;
        if (src.contains(MiniMaxM3ToolCalls.NS) && src.contains("<tool_call>") && src.contains("<invoke name=")) {
            candidate = Format.MINIMAX_M3; // llama.cpp's test
        } else if (src.contains(ATEM_BLOCK.open()) && src.contains(MUSE_END)) {
            candidate = Format.MUSE; // llama.cpp's test
        } else if (src.contains(XmlToolCalls.MC_FUNCTION) && src.contains(XmlToolCalls.MC_PARAM)) {
            candidate = Format.MINICPM5;
        } else if (src.contains(GemmaToolCalls.CALL_NAME)) {
            candidate = Format.GEMMA; // llama.cpp's test for its Gemma 4 format
        } else if (src.contains(SEED_BLOCK.open()) && src.contains("<function=") && src.contains("<parameter=")) {
            candidate = Format.SEED_XML;
        } else if (src.contains(COHERE_BLOCK.open() + "[")) {
            candidate = Format.COHERE;
        } else if (src.contains(NEMOTRON_V2_BLOCK.open() + "[")) {
            candidate = Format.NEMOTRON_V2;
        } else if (src.contains(APRIEL_BLOCK.open() + "[")) {
            candidate = Format.APRIEL;
        } else if (src.contains(APRIEL_BLOCK.open() + "\\n") && src.contains("\"arguments\"")) {
            candidate = Format.MINIMAX_M1; // a call a line in the block
        } else if (src.contains("'" + XmlToolCalls.HY_TAG + "'") && src.contains("<arg_key{}>")) {
            candidate = Format.HUNYUAN; // the tags are made of their names and this suffix
        } else if (src.contains(R1_BLOCK.open()) && src.contains(R1_SEP) && src.contains(R1_FENCE)) {
            candidate = Format.DEEPSEEK_R1;
        } else if (src.contains(R1_BLOCK.open()) && src.contains(R1_CALL_BEGIN + "'") && src.contains(R1_SEP)) {
            candidate = Format.DEEPSEEK_V31; // the name right after a call's start, its JSON right after the separator
        } else if (src.contains(FIREFUNCTION_OPEN)) {
            candidate = Format.FIREFUNCTION;
        } else if (src.contains(XmlToolCalls.DSML) && src.contains("invoke")) {
            // llama.cpp's test: V4 names the block tool_calls, V3.2 function_calls
            candidate = src.contains("function_calls") ? Format.DEEPSEEK_V32 : Format.DEEPSEEK_V4;
        } else if (src.contains(XmlToolCalls.MINIMAX_OPEN) && src.contains(XmlToolCalls.INVOKE)) {
            candidate = Format.MINIMAX_XML;
        } else if (src.contains(KIMI_OPEN) && src.contains(KIMI_CALL)) {
            candidate = Format.KIMI; // llama.cpp's test for its Kimi K2 format
        } else if (src.contains("<tool_call>") && src.contains("<function=") && src.contains("<parameter=")
                && !src.contains("'<tool_call><function=' ~ tool_call.name ~ '>'")) {
            candidate = Format.XML; // llama.cpp's test for its Qwen3-Coder format (which also leaves out one without line breaks)
        } else if (src.contains("<tool_call>") && src.contains("<arg_key>") && src.contains("<arg_value>")) {
            candidate = Format.GLM_XML;
        } else if (src.contains("<tool_call>")) {
            candidate = Format.HERMES;
        } else if (src.contains("<|channel|>") && src.contains("<|message|>") && src.contains("functions.")) {
            candidate = Format.HARMONY;
        } else if (src.contains(FUNCTIONARY_V32_TEXT)) {
            candidate = Format.FUNCTIONARY_V32;
        } else if (src.contains(FUNCTIONARY_OPEN) && src.contains(FUNCTIONARY_CLOSE) && !src.contains("<parameter=")) {
            candidate = Format.FUNCTIONARY_V31; // a JSON object in the element, no parameter elements
        } else if (src.contains(XmlToolCalls.K3_OPEN) && src.contains(XmlToolCalls.K3_CLOSE) && src.contains(K3_END_OF_MESSAGE)) {
            candidate = Format.KIMI3; // llama.cpp's test: the markers are Kimi K3's own
        } else if (src.contains(APERTUS_BLOCK.open())) {
            candidate = Format.APERTUS;
        } else if (src.contains("<|tool_list_start|>") || src.contains("List of tools: [")) {
            candidate = Format.LFM2; // llama.cpp's tests for LFM2's and LFM2.5's templates
        } else if (src.contains(GRANITE_OPEN) && src.contains("followed by a JSON list")) {
            candidate = Format.GRANITE; // its system prompt's instruction: "respond only with <|tool_call|> followed by a JSON list of tools used"
        } else if (src.contains(GIGACHAT_OPEN)) {
            candidate = Format.GIGACHAT;
        } else if (src.contains(GIGACHAT3_ROLE_END) && src.contains(GIGACHAT3_MESSAGE_END) && src.contains("'function call'")) {
            candidate = Format.GIGACHAT3; // llama.cpp's test (the role separators without 3.1's marker), and the call's role
        } else if (src.contains(SOLAR_BLOCK.open()) && src.contains(SOLAR_CALL) && src.contains(SOLAR_NAME)) {
            candidate = Format.SOLAR;
        } else if (src.contains(COMMAND_R_BLOCK.open()) && src.contains(CR_FENCE) && src.contains("\"tool_name\"")) {
            candidate = Format.COMMAND_R; // its instruction: "Write 'Action:' followed by a json-formatted list of actions"
        } else if (src.contains(MISTRAL_OPEN) && src.contains(MISTRAL_ARGS)) {
            candidate = Format.MISTRAL; // the v11 layout
        } else if (src.contains(MISTRAL_OPEN)) {
            candidate = Format.MISTRAL_NEMO; // a JSON list after the marker
        } else if (src.contains("<|start_header_id|>") && src.contains("\"parameters\"")) {
            candidate = Format.LLAMA3_JSON;
        } else {
            return Format.NONE;
        }
        Map<String, Object> tool = probeTool();
        try {
            ChatMessage user = ChatMessage.of("user", PROBE_QUESTION);
            // a template that renders no tool (DeepSeek V3.1's, its R1 distills', Firefunction v2's) may
            // still render calls, which llama.cpp reads: read back, they are the evidence (showsTools)
            if (historyless(candidate) && !showsTools(template)) {
                return Format.NONE;
            }
            Map<String, Object> call = Map.of("id", "callprobe", "type", "function", "function",
                    Map.of("name", PROBE, "arguments", new LinkedHashMap<>(Map.of(PROBE_ARG, "probe value"))));
            String history = template.render(List.of(user, new ChatMessage("assistant", "", List.of(call), null, null)), false, List.of(tool));
            if (historyless(candidate) && !history.substring(history.lastIndexOf(PROBE_QUESTION)).contains(PROBE)) {
                return candidate; // its template renders no call in the history (only the content): its source is the evidence
            }
            Reply r = parse(candidate, renderedCall(candidate, history, PROBE_QUESTION),
                    List.of(new Function(PROBE, MAPPER.valueToTree(PROBE_PARAMS))));
            boolean readBack = r.calls().size() == 1 && r.calls().getFirst().arguments().equals("{\"" + PROBE_ARG + "\":\"probe value\"}");
            return readBack ? candidate : Format.NONE;
        } catch (RuntimeException e) {
            return Format.NONE;
        }
    }

    private static final String PROBE_ARG = "llmref_probe_arg";

    /**
     * Whether the template shows the model the request's tools: it renders a probe tool's name
     * (llama.cpp's capability probe). DeepSeek V3.1's, its R1 distills' and Firefunction v2's
     * render calls in the history but no tools, as llama.cpp warns ("does not natively describe
     * tools"): their model sees only what a system message says of them.
     */
    public static boolean showsTools(ChatTemplateRenderer template) {
        try {
            return template.render(List.of(ChatMessage.of("user", PROBE_QUESTION)), true, List.of(probeTool())).contains(PROBE);
        } catch (RuntimeException e) {
            return false;
        }
    }

    private static final Map<String, Object> PROBE_PARAMS = Map.of("type", "object", "properties", Map.of(PROBE_ARG, Map.of("type", "string")));

    /** The probe tool, as a request declares it. */
    private static Map<String, Object> probeTool() {
        Map<String, Object> fn = new LinkedHashMap<>();
        fn.put("name", PROBE);
        fn.put("description", "probe");
        fn.put("parameters", PROBE_PARAMS);
        return Map.of("type", "function", "function", fn);
    }

    /** Whether a format's templates render no call in the history (Granite 3.3's, LFM2's): detected from their source alone. */
    static boolean historyless(Format format) {
        return format == Format.GRANITE || format == Format.LFM2;
    }
    private static final String PROBE_QUESTION = "llmref probe question";

    /**
     * The text of the calls in a rendered history, after the user's last message: Hermes and XML,
     * from the first {@code <tool_call>} to the last {@code </tool_call>}; Llama 3, the JSON from
     * {@code {"name"} to the last brace (templates wrap a turn in tokens of their own).
     */
    static String renderedCall(Format format, String history, String userText) {
        int at = history.lastIndexOf(userText);
        String after = at < 0 ? history : history.substring(at + userText.length());
        Block block = format == Format.GEMMA ? GEMMA_CALL : format == Format.FUNCTIONARY_V31 ? FUNCTIONARY_CALL
                : format == Format.LFM2 ? LFM2_CALLS : block(format);
        if (block != null) {
            int from = format == Format.MUSE ? after.indexOf(MUSE_TO) : after.indexOf(block.open()); // the message's recipient first
            // Command R+'s instruction, with a fenced example, follows the messages: the call's list ends at its first "]```"
            int to = format == Format.COMMAND_R ? after.indexOf("]" + block.close(), Math.max(from, 0)) + 1 + block.close().length()
                    : after.lastIndexOf(block.close()) + block.close().length();
            return from < 0 || to <= from ? "" : after.substring(from, to);
        }
        int from = blocks(format) ? after.indexOf(callBlock(format).open()) : mistral(format) ? after.indexOf(MISTRAL_OPEN)
                : format == Format.HARMONY ? after.indexOf(HARMONY_OPEN) : format == Format.GIGACHAT ? after.indexOf(GIGACHAT_OPEN)
                : format == Format.GIGACHAT3 ? after.indexOf(GIGACHAT3_OPEN)
                : format == Format.FIREFUNCTION ? after.indexOf(FIREFUNCTION_OPEN)
                : format == Format.FUNCTIONARY_V32 ? after.indexOf(FUNCTIONARY_V32_OPEN)
                : after.indexOf("{\"name\"");
        int to = blocks(format) ? after.lastIndexOf(callBlock(format).close()) + callBlock(format).close().length()
                : format == Format.MISTRAL_NEMO || format == Format.FIREFUNCTION ? after.lastIndexOf(']') + 1 : after.lastIndexOf('}') + 1;
        return from < 0 || to <= from ? "" : after.substring(from, to);
    }

    /**
     * A grammar that makes the model call one of the functions (all of them for "required", one
     * for a named choice), its arguments valid under the function's schema; with {@code several}
     * (tool_choice "required" with parallel_tool_calls) one call or more, each in its own Hermes
     * block, the model choosing whether to write another. A Llama 3 JSON reply holds one call.
     *
     * @throws SchemaException when a function's parameters use a feature the grammar cannot enforce
     */
    public static String grammar(Format format, List<Function> functions, boolean several) {
        String block = format == Format.GLM_XML ? "\"<tool_call>\" call \"</tool_call>\""
                : JsonSchemaGrammar.literal(callBlock(format).open() + "\n") + " call " + JsonSchemaGrammar.literal("\n" + callBlock(format).close());
        String root = switch (format) {
            case LLAMA3_JSON -> "call";
            case GIGACHAT, GIGACHAT3 -> JsonSchemaGrammar.literal(opening(format)) + " call"; // one call a reply, as the template writes it
            // after the prompt's ">>>": a recipient, then more messages to recipients
            case FUNCTIONARY_V32 -> several ? "call (\">>>\" call)*" : "call";
            case MISTRAL -> several ? "call+" : "call";
            case MISTRAL_NEMO -> "\"[TOOL_CALLS][\" call" + (several ? " (\",\" space call)*" : "") + " \"]\"";
            case GRANITE -> JsonSchemaGrammar.literal(GRANITE_OPEN + "[") + " call" + (several ? " (\",\" space call)*" : "") + " \"]\"";
            case LFM2 -> JsonSchemaGrammar.literal(PythonToolCalls.OPEN + "[") + " call" + (several ? " (\", \" call)*" : "") + " "
                    + JsonSchemaGrammar.literal("]" + PythonToolCalls.CLOSE);
            case HARMONY -> "\" \" call"; // after the generation prompt's <|start|>assistant, as the template writes a call
            // one block of calls, as MiniMax M2's template writes them
            case MINIMAX_XML, DEEPSEEK_V32, DEEPSEEK_V4, HUNYUAN -> "\"" + block(format).open() + "\\n\" call" + (several ? " (\"\\n\" call)*" : "")
                    + " \"\\n" + block(format).close() + "\"";
            case KIMI -> "\"" + KIMI_OPEN + "\" call" + (several ? "+" : "") + " \"" + KIMI_CLOSE + "\"";
            case GEMMA, FUNCTIONARY_V31 -> several ? "call+" : "call"; // calls one after another, as the template writes them
            case NEMOTRON_V2, APRIEL, COHERE, APERTUS -> JsonSchemaGrammar.literal(block(format).open() + "[") + " space call"
                    + (several ? " (\",\" space call)*" : "") + " space " + JsonSchemaGrammar.literal("]" + block(format).close());
            // as the template writes an action
            case COMMAND_R -> JsonSchemaGrammar.literal(block(format).open() + "\n" + CR_FENCE + "\n[") + " space call"
                    + (several ? " (\",\" space call)*" : "") + " space " + JsonSchemaGrammar.literal("]" + block(format).close());
            // calls one after another in the section, after the response element (empty) where the model writes one
            case KIMI3 -> "(" + JsonSchemaGrammar.literal(K3_RESPONSE) + ")? (" + JsonSchemaGrammar.literal(K3_RESPONSE_END) + ")? "
                    + JsonSchemaGrammar.literal(block(format).open()) + " call" + (several ? "+ " : " ") + JsonSchemaGrammar.literal(block(format).close());
            case DEEPSEEK_R1 -> JsonSchemaGrammar.literal(block(format).open()) + " call" + (several ? " (\"\\n\" call)*" : "") + " "
                    + JsonSchemaGrammar.literal(block(format).close());
            case DEEPSEEK_V31 -> JsonSchemaGrammar.literal(block(format).open()) + " call" + (several ? "+" : "") + " "
                    + JsonSchemaGrammar.literal(block(format).close()); // calls back to back, as the template writes them
            // after the prompt's header, as the template writes its calls (a space, then the marker)
            case FIREFUNCTION -> "\" \" " + JsonSchemaGrammar.literal(FIREFUNCTION_OPEN) + " space call" + (several ? " (\",\" space call)*" : "")
                    + " space \"]\"";
            case MINIMAX_M3 -> JsonSchemaGrammar.literal(block(format).open() + "\n") + " call" + (several ? " (\"\\n\" call)*" : "") + " "
                    + JsonSchemaGrammar.literal("\n" + block(format).close());
            // after the prompt's <|start|>assistant: a message to the function, more after <|eom|> and the next one's start
            case MUSE -> "\" \" call " + JsonSchemaGrammar.literal("\n" + ATEM_BLOCK.close()) + (several ? " (" + JsonSchemaGrammar.literal(
                    MUSE_END + MUSE_NEXT + " ") + " call " + JsonSchemaGrammar.literal("\n" + ATEM_BLOCK.close()) + ")*" : "");
            // calls back to back, as the template writes them; the block's end may be the end of generation
            case SOLAR -> JsonSchemaGrammar.literal(block(format).open()) + " call" + (several ? "+" : "") + " (" + JsonSchemaGrammar.literal(
                    block(format).close()) + ")?";
            // a call a line, as MiniMax M1's template writes them
            case MINIMAX_M1 -> JsonSchemaGrammar.literal(block(format).open() + "\n") + " call" + (several ? " (\"\\n\" call)*" : "")
                    + " " + JsonSchemaGrammar.literal("\n" + block(format).close());
            case MINICPM5 -> several ? "call (\"\\n\" call)*" : "call"; // calls one after another, a line each, as the template writes them
            default -> several ? block + " (\"\\n\" " + block + ")*" : block;
        };
        return grammar(format, functions, root, "");
    }

    /**
     * GPT-OSS's forced call after its analysis message: the grammar that applies from the
     * {@code <|start|>} that begins the next message (a late grammar with that literal), the call
     * then as {@link #grammar} has it after the generation prompt's {@code <|start|>assistant}.
     *
     * @throws SchemaException when a function's parameters use a feature the grammar cannot enforce
     */
    public static String grammarAfterAnalysis(List<Function> functions) {
        return grammar(Format.HARMONY, functions, "\"" + HarmonyStream.START + "assistant \" call", "");
    }

    /**
     * For tool_choice "auto": the grammar that applies once the model begins a call (a
     * {@code LateGrammar} that the server advances over the text from the call's start), with the
     * text that begins one. From there the reply is calls only, each well-formed, naming a declared
     * function, its arguments valid under its schema (several with {@code parallel}); the model
     * chooses whether to call, the grammar only how. A Hermes call begins at {@link #HERMES_OPENING},
     * a Llama 3 JSON call with the reply ({@link #LLAMA3_OPENING}).
     *
     * @throws SchemaException when a function's parameters use a feature the grammar cannot enforce
     */
    public static String lateGrammar(Format format, List<Function> functions, boolean parallel) {
        String block = "\"<tool_call>\" tc-ws call tc-ws \"</tool_call>\"";
        String root = switch (format) {
            case HERMES, GLM_XML -> block + (parallel ? " (tc-ws " + block + ")*" : "") + " tc-ws";
            case MINICPM5 -> "call" + (parallel ? " (tc-ws call)*" : "") + " tc-ws";
            case SEED_XML -> {
                String seed = JsonSchemaGrammar.literal(SEED_BLOCK.open()) + " tc-ws call tc-ws " + JsonSchemaGrammar.literal(SEED_BLOCK.close());
                yield seed + (parallel ? " (tc-ws " + seed + ")*" : "") + " tc-ws";
            }
            // Qwen3-Coder sometimes leaves out the first call's <tool_call> (see bareOpeners)
            case XML -> "(\"<tool_call>\" tc-ws)? call tc-ws \"</tool_call>\"" + (parallel ? " (tc-ws " + block + ")*" : "") + " tc-ws";
            case MISTRAL -> "call" + (parallel ? "+" : "") + " tc-ws";
            case MISTRAL_NEMO -> "\"[TOOL_CALLS]\" tc-ws \"[\" space call" + (parallel ? " (\",\" space call)*" : "") + " space \"]\" tc-ws";
            case LFM2 -> JsonSchemaGrammar.literal(PythonToolCalls.OPEN) + " tc-ws \"[\" call" + (parallel ? " (\", \" call)*" : "") + " \"]\" tc-ws "
                    + JsonSchemaGrammar.literal(PythonToolCalls.CLOSE) + " tc-ws";
            case GRANITE -> JsonSchemaGrammar.literal(GRANITE_OPEN) + " tc-ws \"[\" space call" + (parallel ? " (\",\" space call)*" : "")
                    + " space \"]\" tc-ws";
            case HARMONY -> "call tc-ws"; // one call: <|call|> ends the generation
            case MINIMAX_XML, DEEPSEEK_V32, DEEPSEEK_V4, HUNYUAN -> "\"" + block(format).open() + "\" tc-ws call" + (parallel ? " (tc-ws call)*" : "")
                    + " tc-ws \"" + block(format).close() + "\" tc-ws";
            // Kimi may begin at a call without the section's start (llama.cpp's grammar allows it)
            case KIMI -> "(\"" + KIMI_OPEN + "\" tc-ws)? call" + (parallel ? " (tc-ws call)*" : "") + " tc-ws \"" + KIMI_CLOSE + "\" tc-ws";
            case LLAMA3_JSON -> "(\"<|python_tag|>\" tc-ws)? call tc-ws";
            case GIGACHAT -> JsonSchemaGrammar.literal(GIGACHAT_OPEN) + " tc-ws call tc-ws";
            case GIGACHAT3 -> JsonSchemaGrammar.literal(GIGACHAT3_OPEN) + " call tc-ws"; // the opening's separators are exact
            case FUNCTIONARY_V32 -> "\">>>\" call" + (parallel ? " (tc-ws \">>>\" call)*" : "") + " tc-ws";
            case KIMI3 -> JsonSchemaGrammar.literal(block(format).open()) + " call" + (parallel ? "+ " : " ") + JsonSchemaGrammar.literal(block(format).close())
                    + " tc-ws";
            case GEMMA, FUNCTIONARY_V31 -> "call" + (parallel ? " (tc-ws call)*" : "") + " tc-ws";
            case NEMOTRON_V2, APRIEL, COHERE, APERTUS -> JsonSchemaGrammar.literal(block(format).open()) + " tc-ws \"[\" space call" + (parallel
                    ? " (\",\" space call)*" : "") + " space \"]\" tc-ws " + JsonSchemaGrammar.literal(block(format).close()) + " tc-ws";
            case FIREFUNCTION -> JsonSchemaGrammar.literal(FIREFUNCTION_OPEN) + " space call" + (parallel ? " (\",\" space call)*" : "")
                    + " space \"]\" tc-ws";
            case MINIMAX_M1, DEEPSEEK_R1, DEEPSEEK_V31 -> JsonSchemaGrammar.literal(block(format).open()) + " tc-ws call" + (parallel ? " (tc-ws call)*" : "") + " tc-ws "
                    + JsonSchemaGrammar.literal(block(format).close()) + " tc-ws";
            case SOLAR -> JsonSchemaGrammar.literal(block(format).open()) + " tc-ws call" + (parallel ? " (tc-ws call)*" : "") + " tc-ws ("
                    + JsonSchemaGrammar.literal(block(format).close()) + " tc-ws)?";
            case MINIMAX_M3 -> JsonSchemaGrammar.literal(block(format).open()) + " tc-ws call" + (parallel ? " (tc-ws call)*" : "") + " tc-ws "
                    + JsonSchemaGrammar.literal(block(format).close()) + " tc-ws";
            case MUSE -> "call " + JsonSchemaGrammar.literal("\n" + ATEM_BLOCK.close()) + (parallel ? " (" + JsonSchemaGrammar.literal(MUSE_END)
                    + " tc-ws (" + JsonSchemaGrammar.literal(MUSE_NEXT) + ")? \" \"? call " + JsonSchemaGrammar.literal("\n" + ATEM_BLOCK.close()) + ")*" : "")
                    + " tc-ws";
            case COMMAND_R -> JsonSchemaGrammar.literal(block(format).open()) + " tc-ws " + JsonSchemaGrammar.literal(CR_FENCE) + " tc-ws \"[\" space call"
                    + (parallel ? " (\",\" space call)*" : "") + " space \"]\" tc-ws " + JsonSchemaGrammar.literal(block(format).close()) + " tc-ws";
            case NONE -> throw new IllegalArgumentException("no tool-call format");
        };
        return grammar(format, functions, root, "tc-ws ::= [ \\t\\n]{0,4}\n");
    }

    /** The text whose first occurrence begins a Hermes or XML call (a late grammar's literal). */
    public static final String HERMES_OPENING = OPEN;

    /** The literal whose first occurrence begins a call under "auto" (Hermes, XML), or null where a pattern does (Llama 3). */
    public static String opening(Format format) {
        return blocks(format) ? callBlock(format).open() : mistral(format) ? MISTRAL_OPEN : format == Format.GRANITE ? GRANITE_OPEN
                : format == Format.FIREFUNCTION ? FIREFUNCTION_OPEN
                : format == Format.MUSE ? MUSE_TO
                : format == Format.HARMONY ? HARMONY_OPEN
                : format == Format.GEMMA ? GemmaToolCalls.CALL : format == Format.FUNCTIONARY_V31 ? FUNCTIONARY_OPEN
                : format == Format.GIGACHAT ? GIGACHAT_OPEN : format == Format.GIGACHAT3 ? GIGACHAT3_OPEN : format == Format.LFM2 ? PythonToolCalls.OPEN
                : format == Format.FUNCTIONARY_V32 ? FUNCTIONARY_V32_OPEN
                : block(format) != null ? block(format).open() : null;
    }

    /**
     * The texts whose first occurrence begins a call under "auto" ({@link #opening}, and
     * {@link #bareOpeners}), or null where a pattern does (Llama 3).
     */
    public static List<String> openings(Format format, List<Function> functions) {
        if (format == Format.FUNCTIONARY_V32) { // a message to a function (">>>all" is text's)
            return functions.stream().map(f -> FUNCTIONARY_V32_OPEN + f.name() + "\n").toList();
        }
        if (format == Format.MUSE) { // a message to a function ("self" and "user" are the reasoning's and the text's)
            return bareOpeners(format, functions);
        }
        String opening = opening(format);
        if (opening == null) {
            return null;
        }
        List<String> out = new ArrayList<>(List.of(opening));
        out.addAll(bareOpeners(format, functions));
        return List.copyOf(out);
    }

    /**
     * What also begins a reply's first call in the XML format: a declared function's whole
     * {@code <function=NAME>}, as Qwen3-Coder sometimes writes a call without its {@code <tool_call>}
     * (llama.cpp reads it so; the whole opener of a declared name, not {@code <function}, which
     * code may hold: {@code #include <functional>}). The call's {@code </tool_call>} still ends it.
     */
    static List<String> bareOpeners(Format format, List<Function> functions) {
        return switch (format) {
            case XML -> functions.stream().map(f -> XmlToolCalls.FUNCTION + f.name() + ">").toList();
            case KIMI -> List.of(KIMI_CALL); // Kimi K2 may call without opening the section (llama.cpp reads it)
            case MUSE -> functions.stream().map(f -> MUSE_TO + f.name() + MUSE_MESSAGE).toList(); // its calls begin so, not at any "to="

            default -> List.of();
        };
    }

    /** Where a reply's first call begins, from {@code from}: the first of {@code open} and {@code bare}, or -1. */
    static int firstOpening(CharSequence text, String open, List<String> bareOpeners, int from) {
        int first = open == null ? -1 : indexOf(text, open, from);
        for (String bare : bareOpeners) {
            int at = indexOf(text, bare, from);
            first = at >= 0 && (first < 0 || at < first) ? at : first;
        }
        return first;
    }

    private static int indexOf(CharSequence text, String s, int from) {
        return text instanceof StringBuilder sb ? sb.indexOf(s, from) : text.toString().indexOf(s, from);
    }

    /**
     * How a Llama 3 JSON call begins the reply, the late grammar applying from group 1 (the
     * pattern allows what the grammar's {@code space} does and a little more; where the grammar
     * refuses the text, the reply stays free).
     */
    public static final java.util.regex.Pattern LLAMA3_OPENING =
            java.util.regex.Pattern.compile("\\s*((?:<\\|python_tag\\|>\\s*)?\\{\\s*\"name\"\\s*:\\s*\")");

    private static String grammar(Format format, List<Function> functions, String root, String extraRules) {
        Map<String, String> rules = new LinkedHashMap<>();
        NameNode names = new NameNode();
        for (int i = 0; i < functions.size(); i++) {
            Function f = functions.get(i);
            String prefix = "fn" + i + "-" + JsonSchemaGrammar.sanitize(f.name());
            // what follows the function's name: its arguments
            String restRule = "fn" + i + "-call";
            try {
                if (format == Format.MUSE) {
                    // the recipient is the function's name, as the template writes it; then the message's block and the call
                    rules.putAll(XmlToolCalls.rules(f, prefix, prefix + "-invoke", XmlToolCalls.Dialect.ATEM));
                    rules.put(restRule, JsonSchemaGrammar.literal(MUSE_MESSAGE + ATEM_BLOCK.open() + "\n" + XmlToolCalls.ATEM_INVOKE + f.name()
                            + "\">") + " " + prefix + "-invoke");
                    names.add(f.name(), restRule);
                    continue;
                }
                if (xml(format)) {
                    XmlToolCalls.Dialect dialect = XmlToolCalls.Dialect.of(format);
                    rules.putAll(XmlToolCalls.rules(f, prefix, restRule, dialect));
                    // Qwen: '>' ends a name; MiniMax: '">'; GLM: a line break or '<' (no name
                    // character), so a name may be another's prefix
                    names.add(switch (dialect) {
                        case QWEN, SEED -> f.name() + ">";
                        case MINICPM -> f.name() + "\">";
                        case MINIMAX, DSML, HY, KIMI3, ATEM -> f.name() + dialect.nameEnd();
                        case GLM -> f.name();
                    }, restRule);
                    continue;
                }
                if (format == Format.MINIMAX_M3) {
                    rules.putAll(MiniMaxM3ToolCalls.rules(f, prefix, restRule));
                    names.add(f.name() + "\">", restRule);
                    continue;
                }
                if (format == Format.LFM2) {
                    // '(' ends the name
                    rules.putAll(PythonToolCalls.rules(f, prefix, restRule));
                    names.add(f.name() + "(", restRule);
                    continue;
                }
                if (format == Format.GEMMA) {
                    // the name ends where '{' begins the arguments (no name character), so a name may be another's prefix
                    rules.putAll(GemmaToolCalls.rules(f, prefix, prefix + "-args"));
                    rules.put(restRule, prefix + "-args " + JsonSchemaGrammar.literal(GemmaToolCalls.CALL_END));
                    names.add(f.name(), restRule);
                    continue;
                }
                rules.putAll(JsonSchemaGrammar.rules(f.parameters(), prefix + "-args"));
            } catch (SchemaException e) {
                throw new SchemaException("/tools/" + i + "/function/parameters" + e.pointer(), e.keyword(),
                        "function '" + f.name() + "': " + e.getMessage().replaceFirst(" \\(at #[^)]*\\)$", ""));
            }
            if (format == Format.HARMONY) {
                // the name ends where its header goes on (no name character), so a name may be another's prefix
                rules.put(restRule, "harmony-head " + prefix + "-args");
                names.add(f.name(), restRule);
                continue;
            }
            if (format == Format.MISTRAL) {
                // the name ends where '[' begins a marker (no name character), so a name may be another's prefix
                rules.put(restRule, "(\"[CALL_ID]\" [a-zA-Z0-9]{9})? \"[ARGS]\" " + prefix + "-args");
                names.add(f.name(), restRule);
                continue;
            }
            if (format == Format.FUNCTIONARY_V31) {
                // '>' ends the name, the arguments' object, the element's end
                rules.put(restRule, prefix + "-args " + JsonSchemaGrammar.literal(FUNCTIONARY_CLOSE));
                names.add(f.name() + ">", restRule);
                continue;
            }
            if (format == Format.FUNCTIONARY_V32) {
                // a line break ends the name (the recipient), the arguments follow
                rules.put(restRule, prefix + "-args");
                names.add(f.name() + "\n", restRule);
                continue;
            }
            if (format == Format.DEEPSEEK_R1) {
                // a line break ends the name (no name character), the arguments in a JSON fence
                rules.put(restRule, JsonSchemaGrammar.literal("\n" + R1_FENCE + "\n") + " " + prefix + "-args "
                        + JsonSchemaGrammar.literal("\n" + R1_FENCE_END));
                names.add(f.name(), restRule);
                continue;
            }
            if (format == Format.DEEPSEEK_V31) {
                // the separator ends the name (no name character), then the arguments and the call's end
                rules.put(restRule, JsonSchemaGrammar.literal(R1_SEP) + " " + prefix + "-args " + JsonSchemaGrammar.literal(R1_CALL_END));
                names.add(f.name(), restRule);
                continue;
            }
            if (format == Format.SOLAR) {
                // the arguments after their marker, then the call's end
                rules.put(restRule, JsonSchemaGrammar.literal(SOLAR_ARGS) + " " + prefix + "-args " + JsonSchemaGrammar.literal(SOLAR_CALL_END));
                names.add(f.name(), restRule);
                continue;
            }
            if (format == Format.KIMI) {
                // the id's index after ':' (no name character), the arguments, the call's end
                rules.put(restRule, "\":\" [0-9]{1,4} \"" + KIMI_ARGS + "\" " + prefix + "-args \"" + KIMI_CALL_END + "\"");
                names.add(f.name(), restRule);
                continue;
            }
            if (format == Format.APERTUS) {
                // the quoted name is the key of the arguments
                rules.put(restRule, "space \":\" space " + prefix + "-args space \"}\"");
                names.add(JsonSchemaGrammar.dump(MAPPER.getNodeFactory().textNode(f.name())), restRule);
                continue;
            }
            String argsKey = format == Format.LLAMA3_JSON || format == Format.COHERE || format == Format.COMMAND_R ? "parameters" : "arguments";
            // Nemo's calls end with an id of nine letters and digits, as its template writes them
            String id = format == Format.MISTRAL_NEMO ? " \",\" space \"\\\"id\\\"\" space \":\" space \"\\\"\" [a-zA-Z0-9]{9} \"\\\"\" space" : "";
            rules.put(restRule, "\",\" space \"\\\"" + argsKey + "\\\"\" space \":\" space " + prefix + "-args space" + id + " \"}\"");
            names.add(JsonSchemaGrammar.dump(MAPPER.getNodeFactory().textNode(f.name())), restRule);
        }
        StringBuilder sb = new StringBuilder("root ::= ").append(root).append('\n').append(extraRules);
        // The call's head is written once and the names share their common prefixes (a prefix
        // tree whose branching nodes are rules): llama.cpp's grammar sampler checks every candidate
        // token against every alternative still alive, on the scheduler thread, and one
        // alternative per function kept all 128 of them alive through '{"name": "' and the names'
        // common prefix (with the 128k vocabulary: 70 ms a step against 11 ms for one function).
        if (format == Format.XML || format == Format.SEED_XML) {
            sb.append("call ::= \"<function=\" call-name\n").append(XmlToolCalls.sharedRules(XmlToolCalls.Dialect.of(format)));
        } else if (format == Format.GLM_XML) {
            sb.append("call ::= call-name\n").append(XmlToolCalls.sharedRules(XmlToolCalls.Dialect.GLM));
        } else if (format == Format.MINICPM5) {
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(XmlToolCalls.MC_FUNCTION)).append(" call-name\n")
                    .append(XmlToolCalls.sharedRules(XmlToolCalls.Dialect.MINICPM));
        } else if (format == Format.MUSE) {
            // a message to the function, then the call in its block
            sb.append("call ::= \"to=\" call-name\n").append(XmlToolCalls.sharedRules(XmlToolCalls.Dialect.ATEM));
        } else if (xml(format) && XmlToolCalls.Dialect.of(format).invokes()) {
            XmlToolCalls.Dialect dialect = XmlToolCalls.Dialect.of(format);
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(dialect.invoke())).append(" call-name\n")
                    .append(XmlToolCalls.sharedRules(dialect));
        } else if (format == Format.MISTRAL) {
            sb.append("call ::= \"[TOOL_CALLS]\" call-name\n");
        } else if (format == Format.KIMI) {
            sb.append("call ::= \"" + KIMI_CALL + KIMI_ID + "\" call-name\n");
        } else if (format == Format.APERTUS) {
            sb.append("call ::= \"{\" space call-name\n");
        } else if (format == Format.FUNCTIONARY_V32) {
            sb.append("call ::= call-name\n");
        } else if (format == Format.LFM2) {
            sb.append("call ::= call-name\n").append(PythonToolCalls.SQ_CHAR_RULE);
        } else if (format == Format.FUNCTIONARY_V31) {
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(FUNCTIONARY_OPEN)).append(" call-name\n");
        } else if (format == Format.DEEPSEEK_R1) {
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(R1_CALL)).append(" call-name\n");
        } else if (format == Format.DEEPSEEK_V31) {
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(R1_CALL_BEGIN)).append(" call-name\n");
        } else if (format == Format.GEMMA) {
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(GemmaToolCalls.CALL_NAME)).append(" call-name\n")
                    .append(GemmaToolCalls.sharedRules());
        } else if (format == Format.HARMONY) {
            // the rest of the message's header, as the template writes it (commentary json) or harmony's spec does (<|constrain|>json)
            sb.append("call ::= \"to=functions.\" call-name\n")
                    .append("harmony-head ::= \"<|channel|>commentary\" (\" json\" | \" <|constrain|>json\")? \"<|message|>\"\n");
        } else if (format == Format.COHERE) {
            // the call's index as the template writes its id, then the name
            sb.append("call ::= \"{\" space \"\\\"tool_call_id\\\"\" space \":\" space \"\\\"\" [0-9]{1,4} \"\\\"\" space \",\" space "
                    + "\"\\\"tool_name\\\"\" space \":\" space call-name\n");
        } else if (format == Format.MINIMAX_M3) {
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(MiniMaxM3ToolCalls.INVOKE)).append(" call-name\n")
                    .append(MiniMaxM3ToolCalls.sharedRules());
        } else if (format == Format.SOLAR) {
            // an id of ten lowercase letters and digits, as its template asks for
            sb.append("call ::= ").append(JsonSchemaGrammar.literal(SOLAR_CALL)).append(" [a-z0-9]{10} ").append(JsonSchemaGrammar.literal(SOLAR_NAME))
                    .append(" call-name\n");
        } else if (format == Format.COMMAND_R) {
            sb.append("call ::= \"{\" space \"\\\"tool_name\\\"\" space \":\" space call-name\n");
        } else {
            sb.append("call ::= \"{\" space \"\\\"name\\\"\" space \":\" space call-name\n");
        }
        List<NameNode> pending = new ArrayList<>(List.of(names));
        for (int k = 0; k < pending.size(); k++) {
            sb.append(k == 0 ? "call-name" : "call-name-" + k).append(" ::= ").append(pending.get(k).alternatives(pending)).append('\n');
        }
        rules.forEach((k, v) -> sb.append(k).append(" ::= ").append(v).append('\n'));
        String grammar = sb.toString();
        JsonSchemaGrammar.checkExpansion(grammar); // all functions' schemas together
        return grammar;
    }

    /** A prefix tree of the functions' quoted names; a name ends where its rule follows. */
    private static final class NameNode {
        final Map<Integer, NameNode> next = new LinkedHashMap<>();
        String rest;

        void add(String quotedName, String restRule) {
            NameNode at = this;
            for (int cp : quotedName.codePoints().toArray()) {
                at = at.next.computeIfAbsent(cp, x -> new NameNode());
            }
            at.rest = restRule;
        }

        /**
         * This node's alternatives: each a run of characters up to a name's end (then its rule) or
         * to a node where names part (then that node's rule, numbered by its place in
         * {@code pending}). A name that is the prefix of another ends at a node that has the rest as one alternative.
         */
        String alternatives(List<NameNode> pending) {
            List<String> alts = new ArrayList<>();
            for (Map.Entry<Integer, NameNode> e : next.entrySet()) {
                StringBuilder run = new StringBuilder().appendCodePoint(e.getKey());
                NameNode at = e.getValue();
                while (at.rest == null && at.next.size() == 1) { // a node where a name ends and others go on is a rule of its own
                    Map.Entry<Integer, NameNode> only = at.next.entrySet().iterator().next();
                    run.appendCodePoint(only.getKey());
                    at = only.getValue();
                }
                String then = at.next.isEmpty() ? at.rest : null;
                if (then == null) {
                    pending.add(at);
                    then = "call-name-" + (pending.size() - 1);
                }
                alts.add(JsonSchemaGrammar.literal(run.toString()) + " " + then);
            }
            if (rest != null) {
                alts.add(rest); // a name ends here, and longer ones go on (GLM's names are not quoted)
            }
            return String.join(" | ", alts);
        }
    }

    /**
     * Splits a reply into content and calls. A call counts only when it is well-formed JSON naming
     * a declared function with an object of arguments, and nothing but whitespace stands between
     * the calls or after them (Hermes: around the {@code <tool_call>} blocks, whose closing tag may
     * be missing at the end; Llama 3: after the JSON); otherwise the whole reply is content, so no
     * text is lost. The JSON is read as a JSON value, so a tag inside one of its strings is text.
     */
    public static Reply parse(Format format, String text, List<Function> functions) {
        switch (format) {
            case HERMES -> {
                return blocks(text, (t, from, out) -> {
                    Json body = json(t, from);
                    Call c = body == null ? null : call(body.value(), "arguments", functions, format);
                    if (c == null) {
                        return -1;
                    }
                    out.add(c);
                    return body.end();
                });
            }
            case LLAMA3_JSON -> {
                String t = text.strip();
                if (t.startsWith("<|python_tag|>")) {
                    t = t.substring("<|python_tag|>".length()).strip();
                }
                if (!t.startsWith("{")) {
                    return new Reply(text, List.of());
                }
                Json body = json(t, 0);
                if (body == null || body.end() != t.length()) {
                    return new Reply(text, List.of()); // not JSON, or text after it
                }
                Call c = call(body.value(), "parameters", functions, format);
                if (c == null) {
                    c = call(body.value(), "arguments", functions, format);
                }
                return c == null ? new Reply(text, List.of()) : new Reply(null, List.of(c));
            }
            case XML, GLM_XML, SEED_XML, MINICPM5 -> {
                XmlToolCalls.Dialect dialect = XmlToolCalls.Dialect.of(format);
                Block b = callBlock(format);
                return blocks(text, firstOpening(text, b.open(), bareOpeners(format, functions), 0), b,
                        (t, from, out) -> XmlToolCalls.call(t, from, functions, out, dialect));
            }
            case MINIMAX_XML, DEEPSEEK_V32, DEEPSEEK_V4, HUNYUAN, KIMI3 -> {
                return invokes(text, functions, format);
            }
            case KIMI -> {
                return kimi(text, functions);
            }
            case MISTRAL -> {
                return mistral(text, functions);
            }
            case MISTRAL_NEMO, GRANITE -> { // a list after a marker, no block's end
                return list(text, functions, format, opening(format), null);
            }
            case LFM2 -> {
                return python(text, functions);
            }
            case NEMOTRON_V2, APRIEL, COHERE, APERTUS, COMMAND_R -> {
                return list(text, functions, format, block(format).open(), block(format).close());
            }
            case MINIMAX_M1 -> {
                return lines(text, functions, format);
            }
            case DEEPSEEK_R1, DEEPSEEK_V31, SOLAR -> {
                return markedCalls(text, functions, format);
            }
            case FIREFUNCTION -> {
                return list(text, functions, format, FIREFUNCTION_OPEN, null);
            }
            case MUSE -> {
                return muse(text, functions);
            }
            case MINIMAX_M3 -> {
                int first = text.indexOf(MiniMaxM3ToolCalls.OPEN);
                List<Call> calls = first < 0 ? null : MiniMaxM3ToolCalls.calls(text, first + MiniMaxM3ToolCalls.OPEN.length(), functions);
                return calls == null ? new Reply(text, List.of()) : new Reply(contentBefore(text, first), List.copyOf(calls));
            }
            case FUNCTIONARY_V31 -> {
                return functionary(text, functions);
            }
            case GIGACHAT, GIGACHAT3 -> {
                return gigaChat(text, functions, format);
            }
            case FUNCTIONARY_V32 -> {
                return recipients(text, functions);
            }
            case HARMONY -> {
                return harmony(text, functions);
            }
            case GEMMA -> {
                return gemma(text, functions);
            }
            default -> {
                return new Reply(text, List.of());
            }
        }
    }

    /** Reads one call of a {@code <tool_call>} block from {@code from}; returns the index after it, or -1 where there is none. */
    private interface BlockReader {
        int read(String text, int from, List<Call> calls);
    }

    /**
     * A reply of {@code <tool_call>} blocks (Hermes, XML, GLM): text before the first is content;
     * then blocks only, each one call ({@code reader}), whitespace at most between and after them,
     * the last one's closing tag possibly missing at the end; else the whole reply is content.
     */
    private static Reply blocks(String text, BlockReader reader) {
        return blocks(text, text.indexOf(OPEN), CALL_BLOCK, reader);
    }

    /** {@link #blocks(String, BlockReader)} from {@code first}, in {@code block}s (Seed-OSS's, or {@code <tool_call>}), where the first call may begin without its {@code <tool_call>}. */
    private static Reply blocks(String text, int first, Block block, BlockReader reader) {
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = first;
        while (true) {
            int end = reader.read(text, text.startsWith(block.open(), at) ? at + block.open().length() : at, calls);
            if (end < 0) {
                return new Reply(text, List.of());
            }
            int close = skipSpace(text, end);
            if (close == text.length()) {
                break; // the reply ended before the closing tag
            }
            if (!text.startsWith(block.close(), close)) {
                return new Reply(text, List.of()); // text after the call inside its block
            }
            int next = skipSpace(text, close + block.close().length());
            if (next == text.length()) {
                break;
            }
            if (!text.startsWith(block.open(), next)) {
                return new Reply(text, List.of()); // text between or after the calls: not a clean tool-call reply
            }
            at = next;
        }
        return new Reply(contentBefore(text, first), List.copyOf(calls));
    }

    /**
     * MiniMax M2's and DeepSeek's replies: text before the first block ({@link #block}) is
     * content; then blocks of {@code <invoke>} calls, whitespace at most between and after them,
     * the last block's closing tag possibly missing at the end; else the whole reply is content.
     */
    private static Reply invokes(String text, List<Function> functions, Format format) {
        String open = block(format).open();
        String close = block(format).close();
        int first = text.indexOf(open);
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = first + open.length();
        boolean inBlock = true;
        while (true) {
            at = skipSpace(text, at);
            if (at == text.length()) {
                break;
            }
            if (inBlock && text.startsWith(close, at)) {
                at += close.length();
                inBlock = false;
            } else if (!inBlock && text.startsWith(open, at)) {
                at += open.length();
                inBlock = true;
            } else if (inBlock) {
                at = XmlToolCalls.call(text, at, functions, calls, XmlToolCalls.Dialect.of(format));
                if (at < 0) {
                    return new Reply(text, List.of()); // not a call of a declared function
                }
            } else {
                return new Reply(text, List.of()); // text after the calls: not a clean tool-call reply
            }
        }
        return calls.isEmpty() ? new Reply(text, List.of()) : new Reply(contentBefore(text, first), List.copyOf(calls));
    }

    /**
     * Kimi K2's reply: text before the first section (or call) is content; then calls, each
     * {@code <|tool_call_begin|>functions.NAME:INDEX<|tool_call_argument_begin|>{...}} and its
     * optional {@code <|tool_call_end|>}, whitespace at most between them; the section's end, then
     * whitespace at most, or the reply's end; else the whole reply is content.
     */
    private static Reply kimi(String text, List<Function> functions) {
        int first = firstOpening(text, KIMI_OPEN, List.of(KIMI_CALL), 0);
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = text.startsWith(KIMI_OPEN, first) ? first + KIMI_OPEN.length() : first;
        while (true) {
            at = skipSpace(text, at);
            if (at == text.length()) {
                break;
            }
            if (text.startsWith(KIMI_CLOSE, at)) {
                if (skipSpace(text, at + KIMI_CLOSE.length()) != text.length()) {
                    return new Reply(text, List.of()); // text after the calls: not a clean tool-call reply
                }
                break;
            }
            if (!text.startsWith(KIMI_CALL + KIMI_ID, at)) {
                return new Reply(text, List.of());
            }
            int nameStart = at + KIMI_CALL.length() + KIMI_ID.length();
            int nameEnd = nameEnd(text, nameStart);
            String name = text.substring(nameStart, nameEnd);
            int index = nameEnd + 1;
            while (index < text.length() && text.charAt(index) >= '0' && text.charAt(index) <= '9') {
                index++;
            }
            if (!text.startsWith(":", nameEnd) || index == nameEnd + 1 || !text.startsWith(KIMI_ARGS, index)
                    || functions.stream().noneMatch(f -> f.name().equals(name))) {
                return new Reply(text, List.of());
            }
            at = objectCall(text, index + KIMI_ARGS.length(), name, Format.KIMI, calls);
            if (at < 0) {
                return new Reply(text, List.of());
            }
            if (text.startsWith(KIMI_CALL_END, at)) {
                at += KIMI_CALL_END.length();
            }
        }
        return calls.isEmpty() ? new Reply(text, List.of()) : new Reply(contentBefore(text, first), List.copyOf(calls));
    }

    /**
     * Gemma 4's reply: text before the first {@code <|tool_call>} is content; then calls only
     * ({@link GemmaToolCalls#call}), whitespace at most between and after them, the last one's
     * {@code <tool_call|>} possibly missing at the end; else the whole reply is content.
     */
    private static Reply gemma(String text, List<Function> functions) {
        int first = text.indexOf(GemmaToolCalls.CALL);
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = first;
        while (true) {
            at = GemmaToolCalls.call(text, at, functions, calls);
            if (at < 0) {
                return new Reply(text, List.of());
            }
            at = skipSpace(text, at);
            if (at == text.length()) {
                break;
            }
            if (!text.startsWith(GemmaToolCalls.CALL, at)) {
                return new Reply(text, List.of()); // text between or after the calls: not a clean tool-call reply
            }
        }
        return new Reply(contentBefore(text, first), List.copyOf(calls));
    }

    /**
     * Functionary v3.1's reply: text before the first {@code <function=} is content; then calls
     * only, each {@code <function=NAME>} and a JSON object, then {@code </function>} (possibly
     * missing at the reply's end), whitespace at most between and after them; else the whole
     * reply is content.
     */
    private static Reply functionary(String text, List<Function> functions) {
        return namedCalls(text, functions, FUNCTIONARY_OPEN, (t, nameEnd, name, calls) -> {
            if (!t.startsWith(">", nameEnd)) {
                return -1;
            }
            int at = objectCall(t, nameEnd + 1, name, Format.FUNCTIONARY_V31, calls);
            if (at >= 0 && t.startsWith(FUNCTIONARY_CLOSE, at)) {
                return skipSpace(t, at + FUNCTIONARY_CLOSE.length());
            }
            return at == t.length() ? at : -1; // the last call's end may be missing at the reply's end
        });
    }


    /**
     * LFM2's reply: text before {@code <|tool_call_start|>} is content; then a list of calls in
     * Python's notation ({@link PythonToolCalls#call}), {@code <|tool_call_end|>} (possibly missing
     * at the reply's end), nothing but whitespace after it; else the whole reply is content.
     */
    private static Reply python(String text, List<Function> functions) {
        int first = text.indexOf(PythonToolCalls.OPEN);
        if (first < 0) {
            return new Reply(text, List.of());
        }
        int at = skipSpace(text, first + PythonToolCalls.OPEN.length());
        if (!text.startsWith("[", at)) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        at++;
        while (true) {
            at = PythonToolCalls.call(text, at, functions, calls);
            if (at < 0) {
                return new Reply(text, List.of());
            }
            at = skipSpace(text, at);
            if (text.startsWith("]", at)) {
                break;
            }
            if (!text.startsWith(",", at)) {
                return new Reply(text, List.of());
            }
            at++;
        }
        at = skipSpace(text, at + 1);
        if (text.startsWith(PythonToolCalls.CLOSE, at)) {
            at = skipSpace(text, at + PythonToolCalls.CLOSE.length());
        }
        return at == text.length() ? new Reply(contentBefore(text, first), List.copyOf(calls)) : new Reply(text, List.of());
    }

    /**
     * Functionary v3.2's reply, read after its prompt's {@code >>>} ({@link MarkerFilter.Envelope}):
     * text before the first {@code >>>} is content; then messages to functions only, each
     * {@code >>>NAME}, white space and a JSON object, white space at most between and after them;
     * else the whole reply is content.
     */
    private static Reply recipients(String text, List<Function> functions) {
        return namedCalls(text, functions, FUNCTIONARY_V32_OPEN,
                (t, nameEnd, name, calls) -> objectCall(t, nameEnd, name, Format.FUNCTIONARY_V32, calls));
    }


    /**
     * GigaChat 3.1's reply: text before {@code <|function_call|>} is content; then one call, a JSON
     * object of {@code name} and {@code arguments}, nothing but whitespace after it; else the
     * whole reply is content. GigaChat 3's is the same after {@link #GIGACHAT3_OPEN}, the end of
     * its message ({@code <|message_sep|>}) allowed after the call or the content and left out.
     */
    private static Reply gigaChat(String text, List<Function> functions, Format format) {
        String open = opening(format);
        String end = format == Format.GIGACHAT3 ? GIGACHAT3_MESSAGE_END : null;
        Reply noCall = new Reply(end == null ? text : withoutEnd(text, end), List.of());
        int first = text.indexOf(open);
        if (first < 0) {
            return noCall;
        }
        Json body = json(text, first + open.length());
        Call c = body == null ? null : call(body.value(), "arguments", functions, format);
        int after = body == null ? -1 : skipSpace(text, body.end());
        if (end != null && after >= 0 && text.startsWith(end, after)) {
            after = skipSpace(text, after + end.length());
        }
        if (c == null || after != text.length()) {
            return noCall;
        }
        return new Reply(contentBefore(text, first), List.of(c));
    }

    /** The text without a message's {@code end} and white space at its end, where it ends so. */
    private static String withoutEnd(String text, String end) {
        String t = text.stripTrailing();
        return t.endsWith(end) ? t.substring(0, t.length() - end.length()) : text;
    }

    /**
     * A call's arguments as a JSON object at {@code from}, added to {@code calls} as the call of
     * {@code name}: the index after them and any space, or -1 where no object is there.
     */
    private static int objectCall(String text, int from, String name, Format format, List<Call> calls) {
        Json body = json(text, from);
        if (body == null || !body.value().isObject()) {
            return -1;
        }
        calls.add(new Call(newId(format), name, JsonSchemaGrammar.dump(body.value())));
        return skipSpace(text, body.end());
    }

    /** The text before a reply's first call, as its content (null where it is only whitespace). */
    private static String contentBefore(String text, int first) {
        String content = text.substring(0, first).stripTrailing();
        return content.isBlank() ? null : content;
    }

    /** A character of a function name (OpenAI's: letters, digits, '_' and '-'). */
    static boolean isNameChar(char c) {
        return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-';
    }

    /** Where a function name that begins at {@code from} ends (the first character that is no name's). */
    static int nameEnd(String text, int from) {
        int i = from;
        while (i < text.length() && isNameChar(text.charAt(i))) {
            i++;
        }
        return i;
    }

    /**
     * A Mistral reply: text before the first {@code [TOOL_CALLS]} is content; then calls only,
     * each {@code [TOOL_CALLS]NAME} (optionally {@code [CALL_ID]} and an id) {@code [ARGS]} and a
     * JSON object, whitespace at most between and after them; else the whole reply is content.
     */
    private static Reply mistral(String text, List<Function> functions) {
        return namedCalls(text, functions, MISTRAL_OPEN, (t, nameEnd, name, calls) -> {
            int args = nameEnd;
            if (t.startsWith(MISTRAL_CALL_ID, args)) {
                args += MISTRAL_CALL_ID.length();
                while (args < t.length() && Character.isLetterOrDigit(t.charAt(args)) && t.charAt(args) < 128) {
                    args++;
                }
            }
            return t.startsWith(MISTRAL_ARGS, args) ? objectCall(t, args + MISTRAL_ARGS.length(), name, Format.MISTRAL, calls) : -1;
        });
    }

    /** Reads what follows a call's name ({@code nameEnd}), the call added to {@code calls}; returns the index after it, or -1. */
    private interface NamedCallReader {
        int read(String text, int nameEnd, String name, List<Call> calls);
    }

    /**
     * A reply of calls that each begin with {@code open} and a declared function's name (Mistral's,
     * Functionary's): text before the first is content; then calls only, each read by
     * {@code body}, white space at most between and after them; else the whole reply is content.
     */
    private static Reply namedCalls(String text, List<Function> functions, String open, NamedCallReader body) {
        int first = text.indexOf(open);
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = first;
        while (at < text.length()) {
            if (!text.startsWith(open, at)) {
                return new Reply(text, List.of()); // text between or after the calls: not a clean tool-call reply
            }
            int nameEnd = nameEnd(text, at + open.length());
            String name = text.substring(at + open.length(), nameEnd);
            if (functions.stream().noneMatch(f -> f.name().equals(name))) {
                return new Reply(text, List.of()); // Functionary v3.2's "all" (text) among them
            }
            at = body.read(text, nameEnd, name, calls);
            if (at < 0) {
                return new Reply(text, List.of());
            }
        }
        return new Reply(contentBefore(text, first), List.copyOf(calls));
    }


    /**
     * A reply whose calls are a JSON list after {@code open} (Mistral Nemo's {@code [TOOL_CALLS]};
     * Nemotron Nano v2's and Apriel's block, then its {@code close}, which may be missing at the
     * end; Command R+'s after its fence's start): text before it is content; each call an object with a declared {@code name} and an
     * object of {@code arguments} (an {@code id} may be there; the call gets an id of its own);
     * only whitespace after it. Else the whole reply is content.
     */
    private static Reply list(String text, List<Function> functions, Format format, String open, String close) {
        int first = text.indexOf(open);
        if (first < 0) {
            return new Reply(text, List.of());
        }
        int from = first + open.length();
        if (format == Format.FIREFUNCTION) {
            from--; // the marker's '[' begins the list
        }
        if (format == Format.COMMAND_R) { // the list in its fenced block
            from = skipSpace(text, from);
            if (!text.startsWith(CR_FENCE, from)) {
                return new Reply(text, List.of());
            }
            from += CR_FENCE.length();
        }
        Json list = json(text, from);
        if (list == null || !list.value().isArray() || list.value().isEmpty()) {
            return new Reply(text, List.of());
        }
        int end = skipSpace(text, list.end());
        if (close != null && text.startsWith(close, end)) {
            end = skipSpace(text, end + close.length());
        }
        if (end != text.length()) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        for (JsonNode n : list.value()) {
            Call c = switch (format) {
                case COHERE, COMMAND_R -> call(n, "tool_name", "parameters", functions, format);
                case APERTUS -> keyedCall(n, functions);
                default -> call(n, "arguments", functions, format);
            };
            if (c == null) {
                return new Reply(text, List.of());
            }
            calls.add(c);
        }
        return new Reply(contentBefore(text, first), List.copyOf(calls));
    }

    /**
     * MiniMax M1's reply: text before the block is content; then JSON calls, whitespace between
     * them (the template writes a call a line), the block's end possibly missing at the end of the
     * reply, nothing but whitespace after it; else the whole reply is content.
     */
    private static Reply lines(String text, List<Function> functions, Format format) {
        Block b = block(format);
        int first = text.indexOf(b.open());
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = first + b.open().length();
        while (true) {
            at = skipSpace(text, at);
            if (at == text.length() || text.startsWith(b.close(), at)) {
                break;
            }
            Json body = json(text, at);
            Call c = body == null ? null : call(body.value(), "arguments", functions, format);
            if (c == null) {
                return new Reply(text, List.of());
            }
            calls.add(c);
            at = body.end();
        }
        if (calls.isEmpty() || at < text.length() && skipSpace(text, at + b.close().length()) != text.length()) {
            return new Reply(text, List.of());
        }
        return new Reply(contentBefore(text, first), List.copyOf(calls));
    }

    /**
     * A reply whose calls are marked by control tokens in one block, each call's start, its name,
     * its arguments' JSON object after a mark, and its end: text before the block is content; then
     * calls, whitespace at most between them (a reply may end after a call's object, cut short);
     * the block's end, then whitespace at most, or the reply's end; else the whole reply is content.
     * DeepSeek R1: {@code <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME}, a line break, the object
     * in a {@code ```json} fence and {@code <｜tool▁call▁end｜>}. DeepSeek V3.1:
     * {@code <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>}, the object, {@code <｜tool▁call▁end｜>}. Solar
     * Open: {@code <|tool_call:begin|>ID<|tool_call:name|>NAME<|tool_call:args|>}, the object,
     * {@code <|tool_call:end|>} (any id of at most {@link #MAX_ID} characters without {@code <}; the
     * call gets an id of its own).
     */
    private static Reply markedCalls(String text, List<Function> functions, Format format) {
        boolean r1 = format == Format.DEEPSEEK_R1;
        boolean solar = format == Format.SOLAR;
        String callStart = solar ? SOLAR_CALL : r1 ? R1_CALL : R1_CALL_BEGIN;
        String before = solar ? SOLAR_ARGS : r1 ? R1_FENCE : R1_SEP;
        String end = solar ? SOLAR_CALL_END : r1 ? R1_FENCE_END : R1_CALL_END;
        Block b = block(format);
        int first = text.indexOf(b.open());
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = first + b.open().length();
        while (true) {
            at = skipSpace(text, at);
            if (at == text.length()) {
                break;
            }
            if (text.startsWith(b.close(), at)) {
                if (skipSpace(text, at + b.close().length()) != text.length()) {
                    return new Reply(text, List.of()); // text after the calls: not a clean tool-call reply
                }
                break;
            }
            if (!text.startsWith(callStart, at)) {
                return new Reply(text, List.of());
            }
            int nameStart = at + callStart.length();
            if (solar) { // the call's id, then the mark before its name
                int idEnd = text.indexOf(SOLAR_NAME, nameStart);
                if (idEnd < 0 || idEnd - nameStart > MAX_ID || text.substring(nameStart, idEnd).contains("<")) {
                    return new Reply(text, List.of());
                }
                nameStart = idEnd + SOLAR_NAME.length();
            }
            int nameEnd = nameEnd(text, nameStart);
            String name = text.substring(nameStart, nameEnd);
            int args = r1 ? skipSpace(text, nameEnd) : nameEnd; // R1: a line break before the fence
            if (r1 && nameEnd == args || !text.startsWith(before, args) || functions.stream().noneMatch(f -> f.name().equals(name))) {
                return new Reply(text, List.of());
            }
            at = objectCall(text, args + before.length(), name, format, calls);
            if (at < 0) {
                return new Reply(text, List.of());
            }
            if (text.startsWith(end, at)) {
                at += end.length();
            } else if (at != text.length()) {
                return new Reply(text, List.of());
            }
        }
        return calls.isEmpty() ? new Reply(text, List.of()) : new Reply(contentBefore(text, first), List.copyOf(calls));
    }

    /**
     * muse-glimmer's reply (as its envelope leaves it: {@code <|start|>assistant} and the text's
     * recipient left out): text before the first message to a declared function is content (a
     * message's end, {@code <|eom|>}, at its end left out); then messages to functions, each
     * {@code to=RECIPIENT<|message|>} and a block of calls ({@link XmlToolCalls.Dialect#ATEM}),
     * {@code <|eom|>} (and the next message's start) between them, the last block's end possibly
     * missing at the reply's end. Else the whole reply is content.
     */
    private static Reply muse(String text, List<Function> functions) {
        int first = firstOpening(text, null, bareOpeners(Format.MUSE, functions), 0);
        if (first < 0) {
            return new Reply(text, List.of());
        }
        List<Call> calls = new ArrayList<>();
        int at = first;
        while (true) {
            int nameEnd = text.indexOf(MUSE_MESSAGE, at);
            if (!text.startsWith(MUSE_TO, at) || nameEnd < 0 || nameEnd - at > MAX_ID || text.substring(at, nameEnd).contains("<")
                    || !text.startsWith(ATEM_BLOCK.open(), nameEnd + MUSE_MESSAGE.length())) {
                return new Reply(text, List.of());
            }
            at = nameEnd + MUSE_MESSAGE.length() + ATEM_BLOCK.open().length();
            boolean read = false;
            while (!text.startsWith(ATEM_BLOCK.close(), skipSpace(text, at)) && skipSpace(text, at) < text.length()) {
                at = XmlToolCalls.call(text, at, functions, calls, XmlToolCalls.Dialect.ATEM);
                if (at < 0) {
                    return new Reply(text, List.of());
                }
                read = true;
            }
            at = skipSpace(text, at);
            if (!read) {
                return new Reply(text, List.of());
            }
            if (at == text.length()) {
                break; // the block's end missing at the reply's end
            }
            at = skipSpace(text, at + ATEM_BLOCK.close().length());
            if (at == text.length()) {
                break;
            }
            if (!text.startsWith(MUSE_END, at)) {
                return new Reply(text, List.of());
            }
            at = skipSpace(text, at + MUSE_END.length());
            if (at == text.length()) {
                break;
            }
            if (text.startsWith(MUSE_NEXT, at)) {
                at = skipSpace(text, at + MUSE_NEXT.length());
            }
        }
        String before = contentBefore(text, first);
        if (before != null && before.endsWith(MUSE_END)) { // the text's message ended before the first call's
            before = contentBefore(before, before.length() - MUSE_END.length());
        }
        return new Reply(before, List.copyOf(calls));
    }

    /** The longest call id read in Solar Open's calls (its template asks for ten characters), and muse-glimmer's recipient. */
    static final int MAX_ID = 64;

    /**
     * A GPT-OSS reply's call: the message to {@code functions.NAME} (its header up to
     * {@code <|message|>}, at most 64 characters) and a JSON object, nothing but whitespace after
     * it; text before it is content. Else the whole reply is content.
     */
    private static Reply harmony(String text, List<Function> functions) {
        int at = text.indexOf(HARMONY_OPEN);
        if (at < 0) {
            return new Reply(text, List.of());
        }
        int nameEnd = nameEnd(text, at + HARMONY_OPEN.length());
        String name = text.substring(at + HARMONY_OPEN.length(), nameEnd);
        int message = text.indexOf(HARMONY_MESSAGE, nameEnd);
        if (message < 0 || message - nameEnd > 64 || functions.stream().noneMatch(f -> f.name().equals(name))) {
            return new Reply(text, List.of());
        }
        Json body = json(text, message + HARMONY_MESSAGE.length());
        if (body == null || !body.value().isObject() || skipSpace(text, body.end()) != text.length()) {
            return new Reply(text, List.of());
        }
        String content = text.substring(0, at).strip();
        return new Reply(content.isEmpty() ? null : content, List.of(new Call(newId(), name, JsonSchemaGrammar.dump(body.value()))));
    }

    /** A JSON value read from a reply and the index just after it. */
    record Json(JsonNode value, int end) {}

    /**
     * The JSON value that starts at {@code from} (after whitespace), or null when none does. Numbers
     * are exact (the arguments are written back as JSON, and a double would turn 1e400 into
     * "Infinity"); one whose exponent is beyond a BigDecimal's is kept as written, as the stream
     * passes it on ({@link SchemaValidator#keepingNumbers}).
     */
    static Json json(String text, int from) {
        try (JsonParser p = SchemaValidator.EXACT.createParser(text.substring(from))) {
            JsonNode n = SchemaValidator.EXACT.readTree(p);
            return n == null ? null : new Json(n, from + (int) p.currentLocation().getCharOffset());
        } catch (IOException e) {
            return null;
        } catch (NumberFormatException e) {
            try (JsonParser p = SchemaValidator.EXACT.createParser(text.substring(from))) {
                return p.nextToken() == null ? null : new Json(SchemaValidator.keepingNumbers(p), from + (int) p.currentLocation().getCharOffset());
            } catch (IOException again) {
                return null;
            }
        }
    }

    static int skipSpace(String text, int from) {
        int i = from;
        while (i < text.length() && Character.isWhitespace(text.charAt(i))) {
            i++;
        }
        return i;
    }

    /** The call a JSON object makes of a declared function, its arguments under {@code argsKey}, with an id as {@code format} writes them; else null. */
    private static Call call(JsonNode n, String argsKey, List<Function> functions, Format format) {
        return call(n, "name", argsKey, functions, format);
    }

    /** As {@link #call(JsonNode, String, List, Format)}, the name under {@code nameKey} (Cohere's {@code tool_name}). */
    private static Call call(JsonNode n, String nameKey, String argsKey, List<Function> functions, Format format) {
        if (!(n instanceof ObjectNode o) || !o.path(nameKey).isTextual() || !o.path(argsKey).isObject()) {
            return null;
        }
        String name = o.get(nameKey).textValue();
        if (functions.stream().noneMatch(f -> f.name().equals(name))) {
            return null;
        }
        return new Call(newId(format), name, JsonSchemaGrammar.dump(o.get(argsKey)));
    }

    /** Apertus's call: an object of one key, a declared function's name, whose value is the arguments' object; else null. */
    private static Call keyedCall(JsonNode n, List<Function> functions) {
        if (!(n instanceof ObjectNode o) || o.size() != 1) {
            return null;
        }
        String name = o.fieldNames().next();
        if (!o.get(name).isObject() || functions.stream().noneMatch(f -> f.name().equals(name))) {
            return null;
        }
        return new Call(newId(), name, JsonSchemaGrammar.dump(o.get(name)));
    }

    /** The function a call names. */
    public static Function function(List<Function> functions, String name) {
        return functions.stream().filter(f -> f.name().equals(name)).findFirst().orElseThrow();
    }

    static String newId() {
        return newId(Format.HERMES);
    }

    /**
     * A call id in the history as the format's template takes it: Mistral's templates take ids of
     * nine letters and digits (Small 3.2's refuses others, and the model wrote such ids), so another
     * id (an OpenAI {@code call_...}, the Messages API's {@code toolu_...}, a client's own) becomes
     * nine characters derived from it, the same for the call and its result; Solar Open's, ten
     * lowercase letters and digits, as its template asks the model to write them; other formats
     * keep ids as they are.
     */
    public static String historyId(Format format, String id) {
        if (!mapsHistoryIds(format) || id == null || id.matches(format == Format.SOLAR ? "[a-z0-9]{10}" : "[A-Za-z0-9]{9}")) {
            return id;
        }
        byte[] h;
        try {
            h = java.security.MessageDigest.getInstance("SHA-256").digest(id.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        String alphabet = format == Format.SOLAR ? LOWER_ALPHANUM : ALPHANUM;
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < (format == Format.SOLAR ? 10 : 9); i++) {
            sb.append(alphabet.charAt((h[i] & 0xFF) % alphabet.length()));
        }
        return sb.toString();
    }

    private static final String LOWER_ALPHANUM = "abcdefghijklmnopqrstuvwxyz0123456789";

    /** Whether the format's template takes call ids of its own form ({@link #historyId}). */
    public static boolean mapsHistoryIds(Format format) {
        return mistral(format) || format == Format.SOLAR;
    }

    /** A call's id: OpenAI's {@code call_} and 24 characters; Mistral's 9 (its templates refuse other ids in the history). */
    static String newId(Format format) {
        boolean mistral = mistral(format);
        StringBuilder sb = new StringBuilder(mistral ? "" : "call_");
        for (int i = 0; i < (mistral ? 9 : 24); i++) {
            sb.append(ALPHANUM.charAt(RANDOM.nextInt(ALPHANUM.length())));
        }
        return sb.toString();
    }
}
