package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.*;

import ai.llmref.bindings.ffi.llama_chat_message;
import ai.llmref.llama.internal.Native;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * llama.cpp's built-in chat templates ({@code llama_chat_apply_template}): it recognises a known
 * template from its Jinja source or its name (e.g. {@code chatml}, {@code llama3}); it does not
 * run Jinja.
 */
public final class ChatTemplates {

    /** One chat message. */
    public record Message(String role, String content) {}

    private ChatTemplates() {}

    /**
     * Renders messages with a built-in template.
     *
     * @param template         a template's Jinja source or a built-in name
     * @param addAssistantTurn end with the tokens that open an assistant reply
     * @throws InvalidInputException when llama.cpp does not know the template
     */
    public static String apply(String template, List<Message> messages, boolean addAssistantTurn) {
        LlamaBackend.initialize();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment tmpl = Native.cString(arena, template, "llama_chat_apply_template", "the template");
            MemorySegment chat = llama_chat_message.allocateArray(messages.size(), arena);
            long chars = 0;
            for (int i = 0; i < messages.size(); i++) {
                Message m = messages.get(i);
                MemorySegment el = llama_chat_message.asSlice(chat, i);
                llama_chat_message.role(el, Native.cString(arena, m.role(), "llama_chat_apply_template", "a message role"));
                llama_chat_message.content(el, Native.cString(arena, m.content(), "llama_chat_apply_template", "a message content"));
                chars += m.role().length() + m.content().length();
            }
            int size = (int) Math.min(Integer.MAX_VALUE - 1, 2 * chars * 4 + 1024);
            MemorySegment buf = arena.allocate(size);
            int n = llama_chat_apply_template(tmpl, chat, messages.size(), addAssistantTurn, buf, size);
            if (n < 0) {
                throw new InvalidInputException("llama_chat_apply_template", "llama.cpp does not know this chat template");
            }
            if (n > size) {
                buf = arena.allocate(n);
                n = llama_chat_apply_template(tmpl, chat, messages.size(), addAssistantTurn, buf, n);
            }
            return Native.utf8(buf, n);
        }
    }

    /** Names of the built-in templates. */
    public static List<String> builtinNames() {
        LlamaBackend.initialize();
        int n = llama_chat_builtin_templates(MemorySegment.NULL, 0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS, Math.max(n, 1));
            int m = llama_chat_builtin_templates(out, n);
            List<String> names = new ArrayList<>();
            for (int i = 0; i < Math.min(n, m); i++) {
                names.add(Native.string(out.getAtIndex(ValueLayout.ADDRESS, i)));
            }
            return List.copyOf(names);
        }
    }
}
