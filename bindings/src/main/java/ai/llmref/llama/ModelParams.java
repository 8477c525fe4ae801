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
 */
public record ModelParams(int gpuLayers, int mainGpu, SplitMode splitMode, LoadMode loadMode,
                          boolean vocabOnly, LoadProgress progress) {

    public enum SplitMode { NONE, LAYER, ROW }

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
    }

    /** All layers on the GPU when there is one, mmap, no progress callback. */
    public static ModelParams defaults() {
        return new ModelParams(-1, 0, SplitMode.LAYER, LoadMode.MMAP, false, null);
    }

    public ModelParams withGpuLayers(int n) {
        return new ModelParams(n, mainGpu, splitMode, loadMode, vocabOnly, progress);
    }

    public ModelParams withMainGpu(int gpu) {
        return new ModelParams(gpuLayers, gpu, splitMode, loadMode, vocabOnly, progress);
    }

    public ModelParams withSplitMode(SplitMode mode) {
        return new ModelParams(gpuLayers, mainGpu, mode, loadMode, vocabOnly, progress);
    }

    public ModelParams withLoadMode(LoadMode mode) {
        return new ModelParams(gpuLayers, mainGpu, splitMode, mode, vocabOnly, progress);
    }

    public ModelParams withVocabOnly(boolean only) {
        return new ModelParams(gpuLayers, mainGpu, splitMode, loadMode, only, progress);
    }

    public ModelParams withProgress(LoadProgress callback) {
        return new ModelParams(gpuLayers, mainGpu, splitMode, loadMode, vocabOnly, callback);
    }
}
