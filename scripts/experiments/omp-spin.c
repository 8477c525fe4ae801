// How long libgomp's idle workers keep a core busy between parallel regions (docs/benchmarks.md,
// "CPU threads with the model on a GPU"). Each iteration runs one trivial parallel region (the
// input embeddings' lookup of a step whose layers are all on a GPU) and then waits GAP_US on the
// calling thread (the device computing), ITERATIONS times; the process's CPU time over the wall
// time is how many cores stayed busy while nothing but the wait was left.
//
//   gcc -O2 -fopenmp omp-spin.c -o /tmp/omp-spin && /tmp/omp-spin THREADS GAP_US ITERATIONS
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static volatile int sink;

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int gap_us = argc > 2 ? atoi(argv[2]) : 1000;
    int iterations = argc > 3 ? atoi(argv[3]) : 2000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iterations; i++) {
#pragma omp parallel num_threads(threads)
        { sink += omp_get_thread_num(); }
        usleep(gap_us);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double wall = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("threads %d, gap %d us, %d iterations: wall %.2f s, CPU %.2f s (%.2f cores busy)\n", threads, gap_us,
           iterations, wall, cpu, cpu / wall);
    return 0;
}
