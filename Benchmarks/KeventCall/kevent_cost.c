/*
 * The cost of one kevent() call through the deployable library (Benchmarks/KeventCall/run.sh):
 *
 *   empty poll    kevent(kq, NULL, 0, &ev, 1, &zero) on a kqueue with nothing registered
 *   user event    kevent(kq, &trigger, 1, &ev, 1, &zero): an EV_CLEAR user event triggered
 *                 and received in the same call
 *
 * Each is timed through kevent(), as a program calls it. Given the engine library's path
 * (the split library of scripts/build-clib.sh), each is also timed calling the engine's entry
 * point kqueue_engine_kevent directly (found with dlopen(RTLD_NOLOAD) + dlsym once kqueue()
 * has loaded it): the difference is what the front's kevent() adds (one load and an indirect
 * call). ROUNDS rounds of CALLS calls each, the variants interleaved in every round; prints
 * the median over the rounds of the ns per call, and of the difference kevent() minus entry
 * point within each round (the front's cost).
 *
 *   kevent_cost [ENGINE [front|engine N]]
 *
 * With `front` or `engine` and N after ENGINE it only makes N user-event calls, through
 * kevent() or the entry point, and prints nothing (ENGINE `-`: a one-file library, kevent()
 * only): run.sh counts the instructions of two
 * such runs with valgrind (callgrind), whose difference over N is what the front adds per
 * call, exactly, whatever else runs on the machine (the wall-clock figures move with it).
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 31
#define CALLS 100000

typedef int (*kevent_fn)(int, const struct kevent *, int, struct kevent *, int, const struct timespec *);

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const struct timespec zero = {0, 0};

static double empty_poll(kevent_fn call, int kq) {
    struct kevent event;
    double start = now_ns();
    for (int i = 0; i < CALLS; i++) {
        if (call(kq, NULL, 0, &event, 1, &zero) != 0) exit(1);
    }
    return (now_ns() - start) / CALLS;
}

static double user_event(kevent_fn call, int kq) {
    struct kevent trigger, event;
    EV_SET(&trigger, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    double start = now_ns();
    for (int i = 0; i < CALLS; i++) {
        if (call(kq, &trigger, 1, &event, 1, &zero) != 1) exit(1);
    }
    return (now_ns() - start) / CALLS;
}

int main(int argc, char **argv) {
    int empty = kqueue(), user = kqueue();
    if (empty < 0 || user < 0) {
        perror("kqueue");
        return 1;
    }
    struct kevent add;
    EV_SET(&add, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if (kevent(user, &add, 1, NULL, 0, NULL) != 0) return 1;
    kevent_fn direct = NULL;
    if (argc > 3 && argv[1][0] == '-') {
        struct kevent trigger, event;
        EV_SET(&trigger, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        for (long i = atol(argv[3]); i > 0; i--) {
            if (kevent(user, &trigger, 1, &event, 1, &zero) != 1) return 1;
        }
        return 0;
    }
    if (argc > 1) {
        void *engine = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
        direct = engine ? (kevent_fn)dlsym(engine, "kqueue_engine_kevent") : NULL;
        if (direct == NULL) {
            fprintf(stderr, "kevent_cost: %s is not loaded or has no kqueue_engine_kevent\n", argv[1]);
            return 1;
        }
    }
    if (direct && argc > 3) {
        kevent_fn call = argv[2][0] == 'f' ? kevent : direct;
        struct kevent trigger, event;
        EV_SET(&trigger, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        for (long i = atol(argv[3]); i > 0; i--) {
            if (call(user, &trigger, 1, &event, 1, &zero) != 1) return 1;
        }
        return 0;
    }
    static double times[4][ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        times[0][round] = empty_poll(kevent, empty);
        times[1][round] = user_event(kevent, user);
        if (direct) {
            times[2][round] = empty_poll(direct, empty);
            times[3][round] = user_event(direct, user);
        }
    }
    /* The front's own cost, paired within each round (so that a slower moment of the machine
     * shows in both halves of a difference, not in one variant). */
    static double added[2][ROUNDS];
    if (direct) {
        for (int round = 0; round < ROUNDS; round++) {
            added[0][round] = times[0][round] - times[2][round];
            added[1][round] = times[1][round] - times[3][round];
        }
    }
    static const char *names[4] = {"empty poll, kevent()", "user event, kevent()",
                                   "empty poll, engine entry point", "user event, engine entry point"};
    for (int k = 0; k < (direct ? 4 : 2); k++) {
        qsort(times[k], ROUNDS, sizeof times[k][0], compare);
        printf("%-32s %7.1f ns per call (p10 %.1f, p90 %.1f)\n", names[k], times[k][ROUNDS / 2],
               times[k][ROUNDS / 10], times[k][ROUNDS * 9 / 10]);
    }
    for (int k = 0; direct && k < 2; k++) {
        qsort(added[k], ROUNDS, sizeof added[k][0], compare);
        printf("%-32s %+7.1f ns per call (p10 %+.1f, p90 %+.1f)\n",
               k == 0 ? "empty poll, front's cost" : "user event, front's cost", added[k][ROUNDS / 2],
               added[k][ROUNDS / 10], added[k][ROUNDS * 9 / 10]);
    }
    close(empty);
    close(user);
    return 0;
}
