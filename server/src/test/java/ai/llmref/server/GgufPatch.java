package ai.llmref.server;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A copy of a GGUF file with metadata entries added (e.g. a tokenizer's special token ids, a
 * model's recommended sampling), its tensor data moved to the new, aligned place: a real model with a property the
 * test data lacks, such as fill-in-the-middle tokens.
 */
final class GgufPatch {
    private GgufPatch() {}

    static Path withUint32(Path model, Map<String, Integer> entries, Path out) throws Exception {
        return with(model, Map.copyOf(entries), out);
    }

    /** Entries of an Integer (written as u32), a Float (f32), a Boolean (bool) or a String. */
    static Path with(Path model, Map<String, Object> entries, Path out) throws Exception {
        ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(model)).order(ByteOrder.LITTLE_ENDIAN);
        if (in.getInt() != 0x46554747) { // "GGUF"
            throw new IllegalArgumentException("not a GGUF file: " + model);
        }
        int version = in.getInt();
        long tensors = in.getLong();
        long kvs = in.getLong();
        int kvStart = in.position();
        long alignment = 32;
        for (long i = 0; i < kvs; i++) {
            String key = string(in);
            int type = in.getInt();
            if (key.equals("general.alignment")) {
                alignment = Integer.toUnsignedLong(in.getInt(in.position()));
            }
            skip(in, type);
        }
        int kvEnd = in.position();
        for (long i = 0; i < tensors; i++) {
            string(in);
            int dims = in.getInt();
            in.position(in.position() + 8 * dims + 4 + 8); // dimensions, type, offset
        }
        int infoEnd = in.position();
        long dataStart = align(infoEnd, alignment);
        ByteArrayOutputStream added = new ByteArrayOutputStream();
        for (Map.Entry<String, Object> e : entries.entrySet()) {
            byte[] k = e.getKey().getBytes(StandardCharsets.UTF_8);
            byte[] v = e.getValue() instanceof String str ? str.getBytes(StandardCharsets.UTF_8) : new byte[0];
            ByteBuffer b = ByteBuffer.allocate(8 + k.length + 4 + 8 + v.length).order(ByteOrder.LITTLE_ENDIAN);
            b.putLong(k.length).put(k);
            switch (e.getValue()) {
                case Integer i -> b.putInt(4).putInt(i); // uint32
                case Float f -> b.putInt(6).putFloat(f); // float32
                case Boolean bool -> b.putInt(7).put((byte) (bool ? 1 : 0));
                case String str -> b.putInt(8).putLong(v.length).put(v);
                default -> throw new IllegalArgumentException("a GGUF value of " + e.getValue().getClass());
            }
            added.write(b.array(), 0, b.position());
        }
        byte[] src = in.array();
        ByteArrayOutputStream o = new ByteArrayOutputStream(src.length + 4096);
        ByteBuffer head = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        head.putInt(0x46554747).putInt(version).putLong(tensors).putLong(kvs + entries.size());
        o.write(head.array());
        o.write(src, kvStart, kvEnd - kvStart);
        added.writeTo(o);
        o.write(src, kvEnd, infoEnd - kvEnd);
        while (o.size() % alignment != 0) {
            o.write(0);
        }
        o.write(src, (int) dataStart, src.length - (int) dataStart);
        Files.write(out, o.toByteArray());
        return out;
    }

    /**
     * A copy whose tokens {@code renamed} (id to text) become control tokens of that text, such as
     * a vocabulary's {@code [TOOL_CALLS]}: the vocabulary keeps its size (and the model its output
     * rows), so the tokens renamed should be ones no test text needs (stories260K's byte tokens of
     * control characters).
     */
    static Path withControlTokens(Path model, Map<Integer, String> renamed, Path out) throws Exception {
        ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(model)).order(ByteOrder.LITTLE_ENDIAN);
        if (in.getInt() != 0x46554747) {
            throw new IllegalArgumentException("not a GGUF file: " + model);
        }
        in.getInt();
        long tensors = in.getLong();
        long kvs = in.getLong();
        long alignment = 32;
        ByteArrayOutputStream kv = new ByteArrayOutputStream();
        for (long i = 0; i < kvs; i++) {
            int start = in.position();
            String key = string(in);
            int type = in.getInt();
            if (key.equals("general.alignment")) {
                alignment = Integer.toUnsignedLong(in.getInt(in.position()));
            }
            if (type == 9 && (key.equals("tokenizer.ggml.tokens") || key.equals("tokenizer.ggml.token_type"))) {
                int element = in.getInt();
                long n = in.getLong();
                kv.write(in.array(), start, in.position() - start); // key, type, element type, count
                ByteBuffer b = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
                for (int t = 0; t < n; t++) {
                    String text = element == 8 ? string(in) : null;
                    int tokenType = element == 8 ? 0 : in.getInt();
                    b.clear();
                    if (element == 8) {
                        byte[] v = renamed.getOrDefault(t, text).getBytes(StandardCharsets.UTF_8);
                        if (b.capacity() < 8 + v.length) {
                            b = ByteBuffer.allocate(8 + v.length).order(ByteOrder.LITTLE_ENDIAN);
                        }
                        b.putLong(v.length).put(v);
                    } else {
                        b.putInt(renamed.containsKey(t) ? 3 : tokenType); // 3: LLAMA_TOKEN_TYPE_CONTROL
                    }
                    kv.write(b.array(), 0, b.position());
                }
                continue;
            }
            skip(in, type);
            kv.write(in.array(), start, in.position() - start);
        }
        int infoStart = in.position();
        for (long i = 0; i < tensors; i++) {
            string(in);
            int dims = in.getInt();
            in.position(in.position() + 8 * dims + 4 + 8);
        }
        int infoEnd = in.position();
        long dataStart = align(infoEnd, alignment);
        byte[] src = in.array();
        ByteArrayOutputStream o = new ByteArrayOutputStream(src.length + 4096);
        o.write(src, 0, 24); // magic, version, counts: unchanged
        kv.writeTo(o);
        o.write(src, infoStart, infoEnd - infoStart);
        while (o.size() % alignment != 0) {
            o.write(0);
        }
        o.write(src, (int) dataStart, src.length - (int) dataStart);
        Files.write(out, o.toByteArray());
        return out;
    }

    private static long align(long at, long alignment) {
        return (at + alignment - 1) / alignment * alignment;
    }

    private static String string(ByteBuffer in) {
        int n = (int) in.getLong();
        byte[] b = new byte[n];
        in.get(b);
        return new String(b, StandardCharsets.UTF_8);
    }

    private static void skip(ByteBuffer in, int type) {
        switch (type) {
            case 0, 1, 7 -> in.position(in.position() + 1);
            case 2, 3 -> in.position(in.position() + 2);
            case 4, 5, 6 -> in.position(in.position() + 4);
            case 10, 11, 12 -> in.position(in.position() + 8);
            case 8 -> string(in);
            case 9 -> {
                int element = in.getInt();
                long n = in.getLong();
                for (long i = 0; i < n; i++) {
                    skip(in, element);
                }
            }
            default -> throw new IllegalArgumentException("GGUF value type " + type);
        }
    }
}
