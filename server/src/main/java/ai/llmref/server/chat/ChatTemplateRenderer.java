package ai.llmref.server.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaProcessors;
import com.hubspot.jinjava.el.TruthyTypeConverter;
import com.hubspot.jinjava.el.TypeConvertingMapELResolver;
import com.hubspot.jinjava.el.ext.AstNamedParameter;
import com.hubspot.jinjava.el.ext.CollectionNonMembershipOperator;
import com.hubspot.jinjava.el.ext.ExtendedParser;
import com.hubspot.jinjava.el.ext.ExtendedScanner;
import com.hubspot.jinjava.el.ext.JinjavaBeanELResolver;
import com.hubspot.jinjava.el.ext.JinjavaListELResolver;
import com.hubspot.jinjava.el.ext.NamedParameter;
import com.hubspot.jinjava.el.ext.NamedParameterOperator;
import com.hubspot.jinjava.el.ext.PowerOfOperator;
import com.hubspot.jinjava.el.ext.TruncDivOperator;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.InterpreterFactory;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.NullValue;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.AdvancedFilter;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.objects.date.StrftimeFormatter;
import com.hubspot.jinjava.tree.ExpressionNode;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import com.hubspot.jinjava.tree.parse.ExpressionToken;
import com.hubspot.jinjava.util.ForLoop;
import com.hubspot.jinjava.util.ScopeMap;
import java.io.IOException;
import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.RoundingMode;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import jinjava.de.odysseus.el.ExpressionFactoryImpl;
import jinjava.de.odysseus.el.misc.TypeConverter;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.IdentifierNode;
import jinjava.de.odysseus.el.tree.Tree;
import jinjava.de.odysseus.el.tree.TreeBuilder;
import jinjava.de.odysseus.el.tree.TreeBuilderException;
import jinjava.de.odysseus.el.tree.impl.Builder;
import jinjava.de.odysseus.el.tree.impl.Parser;
import jinjava.de.odysseus.el.tree.impl.Parser.ExtensionHandler;
import jinjava.de.odysseus.el.tree.impl.Parser.ExtensionPoint;
import jinjava.de.odysseus.el.tree.impl.Scanner;
import jinjava.de.odysseus.el.tree.impl.Scanner.Symbol;
import jinjava.de.odysseus.el.tree.impl.ast.AstBinary;
import jinjava.de.odysseus.el.tree.impl.ast.AstBracket;
import jinjava.de.odysseus.el.tree.impl.ast.AstDot;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstParameters;
import jinjava.de.odysseus.el.tree.impl.ast.AstRightValue;
import jinjava.de.odysseus.el.tree.impl.ast.AstUnary;
import jinjava.javax.el.ArrayELResolver;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELException;
import jinjava.javax.el.ELResolver;
import jinjava.javax.el.ExpressionFactory;
import jinjava.javax.el.MethodNotFoundException;

/**
 * Renders a chat prompt from a model's own chat template ({@code tokenizer.chat_template}) as
 * Hugging Face's {@code apply_chat_template} and llama-server's Jinja path do.
 *
 * <p>The engine is Jinjava, made to behave like the Jinja2 environment transformers uses.
 * {@code JinjaLexer} applies Jinja2's lexer rules ({@code trim_blocks}, {@code lstrip_blocks},
 * {@code -}/{@code +} markers, newline normalisation, one trailing newline dropped) before
 * Jinjava parses; {@code PyParser} adds Python slices ({@code [::-1]}), keyword arguments holding
 * whole expressions, {@code not x is defined} precedence, Python's {@code +}, {@code -}, {@code *}, {@code /},
 * {@code %}, {@code //} and {@code **} (with Jinja2's precedence, on ints of any size) and chained comparisons
 * ({@code 1 < x <= 5}) in Python's order;
 * {@code PyMethods} gives strings, dicts and lists their Python methods ({@code .strip()},
 * {@code .split()}, {@code .startswith()}, {@code .items()}, {@code .get()}, {@code .append()} ...);
 * {@code PyForTag} runs {@code for} loops with {@code if} filters, {@code else} and
 * {@code loop.previtem}/{@code nextitem}; {@code Helpers} provides {@code raise_exception},
 * {@code strftime_now}, {@code tojson} as Python's {@code json.dumps}, {@code from_json}, Jinja2's
 * {@code sort}, {@code groupby}, {@code min}, {@code max}, {@code dictsort} and {@code int}, Python printing
 * ({@code True}, {@code ['a', 1]}) and the {@code generation} and {@code filter} blocks.
 * Where it departs from Jinja2 it does as llama.cpp's own engine does: None and undefined are one
 * value, a string {@code +} None gives the string, lists may be appended to, a dict key wins over
 * a dict method of the same name, and nothing is HTML-escaped.
 *
 * <p>Variables: {@code messages}, {@code add_generation_prompt}, {@code bos_token},
 * {@code eos_token}, {@code tools} (only when non-empty, as llama-server passes it) and the
 * caller's extra variables ({@code enable_thinking}, ...).
 *
 * <p><b>BOS/EOS</b> (llama.cpp {@code common/chat.cpp},
 * {@code common_chat_template_direct_apply_impl}): the template sees the real BOS/EOS text; when
 * the tokenizer adds BOS itself, one leading BOS text is removed from the output (one trailing
 * EOS likewise), so the prompt does not start with two BOS tokens while a BOS the template writes
 * inside the history stays.
 *
 * <p><b>System messages</b>: when the template does not render a system message (it ignores it
 * or raises, as Gemma's does), a leading system message is merged into the next message with a
 * newline, as llama-server does ({@code workaround::system_message_not_supported}).
 *
 * <p><b>Untrusted templates</b>: templates come from model files. Only maps, lists, strings,
 * numbers, booleans and the loop object have attributes, and only the Python methods of
 * {@code PyValues} can be called; {@code include}, {@code import}, {@code extends} and nested
 * interpretation are off, so message text is never rendered as a template. Output is capped at
 * {@link #MAX_OUTPUT_CHARS}, work at {@link #MAX_STEPS} template nodes and loop iterations,
 * lists and ranges at {@link #MAX_COLLECTION} items, macro recursion at {@link #MAX_MACRO_DEPTH}.
 *
 * <p>Construction parses the whole template and checks every expression, filter and test
 * (syntax errors are a {@link ChatTemplateException}); {@link #render} is thread-safe.
 *
 * <p><b>Default template</b>: {@link #defaultTemplate()} is ChatML, the template llama.cpp
 * falls back to when a model has none ({@code CHATML_TEMPLATE_SRC} in {@code common/chat.cpp})
 * and the most widely trained format, so a model without a template behaves as under
 * llama-server.
 */
public final class ChatTemplateRenderer {

    /** Largest prompt a template may produce, in chars. */
    public static final int MAX_OUTPUT_CHARS = 4 * 1024 * 1024;
    /** Template nodes one render may evaluate (bounds loops: {@code for} over large ranges). */
    public static final int MAX_STEPS = 2_000_000;
    /**
     * Longest a render may take: the step count does not bound work whose steps grow, such as a loop
     * that appends to a string (100,000 appends to a growing string took 13 s); real templates take
     * milliseconds.
     */
    public static final long MAX_RENDER_MILLIS = 3_000;
    /** Largest list, dict or {@code range} a template may build. */
    public static final int MAX_COLLECTION = 100_000;
    /** Deepest macro recursion. */
    public static final int MAX_MACRO_DEPTH = 64;

    // llama.cpp's CHATML_TEMPLATE_SRC (common/chat.cpp), byte for byte.
    private static final String CHATML = """
            {%- for message in messages -%}
              {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}
            {%- endfor -%}
            {%- if add_generation_prompt -%}
              {{- '<|im_start|>assistant\n' -}}
            {%- endif -%}""";

    private final String source;
    /** The template writes harmony messages (GPT-OSS). */
    private final boolean harmony;
    private final String bosToken;
    private final String eosToken;
    private final boolean tokenizerAddsBos;
    private final boolean tokenizerAddsEos;
    private final Node root;
    private final boolean supportsSystemRole;
    private final boolean objectArguments;

    /** A renderer that leaves BOS/EOS text where the template writes it. */
    public ChatTemplateRenderer(String templateSource, String bosToken, String eosToken) {
        this(templateSource, bosToken, eosToken, false, false);
    }

    /**
     * @param templateSource   the Jinja source
     * @param bosToken         the BOS token's text ({@code bos_token}), "" when the model has none
     * @param eosToken         the EOS token's text ({@code eos_token}), "" when the model has none
     * @param tokenizerAddsBos the prompt will be tokenized with the vocabulary's automatic BOS:
     *                         one leading BOS text is removed from the output
     * @param tokenizerAddsEos likewise for one trailing EOS text
     * @throws ChatTemplateException on a syntax error
     */
    public ChatTemplateRenderer(String templateSource, String bosToken, String eosToken,
            boolean tokenizerAddsBos, boolean tokenizerAddsEos) {
        this.source = Objects.requireNonNull(templateSource, "templateSource");
        this.harmony = writesHarmony(templateSource);
        this.bosToken = bosToken == null ? "" : bosToken;
        this.eosToken = eosToken == null ? "" : eosToken;
        this.tokenizerAddsBos = tokenizerAddsBos;
        this.tokenizerAddsEos = tokenizerAddsEos;
        this.root = Sandbox.compile(templateSource);
        this.supportsSystemRole = probeSystemRole();
        this.objectArguments = probeObjectArguments();
    }

    /**
     * Whether the template renders a system message's text (llama.cpp's
     * {@code supports_system_role} capability). When it does not (it ignores the message or
     * raises, as Gemma's does), {@link #render} merges a leading system message into the next
     * message, as llama-server does ({@code workaround::system_message_not_supported}).
     */
    public boolean supportsSystemRole() {
        return supportsSystemRole;
    }

    private boolean probeSystemRole() {
        String probe = "sysprobe7f3a";
        try {
            String out = renderMessages(List.of(ChatMessage.of("system", probe), ChatMessage.of("user", "userprobe")), false, null, Map.of(),
                    true);
            return out.toLowerCase(Locale.ROOT).contains(probe);
        } catch (ChatTemplateException e) {
            return false;
        }
    }

    /**
     * Whether the template reads tool-call arguments as a JSON object (llama.cpp's
     * {@code supports_object_arguments} capability); when it does not, {@link #render} passes them as
     * a JSON string, as llama-server does ({@code workaround::func_args_not_string} only runs for
     * templates with the capability), so a template that concatenates them to a string renders.
     */
    public boolean objectArguments() {
        return objectArguments;
    }

    /**
     * llama.cpp's probe (common/jinja/caps.cpp): a call with arguments {@code {"arg": "value"}}. It
     * tracks whether the template reads {@code arguments.arg}; here the object is kept unless the
     * template fails on it or prints it as a Python dict where the string renders.
     */
    private boolean probeObjectArguments() {
        String asObject = probeArguments(Map.of("arg", "value"));
        String asString = probeArguments("{\"arg\": \"value\"}");
        return asString == null || asObject != null && !asObject.contains("{'arg': 'value'}");
    }

    private String probeArguments(Object arguments) {
        Map<String, Object> call = Map.of("id", "call00001", "type", "function", "function", Map.of("name", "tool1", "arguments", arguments));
        List<Map<String, Object>> tools = List.of(Map.of("type", "function", "function", Map.of("name", "tool1",
                "description", "Tool description", "parameters", Map.of("type", "object",
                        "properties", Map.of("arg", Map.of("type", "string", "description", "Arg description")), "required", List.of("arg")))));
        List<ChatMessage> conversation = List.of(ChatMessage.of("user", "User message"),
                new ChatMessage("assistant", "", List.of(call), null, null), new ChatMessage("tool", "Tool response", null, "call00001", null),
                ChatMessage.of("assistant", "The tool response was 'tool response'"), ChatMessage.of("user", "User message"));
        try {
            return renderMessages(conversation, false, tools, Map.of(), true);
        } catch (ChatTemplateException e) {
            return null;
        }
    }

    /** The template llama.cpp uses for a model without one: ChatML. */
    public static String defaultTemplate() {
        return CHATML;
    }

    /** The template's Jinja source. */
    /** Whether a template writes harmony messages (GPT-OSS): {@code <|start|>}, {@code <|channel|>}, {@code <|message|>}. */
    public static boolean writesHarmony(String source) {
        return source.contains("<|channel|>") && source.contains("<|message|>") && source.contains("<|start|>");
    }

    public String source() {
        return source;
    }

    /**
     * Renders a conversation.
     *
     * @param messages            the conversation
     * @param addGenerationPrompt end with the text that opens the assistant's reply
     * @param tools               OpenAI-shaped tool definitions, or null
     * @throws ChatTemplateException when the template raises (the message is the template's) or
     *                               fails, or the output exceeds a limit
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, List<Map<String, Object>> tools) {
        return render(messages, addGenerationPrompt, tools, Map.of());
    }

    /**
     * Renders a conversation with extra template variables (e.g. {@code enable_thinking}); they
     * cannot replace {@code messages}, {@code tools}, the special tokens or
     * {@code add_generation_prompt}.
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, List<Map<String, Object>> tools,
            Map<String, Object> extraVariables) {
        List<ChatMessage> msgs = messages;
        if (!supportsSystemRole && !msgs.isEmpty() && msgs.get(0).role().equals("system")) {
            msgs = new ArrayList<>(msgs.subList(1, msgs.size()));
            if (!msgs.isEmpty()) {
                ChatMessage next = msgs.get(0);
                String merged = Objects.toString(messages.get(0).content(), "") + "\n" + Objects.toString(next.content(), "");
                msgs.set(0, new ChatMessage(next.role(), merged, next.toolCalls(), next.toolCallId(), next.name(), next.reasoningContent()));
            }
        }
        String out = renderMessages(msgs, addGenerationPrompt, tools, extraVariables, objectArguments);
        if (tokenizerAddsBos && !bosToken.isEmpty() && out.startsWith(bosToken)) {
            out = out.substring(bosToken.length());
        }
        if (tokenizerAddsEos && !eosToken.isEmpty() && out.endsWith(eosToken)) {
            out = out.substring(0, out.length() - eosToken.length());
        }
        return out;
    }

    private String renderMessages(List<ChatMessage> messages, boolean addGenerationPrompt, List<Map<String, Object>> tools,
            Map<String, Object> extraVariables, boolean objectArgs) {
        Map<String, Object> vars = new LinkedHashMap<>();
        extraVariables.forEach((k, v) -> vars.put(k, PyValues.copy(v)));
        List<Object> msgs = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            msgs.add(toMap(m, objectArgs, harmony));
        }
        vars.put("messages", msgs);
        vars.put("add_generation_prompt", addGenerationPrompt);
        vars.put("bos_token", bosToken);
        vars.put("eos_token", eosToken);
        if (tools != null && !tools.isEmpty()) {
            vars.put("tools", PyValues.copy(tools));
        } else {
            vars.remove("tools");
        }
        return Sandbox.render(root, vars);
    }

    /**
     * {@code harmony}: GPT-OSS's template reads a turn's reasoning from {@code thinking}, as
     * llama.cpp passes it there too (it renders an earlier call's analysis from it).
     */
    private static Map<String, Object> toMap(ChatMessage m, boolean objectArgs, boolean harmony) {
        Map<String, Object> map = new LinkedHashMap<>();
        map.put("role", m.role());
        // a turn that only calls tools has content "", as llama-server passes it (to_json_oaicompat,
        // requires_non_null_content): templates print None as "null" or skip the turn
        map.put("content", m.content() == null ? "" : m.content());
        if (m.toolCalls() != null) {
            Object calls = PyValues.copy(m.toolCalls());
            if (!objectArgs && calls instanceof List<?> list) {
                for (Object c : list) {
                    if (c instanceof Map<?, ?> call && call.get("function") instanceof Map<?, ?> fn
                            && (fn.get("arguments") instanceof Map || fn.get("arguments") instanceof List)) {
                        @SuppressWarnings("unchecked")
                        Map<Object, Object> f = (Map<Object, Object>) fn;
                        f.put("arguments", PyValues.json(fn.get("arguments"), null, ",", ":", false, false)); // as OpenAI clients send them
                    }
                }
            }
            map.put("tool_calls", calls);
        }
        if (m.toolCallId() != null) {
            map.put("tool_call_id", m.toolCallId());
        }
        if (m.name() != null) {
            map.put("name", m.name());
        }
        if (m.reasoningContent() != null) {
            map.put("reasoning_content", m.reasoningContent());
            if (harmony) {
                map.put("thinking", m.reasoningContent());
            }
        }
        return map;
    }

    // ------------------------------------------------------------------------------------------
    // The engine: one configured Jinjava for all templates.

    /** Builds and holds the shared engine; compiles and renders. */
    static final class Sandbox {
        private static final JinjavaConfig CONFIG = config();
        private static final Engine ENGINE = new Engine(CONFIG);

        private Sandbox() {}

        @SuppressWarnings("try") // the pushed interpreter is only popped by close()
        static Node compile(String templateSource) {
            if (templateSource.contains(ExtendedParser.INTERPRETER)) {
                throw new ChatTemplateException("chat template uses the reserved name " + ExtendedParser.INTERPRETER);
            }
            String src = JinjaLexer.normalize(templateSource);
            Interp interp = Interp.create(Map.of());
            try (var current = JinjavaInterpreter.closeablePushCurrent(interp).get()) {
                Node root = interp.parse(src);
                checkExpressions(root, interp.getContext());
                return root;
            } catch (RuntimeException e) {
                throw interp.failure(e, "chat template does not compile");
            }
        }

        @SuppressWarnings("try")
        static String render(Node root, Map<String, Object> vars) {
            Interp interp = Interp.create(vars);
            try (var current = JinjavaInterpreter.closeablePushCurrent(interp).get()) {
                return PyValues.bounded(interp.render(root));
            } catch (RuntimeException e) {
                throw interp.failure(e, "chat template failed");
            }
        }

        /**
         * Parses every expression now (Jinjava would only parse one when it is reached) and
         * checks that each filter and test exists, as Jinja2 does when it compiles.
         */
        private static void checkExpressions(Node node, Context context) {
            for (Node child : node.getChildren()) {
                List<String> exprs = child instanceof ExpressionNode ? List.of(((ExpressionToken) child.getMaster()).getExpr())
                        : child instanceof TagNode tag ? tagExpressions(tag.getName(), tag.getHelpers()) : List.of();
                for (String expr : exprs) {
                    checkExpression(expr.strip(), child.getLineNumber(), context);
                }
                checkExpressions(child, context);
            }
        }

        private static void checkExpression(String expr, int line, Context context) {
            Tree tree;
            try {
                tree = ENGINE.builder().build("#{" + expr + "}");
            } catch (TreeBuilderException e) {
                throw new ChatTemplateException("syntax error at line " + line + " in '" + expr + "': " + e.getMessage());
            }
            for (IdentifierNode id : tree.getIdentifierNodes()) {
                String name = id.getName();
                if (name.startsWith(ExtendedParser.FILTER_PREFIX)
                        && context.getFilter(name.substring(ExtendedParser.FILTER_PREFIX.length())) == null) {
                    throw new ChatTemplateException("line " + line + ": no filter named '"
                            + name.substring(ExtendedParser.FILTER_PREFIX.length()) + "'");
                }
                if (name.startsWith(ExtendedParser.EXPTEST_PREFIX)
                        && context.getExpTest(name.substring(ExtendedParser.EXPTEST_PREFIX.length())) == null) {
                    throw new ChatTemplateException("line " + line + ": no test named '"
                            + name.substring(ExtendedParser.EXPTEST_PREFIX.length()) + "'");
                }
            }
        }

        /** The expressions in the tags whose arguments are expressions. */
        private static List<String> tagExpressions(String tag, String helpers) {
            String h = helpers == null ? "" : helpers.strip();
            switch (tag) {
                case "if", "elif", "do":
                    return List.of(h);
                case "filter":
                    return List.of("x|" + h);
                case "set": {
                    int eq = h.indexOf('=');
                    return eq < 0 ? List.of() : List.of("[" + h.substring(eq + 1) + "]"); // as Jinjava's set tag reads it
                }
                case "for": {
                    int in = PyForTag.keyword(h, "in", 0);
                    if (in < 0) {
                        return List.of();
                    }
                    String e = h.substring(in + 2).strip();
                    int iff = PyForTag.keyword(e, "if", 0);
                    return iff < 0 ? List.of(e) : List.of(e.substring(0, iff), e.substring(iff + 2));
                }
                default:
                    return List.of();
            }
        }

        private static JinjavaConfig config() {
            ELResolver resolver = new CompositeELResolver() {
                {
                    add(new PyMethods());
                    add(new ArrayELResolver(true));
                    add(new JinjavaListELResolver(false));
                    add(new TypeConvertingMapELResolver(false));
                    add(new JinjavaBeanELResolver(true));
                }
            };
            LegacyOverrides python = LegacyOverrides.newBuilder()
                    .withEvaluateMapKeys(true)
                    .withIterateOverMapKeys(true)
                    .withUsePyishObjectMapper(true)
                    .withUseSnakeCasePropertyNaming(true)
                    .withUseNaturalOperatorPrecedence(true)
                    .withParseWhitespaceControlStrictly(true)
                    .withAllowAdjacentTextNodes(true)
                    .withUseTrimmingForNotesAndExpressions(true)
                    .withKeepNullableLoopValues(true)
                    .withHandleBackslashInQuotesOnly(true)
                    .build();
            return JinjavaConfig.newBuilder()
                    .withTrimBlocks(false) // JinjaLexer applies Jinja2's whitespace rules before Jinjava parses
                    .withLstripBlocks(false)
                    .withKeepTrailingNewline(true)
                    .withLegacyOverrides(python)
                    .withNestedInterpretationEnabled(false) // never re-render message text as a template
                    .withEnableRecursiveMacroCalls(true)
                    .withMaxMacroRecursionDepth(MAX_MACRO_DEPTH)
                    .withMaxOutputSize(MAX_OUTPUT_CHARS)
                    .withMaxStringLength(MAX_OUTPUT_CHARS)
                    .withMaxListSize(MAX_COLLECTION)
                    .withMaxMapSize(MAX_COLLECTION)
                    .withRangeLimit(MAX_COLLECTION)
                    .withElResolver(resolver)
                    .withLocale(Locale.ROOT)
                    .withDisabled(Map.of(
                            Context.Library.TAG, Set.of("include", "import", "from", "extends", "block"),
                            Context.Library.FILTER, Set.of("render", "fromyaml", "fromjson", "urlize", "random", "shuffle")))
                    .withInterperterFactory(new InterpreterFactory() {
                        @Override
                        public JinjavaInterpreter newInstance(JinjavaInterpreter orig) {
                            return new Interp((Interp) orig);
                        }

                        @Override
                        public JinjavaInterpreter newInstance(Jinjava app, Context ctx, JinjavaConfig cfg) {
                            return new Interp(app, ctx, cfg);
                        }
                    })
                    .withProcessors(JinjavaProcessors.newBuilder()
                            .withNodePreProcessor((node, interp) -> {
                                if (interp instanceof Interp i) {
                                    i.step();
                                }
                            })
                            .build())
                    .build();
        }
    }

    /** Jinjava with the Python-compatible expression parser. */
    static final class Engine extends Jinjava {
        private final ExpressionFactory factory;
        private final PyTreeBuilder builder;

        Engine(JinjavaConfig config) {
            super(config);
            ExpressionFactoryImpl f = new ExpressionFactoryImpl(new Properties(), new TruthyTypeConverter()) {
                @Override
                protected TreeBuilder createTreeBuilder(Properties properties, Builder.Feature... features) {
                    return new PyTreeBuilder(features);
                }
            };
            this.factory = f;
            this.builder = new PyTreeBuilder(Builder.Feature.METHOD_INVOCATIONS, Builder.Feature.VARARGS);
            setResourceLocator((name, encoding, interpreter) -> {
                throw new IOException("chat templates cannot load other templates");
            });
            registerFunction(new ELFunctionDefinition("", "raise_exception", Helpers.class, "raiseException", Object.class));
            registerFunction(new ELFunctionDefinition("", "strftime_now", Helpers.class, "strftimeNow", Object.class));
            // Python's range in place of Jinjava's, which reads a float as its range limit (range(64.0): 100,000 items)
            registerFunction(new ELFunctionDefinition("", "range", Helpers.class, "range", Object.class, Object[].class));
            for (Filter f1 : Helpers.filters()) {
                registerFilter(f1);
            }
            for (ExpTest t : Helpers.tests()) {
                registerExpTest(t);
            }
            // so that "strftime_now is defined" holds, as it does for HF's globals
            for (String fn : List.of("raise_exception", "strftime_now", "namespace", "range")) {
                getGlobalContext().put(fn, new Helpers.Function(fn));
            }
            registerTag(new PyForTag());
            registerTag(new Helpers.GenerationTag());
            registerTag(new Helpers.FilterBlockTag());
        }

        @Override
        public ExpressionFactory getExpressionFactory() {
            return factory;
        }

        PyTreeBuilder builder() {
            return builder;
        }
    }

    /** An interpreter that stops at the first fatal error and prints values as Python does. */
    static final class Interp extends JinjavaInterpreter {
        // shared with the child interpreters of the same render
        private final int[] steps;
        private final ChatTemplateException[] failure;
        /** {@link System#nanoTime} past which the render stops ({@link #MAX_RENDER_MILLIS}). */
        private final long deadline;

        Interp(Jinjava app, Context ctx, JinjavaConfig cfg) {
            super(app, ctx, cfg);
            this.steps = new int[1];
            this.failure = new ChatTemplateException[1];
            this.deadline = System.nanoTime() + MAX_RENDER_MILLIS * 1_000_000L;
        }

        Interp(Interp orig) {
            super(orig);
            this.steps = orig.steps;
            this.failure = orig.failure;
            this.deadline = orig.deadline;
        }

        static Interp create(Map<String, Object> vars) {
            Context global = Sandbox.ENGINE.getGlobalContextCopy();
            Context ctx = new Context(global, vars, Sandbox.CONFIG.getDisabled());
            return new Interp(Sandbox.ENGINE, ctx, Sandbox.CONFIG);
        }

        void step() {
            if (++steps[0] > MAX_STEPS) {
                throw new ChatTemplateException("chat template exceeds " + MAX_STEPS + " steps");
            }
            if ((steps[0] & 63) == 0 && System.nanoTime() - deadline > 0) {
                throw new ChatTemplateException("chat template took longer than " + MAX_RENDER_MILLIS + " ms");
            }
        }

        /**
         * Fatal errors, syntax errors (Jinjava reports a stray end tag as a warning) and the
         * recursion limits (Jinjava would silently render nothing) stop the render; the first
         * one is what the caller sees (Jinjava re-reports an error at each macro it crosses).
         * Other warnings are Jinja's undefined: an unknown attribute, an index out of range.
         */
        @Override
        public void addError(TemplateError error) {
            String message = withoutClassNames(Objects.toString(error.getMessage(), ""));
            if (error.getSeverity() == TemplateError.ErrorType.FATAL
                    || error.getReason() == TemplateError.ErrorReason.SYNTAX_ERROR
                    || message.startsWith("Max recursion limit") || message.startsWith("Cycle detected")
                    || message.startsWith("Rendering cycle detected")) {
                if (failure[0] == null) {
                    ChatTemplateException cause = ours(error.getException());
                    failure[0] = cause != null ? cause : new ChatTemplateException("line " + error.getLineno() + ": " + message);
                }
                throw new FatalError(error);
            }
        }

        /** The exception to give the caller for a render or compile that threw e. */
        ChatTemplateException failure(RuntimeException e, String what) {
            if (failure[0] != null) {
                ChatTemplateException first = failure[0];
                return first.getMessage().startsWith("line ") ? new ChatTemplateException(what + " at " + first.getMessage(), e) : first;
            }
            ChatTemplateException cause = ours(e);
            return cause != null ? cause : new ChatTemplateException(what + ": " + withoutClassNames(e.getMessage()), e);
        }

        /** Java class names that Jinjava puts before its messages ("jinjava.javax.el.ELException: ..."), taken out: the text reaches clients. */
        private static final java.util.regex.Pattern CLASS_NAME =
                java.util.regex.Pattern.compile("\\b(?:[a-z_$][\\w$]*\\.)*[A-Z][\\w$]*(?:Exception|Error)(?:: | when resolving expression \\[.*?\\]: )");
        private static final String FQCN = "((?:[a-z_$][\\w$]*\\.)+[A-Z][\\w$]*)";
        /** Jinjava's coercion failure ("Cannot coerce 'a' of class java.lang.String to class java.lang.Long (incompatible value)"). */
        private static final java.util.regex.Pattern COERCE = java.util.regex.Pattern.compile(
                "Cannot coerce '(.*?)' of class " + FQCN + " to class " + FQCN + "(?: \\([^)]*\\))?", java.util.regex.Pattern.DOTALL);
        /** The JVM's ClassCastException text ("class A cannot be cast to class B (A and B are in module ...)"). */
        private static final java.util.regex.Pattern CAST = java.util.regex.Pattern.compile(
                "class " + FQCN + " cannot be cast to class " + FQCN + "(?: \\(.*\\))?");
        private static final java.util.regex.Pattern ANY_CLASS = java.util.regex.Pattern.compile(
                "\\b(?:java|javax|jdk|sun|com|org|jinjava|ai)\\.(?:[a-z_$][\\w$]*\\.)*[A-Z][\\w$]*");

        /** The message in Python's words: no Java class name reaches the client or the log. */
        static String withoutClassNames(String message) {
            if (message == null) {
                return "";
            }
            String m = CLASS_NAME.matcher(message).replaceAll("");
            m = COERCE.matcher(m).replaceAll(r -> java.util.regex.Matcher.quoteReplacement(
                    (pyType(r.group(2)).equals("str") && r.group(1).length() <= 64 ? "'" + r.group(1) + "' " : "a value ")
                            + "of type '" + pyType(r.group(2)) + "' cannot be used as '" + pyType(r.group(3)) + "'"));
            m = CAST.matcher(m).replaceAll(r -> java.util.regex.Matcher.quoteReplacement(
                    "'" + pyType(r.group(1)) + "' and '" + pyType(r.group(2)) + "' values cannot be combined or compared"));
            m = m.replace("/ by zero", "division by zero");
            return ANY_CLASS.matcher(m).replaceAll(r -> pyType(r.group()));
        }

        /** Python's name for the type a Java class stands for in a template. */
        private static String pyType(String javaClass) {
            String simple = javaClass.substring(javaClass.lastIndexOf('.') + 1);
            return switch (simple) {
                case "String", "Character", "SafeString" -> "str";
                case "Long", "Integer", "Short", "Byte", "BigInteger" -> "int";
                case "Double", "Float", "BigDecimal" -> "float";
                case "Boolean" -> "bool";
                default -> simple.endsWith("List") || simple.endsWith("Set") || simple.endsWith("Collection") ? "list"
                        : simple.endsWith("Map") || simple.endsWith("Dict") ? "dict" : "object";
            };
        }

        /** raise_exception's message, or a ChatTemplateException thrown by the helpers, in t's causes. */
        private static ChatTemplateException ours(Throwable t) {
            for (int depth = 0; t != null && depth < 32; t = t.getCause(), depth++) {
                if (t instanceof RaisedException raised) {
                    return new ChatTemplateException(raised.getMessage());
                }
                if (t instanceof ChatTemplateException cte) {
                    return cte;
                }
            }
            return null;
        }

        @Override
        public String getAsString(Object object) {
            return PyValues.str(object);
        }

        /**
         * A name bound to None in an inner scope (a macro parameter, a {@code set} in a loop) hides
         * the same name outside it, as in Jinja2; Jinjava's scopes fall through a null to the
         * enclosing scope, so {@code render_content(message.content)} read the caller's
         * {@code content} (the previous turn's text) when the message had none.
         */
        @Override
        public Object retraceVariable(String variable, int lineNumber, int startPosition) {
            if (variable != null && boundToNone(variable)) {
                return null;
            }
            return super.retraceVariable(variable, lineNumber, startPosition);
        }

        private boolean boundToNone(String name) {
            for (ScopeMap<String, Object> s = getContext(); s != null; s = s.getParent()) {
                Map<String, Object> scope = s.getScope();
                if (scope.containsKey(name)) {
                    return scope.get(name) == null;
                }
            }
            return false;
        }
    }

    /** Carries Jinjava's first fatal error out of the render. */
    static final class FatalError extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final transient TemplateError error;

        FatalError(TemplateError error) {
            super(error.getMessage(), null, false, false);
            this.error = error;
        }
    }

    /** What {@code raise_exception(message)} throws. */
    static final class RaisedException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        RaisedException(String message) {
            super(message, null, false, false);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Expression syntax: Python slices, whole-expression keyword arguments, '+' always binary,
    // Python string escapes.

    static final class PyTreeBuilder extends com.hubspot.jinjava.el.ExtendedSyntaxBuilder {
        private static final long serialVersionUID = 1L;

        PyTreeBuilder(Builder.Feature... features) {
            super(features);
        }

        @Override
        protected Parser createParser(String expression) {
            return new PyParser(this, expression);
        }
    }

    static final class PyParser extends ExtendedParser {
        PyParser(Builder context, String input) {
            super(context, input);
            putExtensionHandler(TruncDivOperator.TOKEN, new ExtensionHandler(ExtensionPoint.MUL) {
                @Override
                public AstNode createAstNode(AstNode... children) {
                    return createAstBinary(children[0], children[1], PyOperators.FLOOR_DIV);
                }
            });
        }

        @Override
        protected Scanner createScanner(String expression) {
            return new PyScanner(expression);
        }

        /** {@code f(a, key=<any expression>)}: Jinjava's '=' binds tighter than '-' or 'or'. */
        @Override
        protected AstParameters params(Symbol left, Symbol right) throws Scanner.ScanException, ParseException {
            consumeToken(left);
            List<AstNode> l = new ArrayList<>();
            if (getToken().getSymbol() != right) {
                l.add(param());
                while (getToken().getSymbol() == Symbol.COMMA) {
                    consumeToken();
                    if (getToken().getSymbol() == right) {
                        break; // trailing comma
                    }
                    l.add(param());
                }
            }
            consumeToken(right);
            return createAstParameters(l);
        }

        private AstNode param() throws Scanner.ScanException, ParseException {
            if (getToken().getSymbol() == Symbol.IDENTIFIER && lookahead(0) == NamedParameterOperator.TOKEN) {
                String name = consumeToken().getImage();
                consumeToken();
                return new AstNamedParameter(identifier(name), expr(true));
            }
            return expr(true);
        }

        /**
         * Python's {@code +}, {@code -}, {@code *}, {@code /}, {@code %}, {@code <}, {@code <=}, {@code >}, {@code >=},
         * {@code ==} and {@code !=} (Jinjava's would print "null" for None, concatenate anything, wrap around on long
         * overflow, give inf for a division by zero, take the dividend's sign for {@code %}, coerce to compare).
         */
        @Override
        protected AstBinary createAstBinary(AstNode left, AstNode right, AstBinary.Operator operator) {
            if (operator == com.hubspot.jinjava.el.ext.AdditionOperator.OP) {
                operator = PyOperators.ADD;
            } else if (operator == AstBinary.SUB) {
                operator = PyOperators.SUB;
            } else if (operator == AstBinary.MUL) {
                operator = PyOperators.MUL;
            } else if (operator == AstBinary.DIV) {
                operator = PyOperators.DIV;
            } else if (operator == AstBinary.MOD) {
                operator = PyOperators.MOD;
            } else if (operator == AstBinary.LT) {
                operator = PyOperators.LT;
            } else if (operator == AstBinary.LE) {
                operator = PyOperators.LE;
            } else if (operator == AstBinary.GT) {
                operator = PyOperators.GT;
            } else if (operator == AstBinary.GE) {
                operator = PyOperators.GE;
            } else if (operator == AstBinary.EQ) {
                operator = PyOperators.EQ;
            } else if (operator == AstBinary.NE) {
                operator = PyOperators.NE;
            }
            return super.createAstBinary(left, right, operator);
        }

        /** Python's unary minus (Jinjava's wrapped around on the smallest long). */
        @Override
        protected AstUnary createAstUnary(AstNode child, AstUnary.Operator operator) {
            return super.createAstUnary(child, operator == AstUnary.NEG ? PyOperators.NEG : operator);
        }

        /** An int literal of any size up to {@link PyOperators#MAX_INT_DIGITS} digits (Jinjava's had to fit a long). */
        @Override
        protected Number parseInteger(String digits) throws ParseException {
            String significant = digits.replaceFirst("^0+(?=.)", "");
            if (significant.length() > PyOperators.MAX_INT_DIGITS) {
                throw new ParseException(0, "an int literal of " + significant.length() + " digits",
                        "at most " + PyOperators.MAX_INT_DIGITS + " digits");
            }
            return PyOperators.intResult(new BigInteger(significant));
        }

        /**
         * {@code *}, {@code /}, {@code //} and {@code %} over {@link #pow} operands: Jinjava parsed {@code **} beside them
         * ({@code 3 * 2 ** 2} was 36).
         */
        @Override
        protected AstNode mul(boolean required) throws Scanner.ScanException, ParseException {
            AstNode v = pow(required);
            if (v == null) {
                return null;
            }
            while (true) {
                switch (getToken().getSymbol()) {
                    case MUL -> {
                        consumeToken();
                        v = createAstBinary(v, pow(true), AstBinary.MUL);
                    }
                    case DIV -> {
                        consumeToken();
                        v = createAstBinary(v, pow(true), AstBinary.DIV);
                    }
                    case MOD -> {
                        consumeToken();
                        v = createAstBinary(v, pow(true), AstBinary.MOD);
                    }
                    case EXTENSION -> {
                        if (getToken() == PowerOfOperator.TOKEN || getExtensionHandler(getToken()).getExtensionPoint() != ExtensionPoint.MUL) {
                            return v;
                        }
                        v = getExtensionHandler(consumeToken()).createAstNode(v, pow(true)); // //
                    }
                    default -> {
                        return v;
                    }
                }
            }
        }

        /**
         * Jinja2's {@code **} level ({@code parse_pow}): operands are unary expressions with their filters and tests;
         * it groups from the left ({@code 2 ** 3 ** 2} is 64 in Jinja2, unlike Python).
         */
        private AstNode pow(boolean required) throws Scanner.ScanException, ParseException {
            AstNode v = filter(required);
            if (v == null) {
                return null;
            }
            while (getToken() == PowerOfOperator.TOKEN) {
                consumeToken();
                v = createAstBinary(v, filter(true), PyOperators.POW);
            }
            return v;
        }

        /**
         * Python's comparisons: {@code ==}, {@code !=}, {@code <}, {@code <=}, {@code >}, {@code >=}, {@code in} and
         * {@code not in} are one level and chain ({@link AstComparisons}); Jinjava refused {@code 1 < x < 3} and read
         * {@code a == b == c} as {@code (a == b) == c}. Jinja's {@code not} binds looser than comparisons and tests:
         * {@code not x is defined}.
         */
        @Override
        protected AstNode eq(boolean required) throws Scanner.ScanException, ParseException {
            if (getToken().getSymbol() == Symbol.NOT) {
                consumeToken();
                return createAstUnary(eq(true), AstUnary.NOT);
            }
            AstNode first = add(required);
            if (first == null) {
                return null;
            }
            List<AstNode> operands = new ArrayList<>(List.of(first));
            List<java.util.function.BinaryOperator<AstNode>> comparisons = new ArrayList<>();
            for (var c = comparison(); c != null; c = comparison()) {
                comparisons.add(c);
                operands.add(add(true));
            }
            if (comparisons.isEmpty()) {
                return first;
            }
            if (comparisons.size() == 1) {
                return comparisons.get(0).apply(operands.get(0), operands.get(1)); // a plain binary node, as before
            }
            List<AstBinary.Operator> operators = new ArrayList<>();
            for (var c : comparisons) {
                if (!(c.apply(AstValue.NONE, AstValue.NONE) instanceof AstBinary b)) {
                    throw new ParseException(0, "a comparison", "a chained comparison");
                }
                operators.add(b.getOperator());
            }
            return new AstComparisons(operands, operators);
        }

        /** Consumes the comparison operator that comes next and returns how it builds its node; null when none comes. */
        private java.util.function.BinaryOperator<AstNode> comparison() throws Scanner.ScanException, ParseException {
            AstBinary.Operator op = switch (getToken().getSymbol()) {
                case EQ -> AstBinary.EQ;
                case NE -> AstBinary.NE;
                case LT -> AstBinary.LT;
                case LE -> AstBinary.LE;
                case GT -> AstBinary.GT;
                case GE -> AstBinary.GE;
                default -> null;
            };
            if (op != null) {
                consumeToken();
                return (l, r) -> createAstBinary(l, r, op);
            }
            ExtensionHandler handler = null;
            if (getToken().getSymbol() == Symbol.EXTENSION) { // in
                handler = getExtensionHandler(getToken());
                if (handler == null || handler.getExtensionPoint() != ExtensionPoint.CMP && handler.getExtensionPoint() != ExtensionPoint.EQ) {
                    return null;
                }
                consumeToken();
            } else if ("not".equals(getToken().getImage()) && "in".equals(lookahead(0).getImage())) {
                consumeToken();
                consumeToken();
                handler = getExtensionHandler(CollectionNonMembershipOperator.TOKEN);
            }
            ExtensionHandler h = handler;
            return h == null ? null : (l, r) -> h.createAstNode(l, r);
        }

        /** Attribute, item and slice access ({@code a[b]}, {@code a[b:c:d]}). */
        @Override
        protected AstNode value() throws Scanner.ScanException, ParseException {
            boolean lvalue = true;
            AstNode v = nonliteral();
            if (v == null) {
                v = literal();
                if (v == null) {
                    return null;
                }
                lvalue = false;
            }
            while (true) {
                switch (getToken().getSymbol()) {
                    case DOT: {
                        consumeToken();
                        String name = consumeToken(Symbol.IDENTIFIER).getImage();
                        AstDot dot = createAstDot(v, name, lvalue);
                        v = getToken().getSymbol() == Symbol.LPAREN ? createAstMethod(dot, params()) : dot;
                        break;
                    }
                    case LBRACK: {
                        consumeToken();
                        AstNode start = getToken().getSymbol() == Symbol.COLON ? null : expr(true);
                        if (getToken().getSymbol() == Symbol.COLON) {
                            consumeToken();
                            Symbol s = getToken().getSymbol();
                            AstNode stop = s == Symbol.COLON || s == Symbol.RBRACK ? null : expr(true);
                            AstNode step = null;
                            if (getToken().getSymbol() == Symbol.COLON) {
                                consumeToken();
                                step = getToken().getSymbol() == Symbol.RBRACK ? null : expr(true);
                            }
                            consumeToken(Symbol.RBRACK);
                            v = new AstSlice(v, start, stop, step);
                        } else {
                            consumeToken(Symbol.RBRACK);
                            AstBracket bracket = createAstBracket(v, start, lvalue, true);
                            v = getToken().getSymbol() == Symbol.LPAREN ? createAstMethod(bracket, params()) : bracket;
                        }
                        break;
                    }
                    default:
                        return v; // filters and tests are parsed one level up (natural precedence)
                }
            }
        }
    }

    static final class PyScanner extends ExtendedScanner {
        PyScanner(String input) {
            super(input);
        }

        @Override
        protected Token nextEval() throws ScanException {
            if (getInput().charAt(getPosition()) == '+') {
                return fixed(Symbol.PLUS); // Jinjava reads "+1" as a unary operator: "x+1" would not parse
            }
            return super.nextEval();
        }

        /** Python string literal escapes; an unknown escape keeps its backslash. */
        @Override
        protected Token nextString() throws ScanException {
            String in = getInput();
            char quote = in.charAt(getPosition());
            StringBuilder b = new StringBuilder();
            int i = getPosition() + 1;
            while (i < in.length()) {
                char c = in.charAt(i++);
                if (c == quote) {
                    return token(Symbol.STRING, b.toString(), i - getPosition());
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (i == in.length()) {
                    break;
                }
                char e = in.charAt(i++);
                switch (e) {
                    case '\n' -> { }
                    case '\\', '\'', '"' -> b.append(e);
                    case 'n' -> b.append('\n');
                    case 't' -> b.append('\t');
                    case 'r' -> b.append('\r');
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'v' -> b.append('\u000b');
                    case 'a' -> b.append('\u0007');
                    case 'x', 'u', 'U' -> {
                        int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                        if (i + n > in.length()) {
                            throw new ScanException(getPosition(), "truncated \\" + e + " escape", "hex digits");
                        }
                        try {
                            b.appendCodePoint(Integer.parseInt(in.substring(i, i + n), 16));
                        } catch (IllegalArgumentException ex) {
                            throw new ScanException(getPosition(), "bad \\" + e + " escape", "hex digits");
                        }
                        i += n;
                    }
                    default -> {
                        if (e >= '0' && e <= '7') {
                            int end = i;
                            while (end < in.length() && end < i + 2 && in.charAt(end) >= '0' && in.charAt(end) <= '7') {
                                end++;
                            }
                            b.append((char) Integer.parseInt(in.substring(i - 1, end), 8));
                            i = end;
                        } else {
                            b.append('\\').append(e);
                        }
                    }
                }
            }
            throw new ScanException(getPosition(), "unterminated string", String.valueOf(quote));
        }
    }

    /**
     * Python's {@code +} (str, list and number operands; None next to a str counts as "", as in
     * llama.cpp's engine), {@code -}, unary minus, {@code *} (with str/list repetition), {@code /}, {@code %} and
     * {@code //} (rounding toward negative infinity) and {@code **}; a bool counts as the int 1 or 0. Ints are
     * Python's, of any size: a long where the value fits ({@link #intResult}), a BigInteger past it, never wrapping
     * around. An int result of more than {@link #MAX_INT_DIGITS} digits (Python's limit for printing one) is refused:
     * {@code 2**100000000} would take seconds and megabytes, and squaring in a loop grows without bound.
     */
    static final class PyOperators {
        /** Python's {@code sys.get_int_max_str_digits()} default. */
        static final int MAX_INT_DIGITS = 4300;
        /** The smallest int of more than {@link #MAX_INT_DIGITS} digits. */
        static final BigInteger INT_LIMIT = BigInteger.TEN.pow(MAX_INT_DIGITS);

        static final AstBinary.Operator ADD = new AstBinary.SimpleOperator() {
            @Override
            protected Object apply(TypeConverter converter, Object a, Object b) {
                return add(a, b);
            }

            @Override
            public String toString() {
                return "+";
            }
        };

        static Object add(Object a, Object b) {
            if ((a instanceof CharSequence || isNone(a)) && (b instanceof CharSequence || isNone(b)) && !(isNone(a) && isNone(b))) {
                // llama.cpp's engine treats None/undefined as "" next to a string (Python would raise)
                return PyValues.bounded(PyValues.str(a).concat(PyValues.str(b)));
            }
            if (a instanceof List<?> x && b instanceof List<?> y) {
                List<Object> out = new ArrayList<>(x);
                out.addAll(y);
                return PyValues.bounded(out);
            }
            if (isNumber(a) && isNumber(b)) {
                return arithmetic('+', a, b);
            }
            throw unsupported("+", a, b);
        }

        static final AstBinary.Operator SUB = operator("-", (a, b) -> {
            if (isNumber(a) && isNumber(b)) {
                return arithmetic('-', a, b);
            }
            throw unsupported("-", a, b);
        });

        /** Python's unary minus: numbers only (Jinjava's read a str as a number and None as 0). */
        static final AstUnary.Operator NEG = new AstUnary.SimpleOperator() {
            @Override
            protected Object apply(TypeConverter converter, Object v) {
                BigInteger i = bigInt(v);
                if (i != null) {
                    return intResult(i.negate());
                }
                if (isNumber(v)) {
                    return -toDouble(v);
                }
                throw new ELException("bad operand type for unary -: '" + PyValues.typeName(v) + "'");
            }

            @Override
            public String toString() {
                return "-";
            }
        };

        /**
         * Python's {@code +}, {@code -} or {@code *} on two numbers: exact on ints (up to {@link #MAX_INT_DIGITS}
         * digits), in floats when either is a float.
         */
        private static Number arithmetic(char op, Object a, Object b) {
            Long x = smallInt(a);
            Long y = smallInt(b);
            if (x != null && y != null) {
                try {
                    return switch (op) {
                        case '+' -> Math.addExact(x, y);
                        case '-' -> Math.subtractExact(x, y);
                        default -> Math.multiplyExact(x, y);
                    };
                } catch (ArithmeticException overflow) {
                    // the exact result is a BigInteger's
                }
            }
            BigInteger bx = bigInt(a);
            BigInteger by = bigInt(b);
            if (bx != null && by != null) {
                String symbol = String.valueOf(op);
                return switch (op) {
                    case '+' -> boundedInt(bx.add(by), symbol);
                    case '-' -> boundedInt(bx.subtract(by), symbol);
                    default -> {
                        // the product has at least this many bits past its first: no need to compute one that is refused
                        if (bx.signum() != 0 && by.signum() != 0 && (long) bx.abs().bitLength() + by.abs().bitLength() - 2 > INT_LIMIT.bitLength()) {
                            throw tooManyDigits(symbol);
                        }
                        yield boundedInt(bx.multiply(by), symbol);
                    }
                };
            }
            double u = toFloat(a);
            double v = toFloat(b);
            return switch (op) {
                case '+' -> u + v;
                case '-' -> u - v;
                default -> u * v;
            };
        }

        static final AstBinary.Operator MUL = new AstBinary.SimpleOperator() {
            @Override
            protected Object apply(TypeConverter converter, Object a, Object b) {
                if (b instanceof CharSequence || b instanceof List) {
                    Object t = a;
                    a = b;
                    b = t;
                }
                BigInteger count = bigInt(b);
                if ((a instanceof CharSequence || a instanceof List) && count != null) {
                    if (count.bitLength() > 63) {
                        throw new ELException("cannot fit 'int' into an index-sized integer");
                    }
                    long n = Math.max(0, count.longValue());
                    if (a instanceof CharSequence s) {
                        if (s.isEmpty() || n == 0) {
                            return "";
                        }
                        if (s.length() > MAX_OUTPUT_CHARS / n) {
                            throw new ChatTemplateException("chat template output exceeds " + MAX_OUTPUT_CHARS + " chars");
                        }
                        return s.toString().repeat((int) n);
                    }
                    List<?> l = (List<?>) a;
                    if (n > 0 && l.size() > MAX_COLLECTION / n) {
                        throw new ChatTemplateException("chat template builds a list over " + MAX_COLLECTION + " items");
                    }
                    List<Object> out = new ArrayList<>();
                    for (long i = 0; i < n && !l.isEmpty(); i++) {
                        out.addAll(l);
                    }
                    return out;
                }
                if (isNumber(a) && isNumber(b)) {
                    return arithmetic('*', a, b);
                }
                if (a instanceof CharSequence || a instanceof List) {
                    throw new ELException("can't multiply sequence by non-int of type '" + PyValues.typeName(b) + "'");
                }
                throw unsupported("*", a, b);
            }

            @Override
            public String toString() {
                return "*";
            }
        };

        /** Python's {@code ==}: never fails; a bool is the number 1 or 0; values of other types differ (None and undefined are one value). */
        static final AstBinary.Operator EQ = new AstBinary.SimpleOperator() {
            @Override
            protected Object apply(TypeConverter converter, Object a, Object b) {
                return equal(a, b);
            }

            @Override
            public String toString() {
                return "==";
            }
        };

        static final AstBinary.Operator NE = new AstBinary.SimpleOperator() {
            @Override
            protected Object apply(TypeConverter converter, Object a, Object b) {
                return !equal(a, b);
            }

            @Override
            public String toString() {
                return "!=";
            }
        };

        /** A dict literal's int key, as a str ({@link #ordering}). */
        private static final java.util.regex.Pattern INT_KEY = java.util.regex.Pattern.compile("-?[0-9]{1," + MAX_INT_DIGITS + "}");
        static final AstBinary.Operator LT = ordering("<", PyValues::lessThan);
        static final AstBinary.Operator LE = ordering("<=", PyValues::lessOrEqual);
        static final AstBinary.Operator GT = ordering(">", PyValues::greaterThan);
        static final AstBinary.Operator GE = ordering(">=", PyValues::greaterOrEqual);

        /**
         * Python's order ({@link PyValues#lessThan}); Jinjava's refused a bool or a list, took None as neither less nor
         * greater, compared UTF-16 units. One departure: a dict literal's int keys are strs here (Jinjava's dict
         * literal writes {@code {512: 128}} as {@code {'512': 128}}), so such a str next to an int compares as the int,
         * as Jinjava's coercion had it: ByteDance-Seed-OSS compares its thinking budget with the keys of one.
         */
        private static AstBinary.Operator ordering(String symbol, java.util.function.BiPredicate<Object, Object> order) {
            return operator(symbol, (a, b) -> order.test(intKey(a, b), intKey(b, a)));
        }

        /** v as an int where it is the str of one and the other operand is an int; v otherwise. */
        private static Object intKey(Object v, Object other) {
            return v instanceof CharSequence cs && bigInt(other) != null && INT_KEY.matcher(cs).matches()
                    ? intResult(new BigInteger(cs.toString())) : v;
        }

        static boolean equal(Object a, Object b) {
            if (isNone(a) || isNone(b)) {
                return isNone(a) && isNone(b);
            }
            if ((a instanceof Number || a instanceof Boolean) && (b instanceof Number || b instanceof Boolean)) {
                Number x = a instanceof Boolean t ? (t ? 1 : 0) : (Number) a;
                Number y = b instanceof Boolean t ? (t ? 1 : 0) : (Number) b;
                if (x instanceof Double || x instanceof Float || y instanceof Double || y instanceof Float) {
                    return x.doubleValue() == y.doubleValue();
                }
                return new BigDecimal(x.toString()).compareTo(new BigDecimal(y.toString())) == 0;
            }
            if (a instanceof CharSequence x && b instanceof CharSequence y) {
                return x.toString().equals(y.toString());
            }
            if (a instanceof List<?> x && b instanceof List<?> y) {
                if (x.size() != y.size()) {
                    return false;
                }
                for (int i = 0; i < x.size(); i++) {
                    if (!equal(x.get(i), y.get(i))) {
                        return false;
                    }
                }
                return true;
            }
            if (a instanceof Map<?, ?> x && b instanceof Map<?, ?> y) {
                if (x.size() != y.size()) {
                    return false;
                }
                for (Map.Entry<?, ?> e : x.entrySet()) {
                    if (!y.containsKey(e.getKey()) || !equal(e.getValue(), y.get(e.getKey()))) {
                        return false;
                    }
                }
                return true;
            }
            return a.equals(b);
        }

        /**
         * Python's {@code %} on numbers: the result has the divisor's sign ({@code -7 % 3} is 2; Java's
         * {@code %} gives the dividend's). Floats as CPython's {@code float_rem}.
         */
        static final AstBinary.Operator MOD = operator("%", (a, b) -> {
            Long x = smallInt(a);
            Long y = smallInt(b);
            if (x != null && y != null) {
                if (y == 0) {
                    throw new ELException("integer modulo by zero");
                }
                return Math.floorMod(x, y);
            }
            BigInteger bx = bigInt(a);
            BigInteger by = bigInt(b);
            if (bx != null && by != null) {
                if (by.signum() == 0) {
                    throw new ELException("integer modulo by zero");
                }
                BigInteger r = bx.mod(by.abs());
                return intResult(by.signum() < 0 && r.signum() != 0 ? r.add(by) : r);
            }
            if (isNumber(a) && isNumber(b)) {
                double vx = toFloat(a);
                double wx = toFloat(b);
                if (wx == 0) {
                    throw new ELException("float modulo by zero");
                }
                double mod = vx % wx; // C's fmod
                return mod != 0 ? ((wx < 0) != (mod < 0) ? mod + wx : mod) : Math.copySign(0.0, wx);
            }
            throw a instanceof CharSequence
                    ? new ELException("unsupported operand type(s) for %: 'str' and '" + PyValues.typeName(b)
                            + "' (printf-style string formatting is not supported)")
                    : unsupported("%", a, b);
        });

        /** Python's {@code //}: rounds toward negative infinity; floats as CPython's {@code float_floor_div}. */
        static final AstBinary.Operator FLOOR_DIV = operator("//", (a, b) -> {
            Long x = smallInt(a);
            Long y = smallInt(b);
            if (x != null && y != null && !(x == Long.MIN_VALUE && y == -1)) {
                if (y == 0) {
                    throw new ELException("integer division or modulo by zero");
                }
                return Math.floorDiv(x, y);
            }
            BigInteger bx = bigInt(a);
            BigInteger by = bigInt(b);
            if (bx != null && by != null) {
                if (by.signum() == 0) {
                    throw new ELException("integer division or modulo by zero");
                }
                BigInteger[] qr = bx.divideAndRemainder(by);
                return intResult(qr[1].signum() != 0 && qr[1].signum() != by.signum() ? qr[0].subtract(BigInteger.ONE) : qr[0]);
            }
            if (isNumber(a) && isNumber(b)) {
                double vx = toFloat(a);
                double wx = toFloat(b);
                if (wx == 0) {
                    throw new ELException("float floor division by zero");
                }
                double mod = vx % wx;
                double div = (vx - mod) / wx;
                if (mod != 0 && (wx < 0) != (mod < 0)) {
                    div -= 1.0;
                }
                if (div == 0) {
                    return Math.copySign(0.0, vx / wx);
                }
                double floor = Math.floor(div);
                return div - floor > 0.5 ? floor + 1.0 : floor;
            }
            throw unsupported("//", a, b);
        });

        /**
         * Python's {@code /}: a float, also of two ints (rounded once from the exact quotient where Jinjava's went
         * through BigDecimals for a BigInteger); dividing by zero is Python's ZeroDivisionError (Jinjava gave inf or nan).
         */
        static final AstBinary.Operator DIV = operator("/", (a, b) -> {
            BigInteger bx = bigInt(a);
            BigInteger by = bigInt(b);
            if (bx != null && by != null) {
                if (by.signum() == 0) {
                    throw new ELException("division by zero");
                }
                return intQuotient(bx, by);
            }
            if (isNumber(a) && isNumber(b)) {
                double v = toFloat(b);
                if (v == 0) {
                    throw new ELException("float division by zero");
                }
                return toFloat(a) / v;
            }
            throw unsupported("/", a, b);
        });

        /**
         * x / y correctly rounded, as CPython's {@code long_true_divide} (a result below 2^-1022, where the exponent
         * runs out, may be rounded twice).
         */
        private static double intQuotient(BigInteger x, BigInteger y) {
            if (x.bitLength() <= 53 && y.bitLength() <= 53) {
                return x.doubleValue() / y.doubleValue(); // both exact as doubles: IEEE division rounds once
            }
            // q = x * 2^shift / y with 55+ significant bits, a sticky bit for a remainder: one rounding in doubleValue
            int shift = 55 - (x.bitLength() - y.bitLength());
            BigInteger n = shift > 0 ? x.abs().shiftLeft(shift) : x.abs();
            BigInteger d = shift < 0 ? y.abs().shiftLeft(-shift) : y.abs();
            BigInteger[] qr = n.divideAndRemainder(d);
            BigInteger q = qr[1].signum() != 0 ? qr[0].shiftLeft(1).or(BigInteger.ONE) : qr[0].shiftLeft(1);
            double r = Math.scalb(q.doubleValue(), -shift - 1);
            if (Double.isInfinite(r)) {
                throw new ELException("integer division result too large for a float");
            }
            return (x.signum() < 0) != (y.signum() < 0) ? -r : r;
        }

        /**
         * Python's {@code **}: an int to a non-negative int power is an int of any size (up to
         * {@link #MAX_INT_DIGITS} digits), anything else a float; Jinjava cast the result to a long
         * ({@code 2**-1} was 0).
         */
        static final AstBinary.Operator POW = operator("**", (a, b) -> {
            BigInteger x = bigInt(a);
            BigInteger y = bigInt(b);
            if (x != null && y != null && y.signum() >= 0) {
                return intPow(x, y);
            }
            if (isNumber(a) && isNumber(b)) {
                double vx = toFloat(a);
                double wx = toFloat(b);
                if (vx == 0 && wx < 0) {
                    throw new ELException("0.0 cannot be raised to a negative power");
                }
                if (vx < 0 && Double.isFinite(wx) && wx != Math.rint(wx)) {
                    throw new ELException("a negative number to a fractional power is a complex number, which chat templates do not support");
                }
                double r = Math.pow(vx, wx);
                if (Double.isInfinite(r) && Double.isFinite(vx) && Double.isFinite(wx)) {
                    throw new ELException("float ** overflows: Numerical result out of range");
                }
                return r;
            }
            throw new ELException("unsupported operand type(s) for ** or pow(): '" + PyValues.typeName(a) + "' and '"
                    + PyValues.typeName(b) + "'");
        });

        private static Number intPow(BigInteger x, BigInteger y) {
            if (x.signum() == 0) {
                return y.signum() == 0 ? 1L : 0L;
            }
            if (x.abs().equals(BigInteger.ONE)) {
                return x.signum() > 0 || !y.testBit(0) ? 1L : -1L;
            }
            // |x| >= 2: the result has at least (bits(|x|) - 1) * y bits past its first
            if (y.bitLength() > 31 || (x.abs().bitLength() - 1L) * y.longValue() > INT_LIMIT.bitLength()) {
                throw tooManyDigits("**");
            }
            return boundedInt(x.pow(y.intValue()), "**");
        }

        /** r, unless it has more than {@link #MAX_INT_DIGITS} digits. */
        private static Number boundedInt(BigInteger r, String op) {
            checkDigits(r, op);
            return intResult(r);
        }

        /** Refuses an int of more than {@link #MAX_INT_DIGITS} digits, the result of op. */
        static void checkDigits(BigInteger r, String op) {
            if (r.abs().compareTo(INT_LIMIT) >= 0) {
                throw tooManyDigits(op);
            }
        }

        static ELException tooManyDigits(String op) {
            return new ELException("the int result of " + op + " exceeds the limit (" + MAX_INT_DIGITS + " digits)");
        }

        private static AstBinary.Operator operator(String symbol, java.util.function.BinaryOperator<Object> body) {
            return new AstBinary.SimpleOperator() {
                @Override
                protected Object apply(TypeConverter converter, Object a, Object b) {
                    return body.apply(a, b);
                }

                @Override
                public String toString() {
                    return symbol;
                }
            };
        }

        /** A Python int (a bool is 1 or 0) that fits a long; null for other values. */
        static Long smallInt(Object v) {
            if (v instanceof Boolean t) {
                return t ? 1L : 0L;
            }
            return v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte ? ((Number) v).longValue() : null;
        }

        /** A Python int (a bool is 1 or 0) of any size; null for other values. */
        static BigInteger bigInt(Object v) {
            Long small = smallInt(v);
            return small != null ? BigInteger.valueOf(small) : v instanceof BigInteger b ? b : null;
        }

        /** An int or float operand (a bool counts as an int). */
        static boolean isNumber(Object v) {
            return v instanceof Number || v instanceof Boolean;
        }

        static double toDouble(Object v) {
            return v instanceof Boolean t ? (t ? 1 : 0) : ((Number) v).doubleValue();
        }

        /** Python's {@code float(v)} for an arithmetic operand: an int past the float range is Python's OverflowError. */
        static double toFloat(Object v) {
            double d = toDouble(v);
            if (Double.isInfinite(d) && v instanceof BigInteger) {
                throw new ELException("int too large to convert to float");
            }
            return d;
        }

        /**
         * An int as an index or a size, saturated to the int range: past its ends it acts as any other value past the
         * ends of a sequence (none is that long), where a cast would wrap it around into it.
         */
        static int saturatedInt(BigInteger v) {
            return v.bitLength() < 32 ? v.intValue() : v.signum() < 0 ? -Integer.MAX_VALUE : Integer.MAX_VALUE;
        }

        /** An int result: a long where it fits, as the rest of the renderer expects. */
        static Number intResult(BigInteger r) {
            return r.bitLength() < 64 ? (Number) r.longValue() : r;
        }

        private static boolean isNone(Object v) {
            return v == null || v instanceof NullValue;
        }

        private static ELException unsupported(String op, Object a, Object b) {
            return new ELException("unsupported operand type(s) for " + op + ": '" + PyValues.typeName(a) + "' and '"
                    + PyValues.typeName(b) + "'");
        }

        private PyOperators() {}
    }

    /**
     * A chain of two or more comparisons, {@code a < b <= c}: Python's {@code a < b and b <= c} with b
     * evaluated once; the first false comparison is the result and the operands after it are not evaluated.
     */
    static final class AstComparisons extends AstRightValue {
        private final List<AstNode> operands;
        private final List<AstBinary.Operator> operators;

        AstComparisons(List<AstNode> operands, List<AstBinary.Operator> operators) {
            this.operands = List.copyOf(operands);
            this.operators = List.copyOf(operators);
        }

        @Override
        public Object eval(Bindings bindings, ELContext context) {
            Object left = operands.get(0).eval(bindings, context);
            Object result = Boolean.TRUE;
            for (int i = 0; i < operators.size(); i++) {
                Object right = operands.get(i + 1).eval(bindings, context);
                // fresh nodes per evaluation: the parsed tree is shared between renders and threads
                result = operators.get(i).eval(bindings, context, new AstValue(left), new AstValue(right));
                if (!PyValues.truthy(result)) {
                    return result;
                }
                left = right;
            }
            return result;
        }

        @Override
        public void appendStructure(StringBuilder b, Bindings bindings) {
            operands.get(0).appendStructure(b, bindings);
            for (int i = 0; i < operators.size(); i++) {
                b.append(' ').append(operators.get(i)).append(' ');
                operands.get(i + 1).appendStructure(b, bindings);
            }
        }

        @Override
        public String toString() {
            return "comparisons";
        }

        @Override
        public int getCardinality() {
            return operands.size();
        }

        @Override
        public AstNode getChild(int i) {
            return i >= 0 && i < operands.size() ? operands.get(i) : null;
        }
    }

    /** An operand already evaluated. */
    static final class AstValue extends AstRightValue {
        static final AstValue NONE = new AstValue(null);
        private final Object value;

        AstValue(Object value) {
            this.value = value;
        }

        @Override
        public Object eval(Bindings bindings, ELContext context) {
            return value;
        }

        @Override
        public void appendStructure(StringBuilder b, Bindings bindings) {
            b.append("<value>");
        }

        @Override
        public String toString() {
            return "value";
        }

        @Override
        public int getCardinality() {
            return 0;
        }

        @Override
        public AstNode getChild(int i) {
            return null;
        }
    }

    /** {@code base[start:stop:step]} with Python semantics, on strings and sequences. */
    static final class AstSlice extends AstRightValue {
        private final AstNode base;
        private final AstNode start;
        private final AstNode stop;
        private final AstNode step;

        AstSlice(AstNode base, AstNode start, AstNode stop, AstNode step) {
            this.base = base;
            this.start = start;
            this.stop = stop;
            this.step = step;
        }

        @Override
        public Object eval(Bindings bindings, ELContext context) {
            Object b = base.eval(bindings, context);
            if (b == null) {
                return null;
            }
            Integer lo = index(start, bindings, context);
            Integer hi = index(stop, bindings, context);
            Integer st = index(step, bindings, context);
            int s = st == null ? 1 : st;
            if (s == 0) {
                throw new ELException("slice step cannot be zero");
            }
            if (b instanceof CharSequence cs) {
                int[] cps = cs.toString().codePoints().toArray();
                StringBuilder out = new StringBuilder();
                for (int i : PyValues.sliceIndices(cps.length, lo, hi, s)) {
                    out.appendCodePoint(cps[i]);
                }
                return out.toString();
            }
            List<Object> items = PyValues.asList(b);
            if (items == null) {
                throw new ELException("'" + PyValues.typeName(b) + "' object is not subscriptable");
            }
            List<Object> out = new ArrayList<>();
            for (int i : PyValues.sliceIndices(items.size(), lo, hi, s)) {
                out.add(items.get(i));
            }
            return out;
        }

        private static Integer index(AstNode node, Bindings bindings, ELContext context) {
            if (node == null) {
                return null;
            }
            Object v = node.eval(bindings, context);
            if (v == null) {
                return null;
            }
            BigInteger i = PyOperators.bigInt(v);
            if (i != null) {
                return PyOperators.saturatedInt(i);
            }
            throw new ELException("slice indices must be integers or None");
        }

        @Override
        public void appendStructure(StringBuilder b, Bindings bindings) {
            base.appendStructure(b, bindings);
            b.append("[");
            if (start != null) {
                start.appendStructure(b, bindings);
            }
            b.append(":");
            if (stop != null) {
                stop.appendStructure(b, bindings);
            }
            b.append(":");
            if (step != null) {
                step.appendStructure(b, bindings);
            }
            b.append("]");
        }

        @Override
        public String toString() {
            return "[::]";
        }

        @Override
        public int getCardinality() {
            return 4;
        }

        @Override
        public AstNode getChild(int i) {
            return switch (i) {
                case 0 -> base;
                case 1 -> start;
                case 2 -> stop;
                case 3 -> step;
                default -> null;
            };
        }
    }

    // ------------------------------------------------------------------------------------------
    // Attributes and methods: the only door from a template to Java objects.

    /**
     * Resolves method calls on strings, dicts and lists to the Python methods below, and
     * refuses every other method call and every attribute of other Java objects. Jinjava's
     * own resolvers (placed after this one) only ever see maps, lists, arrays, the loop object,
     * filters and tests.
     */
    static final class PyMethods extends ELResolver {

        @Override
        public Object getValue(ELContext context, Object base, Object property) {
            if (base instanceof PyLoop loop && ("previtem".equals(property) || "nextitem".equals(property))) {
                context.setPropertyResolved(true);
                return loop.item("previtem".equals(property) ? -1 : 1);
            }
            if (PyValues.isGroupAttribute(base, property)) {
                context.setPropertyResolved(true);
                return PyValues.groupAttribute(base, property);
            }
            if (base == null || base instanceof Map || base instanceof List || base.getClass().isArray()
                    || base instanceof ForLoop) {
                return null; // Jinjava's resolvers: keys, indexes, loop.index ...
            }
            context.setPropertyResolved(true);
            BigInteger number = PyOperators.bigInt(property);
            Integer index = number != null ? Integer.valueOf(PyOperators.saturatedInt(number))
                    : property instanceof String p && p.matches("-?\\d{1,9}") ? Integer.valueOf(p) : null;
            if (base instanceof CharSequence cs && index != null) {
                int[] cps = cs.toString().codePoints().toArray();
                int i = index < 0 ? index + cps.length : index;
                return i >= 0 && i < cps.length ? new String(cps, i, 1) : null;
            }
            return null; // no attributes on strings, numbers or any other object
        }

        @Override
        public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
            if (base == null || method == null) {
                return null;
            }
            String name = method.toString();
            if (base instanceof Filter && name.equals("filter")) {
                // Jinjava's own dispatch, (value, interpreter, args, kwargs): filters may print what
                // they get with Java's toString, so they only get template values
                for (int i = 0; params != null && i < params.length; i++) {
                    if (i != 1 && !onlyValues(params[i])) {
                        throw new ELException("a filter cannot take a loop, macro or function object");
                    }
                }
                return null;
            }
            if (base instanceof ExpTest && (name.equals("evaluate") || name.equals("evaluateNegated"))
                    || base instanceof ForLoop && name.equals("cycle")) {
                return null; // Jinjava's own dispatch; tests only answer true or false
            }
            List<Object> args = new ArrayList<>();
            Map<String, Object> kwargs = new LinkedHashMap<>();
            if (params != null) {
                for (Object p : params) {
                    if (p instanceof NamedParameter np) {
                        kwargs.put(np.getName(), np.getValue());
                    } else {
                        args.add(p);
                    }
                }
            }
            Object result;
            if (base instanceof CharSequence s) {
                result = PyValues.strMethod(s.toString(), name, args, kwargs);
            } else if (base instanceof Map<?, ?> m) {
                result = PyValues.dictMethod(m, name, args, kwargs);
            } else if (base instanceof List<?> l) {
                result = PyValues.listMethod(l, name, args, kwargs);
            } else {
                throw new MethodNotFoundException("'" + PyValues.typeName(base) + "' object has no method '" + name + "'");
            }
            context.setPropertyResolved(true);
            return result;
        }

        /** Arguments as Jinjava passes them: values, named values, arrays of them, the kwargs map. */
        private static boolean onlyValues(Object p) {
            if (p instanceof Object[] array) {
                for (Object x : array) {
                    if (!onlyValues(x)) {
                        return false;
                    }
                }
                return true;
            }
            return PyValues.isValue(p instanceof NamedParameter np ? np.getValue() : p);
        }

        @Override
        public Class<?> getType(ELContext context, Object base, Object property) {
            return null;
        }

        @Override
        public void setValue(ELContext context, Object base, Object property, Object value) {
            // maps and lists: the resolvers after this one
        }

        @Override
        public boolean isReadOnly(ELContext context, Object base, Object property) {
            return false;
        }

        @Override
        public Iterator<java.beans.FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
            return null;
        }

        @Override
        public Class<?> getCommonPropertyType(ELContext context, Object base) {
            return null;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Jinja2's lexer rules for whitespace, applied before Jinjava parses.

    /**
     * Rewrites a template so that Jinjava sees the text exactly as Jinja2's lexer leaves it:
     * newlines normalised, one trailing newline dropped, {@code trim_blocks} and
     * {@code lstrip_blocks} applied, {@code -} and {@code +} markers applied and removed.
     * Jinjava's own whitespace control differs from Jinja2's (a {@code -%}} before a comment
     * strips the text after the comment, for one), so it never runs. Newlines this removes go
     * into an empty comment after the tag, which keeps line numbers and renders nothing.
     */
    static final class JinjaLexer {
        private JinjaLexer() {}

        static String normalize(String template) {
            String s = template.replace("\r\n", "\n").replace('\r', '\n');
            if (s.endsWith("\n")) {
                s = s.substring(0, s.length() - 1);
            }
            StringBuilder out = new StringBuilder(s.length());
            int pos = 0;
            boolean lineStarting = true;
            while (pos < s.length()) {
                int start = nextTag(s, pos);
                if (start < 0) {
                    out.append(s, pos, s.length());
                    break;
                }
                char kind = s.charAt(start + 1);
                char sign = start + 2 < s.length() ? s.charAt(start + 2) : 0;
                boolean raw = kind == '%' && isRaw(s, start);
                String text = s.substring(pos, start);
                String before = "";
                if (sign == '-') {
                    int keep = rstripped(text);
                    before = text.substring(keep);
                    text = text.substring(0, keep);
                } else if (sign != '+' && kind != '{') {
                    int lpos = text.lastIndexOf('\n') + 1;
                    if ((lpos > 0 || lineStarting) && lpos < text.length() && blank(text, lpos)) {
                        before = text.substring(lpos);
                        text = text.substring(0, lpos);
                    }
                }
                if (text.endsWith("{")) {
                    // "{" + "{%" would read as "{{": emit the brace as an expression
                    out.append(text, 0, text.length() - 1).append("{{ '{' }}");
                } else {
                    out.append(text);
                }
                int inner = start + 2 + (sign == '-' || sign == '+' ? 1 : 0);
                int[] end = kind == '#' ? commentEnd(s, inner) : tagEnd(s, inner, kind == '{' ? '}' : '%');
                // end = {index where the closing marker starts (incl. a - or +), index after the closing marker}
                char closeSign = s.charAt(end[0]);
                int after = end[1];
                String trimmed = "";
                if (closeSign == '-') {
                    int k = after;
                    while (k < s.length() && PyValues.isSpace(s.charAt(k))) {
                        k++;
                    }
                    trimmed = s.substring(after, k);
                    after = k;
                } else if (closeSign != '+' && kind != '{' && !(raw) && after < s.length() && s.charAt(after) == '\n') {
                    trimmed = "\n";
                    after++;
                }
                String body = s.substring(inner, end[0]);
                String lost = newlines(before) + newlines(trimmed);
                if (kind == '#') {
                    lost += newlines(body);
                } else {
                    out.append('{').append(kind).append(separateBraces(body)).append(kind == '{' ? "}}" : "%}");
                }
                if (!lost.isEmpty()) {
                    out.append("{#").append(lost).append("#}"); // keeps line numbers; renders nothing
                }
                lineStarting = (closeSign == '-' ? !trimmed.isEmpty() && trimmed.endsWith("\n") : trimmed.equals("\n"));
                pos = after;
                if (raw) {
                    pos = rawBody(s, pos, out);
                    lineStarting = pos > 0 && s.charAt(pos - 1) == '\n';
                }
            }
            return out.toString();
        }

        private static int nextTag(String s, int from) {
            for (int i = s.indexOf('{', from); i >= 0 && i + 1 < s.length(); i = s.indexOf('{', i + 1)) {
                char c = s.charAt(i + 1);
                if (c == '{' || c == '%' || c == '#') {
                    return i;
                }
            }
            return -1;
        }

        private static boolean isRaw(String s, int start) {
            int i = start + 2;
            if (i < s.length() && (s.charAt(i) == '-' || s.charAt(i) == '+')) {
                i++;
            }
            while (i < s.length() && PyValues.isSpace(s.charAt(i))) {
                i++;
            }
            if (!s.startsWith("raw", i)) {
                return false;
            }
            i += 3;
            while (i < s.length() && PyValues.isSpace(s.charAt(i))) {
                i++;
            }
            return s.startsWith("%}", i) || s.startsWith("-%}", i);
        }

        /** Copies a raw block's body verbatim up to and including its endraw tag; returns the position after it. */
        private static int rawBody(String s, int pos, StringBuilder out) {
            for (int i = s.indexOf("{%", pos); i >= 0; i = s.indexOf("{%", i + 2)) {
                int j = i + 2;
                char sign = j < s.length() ? s.charAt(j) : 0;
                if (sign == '-' || sign == '+') {
                    j++;
                }
                while (j < s.length() && PyValues.isSpace(s.charAt(j))) {
                    j++;
                }
                if (!s.startsWith("endraw", j)) {
                    continue;
                }
                j += 6;
                while (j < s.length() && PyValues.isSpace(s.charAt(j))) {
                    j++;
                }
                String text = s.substring(pos, i);
                if (sign == '-') {
                    text = text.substring(0, rstripped(text));
                }
                out.append(text).append("{% endraw %}");
                if (s.startsWith("-%}", j)) {
                    j += 3;
                    while (j < s.length() && PyValues.isSpace(s.charAt(j))) {
                        j++;
                    }
                } else if (s.startsWith("+%}", j)) {
                    j += 3;
                } else if (s.startsWith("%}", j)) {
                    j += 2;
                    if (j < s.length() && s.charAt(j) == '\n') {
                        j++;
                    }
                } else {
                    continue;
                }
                return j;
            }
            throw new ChatTemplateException("syntax error: missing end of raw directive");
        }

        /** {closing marker start (at its - or + when present), index after the closing marker}. */
        private static int[] commentEnd(String s, int from) {
            for (int p = from; p + 1 < s.length(); p++) {
                if ((s.charAt(p) == '-' || s.charAt(p) == '+') && s.startsWith("#}", p + 1)) {
                    return new int[] {p, p + 3};
                }
                if (s.startsWith("#}", p)) {
                    return new int[] {p, p + 2};
                }
            }
            throw new ChatTemplateException("syntax error: missing end of comment tag");
        }

        /** The end of a {{ }} or {% %} tag, skipping string literals and balanced brackets. */
        private static int[] tagEnd(String s, int from, char closer) {
            int depth = 0;
            for (int p = from; p < s.length(); p++) {
                char c = s.charAt(p);
                if (c == '\'' || c == '"') {
                    int q = p + 1;
                    while (q < s.length() && s.charAt(q) != c) {
                        q += s.charAt(q) == '\\' ? 2 : 1;
                    }
                    if (q >= s.length()) {
                        throw new ChatTemplateException("syntax error: unterminated string at offset " + p);
                    }
                    p = q;
                    continue;
                }
                if (depth == 0) {
                    if ((c == '-' || c == '+' && closer == '%') && p + 2 < s.length() && s.charAt(p + 1) == closer && s.charAt(p + 2) == '}') {
                        return new int[] {p, p + 3};
                    }
                    if (c == closer && p + 1 < s.length() && s.charAt(p + 1) == '}') {
                        return new int[] {p, p + 2};
                    }
                }
                if (c == '(' || c == '[' || c == '{') {
                    depth++;
                } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
                    depth--;
                }
            }
            throw new ChatTemplateException("syntax error: missing end of " + (closer == '}' ? "'{{'" : "'{%'") + " tag");
        }

        /** "}}" closing nested dict literals would end a Jinjava tag early: "} }" means the same. */
        private static String separateBraces(String body) {
            StringBuilder b = new StringBuilder(body.length());
            char quote = 0;
            for (int i = 0; i < body.length(); i++) {
                char c = body.charAt(i);
                b.append(c);
                if (quote != 0) {
                    if (c == '\\' && i + 1 < body.length()) {
                        b.append(body.charAt(++i));
                    } else if (c == quote) {
                        quote = 0;
                    }
                } else if (c == '\'' || c == '"') {
                    quote = c;
                } else if (c == '}' && i + 1 < body.length() && body.charAt(i + 1) == '}') {
                    b.append(' ');
                }
            }
            return b.toString();
        }

        private static int rstripped(String text) {
            int k = text.length();
            while (k > 0 && PyValues.isSpace(text.charAt(k - 1))) {
                k--;
            }
            return k;
        }

        private static boolean blank(String text, int from) {
            for (int i = from; i < text.length(); i++) {
                if (!PyValues.isSpace(text.charAt(i))) {
                    return false;
                }
            }
            return true;
        }

        private static String newlines(String removed) {
            return "\n".repeat((int) removed.chars().filter(c -> c == '\n').count());
        }
    }

    // ------------------------------------------------------------------------------------------
    // {% for %} with Jinja2's semantics: "if" filters, else blocks, unpacking, loop.previtem/nextitem.

    /** Jinja2's loop variable: Jinjava's (for break/continue and the usual attributes) plus neighbours. */
    static final class PyLoop extends ForLoop {
        private final List<Object> items;

        PyLoop(List<Object> items) {
            super(items.iterator(), items.size());
            this.items = items;
        }

        Object item(int offset) {
            int i = getIndex0() + offset;
            return i >= 0 && i < items.size() ? items.get(i) : null;
        }
    }

    static final class PyForTag implements Tag {
        private static final long serialVersionUID = 1L;

        @Override
        public String getName() {
            return "for";
        }

        @SuppressWarnings("try") // the scope is left by close()
        @Override
        public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
            String h = tagNode.getHelpers().strip();
            int in = keyword(h, "in", 0);
            if (in < 0) {
                throw new ChatTemplateException("syntax error at line " + tagNode.getLineNumber() + ": 'for' expects 'in': " + h);
            }
            List<String> targets = new ArrayList<>();
            for (String t : h.substring(0, in).replace("(", " ").replace(")", " ").split(",")) {
                if (!t.isBlank()) {
                    targets.add(t.strip());
                }
            }
            String rest = h.substring(in + 2).strip();
            if (rest.endsWith(" recursive")) {
                throw new ChatTemplateException("recursive for loops are not supported (line " + tagNode.getLineNumber() + ")");
            }
            int iff = keyword(rest, "if", 0);
            String iterable = iff < 0 ? rest : rest.substring(0, iff).strip();
            String condition = iff < 0 ? null : rest.substring(iff + 2).strip();
            List<Object> items = PyValues.iterate(interpreter.resolveELExpression(iterable, tagNode.getLineNumber()));

            List<Node> body = new ArrayList<>();
            List<Node> otherwise = new ArrayList<>();
            List<Node> into = body;
            for (Node child : tagNode.getChildren()) {
                if (into == body && child instanceof TagNode t && t.getName().equals("else")) {
                    into = otherwise;
                    continue;
                }
                into.add(child);
            }

            var out = new com.hubspot.jinjava.util.LengthLimitingStringBuilder(MAX_OUTPUT_CHARS);
            try (var scope = interpreter.enterScope()) {
                if (condition != null) {
                    List<Object> kept = new ArrayList<>();
                    for (Object item : items) {
                        step(interpreter);
                        bind(interpreter, targets, item);
                        if (PyValues.truthy(interpreter.resolveELExpression(condition, tagNode.getLineNumber()))) {
                            kept.add(item);
                        }
                    }
                    items = kept;
                }
                PyLoop loop = new PyLoop(items);
                interpreter.getContext().put("loop", loop);
                while (loop.hasNext()) {
                    step(interpreter);
                    bind(interpreter, targets, loop.next());
                    for (Node child : body) {
                        out.append(child.render(interpreter).getValue());
                        if (loop.isContinued()) {
                            break;
                        }
                    }
                }
            }
            if (items.isEmpty()) {
                for (Node child : otherwise) {
                    out.append(child.render(interpreter).getValue());
                }
            }
            return out.toString();
        }

        private static void step(JinjavaInterpreter interpreter) {
            if (interpreter instanceof Interp i) {
                i.step();
            }
        }

        private static void bind(JinjavaInterpreter interpreter, List<String> targets, Object item) {
            if (targets.size() == 1) {
                interpreter.getContext().put(targets.get(0), item == null ? NullValue.INSTANCE : item);
                return;
            }
            List<Object> parts = item instanceof CharSequence ? null : PyValues.asList(item);
            if (parts == null || parts.size() != targets.size()) {
                throw new ChatTemplateException("cannot unpack " + PyValues.typeName(item) + " into " + targets.size() + " loop variables");
            }
            for (int i = 0; i < targets.size(); i++) {
                Object v = parts.get(i);
                interpreter.getContext().put(targets.get(i), v == null ? NullValue.INSTANCE : v);
            }
        }

        /** The first top-level " word " (outside strings and brackets) at or after from; -1 if none. */
        static int keyword(String s, String word, int from) {
            int depth = 0;
            for (int p = from; p < s.length(); p++) {
                char c = s.charAt(p);
                if (c == '\'' || c == '"') {
                    int q = p + 1;
                    while (q < s.length() && s.charAt(q) != c) {
                        q += s.charAt(q) == '\\' ? 2 : 1;
                    }
                    p = q;
                } else if (c == '(' || c == '[' || c == '{') {
                    depth++;
                } else if (c == ')' || c == ']' || c == '}') {
                    depth--;
                } else if (depth == 0 && s.startsWith(word, p) && (p == 0 || PyValues.isSpace(s.charAt(p - 1)))
                        && p + word.length() < s.length() && PyValues.isSpace(s.charAt(p + word.length()))) {
                    return p;
                }
            }
            return -1;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Python values: str(), repr(), json.dumps(), len(), slicing, and str/dict/list methods.

    static final class PyValues {
        private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

        private PyValues() {}

        /** A template-owned copy of JSON-like input: maps, lists, strings, numbers, booleans, null. */
        static Object copy(Object v) {
            if (v == null || v instanceof String || v instanceof Boolean || v instanceof Long || v instanceof Double
                    || v instanceof BigInteger || v instanceof BigDecimal) {
                return v;
            }
            if (v instanceof Integer || v instanceof Short || v instanceof Byte) {
                return ((Number) v).longValue();
            }
            if (v instanceof Float f) {
                return f.doubleValue();
            }
            if (v instanceof CharSequence cs) {
                return cs.toString();
            }
            if (v instanceof Map<?, ?> m) {
                Map<String, Object> out = new LinkedHashMap<>();
                m.forEach((k, x) -> out.put(String.valueOf(k), copy(x)));
                return out;
            }
            if (v instanceof com.fasterxml.jackson.databind.JsonNode node) {
                return copy(JSON.convertValue(node, Object.class));
            }
            List<Object> items = asList(v);
            if (items != null) {
                List<Object> out = new ArrayList<>(items.size());
                for (Object x : items) {
                    out.add(copy(x));
                }
                return out;
            }
            throw new IllegalArgumentException("a chat template variable must be JSON-like, not " + v.getClass().getName());
        }

        static String typeName(Object v) {
            if (v == null || v instanceof NullValue) {
                return "NoneType";
            }
            if (v instanceof Boolean) {
                return "bool";
            }
            if (v instanceof Double || v instanceof Float || v instanceof BigDecimal) {
                return "float";
            }
            if (v instanceof Number) {
                return "int";
            }
            if (v instanceof CharSequence) {
                return "str";
            }
            if (v instanceof Map) {
                return "dict";
            }
            if (v instanceof Map.Entry || group(v) != null) {
                return "tuple";
            }
            if (asList(v) != null) {
                return "list";
            }
            return "object";
        }

        static String bounded(String s) {
            if (s.length() > MAX_OUTPUT_CHARS) {
                throw new ChatTemplateException("chat template output exceeds " + MAX_OUTPUT_CHARS + " chars");
            }
            return s;
        }

        static List<Object> bounded(List<Object> l) {
            if (l.size() > MAX_COLLECTION) {
                throw new ChatTemplateException("chat template builds a list over " + MAX_COLLECTION + " items");
            }
            return l;
        }

        /**
         * A value a template may hold: None, str, number, bool, dict, list, tuple or another
         * sequence a filter made (not a loop, macro or function object).
         */
        static boolean isValue(Object v) {
            return v == null || v instanceof NullValue || v instanceof CharSequence || v instanceof Number || v instanceof Boolean
                    || v instanceof Map || v instanceof Collection || v instanceof Map.Entry || v instanceof Object[]
                    || v instanceof Iterator && !(v instanceof ForLoop) || v instanceof com.hubspot.jinjava.objects.SafeString;
        }

        /** Python iteration: a dict yields its keys, a string its characters, None nothing. */
        static List<Object> iterate(Object v) {
            if (v == null || v instanceof NullValue) {
                return new ArrayList<>();
            }
            if (v instanceof Map<?, ?> m) {
                return new ArrayList<>(m.keySet());
            }
            if (v instanceof CharSequence cs) {
                return new ArrayList<>(splitChars(cs.toString()));
            }
            if (v instanceof Iterator<?> it && !(v instanceof ForLoop)) {
                List<Object> out = new ArrayList<>();
                it.forEachRemaining(out::add);
                return bounded(out);
            }
            List<Object> l = asList(v);
            if (l == null) {
                throw new ELException("'" + typeName(v) + "' object is not iterable");
            }
            return new ArrayList<>(l);
        }

        /** The items of a list, array or other iterable (not a string or dict); null otherwise. */
        @SuppressWarnings("unchecked")
        static List<Object> asList(Object v) {
            if (v instanceof List<?> l) {
                return (List<Object>) l;
            }
            if (v != null && v.getClass().isArray()) {
                int n = Array.getLength(v);
                List<Object> out = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    out.add(Array.get(v, i));
                }
                return out;
            }
            if (v instanceof Map.Entry<?, ?> e) {
                List<Object> out = new ArrayList<>(2);
                out.add(e.getKey());
                out.add(e.getValue());
                return out;
            }
            if (v instanceof Iterable<?> it && !(v instanceof Map)) {
                List<Object> out = new ArrayList<>();
                it.forEach(out::add);
                return out;
            }
            return null;
        }

        /** Python's {@code slice(lo, hi, step).indices(len)}, expanded. */
        static int[] sliceIndices(int len, Integer lo, Integer hi, int step) {
            int lower = step > 0 ? 0 : -1;
            int upper = step > 0 ? len : len - 1;
            int start = lo == null ? (step > 0 ? lower : upper) : lo < 0 ? Math.max(lo + len, lower) : Math.min(lo, upper);
            int stop = hi == null ? (step > 0 ? upper : lower) : hi < 0 ? Math.max(hi + len, lower) : Math.min(hi, upper);
            // in longs: a step near the int range's ends overflowed an int sum ('abc'[::2147483647] was '')
            int n = (int) (step > 0 ? Math.max(0, ((long) stop - start + step - 1) / step)
                    : Math.max(0, ((long) start - stop - step - 1) / -(long) step));
            int[] out = new int[n];
            for (int k = 0, i = start; k < n; k++, i += step) {
                out[k] = i;
            }
            return out;
        }

        static boolean truthy(Object v) {
            if (v == null || v instanceof NullValue) {
                return false;
            }
            if (v instanceof Boolean b) {
                return b;
            }
            if (v instanceof Number n) {
                return n.doubleValue() != 0;
            }
            if (v instanceof CharSequence cs) {
                return !cs.isEmpty();
            }
            if (v instanceof Map<?, ?> m) {
                return !m.isEmpty();
            }
            if (v instanceof Collection<?> c) {
                return !c.isEmpty();
            }
            return true;
        }

        /**
         * Python's {@code a < b} where Python orders the two: numbers (a bool is 1 or 0; an int and a float exactly),
         * strs (by code point) and lists or tuples (item by item); otherwise Python's TypeError. A {@link Missing}
         * value raises Jinja2's undefined error.
         */
        static boolean lessThan(Object a, Object b) {
            return lessThan(a, b, false, false, 0);
        }

        /** Python's {@code a <= b}, as {@link #lessThan}. */
        static boolean lessOrEqual(Object a, Object b) {
            return lessThan(a, b, true, false, 0);
        }

        /** Python's {@code a > b}: {@code b < a}, failing as Python's {@code >} does (its operator, a's type first). */
        static boolean greaterThan(Object a, Object b) {
            return lessThan(b, a, false, true, 0);
        }

        /** Python's {@code a >= b}: {@code b <= a}, failing as Python's {@code >=} does. */
        static boolean greaterOrEqual(Object a, Object b) {
            return lessThan(b, a, true, true, 0);
        }

        /**
         * a &lt; b, or a &lt;= b; reflected: the caller asked b &gt; a (b &gt;= a), which a failure names. Not
         * {@code !(b < a)}: nan is neither less than, equal to nor greater than any number.
         */
        private static boolean lessThan(Object a, Object b, boolean orEqual, boolean reflected, int depth) {
            if (depth > 64) {
                throw new ChatTemplateException("value nested too deeply");
            }
            if (a instanceof Missing m) {
                throw new ELException(m.message);
            }
            if (b instanceof Missing m) {
                throw new ELException(m.message);
            }
            if (PyOperators.isNumber(a) && PyOperators.isNumber(b)) {
                Long x = PyOperators.smallInt(a);
                Long y = PyOperators.smallInt(b);
                if (x != null && y != null) {
                    return orEqual ? x <= y : x < y;
                }
                BigInteger bx = PyOperators.bigInt(a);
                BigInteger by = PyOperators.bigInt(b);
                if (bx != null && by != null) {
                    return orEqual ? bx.compareTo(by) <= 0 : bx.compareTo(by) < 0;
                }
                double dx = PyOperators.toDouble(a);
                double dy = PyOperators.toDouble(b);
                if (bx == null && by == null || !Double.isFinite(dx) || !Double.isFinite(dy)) {
                    return orEqual ? dx <= dy : dx < dy; // false for nan
                }
                BigDecimal ex = bx != null ? new BigDecimal(bx) : new BigDecimal(dx);
                BigDecimal ey = by != null ? new BigDecimal(by) : new BigDecimal(dy);
                return orEqual ? ex.compareTo(ey) <= 0 : ex.compareTo(ey) < 0;
            }
            if (a instanceof CharSequence x && b instanceof CharSequence y) {
                int c = compareCodePoints(x.toString(), y.toString());
                return orEqual ? c <= 0 : c < 0;
            }
            if ((a instanceof List || a instanceof Map.Entry) && (b instanceof List || b instanceof Map.Entry)) {
                List<Object> x = asList(a);
                List<Object> y = asList(b);
                for (int i = 0; i < x.size() && i < y.size(); i++) {
                    if (!PyOperators.equal(x.get(i), y.get(i))) {
                        return lessThan(x.get(i), y.get(i), orEqual, reflected, depth + 1);
                    }
                }
                return orEqual ? x.size() <= y.size() : x.size() < y.size();
            }
            String op = (reflected ? ">" : "<") + (orEqual ? "=" : "");
            throw reflected
                    ? new ELException("'" + op + "' not supported between instances of '" + typeName(b) + "' and '" + typeName(a) + "'")
                    : new ELException("'" + op + "' not supported between instances of '" + typeName(a) + "' and '" + typeName(b) + "'");
        }

        /** Python's order of a and b, from {@code <} alone as Python's sort asks it. */
        static int compare(Object a, Object b) {
            return lessThan(a, b) ? -1 : lessThan(b, a) ? 1 : 0;
        }

        static int compareCodePoints(String x, String y) {
            for (int i = 0, j = 0; i < x.length() && j < y.length(); ) {
                int c = x.codePointAt(i);
                int d = y.codePointAt(j);
                if (c != d) {
                    return Integer.compare(c, d);
                }
                i += Character.charCount(c);
                j += Character.charCount(d);
            }
            return Integer.compare(x.codePointCount(0, x.length()), y.codePointCount(0, y.length()));
        }

        /**
         * Jinja2's undefined where {@code sort} and {@code groupby} look up an attribute an item lacks: it equals
         * any other, and comparing it with {@code <} raises its message; it never reaches a template.
         */
        static final class Missing {
            final String message;

            Missing(String message) {
                this.message = message;
            }

            @Override
            public boolean equals(Object o) {
                return o instanceof Missing;
            }

            @Override
            public int hashCode() {
                return 0;
            }
        }

        /**
         * One of {@code groupby}'s results, Jinja2's {@code _GroupTuple}: a (grouper, list) tuple, so it unpacks in a
         * {@code for} loop and indexes, and has the attributes {@code grouper} and {@code list}.
         */
        static final class Group extends java.util.AbstractList<Object> {
            final Object grouper;
            final List<Object> list;

            Group(Object grouper, List<Object> list) {
                this.grouper = grouper;
                this.list = list;
            }

            @Override
            public Object get(int i) {
                return switch (i) {
                    case 0 -> grouper;
                    case 1 -> list;
                    default -> throw new IndexOutOfBoundsException(i);
                };
            }

            @Override
            public int size() {
                return 2;
            }
        }

        static boolean isGroupAttribute(Object v, Object name) {
            return group(v) != null && ("grouper".equals(name) || "list".equals(name));
        }

        /** group.grouper or group.list, where {@link #isGroupAttribute}. */
        static Object groupAttribute(Object v, Object name) {
            Group g = group(v);
            return "grouper".equals(name) ? g.grouper : g.list;
        }

        /** v as a {@link Group}, also where Jinjava wrapped it as a list (a variable holding one); null if it is none. */
        static Group group(Object v) {
            Object list = v instanceof com.hubspot.jinjava.objects.collections.PyList p ? p.toList() : v;
            return list instanceof Group g ? g : null;
        }

        /**
         * Jinja2's attribute paths ({@code make_multi_attrgetter}, {@code make_attrgetter}): "a.b" is key a then key b,
         * a part of digits is an index, an int attribute is an index; with multi, commas separate several paths.
         * No attribute is one empty path: the item itself.
         */
        static List<List<Object>> attributePaths(Object attribute, boolean multi) {
            if (attribute == null || attribute instanceof NullValue) {
                return List.of(List.of());
            }
            if (!(attribute instanceof CharSequence cs)) {
                return List.of(List.of(attribute instanceof Boolean t ? (t ? 1L : 0L) : attribute));
            }
            List<List<Object>> paths = new ArrayList<>();
            for (String path : multi ? cs.toString().split(",", -1) : new String[] {cs.toString()}) {
                List<Object> parts = new ArrayList<>();
                for (String part : path.split("\\.", -1)) {
                    parts.add(part.matches("[0-9]{1,18}") ? (Object) Long.valueOf(part) : part);
                }
                paths.add(parts);
            }
            return paths;
        }

        /** The value at a path ({@link #attributePaths}) of an item, as Jinja2's {@code environment.getitem} finds it. */
        static Object attribute(Object item, List<Object> path) {
            Object x = item;
            for (Object part : path) {
                if (x instanceof Missing m) {
                    throw new ELException(m.message); // Jinja2's undefined raises when asked for an attribute
                }
                x = item(x, part);
            }
            return x;
        }

        private static Object item(Object obj, Object part) {
            String type = obj == null || obj instanceof NullValue ? "None" : typeName(obj) + " object";
            if (part instanceof Long || part instanceof Integer) {
                long i = ((Number) part).longValue();
                if (obj instanceof Map<?, ?> m && m.containsKey(i)) {
                    return m.get(i);
                }
                List<Object> items = obj instanceof CharSequence cs ? new ArrayList<>(splitChars(cs.toString()))
                        : obj instanceof Map ? null : asList(obj);
                if (items != null) {
                    long k = i < 0 ? i + items.size() : i;
                    if (k >= 0 && k < items.size()) {
                        return items.get((int) k);
                    }
                }
                return new Missing(type + " has no element " + i);
            }
            String name = str(part);
            if (obj instanceof Map<?, ?> m && m.containsKey(name)) {
                return m.get(name);
            }
            if (isGroupAttribute(obj, name)) {
                return groupAttribute(obj, name);
            }
            return new Missing(repr(type) + " has no attribute " + repr(name));
        }

        static int len(Object v) {
            if (v == null) {
                return 0;
            }
            if (v instanceof CharSequence cs) {
                return cs.toString().codePointCount(0, cs.length());
            }
            if (v instanceof Map<?, ?> m) {
                return m.size();
            }
            List<Object> l = asList(v);
            if (l != null) {
                return l.size();
            }
            throw new ELException("object of type '" + typeName(v) + "' has no len()");
        }

        /** Python {@code str(v)}, except that None prints as "" (Jinja's undefined). */
        static String str(Object v) {
            if (v == null || v instanceof NullValue) {
                return "";
            }
            if (v instanceof CharSequence) {
                return v.toString();
            }
            return repr(v);
        }

        /** Python {@code repr(v)}; no Java class name ever appears. */
        static String repr(Object v) {
            StringBuilder b = new StringBuilder();
            repr(b, v, 0);
            return b.toString();
        }

        private static void repr(StringBuilder b, Object v, int depth) {
            if (depth > 64) {
                throw new ChatTemplateException("value nested too deeply");
            }
            if (v == null || v instanceof NullValue) {
                b.append("None");
            } else if (v instanceof Boolean x) {
                b.append(x ? "True" : "False");
            } else if (v instanceof Double || v instanceof Float || v instanceof BigDecimal) {
                b.append(floatRepr(((Number) v).doubleValue(), false));
            } else if (v instanceof Number) {
                b.append(v);
            } else if (v instanceof CharSequence cs) {
                quote(b, cs.toString());
            } else if (v instanceof Map<?, ?> m) {
                b.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    b.append(first ? "" : ", ");
                    first = false;
                    repr(b, e.getKey(), depth + 1);
                    b.append(": ");
                    repr(b, e.getValue(), depth + 1);
                }
                b.append('}');
            } else if (v instanceof Map.Entry<?, ?> e) {
                b.append('(');
                repr(b, e.getKey(), depth + 1);
                b.append(", ");
                repr(b, e.getValue(), depth + 1);
                b.append(')');
            } else if (group(v) instanceof Group g) {
                b.append('(');
                repr(b, g.grouper, depth + 1);
                b.append(", ");
                repr(b, g.list, depth + 1);
                b.append(')');
            } else if (asList(v) != null) {
                b.append('[');
                boolean first = true;
                for (Object x : asList(v)) {
                    b.append(first ? "" : ", ");
                    first = false;
                    repr(b, x, depth + 1);
                }
                b.append(']');
            } else if (v instanceof Helpers.Function f) {
                b.append(f);
            } else {
                b.append("<object>");
            }
        }

        private static void quote(StringBuilder b, String s) {
            char q = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
            b.append(q);
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '\\' -> b.append("\\\\");
                    case '\n' -> b.append("\\n");
                    case '\r' -> b.append("\\r");
                    case '\t' -> b.append("\\t");
                    default -> {
                        if (c == q) {
                            b.append('\\').append(c);
                        } else if (c < 0x20 || c == 0x7f) {
                            b.append(String.format("\\x%02x", (int) c));
                        } else {
                            b.append(c);
                        }
                    }
                }
            }
            b.append(q);
        }

        /** Python's float repr (json: NaN/Infinity spelled as json.dumps does). */
        static String floatRepr(double d, boolean json) {
            if (Double.isNaN(d)) {
                return json ? "NaN" : "nan";
            }
            if (Double.isInfinite(d)) {
                return (d < 0 ? "-" : "") + (json ? "Infinity" : "inf");
            }
            if (d == 0) {
                return (1 / d < 0) ? "-0.0" : "0.0";
            }
            BigDecimal bd = new BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
            String digits = bd.unscaledValue().toString();
            int exp = digits.length() - 1 - bd.scale();
            StringBuilder b = new StringBuilder(d < 0 ? "-" : "");
            if (exp >= -4 && exp < 16) {
                if (exp >= 0) {
                    String whole = digits.length() > exp + 1 ? digits.substring(0, exp + 1) : digits + "0".repeat(exp + 1 - digits.length());
                    String frac = digits.length() > exp + 1 ? digits.substring(exp + 1) : "0";
                    b.append(whole).append('.').append(frac);
                } else {
                    b.append("0.").append("0".repeat(-exp - 1)).append(digits);
                }
            } else {
                b.append(digits.charAt(0));
                if (digits.length() > 1) {
                    b.append('.').append(digits, 1, digits.length());
                }
                b.append('e').append(exp < 0 ? '-' : '+');
                int a = Math.abs(exp);
                b.append(a < 10 ? "0" : "").append(a);
            }
            return b.toString();
        }

        /** Python {@code json.dumps(v, ensure_ascii, indent, separators, sort_keys)}. */
        static String json(Object v, String indent, String itemSep, String keySep, boolean ensureAscii, boolean sortKeys) {
            StringBuilder b = new StringBuilder();
            json(b, v, indent, itemSep, keySep, ensureAscii, sortKeys, 0);
            return b.toString();
        }

        private static void json(StringBuilder b, Object v, String indent, String itemSep, String keySep,
                boolean ascii, boolean sort, int depth) {
            if (depth > 64) {
                throw new ChatTemplateException("tojson: value nested too deeply");
            }
            if (b.length() > MAX_OUTPUT_CHARS) {
                throw new ChatTemplateException("chat template output exceeds " + MAX_OUTPUT_CHARS + " chars");
            }
            if (v == null || v instanceof NullValue) {
                b.append("null");
            } else if (v instanceof Boolean x) {
                b.append(x ? "true" : "false");
            } else if (v instanceof Double || v instanceof Float || v instanceof BigDecimal) {
                b.append(floatRepr(((Number) v).doubleValue(), true));
            } else if (v instanceof Number) {
                b.append(v);
            } else if (v instanceof CharSequence cs) {
                jsonString(b, cs.toString(), ascii);
            } else if (v instanceof Map<?, ?> m) {
                List<Map.Entry<?, ?>> entries = new ArrayList<>(m.entrySet());
                if (sort) {
                    entries.sort((x, y) -> compare(x.getKey(), y.getKey())); // Python sorts the items: by key, keys being unique
                }
                if (entries.isEmpty()) {
                    b.append("{}");
                    return;
                }
                b.append('{');
                for (int i = 0; i < entries.size(); i++) {
                    b.append(i == 0 ? "" : itemSep);
                    newline(b, indent, depth + 1);
                    Object k = entries.get(i).getKey();
                    jsonString(b, k instanceof CharSequence ? k.toString() : jsonKey(k), ascii);
                    b.append(keySep);
                    json(b, entries.get(i).getValue(), indent, itemSep, keySep, ascii, sort, depth + 1);
                }
                newline(b, indent, depth);
                b.append('}');
            } else if (asList(v) != null) {
                List<Object> items = asList(v);
                if (items.isEmpty()) {
                    b.append("[]");
                    return;
                }
                b.append('[');
                for (int i = 0; i < items.size(); i++) {
                    b.append(i == 0 ? "" : itemSep);
                    newline(b, indent, depth + 1);
                    json(b, items.get(i), indent, itemSep, keySep, ascii, sort, depth + 1);
                }
                newline(b, indent, depth);
                b.append(']');
            } else {
                throw new ELException("Object of type " + typeName(v) + " is not JSON serializable");
            }
        }

        private static String jsonKey(Object k) {
            if (k == null) {
                return "null";
            }
            if (k instanceof Boolean x) {
                return x ? "true" : "false";
            }
            if (k instanceof Double || k instanceof Float) {
                return floatRepr(((Number) k).doubleValue(), true);
            }
            return String.valueOf(k);
        }

        private static void newline(StringBuilder b, String indent, int depth) {
            if (indent != null) {
                b.append('\n');
                b.append(indent.repeat(depth));
            }
        }

        private static void jsonString(StringBuilder b, String s, boolean ascii) {
            b.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> b.append("\\\"");
                    case '\\' -> b.append("\\\\");
                    case '\n' -> b.append("\\n");
                    case '\r' -> b.append("\\r");
                    case '\t' -> b.append("\\t");
                    case '\b' -> b.append("\\b");
                    case '\f' -> b.append("\\f");
                    default -> {
                        if (c < 0x20 || ascii && c > 0x7e) {
                            b.append(String.format("\\u%04x", (int) c));
                        } else {
                            b.append(c);
                        }
                    }
                }
            }
            b.append('"');
        }

        static Object fromJson(String s) {
            try {
                return copy(JSON.readValue(s, Object.class));
            } catch (IOException e) {
                throw new ELException("from_json: not JSON: " + e.getMessage().lines().findFirst().orElse(""));
            }
        }

        // --- str methods

        static boolean isSpace(int c) {
            return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
        }

        static String strip(String s, String chars, boolean left, boolean right) {
            int i = 0;
            int j = s.length();
            while (left && i < j && (chars == null ? isSpace(s.charAt(i)) : chars.indexOf(s.charAt(i)) >= 0)) {
                i++;
            }
            while (right && j > i && (chars == null ? isSpace(s.charAt(j - 1)) : chars.indexOf(s.charAt(j - 1)) >= 0)) {
                j--;
            }
            return s.substring(i, j);
        }

        static List<Object> split(String s, String sep, int maxsplit) {
            List<Object> out = new ArrayList<>();
            if (sep == null) {
                int i = 0;
                int n = s.length();
                while (true) {
                    while (i < n && isSpace(s.charAt(i))) {
                        i++;
                    }
                    if (i == n) {
                        return out;
                    }
                    if (maxsplit >= 0 && out.size() == maxsplit) {
                        out.add(s.substring(i));
                        return out;
                    }
                    int j = i;
                    while (j < n && !isSpace(s.charAt(j))) {
                        j++;
                    }
                    out.add(s.substring(i, j));
                    i = j;
                }
            }
            if (sep.isEmpty()) {
                throw new ELException("empty separator");
            }
            int i = 0;
            while (maxsplit < 0 || out.size() < maxsplit) {
                int j = s.indexOf(sep, i);
                if (j < 0) {
                    break;
                }
                out.add(s.substring(i, j));
                i = j + sep.length();
            }
            out.add(s.substring(i));
            return out;
        }

        static List<Object> rsplit(String s, String sep, int maxsplit) {
            if (maxsplit < 0) {
                return split(s, sep, -1);
            }
            List<Object> out = new ArrayList<>();
            if (sep == null) {
                int j = s.length();
                while (true) {
                    while (j > 0 && isSpace(s.charAt(j - 1))) {
                        j--;
                    }
                    if (j == 0) {
                        break;
                    }
                    if (out.size() == maxsplit) {
                        out.add(s.substring(0, j));
                        break;
                    }
                    int i = j;
                    while (i > 0 && !isSpace(s.charAt(i - 1))) {
                        i--;
                    }
                    out.add(s.substring(i, j));
                    j = i;
                }
            } else {
                if (sep.isEmpty()) {
                    throw new ELException("empty separator");
                }
                int j = s.length();
                while (out.size() < maxsplit) {
                    int i = s.lastIndexOf(sep, j - sep.length());
                    if (i < 0) {
                        break;
                    }
                    out.add(s.substring(i + sep.length(), j));
                    j = i;
                }
                out.add(s.substring(0, j));
            }
            java.util.Collections.reverse(out);
            return out;
        }

        static List<Object> splitlines(String s, boolean keepends) {
            List<Object> out = new ArrayList<>();
            int i = 0;
            int start = 0;
            while (i < s.length()) {
                char c = s.charAt(i);
                int eol = 0;
                if (c == '\r' && i + 1 < s.length() && s.charAt(i + 1) == '\n') {
                    eol = 2;
                } else if (c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e
                        || c == 0x85 || c == 0x2028 || c == 0x2029) {
                    eol = 1;
                }
                if (eol > 0) {
                    out.add(s.substring(start, keepends ? i + eol : i));
                    i += eol;
                    start = i;
                } else {
                    i++;
                }
            }
            if (start < s.length()) {
                out.add(s.substring(start));
            }
            return out;
        }

        static String title(String s) {
            StringBuilder b = new StringBuilder(s.length());
            boolean prevCased = false;
            for (int i = 0; i < s.length(); ) {
                int c = s.codePointAt(i);
                boolean cased = Character.isUpperCase(c) || Character.isLowerCase(c) || Character.isTitleCase(c);
                b.appendCodePoint(cased ? (prevCased ? Character.toLowerCase(c) : Character.toTitleCase(c)) : c);
                prevCased = cased;
                i += Character.charCount(c);
            }
            return b.toString();
        }

        static String capitalize(String s) {
            if (s.isEmpty()) {
                return s;
            }
            int first = s.codePointAt(0);
            return new StringBuilder().appendCodePoint(Character.toTitleCase(first))
                    .append(s.substring(Character.charCount(first)).toLowerCase(Locale.ROOT)).toString();
        }

        static Object arg(List<Object> a, Map<String, Object> kw, int pos, String name, Object dflt) {
            if (kw.containsKey(name)) {
                return kw.get(name);
            }
            return pos < a.size() ? a.get(pos) : dflt;
        }

        static String strArg(List<Object> a, Map<String, Object> kw, int pos, String name) {
            Object v = arg(a, kw, pos, name, null);
            return v == null ? null : str(v);
        }

        static int intArg(List<Object> a, Map<String, Object> kw, int pos, String name, int dflt) {
            Object v = arg(a, kw, pos, name, null);
            if (v == null) {
                return dflt;
            }
            BigInteger i = PyOperators.bigInt(v);
            if (i != null) {
                return PyOperators.saturatedInt(i);
            }
            if (v instanceof Number n) {
                return n.intValue();
            }
            throw new ELException("'" + typeName(v) + "' object cannot be interpreted as an integer");
        }

        private static String padTo(String s, int width, String fill, int where) {
            if (width > MAX_OUTPUT_CHARS) {
                throw new ChatTemplateException("chat template output exceeds " + MAX_OUTPUT_CHARS + " chars");
            }
            int n = width - s.codePointCount(0, s.length());
            if (n <= 0) {
                return s;
            }
            return switch (where) {
                case -1 -> s + fill.repeat(n);
                case 1 -> fill.repeat(n) + s;
                default -> {
                    int left = n / 2 + (n & width & 1);
                    yield fill.repeat(left) + s + fill.repeat(n - left);
                }
            };
        }

        static Object strMethod(String s, String name, List<Object> a, Map<String, Object> kw) {
            switch (name) {
                case "strip":
                    return strip(s, strArg(a, kw, 0, "chars"), true, true);
                case "lstrip":
                    return strip(s, strArg(a, kw, 0, "chars"), true, false);
                case "rstrip":
                    return strip(s, strArg(a, kw, 0, "chars"), false, true);
                case "upper":
                    return s.toUpperCase(Locale.ROOT);
                case "lower":
                    return s.toLowerCase(Locale.ROOT);
                case "title":
                    return title(s);
                case "capitalize":
                    return capitalize(s);
                case "swapcase": {
                    StringBuilder b = new StringBuilder();
                    s.codePoints().forEach(c -> b.appendCodePoint(Character.isUpperCase(c) ? Character.toLowerCase(c)
                            : Character.isLowerCase(c) ? Character.toUpperCase(c) : c));
                    return b.toString();
                }
                case "startswith":
                case "endswith": {
                    Object prefix = arg(a, kw, 0, "prefix", null);
                    int len = s.length();
                    int start = intArg(a, kw, 1, "start", 0);
                    int end = intArg(a, kw, 2, "end", len);
                    start = start < 0 ? Math.max(0, start + len) : Math.min(start, len);
                    end = end < 0 ? Math.max(0, end + len) : Math.min(end, len);
                    String sub = start <= end ? s.substring(start, end) : null;
                    List<Object> options = prefix instanceof CharSequence ? List.of(prefix) : asList(prefix);
                    if (options == null) {
                        throw new ELException(name + " first arg must be str or a tuple of str");
                    }
                    for (Object o : options) {
                        String p = str(o);
                        if (sub != null && (name.equals("startswith") ? sub.startsWith(p) : sub.endsWith(p))) {
                            return true;
                        }
                    }
                    return false;
                }
                case "split":
                    return split(s, strArg(a, kw, 0, "sep"), intArg(a, kw, 1, "maxsplit", -1));
                case "rsplit":
                    return rsplit(s, strArg(a, kw, 0, "sep"), intArg(a, kw, 1, "maxsplit", -1));
                case "splitlines":
                    return splitlines(s, truthy(arg(a, kw, 0, "keepends", false)));
                case "replace": {
                    String old = strArg(a, kw, 0, "old");
                    String rep = strArg(a, kw, 1, "new");
                    int count = intArg(a, kw, 2, "count", -1);
                    if (old == null || rep == null) {
                        throw new ELException("replace expected 2 arguments");
                    }
                    if (count < 0) {
                        String r = s.replace(old, rep);
                        if (r.length() > MAX_OUTPUT_CHARS) {
                            throw new ChatTemplateException("chat template output exceeds " + MAX_OUTPUT_CHARS + " chars");
                        }
                        return r;
                    }
                    StringBuilder b = new StringBuilder();
                    int i = 0;
                    for (int k = 0; k < count; k++) {
                        int j = old.isEmpty() ? (i <= s.length() ? i : -1) : s.indexOf(old, i);
                        if (j < 0) {
                            break;
                        }
                        b.append(s, i, j).append(rep);
                        if (old.isEmpty()) {
                            if (j < s.length()) {
                                b.append(s.charAt(j));
                            }
                            i = j + 1;
                        } else {
                            i = j + old.length();
                        }
                    }
                    return i <= s.length() ? b.append(s.substring(i)).toString() : b.toString();
                }
                case "find":
                case "rfind":
                case "index":
                case "rindex":
                case "count": {
                    String sub = strArg(a, kw, 0, "sub");
                    if (sub == null) {
                        throw new ELException(name + " expected an argument");
                    }
                    int len = s.length();
                    int start = intArg(a, kw, 1, "start", 0);
                    int end = intArg(a, kw, 2, "end", len);
                    start = start < 0 ? Math.max(0, start + len) : Math.min(start, len);
                    end = end < 0 ? Math.max(0, end + len) : Math.min(end, len);
                    String window = start <= end ? s.substring(start, end) : "";
                    if (name.equals("count")) {
                        if (sub.isEmpty()) {
                            return (long) window.length() + 1;
                        }
                        long n = 0;
                        for (int i = window.indexOf(sub); i >= 0; i = window.indexOf(sub, i + sub.length())) {
                            n++;
                        }
                        return n;
                    }
                    int i = name.startsWith("r") ? window.lastIndexOf(sub) : window.indexOf(sub);
                    if (i < 0 && name.contains("index")) {
                        throw new ELException("substring not found");
                    }
                    return (long) (i < 0 ? -1 : i + start);
                }
                case "join": {
                    List<Object> items = arg(a, kw, 0, "iterable", null) instanceof CharSequence cs
                            ? new ArrayList<>(splitChars(cs.toString())) : asList(arg(a, kw, 0, "iterable", null));
                    if (items == null) {
                        throw new ELException("can only join an iterable");
                    }
                    StringBuilder b = new StringBuilder();
                    for (int i = 0; i < items.size(); i++) {
                        if (!(items.get(i) instanceof CharSequence)) {
                            throw new ELException("sequence item " + i + ": expected str instance, " + typeName(items.get(i)) + " found");
                        }
                        b.append(i == 0 ? "" : s).append(items.get(i));
                    }
                    return b.toString();
                }
                case "format":
                    return format(s, a, kw);
                case "isdigit":
                case "isdecimal":
                case "isnumeric":
                    return !s.isEmpty() && s.codePoints().allMatch(Character::isDigit);
                case "isalpha":
                    return !s.isEmpty() && s.codePoints().allMatch(Character::isLetter);
                case "isalnum":
                    return !s.isEmpty() && s.codePoints().allMatch(Character::isLetterOrDigit);
                case "isspace":
                    return !s.isEmpty() && s.codePoints().allMatch(PyValues::isSpace);
                case "islower":
                    return s.codePoints().anyMatch(Character::isLowerCase) && s.codePoints().noneMatch(c -> Character.isUpperCase(c) || Character.isTitleCase(c));
                case "isupper":
                    return s.codePoints().anyMatch(Character::isUpperCase) && s.codePoints().noneMatch(c -> Character.isLowerCase(c) || Character.isTitleCase(c));
                case "removeprefix": {
                    String p = strArg(a, kw, 0, "prefix");
                    return p != null && s.startsWith(p) ? s.substring(p.length()) : s;
                }
                case "removesuffix": {
                    String p = strArg(a, kw, 0, "suffix");
                    return p != null && !p.isEmpty() && s.endsWith(p) ? s.substring(0, s.length() - p.length()) : s;
                }
                case "partition":
                case "rpartition": {
                    String sep = strArg(a, kw, 0, "sep");
                    if (sep == null || sep.isEmpty()) {
                        throw new ELException("empty separator");
                    }
                    int i = name.equals("partition") ? s.indexOf(sep) : s.lastIndexOf(sep);
                    if (i < 0) {
                        return name.equals("partition") ? List.of(s, "", "") : List.of("", "", s);
                    }
                    return List.of(s.substring(0, i), sep, s.substring(i + sep.length()));
                }
                case "center":
                case "ljust":
                case "rjust": {
                    int width = intArg(a, kw, 0, "width", 0);
                    String fill = strArg(a, kw, 1, "fillchar");
                    fill = fill == null ? " " : fill;
                    return padTo(s, width, fill, name.equals("ljust") ? -1 : name.equals("rjust") ? 1 : 0);
                }
                case "zfill": {
                    int width = intArg(a, kw, 0, "width", 0);
                    boolean sign = s.startsWith("-") || s.startsWith("+");
                    String body = sign ? s.substring(1) : s;
                    return (sign ? s.substring(0, 1) : "") + padTo(body, width - (sign ? 1 : 0), "0", 1);
                }
                default:
                    throw new MethodNotFoundException("'str' object has no attribute '" + name + "'");
            }
        }

        private static List<String> splitChars(String s) {
            List<String> out = new ArrayList<>();
            s.codePoints().forEach(c -> out.add(new String(Character.toChars(c))));
            return out;
        }

        /** Python {@code str.format}: {}, {0}, {name}, !r/!s; no format specs. */
        static String format(String s, List<Object> a, Map<String, Object> kw) {
            StringBuilder b = new StringBuilder();
            int auto = 0;
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c == '{' && i + 1 < s.length() && s.charAt(i + 1) == '{') {
                    b.append('{');
                    i++;
                } else if (c == '}' && i + 1 < s.length() && s.charAt(i + 1) == '}') {
                    b.append('}');
                    i++;
                } else if (c == '{') {
                    int end = s.indexOf('}', i);
                    if (end < 0) {
                        throw new ELException("Single '{' encountered in format string");
                    }
                    String field = s.substring(i + 1, end);
                    String conv = null;
                    int bang = field.indexOf('!');
                    if (bang >= 0) {
                        conv = field.substring(bang + 1);
                        field = field.substring(0, bang);
                    }
                    if (field.indexOf(':') >= 0) {
                        throw new ELException("format specs are not supported: {" + field + "}");
                    }
                    Object v;
                    if (field.isEmpty()) {
                        if (auto >= a.size()) {
                            throw new ELException("Replacement index " + auto + " out of range");
                        }
                        v = a.get(auto++);
                    } else if (field.chars().allMatch(Character::isDigit)) {
                        int k = Integer.parseInt(field);
                        if (k >= a.size()) {
                            throw new ELException("Replacement index " + k + " out of range");
                        }
                        v = a.get(k);
                    } else if (kw.containsKey(field)) {
                        v = kw.get(field);
                    } else {
                        throw new ELException("KeyError: '" + field + "'");
                    }
                    b.append("r".equals(conv) ? repr(v) : str(v));
                    i = end;
                } else if (c == '}') {
                    throw new ELException("Single '}' encountered in format string");
                } else {
                    b.append(c);
                }
            }
            return b.toString();
        }

        // --- dict and list methods

        static List<Object> items(Map<?, ?> m) {
            List<Object> out = new ArrayList<>(m.size());
            m.forEach((k, v) -> {
                List<Object> pair = new ArrayList<>(2);
                pair.add(k);
                pair.add(v);
                out.add(pair);
            });
            return out;
        }

        static Object dictMethod(Map<?, ?> m, String name, List<Object> a, Map<String, Object> kw) {
            switch (name) {
                case "get": {
                    Object key = arg(a, kw, 0, "key", null);
                    Object v = m.get(key instanceof CharSequence cs ? cs.toString() : key);
                    return v != null || m.containsKey(key) ? v : arg(a, kw, 1, "default", null);
                }
                case "items":
                    return items(m);
                case "keys":
                    return new ArrayList<Object>(m.keySet());
                case "values":
                    return new ArrayList<Object>(m.values());
                case "copy":
                    return new LinkedHashMap<Object, Object>(m);
                default:
                    throw new MethodNotFoundException("'dict' object has no attribute '" + name + "'");
            }
        }

        @SuppressWarnings("unchecked")
        static Object listMethod(List<?> list, String name, List<Object> a, Map<String, Object> kw) {
            List<Object> l = (List<Object>) list;
            switch (name) {
                case "append":
                    if (l.size() >= MAX_COLLECTION) {
                        throw new ChatTemplateException("chat template builds a list over " + MAX_COLLECTION + " items");
                    }
                    l.add(arg(a, kw, 0, "object", null));
                    return null;
                case "extend": {
                    List<Object> more = asList(arg(a, kw, 0, "iterable", null));
                    if (more == null || l.size() + more.size() > MAX_COLLECTION) {
                        throw new ELException("extend: not an iterable, or the list grows too large");
                    }
                    l.addAll(more);
                    return null;
                }
                case "insert": {
                    int i = intArg(a, kw, 0, "index", 0);
                    int n = l.size();
                    i = i < 0 ? Math.max(0, i + n) : Math.min(i, n);
                    if (n >= MAX_COLLECTION) {
                        throw new ChatTemplateException("chat template builds a list over " + MAX_COLLECTION + " items");
                    }
                    l.add(i, arg(a, kw, 1, "object", null));
                    return null;
                }
                case "pop": {
                    if (l.isEmpty()) {
                        throw new ELException("pop from empty list");
                    }
                    int i = intArg(a, kw, 0, "index", -1);
                    int k = i < 0 ? i + l.size() : i;
                    if (k < 0 || k >= l.size()) {
                        throw new ELException("pop index out of range");
                    }
                    return l.remove(k);
                }
                case "index": {
                    int i = l.indexOf(arg(a, kw, 0, "value", null));
                    if (i < 0) {
                        throw new ELException("value is not in list");
                    }
                    return (long) i;
                }
                case "count":
                    return l.stream().filter(x -> Objects.equals(x, arg(a, kw, 0, "value", null))).count();
                case "copy":
                    return new ArrayList<>(l);
                default:
                    throw new MethodNotFoundException("'list' object has no attribute '" + name + "'");
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Template helpers: the globals, filters, tests and block tags HF templates use.

    static final class Helpers {
        private Helpers() {}

        /** A global function seen as a value ({@code strftime_now is defined}); calls go to the EL function. */
        record Function(String name) {
            @Override
            public String toString() {
                return "<function " + name + ">";
            }
        }

        /**
         * Python's {@code range(stop)}, {@code range(start, stop[, step])}: integers of any size only (a float is
         * Python's TypeError; Jinjava read one as its range limit), step not 0, at most
         * {@link #MAX_COLLECTION} items (refused, where Jinjava cut the list short).
         */
        static List<Number> range(Object first, Object... rest) {
            if (rest.length > 2) {
                throw new ChatTemplateException("range expected at most 3 arguments, got " + (rest.length + 1));
            }
            BigInteger a = rangeInt(first);
            BigInteger start = rest.length == 0 ? BigInteger.ZERO : a;
            BigInteger stop = rest.length == 0 ? a : rangeInt(rest[0]);
            BigInteger step = rest.length == 2 ? rangeInt(rest[1]) : BigInteger.ONE;
            if (step.signum() == 0) {
                throw new ChatTemplateException("range() arg 3 must not be zero");
            }
            BigInteger span = step.signum() > 0 ? stop.subtract(start) : start.subtract(stop);
            BigInteger count = span.signum() <= 0 ? BigInteger.ZERO
                    : span.add(step.abs()).subtract(BigInteger.ONE).divide(step.abs()); // Python's len(range)
            if (count.compareTo(BigInteger.valueOf(MAX_COLLECTION)) > 0) {
                throw new ChatTemplateException("range of " + (count.bitLength() < 64 ? count + " items" : "more than 2^63 items")
                        + " exceeds " + MAX_COLLECTION);
            }
            int n = count.intValue();
            List<Number> out = new ArrayList<>(n);
            if (start.bitLength() < 64 && stop.bitLength() < 64 && step.bitLength() < 64) {
                // every item lies from start toward stop: a long (the sum past the last one is never read)
                for (long i = 0, v = start.longValue(), d = step.longValue(); i < n; i++, v += d) {
                    out.add(v);
                }
                return out;
            }
            for (BigInteger v = start; out.size() < n; v = v.add(step)) {
                out.add(PyOperators.intResult(v));
            }
            return out;
        }

        private static BigInteger rangeInt(Object v) {
            BigInteger i = PyOperators.bigInt(v);
            if (i == null) {
                throw new ChatTemplateException("'" + PyValues.typeName(v) + "' object cannot be interpreted as an integer");
            }
            return i;
        }

        /** {@code raise_exception(message)}: the render fails with exactly that message. */
        static Object raiseException(Object message) {
            throw new RaisedException(PyValues.str(message));
        }

        /** {@code strftime_now(format)}: the current local time, formatted like Python's strftime. */
        static String strftimeNow(Object format) {
            return StrftimeFormatter.format(ZonedDateTime.now(), PyValues.str(format), Locale.ENGLISH);
        }

        static List<Filter> filters() {
            return List.of(
                    filter("tojson", (v, a, kw) -> {
                        boolean ascii = PyValues.truthy(PyValues.arg(a, kw, 0, "ensure_ascii", false));
                        Object ind = PyValues.arg(a, kw, 1, "indent", null);
                        Object seps = PyValues.arg(a, kw, 2, "separators", null);
                        boolean sort = PyValues.truthy(PyValues.arg(a, kw, 3, "sort_keys", false));
                        String indent = ind == null ? null : ind instanceof Number n ? " ".repeat(Math.max(0, Math.min(n.intValue(), 64))) : PyValues.str(ind);
                        String itemSep = indent == null ? ", " : ",";
                        String keySep = ": ";
                        List<Object> s = PyValues.asList(seps);
                        if (s != null && s.size() == 2) {
                            itemSep = PyValues.str(s.get(0));
                            keySep = PyValues.str(s.get(1));
                        }
                        return PyValues.json(v, indent, itemSep, keySep, ascii, sort);
                    }),
                    filter("from_json", (v, a, kw) -> PyValues.fromJson(PyValues.str(v))),
                    filter("string", (v, a, kw) -> v == null ? "" : PyValues.str(v)),
                    filter("safe", (v, a, kw) -> PyValues.str(v)),
                    filter("pprint", (v, a, kw) -> PyValues.repr(v)),
                    filter("list", (v, a, kw) -> PyValues.iterate(v)),
                    filter("first", (v, a, kw) -> PyValues.iterate(v).stream().findFirst().orElse(null)),
                    filter("last", (v, a, kw) -> {
                        List<Object> items = PyValues.iterate(v);
                        return items.isEmpty() ? null : items.get(items.size() - 1);
                    }),
                    filter("map", Helpers::map),
                    filter("truncate", (v, a, kw) -> {
                        String s = PyValues.str(v);
                        int length = PyValues.intArg(a, kw, 0, "length", 255);
                        boolean killwords = PyValues.truthy(PyValues.arg(a, kw, 1, "killwords", false));
                        String end = PyValues.str(PyValues.arg(a, kw, 2, "end", "..."));
                        int leeway = PyValues.intArg(a, kw, 3, "leeway", 5);
                        if (s.length() <= (long) length + leeway) {
                            return s;
                        }
                        String head = s.substring(0, Math.max(0, length - end.length()));
                        if (!killwords && head.lastIndexOf(' ') >= 0) {
                            head = head.substring(0, head.lastIndexOf(' '));
                        }
                        return head + end;
                    }),
                    filter("escape", (v, a, kw) -> htmlEscape(PyValues.str(v))),
                    filter("e", (v, a, kw) -> htmlEscape(PyValues.str(v))),
                    filter("forceescape", (v, a, kw) -> htmlEscape(PyValues.str(v))),
                    filter("trim", (v, a, kw) -> PyValues.strip(PyValues.str(v), PyValues.strArg(a, kw, 0, "chars"), true, true)),
                    filter("capitalize", (v, a, kw) -> PyValues.capitalize(PyValues.str(v))),
                    filter("title", (v, a, kw) -> PyValues.title(PyValues.str(v))),
                    filter("upper", (v, a, kw) -> PyValues.str(v).toUpperCase(Locale.ROOT)),
                    filter("lower", (v, a, kw) -> PyValues.str(v).toLowerCase(Locale.ROOT)),
                    filter("length", (v, a, kw) -> (long) PyValues.len(v)),
                    filter("count", (v, a, kw) -> (long) PyValues.len(v)),
                    filter("items", (v, a, kw) -> v instanceof Map<?, ?> m ? PyValues.items(m) : v == null ? List.of() : fail("items: not a dict")),
                    filter("dictsort", Helpers::dictsort),
                    filter("sort", Helpers::sort),
                    filter("groupby", Helpers::groupby),
                    filter("int", Helpers::toInt),
                    filter("round", Helpers::round),
                    filter("abs", (v, a, kw) -> {
                        BigInteger i = PyOperators.bigInt(v);
                        if (i != null) {
                            return PyOperators.intResult(i.abs()); // Jinjava's wrapped around on the smallest long
                        }
                        if (PyOperators.isNumber(v)) {
                            return Math.abs(PyOperators.toDouble(v));
                        }
                        throw new ELException("bad operand type for abs(): '" + PyValues.typeName(v) + "'");
                    }),
                    filter("sum", (v, a, kw) -> {
                        Object attr = PyValues.arg(a, kw, 0, "attribute", null);
                        Object total = PyValues.arg(a, kw, 1, "start", 0L);
                        List<Object> items = PyValues.asList(v);
                        for (Object x : items == null ? List.of() : items) {
                            Object n = attr == null ? x : x instanceof Map<?, ?> m ? m.get(PyValues.str(attr)) : null;
                            total = PyOperators.add(total, n);
                        }
                        return total;
                    }),
                    filter("min", (v, a, kw) -> extreme(v, a, kw, false)),
                    filter("max", (v, a, kw) -> extreme(v, a, kw, true)),
                    filter("join", (v, a, kw) -> {
                        String sep = PyValues.str(PyValues.arg(a, kw, 0, "d", ""));
                        Object attr = PyValues.arg(a, kw, 1, "attribute", null);
                        List<Object> items = v instanceof CharSequence cs ? new ArrayList<>(PyValues.splitChars(cs.toString())) : PyValues.asList(v);
                        if (items == null) {
                            items = v instanceof Map<?, ?> m ? new ArrayList<>(m.keySet()) : List.of();
                        }
                        StringBuilder b = new StringBuilder();
                        for (int i = 0; i < items.size(); i++) {
                            Object x = items.get(i);
                            if (attr != null) {
                                x = x instanceof Map<?, ?> m ? m.get(PyValues.str(attr)) : null;
                            }
                            b.append(i == 0 ? "" : sep).append(PyValues.str(x));
                        }
                        return b.toString();
                    }),
                    filter("indent", (v, a, kw) -> {
                        Object w = PyValues.arg(a, kw, 0, "width", 4L);
                        String ind = w instanceof Number n ? " ".repeat(Math.max(0, Math.min(n.intValue(), 1024))) : PyValues.str(w);
                        boolean first = PyValues.truthy(PyValues.arg(a, kw, 1, "first", false));
                        boolean blank = PyValues.truthy(PyValues.arg(a, kw, 2, "blank", false));
                        List<Object> lines = PyValues.splitlines(PyValues.str(v) + "\n", false);
                        StringBuilder b = new StringBuilder();
                        for (int i = 0; i < lines.size(); i++) {
                            String line = (String) lines.get(i);
                            if (i > 0) {
                                b.append('\n');
                                if (blank || !line.isEmpty()) {
                                    b.append(ind);
                                }
                            }
                            b.append(line);
                        }
                        return (first ? ind : "") + b;
                    }));
        }

        static List<ExpTest> tests() {
            return List.of(
                    test("string", v -> v instanceof CharSequence),
                    test("mapping", v -> v instanceof Map),
                    test("iterable", v -> v instanceof CharSequence || v instanceof Map || PyValues.asList(v) != null && !(v instanceof Map.Entry)),
                    test("sequence", v -> v instanceof CharSequence || v instanceof Map || v instanceof List || v != null && v.getClass().isArray()),
                    test("none", v -> v == null || v instanceof NullValue),
                    test("boolean", v -> v instanceof Boolean),
                    test("number", v -> v instanceof Number),
                    test("integer", v -> v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte || v instanceof BigInteger),
                    test("float", v -> v instanceof Double || v instanceof Float || v instanceof BigDecimal),
                    test("callable", v -> v instanceof Function || v instanceof com.hubspot.jinjava.lib.fn.MacroFunction),
                    test("escaped", v -> false),
                    test("true", v -> Boolean.TRUE.equals(v)),
                    test("false", v -> Boolean.FALSE.equals(v)));
        }

        /** Jinja's {@code map}: {@code map(attribute='a.b', default=x)} or {@code map('filter', args...)}. */
        private static Object map(Object v, List<Object> a, Map<String, Object> kw) {
            List<Object> out = new ArrayList<>();
            if (a.isEmpty() || kw.containsKey("attribute")) {
                String path = PyValues.str(kw.get("attribute"));
                for (Object item : PyValues.iterate(v)) {
                    Object x = item;
                    for (String part : path.split("\\.")) {
                        x = PyValues.isGroupAttribute(x, part) ? PyValues.groupAttribute(x, part)
                                : x instanceof Map<?, ?> m ? m.get(part)
                                : x instanceof List<?> l && part.matches("\\d+") && Integer.parseInt(part) < l.size() ? l.get(Integer.parseInt(part))
                                : null;
                    }
                    out.add(x == null ? kw.get("default") : x);
                }
                return out;
            }
            JinjavaInterpreter interpreter = JinjavaInterpreter.getCurrent();
            String name = PyValues.str(a.get(0));
            Filter f = interpreter.getContext().getFilter(name);
            if (f == null) {
                throw new ELException("no filter named '" + name + "'");
            }
            Object[] rest = a.subList(1, a.size()).toArray();
            for (Object item : PyValues.iterate(v)) {
                out.add(f.filter(item, interpreter, rest, kw));
            }
            return out;
        }

        /**
         * Jinja2's {@code sort(reverse=False, case_sensitive=False, attribute=None)}: stable, in Python's order
         * ({@link PyValues#lessThan}), strings compared lowercased unless case_sensitive; attribute is a path
         * ("a.b", "0", an int) or several separated by commas. At most {@link #MAX_COLLECTION} items.
         */
        private static Object sort(Object v, List<Object> a, Map<String, Object> kw) {
            boolean reverse = PyValues.truthy(PyValues.arg(a, kw, 0, "reverse", false));
            boolean caseSensitive = PyValues.truthy(PyValues.arg(a, kw, 1, "case_sensitive", false));
            List<List<Object>> paths = PyValues.attributePaths(PyValues.arg(a, kw, 2, "attribute", null), true);
            List<Object> items = PyValues.bounded(PyValues.iterate(v));
            List<Object[]> keyed = new ArrayList<>(items.size());
            for (Object item : items) {
                List<Object> key = new ArrayList<>(paths.size());
                for (List<Object> path : paths) {
                    key.add(sortKey(PyValues.attribute(item, path), caseSensitive));
                }
                keyed.add(new Object[] {key, item});
            }
            sortStably(keyed, reverse);
            List<Object> out = new ArrayList<>(keyed.size());
            for (Object[] k : keyed) {
                out.add(k[1]);
            }
            return out;
        }

        /**
         * Jinja2's {@code groupby(attribute, default=None, case_sensitive=False)}: the items sorted by the attribute
         * (a path as for {@link #sort}, one only) and grouped where it is equal, as (grouper, list) tuples; the grouper
         * of a case-insensitive group is its first item's own value. default stands in for an attribute an item lacks.
         */
        private static Object groupby(Object v, List<Object> a, Map<String, Object> kw) {
            Object attribute = PyValues.arg(a, kw, 0, "attribute", null);
            if (attribute == null || attribute instanceof NullValue) {
                throw new ELException("groupby() missing 1 required positional argument: 'attribute'");
            }
            Object dflt = PyValues.arg(a, kw, 1, "default", null);
            boolean caseSensitive = PyValues.truthy(PyValues.arg(a, kw, 2, "case_sensitive", false));
            List<Object> path = PyValues.attributePaths(attribute, false).get(0);
            List<Object> items = PyValues.bounded(PyValues.iterate(v));
            List<Object[]> keyed = new ArrayList<>(items.size());
            for (Object item : items) {
                keyed.add(new Object[] {sortKey(groupKey(item, path, dflt), caseSensitive), item});
            }
            sortStably(keyed, false);
            List<Object> groups = new ArrayList<>();
            for (int i = 0; i < keyed.size(); ) {
                Object key = keyed.get(i)[0];
                List<Object> list = new ArrayList<>();
                for (; i < keyed.size() && PyOperators.equal(keyed.get(i)[0], key); i++) {
                    list.add(keyed.get(i)[1]);
                }
                Object grouper = caseSensitive ? key : groupKey(list.get(0), path, dflt);
                groups.add(new PyValues.Group(grouper instanceof PyValues.Missing ? null : grouper, list));
            }
            return groups;
        }

        /** Jinja2's {@code make_attrgetter} with a default: it replaces each part an item lacks. */
        private static Object groupKey(Object item, List<Object> path, Object dflt) {
            Object x = item;
            for (Object part : path) {
                x = PyValues.attribute(x, List.of(part));
                if (dflt != null && !(dflt instanceof NullValue) && x instanceof PyValues.Missing) {
                    x = dflt;
                }
            }
            return x;
        }

        /** Jinja2's {@code ignore_case}: a str compares lowercased. */
        private static Object sortKey(Object x, boolean caseSensitive) {
            return !caseSensitive && x instanceof CharSequence cs ? cs.toString().toLowerCase(Locale.ROOT) : x;
        }

        /** Sorts {key, item} pairs by key as Python's {@code sorted} does: stable, also when reversed. */
        private static void sortStably(List<Object[]> keyed, boolean reverse) {
            java.util.Comparator<Object[]> byKey = (x, y) -> PyValues.compare(x[0], y[0]);
            try {
                keyed.sort(reverse ? byKey.reversed() : byKey);
            } catch (IllegalArgumentException e) { // TimSort's "Comparison method violates its general contract"
                throw new ELException("values without a consistent order (such as nan) cannot be sorted");
            }
        }

        /**
         * Jinja2's {@code round(precision=0, method='common')}: "common" is Python's {@code round(value, precision)}
         * (half to even, on the float's exact binary value: {@code 2.675|round(2)} is 2.67; an int stays an int),
         * "ceil" and "floor" {@code math.ceil/floor(value * 10**precision) / 10**precision} (a float). Jinjava's
         * rounded half up and always gave a float ({@code 2.5|round} was 3.0, {@code 5|round} 5.0) and ignored the method.
         */
        private static Object round(Object v, List<Object> a, Map<String, Object> kw) {
            BigInteger p = PyOperators.bigInt(PyValues.arg(a, kw, 0, "precision", 0L));
            if (p == null) {
                throw new ELException("'" + PyValues.typeName(PyValues.arg(a, kw, 0, "precision", 0L)) + "' object cannot be interpreted as an integer");
            }
            String method = PyValues.str(PyValues.arg(a, kw, 1, "method", "common"));
            if (!Set.of("common", "ceil", "floor").contains(method)) {
                throw new ELException("method must be common, ceil or floor");
            }
            if (!PyOperators.isNumber(v)) {
                throw new ELException("type " + PyValues.typeName(v) + " doesn't define __round__ method");
            }
            int precision = PyOperators.saturatedInt(p);
            BigInteger i = PyOperators.bigInt(v);
            if (method.equals("common")) {
                if (i != null) { // round(int, n): an int, to a multiple of 10**-n where n < 0
                    return precision >= 0 ? PyOperators.intResult(i)
                            : PyOperators.intResult(new BigDecimal(i).setScale(Math.max(precision, -PyOperators.MAX_INT_DIGITS - 1),
                                    RoundingMode.HALF_EVEN).toBigInteger());
                }
                double d = PyOperators.toDouble(v);
                if (!Double.isFinite(d) || precision > 400) {
                    return d; // Python: nan, inf and a precision past a double's digits give the value back
                }
                if (precision < -400) {
                    return Math.copySign(0.0, d);
                }
                double r = new BigDecimal(d).setScale(precision, RoundingMode.HALF_EVEN).doubleValue();
                return r == 0 ? Math.copySign(0.0, d) : r; // -0.4 rounds to -0.0, as in Python (a BigDecimal has no -0)
            }
            double x = PyOperators.toFloat(v);
            double scale = Math.pow(10, precision);
            return (method.equals("ceil") ? Math.ceil(x * scale) : Math.floor(x * scale)) / scale;
        }

        /**
         * Jinja2's {@code int(default=0, base=10)}: Python's {@code int(value, base)} for a str, {@code int(value)}
         * otherwise, failing that {@code int(float(value))} ("42.23" is 42), failing that the default; of any size.
         * Jinjava's clamped to a long ('99999999999999999999'|int was 9223372036854775807), read true as 0 and knew
         * neither base prefixes nor underscores.
         */
        private static Object toInt(Object v, List<Object> a, Map<String, Object> kw) {
            Object dflt = PyValues.arg(a, kw, 0, "default", 0L);
            BigInteger i = PyOperators.bigInt(v);
            if (i != null) {
                return PyOperators.intResult(i);
            }
            if (v instanceof CharSequence cs) {
                String s = pythonDigits(cs.toString());
                BigInteger base = PyOperators.bigInt(PyValues.arg(a, kw, 1, "base", 10L));
                BigInteger parsed = base == null ? null : parseInt(s, base);
                if (parsed != null) {
                    return PyOperators.intResult(parsed);
                }
                // int(float(s)): "inf", "nan" and "1e400" are the default (Jinja2 catches the OverflowError there)
                String plain = underscoresBetweenDigits(s) ? s.replace("_", "") : "";
                if (FLOAT_LITERAL.matcher(plain).matches()) {
                    double d = Double.parseDouble(plain);
                    return Double.isFinite(d) ? PyOperators.intResult(new BigDecimal(d).toBigInteger()) : dflt;
                }
                return dflt;
            }
            if (v instanceof Double || v instanceof Float || v instanceof BigDecimal) {
                double d = ((Number) v).doubleValue();
                if (Double.isInfinite(d)) {
                    throw new ELException("cannot convert float infinity to integer"); // Python's OverflowError, not caught
                }
                return Double.isNaN(d) ? dflt : PyOperators.intResult(new BigDecimal(d).toBigInteger());
            }
            return dflt; // None, a list, a dict: Python's TypeError, both times
        }

        /** A finite Python {@code float()} literal, without its underscores (character classes only: no deep regex recursion). */
        private static final java.util.regex.Pattern FLOAT_LITERAL = java.util.regex.Pattern.compile(
                "[+-]?(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?");

        /** Whether each '_' of s stands between two ASCII digits, as Python's number literals have them. */
        private static boolean underscoresBetweenDigits(String s) {
            for (int k = s.indexOf('_'); k >= 0; k = s.indexOf('_', k + 1)) {
                if (k == 0 || k == s.length() - 1 || !isAsciiDigit(s.charAt(k - 1)) || !isAsciiDigit(s.charAt(k + 1))) {
                    return false;
                }
            }
            return true;
        }

        private static boolean isAsciiDigit(char c) {
            return c >= '0' && c <= '9';
        }

        /**
         * s as Python's {@code int()} and {@code float()} read a str: surrounding whitespace stripped, other decimal
         * digits ('١٢') as ASCII ones.
         */
        private static String pythonDigits(String s) {
            StringBuilder b = new StringBuilder(s.length());
            s.codePoints().forEach(c -> {
                if (c >= 128 && Character.isDigit(c)) {
                    b.append((char) ('0' + Character.digit(c, 10)));
                } else {
                    b.appendCodePoint(Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85 ? ' ' : c);
                }
            });
            return b.toString().strip();
        }

        /**
         * Python's {@code int(s, base)}: an optional sign, the base's prefix (0x, 0o, 0b; base 0 takes the base from
         * it), digits with single underscores between them (and after a prefix); null where Python raises ValueError.
         */
        private static BigInteger parseInt(String s, BigInteger baseArg) {
            if (baseArg.bitLength() > 6) {
                return null;
            }
            int base = baseArg.intValue();
            if (base != 0 && (base < 2 || base > 36)) {
                return null;
            }
            boolean negative = s.startsWith("-");
            String body = s.startsWith("-") || s.startsWith("+") ? s.substring(1) : s;
            String prefix = body.length() > 1 && body.charAt(0) == '0' ? body.substring(0, 2).toLowerCase(Locale.ROOT) : "";
            int prefixBase = switch (prefix) {
                case "0x" -> 16;
                case "0o" -> 8;
                case "0b" -> 2;
                default -> 0;
            };
            boolean prefixed = prefixBase != 0 && (base == 0 || base == prefixBase);
            if (prefixed) {
                base = prefixBase;
                body = body.substring(2);
                if (body.startsWith("_")) {
                    body = body.substring(1);
                }
            }
            if (body.isEmpty() || body.startsWith("_") || body.endsWith("_") || body.contains("__")) {
                return null;
            }
            String digits = body.replace("_", "");
            if (base == 0) {
                if (digits.startsWith("0") && !digits.chars().allMatch(c -> c == '0')) {
                    return null; // Python: leading zeros in a decimal int
                }
                base = 10;
            }
            for (int k = 0; k < digits.length(); k++) {
                char c = digits.charAt(k);
                if (c >= 128 || Character.digit(c, base) < 0) {
                    return null;
                }
            }
            if (Integer.bitCount(base) != 1) {
                if (digits.length() > PyOperators.MAX_INT_DIGITS) {
                    return null; // Python's limit for converting a str in a base that is not a power of two
                }
            } else if ((long) (digits.replaceFirst("^0+", "").length() - 1) * Integer.numberOfTrailingZeros(base)
                    >= PyOperators.INT_LIMIT.bitLength()) {
                // Python has no limit here; past MAX_INT_DIGITS digits the value is refused before it is parsed (parsing
                // takes time quadratic in the length)
                throw PyOperators.tooManyDigits("int()");
            }
            BigInteger r = new BigInteger(digits, base);
            PyOperators.checkDigits(r, "int()");
            return negative ? r.negate() : r;
        }

        /** markupsafe's escape. */
        private static String htmlEscape(String s) {
            return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;").replace("\"", "&#34;");
        }

        /**
         * Jinja2's {@code min}/{@code max}(case_sensitive=False, attribute=None): Python's {@code min}/{@code max} over
         * the items ({@link PyValues#iterate}: a dict's keys, a string's characters) keyed by the attribute (a path as
         * for {@link #sort}, one only), strings compared lowercased unless case_sensitive; the first of equal items
         * wins. Nothing (Jinja2's undefined) for no items.
         */
        private static Object extreme(Object v, List<Object> a, Map<String, Object> kw, boolean max) {
            boolean caseSensitive = PyValues.truthy(PyValues.arg(a, kw, 0, "case_sensitive", false));
            List<Object> path = PyValues.attributePaths(PyValues.arg(a, kw, 1, "attribute", null), false).get(0);
            Object best = null;
            Object bestKey = null;
            boolean first = true;
            for (Object item : PyValues.iterate(v)) {
                Object key = sortKey(PyValues.attribute(item, path), caseSensitive);
                if (first || (max ? PyValues.greaterThan(key, bestKey) : PyValues.lessThan(key, bestKey))) {
                    best = item;
                    bestKey = key;
                    first = false;
                }
            }
            return best;
        }

        /**
         * Jinja2's {@code dictsort(case_sensitive=False, by='key', reverse=False)}: the (key, value) pairs sorted
         * stably by key or by value in Python's order, strings compared lowercased unless case_sensitive.
         */
        private static Object dictsort(Object v, List<Object> a, Map<String, Object> kw) {
            if (!(v instanceof Map<?, ?> m)) {
                throw new ELException("dictsort: not a dict");
            }
            boolean caseSensitive = PyValues.truthy(PyValues.arg(a, kw, 0, "case_sensitive", false));
            Object by = PyValues.arg(a, kw, 1, "by", "key");
            String byName = by instanceof CharSequence cs ? cs.toString() : null;
            int pos = "key".equals(byName) ? 0 : "value".equals(byName) ? 1 : -1;
            if (pos < 0) {
                throw new ELException("You can only sort by either \"key\" or \"value\"");
            }
            boolean reverse = PyValues.truthy(PyValues.arg(a, kw, 2, "reverse", false));
            List<Object[]> keyed = new ArrayList<>(m.size());
            for (Object pair : PyValues.items(m)) {
                keyed.add(new Object[] {sortKey(((List<?>) pair).get(pos), caseSensitive), pair});
            }
            sortStably(keyed, reverse);
            List<Object> out = new ArrayList<>(keyed.size());
            for (Object[] k : keyed) {
                out.add(k[1]);
            }
            return out;
        }

        private static Object fail(String message) {
            throw new ELException(message);
        }

        @FunctionalInterface
        interface FilterBody {
            Object apply(Object value, List<Object> args, Map<String, Object> kwargs);
        }

        private static Filter filter(String name, FilterBody body) {
            return new AdvancedFilter() {
                @Override
                public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
                    return body.apply(var, args == null ? List.of() : java.util.Arrays.asList(args), kwargs == null ? Map.of() : kwargs);
                }

                @Override
                public String getName() {
                    return name;
                }
            };
        }

        private static ExpTest test(String name, java.util.function.Predicate<Object> p) {
            return new ExpTest() {
                @Override
                public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
                    return p.test(var);
                }

                @Override
                public String getName() {
                    return name;
                }
            };
        }

        private static String renderChildren(TagNode tagNode, JinjavaInterpreter interpreter) {
            StringBuilder b = new StringBuilder();
            for (Node child : tagNode.getChildren()) {
                b.append(child.render(interpreter).getValue());
            }
            return b.toString();
        }

        /** {@code {% generation %}...{% endgeneration %}}: HF's assistant-mask marker; renders its body. */
        static final class GenerationTag implements Tag {
            private static final long serialVersionUID = 1L;

            @Override
            public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
                return renderChildren(tagNode, interpreter);
            }

            @Override
            public String getName() {
                return "generation";
            }
        }

        /** {@code {% filter f %}...{% endfilter %}}: the body, passed through filter f. */
        static final class FilterBlockTag implements Tag {
            private static final long serialVersionUID = 1L;
            private static final String BODY = "__filter_block_body__";

            @SuppressWarnings("try") // the scope is left by close()
            @Override
            public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
                String body = renderChildren(tagNode, interpreter);
                try (var scope = interpreter.enterScope()) {
                    interpreter.getContext().put(BODY, body);
                    Object out = interpreter.resolveELExpression(BODY + "|" + tagNode.getHelpers().strip(), tagNode.getLineNumber());
                    return PyValues.str(out);
                }
            }

            @Override
            public String getName() {
                return "filter";
            }
        }
    }
}
