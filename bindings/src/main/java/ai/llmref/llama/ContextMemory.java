package ai.llmref.llama;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The memory a context took besides the model's weights, as llama.cpp reported while creating it:
 * what to add to {@link ModelPlacement#bufferBytes()} to know what a device holds.
 *
 * @param kvBytes      KV cache per buffer name ({@code CPU}, {@code CUDA0} ...): the sequences'
 *                     keys and values (recurrent state too, for models that keep one); it scales with
 *                     the context size and the KV cache types
 * @param computeBytes the scheduler's compute buffers per buffer name (the graph's intermediate
 *                     tensors; they scale with the micro-batch size)
 */
public record ContextMemory(Map<String, Long> kvBytes, Map<String, Long> computeBytes) {
    private static final Pattern KV = Pattern.compile("(\\S+) (?:KV|RS) buffer size =\\s+([0-9.]+) MiB");
    private static final Pattern COMPUTE = Pattern.compile("(\\S+) compute buffer size =\\s+([0-9.]+) MiB");

    public ContextMemory {
        kvBytes = Map.copyOf(kvBytes);
        computeBytes = Map.copyOf(computeBytes);
    }

    public long kvTotal() {
        return kvBytes.values().stream().mapToLong(Long::longValue).sum();
    }

    public long computeTotal() {
        return computeBytes.values().stream().mapToLong(Long::longValue).sum();
    }

    /**
     * Reads llama.cpp's lines from creating a context. KV lines add up (a model with sliding-window
     * layers has two caches on the same buffer); a compute buffer is reported again each time the
     * scheduler reserves, so its last size counts. Sizes are printed in MiB with two decimals.
     */
    static ContextMemory fromLog(List<String> lines) {
        Map<String, Long> kv = new LinkedHashMap<>();
        Map<String, Long> compute = new LinkedHashMap<>();
        for (String line : lines) {
            Matcher k = KV.matcher(line);
            if (k.find()) {
                kv.merge(k.group(1), mib(k.group(2)), Long::sum);
            }
            Matcher c = COMPUTE.matcher(line);
            if (c.find()) {
                compute.put(c.group(1), mib(c.group(2)));
            }
        }
        return new ContextMemory(kv, compute);
    }

    private static long mib(String text) {
        return Math.round(Double.parseDouble(text) * 1024 * 1024);
    }
}
