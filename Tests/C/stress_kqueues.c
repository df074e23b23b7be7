/*
 * Stress: 10,000 kqueue()/close() cycles. After them the process has exactly the
 * descriptors it had before (/proc/self/fd) and its resident memory is back to where it
 * started, within a small allocator slack (see the tolerances below).
 *
 * The cycles are not all empty: kqueues are created with kqueue() and kqueuex(), carry user
 * events, timers (a timerfd per kqueue), descriptor knotes on a pipe that outlives them,
 * a regular file (inotify, created on first use) and other kqueues (nesting); up to 8 are
 * open at once and they are closed out of creation order, so descriptor numbers are reused
 * in every pattern. SPEC.md 2 "Descriptor lifetime": closing a kqueue releases everything it
 * holds; a kqueue watched by another one may be closed first.
 *
 * Bounded: a few seconds natively (well under the 60 s the runner allows), the test itself
 * has a 50 s watchdog. Prints the figures. Resident memory is checked only without a
 * sanitizer or valgrind (their allocators keep freed memory on purpose); the descriptor
 * count is checked everywhere.
 */
#define KQ_TEST_TIMEOUT_S 50
#include "kqtest.h"


#include "stress.h"

/* ---- the cycles ---------------------------------------------------------------------- */

enum { CYCLES = 10000, SLOTS = 8, VARIANTS = 6 };

struct env {
    int pipe_r, pipe_w; /* a pipe with one byte in it: always readable */
    int file;           /* a regular file with data: always readable */
    int slot[SLOTS];
    int nests[SLOTS]; /* the kqueue in that slot watches other kqueues */
    int64_t events;
};

#define U(x) ((void *)(uintptr_t)(x))

/* Collects events until `want` have come (at most 1 s); returns how many came. */
static int collect(int kq, int want) {
    struct kevent ev[4];
    int got = 0;
    int64_t deadline = kq_now_ns() + 1000000000LL;
    while (got < want && kq_now_ns() < deadline) {
        int n = KQ_WAIT(kq, ev, 4, 100);
        for (int k = 0; k < n; k++) CHECK_MSG(!(ev[k].flags & EV_ERROR), "error event %s", kq_ev_str(&ev[k]));
        got += n;
    }
    CHECK_MSG(got == want, "%d events instead of %d", got, want);
    return got;
}

/* Creates one kqueue of the given variant in slot `s` (closing what was there). */
static void one_cycle(struct env *e, int i) {
    int s = i % SLOTS;
    if (e->slot[s] >= 0) {
        CHECK_SYS(close(e->slot[s]));
        e->slot[s] = -1;
    }
    int variant = (i / SLOTS) % VARIANTS;
    /* Closing an inotify instance that had a watch costs the kernel 10-20 ms (an fsnotify
     * grace period): one regular-file round in 16 keeps the test within seconds. */
    if (variant == 4 && (i / SLOTS / VARIANTS) % 16 != 0) variant = 0;
    int kq = variant % 2 ? (int)CHECK_SYS(kqueuex(KQUEUE_CLOEXEC)) : kq_new();
    struct kevent ev[4];
    switch (variant) {
    case 0: /* empty */
        break;
    case 1: /* a user event, triggered and collected */
        KQ_SET(kq, i, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_FFOR | 0x3, 7, U(i));
        KQ_SET(kq, i, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(i));
        CHECK_EQ_INT(KQ_WAIT(kq, ev, 4, 0), 1);
        CHECK_EQ_INT(ev[0].ident, (uintptr_t)i);
        e->events++;
        break;
    case 2: /* READ on a pipe that outlives the kqueue, and WRITE on its other end */
        KQ_SET(kq, e->pipe_r, EVFILT_READ, EV_ADD, 0, 0, U(i));
        KQ_SET(kq, e->pipe_w, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, U(i));
        e->events += collect(kq, 2);
        break;
    case 3: /* a oneshot timer that fires at once (a timerfd), and a periodic one left armed */
        KQ_SET(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_NSECONDS, 0, U(i));
        KQ_SET(kq, 2, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 3600, U(i));
        CHECK_EQ_INT(KQ_WAIT(kq, ev, 4, 1000), 1);
        CHECK_EQ_INT(ev[0].ident, 1);
        e->events++;
        break;
    case 4: /* a regular file (inotify on first use; see above) */
        KQ_SET(kq, e->file, EVFILT_READ, EV_ADD, 0, 0, U(i));
        CHECK_EQ_INT(KQ_WAIT(kq, ev, 4, 1000), 1);
        e->events++;
        break;
    case 5: /* nesting: watch the other open kqueues (not the nesting ones: epoll limits the
             * depth of nested epoll instances, see docs/GUARANTEES.md); most of them are
             * closed before this one */
        for (int k = 0; k < SLOTS; k++)
            if (e->slot[k] >= 0 && !e->nests[k]) KQ_SET(kq, e->slot[k], EVFILT_READ, EV_ADD, 0, 0, U(i));
        /* and something pending in this one */
        KQ_SET(kq, 0, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, U(i));
        break;
    }
    e->slot[s] = kq;
    e->nests[s] = variant == 5;
}

static void run_cycles(struct env *e, int cycles) {
    for (int s = 0; s < SLOTS; s++) e->slot[s] = -1;
    for (int i = 0; i < cycles; i++) one_cycle(e, i);
    for (int s = 0; s < SLOTS; s++)
        if (e->slot[s] >= 0) CHECK_SYS(close(e->slot[s]));
}

TEST(test_stress_10000_kqueue_close_cycles_descriptors_and_memory_back_to_start) {
    struct env e;
    memset(&e, 0, sizeof e);
    int p[2];
    kq_pipe(p);
    e.pipe_r = p[0];
    e.pipe_w = p[1];
    kq_write_all(e.pipe_w, "x", 1);
    char path[] = "/tmp/kqstress.XXXXXX";
    e.file = (int)CHECK_SYS(mkstemp(path));
    unlink(path);
    kq_write_all(e.file, "data", 4);
    CHECK_SYS(lseek(e.file, 0, SEEK_SET));

    /* Warm-up: one-time allocations (runtime metadata, registry, first inotify/timerfd use). */
    run_cycles(&e, SLOTS * VARIANTS * 4);
    struct stress_snapshot before = stress_snapshot();
    int64_t t0 = kq_now_ns();
    e.events = 0;
    run_cycles(&e, CYCLES);
    int64_t ms = (kq_now_ns() - t0) / 1000000;
    struct stress_snapshot after = stress_snapshot();
    printf("stress_kqueues: %d kqueue()/close() cycles (%lld events collected) in %lld ms\n", CYCLES,
           (long long)e.events, (long long)ms);
    stress_check_back_to_start("stress_kqueues", before, after);

    /* The long-lived descriptors are untouched and still work. */
    int kq = kq_new();
    KQ_SET(kq, e.pipe_r, EVFILT_READ, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 1);
    close(kq);
    close(e.pipe_r);
    close(e.pipe_w);
    close(e.file);
}

/* Closing a kqueue that another kqueue watches, and closing the watcher first: no
 * descriptor of either survives, in 2,000 rounds. */
TEST(test_stress_nested_kqueues_closed_in_both_orders_leave_no_descriptor) {
    int start = kq_fd_count();
    for (int i = 0; i < 2000; i++) {
        int inner = kq_new(), outer = kq_new();
        KQ_SET(inner, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
        KQ_SET(outer, inner, EVFILT_READ, EV_ADD, 0, 0, NULL);
        struct kevent ev;
        CHECK_ONE_EVENT_WITHIN(outer, &ev, 1000);
        CHECK_EQ_INT(ev.ident, (uintptr_t)inner);
        if (i % 2) {
            CHECK_SYS(close(inner));
            CHECK_NO_EVENT(outer);
            CHECK_SYS(close(outer));
        } else {
            CHECK_SYS(close(outer));
            CHECK_SYS(close(inner));
        }
    }
    CHECK_EQ_INT(kq_fd_count(), start);
}

RUN_TESTS()
