/*
 * SPEC.md 2, "Descriptor lifetime", last rule: several threads may call kevent() on the same
 * kqueue at once; an event is delivered to one of them, a oneshot exactly once. And
 * DESIGN.md's threading rule: a change made by one thread wakes a waiter in another.
 * Worker threads never CHECK; they record, and the main thread checks.
 */
#include "kqtest.h"

#include <stdatomic.h>

#define U(x) ((void *)(uintptr_t)(x))

/* ---- several waiters, one event each ------------------------------------------------- */

enum { WAITERS = 4 };

struct single_wait {
    int kq;
    pthread_barrier_t *start;
    int n;
    int err;
    struct kevent ev;
    int64_t returned_at;
};

static void *wait_once(void *p) {
    struct single_wait *w = p;
    pthread_barrier_wait(w->start);
    struct timespec ts = {5, 0};
    w->n = kevent(w->kq, NULL, 0, &w->ev, 1, &ts);
    w->err = errno;
    w->returned_at = kq_now_ns();
    return NULL;
}

TEST(test_threads_several_waiters_each_event_delivered_to_one_of_them) {
    int kq = kq_new();
    for (int i = 0; i < WAITERS; i++) KQ_SET(kq, 100 + i, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, U(100 + i));
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, WAITERS + 1);
    struct single_wait w[WAITERS];
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        w[i] = (struct single_wait){.kq = kq, .start = &start, .n = -2};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, wait_once, &w[i]), 0);
    }
    pthread_barrier_wait(&start);
    /* Give the waiters a moment to be inside kevent(); correctness does not depend on it. */
    struct timespec settle = kq_ts_ms(50);
    nanosleep(&settle, NULL);
    int64_t t0 = kq_now_ns();
    for (int i = 0; i < WAITERS; i++) KQ_SET(kq, 100 + i, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(100 + i));
    for (int i = 0; i < WAITERS; i++) pthread_join(t[i], NULL);
    int seen[WAITERS] = {0};
    for (int i = 0; i < WAITERS; i++) {
        CHECK_MSG(w[i].n == 1, "waiter %d: kevent returned %d (errno %s)", i, w[i].n, kq_errname(w[i].err));
        int id = (int)w[i].ev.ident - 100;
        CHECK_MSG(id >= 0 && id < WAITERS, "waiter %d got %s", i, kq_ev_str(&w[i].ev));
        seen[id]++;
        CHECK_MSG(w[i].returned_at - t0 < 2000000000LL, "waiter %d returned %lld ms after the triggers", i,
                  (long long)((w[i].returned_at - t0) / 1000000));
    }
    for (int i = 0; i < WAITERS; i++) CHECK_MSG(seen[i] == 1, "event %d delivered %d times", 100 + i, seen[i]);
    CHECK_NO_EVENT(kq);
    pthread_barrier_destroy(&start);
    close(kq);
}

/* ---- 1,000 oneshots, 4 threads ------------------------------------------------------- */

enum { ONESHOTS = 1000, CONSUMERS = 4 };

struct shared {
    int kq;
    atomic_int delivered;
    atomic_int per_ident[ONESHOTS];
    atomic_int bad; /* events that are not ours, or errors */
    atomic_int stop;
    int64_t deadline;
};

static void *consume(void *p) {
    struct shared *s = p;
    struct kevent ev[16];
    while (!atomic_load(&s->stop) && atomic_load(&s->delivered) < ONESHOTS && kq_now_ns() < s->deadline) {
        struct timespec ts = kq_ts_ms(50);
        int n = kevent(s->kq, NULL, 0, ev, 16, &ts);
        if (n < 0) {
            atomic_fetch_add(&s->bad, 1);
            continue;
        }
        for (int i = 0; i < n; i++) {
            uintptr_t id = ev[i].ident;
            if (ev[i].filter != EVFILT_USER || id >= ONESHOTS || (ev[i].flags & EV_ERROR) ||
                ev[i].udata != U(id + 1)) {
                atomic_fetch_add(&s->bad, 1);
                continue;
            }
            atomic_fetch_add(&s->per_ident[id], 1);
            atomic_fetch_add(&s->delivered, 1);
        }
    }
    return NULL;
}

static void check_exactly_once(struct shared *s, pthread_t *threads, int nthreads) {
    for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
    CHECK_EQ_INT(atomic_load(&s->bad), 0);
    int missing = 0, doubled = 0, first_missing = -1, first_doubled = -1;
    for (int i = 0; i < ONESHOTS; i++) {
        int c = atomic_load(&s->per_ident[i]);
        if (c == 0 && missing++ == 0) first_missing = i;
        if (c > 1 && doubled++ == 0) first_doubled = i;
    }
    CHECK_MSG(missing == 0 && doubled == 0,
              "%d events never delivered (first %d), %d delivered more than once (first %d)", missing,
              first_missing, doubled, first_doubled);
    CHECK_EQ_INT(atomic_load(&s->delivered), ONESHOTS);
    /* Oneshots are gone: nothing left, and deleting any of them is ENOENT. */
    CHECK_NO_EVENT(s->kq);
    CHECK_ERR(kq_change_errno(s->kq, 0, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(s->kq, ONESHOTS - 1, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
}

TEST(test_threads_1000_oneshot_user_events_delivered_exactly_once_across_4_threads) {
    static struct shared s;
    memset(&s, 0, sizeof s);
    s.kq = kq_new();
    s.deadline = kq_now_ns() + 8000000000LL;
    struct kevent ch[10];
    for (int i = 0; i < ONESHOTS; i++) KQ_SET(s.kq, i, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, U(i + 1));
    pthread_t t[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, consume, &s), 0);
    /* Trigger each once, in small batches, while the consumers are waiting. */
    for (int base = 0; base < ONESHOTS; base += 10) {
        for (int i = 0; i < 10; i++) EV_SET(&ch[i], base + i, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(base + i + 1));
        CHECK_EQ_INT(kevent(s.kq, ch, 10, NULL, 0, NULL), 0);
    }
    check_exactly_once(&s, t, CONSUMERS);
    CHECK(kq_now_ns() < s.deadline);
    close(s.kq);
}

struct producer {
    struct shared *s;
    int first, count;
    int errors;
};

static void *produce(void *p) {
    struct producer *pr = p;
    struct kevent ch[2];
    for (int i = pr->first; i < pr->first + pr->count; i++) {
        EV_SET(&ch[0], i, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, U(i + 1));
        EV_SET(&ch[1], i, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(i + 1));
        if (kevent(pr->s->kq, ch, 2, NULL, 0, NULL) != 0) pr->errors++;
    }
    return NULL;
}

TEST(test_threads_concurrent_registration_and_waits_oneshots_exactly_once) {
    static struct shared s;
    memset(&s, 0, sizeof s);
    s.kq = kq_new();
    s.deadline = kq_now_ns() + 8000000000LL;
    pthread_t t[CONSUMERS + 2];
    for (int i = 0; i < CONSUMERS; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, consume, &s), 0);
    struct producer pr[2] = {{&s, 0, ONESHOTS / 2, 0}, {&s, ONESHOTS / 2, ONESHOTS / 2, 0}};
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&t[CONSUMERS + i], NULL, produce, &pr[i]), 0);
    check_exactly_once(&s, t, CONSUMERS + 2);
    CHECK_EQ_INT(pr[0].errors, 0);
    CHECK_EQ_INT(pr[1].errors, 0);
    close(s.kq);
}

/* ---- oneshot descriptor knotes, 4 threads ------------------------------------------- */

enum { PIPES = 100 };

struct fd_shared {
    int kq;
    int rfd[PIPES];
    atomic_int per_pipe[PIPES];
    atomic_int delivered;
    atomic_int bad;
    int64_t deadline;
};

static void *consume_fds(void *p) {
    struct fd_shared *s = p;
    struct kevent ev[8];
    while (atomic_load(&s->delivered) < PIPES && kq_now_ns() < s->deadline) {
        struct timespec ts = kq_ts_ms(50);
        int n = kevent(s->kq, NULL, 0, ev, 8, &ts);
        if (n < 0) {
            atomic_fetch_add(&s->bad, 1);
            continue;
        }
        for (int i = 0; i < n; i++) {
            uintptr_t idx = (uintptr_t)ev[i].udata;
            if (ev[i].filter != EVFILT_READ || idx >= PIPES || ev[i].ident != (uintptr_t)s->rfd[idx]) {
                atomic_fetch_add(&s->bad, 1);
                continue;
            }
            atomic_fetch_add(&s->per_pipe[idx], 1);
            atomic_fetch_add(&s->delivered, 1);
        }
    }
    return NULL;
}

TEST(test_threads_oneshot_descriptor_events_delivered_exactly_once_across_4_threads) {
    static struct fd_shared s;
    memset(&s, 0, sizeof s);
    s.kq = kq_new();
    s.deadline = kq_now_ns() + 8000000000LL;
    int wfd[PIPES];
    for (int i = 0; i < PIPES; i++) {
        int p[2];
        kq_pipe(p);
        s.rfd[i] = p[0];
        wfd[i] = p[1];
        KQ_SET(s.kq, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, U(i));
    }
    pthread_t t[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, consume_fds, &s), 0);
    /* The data stays unread: a level source, but each oneshot fires once in total. */
    for (int i = 0; i < PIPES; i++) kq_write_all(wfd[i], "x", 1);
    for (int i = 0; i < CONSUMERS; i++) pthread_join(t[i], NULL);
    CHECK_EQ_INT(atomic_load(&s.bad), 0);
    for (int i = 0; i < PIPES; i++)
        CHECK_MSG(atomic_load(&s.per_pipe[i]) == 1, "pipe %d delivered %d times", i, atomic_load(&s.per_pipe[i]));
    CHECK_NO_EVENT_WITHIN(s.kq, 20);
    for (int i = 0; i < PIPES; i++) {
        close(s.rfd[i]);
        close(wfd[i]);
    }
    close(s.kq);
}

/* ---- a wake whose event another thread took does not end the wait (SPEC.md 2.7) ---- */

struct timed_wait {
    int kq;
    pthread_barrier_t *start;
    int n;
    int err;
    int64_t began, took;
};

static void *wait_300ms(void *p) {
    struct timed_wait *w = p;
    pthread_barrier_wait(w->start);
    struct kevent ev;
    struct timespec ts = kq_ts_ms(300);
    w->began = kq_now_ns();
    w->n = kevent(w->kq, NULL, 0, &ev, 1, &ts);
    w->err = errno;
    w->took = kq_now_ns() - w->began;
    return NULL;
}

static void check_loser_waits_full_timeout(int kq, void (*fire)(void *), void *arg) {
    enum { N = 3 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N + 1);
    struct timed_wait w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct timed_wait){.kq = kq, .start = &start, .n = -2};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, wait_300ms, &w[i]), 0);
    }
    pthread_barrier_wait(&start);
    struct timespec settle = kq_ts_ms(30);
    nanosleep(&settle, NULL);
    fire(arg);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    int winners = 0;
    for (int i = 0; i < N; i++) {
        CHECK_MSG(w[i].n == 0 || w[i].n == 1, "waiter %d: kevent returned %d errno %s", i, w[i].n, kq_errname(w[i].err));
        if (w[i].n == 1) {
            winners++;
        } else {
            CHECK_MSG(w[i].took >= 300000000LL, "waiter %d returned 0 after %lld us, before its 300 ms timeout", i,
                      (long long)(w[i].took / 1000));
        }
    }
    CHECK_EQ_INT(winners, 1);
    pthread_barrier_destroy(&start);
}

struct fire_arg {
    int kq;
    int fd;
};

static void fire_user(void *p) {
    struct fire_arg *a = p;
    KQ_SET(a->kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
}

static void fire_pipe(void *p) {
    struct fire_arg *a = p;
    kq_write_all(a->fd, "x", 1);
}

TEST(test_threads_wait_not_ended_early_when_another_thread_took_the_event) {
    int kq = kq_new();
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    struct fire_arg a = {kq, -1};
    check_loser_waits_full_timeout(kq, fire_user, &a);
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    a.fd = p[1];
    check_loser_waits_full_timeout(kq, fire_pipe, &a);
    int q[2];
    kq_pipe(q);
    KQ_SET(kq, q[0], EVFILT_READ, EV_ADD | EV_DISPATCH, 0, 0, NULL);
    a.fd = q[1];
    check_loser_waits_full_timeout(kq, fire_pipe, &a);
    close(kq);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/* ---- a change made by another thread wakes a waiter ---------------------------------- */

struct waiter {
    int kq;
    int n;
    int err;
    struct kevent ev;
    int64_t returned_at;
    atomic_int started;
};

static void *wait_5s(void *p) {
    struct waiter *w = p;
    atomic_store(&w->started, 1);
    struct timespec ts = {5, 0};
    w->n = kevent(w->kq, NULL, 0, &w->ev, 1, &ts);
    w->err = errno;
    w->returned_at = kq_now_ns();
    return NULL;
}

/* Starts a waiter, lets it block, runs `change`, and checks it wakes promptly with ident. */
static void check_wakes(int kq, void (*change)(int kq, void *), void *arg, uintptr_t ident) {
    struct waiter w = {.kq = kq, .n = -2};
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, wait_5s, &w), 0);
    while (!atomic_load(&w.started)) sched_yield();
    struct timespec settle = kq_ts_ms(50);
    nanosleep(&settle, NULL);
    int64_t t0 = kq_now_ns();
    change(kq, arg);
    pthread_join(t, NULL);
    CHECK_MSG(w.n == 1, "waiter: kevent returned %d (errno %s)", w.n, kq_errname(w.err));
    CHECK_EQ_INT(w.ev.ident, ident);
    CHECK_MSG(w.returned_at - t0 < 1000000000LL, "waiter woke %lld ms after the change",
              (long long)((w.returned_at - t0) / 1000000));
}

static void add_ready_pipe(int kq, void *arg) {
    int fd = *(int *)arg;
    KQ_SET(kq, fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
}

static void enable_knote(int kq, void *arg) {
    int fd = *(int *)arg;
    KQ_SET(kq, fd, EVFILT_READ, EV_ENABLE, 0, 0, NULL);
}

static void trigger_user(int kq, void *arg) {
    (void)arg;
    KQ_SET(kq, 9, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
}

static void write_pipe(int kq, void *arg) {
    (void)kq;
    kq_write_all(*(int *)arg, "w", 1);
}

TEST(test_threads_change_from_other_thread_wakes_waiter) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    /* EV_ADD of a source that is already ready. */
    check_wakes(kq, add_ready_pipe, &p[0], (uintptr_t)p[0]);
    /* EV_ENABLE of a ready, disabled knote. */
    KQ_SET(kq, p[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL);
    check_wakes(kq, enable_knote, &p[0], (uintptr_t)p[0]);
    KQ_SET(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    /* NOTE_TRIGGER. */
    KQ_SET(kq, 9, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    check_wakes(kq, trigger_user, NULL, 9);
    /* And plain I/O from another thread. */
    int q[2];
    kq_pipe(q);
    KQ_SET(kq, q[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    check_wakes(kq, write_pipe, &q[1], (uintptr_t)q[0]);
    close(kq);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/* ---- a knote removed while another thread waits ------------------------------------- */

struct bg_wait {
    int kq;
    atomic_int started;
    int n;
    struct kevent ev;
    int64_t took;
};

static void *bg_wait_400ms(void *p) {
    struct bg_wait *w = p;
    atomic_store(&w->started, 1);
    struct timespec ts = kq_ts_ms(400);
    int64_t t0 = kq_now_ns();
    w->n = kevent(w->kq, NULL, 0, &w->ev, 1, &ts);
    w->took = kq_now_ns() - t0;
    return NULL;
}

/* While a waiter blocks, `removal` removes the knote on p[0] (the file stays open through a
 * dup); data then arrives on the pipe. The waiter must not get an event. */
static void check_removed_during_wait(int close_it) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    int keep = (int)CHECK_SYS(dup(p[0]));
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    struct bg_wait w = {.kq = kq, .n = -2};
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, bg_wait_400ms, &w), 0);
    while (!atomic_load(&w.started)) sched_yield();
    struct timespec settle = kq_ts_ms(50);
    nanosleep(&settle, NULL);
    if (close_it)
        CHECK_SYS(close(p[0]));
    else
        KQ_SET(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    kq_write_all(p[1], "x", 1);
    pthread_join(t, NULL);
    CHECK_MSG(w.n == 0, "waiter got %d events (first %s) after the knote was removed", w.n, kq_ev_str(&w.ev));
    CHECK_MSG(w.took >= 400000000LL, "waiter returned 0 after %lld ms, before its timeout", (long long)(w.took / 1000000));
    close(kq);
    if (!close_it) close(p[0]);
    close(p[1]);
    close(keep);
}

TEST(test_threads_close_of_watched_descriptor_during_wait_no_stale_event) { check_removed_during_wait(1); }

TEST(test_threads_ev_delete_during_wait_no_event) { check_removed_during_wait(0); }

RUN_TESTS()
