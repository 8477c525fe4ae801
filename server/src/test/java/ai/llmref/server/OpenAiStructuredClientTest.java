package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.SchemaCorpus;
import com.openai.client.OpenAIClient;
import com.openai.core.JsonValue;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.ResponseFormatJsonSchema;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import com.openai.models.chat.completions.ChatCompletionMessageToolCall;
import com.openai.models.chat.completions.ChatCompletionNamedToolChoice;
import com.openai.models.chat.completions.ChatCompletionToolChoiceOption;
import com.openai.models.chat.completions.ChatCompletionToolMessageParam;
import com.openai.models.chat.completions.StructuredChatCompletion;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The official OpenAI Java client, end to end: structured output (a schema it derives from a
 * Java record, parsed back into the record; and a hand-written json_schema) and a tool-call
 * round trip (forced call, the client parses the arguments into a record, the tool's answer goes
 * back in a tool message) against a server rendering the Qwen 2.5 tool template.
 */
@SuppressWarnings("deprecation") // seed(): still sent and honoured by this server, which makes the tests reproducible
class OpenAiStructuredClientTest {
    static TestServer server;
    static OpenAIClient client;

    enum Sky { SUNNY, RAINY, CLOUDY }

    enum Unit { CELSIUS, FAHRENHEIT }

    /** Structured output type: the client derives its JSON schema (enums, boolean, integer; all required). */
    public record Forecast(Sky sky, boolean windy, Unit unit) {}

    /** A tool whose parameters the client derives from this record; its name is the class name. */
    public record GetWeather(Unit unit, boolean detailed) {}

    @BeforeAll
    static void start() throws Exception {
        server = ToolCallsTest.startWithToolTemplate();
        client = server.openAiClient();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    @Test
    void structuredOutputFromARecordRoundTrips() {
        StructuredChatCompletion<Forecast> c = client.chat().completions().create(ChatCompletionCreateParams.builder()
                .model("stories260K").addUserMessage("What will the weather be tomorrow?")
                .responseFormat(Forecast.class).maxCompletionTokens(200).temperature(0.7).seed(5).build());
        var choice = c.choices().getFirst();
        assertThat(choice.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.STOP);
        Forecast f = choice.message().content().orElseThrow();
        assertThat(f.sky()).isNotNull();
        assertThat(f.unit()).isNotNull();
    }

    @Test
    void handWrittenJsonSchemaIsEnforced() throws Exception {
        String schemaText = """
                {"type":"object","properties":{"name":{"type":"string","maxLength":20},"age":{"type":"integer","minimum":1,"maximum":12},
                 "tags":{"type":"array","items":{"enum":["brave","kind","small"]},"maxItems":2}},"required":["name","age","tags"],
                 "additionalProperties":false}""";
        ResponseFormatJsonSchema.JsonSchema.Schema.Builder schema = ResponseFormatJsonSchema.JsonSchema.Schema.builder();
        SchemaCorpus.MAPPER.readTree(schemaText).properties().forEach(e ->
                schema.putAdditionalProperty(e.getKey(), JsonValue.from(SchemaCorpus.MAPPER.convertValue(e.getValue(), Object.class))));
        ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder()
                .model("stories260K").addUserMessage("Describe a character.")
                .responseFormat(ResponseFormatJsonSchema.builder().jsonSchema(ResponseFormatJsonSchema.JsonSchema.builder()
                        .name("character").strict(true).schema(schema.build()).build()).build())
                .maxCompletionTokens(200).temperature(0.7).seed(3).build());
        assertThat(c.choices().getFirst().finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.STOP);
        String text = c.choices().getFirst().message().content().orElseThrow();
        assertThat(SchemaCorpus.referenceErrors(SchemaCorpus.MAPPER.readTree(schemaText), text)).as(text).isEmpty();
    }

    @Test
    void toolCallRoundTrip() {
        ChatCompletionCreateParams first = ChatCompletionCreateParams.builder()
                .model("stories260K").addUserMessage("Is it cold outside?")
                .addTool(GetWeather.class)
                .toolChoice(ChatCompletionToolChoiceOption.Auto.REQUIRED).parallelToolCalls(false)
                .maxCompletionTokens(200).temperature(0.7).seed(9).build();
        ChatCompletion c = client.chat().completions().create(first);
        ChatCompletion.Choice choice = c.choices().getFirst();
        assertThat(choice.finishReason()).isEqualTo(ChatCompletion.Choice.FinishReason.TOOL_CALLS);
        List<ChatCompletionMessageToolCall> calls = choice.message().toolCalls().orElseThrow();
        assertThat(calls).hasSize(1);
        ChatCompletionMessageFunctionToolCall call = calls.getFirst().asFunction();
        assertThat(call.function().name()).isEqualTo("GetWeather");
        GetWeather args = call.function().arguments(GetWeather.class); // the client parses and checks the arguments
        assertThat(args.unit()).isNotNull();

        ChatCompletion answer = client.chat().completions().create(first.toBuilder()
                .toolChoice(ChatCompletionToolChoiceOption.Auto.AUTO)
                .addMessage(choice.message())
                .addMessage(ChatCompletionToolMessageParam.builder().toolCallId(call.id()).content("8 degrees and raining").build())
                .maxCompletionTokens(16).build());
        assertThat(answer.choices().getFirst().message().content().isPresent()
                || answer.choices().getFirst().message().toolCalls().isPresent()).isTrue();
        // the call and the tool's answer are rendered into the prompt
        assertThat(answer.usage().orElseThrow().promptTokens()).isGreaterThan(c.usage().orElseThrow().promptTokens());
    }

    @Test
    void namedFunctionChoiceIsHonoured() {
        FunctionDefinition lookup = FunctionDefinition.builder().name("lookup_word").description("Dictionary lookup")
                .parameters(FunctionParameters.builder()
                        .putAdditionalProperty("type", JsonValue.from("object"))
                        .putAdditionalProperty("properties", JsonValue.from(Map.of("word", Map.of("type", "string", "maxLength", 12))))
                        .putAdditionalProperty("required", JsonValue.from(List.of("word")))
                        .build()).build();
        ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder()
                .model("stories260K").addUserMessage("What does brave mean?")
                .addTool(GetWeather.class).addFunctionTool(lookup)
                .toolChoice(ChatCompletionNamedToolChoice.builder()
                        .function(ChatCompletionNamedToolChoice.Function.builder().name("lookup_word").build()).build())
                .maxCompletionTokens(200).temperature(0.7).seed(2).build());
        ChatCompletionMessageFunctionToolCall call = c.choices().getFirst().message().toolCalls().orElseThrow().getFirst().asFunction();
        assertThat(call.function().name()).isEqualTo("lookup_word");
        assertThat(call.function().arguments()).startsWith("{\"word\":");
    }
}
