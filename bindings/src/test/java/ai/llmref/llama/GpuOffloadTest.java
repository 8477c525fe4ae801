package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Where the model's layers really are. In CI (CPU build, {@code test.gpu-layers} 0) everything must
 * be on the CPU; on a GPU machine ({@code scripts/gpu-verify.sh} sets {@code test.expect-gpu=true}
 * and {@code test.gpu-layers=99}) every layer must be on a GPU device, its buffer must be named
 * after that device, and the device's free memory must drop by at least the model's buffer.
 */
class GpuOffloadTest {
    static final boolean EXPECT_GPU = Boolean.getBoolean("test.expect-gpu");

    @Test
    void layersAreWhereTheRunSaysTheyShouldBe() {
        LlamaBackend backend = LlamaBackend.initialize();
        List<Device> before = backend.devices();
        System.out.println("devices: " + before);
        try (LlamaModel model = LlamaModel.load(TestModels.stories(), TestModels.params());
             LlamaContext ctx = model.newContext(TestModels.small(1))) {
            ModelPlacement placement = model.placement();
            System.out.println("placement: " + placement);
            if (!EXPECT_GPU) {
                assertThat(placement.cpuOnly()).as("%s", placement).isTrue();
                assertThat(placement.bufferBytes().keySet()).allMatch(name -> name.startsWith("CPU"));
                return;
            }
            Device gpu = before.stream().filter(Device::isGpu).findFirst().orElse(null);
            assertThat(gpu).as("a GPU device is visible: %s", before).isNotNull();
            assertThat(gpu.totalBytes()).isPositive();
            assertThat(placement.fullyOnGpu()).as("every layer offloaded: %s", placement).isTrue();
            long onGpu = placement.bufferBytes().entrySet().stream().filter(e -> e.getKey().startsWith(gpu.name()))
                    .mapToLong(Map.Entry::getValue).sum();
            assertThat(onGpu).as("model bytes in %s buffers: %s", gpu.name(), placement.bufferBytes()).isPositive();
            // The context's KV cache and compute buffers go to the GPU too; decoding there works.
            int[] tokens = Generation.greedy(model, TestModels.small(1), "Once upon a time", 16);
            assertThat(tokens).isNotEmpty();
            Device after = backend.devices().stream().filter(d -> d.name().equals(gpu.name())).findFirst().orElseThrow();
            System.out.printf("%s free before %d, after %d (model buffer %d bytes)%n", gpu.name(), gpu.freeBytes(),
                    after.freeBytes(), onGpu);
            assertThat(gpu.freeBytes() - after.freeBytes()).as("GPU memory used by the model and context").isGreaterThanOrEqualTo(onGpu);
        }
    }
}
