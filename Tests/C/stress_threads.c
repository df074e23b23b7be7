/*
 * Stress: 8 threads call kevent() on one kqueue while 3 others add, delete, close and reuse
 * the descriptors it watches, for a bounded time (RUN_MS). SPEC.md 2:
 *   - "Several threads may call kevent() on the same kqueue at once; an event is delivered
 *     to one of them, a oneshot exactly once";
 *   - "close(fd) of a watched descriptor removes every knote on that descriptor number ...
 *     no stale event from the old one may ever be returned" for a new descriptor with the
 *     same number;
 *   - EV_DELETE removes the knote: no event of it after the deletion.
 * And no deadlock: every thread finishes within a bounded time, and closing the kqueue
 * while 8 threads wait on it ends every wait (at the latest at its timeout).
 *
 * How staleness is detected: a global logical clock (one atomic counter). A mutator that
 * closes or deletes a watched descriptor stamps the registration's token with the clock
 * *after* close()/EV_DELETE returned; a waiter reads the clock *before* it calls kevent().
 * An event for token T returned by a call that started at clock c >= stamp(T) began after
 * T's knote was gone: a stale event. Registrations made on a descriptor whose source can
 * never become ready (an empty pipe whose writer stays open) must never fire at all: this
 * catches readiness of an old file reported under the reused number.
 *
 * Afterwards descriptors and resident memory are back to the start (tolerances below);
 * the figures are printed. Worker threads never CHECK; the main thread checks what they
 * recorded.
 */
#define KQ_TEST_TIMEOUT_S 50
#include "kqtest.h"

#include <sched.h>
#include <stdatomic.h>

#include "stress.h"

/* ---- shared state --------------------------------------------------------------------- */

enum { WAITERS = 8, MUTATORS = 3, MAX_TOKENS = 1 << 17, RUN_MS = 3000, WARMUP_MS = 300 };

enum kind {
    K_UNUSED = 0,
    K_ONESHOT,  /* READ|EV_ONESHOT on a pipe made readable; the mutator waits for it: exactly once */
    K_USER,     /* EVFILT_USER EV_ONESHOT, triggered: exactly once (checked after the final drain) */
    K_RACE,     /* READ on a readable pipe, closed at once: at most once if oneshot, never stale */
    K_DELETED,  /* READ on a readable pipe, EV_DELETE at once: never after the deletion */
    K_NEVER,    /* READ on an empty pipe (writer open), often on a just-reused number: never */
};

struct token {
    atomic_int delivered;
    atomic_long gone_at; /* clock after close()/EV_DELETE/dup2 returned; 0 = still there */
    atomic_int kind;
    atomic_int oneshot;
};

static struct {
    int kq;
    atomic_long clock;
    atomic_int next_token;
    atomic_int stop;
    struct token tok[MAX_TOKENS];
    /* violations, recorded by any thread, checked by the main thread */
    atomic_int unknown, errors, stale, never_fired, duplicates, lost, wait_errors;
    atomic_long first_bad; /* a description of the first violation: token << 8 | reason */
    atomic_long events, ops;
} S;

#define U(x) ((void *)(uintptr_t)(x))

static void violation(atomic_int *counter, long token, int reason) {
    if (atomic_fetch_add(counter, 1) == 0) {
        long expected = 0;
        atomic_compare_exchange_strong(&S.first_bad, &expected, token << 8 | reason);
    }
}

static int new_token(int kind, int oneshot) {
    int t = atomic_fetch_add(&S.next_token, 1);
    if (t >= MAX_TOKENS) return -1;
    atomic_store(&S.tok[t].kind, kind);
    atomic_store(&S.tok[t].oneshot, oneshot);
    return t;
}

static void mark_gone(int t) { atomic_store(&S.tok[t].gone_at, atomic_fetch_add(&S.clock, 1) + 1); }

/* ---- waiters -------------------------------------------------------------------------- */

static void record(const struct kevent *ev, long started) {
    atomic_fetch_add(&S.events, 1);
    if (ev->flags & EV_ERROR) {
        violation(&S.errors, (long)ev->data, 'E');
        return;
    }
    long t = (long)(uintptr_t)ev->udata;
    if (t <= 0 || t >= MAX_TOKENS || atomic_load(&S.tok[t].kind) == K_UNUSED) {
        violation(&S.unknown, t, 'U');
        return;
    }
    struct token *k = &S.tok[t];
    int n = atomic_fetch_add(&k->delivered, 1) + 1;
    long gone = atomic_load(&k->gone_at);
    if (gone != 0 && started >= gone) violation(&S.stale, t, 'S');
    int kind = atomic_load(&k->kind);
    if (kind == K_NEVER) violation(&S.never_fired, t, 'N');
    if (n > 1 && atomic_load(&k->oneshot)) violation(&S.duplicates, t, 'D');
    if (kind != K_USER && (ev->filter != EVFILT_READ || ev->data <= 0)) violation(&S.errors, t, 'F');
}

static void *waiter(void *arg) {
    (void)arg;
    struct kevent ev[8];
    while (!atomic_load(&S.stop)) {
        long started = atomic_load(&S.clock);
        struct timespec ts = kq_ts_ms(20);
        int n = kevent(S.kq, NULL, 0, ev, 8, &ts);
        if (n < 0) {
            if (errno != EINTR) violation(&S.wait_errors, errno, 'W');
            continue;
        }
        for (int i = 0; i < n; i++) record(&ev[i], started);
    }
    return NULL;
}

/* ---- mutators ------------------------------------------------------------------------- */

struct mutator {
    unsigned seed;
    int64_t deadline;
    long ops;
    int failed_line; /* a setup call (pipe, kevent change) failed: the line */
    int failed_errno;
};

#define MUST(m, expr)                                                                   \
    do {                                                                                \
        if ((expr) < 0) {                                                               \
            if ((m)->failed_line == 0) {                                                \
                (m)->failed_line = __LINE__;                                            \
                (m)->failed_errno = errno;                                              \
            }                                                                           \
            return;                                                                     \
        }                                                                               \
    } while (0)

static int change(int fd, short filter, unsigned short flags, unsigned fflags, int t) {
    struct kevent ch;
    EV_SET(&ch, (uintptr_t)fd, filter, flags, fflags, 0, U(t));
    return kevent(S.kq, &ch, 1, NULL, 0, NULL);
}

/* Waits (bounded, 5 s) until token t was delivered; false if it never was. */
static int await_delivery(int t) {
    int64_t deadline = kq_now_ns() + 5000000000LL;
    while (atomic_load(&S.tok[t].delivered) == 0) {
        if (kq_now_ns() > deadline) return 0;
        sched_yield();
    }
    return 1;
}

static void op_oneshot_exactly_once(struct mutator *m) {
    int t = new_token(K_ONESHOT, 1);
    if (t < 0) return;
    int p[2];
    MUST(m, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    MUST(m, change(p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, t));
    MUST(m, write(p[1], "x", 1));
    if (!await_delivery(t)) violation(&S.lost, t, 'L');
    close(p[0]);
    mark_gone(t);
    close(p[1]);
}

static void op_user_oneshot(struct mutator *m) {
    int t = new_token(K_USER, 1);
    if (t < 0) return;
    struct kevent ch[2];
    EV_SET(&ch[0], (uintptr_t)t, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, U(t));
    EV_SET(&ch[1], (uintptr_t)t, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(t));
    MUST(m, kevent(S.kq, ch, 2, NULL, 0, NULL));
}

/* Close (or dup2 over) a readable watched descriptor at once, then reuse the number for a
 * registration that must never fire. */
static void op_close_and_reuse(struct mutator *m, int use_dup2) {
    int oneshot = rand_r(&m->seed) % 2;
    int t = new_token(K_RACE, oneshot);
    int t2 = new_token(K_NEVER, 0);
    if (t < 0 || t2 < 0) return;
    int p[2], q[2];
    MUST(m, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    MUST(m, change(p[0], EVFILT_READ, EV_ADD | (oneshot ? EV_ONESHOT : 0), 0, t));
    MUST(m, write(p[1], "xy", 2));
    if (rand_r(&m->seed) % 2) sched_yield(); /* sometimes let a waiter see it first */
    int number = p[0];
    if (use_dup2) {
        /* The number now names the read end of an empty pipe whose writer stays open. */
        MUST(m, pipe2(q, O_NONBLOCK | O_CLOEXEC));
        MUST(m, dup2(q[0], number));
        mark_gone(t);
        close(q[0]);
    } else {
        close(number);
        mark_gone(t);
        MUST(m, pipe2(q, O_NONBLOCK | O_CLOEXEC)); /* most likely gets `number` back */
        if (q[0] != number) {
            close(q[0]);
            number = -1;
        }
        if (number < 0) {
            close(q[1]);
            close(p[1]);
            return;
        }
    }
    close(p[1]);
    MUST(m, change(number, EVFILT_READ, EV_ADD, 0, t2));
    if (rand_r(&m->seed) % 2) sched_yield();
    close(number); /* before the writer: EOF must not fire on it */
    mark_gone(t2);
    close(q[1]);
}

static void op_delete(struct mutator *m) {
    int t = new_token(K_DELETED, 0);
    if (t < 0) return;
    int p[2];
    MUST(m, pipe2(p, O_NONBLOCK | O_CLOEXEC));
    MUST(m, change(p[0], EVFILT_READ, EV_ADD, 0, t));
    MUST(m, write(p[1], "x", 1));
    if (rand_r(&m->seed) % 2) sched_yield();
    MUST(m, change(p[0], EVFILT_READ, EV_DELETE, 0, t));
    mark_gone(t);
    close(p[0]);
    close(p[1]);
}

static void *mutator(void *arg) {
    struct mutator *m = arg;
    while (kq_now_ns() < m->deadline && m->failed_line == 0 && atomic_load(&S.next_token) < MAX_TOKENS - 8) {
        switch (rand_r(&m->seed) % 6) {
        case 0: op_oneshot_exactly_once(m); break;
        case 1: op_user_oneshot(m); break;
        case 2: op_close_and_reuse(m, 0); break;
        case 3: op_close_and_reuse(m, 1); break;
        default: op_delete(m); break;
        }
        m->ops++;
    }
    return NULL;
}

/* ---- driver --------------------------------------------------------------------------- */

/* Joins with a bound: a thread still running after `ms` is a deadlock (or a lost wakeup). */
static int join_within(pthread_t t, long ms) {
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec += ms / 1000;
    abs.tv_nsec += (ms % 1000) * 1000000L;
    if (abs.tv_nsec >= 1000000000L) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(t, NULL, &abs) == 0;
}

static void reset_state(void) {
    memset(&S, 0, sizeof S); /* also touches every page: resident before the measurement */
    atomic_store(&S.next_token, 1);
    atomic_store(&S.clock, 1);
}

static const char *reason_name(int r) {
    switch (r) {
    case 'E': return "EV_ERROR entry";
    case 'U': return "unknown udata";
    case 'S': return "stale event (after close/delete)";
    case 'N': return "event on a never-ready descriptor (stale readiness under a reused number)";
    case 'D': return "oneshot delivered twice";
    case 'L': return "oneshot never delivered within 5 s";
    case 'W': return "kevent() wait failed (errno)";
    case 'F': return "wrong filter or data";
    default: return "?";
    }
}

/* Runs waiters and mutators for `ms`, then stops, drains and checks the records. */
static void run(int ms, unsigned seed, int report) {
    reset_state();
    S.kq = kq_new();
    pthread_t w[WAITERS], mt[MUTATORS];
    struct mutator m[MUTATORS];
    int64_t t0 = kq_now_ns();
    for (int i = 0; i < WAITERS; i++) CHECK_EQ_INT(pthread_create(&w[i], NULL, waiter, NULL), 0);
    for (int i = 0; i < MUTATORS; i++) {
        m[i] = (struct mutator){.seed = seed + (unsigned)i * 7919u, .deadline = t0 + (int64_t)ms * 1000000};
        CHECK_EQ_INT(pthread_create(&mt[i], NULL, mutator, &m[i]), 0);
    }
    int hung = 0;
    for (int i = 0; i < MUTATORS; i++) hung += !join_within(mt[i], 20000);
    CHECK_MSG(hung == 0, "%d mutator thread(s) still running 20 s after the deadline: deadlock?", hung);
    /* Let the waiters drain what is left (the user oneshots), then stop them. */
    int64_t drain_deadline = kq_now_ns() + 5000000000LL;
    for (;;) {
        int pending = 0;
        for (int t = 1; t < atomic_load(&S.next_token) && t < MAX_TOKENS; t++)
            if (atomic_load(&S.tok[t].kind) == K_USER && atomic_load(&S.tok[t].delivered) == 0) pending++;
        if (pending == 0 || kq_now_ns() > drain_deadline) break;
        struct timespec step = kq_ts_ms(5);
        nanosleep(&step, NULL);
    }
    atomic_store(&S.stop, 1);
    for (int i = 0; i < WAITERS; i++) hung += !join_within(w[i], 10000);
    CHECK_MSG(hung == 0, "%d waiter thread(s) still in kevent() 10 s after the stop: deadlock?", hung);
    int64_t elapsed_ms = (kq_now_ns() - t0) / 1000000;

    long ops = 0;
    for (int i = 0; i < MUTATORS; i++) {
        CHECK_MSG(m[i].failed_line == 0, "mutator %d: a setup call at stress_threads.c:%d failed: %s", i,
                  m[i].failed_line, strerror(m[i].failed_errno));
        ops += m[i].ops;
    }
    int users = 0, oneshots = 0, undelivered = 0;
    for (int t = 1; t < atomic_load(&S.next_token) && t < MAX_TOKENS; t++) {
        int kind = atomic_load(&S.tok[t].kind);
        int d = atomic_load(&S.tok[t].delivered);
        if (kind == K_USER) users++;
        if (kind == K_ONESHOT) oneshots++;
        if ((kind == K_USER || kind == K_ONESHOT) && d != 1) {
            if (d == 0) violation(&S.lost, t, 'L');
            undelivered++;
        }
    }
    if (report)
        printf("stress_threads: %d waiters, %d mutators, %lld ms: %ld operations, %ld events, %d tokens "
               "(%d descriptor oneshots, %d user oneshots, each delivered exactly once: %s)\n",
               WAITERS, MUTATORS, (long long)elapsed_ms, ops, (long)atomic_load(&S.events),
               atomic_load(&S.next_token) - 1, oneshots, users, undelivered ? "NO" : "yes");
    long first = atomic_load(&S.first_bad);
    CHECK_MSG(atomic_load(&S.unknown) + atomic_load(&S.errors) + atomic_load(&S.stale) +
                      atomic_load(&S.never_fired) + atomic_load(&S.duplicates) + atomic_load(&S.lost) +
                      atomic_load(&S.wait_errors) ==
                  0,
              "violations: %d stale, %d on never-ready descriptors, %d duplicate oneshots, %d lost "
              "oneshots, %d unknown, %d error entries/bad events, %d failed waits; first: token %ld, %s",
              atomic_load(&S.stale), atomic_load(&S.never_fired), atomic_load(&S.duplicates),
              atomic_load(&S.lost), atomic_load(&S.unknown), atomic_load(&S.errors), atomic_load(&S.wait_errors),
              first >> 8, reason_name((int)(first & 0xff)));
    CHECK_NO_EVENT(S.kq);
    CHECK_SYS(close(S.kq));
}

TEST(test_stress_8_waiters_3_mutators_oneshots_exactly_once_no_stale_event_no_deadlock) {
    run(WARMUP_MS, 1, 0); /* warm-up: thread stacks, malloc arenas, one-time allocations */
    struct stress_snapshot before = stress_snapshot();
    run(RUN_MS, 12345, 1);
    struct stress_snapshot after = stress_snapshot();
    stress_check_back_to_start("stress_threads", before, after);
}

/* ---- closing the kqueue under 8 waiters ------------------------------------------------ */

/*
 * close(kq) while 8 threads wait on it with a 1 s timeout: every wait ends, at the latest at
 * its timeout, with 0 events or -1/EBADF (FreeBSD keeps a kqueue alive until the last
 * kevent() using it returns, so a waiter there ends at its timeout; this library wakes it
 * early with EBADF when it can). No thread may stay blocked: no deadlock. The waits have a
 * timeout because with none a waiter can block forever here (docs/GUARANTEES.md, limits).
 */
struct blocked {
    int kq;
    int n, err;
    int64_t returned_at;
};

enum { CLOSE_WAIT_MS = 1000 };

static void *wait_bounded(void *p) {
    struct blocked *b = p;
    struct kevent ev[4];
    struct timespec ts = kq_ts_ms(CLOSE_WAIT_MS);
    b->n = kevent(b->kq, NULL, 0, ev, 4, &ts);
    b->err = errno;
    b->returned_at = kq_now_ns();
    return NULL;
}

TEST(test_stress_close_of_kqueue_under_8_waiters_ends_every_wait) {
    int start = kq_fd_count();
    int early = 0, total = 0;
    for (int round = 0; round < 6; round++) {
        int kq = kq_new();
        int p[2];
        kq_pipe(p);
        KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL); /* never ready */
        KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);    /* never triggered */
        struct blocked b[WAITERS];
        pthread_t t[WAITERS];
        for (int i = 0; i < WAITERS; i++) {
            b[i] = (struct blocked){.kq = kq, .n = -2};
            CHECK_EQ_INT(pthread_create(&t[i], NULL, wait_bounded, &b[i]), 0);
        }
        struct timespec settle = kq_ts_ms(round % 2 ? 20 : 1); /* in kevent() or about to be */
        nanosleep(&settle, NULL);
        int64_t closed_at = kq_now_ns();
        CHECK_SYS(close(kq));
        int hung = 0;
        for (int i = 0; i < WAITERS; i++) hung += !join_within(t[i], CLOSE_WAIT_MS + 5000);
        CHECK_MSG(hung == 0, "round %d: %d of %d waiters still blocked %d ms after close(kq)", round, hung, WAITERS,
                  CLOSE_WAIT_MS + 5000);
        for (int i = 0; i < WAITERS; i++) {
            CHECK_MSG(b[i].n == 0 || (b[i].n == -1 && b[i].err == EBADF),
                      "round %d waiter %d: kevent returned %d (errno %s)", round, i, b[i].n, kq_errname(b[i].err));
            int64_t after_ms = (b[i].returned_at - closed_at) / 1000000;
            CHECK_MSG(after_ms < CLOSE_WAIT_MS + 2000, "round %d waiter %d returned %lld ms after close", round, i,
                      (long long)after_ms);
            early += after_ms < CLOSE_WAIT_MS / 2;
            total++;
        }
        close(p[0]);
        close(p[1]);
    }
    printf("stress_threads: close(kq) under %d waiters: %d of %d waits ended at once, the others at their "
           "%d ms timeout\n",
           WAITERS, early, total, CLOSE_WAIT_MS);
    CHECK_EQ_INT(kq_fd_count(), start);
}

RUN_TESTS()
