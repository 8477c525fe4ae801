package ai.llmref.server.http;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

/**
 * {@code parallel_tool_calls: false} (chat, the Responses API) and Anthropic's
 * {@code disable_parallel_tool_use}: a reply in which the model wrote several calls under
 * {@code auto} sends only the first; by default every call is sent.
 */
class ParallelToolCallsTest {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static final String TWO_CALLS = """
            Let me check.
            <tool_call>
            {"name": "get_weather", "arguments": {"city": "Paris"}}
            </tool_call>
            <tool_call>
            {"name": "get_time", "arguments": {}}
            </tool_call>""";

    static ObjectNode chatBody(String extra) throws Exception {
        return (ObjectNode) MAPPER.readTree("""
                {"messages":[{"role":"user","content":"hi"}],"tools":[
                 {"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}},
                 {"type":"function","function":{"name":"get_time","parameters":{"type":"object"}}}]%s}""".formatted(extra));
    }

    static ToolCalls.Reply sent(ObjectNode chat) {
        OutputContract c = OutputContract.of(chat, true, ToolCalls.Format.HERMES);
        return c.limitCalls(ToolCalls.parse(c.format(), TWO_CALLS, c.functions()));
    }

    @Test
    void chatSendsEveryCallByDefaultAndOnlyTheFirstWhenParallelCallsAreOff() throws Exception {
        assertThat(sent(chatBody("")).calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather", "get_time");
        assertThat(sent(chatBody(",\"parallel_tool_calls\":true")).calls()).hasSize(2);
        ToolCalls.Reply one = sent(chatBody(",\"parallel_tool_calls\":false"));
        assertThat(one.calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather");
        assertThat(one.content()).isEqualTo("Let me check.");
        assertThatThrownBy(() -> sent(chatBody(",\"parallel_tool_calls\":\"no\""))).isInstanceOfSatisfying(ApiException.class,
                e -> assertThat(e.param()).isEqualTo("parallel_tool_calls"));
    }

    @Test
    void theResponsesApiAndTheMessagesApiPassTheirFlagsOn() throws Exception {
        ObjectNode responses = (ObjectNode) MAPPER.readTree("""
                {"input":"hi","parallel_tool_calls":false,"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}},
                 {"type":"function","name":"get_time","parameters":{"type":"object"}}]}""");
        assertThat(sent(ResponsesRequest.of(responses).chat()).calls()).hasSize(1);
        String messages = """
                {"max_tokens":8,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}},
                 {"name":"get_time","input_schema":{"type":"object"}}],"tool_choice":{"type":"auto"%s}}""";
        assertThat(sent(MessagesRequest.of((ObjectNode) MAPPER.readTree(messages.formatted(""))).chat()).calls()).hasSize(2);
        assertThat(sent(MessagesRequest.of((ObjectNode) MAPPER.readTree(messages.formatted(",\"disable_parallel_tool_use\":true")))
                .chat()).calls()).extracting(ToolCalls.Call::name).containsExactly("get_weather");
    }
}
