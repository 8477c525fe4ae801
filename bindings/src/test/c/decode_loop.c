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
 * The prompt test's time is split the same way (the llama_decode calls, on a GPU the CPU's part of a
 * prompt: its batch split, inputs and the token embeddings' lookup, which stays on the CPU; then the
 * llama_synchronize wait), per prompt token, with the thread's minor page faults per prompt token.
 * Each generation repetition also counts, from getrusage(RUSAGE_THREAD), the calling thread's minor
 * page faults and its voluntary and involuntary context switches per token. The generation test
 * then runs once more on a thread of its own (variant "c-loop-thread", same context): the Java
 * benchmark decodes on a thread that is not the process's first, whose mallocs go to another of
 * glibc's arenas, and this tells whether that alone changes a token's time.
 * llama.cpp's log goes to stderr, but for the per-decode "CUDA Graph id ... reused" line, which is
 * counted, as are the other CUDA graph lines per prompt repetition and failed pinned-memory
 * allocations (rows of their own).
 * Prints one JSON line per result to stdout, in DecodeBenchmark's --jsonl format (impl "c").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

/* llama.cpp's log, counted by kind: the debug lines a CUDA build writes tell how a decode used its
   CUDA graphs ("CUDA Graph id ... reused" for every decode that replays one, others when one is
   captured again or given up), and a pinned-memory allocation that failed (llama.cpp then falls back
   to pageable memory, slower to copy to the device) is logged at debug level only. Every line but
   the per-decode "reused" one goes to stderr. */
static long log_graph_reused, log_graph_other, log_pinned;

static void log_line(enum ggml_log_level level, const char *text, void *user_data) {
    (void) level;
    (void) user_data;
    if (strstr(text, "CUDA Graph id") != NULL) {
        log_graph_reused++;
        return;
    }
    if (strstr(text, "CUDA graph") != NULL) {
        log_graph_other++;
    }
    if (strstr(text, "pinned memory") != NULL) {
        log_pinned++;
    }
    fputs(text, stderr);
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

/* One prompt run: N_PROMPT tokens (BOS first when the vocabulary adds one, then random), logits for the
   last; adds the time of the llama_decode calls and of the wait when call_us and wait_us are given. */
static int prompt_run(struct llama_context *ctx, const struct llama_vocab *vocab, int n_prompt, double *call_us,
                      double *wait_us) {
    int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token *tokens = malloc(sizeof(llama_token) * (size_t) n_prompt);
    if (tokens == NULL) {
        return 1;
    }
    for (int i = 0; i < n_prompt; i++) {
        tokens[i] = i == 0 && llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : rand() % n_vocab;
    }
    int rc = 0;
    double t0 = now_us();
    for (int done = 0; done < n_prompt && rc == 0; done += 2048) {
        int n = n_prompt - done < 2048 ? n_prompt - done : 2048;
        rc = llama_decode(ctx, llama_batch_get_one(tokens + done, n));
    }
    double t1 = now_us();
    llama_synchronize(ctx);
    double t2 = now_us();
    if (call_us != NULL) {
        *call_us += t1 - t0;
        *wait_us += t2 - t1;
    }
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

/* The calling thread's minor page faults, voluntary and involuntary context switches so far. */
static void thread_counts(long out[3]) {
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) {
        memset(&ru, 0, sizeof ru);
    }
    out[0] = ru.ru_minflt;
    out[1] = ru.ru_nvcsw;
    out[2] = ru.ru_nivcsw;
}

/* The generation test: a warm-up token, then REPS runs of N_GEN tokens, each after clearing the memory. */
struct gen_test {
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    int n_gen;
    int reps;
    double *ts, *call, *wait, *faults, *voluntary, *involuntary;
    int rc;
};

static void *gen_test_run(void *arg) {
    struct gen_test *t = arg;
    double c = 0, w = 0;
    llama_memory_clear(llama_get_memory(t->ctx), false);
    if (gen_run(t->ctx, t->vocab, 1, &c, &w) != 0) { /* warm-up: one token, as llama-bench */
        t->rc = 1;
        return NULL;
    }
    for (int r = 0; r < t->reps; r++) {
        long before[3], after[3];
        llama_memory_clear(llama_get_memory(t->ctx), false);
        c = 0;
        w = 0;
        thread_counts(before);
        double t0 = now_us();
        if (gen_run(t->ctx, t->vocab, t->n_gen, &c, &w) != 0) {
            t->rc = 1;
            return NULL;
        }
        double t1 = now_us();
        thread_counts(after);
        t->ts[r] = t->n_gen / ((t1 - t0) / 1e6);
        t->call[r] = c / t->n_gen;
        t->wait[r] = w / t->n_gen;
        t->faults[r] = (double) (after[0] - before[0]) / t->n_gen;
        t->voluntary[r] = (double) (after[1] - before[1]) / t->n_gen;
        t->involuntary[r] = (double) (after[2] - before[2]) / t->n_gen;
    }
    t->rc = 0;
    return NULL;
}

static void print_gen(const char *label, const char *model, const char *variant, int n_gen, int threads,
                      const struct gen_test *t) {
    char name[96];
    print_result(label, model, "tg", variant, 0, n_gen, threads, "t/s", t->ts, t->reps);
    snprintf(name, sizeof name, "%s: llama_decode call", variant);
    print_result(label, model, "profile", name, 0, n_gen, threads, "us/token", t->call, t->reps);
    snprintf(name, sizeof name, "%s: llama_synchronize wait", variant);
    print_result(label, model, "profile", name, 0, n_gen, threads, "us/token", t->wait, t->reps);
    snprintf(name, sizeof name, "%s: minor page faults (decoding thread)", variant);
    print_result(label, model, "profile", name, 0, n_gen, threads, "n/token", t->faults, t->reps);
    snprintf(name, sizeof name, "%s: voluntary context switches (decoding thread)", variant);
    print_result(label, model, "profile", name, 0, n_gen, threads, "n/token", t->voluntary, t->reps);
    snprintf(name, sizeof name, "%s: involuntary context switches (decoding thread)", variant);
    print_result(label, model, "profile", name, 0, n_gen, threads, "n/token", t->involuntary, t->reps);
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
    llama_log_set(log_line, NULL);
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
        if (prompt_run(ctx, vocab, n_prompt, NULL, NULL) != 0) { /* warm-up */
            fprintf(stderr, "decode_loop: llama_decode failed\n");
            return 1;
        }
        double *faults = malloc(sizeof(double) * (size_t) reps * 3);
        if (faults == NULL) {
            return 1;
        }
        double *graphs_reused = faults + reps, *graphs_other = faults + 2 * (size_t) reps;
        for (int r = 0; r < reps; r++) {
            long before[3], after[3];
            double c = 0, w = 0;
            llama_memory_clear(llama_get_memory(ctx), false);
            thread_counts(before);
            long reused0 = log_graph_reused, other0 = log_graph_other;
            double t0 = now_us();
            if (prompt_run(ctx, vocab, n_prompt, &c, &w) != 0) {
                fprintf(stderr, "decode_loop: llama_decode failed\n");
                return 1;
            }
            ts[r] = n_prompt / ((now_us() - t0) / 1e6);
            thread_counts(after);
            call[r] = c / n_prompt;
            wait[r] = w / n_prompt;
            faults[r] = (double) (after[0] - before[0]) / n_prompt;
            graphs_reused[r] = (double) (log_graph_reused - reused0);
            graphs_other[r] = (double) (log_graph_other - other0);
        }
        print_result(label, model_path, "pp", "c-loop", n_prompt, 0, threads, "t/s", ts, reps);
        print_result(label, model_path, "profile", "c-loop: prompt llama_decode call", n_prompt, 0, threads, "us/token", call, reps);
        print_result(label, model_path, "profile", "c-loop: prompt llama_synchronize wait", n_prompt, 0, threads, "us/token", wait, reps);
        print_result(label, model_path, "profile", "c-loop: prompt minor page faults (decoding thread)", n_prompt, 0, threads, "n/token",
                     faults, reps);
        print_result(label, model_path, "profile", "c-loop: prompt CUDA graph replays (log lines)", n_prompt, 0, threads, "n/run",
                     graphs_reused, reps);
        print_result(label, model_path, "profile", "c-loop: prompt other CUDA graph log lines", n_prompt, 0, threads, "n/run",
                     graphs_other, reps);
        free(faults);
        llama_free(ctx);
    }
    if (n_gen > 0) {
        struct llama_context *ctx = new_context(model, n_gen, threads);
        if (ctx == NULL) {
            fprintf(stderr, "decode_loop: cannot create a context\n");
            return 1;
        }
        double *more = malloc(sizeof(double) * (size_t) reps * 3);
        if (more == NULL) {
            return 1;
        }
        struct gen_test t = {ctx, vocab, n_gen, reps, ts, call, wait, more, more + reps, more + 2 * (size_t) reps, 1};
        gen_test_run(&t); /* on the process's first thread, as llama-bench */
        if (t.rc != 0) {
            fprintf(stderr, "decode_loop: llama_decode failed\n");
            return 1;
        }
        print_gen(label, model_path, "c-loop", n_gen, threads, &t);
        pthread_t thread;
        t.rc = 1;
        if (pthread_create(&thread, NULL, gen_test_run, &t) != 0 || pthread_join(thread, NULL) != 0) {
            fprintf(stderr, "decode_loop: cannot run a thread\n");
            return 1;
        }
        if (t.rc != 0) {
            fprintf(stderr, "decode_loop: llama_decode failed\n");
            return 1;
        }
        print_gen(label, model_path, "c-loop-thread", n_gen, threads, &t);
        free(more);
        llama_free(ctx);
    }
    for (int r = 0; r < reps; r++) {
        ts[r] = (double) log_pinned; /* the whole run's count, as a row of the same shape */
    }
    print_result(label, model_path, "profile", "c-loop: pinned-memory allocations failed (log lines)", n_prompt, n_gen, threads, "n",
                 ts, reps);
    llama_model_free(model);
    free(ts);
    free(call);
    free(wait);
    return 0;
}
