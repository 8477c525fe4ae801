package ai.llmref.llama;

/**
 * How to load a model.
 *
 * @param gpuLayers layers to offload to GPUs: {@code -1} all, {@code 0} none (CPU only)
 * @param mainGpu   GPU used for the whole model when {@code splitMode} is {@link SplitMode#NONE}
 * @param splitMode how to spread the model over several GPUs
 * @param loadMode  mmap / mlock / plain reads
 * @param vocabOnly load the vocabulary alone (tokenizer use), no weights
 * @param progress  called with 0..1 while loading; return {@code false} to cancel; may be null
 * @param tensorSplit the share of the model (layers, or rows) each GPU takes, in device order
 *                  (e.g. {@code {3, 1}}); null: in proportion to each device's free memory. At most
 *                  {@code llama_max_devices()} entries (checked when loading), none negative, not all 0
 */
public record ModelParams(int gpuLayers, int mainGpu, SplitMode splitMode, LoadMode loadMode,
                          boolean vocabOnly, LoadProgress progress, float[] tensorSplit) {

    /**
     * llama.cpp's split modes: NONE (the whole model on {@code mainGpu}), LAYER (layers and KV cache
     * spread over the GPUs), ROW (the weights' rows spread, where the backend supports it), TENSOR
     * (tensor parallelism; needs flash attention).
     */
    public enum SplitMode { NONE, LAYER, ROW, TENSOR }

    public enum LoadMode {
        /** Let llama.cpp choose from the device's capabilities. */
        AUTO(-1), NONE(0), MMAP(1), MLOCK(2), MMAP_MLOCK(3);

        final int nativeValue;

        LoadMode(int nativeValue) {
            this.nativeValue = nativeValue;
        }
    }

    /** Load progress callback; it runs on the loading thread. */
    @FunctionalInterface
    public interface LoadProgress {
        /** @return {@code false} to cancel the load */
        boolean onProgress(float fraction);
    }

    public ModelParams {
        if (gpuLayers < -1) {
            throw new IllegalArgumentException("gpuLayers must be -1 (all) or >= 0, got " + gpuLayers);
        }
        if (mainGpu < 0) {
            throw new IllegalArgumentException("mainGpu must be >= 0, got " + mainGpu);
        }
        if (splitMode == null || loadMode == null) {
            throw new IllegalArgumentException("splitMode and loadMode must not be null");
        }
        if (tensorSplit != null) {
            tensorSplit = tensorSplit.clone();
            float sum = 0;
            for (float f : tensorSplit) {
                if (!(f >= 0) || Float.isInfinite(f)) {
                    throw new IllegalArgumentException("tensorSplit entries must be finite and not negative, got "
                            + java.util.Arrays.toString(tensorSplit));
                }
                sum += f;
            }
            if (tensorSplit.length == 0 || sum <= 0) {
                throw new IllegalArgumentException("tensorSplit must give some device a share, got " + java.util.Arrays.toString(tensorSplit));
            }
        }
    }

    @Override
    public float[] tensorSplit() {
        return tensorSplit == null ? null : tensorSplit.clone();
    }

    /** All layers on the GPU when there is one, mmap, no progress callback. */
    public static ModelParams defaults() {
        return new ModelParams(-1, 0, SplitMode.LAYER, LoadMode.MMAP, false, null, null);
    }

    public ModelParams withGpuLayers(int n) {
        return new ModelParams(n, mainGpu, splitMode, loadMode, vocabOnly, progress, tensorSplit);
    }

    public ModelParams withMainGpu(int gpu) {
        return new ModelParams(gpuLayers, gpu, splitMode, loadMode, vocabOnly, progress, tensorSplit);
    }

    public ModelParams withSplitMode(SplitMode mode) {
        return new ModelParams(gpuLayers, mainGpu, mode, loadMode, vocabOnly, progress, tensorSplit);
    }

    public ModelParams withLoadMode(LoadMode mode) {
        return new ModelParams(gpuLayers, mainGpu, splitMode, mode, vocabOnly, progress, tensorSplit);
    }

    public ModelParams withVocabOnly(boolean only) {
        return new ModelParams(gpuLayers, mainGpu, splitMode, loadMode, only, progress, tensorSplit);
    }

    public ModelParams withProgress(LoadProgress callback) {
        return new ModelParams(gpuLayers, mainGpu, splitMode, loadMode, vocabOnly, callback, tensorSplit);
    }

    /** Each GPU's share of the model (see the record's {@code tensorSplit}); null for the default. */
    public ModelParams withTensorSplit(float... shares) {
        return new ModelParams(gpuLayers, mainGpu, splitMode, loadMode, vocabOnly, progress, shares);
    }
}
