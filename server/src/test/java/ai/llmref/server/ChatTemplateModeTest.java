package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.ChatTemplates;
import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.server.chat.ChatTemplateRenderer;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Both chat-template modes build the prompt the served model sees: checked through usage.prompt_tokens. */
class ChatTemplateModeTest {
    static final String BODY = "{\"messages\":[{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":2}";

    @Test
    void builtinAndJinjaModesRenderTheChatMlTemplateAlike() throws Exception {
        int expected;
        try (LlamaModel m = LlamaModel.load(TestServer.model(), ModelParams.defaults().withVocabOnly(true))) {
            String prompt = ChatTemplates.apply("chatml", List.of(new ChatTemplates.Message("system", "Be kind."),
                    new ChatTemplates.Message("user", "Tell me a story")), true);
            expected = m.vocabulary().tokenize(prompt, true, true).length;
        }
        for (String mode : List.of("builtin", "jinja")) {
            try (TestServer t = TestServer.start(Map.of("model.chat-template", ChatTemplateRenderer.defaultTemplate(),
                    "model.chat-template-mode", mode))) {
                HttpResponse<String> r = t.post("/v1/chat/completions", BODY);
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                assertThat(new ObjectMapper().readTree(r.body()).at("/usage/prompt_tokens").asInt()).as(mode).isEqualTo(expected);
            }
        }
    }
}
