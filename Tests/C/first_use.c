/*
 * The first call into the library. The deployable library (scripts/build-clib.sh) is two
 * files: the front, libkqueue.so.12, loads the engine on the first kqueue() or kqueuex()
 * (docs/C-LIBRARY.md, "Two files"). Each test starts in a fresh forked process that has not
 * called the library yet (kqtest.h's runner never does), so each one is a first use: from
 * kevent(), from kqueuex(), from several threads at once, in a fork child before and after
 * the parent loaded the engine. With the one-file debug library these hold as well.
 */
#include "kqtest.h"

#define U(x) ((void *)(uintptr_t)(x))

/* A user event added, triggered and received on `kq`: the engine works. */
static int user_event_round_trip(int kq, uintptr_t ident) {
    struct kevent change, event;
    EV_SET(&change, ident, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, U(ident));
    struct timespec zero = {0, 0};
    if (kevent(kq, &change, 1, &event, 1, &zero) != 1) return 0;
    return event.ident == ident && event.filter == EVFILT_USER && event.udata == U(ident);
}

TEST(test_first_use_kevent_before_any_kqueue_fails_ebadf) {
    /* No kqueue exists yet: every descriptor is "not a kqueue". */
    int fds[2];
    kq_pipe(fds);
    CHECK_ERRNO(kevent(fds[0], NULL, 0, NULL, 0, NULL), EBADF);
    CHECK_ERRNO(kevent(-1, NULL, 0, NULL, 0, NULL), EBADF);
    CHECK_ERRNO(kevent(1000, NULL, 0, NULL, 0, NULL), EBADF);
    close(fds[0]);
    close(fds[1]);
    /* ...and kqueue() still works afterwards. */
    int kq = kq_new();
    CHECK(user_event_round_trip(kq, 1));
    close(kq);
}

TEST(test_first_use_kqueuex_first) {
    int kq = (int)CHECK_SYS(kqueuex(KQUEUE_CLOEXEC));
    CHECK(user_event_round_trip(kq, 2));
    CHECK_ERRNO(kqueuex(0x80), EINVAL);
    close(kq);
}

#define RACERS 8

struct racer {
    pthread_barrier_t *barrier;
    int kq, error, works;
};

static void *race_first_kqueue(void *argument) {
    struct racer *racer = argument;
    pthread_barrier_wait(racer->barrier);
    racer->kq = kqueue();
    racer->error = racer->kq < 0 ? errno : 0;
    racer->works = racer->kq >= 0 && user_event_round_trip(racer->kq, 3);
    return NULL;
}

TEST(test_first_use_from_several_threads_at_once) {
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACERS);
    struct racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.barrier = &barrier, .kq = -1};
        CHECK_ERR(pthread_create(&threads[i], NULL, race_first_kqueue, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < RACERS; i++) {
        CHECK_MSG(racers[i].kq >= 0, "thread %d: kqueue() failed, errno %d %s", i, racers[i].error,
                  kq_errname(racers[i].error));
        CHECK_MSG(racers[i].works, "thread %d: no user event on its kqueue", i);
        for (int j = 0; j < i; j++) CHECK(racers[i].kq != racers[j].kq);
    }
    for (int i = 0; i < RACERS; i++) close(racers[i].kq);
}

static void child_creates_kqueue(void *argument) {
    int inherited = argument == NULL ? -1 : *(int *)argument;
    if (inherited >= 0) {
        /* The parent's kqueue is not inherited (SPEC.md 2). */
        CHECK_ERRNO(kevent(inherited, NULL, 0, NULL, 0, NULL), EBADF);
    }
    int kq = kq_new();
    CHECK(user_event_round_trip(kq, 4));
    close(kq);
}

TEST(test_first_use_in_a_fork_child_before_the_parent) {
    /* The child is the first to call the library: it loads the engine itself... */
    kq_run_child(child_creates_kqueue, NULL, 5000);
    /* ...and the parent, which had not, then does the same. */
    int kq = kq_new();
    CHECK(user_event_round_trip(kq, 5));
    close(kq);
}

TEST(test_first_use_fork_child_of_a_process_that_loaded_it) {
    int kq = kq_new();
    CHECK(user_event_round_trip(kq, 6));
    /* The engine is loaded and its fork handlers installed: the child closes the inherited
     * kqueue and can create its own. */
    kq_run_child(child_creates_kqueue, &kq, 5000);
    CHECK(user_event_round_trip(kq, 7));
    close(kq);
}

RUN_TESTS()
