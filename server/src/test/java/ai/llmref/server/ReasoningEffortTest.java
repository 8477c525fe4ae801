package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * OpenAI's {@code reasoning_effort} (and the Responses API's {@code reasoning.effort}) as
 * llama-server takes it: "none" asks the template not to think, any other effort is the template's
 * {@code reasoning_effort} variable (and its {@code reasoning_strength}), over one that
 * {@code chat_template_kwargs} gave. Seen through llama-server's {@code /apply-template}, which
 * returns the chat route's prompt as text: the tests check that it is the text the chat route
 * tokenizes (its {@code prompt_tokens}), then what each of the pinned tree's templates makes of an
 * effort. Before, the field was ignored: GPT-OSS reasoned at "medium" whatever a client asked.
 */
class ReasoningEffortTest {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    static ObjectNode ask() {
        ObjectNode b = MAPPER.createObjectNode();
        b.putArray("messages").addObject().put("role", "user").put("content", "Why is the sky blue?");
        return b;
    }

    static ObjectNode ask(String effort) {
        return ask().put("reasoning_effort", effort);
    }

    /** A server rendering one of the pinned tree's templates ({@link ReasoningTest.WithTemplate}), and what the tests ask it. */
    abstract static class WithTemplate extends ReasoningTest.WithTemplate {
        /** The chat route's prompt for this body, from /apply-template. */
        String prompt(ObjectNode body) throws Exception {
            HttpResponse<String> r = server.post("/apply-template", body.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode out = MAPPER.readTree(r.body());
            assertThat(out.size()).as("llama-server's answer: the prompt alone").isEqualTo(1);
            return out.get("prompt").asText();
        }

        /** The number of tokens the chat route makes of a prompt text: BOS and special tokens as it tokenizes. */
        int tokens(String prompt) throws Exception {
            return server.tokenize(prompt, true).length;
        }

        JsonNode error(String path, ObjectNode body, int status) throws Exception {
            HttpResponse<String> r = server.post(path, body.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(status);
            return MAPPER.readTree(r.body()).get("error");
        }
    }

    /** GPT-OSS: its system header says "Reasoning: medium" unless given an effort. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class GptOss extends WithTemplate {
        @Override
        String templateFile() {
            return "openai-gpt-oss-120b.jinja";
        }

        @Test
        void theEffortIsTheTemplatesAndTheKwargsGiveWay() throws Exception {
            assertThat(prompt(ask())).contains("Reasoning: medium\n").doesNotContain("Reasoning: high");
            assertThat(prompt(ask("high"))).contains("Reasoning: high\n").doesNotContain("Reasoning: medium");
            ObjectNode kw = ask();
            kw.putObject("chat_template_kwargs").put("reasoning_effort", "low");
            assertThat(prompt(kw)).contains("Reasoning: low\n");
            kw.put("reasoning_effort", "high");
            assertThat(prompt(kw)).as("the request's field over the kwargs' variable").contains("Reasoning: high\n")
                    .doesNotContain("Reasoning: low");
            // "none": not thinking asked, and no variable (as llama-server erases it): the template's default
            assertThat(prompt(ask("none"))).contains("Reasoning: medium\n").doesNotContain("Reasoning: none");
            kw.put("reasoning_effort", "none");
            assertThat(prompt(kw)).as("'none' erases the kwargs' effort too").contains("Reasoning: medium\n");
        }

        /**
         * The prompt /apply-template returns is the one the chat route decodes, token for token
         * (openai-java's {@code reasoningEffort}); and the Responses API's {@code reasoning.effort}
         * reaches the template the same way.
         */
        @Test
        void theClientsEffortReachesTheDecodedPrompt() throws Exception {
            String high = prompt(ask("high"));
            String medium = prompt(ask());
            assertThat(tokens(high)).as("the test tells the two prompts apart by their length").isNotEqualTo(tokens(medium));
            var client = server.openAiClient();
            var chat = client.chat().completions().create(com.openai.models.chat.completions.ChatCompletionCreateParams.builder()
                    .model("stories260K").addUserMessage("Why is the sky blue?").maxCompletionTokens(4).temperature(0.0)
                    .reasoningEffort(com.openai.models.ReasoningEffort.HIGH).build());
            assertThat(chat.usage().orElseThrow().promptTokens()).isEqualTo(tokens(high));
            var response = client.responses().create(com.openai.models.responses.ResponseCreateParams.builder().model("stories260K")
                    .input("Why is the sky blue?").maxOutputTokens(4).temperature(0.0)
                    .reasoning(com.openai.models.Reasoning.builder().effort(com.openai.models.ReasoningEffort.HIGH).build()).build());
            assertThat(response.usage().orElseThrow().inputTokens()).isEqualTo(tokens(high));
            // Anthropic's output_config.effort, through the Messages API's token count
            var anthropic = com.anthropic.client.okhttp.AnthropicOkHttpClient.builder().baseUrl(server.base()).apiKey("unused")
                    .maxRetries(0).build();
            long counted = anthropic.messages().countTokens(com.anthropic.models.messages.MessageCountTokensParams.builder()
                    .model("stories260K").addUserMessage("Why is the sky blue?").outputConfig(com.anthropic.models.messages.OutputConfig
                            .builder().effort(com.anthropic.models.messages.OutputConfig.Effort.HIGH).build()).build()).inputTokens();
            assertThat(counted).isEqualTo(tokens(high));
        }

        @Test
        void aBadEffortIsRefusedOnEveryChatRoute() throws Exception {
            for (String path : new String[] {"/v1/chat/completions", "/apply-template"}) {
                for (JsonNode bad : new JsonNode[] {MAPPER.getNodeFactory().textNode(""), MAPPER.getNodeFactory().textNode("very high"),
                        MAPPER.getNodeFactory().textNode("x".repeat(33)), MAPPER.getNodeFactory().textNode("high\n<|start|>")}) {
                    ObjectNode b = ask();
                    b.set("reasoning_effort", bad);
                    JsonNode e = error(path, b, 400);
                    assertThat(e.get("param").asText()).isEqualTo("reasoning_effort");
                    assertThat(e.get("code").asText()).isEqualTo("invalid_value");
                }
                ObjectNode b = ask();
                b.put("reasoning_effort", 2);
                assertThat(error(path, b, 400).get("message").asText()).contains("'reasoning_effort' must be a string");
            }
            ObjectNode r = MAPPER.createObjectNode().put("input", "hi");
            r.putObject("reasoning").put("effort", "extreme");
            assertThat(error("/v1/responses", r, 400).get("param").asText()).isEqualTo("reasoning.effort");
        }

        /** /apply-template checks a request as the chat route does, and answers a final assistant message with a new turn, as chat does. */
        @Test
        void applyTemplateChecksAsTheChatRouteDoes() throws Exception {
            assertThat(error("/apply-template", MAPPER.createObjectNode(), 400).get("param").asText()).isEqualTo("messages");
            assertThat(error("/apply-template", ask().put("model", "gpt-5"), 404).get("code").asText()).isEqualTo("model_not_found");
            ObjectNode tools = ask();
            tools.putArray("tools").addObject().put("type", "function").putObject("function").put("name", "get_weather");
            assertThat(prompt(tools)).contains("get_weather");
            ObjectNode prefill = ask();
            prefill.withArray("messages").addObject().put("role", "assistant").put("content", "The sky");
            assertThat(prompt(prefill)).endsWith("<|start|>assistant");
            assertThat(tokens(prompt(prefill))).isEqualTo(
                    ReasoningTest.post(server, prefill.put("max_tokens", 1)).get("usage").get("prompt_tokens").asInt());
        }
    }

    /** Qwen 3 reads enable_thinking, not an effort: "none" closes an empty block, as enable_thinking false does; others change nothing. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Qwen3 extends WithTemplate {
        @Override
        String templateFile() {
            return "Qwen-Qwen3-0.6B.jinja";
        }

        @Test
        void noneIsEnableThinkingFalse() throws Exception {
            ObjectNode off = ask();
            off.putObject("chat_template_kwargs").put("enable_thinking", false);
            String closed = prompt(off);
            assertThat(closed).endsWith("<think>\n\n</think>\n\n");
            assertThat(prompt(ask("none"))).isEqualTo(closed);
            ObjectNode on = ask("none");
            on.putObject("chat_template_kwargs").put("enable_thinking", true);
            assertThat(prompt(on)).as("the effort over the kwargs, as llama-server reads them").isEqualTo(closed);
            assertThat(prompt(ask("high"))).isEqualTo(prompt(ask())).doesNotContain("</think>");
            assertThat(ReasoningTest.post(server, ask("none").put("max_tokens", 4).put("temperature", 0))
                    .at("/usage/prompt_tokens").asInt()).isEqualTo(tokens(closed));
        }
    }

    /** muse-glimmer reads {@code reasoning_strength}: an effort is that too, unless the kwargs give it. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class MuseGlimmer extends WithTemplate {
        @Override
        String templateFile() {
            return "muse-glimmer.jinja";
        }

        @Test
        void anEffortIsTheReasoningStrength() throws Exception {
            assertThat(prompt(ask())).contains("Reasoning strength: high.");
            assertThat(prompt(ask("low"))).contains("Reasoning strength: low.").doesNotContain("Reasoning strength: high.");
            ObjectNode kw = ask("low");
            kw.putObject("chat_template_kwargs").put("reasoning_strength", "medium");
            assertThat(prompt(kw)).contains("Reasoning strength: medium.");
            ObjectNode kwEffort = ask();
            kwEffort.putObject("chat_template_kwargs").put("reasoning_effort", "low");
            assertThat(prompt(kwEffort)).as("the kwargs' effort too, as llama.cpp binds it").contains("Reasoning strength: low.");
        }
    }

    /** Tencent Hy3 takes no_think, low or high and raises on anything else: a 400 naming the template's error. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Hy3 extends WithTemplate {
        @Override
        String templateFile() {
            return "tencent-Hy3.jinja";
        }

        @Test
        void theTemplatesOwnCheckAnswers() throws Exception {
            assertThat(prompt(ask("high"))).isNotEqualTo(prompt(ask()));
            assertThat(prompt(ask("no_think"))).isEqualTo(prompt(ask()));
            assertThat(prompt(ask("none"))).as("none: the template's default, no_think").isEqualTo(prompt(ask()));
            JsonNode e = error("/v1/chat/completions", ask("medium").put("max_tokens", 4), 400);
            assertThat(e.get("code").asText()).isEqualTo("chat_template_error");
            assertThat(e.get("message").asText()).contains("medium");
        }
    }
}
