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

RUN_TESTS()
