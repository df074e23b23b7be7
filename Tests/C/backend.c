/*
 * The readiness backends (docs/ARCHITECTURE.md, "The io_uring backend"): KQUEUE_BACKEND picks
 * epoll or io_uring; io_uring asked for but unavailable (a seccomp filter, a failed ring set-up)
 * gives a working epoll kqueue; a descriptor closed while its poll is pending is let go at once
 * (the peer sees EOF); no ring reaches a fork child or an exec'd program.
 *
 * Each test runs in its own forked process (kqtest.h), so KQUEUE_BACKEND set at its start is
 * read by its first kqueue().
 */
#include "kqtest.h"

#include <dirent.h>
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* io_uring rings among this process's descriptors (anon_inode:[io_uring]). */
static int ring_descriptors(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        char path[300], target[128];
        snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        if (strcmp(target, "anon_inode:[io_uring]") == 0) count++;
    }
    closedir(dir);
    return count;
}

/* io_uring can be set up here (else the io_uring tests skip: old kernel, sysctl, seccomp). */
static int io_uring_available(void) {
    char params[120];
    memset(params, 0, sizeof params);
    int fd = (int)syscall(__NR_io_uring_setup, 4, params);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

/* A kqueue on `backend` delivers a pipe's READ event with its byte count. */
static void check_kqueue_works(int kq) {
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(p[1], "abc", 3);
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, p[0], EVFILT_READ, 1000, kq_pred_data_eq, 3, &ev);
    close(p[0]);
    close(p[1]);
}

TEST(test_backend_io_uring_asked_gives_a_ring) {
    if (!io_uring_available()) SKIP("io_uring unavailable here");
    setenv("KQUEUE_BACKEND", "io_uring", 1);
    int kq = kq_new();
    CHECK_EQ_INT(ring_descriptors(), 1);
    check_kqueue_works(kq);
    close(kq);
    CHECK_EQ_INT(ring_descriptors(), 0);
}

TEST(test_backend_epoll_asked_gives_no_ring) {
    setenv("KQUEUE_BACKEND", "epoll", 1);
    int kq = kq_new();
    CHECK_EQ_INT(ring_descriptors(), 0);
    check_kqueue_works(kq);
    close(kq);
}

TEST(test_backend_seccomp_denying_io_uring_setup_falls_back_to_epoll) {
    /* This test's process (a forked child) refuses io_uring_setup with EPERM from here on. */
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
    CHECK_SYS(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    CHECK_SYS(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program));
    CHECK(!io_uring_available());
    setenv("KQUEUE_BACKEND", "io_uring", 1);
    int kq = kq_new();
    CHECK_EQ_INT(ring_descriptors(), 0);
    check_kqueue_works(kq);
    close(kq);
}

TEST(test_backend_ring_setup_enomem_falls_back_to_epoll) {
    typedef int (*inject_fn)(const char *call, int error, int skip, int count);
    inject_fn inject = (inject_fn)dlsym(RTLD_DEFAULT, "kqueue_test_inject_fault");
    if (inject == NULL) SKIP("libkqueue.so has no fault injector (a release build)");
    setenv("KQUEUE_BACKEND", "io_uring", 1);
    int errors[] = {ENOMEM, EPERM};
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(inject("io_uring_setup", errors[i], 0, 1), 0);
        int kq = kq_new();
        CHECK_EQ_INT(ring_descriptors(), 0);
        check_kqueue_works(kq);
        close(kq);
    }
    inject("io_uring_setup", 0, 0, 0);
}

TEST(test_backend_close_with_poll_pending_lets_the_file_go) {
    if (!io_uring_available()) SKIP("io_uring unavailable here");
    setenv("KQUEUE_BACKEND", "io_uring", 1);
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD | EV_DISPATCH, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev); /* WRITE: its poll completed; READ's is pending */
    int number = sv[0];
    CHECK_SYS(close(sv[0]));
    /* The socket is gone: its peer reads EOF at once (a poll still holding it would keep it
     * open, and the peer would read EAGAIN). */
    char c;
    CHECK_EQ_INT(read(sv[1], &c, 1), 0);
    CHECK_NO_EVENT(kq);
    /* A new file behind the same number starts clean. */
    int p[2];
    kq_pipe(p);
    if (p[0] != number) {
        CHECK_SYS(dup2(p[0], number));
        close(p[0]);
    }
    kq_write_all(p[1], "x", 1);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(kq);
    close(number);
    close(p[1]);
    close(sv[1]);
}

TEST(test_backend_fork_child_has_no_ring_and_no_kqueue) {
    if (!io_uring_available()) SKIP("io_uring unavailable here");
    setenv("KQUEUE_BACKEND", "io_uring", 1);
    int kq = kq_new();
    CHECK_EQ_INT(ring_descriptors(), 1);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct kevent ev;
        struct timespec zero = {0, 0};
        int ok = ring_descriptors() == 0 && kevent(kq, NULL, 0, &ev, 1, &zero) == -1 && errno == EBADF;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child saw a ring or a live kqueue");
    check_kqueue_works(kq); /* the parent's kqueue is untouched */
    close(kq);
}

TEST(test_backend_exec_leaves_no_ring) {
    if (!io_uring_available()) SKIP("io_uring unavailable here");
    setenv("KQUEUE_BACKEND", "io_uring", 1);
    int kq = kq_new();
    int out[2];
    CHECK_SYS(pipe(out));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        execl("/bin/sh", "sh", "-c", "ls -l /proc/$$/fd/", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char listing[8192];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof listing - 1 && (n = read(out[0], listing + used, sizeof listing - 1 - used)) > 0) {
        used += (size_t)n;
    }
    listing[used] = 0;
    close(out[0]);
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK_MSG(strstr(listing, "io_uring") == NULL && strstr(listing, "eventpoll") == NULL,
              "the exec'd program holds the kqueue's descriptors:\n%s", listing);
    close(kq);
}

/* TCP: READ's data on io_uring comes through the ring (SIOCINQ linked after the read poll, in
 * the same submission as the wait) where the kernel can, FIONREAD elsewhere: the same counts
 * as on epoll, for a level knote asked again and for an EV_CLEAR one. */
TEST(test_backend_tcp_read_data_is_bytes_readable_on_either_backend) {
    const char *backends[] = {"epoll", "io_uring"};
    for (int b = 0; b < 2; b++) {
        if (b == 1 && !io_uring_available()) break;
        setenv("KQUEUE_BACKEND", backends[b], 1);
        int kq = kq_new();
        int client, server;
        kq_tcp_pair(&client, &server);
        kq_nonblock(server);
        KQ_SET(kq, server, EVFILT_READ, EV_ADD, 0, 0, NULL);
        CHECK_NO_EVENT(kq);
        kq_write_all(client, "hello", 5);
        struct kevent ev;
        CHECK_EVENT_UNTIL(kq, server, EVFILT_READ, 1000, kq_pred_data_eq, 5, &ev);
        kq_write_all(client, "abc", 3);
        CHECK_EVENT_UNTIL(kq, server, EVFILT_READ, 1000, kq_pred_data_eq, 8, &ev);
        char buffer[16];
        CHECK_EQ_INT(read(server, buffer, sizeof buffer), 8);
        CHECK_NO_EVENT_WITHIN(kq, 20);
        KQ_SET(kq, server, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
        kq_write_all(client, "xy", 2);
        CHECK_EVENT_UNTIL(kq, server, EVFILT_READ, 1000, kq_pred_data_eq, 2, &ev);
        close(client);
        CHECK_EVENT_UNTIL(kq, server, EVFILT_READ, 1000, kq_pred_any, 0, &ev);
        CHECK(ev.flags & EV_EOF);
        CHECK_EQ_INT(ev.data, 2);
        close(server);
        close(kq);
    }
}

/* The ring's completions of one registration taken together are one report, their masks
 * joined, as epoll's one ready-list entry: an EV_CLEAR knote (a multishot poll) given data and
 * then its peer's shutdown before it is asked gets both, EV_EOF included, not the data alone
 * with the EOF lost behind it (the scan returns a knote once per call). Both backends. */
TEST(test_backend_completions_of_one_registration_taken_together_are_one_report) {
    const char *backends[] = {"epoll", "io_uring"};
    for (int b = 0; b < 2; b++) {
        if (b == 1 && !io_uring_available()) break;
        setenv("KQUEUE_BACKEND", backends[b], 1);
        for (int capacity = 1; capacity <= 16; capacity += 15) {
            int kq = kq_new();
            int sv[2];
            kq_socketpair(SOCK_STREAM, sv);
            KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
            CHECK_NO_EVENT(kq);
            kq_write_all(sv[1], "x", 1);          /* a completion: IN */
            CHECK_SYS(shutdown(sv[1], SHUT_WR)); /* another: IN|RDHUP */
            struct kevent ev[16];
            int n = KQ_WAIT(kq, ev, capacity, 1000);
            CHECK_EQ_INT(n, 1);
            CHECK_MSG(ev[0].ident == (uintptr_t)sv[0] && (ev[0].flags & EV_EOF) && ev[0].data == 1,
                      "%s, capacity %d: %s", backends[b], capacity, kq_ev_str(&ev[0]));
            CHECK_NO_EVENT(kq);
            close(sv[0]);
            close(sv[1]);
            close(kq);
        }
    }
}

/* Completions the full completion queue could not take wait in the kernel's overflow list
 * (IORING_SQ_CQ_OVERFLOW): a poll ({0,0}) that finds the queue empty flushes them, so what
 * became ready meanwhile is returned, not hidden until some call waits. Both backends. */
TEST(test_backend_an_overflowed_completion_queue_is_flushed_by_a_poll) {
    const char *backends[] = {"epoll", "io_uring"};
    for (int b = 0; b < 2; b++) {
        if (b == 1 && !io_uring_available()) break;
        setenv("KQUEUE_BACKEND", backends[b], 1);
        int kq = kq_new();
        int busy[2], quiet[2];
        kq_pipe(busy);
        kq_pipe(quiet);
        KQ_SET(kq, busy[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
        KQ_SET(kq, quiet[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
        CHECK_NO_EVENT(kq);
        /* A completion per write on io_uring: more than the 2,048 the queue holds. */
        for (int i = 0; i < 3000; i++) kq_write_all(busy[1], "x", 1);
        kq_write_all(quiet[1], "y", 1);
        int saw_busy = 0, saw_quiet = 0;
        for (int call = 0; call < 400 && !saw_quiet; call++) {
            struct kevent ev[16];
            int n = KQ_WAIT(kq, ev, 16, 0);
            for (int k = 0; k < n; k++) {
                if (ev[k].ident == (uintptr_t)busy[0]) saw_busy = 1;
                if (ev[k].ident == (uintptr_t)quiet[0]) saw_quiet = 1;
            }
        }
        CHECK_MSG(saw_busy && saw_quiet, "%s: busy %d, quiet %d after 400 polls", backends[b], saw_busy, saw_quiet);
        close(busy[0]);
        close(busy[1]);
        close(quiet[0]);
        close(quiet[1]);
        close(kq);
    }
}

/* ---- a removal that meets a poll in the middle of its completion ---------------------- */

struct mid_completion {
    int kq, socket, peer, child_running, release_child;
    int close_result;
};

/* While the thread that armed the poll sleeps in vfork (a sleep TWA_SIGNAL does not end, so
 * the poll's task work waits and the poll stays owned), data wakes the poll and the socket is
 * closed: the removal finds the poll mid-completion (EALREADY). */
static void *remove_mid_completion(void *arg) {
    struct mid_completion *m = arg;
    char byte;
    if (syscall(SYS_read, m->child_running, &byte, 1) != 1) return NULL;
    kq_write_all(m->peer, "x", 1);
    m->close_result = close(m->socket);
    (void)syscall(SYS_write, m->release_child, "x", 1);
    return NULL;
}

/* IORING_OP_POLL_REMOVE fails with EALREADY while a poll's completion is under way; the ring
 * answers with IORING_OP_ASYNC_CANCEL, so the removal is complete: a multishot poll (EV_CLEAR)
 * does not go on holding the closed socket, whose peer then reads EOF. */
TEST(test_backend_a_removal_meeting_a_poll_mid_completion_still_lets_the_file_go) {
    if (!io_uring_available()) SKIP("io_uring unavailable here");
    setenv("KQUEUE_BACKEND", "io_uring", 1);
    struct mid_completion m;
    int sv[2], running[2], release[2];
    m.kq = kq_new();
    kq_socketpair(SOCK_STREAM, sv);
    CHECK_SYS(pipe(running));
    CHECK_SYS(pipe(release));
    m.socket = sv[0];
    m.peer = sv[1];
    m.child_running = running[0];
    m.release_child = release[1];
    m.close_result = -2;
    KQ_SET(m.kq, sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL); /* armed by this thread */
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, remove_mid_completion, &m) == 0);
    pid_t child = vfork();
    if (child == 0) {
        char byte;
        (void)syscall(SYS_write, running[1], "r", 1);
        (void)syscall(SYS_read, release[0], &byte, 1);
        _exit(0);
    }
    CHECK(child > 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_EQ_INT(m.close_result, 0);
    CHECK_EQ_INT(waitpid(child, NULL, 0), child);
    /* The poll's task work has run by now (this thread returned to user space). */
    struct pollfd pfd = {sv[1], POLLIN, 0};
    CHECK_MSG(poll(&pfd, 1, 2000) == 1, "the closed socket's peer sees nothing: a poll still holds the socket");
    char c;
    ssize_t got = read(sv[1], &c, 1);
    /* Closed with unread data: the peer reads ECONNRESET (AF_UNIX), else EOF. */
    CHECK_MSG(got == 0 || (got == -1 && errno == ECONNRESET), "read %zd (%s)", got, kq_errname(errno));
    CHECK_NO_EVENT(m.kq);
    close(sv[1]);
    close(m.kq);
    close(running[0]);
    close(running[1]);
    close(release[0]);
    close(release[1]);
}

RUN_TESTS()
