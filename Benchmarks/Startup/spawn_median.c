/*
 * Start-up timer for Benchmarks/Startup/startup.sh: runs each program RUNS times, interleaved
 * (round r starts with program r mod N, so no program is always first after another), each
 * as posix_spawn + wait4, and prints per program the median and the 10th/90th percentile of
 * the wall time from spawn to reaped exit, and the median of the minor page faults of the
 * child (wait4's rusage). A program that does not exit 0 stops the run.
 *
 *   spawn_median RUNS PROGRAM...
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: spawn_median RUNS PROGRAM...\n");
        return 2;
    }
    int runs = atoi(argv[1]), count = argc - 2;
    if (runs < 1) return 2;
    double *times = calloc((size_t)runs * (size_t)count, sizeof *times);
    double *faults = calloc((size_t)runs * (size_t)count, sizeof *faults);
    if (!times || !faults) return 1;
    for (int round = 0; round < runs; round++) {
        for (int k = 0; k < count; k++) {
            int which = (round + k) % count;
            char *args[] = {argv[2 + which], NULL};
            pid_t pid;
            int status;
            struct rusage usage;
            double start = now_us();
            if (posix_spawn(&pid, argv[2 + which], NULL, NULL, args, environ) != 0) {
                perror(argv[2 + which]);
                return 1;
            }
            if (wait4(pid, &status, 0, &usage) != pid) return 1;
            times[which * runs + round] = now_us() - start;
            faults[which * runs + round] = (double)usage.ru_minflt;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "%s did not exit 0 (status %#x)\n", argv[2 + which], status);
                return 1;
            }
        }
    }
    for (int k = 0; k < count; k++) {
        double *t = times + k * runs, *f = faults + k * runs;
        qsort(t, (size_t)runs, sizeof *t, compare);
        qsort(f, (size_t)runs, sizeof *f, compare);
        printf("%s %.1f %.1f %.1f %.0f\n", argv[2 + k], t[runs / 2], t[runs / 10], t[runs * 9 / 10], f[runs / 2]);
    }
    return 0;
}
