package ai.llmref.llama;

/**
 * A ggml backend device as this process sees it.
 *
 * @param name        ggml's device name, e.g. {@code CPU} or {@code CUDA0}
 * @param description what the driver calls it, e.g. the CPU model or {@code NVIDIA H200}
 * @param type        CPU, GPU, integrated GPU or accelerator
 * @param freeBytes   free memory the device reports now
 * @param totalBytes  total memory of the device
 */
public record Device(String name, String description, Type type, long freeBytes, long totalBytes) {

    public enum Type {
        CPU, GPU, IGPU, ACCEL, UNKNOWN;

        static Type of(int ggmlType) {
            return switch (ggmlType) {
                case 0 -> CPU;
                case 1 -> GPU;
                case 2 -> IGPU;
                case 3 -> ACCEL;
                default -> UNKNOWN;
            };
        }
    }

    public boolean isGpu() {
        return type == Type.GPU || type == Type.IGPU;
    }
}
