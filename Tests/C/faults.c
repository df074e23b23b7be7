/*
 * Fault injection: an internal system call of the library fails, and the caller sees its
 * errno, no descriptor leaks (counted in /proc/self/fd) and the kqueue stays usable or is
 * cleanly gone.
 *
 * The failures are injected through kqueue_test_inject_fault(), which only debug builds of
 * libkqueue.so export (it is not part of <sys/event.h>): without it every test skips.
 *
 *   kqueue_test_inject_fault("epoll_ctl", ENOMEM, skip, count): the next `skip` calls of
 *   epoll_ctl by the library succeed, the `count` after them fail with ENOMEM.
 */
#include "kqtest.h"

#include <dlfcn.h>

typedef int (*inject_fn)(const char *call, int error, int skip, int count);

static inject_fn injector(void) {
    inject_fn fn = (inject_fn)dlsym(RTLD_DEFAULT, "kqueue_test_inject_fault");
    if (fn == NULL) SKIP("libkqueue.so has no fault injector (a release build)");
    return fn;
}

static void inject(const char *call, int error, int skip, int count) {
    CHECK_MSG(injector()(call, error, skip, count) == 0, "unknown call %s", call);
}

static void disarm(void) { injector()("read", 0, 0, 0); }

/* One change with a one-entry eventlist: the change's EV_ERROR errno, or 0 when applied. */
static int change_error(int kq, uintptr_t ident, short filter, unsigned short flags, unsigned int fflags,
                        int64_t data) {
    struct kevent ch, out;
    EV_SET(&ch, ident, filter, flags | EV_RECEIPT, fflags, data, NULL);
    int n = (int)CHECK_SYS(kevent(kq, &ch, 1, &out, 1, NULL));
    CHECK_EQ_INT(n, 1);
    CHECK_MSG(out.flags & EV_ERROR, "expected an EV_ERROR entry, got %s", kq_ev_str(&out));
    return (int)out.data;
}

/* kqueue() whose epoll_create1, eventfd (the first or a later one) or epoll_ctl fails:
 * -1 with that errno, and every descriptor opened before the failure is closed again. */
static void check_kqueue_fails(const char *call, int skip, int error) {
    int before = kq_fd_count();
    inject(call, error, skip, 1);
    errno = 0;
    int kq = kqueue();
    int saved = errno;
    disarm();
    CHECK_MSG(kq == -1 && saved == error, "%s (skip %d) failing with %s: kqueue() returned %d, errno %s", call,
              skip, kq_errname(error), kq, kq_errname(saved));
    CHECK_EQ_INT(kq_fd_count(), before);
}

TEST(test_faults_kqueue_reports_epoll_create1_errno_without_leaking) {
    int errors[] = {EMFILE, ENFILE, ENOMEM};
    for (int i = 0; i < 3; i++) check_kqueue_fails("epoll_create1", 0, errors[i]);
}

TEST(test_faults_kqueue_reports_eventfd_errno_without_leaking) {
    int errors[] = {EMFILE, ENFILE, ENOMEM};
    /* skip 0: the kqueue's primary eventfd; 1..3: its extra wakeup eventfds. */
    for (int skip = 0; skip < 4; skip++)
        for (int i = 0; i < 3; i++) check_kqueue_fails("eventfd", skip, errors[i]);
}

TEST(test_faults_kqueue_reports_epoll_ctl_errno_without_leaking) {
    for (int skip = 0; skip < 4; skip++) check_kqueue_fails("epoll_ctl", skip, ENOMEM);
}

TEST(test_faults_kqueue_still_works_after_failed_creations) {
    check_kqueue_fails("eventfd", 2, EMFILE);
    int kq = kq_new();
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 1);
    close(kq);
}

/* A timer's timerfd (created on first use) cannot be created: that change fails with the
 * errno, nothing leaks, and a later timer works. */
TEST(test_faults_timer_add_reports_timerfd_create_errno) {
    int errors[] = {EMFILE, ENFILE, ENOMEM};
    int kq = kq_new();
    int before = kq_fd_count();
    for (int i = 0; i < 3; i++) {
        inject("timerfd_create", errors[i], 0, 1);
        CHECK_ERR(change_error(kq, 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_MSECONDS, 1), errors[i]);
        CHECK_EQ_INT(kq_fd_count(), before);
        CHECK_ERR(kq_change_errno(kq, 7, EVFILT_TIMER, EV_DELETE, 0, 0, NULL), ENOENT);
    }
    KQ_SET(kq, 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_MSECONDS, 1, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 2000);
    CHECK_EQ_INT(ev.filter, EVFILT_TIMER);
    close(kq);
}

/* EVFILT_VNODE's inotify instance cannot be created: that change fails with the errno. */
TEST(test_faults_vnode_add_reports_inotify_init1_errno) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/kqtest-faults.XXXXXX");
    int fd = (int)CHECK_SYS(mkstemp(path));
    unlink(path);
    int kq = kq_new();
    int before = kq_fd_count();
    int errors[] = {EMFILE, ENFILE, ENOMEM};
    for (int i = 0; i < 3; i++) {
        inject("inotify_init1", errors[i], 0, 1);
        CHECK_ERR(change_error(kq, (uintptr_t)fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0), errors[i]);
        CHECK_EQ_INT(kq_fd_count(), before);
    }
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    CHECK_SYS(write(fd, "x", 1));
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 2000);
    CHECK(ev.fflags & NOTE_WRITE); /* with NOTE_EXTEND: the file grew */
    close(kq);
    close(fd);
}

/* epoll_ctl fails for the second of three changes: that change gets its EV_ERROR entry, the
 * first and third apply, and the second can be added afterwards. */
TEST(test_faults_epoll_ctl_failing_mid_changelist_fails_only_that_change) {
    int p[3][2];
    for (int i = 0; i < 3; i++) CHECK_SYS(pipe(p[i]));
    int kq = kq_new();
    struct kevent ch[3], out[3];
    for (int i = 0; i < 3; i++) EV_SET(&ch[i], p[i][0], EVFILT_READ, EV_ADD, 0, 0, (void *)(intptr_t)i);
    inject("epoll_ctl", ENOMEM, 1, 1);
    int n = (int)CHECK_SYS(kevent(kq, ch, 3, out, 3, &(struct timespec){0, 0}));
    disarm();
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(out[0].ident, p[1][0]);
    CHECK_EQ_HEX(out[0].flags, EV_ERROR);
    CHECK_EQ_INT(out[0].data, ENOMEM);
    CHECK_ERR(kq_change_errno(kq, p[1][0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    for (int i = 0; i < 3; i++) CHECK_SYS(write(p[i][1], "x", 1));
    n = KQ_WAIT(kq, out, 3, 1000);
    CHECK_EQ_INT(n, 2);
    CHECK((out[0].ident == (uintptr_t)p[0][0] && out[1].ident == (uintptr_t)p[2][0]) ||
          (out[0].ident == (uintptr_t)p[2][0] && out[1].ident == (uintptr_t)p[0][0]));
    KQ_SET(kq, p[1][0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    n = KQ_WAIT(kq, out, 3, 1000);
    CHECK_EQ_INT(n, 3);
    close(kq);
    for (int i = 0; i < 3; i++) {
        close(p[i][0]);
        close(p[i][1]);
    }
}

/* Reading the timerfd is interrupted (EINTR, retried) or finds nothing (EAGAIN): the timer
 * still fires once with data 1. */
static void check_timer_survives_read_fault(int error, int count) {
    int kq = kq_new();
    KQ_SET(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_MSECONDS, 5, NULL);
    inject("read", error, 0, count);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 2000);
    disarm();
    CHECK_EQ_INT(ev.filter, EVFILT_TIMER);
    CHECK_EQ_INT(ev.data, 1);
    CHECK_NO_EVENT(kq);
    close(kq);
}

TEST(test_faults_timerfd_read_eintr_is_retried) { check_timer_survives_read_fault(EINTR, 3); }

TEST(test_faults_timerfd_read_eagain_still_fires_the_timer) { check_timer_survives_read_fault(EAGAIN, 1); }

/* Reading inotify is interrupted or finds nothing once: the change is still reported, by
 * this wait or the next one (inotify stays readable until it is read). */
static void check_vnode_survives_read_fault(int error) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/kqtest-faults.XXXXXX");
    int fd = (int)CHECK_SYS(mkstemp(path));
    unlink(path);
    int kq = kq_new();
    KQ_SET(kq, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, NULL);
    inject("read", error, 0, 1);
    CHECK_SYS(write(fd, "x", 1));
    struct kevent ev;
    int n = 0;
    for (int tries = 0; tries < 20 && n == 0; tries++) n = KQ_WAIT(kq, &ev, 1, 100);
    disarm();
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev.filter, EVFILT_VNODE);
    CHECK(ev.fflags & NOTE_WRITE); /* with NOTE_EXTEND: the file grew */
    close(kq);
    close(fd);
}

TEST(test_faults_inotify_read_eintr_is_retried) { check_vnode_survives_read_fault(EINTR); }

TEST(test_faults_inotify_read_eagain_reports_the_change_later) { check_vnode_survives_read_fault(EAGAIN); }

/* pidfd_open fails with EMFILE: EVFILT_PROC's change fails with it (not ESRCH). */
TEST(test_faults_proc_add_reports_pidfd_open_errno) {
    int kq = kq_new();
    int before = kq_fd_count();
    inject("pidfd_open", EMFILE, 0, 1);
    CHECK_ERR(change_error(kq, (uintptr_t)getpid(), EVFILT_PROC, EV_ADD, NOTE_EXIT, 0), EMFILE);
    CHECK_EQ_INT(kq_fd_count(), before);
    close(kq);
}

RUN_TESTS()
