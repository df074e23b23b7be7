/*
 * SPEC.md 2, "Descriptor lifetime": close() removes knotes, no stale event after a number
 * is reused, kqueue descriptors are close-on-exec, not inherited by a fork child, pollable
 * and nestable; kqueuex().
 */
#include "kqtest.h"

#include <stdatomic.h>

#include <sys/epoll.h>

#define U(x) ((void *)(uintptr_t)(x))

/* Makes `number` refer to a fresh /dev/null descriptor (the number must be free). */
static void reuse_number_with_devnull(int number) {
    int n = (int)CHECK_SYS(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (n != number) {
        CHECK_SYS(dup2(n, number));
        close(n);
    }
}

TEST(test_lifetime_close_removes_knotes_ev_delete_ebadf_if_number_closed) {
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    kq_write_all(sv[1], "x", 1);
    struct kevent ev[4];
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 4, 0), 2);
    int num = sv[0];
    CHECK_SYS(close(sv[0]));
    CHECK_NO_EVENT(kq);
    CHECK_ERR(kq_change_errno(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), EBADF);
    CHECK_ERR(kq_change_errno(kq, num, EVFILT_WRITE, EV_DELETE, 0, 0, NULL), EBADF);
    close(kq);
    close(sv[1]);
}

TEST(test_lifetime_close_removes_knotes_ev_delete_enoent_if_number_reused) {
    int kq1 = kq_new(), kq2 = kq_new();
    int p[2];
    kq_pipe(p);
    KQ_SET(kq1, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq2, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq2, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    int rnum = p[0], wnum = p[1];
    CHECK_SYS(close(p[0]));
    CHECK_SYS(close(p[1]));
    reuse_number_with_devnull(rnum);
    reuse_number_with_devnull(wnum);
    /* Removed in every kqueue. */
    CHECK_ERR(kq_change_errno(kq1, rnum, EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq2, rnum, EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq2, wnum, EVFILT_WRITE, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_NO_EVENT(kq1);
    CHECK_NO_EVENT(kq2);
    close(rnum);
    close(wnum);
    close(kq1);
    close(kq2);
}

TEST(test_lifetime_no_stale_event_after_close_and_reuse_of_number) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, U(1));
    kq_write_all(sv[1], "old!", 4);
    CHECK_ONE_EVENT(kq, &ev); /* queued and re-queued (level) */
    int num = sv[0];
    CHECK_SYS(close(sv[0]));
    int t[2];
    kq_socketpair(SOCK_STREAM, t);
    if (t[0] != num) {
        CHECK_SYS(dup2(t[0], num));
        close(t[0]);
        t[0] = num;
    }
    /* The old knote was queued: it must not come back for the new descriptor. */
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, num, EVFILT_READ, EV_ADD, 0, 0, U(2));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    (void)send(sv[1], "more", 4, MSG_NOSIGNAL);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_write_all(t[1], "new", 3);
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 1000);
    CHECK_EQ_INT(ev.ident, num);
    CHECK_EQ_INT(ev.udata, 2);
    CHECK_EQ_INT(ev.data, 3);
    close(kq);
    close(sv[1]);
    close(t[0]);
    close(t[1]);
}

TEST(test_lifetime_no_stale_event_after_close_and_reuse_with_dup_kept_open) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    int keep = (int)CHECK_SYS(dup(sv[0])); /* the old file stays open */
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, U(1));
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, U(1));
    int num = sv[0];
    CHECK_SYS(close(sv[0]));
    /* The knotes are gone although the file lives on through `keep`. */
    kq_write_all(sv[1], "old", 3);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    CHECK_ERR(kq_change_errno(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), EBADF);

    /* The number now names a new, empty socket; watch it. */
    int t[2];
    kq_socketpair(SOCK_STREAM, t);
    if (t[0] != num) {
        CHECK_SYS(dup2(t[0], num));
        close(t[0]);
        t[0] = num;
    }
    KQ_SET(kq, num, EVFILT_READ, EV_ADD, 0, 0, U(2));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    /* Activity on the old file (still open as `keep`) must not show up. */
    kq_write_all(sv[1], "older", 5);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    /* The new file's own event, with its own data. */
    kq_write_all(t[1], "xy", 2);
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 1000);
    CHECK_EQ_INT(ev.ident, num);
    CHECK_EQ_INT(ev.udata, 2);
    CHECK_EQ_INT(ev.data, 2);
    KQ_SET(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL);

    /* WRITE: the number reused by a full pipe's write end; the old socket is writable. */
    close(t[0]);
    int p[2];
    kq_pipe(p);
    if (p[0] == num) { /* keep the read end off the number */
        int r = (int)CHECK_SYS(fcntl(p[0], F_DUPFD_CLOEXEC, num + 1));
        close(p[0]);
        p[0] = r;
    }
    if (p[1] != num) {
        CHECK_SYS(dup2(p[1], num));
        close(p[1]);
        p[1] = num;
    }
    kq_fill(p[1]);
    KQ_SET(kq, num, EVFILT_WRITE, EV_ADD, 0, 0, U(3));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_read_n(keep, NULL, 8); /* more activity on the old socket */
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(kq);
    close(keep);
    close(sv[1]);
    close(t[1]);
    close(p[0]);
    close(p[1]);
}

TEST(test_lifetime_dup2_over_watched_number_no_stale_event) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, U(1));
    kq_write_all(sv[1], "pending", 7);
    CHECK_ONE_EVENT(kq, &ev);
    int t[2];
    kq_socketpair(SOCK_STREAM, t);
    /* dup2 closes the watched descriptor implicitly. */
    CHECK_SYS(dup2(t[0], sv[0]));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    CHECK_ERR(kq_change_errno(kq, sv[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, U(2));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_write_all(t[1], "ab", 2);
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 1000);
    CHECK_EQ_INT(ev.udata, 2);
    CHECK_EQ_INT(ev.data, 2);
    close(kq);
    close(sv[0]);
    close(sv[1]);
    close(t[0]);
    close(t[1]);
}

/* Closes `fd` by `how`, then makes sure a new socket gets the same number, watches it and
 * checks that it starts clean (no stale knote, no stale event, and it works). */
enum close_how { BY_FCLOSE, BY_CLOSE_RANGE, BY_DUP3 };

static void check_closed_by(enum close_how how) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    int num = sv[0];
    KQ_SET(kq, num, EVFILT_READ, EV_ADD, 0, 0, U(1));
    kq_write_all(sv[1], "stale", 5);
    CHECK_ONE_EVENT(kq, &ev);
    int t[2];
    kq_socketpair(SOCK_STREAM, t);
    switch (how) {
    case BY_FCLOSE: {
        FILE *f = fdopen(num, "r");
        CHECK(f != NULL);
        CHECK_EQ_INT(fclose(f), 0);
        CHECK_SYS(dup2(t[0], num));
        break;
    }
    case BY_CLOSE_RANGE:
        CHECK_SYS(close_range((unsigned)num, (unsigned)num, 0));
        CHECK_SYS(dup2(t[0], num));
        break;
    case BY_DUP3:
        CHECK_SYS(dup3(t[0], num, O_CLOEXEC));
        break;
    }
    close(t[0]);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    CHECK_ERR(kq_change_errno(kq, num, EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    KQ_SET(kq, num, EVFILT_READ, EV_ADD, 0, 0, U(2));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_write_all(t[1], "new", 3);
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 1000);
    CHECK_EQ_INT(ev.ident, num);
    CHECK_EQ_INT(ev.udata, 2);
    CHECK_EQ_INT(ev.data, 3);
    close(kq);
    close(num);
    close(sv[1]);
    close(t[1]);
}

TEST(test_lifetime_fclose_of_watched_descriptor_starts_number_clean) { check_closed_by(BY_FCLOSE); }

TEST(test_lifetime_close_range_of_watched_descriptor_starts_number_clean) { check_closed_by(BY_CLOSE_RANGE); }

TEST(test_lifetime_dup3_over_watched_descriptor_starts_number_clean) { check_closed_by(BY_DUP3); }

/* close_range to the highest number (what a daemon does before exec) walks only the numbers
 * the library keeps something about: in a process that never made a kqueue (each test runs
 * in a fresh child of one that did not), none. It took 30 s when it walked to INT_MAX. */
TEST(test_lifetime_close_range_to_the_highest_number_returns_at_once) {
    int keep = (int)CHECK_SYS(fcntl(0, F_DUPFD_CLOEXEC, 900));
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    CHECK_SYS(close_range(1000, ~0U, 0));
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    CHECK_MSG(seconds < 1.0, "close_range(1000, ~0U) took %.2f s", seconds);
    CHECK_SYS(fcntl(keep, F_GETFD)); /* below the range: still open */
    close(keep);
}

TEST(test_lifetime_kqueue_descriptor_is_close_on_exec) {
    int kq = kq_new();
    int fl = (int)CHECK_SYS(fcntl(kq, F_GETFD));
    CHECK(fl & FD_CLOEXEC);
    close(kq);
}

TEST(test_lifetime_kqueuex_cloexec_works_and_unknown_flag_einval) {
    int kq = (int)CHECK_SYS(kqueuex(KQUEUE_CLOEXEC));
    int fl = (int)CHECK_SYS(fcntl(kq, F_GETFD));
    CHECK(fl & FD_CLOEXEC);
    struct kevent ev;
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 1);
    close(kq);
    kq = (int)CHECK_SYS(kqueuex(0));
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
    close(kq);
    int before = kq_fd_count();
    CHECK_ERRNO(kqueuex(0x2), EINVAL);
    CHECK_ERRNO(kqueuex(0x3), EINVAL);
    CHECK_ERRNO(kqueuex(0x80000000u), EINVAL);
    CHECK_EQ_INT(kq_fd_count(), before);
}

TEST(test_lifetime_kqueue_create_close_1000_times_leaves_fd_count_unchanged) {
    char dir[64], path[128];
    kq_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/file", dir);
    int file = (int)CHECK_SYS(open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    int p[2];
    kq_pipe(p);
    int before = kq_fd_count();
    for (int i = 0; i < 1000; i++) {
        int kq = kq_new();
        if (i % 2 == 0) {
            /* With knotes of every kind implemented here. */
            KQ_SET(kq, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
            KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
            KQ_SET(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
            /* A regular-file knote costs an inotify instance whose close() takes ~10 ms
             * in the kernel: only a few of them, to keep the test fast. */
            if (i % 100 == 0) KQ_SET(kq, file, EVFILT_READ, EV_ADD, 0, 0, NULL);
            struct kevent ev[4];
            (void)KQ_WAIT(kq, ev, 4, 0);
        }
        CHECK_SYS(close(kq));
    }
    CHECK_EQ_INT(kq_fd_count(), before);
    close(file);
    close(p[0]);
    close(p[1]);
    kq_rmdir_all(dir);
}

TEST(test_lifetime_close_watched_descriptors_1000_times_no_leak) {
    int kq = kq_new();
    int before = kq_fd_count();
    for (int i = 0; i < 1000; i++) {
        int sv[2];
        kq_socketpair(SOCK_STREAM, sv);
        KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
        KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, NULL);
        if (i % 2) kq_write_all(sv[1], "x", 1);
        CHECK_SYS(close(sv[0]));
        CHECK_SYS(close(sv[1]));
    }
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_fd_count(), before);
    close(kq);
}

TEST(test_lifetime_closed_kqueue_number_reused_is_not_a_kqueue) {
    int kq = kq_new();
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_SYS(close(kq));
    reuse_number_with_devnull(kq);
    struct kevent ev[2];
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &(struct timespec){0, 0}), EBADF);
    close(kq);
    /* A new kqueue may get the number: it starts empty. */
    int kq2 = kq_new();
    CHECK_ERR(kq_change_errno(kq2, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_NO_EVENT(kq2);
    close(kq2);
}

/* ---- fork ---------------------------------------------------------------------------- */

static void fork_child_body(void *arg) {
    int kq = *(int *)arg;
    struct kevent ev[2];
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &(struct timespec){0, 0}), EBADF);
    struct kevent ch;
    EV_SET(&ch, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ERRNO(kevent(kq, &ch, 1, NULL, 0, NULL), EBADF);
    /* The descriptor is really closed in the child. */
    CHECK_ERRNO(fcntl(kq, F_GETFD), EBADF);
    /* The child can make and use its own kqueue. */
    int mine = kq_new();
    KQ_SET(mine, 5, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(mine, 5, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(mine, &ev[0]);
    CHECK_EQ_INT(ev[0].ident, 5);
    int p[2];
    kq_pipe(p);
    KQ_SET(mine, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_all(p[1], "c", 1);
    CHECK_EVENT_UNTIL(mine, p[0], EVFILT_READ, 1000, kq_pred_data_eq, 1, &ev[0]);
    close(mine);
}

TEST(test_lifetime_fork_child_sees_kqueue_closed_ebadf) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_run_child(fork_child_body, &kq, 5000);
    /* The parent's kqueue is unaffected by the child's exit. */
    struct kevent ev;
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 1);
    KQ_SET(kq, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    kq_write_all(p[1], "p", 1);
    CHECK_EVENT_UNTIL(kq, p[0], EVFILT_READ, 1000, kq_pred_data_eq, 1, &ev);
    close(kq);
    close(p[0]);
    close(p[1]);
}

#if defined(__SANITIZE_THREAD__)
#define KQ_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KQ_THREAD_SANITIZER 1
#endif
#endif

/* Keeps kqueue locks busy until `stop`: a registration, a trigger and a collection on its
 * own kqueue, and a kqueue created and closed (the process-wide registry's lock), over and
 * over. */
struct lock_churn {
    atomic_int stop;
    atomic_long cycles;
};

static void *churn_kqueue_locks(void *arg) {
    struct lock_churn *churn = arg;
    int kq = kqueue();
    struct kevent change[2], ev;
    struct timespec zero = {0, 0};
    while (!atomic_load(&churn->stop)) {
        EV_SET(&change[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
        EV_SET(&change[1], 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        (void)kevent(kq, change, 2, &ev, 1, &zero);
        int other = kqueue();
        if (other >= 0) close(other);
        atomic_fetch_add(&churn->cycles, 1);
    }
    close(kq);
    return NULL;
}

static void use_a_kqueue_in_the_child(void *unused) {
    (void)unused;
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    struct kevent ev;
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 9, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
    kq_write_all(p[1], "c", 1);
    CHECK_EVENT_UNTIL(kq, p[0], EVFILT_READ, 2000, kq_pred_data_eq, 1, &ev);
    CHECK_EVENT_UNTIL(kq, 9, EVFILT_USER, 2000, kq_pred_any, 0, &ev);
    close(kq);
}

/* A fork can come while another thread holds a kqueue's lock or the registry's: the child's
 * handler takes none of them (it only forgets the parent's kqueues), so the child makes and
 * uses kqueues at once, never deadlocked. 100 forks under two threads churning the locks. */
TEST(test_lifetime_fork_while_other_threads_hold_kqueue_locks_child_uses_kqueues) {
#ifdef KQ_THREAD_SANITIZER
    /* Under TSan the Swift runtime's swift_once takes the global's lock on every access, even
     * after initialisation (so that TSan sees the ordering), so a fork can copy a lock that a
     * parent thread held for a moment and the child waits on it forever: the runtime's TSan
     * mode, not the library (plain and ASan builds run this test). */
    SKIP("under ThreadSanitizer the Swift runtime locks every lazy global's access");
#endif
    struct lock_churn churn = {0, 0};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&threads[i], NULL, churn_kqueue_locks, &churn), 0);
    while (atomic_load(&churn.cycles) < 100) sched_yield();
    for (int i = 0; i < 100; i++) kq_run_child(use_a_kqueue_in_the_child, NULL, 5000);
    atomic_store(&churn.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
}

/* ---- a kqueue is pollable ------------------------------------------------------------ */

TEST(test_lifetime_kqueue_readable_in_other_kqueue_data_is_pending_count) {
    int inner = kq_new(), outer = kq_new();
    struct kevent ev;
    KQ_SET(inner, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(inner, 2, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(outer, inner, EVFILT_READ, EV_ADD, 0, 0, U(7));
    CHECK_NO_EVENT_WITHIN(outer, 20);
    KQ_SET(inner, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    KQ_SET(inner, 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_EVENT_UNTIL(outer, inner, EVFILT_READ, 1000, kq_pred_any, 0, &ev);
    CHECK_EQ_INT(ev.udata, 7);
    CHECK_EQ_INT(ev.data, 2);
    /* Drained: no longer readable. */
    struct kevent got[4];
    CHECK_EQ_INT(KQ_WAIT(inner, got, 4, 0), 2);
    CHECK_NO_EVENT_WITHIN(outer, 20);
    /* A descriptor event in the inner kqueue. */
    int p[2];
    kq_pipe(p);
    KQ_SET(inner, p[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    kq_write_all(p[1], "x", 1);
    CHECK_EVENT_UNTIL(outer, inner, EVFILT_READ, 1000, kq_pred_data_eq, 1, &ev);
    close(outer);
    close(inner);
    close(p[0]);
    close(p[1]);
}

TEST(test_lifetime_kqueue_readable_by_poll_and_epoll_when_events_pending) {
    int kq = kq_new();
    struct pollfd pfd = {kq, POLLIN, 0};
    CHECK_EQ_INT(poll(&pfd, 1, 0), 0); /* nothing pending */
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    pfd.revents = 0;
    CHECK_EQ_INT(poll(&pfd, 1, 1000), 1);
    CHECK(pfd.revents & POLLIN);
    int ep = (int)CHECK_SYS(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ee = {.events = EPOLLIN, .data.u64 = 99};
    CHECK_SYS(epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ee));
    struct epoll_event out;
    CHECK_EQ_INT(epoll_wait(ep, &out, 1, 1000), 1);
    CHECK_EQ_INT(out.data.u64, 99);
    CHECK(out.events & EPOLLIN);
    /* select() too. */
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(kq, &rs);
    struct timeval tv = {1, 0};
    CHECK_EQ_INT(select(kq + 1, &rs, NULL, NULL, &tv), 1);
    CHECK(FD_ISSET(kq, &rs));
    /* A pipe becoming readable wakes a poll() that is already waiting. */
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_all(p[1], "x", 1);
    pfd.revents = 0;
    CHECK_EQ_INT(poll(&pfd, 1, 1000), 1);
    CHECK(pfd.revents & POLLIN);
    close(ep);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_lifetime_register_kqueue_in_itself_einval) {
    int kq = kq_new();
    CHECK_ERR(kq_change_errno(kq, kq, EVFILT_READ, EV_ADD, 0, 0, NULL), EINVAL);
    CHECK_NO_EVENT(kq);
    close(kq);
}

RUN_TESTS()
