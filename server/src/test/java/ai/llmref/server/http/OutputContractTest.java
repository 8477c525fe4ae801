package ai.llmref.server.http;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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

    /** Violations are logged (a grammar bug): they say where the output failed, never quote it (Jackson's message did). */
    @Test
    void aViolationDoesNotQuoteTheOutput() throws Exception {
        OutputContract json = OutputContract.of((ObjectNode) MAPPER.readTree("""
                {"prompt":"x","response_format":{"type":"json_object"}}"""), false, ToolCalls.Format.NONE);
        assertThat(json.violations("{\"a\": secretword}")).singleElement().asString()
                .doesNotContain("secretword").isEqualTo("the output is not JSON (at character 6)");
    }
}
