package ai.llmref.server.chat;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One message of a conversation, as a chat template sees it ({@code messages[i]}).
 *
 * @param role       {@code system}, {@code user}, {@code assistant}, {@code tool}, ... (required)
 * @param content    the text; null for an assistant turn that only calls tools (the template sees "")
 * @param toolCalls  OpenAI-shaped tool calls of an assistant turn ({@code id}, {@code type},
 *                   {@code function: {name, arguments}}); null when none
 * @param toolCallId the call a {@code tool} message answers; null otherwise
 * @param name       the tool's (or participant's) name; null when not given
 * @param reasoningContent an assistant turn's reasoning ({@code reasoning_content}, which reasoning
 *                   templates such as Qwen 3's render in the turns after the last user message);
 *                   null when not given
 */
public record ChatMessage(String role, String content, List<Map<String, Object>> toolCalls, String toolCallId, String name,
                          String reasoningContent) {

    public ChatMessage {
        Objects.requireNonNull(role, "role");
        toolCalls = toolCalls == null ? null : List.copyOf(toolCalls);
    }

    public ChatMessage(String role, String content, List<Map<String, Object>> toolCalls, String toolCallId, String name) {
        this(role, content, toolCalls, toolCallId, name, null);
    }

    /** A plain text message. */
    public static ChatMessage of(String role, String content) {
        return new ChatMessage(role, content, null, null, null);
    }
}
