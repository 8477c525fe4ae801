package ai.llmref.llama;

import java.util.Map;

/**
 * Where a loaded model's weights went, as llama.cpp reported while loading it.
 *
 * @param offloadedLayers layers placed on GPU devices
 * @param totalLayers     layers that could have been offloaded
 * @param bufferBytes     model buffer size per buffer name ({@code CPU_Mapped}, {@code CUDA0} ...)
 */
public record ModelPlacement(int offloadedLayers, int totalLayers, Map<String, Long> bufferBytes) {

    /** True when every offloadable layer is on a GPU. */
    public boolean fullyOnGpu() {
        return totalLayers > 0 && offloadedLayers == totalLayers;
    }

    /** True when nothing was offloaded: the model runs on the CPU. */
    public boolean cpuOnly() {
        return offloadedLayers == 0;
    }
}
