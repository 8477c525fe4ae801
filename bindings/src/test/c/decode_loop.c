/*
 * llama-bench's prompt and generation tests written again as a plain C program over llama.h, for
 * scripts/bench-bindings.sh --c-loop: the same calls as the Java benchmark's raw-bindings loop
 * (DecodeBenchmark), in a process without a JVM. Beside llama-bench and the Java process it tells
 * whether a gap between the two belongs to the JVM process or to the calls; each generated token's
 * time is split into the llama_decode call (on a GPU: until the work is queued) and the
 * llama_synchronize wait.
 *
 * Usage: decode_loop MODEL BACKEND_DIR N_GPU_LAYERS THREADS N_PROMPT N_GEN REPS LABEL
 * Context as llama-bench's to_llama_cparams(): n_ctx = N_PROMPT or N_GEN (one test each), n_batch
 * 2048, n_ubatch 512, flash attention auto, F16 K/V cache, THREADS for both phases, perf counters
 * off; the model as llama-bench loads it (mmap, N_GPU_LAYERS). Each test: the memory cleared, one
 * warm-up run, then REPS runs each after clearing the memory (pp: N_PROMPT tokens in one batch of
 * n_batch, logits for the last; tg: N_GEN single tokens, the first the BOS when the vocabulary
 * adds one, the rest random, llama_synchronize after each, as llama-bench's test_gen).
 * Prints one JSON line per result to stdout, in DecodeBenchmark's --jsonl format (impl "c").
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *user_data) {
    (void) level;
    (void) text;
    (void) user_data;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void print_result(const char *label, const char *model, const char *test, const char *variant, int n_prompt,
                         int n_gen, int threads, const char *unit, const double *v, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += v[i];
    }
    double avg = sum / n;
    double var = 0;
    for (int i = 0; i < n; i++) {
        var += (v[i] - avg) * (v[i] - avg);
    }
    double sd = n > 1 ? var / (n - 1) : 0;
    for (int k = 0; k < 40 && sd > 0; k++) { /* square root by Newton's method: no libm needed */
        sd = 0.5 * (sd + var / (n - 1) / sd);
    }
    printf("{\"impl\": \"c\", \"label\": \"%s\", \"model_filename\": \"%s\", \"test\": \"%s\", \"variant\": \"%s\", "
           "\"n_prompt\": %d, \"n_gen\": %d, \"n_threads\": %d, \"n_batch\": 2048, \"n_ubatch\": 512, "
           "\"flash_attn\": \"AUTO\", \"unit\": \"%s\", \"samples_ts\": [",
           label, model, test, variant, n_prompt, n_gen, threads, unit);
    for (int i = 0; i < n; i++) {
        printf("%s%.6f", i ? ", " : "", v[i]);
    }
    printf("], \"avg_ts\": %.6f, \"stddev_ts\": %.6f}\n", avg, sd);
}

static struct llama_context *new_context(struct llama_model *model, int n_ctx, int threads) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) n_ctx;
    cp.n_batch = 2048;
    cp.n_ubatch = 512;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.swa_full = false;
    cp.no_perf = true;
    return llama_init_from_model(model, cp);
}

/* One prompt run: N_PROMPT tokens (BOS first when the vocabulary adds one, then random), logits for the last. */
static int prompt_run(struct llama_context *ctx, const struct llama_vocab *vocab, int n_prompt) {
    int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token *tokens = malloc(sizeof(llama_token) * (size_t) n_prompt);
    if (tokens == NULL) {
        return 1;
    }
    for (int i = 0; i < n_prompt; i++) {
        tokens[i] = i == 0 && llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : rand() % n_vocab;
    }
    int rc = 0;
    for (int done = 0; done < n_prompt && rc == 0; done += 2048) {
        int n = n_prompt - done < 2048 ? n_prompt - done : 2048;
        rc = llama_decode(ctx, llama_batch_get_one(tokens + done, n));
    }
    llama_synchronize(ctx);
    free(tokens);
    return rc;
}

/* One generation run of N_GEN single tokens; adds the time of the llama_decode calls and of the waits. */
static int gen_run(struct llama_context *ctx, const struct llama_vocab *vocab, int n_gen, double *call_us, double *wait_us) {
    int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token token = llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : rand() % n_vocab;
    for (int i = 0; i < n_gen; i++) {
        double t0 = now_us();
        if (llama_decode(ctx, llama_batch_get_one(&token, 1)) != 0) {
            return 1;
        }
        double t1 = now_us();
        llama_synchronize(ctx);
        double t2 = now_us();
        *call_us += t1 - t0;
        *wait_us += t2 - t1;
        token = rand() % n_vocab;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s MODEL BACKEND_DIR N_GPU_LAYERS THREADS N_PROMPT N_GEN REPS LABEL\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    int n_gpu_layers = atoi(argv[3]);
    int threads = atoi(argv[4]);
    int n_prompt = atoi(argv[5]);
    int n_gen = atoi(argv[6]);
    int reps = atoi(argv[7]);
    const char *label = argv[8];
    if (threads < 1 || n_prompt < 0 || n_gen < 0 || n_prompt + n_gen == 0 || reps < 1 || reps > 10000) {
        fprintf(stderr, "decode_loop: bad numbers (threads >= 1, prompt and gen >= 0 and not both 0, 1 <= reps <= 10000)\n");
        return 2;
    }
    llama_log_set(quiet, NULL);
    ggml_backend_load_all_from_path(argv[2]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = n_gpu_layers;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (model == NULL) {
        fprintf(stderr, "decode_loop: cannot load %s\n", model_path);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    double *ts = malloc(sizeof(double) * (size_t) reps);
    double *call = malloc(sizeof(double) * (size_t) reps);
    double *wait = malloc(sizeof(double) * (size_t) reps);
    if (ts == NULL || call == NULL || wait == NULL) {
        return 1;
    }
    srand(1234);
    if (n_prompt > 0) {
        struct llama_context *ctx = new_context(model, n_prompt, threads);
        if (ctx == NULL) {
            fprintf(stderr, "decode_loop: cannot create a context\n");
            return 1;
        }
        llama_memory_clear(llama_get_memory(ctx), false);
        if (prompt_run(ctx, vocab, n_prompt) != 0) { /* warm-up */
            fprintf(stderr, "decode_loop: llama_decode failed\n");
            return 1;
        }
        for (int r = 0; r < reps; r++) {
            llama_memory_clear(llama_get_memory(ctx), false);
            double t0 = now_us();
            if (prompt_run(ctx, vocab, n_prompt) != 0) {
                fprintf(stderr, "decode_loop: llama_decode failed\n");
                return 1;
            }
            ts[r] = n_prompt / ((now_us() - t0) / 1e6);
        }
        print_result(label, model_path, "pp", "c-loop", n_prompt, 0, threads, "t/s", ts, reps);
        llama_free(ctx);
    }
    if (n_gen > 0) {
        struct llama_context *ctx = new_context(model, n_gen, threads);
        if (ctx == NULL) {
            fprintf(stderr, "decode_loop: cannot create a context\n");
            return 1;
        }
        double c = 0, w = 0;
        llama_memory_clear(llama_get_memory(ctx), false);
        if (gen_run(ctx, vocab, 1, &c, &w) != 0) { /* warm-up: one token, as llama-bench */
            fprintf(stderr, "decode_loop: llama_decode failed\n");
            return 1;
        }
        for (int r = 0; r < reps; r++) {
            llama_memory_clear(llama_get_memory(ctx), false);
            c = 0;
            w = 0;
            double t0 = now_us();
            if (gen_run(ctx, vocab, n_gen, &c, &w) != 0) {
                fprintf(stderr, "decode_loop: llama_decode failed\n");
                return 1;
            }
            ts[r] = n_gen / ((now_us() - t0) / 1e6);
            call[r] = c / n_gen;
            wait[r] = w / n_gen;
        }
        print_result(label, model_path, "tg", "c-loop", 0, n_gen, threads, "t/s", ts, reps);
        print_result(label, model_path, "profile", "c-loop: llama_decode call", 0, n_gen, threads, "us/token", call, reps);
        print_result(label, model_path, "profile", "c-loop: llama_synchronize wait", 0, n_gen, threads, "us/token", wait, reps);
        llama_free(ctx);
    }
    llama_model_free(model);
    free(ts);
    free(call);
    free(wait);
    return 0;
}
