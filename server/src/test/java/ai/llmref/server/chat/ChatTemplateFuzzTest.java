package ai.llmref.server.chat;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Fuzzes the chat-template renderer with hostile templates and messages: the input is a template
 * source, a NUL, then the text of the user's messages. A model file (or an operator) supplies the
 * template and a client the messages; either way the renderer must only ever answer with text
 * within its output limit or a {@link ChatTemplateException} (which the server turns into a 400),
 * never another exception, and it must not run away (its step and size limits; Jazzer's per-input
 * timeout catches a hang in fuzzing mode).
 *
 * <p>Regression inputs: {@code src/test/resources/ai/llmref/server/chat/ChatTemplateFuzzTestInputs/render/}.
 */
class ChatTemplateFuzzTest {

    @FuzzTest(maxDuration = "30s")
    void render(byte[] input) {
        String all = new String(input, StandardCharsets.UTF_8);
        int cut = all.indexOf('\0');
        String template = cut < 0 ? all : all.substring(0, cut);
        String content = cut < 0 ? "Hello" : all.substring(cut + 1);
        List<ChatMessage> messages = List.of(ChatMessage.of("system", content), ChatMessage.of("user", content),
                ChatMessage.of("assistant", content), ChatMessage.of("user", content));
        try {
            ChatTemplateRenderer r = new ChatTemplateRenderer(template, "<s>", "</s>", true, false);
            String out = r.render(messages, true, null);
            assertThat(out).isNotNull();
            assertThat(out.length()).isLessThanOrEqualTo(ChatTemplateRenderer.MAX_OUTPUT_CHARS);
        } catch (ChatTemplateException e) {
            assertThat(e.getMessage()).isNotNull();
        }
    }
}
