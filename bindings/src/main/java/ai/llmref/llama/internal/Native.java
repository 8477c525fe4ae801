package ai.llmref.llama.internal;

import ai.llmref.llama.InvalidInputException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

/** Small conversions between Java values and C memory, used by the safe API only. */
public final class Native {
    private Native() {}

    /** A NUL-terminated UTF-8 copy of {@code s}; a NUL inside {@code s} would silently cut it. */
    public static MemorySegment cString(Arena arena, String s, String nativeFunction, String what) {
        if (s.indexOf('\0') >= 0) {
            throw new InvalidInputException(nativeFunction, what + " must not contain a NUL character");
        }
        return arena.allocateFrom(s, StandardCharsets.UTF_8);
    }

    /** The C string at {@code ptr}, or {@code null} for a NULL pointer. */
    public static String string(MemorySegment ptr) {
        return ptr.equals(MemorySegment.NULL) ? null : ptr.reinterpret(Long.MAX_VALUE).getString(0, StandardCharsets.UTF_8);
    }

    /** Reads a string a native function wrote into {@code buf} (a length, no terminator needed). */
    public static String utf8(MemorySegment buf, int length) {
        return new String(buf.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
    }
}
