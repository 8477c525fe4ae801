package ai.llmref.server.http;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.structured.GrammarVerdict;
import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The output check of a finished generation (unit tier: the request's contract and the text the model wrote). */
class OutputContractTest {
    static final ObjectMapper MAPPER = new ObjectMapper();

    /** A number the grammar admits beyond a double's range is a valid document, not an error inside the check. */
    @Test
    void numbersBeyondADoublesRangePassTheCheck() throws Exception {
        OutputContract schema = OutputContract.of((ObjectNode) MAPPER.readTree("""
                {"prompt":"x","response_format":{"type":"json_schema","json_schema":{"name":"n","schema":
                 {"type":"object","properties":{"x":{"type":"number","minimum":0}},"required":["x"]}}}}"""), false, ToolCalls.Format.NONE);
        assertThat(schema.violations("{\"x\": 1e400}")).isEmpty();
        assertThat(schema.violations("{\"x\": 2E+9999999999999999}")).isEmpty();
        assertThat(schema.violations("{\"x\": \"1e400\"}")).isNotEmpty();

        OutputContract forced = OutputContract.of((ObjectNode) MAPPER.readTree("""
                {"messages":[{"role":"user","content":"hi"}],"tool_choice":"required","tools":[{"type":"function","function":
                 {"name":"f","parameters":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}}}]}"""),
                true, ToolCalls.Format.HERMES);
        ToolCalls.Reply call = ToolCalls.parse(forced.format(), "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1e400}}\n</tool_call>",
                forced.functions());
        assertThat(call.calls()).hasSize(1);
        assertThat(forced.callViolations(call, false)).isEmpty();
    }

    private static OutputContract chat(String body, ToolCalls.Format format) throws Exception {
        return OutputContract.of((ObjectNode) MAPPER.readTree(body), true, format);
    }

    /**
     * What ends a reasoning besides {@code </think>} with tools (the XML format's {@code <tool_call>},
     * Kimi K2's section), and GPT-OSS's grammars after its analysis message (from the next
     * message's {@code <|start|>}: the final header, with or without a content type, and the
     * document; the forced call's message), checked in llama.cpp's grammar engine.
     */
    @Test
    void whatEndsTheReasoningAndWhatFollowsGptOssAnalysis() throws Exception {
        String tools = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\",\"function\":"
                + "{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}},\"required\":[\"x\"]}}}]";
        assertThat(chat("{" + tools + "}", ToolCalls.Format.KIMI).reasoningEnd()).isEqualTo("<|tool_calls_section_begin|>");
        assertThat(chat("{" + tools + "}", ToolCalls.Format.XML).reasoningEnd()).isEqualTo("<tool_call>");
        assertThat(chat("{" + tools + "}", ToolCalls.Format.HERMES).reasoningEnd()).isNull();
        assertThat(chat("{" + tools + ",\"tool_choice\":\"none\"}", ToolCalls.Format.KIMI).reasoningEnd()).as("tools not active").isNull();

        OutputContract schema = chat("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":"
                + "\"json_schema\",\"json_schema\":{\"name\":\"n\",\"schema\":{\"type\":\"object\",\"properties\":{\"n\":{\"$ref\":\"#\"}},"
                + "\"additionalProperties\":false}}}}", ToolCalls.Format.HARMONY);
        OutputContract object = chat("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":\"json_object\"}}",
                ToolCalls.Format.HARMONY);
        OutputContract forced = chat("{" + tools + ",\"tool_choice\":\"required\"}", ToolCalls.Format.HARMONY);
        assertThat(chat("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", ToolCalls.Format.HARMONY).afterAnalysis())
                .as("no grammar").isNull();
        try (LlamaModel m = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0))) {
            Vocabulary v = m.vocabulary();
            String fin = "<|start|>assistant<|channel|>final<|message|>";
            // a schema that refers to itself: its root is not GPT-OSS's header
            assertThat(GrammarVerdict.of(v, schema.afterAnalysis(), fin + "{\"n\": {\"n\": {}}}")).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(GrammarVerdict.of(v, schema.afterAnalysis(), fin + "{\"n\": " + fin)).isEqualTo(GrammarVerdict.REFUSED);
            assertThat(GrammarVerdict.of(v, schema.afterAnalysis(), "<|start|>assistant<|channel|>final <|constrain|>json<|message|>{}"))
                    .isEqualTo(GrammarVerdict.MAY_END);
            assertThat(GrammarVerdict.of(v, object.afterAnalysis(), fin + "{\"a\": [1]}")).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(GrammarVerdict.of(v, object.afterAnalysis(), "<|start|>assistant<|channel|>analysis")).isEqualTo(GrammarVerdict.REFUSED);
            assertThat(GrammarVerdict.of(v, forced.afterAnalysis(), "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>"
                    + "{\"x\": 1}")).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(GrammarVerdict.of(v, forced.afterAnalysis(), fin)).isEqualTo(GrammarVerdict.REFUSED);
        }
    }

    /** Violations are logged (a grammar bug): they say where the output failed, never quote it (Jackson's message did). */
    @Test
    void aViolationDoesNotQuoteTheOutput() throws Exception {
        OutputContract json = OutputContract.of((ObjectNode) MAPPER.readTree("""
                {"prompt":"x","response_format":{"type":"json_object"}}"""), false, ToolCalls.Format.NONE);
        assertThat(json.violations("{\"a\": secretword}")).singleElement().asString()
                .doesNotContain("secretword").isEqualTo("the output is not JSON (at character 6)");
    }
}
