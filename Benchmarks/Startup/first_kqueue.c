/* The first kqueue() of a process, timed inside it (Benchmarks/Startup/startup.sh): with the
 * split library, it loads the engine (dlopen: map, relocate, run the Swift runtime's
 * initializers), so it costs what start-up no longer does. Prints the wall time of the first
 * and of a second kqueue() call in µs, and the minor page faults of the first. */
#include <sys/event.h>

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(void) {
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    double start = now_us();
    int first = kqueue();
    double middle = now_us();
    getrusage(RUSAGE_SELF, &after);
    double again = now_us();
    int second = kqueue();
    double end = now_us();
    if (first < 0 || second < 0) return 1;
    printf("%.1f %.1f %ld\n", middle - start, end - again, after.ru_minflt - before.ru_minflt);
    close(first);
    close(second);
    return 0;
}
