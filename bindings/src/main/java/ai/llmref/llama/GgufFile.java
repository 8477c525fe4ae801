package ai.llmref.llama;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads and checks a GGUF file's header, key/values and tensor table in Java, with every length
 * bounded by the file size, so that a missing, truncated, corrupt or foreign file is refused with
 * a clear message before llama.cpp's loader sees it. Also checked, as llama.cpp would otherwise
 * abort the process on them: {@code general.alignment} (a u32 power of two), the token list
 * ({@code tokenizer.ggml.tokens}: no string twice) and, for a model loaded with its weights, the
 * layer and expert counts. Other values (an architecture's own hyperparameters, tensor shapes) are
 * left to llama.cpp, which refuses most of them with an error; some of its checks of an
 * architecture's graph are asserts that a file could still fail.
 */
public final class GgufFile {
    private static final int MAGIC = 0x46554747; // "GGUF" little-endian
    private static final int MAX_DIMS = 4;
    private static final int GGML_TYPE_COUNT = 64; // generous upper bound of ggml_type values
    private static final long MAX_STRING = 1L << 30;
    /** {@code LLAMA_MAX_LAYERS} and {@code LLAMA_MAX_EXPERTS} of the pinned llama.cpp ({@code src/llama-hparams.h}). */
    static final long MAX_LAYERS = 512;
    static final long MAX_EXPERTS = 1024;
    private static final String TOKENS = "tokenizer.ggml.tokens";
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** What the checked file declares. Array values are summarised as {@code [type x count]}. */
    public record Info(Path path, long sizeBytes, int version, long tensorCount, Map<String, String> metadata) {
        public String architecture() {
            return metadata.get("general.architecture");
        }
    }

    private GgufFile() {}

    /** Checks {@code path} and returns its header and key/values, or throws why it is not a usable GGUF. */
    public static Info inspect(Path path) {
        return inspect(path, true);
    }

    /**
     * As {@link #inspect(Path)}; with {@code weights} (a model loaded with its weights, not
     * vocabulary only) the layer and expert counts llama.cpp asserts on are checked too.
     */
    static Info inspect(Path path, boolean weights) {
        if (!Files.exists(path)) {
            throw invalid(path, "no such file");
        }
        if (Files.isDirectory(path)) {
            throw invalid(path, "is a directory, not a GGUF file");
        }
        if (!Files.isRegularFile(path)) {
            throw invalid(path, "is not a regular file");
        }
        if (!Files.isReadable(path)) {
            throw invalid(path, "is not readable by this process");
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            long size = ch.size();
            if (size < 24) {
                throw invalid(path, "is " + size + " bytes long, too short for a GGUF header (24 bytes)");
            }
            MemorySegment file = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            return new Reader(path, file, weights).read();
        } catch (IOException e) {
            throw new InvalidModelFileException(null, path + ": cannot be read: " + e.getMessage(), e);
        }
    }

    static InvalidModelFileException invalid(Path path, String why) {
        return new InvalidModelFileException(null, "model file " + path + " " + why);
    }

    private static final class Reader {
        private final Path path;
        private final MemorySegment file;
        private final boolean weights;
        private long pos;
        /** Unsigned 32-bit values, by key: scalars, and the largest element of u32 / i32 arrays. */
        private final Map<String, Long> counts = new java.util.HashMap<>();

        Reader(Path path, MemorySegment file, boolean weights) {
            this.path = path;
            this.file = file;
            this.weights = weights;
        }

        Info read() {
            int magic = u32("magic");
            if (magic != MAGIC) {
                throw invalid(path, "is not a GGUF file (magic " + String.format("0x%08x", magic) + ", expected \"GGUF\")");
            }
            int version = u32("version");
            if (version != 2 && version != 3) {
                throw invalid(path, "has GGUF version " + Integer.toUnsignedString(version) + "; supported: 2 and 3");
            }
            long tensors = u64("tensor count");
            long kvs = u64("key/value count");
            // Each tensor info takes at least 8+1+4+8+4+8 bytes, each key/value at least 8+1+4+1.
            if (tensors < 0 || tensors > file.byteSize() / 33) {
                throw invalid(path, "is truncated or corrupt: it declares " + Long.toUnsignedString(tensors) + " tensors, impossible in " + file.byteSize() + " bytes");
            }
            if (kvs < 0 || kvs > file.byteSize() / 14) {
                throw invalid(path, "is truncated or corrupt: it declares " + Long.toUnsignedString(kvs) + " key/values, impossible in " + file.byteSize() + " bytes");
            }
            Map<String, String> meta = new LinkedHashMap<>();
            long alignment = 32;
            for (long i = 0; i < kvs; i++) {
                String key = string("key of key/value " + i);
                int type = u32("type of " + key);
                String value = value(type, key);
                meta.put(key, value);
                if (key.equals("general.alignment")) {
                    // llama.cpp's gguf reader refuses any other type (and asserts on it when it writes)
                    if (type != 4) {
                        throw invalid(path, "has general.alignment of GGUF type " + type + ", not u32");
                    }
                    alignment = counts.get(key);
                    if (alignment == 0 || Long.bitCount(alignment) != 1) {
                        throw invalid(path, "has general.alignment " + value + ", not a power of two");
                    }
                }
            }
            if (weights) {
                checkCounts(meta.get("general.architecture"));
            }
            long maxOffset = 0;
            for (long i = 0; i < tensors; i++) {
                String name = string("name of tensor " + i);
                int dims = u32("dimension count of tensor " + name);
                if (dims < 1 || dims > MAX_DIMS) {
                    throw invalid(path, "tensor " + name + " has " + dims + " dimensions (1 to " + MAX_DIMS + " allowed)");
                }
                for (int d = 0; d < dims; d++) {
                    long n = u64("dimension " + d + " of tensor " + name);
                    if (n <= 0 || n > (1L << 40)) {
                        throw invalid(path, "tensor " + name + " has an impossible dimension " + Long.toUnsignedString(n));
                    }
                }
                int type = u32("type of tensor " + name);
                if (type < 0 || type >= GGML_TYPE_COUNT) {
                    throw invalid(path, "tensor " + name + " has unknown type " + type);
                }
                long offset = u64("offset of tensor " + name);
                if (offset < 0 || offset % alignment != 0) {
                    throw invalid(path, "tensor " + name + " has a misaligned or impossible data offset " + Long.toUnsignedString(offset));
                }
                maxOffset = Math.max(maxOffset, offset);
            }
            long dataStart = (pos + alignment - 1) / alignment * alignment;
            if (tensors > 0 && dataStart + maxOffset >= file.byteSize()) {
                throw invalid(path, "is truncated: tensor data would start at byte " + (dataStart + maxOffset)
                        + " but the file has " + file.byteSize() + " bytes");
            }
            return new Info(path, file.byteSize(), version, tensors, Map.copyOf(meta));
        }

        /**
         * The counts {@code llama_model_base::load_hparams} asserts on ({@code src/llama-model.cpp}):
         * layers 1..512, next-token layers at most the layers, experts at most 1024, experts used
         * (per layer: the largest) at most the experts and some when there are experts, expert groups
         * fewer than the experts and dividing them, groups used some and fewer than the groups. Only
         * values of the type llama.cpp reads (u32, or an array of u32 / i32 for the experts used) are
         * checked: it refuses another type with an error. A vocabulary-only load and a CLIP file read
         * none of them.
         */
        private void checkCounts(String arch) {
            if (arch == null || arch.equals("clip")) {
                return;
            }
            Long layers = counts.get(arch + ".block_count");
            if (layers != null && (layers < 1 || layers > MAX_LAYERS)) {
                throw hyper(arch + ".block_count " + layers + " is outside 1.." + MAX_LAYERS);
            }
            Long nextn = counts.get(arch + ".nextn_predict_layers");
            if (nextn != null && layers != null && nextn > layers) {
                throw hyper(arch + ".nextn_predict_layers " + nextn + " exceeds the " + layers + " layers");
            }
            long experts = counts.getOrDefault(arch + ".expert_count", 0L);
            long used = counts.getOrDefault(arch + ".expert_used_count", 0L);
            long groups = counts.getOrDefault(arch + ".expert_group_count", 0L);
            long groupsUsed = counts.getOrDefault(arch + ".expert_group_used_count", 0L);
            if (experts > MAX_EXPERTS) {
                throw hyper(arch + ".expert_count " + experts + " exceeds " + MAX_EXPERTS);
            }
            if (used > experts) {
                throw hyper(arch + ".expert_used_count " + used + " exceeds expert_count " + experts);
            }
            if (experts > 0) {
                if (used == 0 || groups >= experts) {
                    throw hyper(arch + " has " + experts + " experts, " + used + " used, in " + groups + " groups");
                }
                if (groups > 1 && (experts % groups != 0 || groupsUsed == 0 || groupsUsed >= groups)) {
                    throw hyper(arch + " has " + experts + " experts in " + groups + " groups, " + groupsUsed + " groups used");
                }
            } else if (groups != 0) {
                throw hyper(arch + " has " + groups + " expert groups but no experts");
            }
        }

        private InvalidModelFileException hyper(String why) {
            return invalid(path, "is corrupt: " + why + " (llama.cpp would abort the process)");
        }

        private String value(int type, String key) {
            return switch (type) {
                case 0 -> Integer.toString(Byte.toUnsignedInt(bytes(1, key)[0]));
                case 1 -> Byte.toString(bytes(1, key)[0]);
                case 2 -> Integer.toString(Short.toUnsignedInt(shortAt(key)));
                case 3 -> Short.toString(shortAt(key));
                case 4 -> {
                    long v = Integer.toUnsignedLong(u32(key));
                    counts.put(key, v);
                    yield Long.toString(v);
                }
                case 5 -> Integer.toString(u32(key));
                case 6 -> Float.toString(Float.intBitsToFloat(u32(key)));
                case 7 -> Boolean.toString(bytes(1, key)[0] != 0);
                case 8 -> string(key);
                case 9 -> array(key);
                case 10 -> Long.toUnsignedString(u64(key));
                case 11 -> Long.toString(u64(key));
                case 12 -> Double.toString(Double.longBitsToDouble(u64(key)));
                default -> throw invalid(path, "key " + key + " has unknown value type " + type);
            };
        }

        private String array(String key) {
            int type = u32("element type of " + key);
            long n = u64("length of " + key);
            if (n < 0 || n > file.byteSize()) {
                throw invalid(path, "array " + key + " declares " + Long.toUnsignedString(n) + " elements");
            }
            int fixed = switch (type) {
                case 0, 1, 7 -> 1;
                case 2, 3 -> 2;
                case 4, 5, 6 -> 4;
                case 10, 11, 12 -> 8;
                default -> -1;
            };
            if (fixed > 0) {
                need(n * fixed, key);
                if (type == 4 || type == 5) {
                    long max = 0;
                    for (long i = 0; i < n; i++) {
                        int v = file.get(U32, pos + 4 * i);
                        max = Math.max(max, type == 4 ? Integer.toUnsignedLong(v) : v);
                    }
                    counts.put(key, max);
                }
                pos += n * fixed;
            } else if (type == 8) {
                // llama.cpp asserts (aborts) when two tokens have the same text; an empty one becomes "[EMPTY_<id>]"
                java.util.Set<String> seen = key.equals(TOKENS) ? new java.util.HashSet<>() : null;
                for (long i = 0; i < n; i++) {
                    long len = u64("string " + i + " of " + key);
                    need(len, key);
                    if (seen != null) {
                        // compared byte for byte, as llama.cpp's std::string keys are (ISO-8859-1 maps bytes to chars one to one)
                        byte[] bytes = len == 0 ? ("[EMPTY_" + i + "]").getBytes(StandardCharsets.ISO_8859_1)
                                : file.asSlice(pos, len).toArray(ValueLayout.JAVA_BYTE);
                        if (!seen.add(new String(bytes, StandardCharsets.ISO_8859_1))) {
                            throw invalid(path, "is corrupt: token " + i + " of " + key + " repeats an earlier token's text "
                                    + quoted(new String(bytes, StandardCharsets.UTF_8)) + " (llama.cpp would abort the process)");
                        }
                    }
                    pos += len;
                }
            } else {
                throw invalid(path, "array " + key + " has unsupported element type " + type);
            }
            return "[" + typeName(type) + " x " + n + "]";
        }

        private static String quoted(String token) {
            StringBuilder b = new StringBuilder("\"");
            token.codePoints().limit(40).forEach(c -> {
                if (c < 0x20 || c == 0x7f) {
                    b.append(String.format("\\x%02x", c));
                } else {
                    b.appendCodePoint(c);
                }
            });
            return b.append(token.length() > 40 ? "...\"" : "\"").toString();
        }

        private static String typeName(int type) {
            return switch (type) {
                case 0 -> "u8"; case 1 -> "i8"; case 2 -> "u16"; case 3 -> "i16"; case 4 -> "u32";
                case 5 -> "i32"; case 6 -> "f32"; case 7 -> "bool"; case 8 -> "string";
                case 10 -> "u64"; case 11 -> "i64"; case 12 -> "f64"; default -> "type" + type;
            };
        }

        private String string(String what) {
            long len = u64("length of " + what);
            if (len < 0 || len > MAX_STRING) {
                throw invalid(path, "has an impossible string length " + Long.toUnsignedString(len) + " for " + what);
            }
            byte[] b = bytes(len, what);
            return new String(b, StandardCharsets.UTF_8);
        }

        private byte[] bytes(long n, String what) {
            need(n, what);
            byte[] b = file.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE);
            pos += n;
            return b;
        }

        private short shortAt(String what) {
            byte[] b = bytes(2, what);
            return (short) ((b[0] & 0xff) | (b[1] << 8));
        }

        private int u32(String what) {
            need(4, what);
            int v = file.get(U32, pos);
            pos += 4;
            return v;
        }

        private long u64(String what) {
            need(8, what);
            long v = file.get(U64, pos);
            pos += 8;
            return v;
        }

        private void need(long n, String what) {
            if (n < 0 || pos + n > file.byteSize()) {
                throw invalid(path, "is truncated or corrupt: " + what + " runs past the end of the file (byte "
                        + pos + " of " + file.byteSize() + ")");
            }
        }
    }
}
