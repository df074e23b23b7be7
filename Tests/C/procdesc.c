/*
 * SPEC.md 3, EVFILT_PROCDESC, and <sys/procdesc.h>: pdfork, pdgetpid, pdkill with FreeBSD's
 * semantics (sys/kern/sys_procdesc.c, kern_fork.c, kern_sig.c, kern_exit.c): no SIGCHLD and
 * not seen by wait(WAIT_ANY); NOTE_EXIT with the wait status; the last close of the
 * descriptor kills a running child (SIGKILL) unless PD_DAEMON, and reaps an exited one;
 * PD_CLOEXEC; FreeBSD's errnos.
 *
 * The children answer pings on a pipe, so "still alive" is asked, never assumed from a wait:
 * a child that got SIGKILL in close() cannot answer afterwards. Every wait is bounded.
 */
#include "kqtest.h"

#include <sys/procdesc.h>
#include <sys/syscall.h>

/* A pdfork'd child that answers each byte on `ping` with one on `pong`, until `ping` is at its
 * end; then it exits with `code`. */
struct child {
    pid_t pid;
    int fd;
    int ping; /* write end: a byte asks for an answer */
    int pong; /* read end */
};

static struct child start_child(int flags, int code) {
    int a[2], b[2];
    CHECK_SYS(pipe2(a, O_CLOEXEC));
    CHECK_SYS(pipe2(b, O_CLOEXEC));
    struct child c;
    fflush(stdout);
    fflush(stderr);
    c.fd = -1;
    c.pid = pdfork(&c.fd, flags);
    CHECK(c.pid >= 0);
    if (c.pid == 0) {
        close(a[1]);
        close(b[0]);
        char byte;
        while (read(a[0], &byte, 1) == 1) {
            if (write(b[1], &byte, 1) != 1) _exit(99);
        }
        _exit(code);
    }
    close(a[0]);
    close(b[1]);
    c.ping = a[1];
    c.pong = b[0];
    CHECK(c.fd >= 0);
    return c;
}

/* 1 when the child answered a ping within 5 s, 0 when it cannot (gone). */
static int answers(struct child *c) {
    if (write(c->ping, "p", 1) != 1) return 0;
    struct pollfd poller = {c->pong, POLLIN, 0};
    if (poll(&poller, 1, 5000) != 1) return 0;
    char byte;
    return read(c->pong, &byte, 1) == 1;
}

/* An independent observer of the child's exit: EVFILT_PROC NOTE_EXIT on its pid. Returns the
 * wait status within 5 s. */
static int observer_new(pid_t pid) {
    int kq = kq_new();
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    return kq;
}

static int observed_status(int kq, pid_t pid) {
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, pid, EVFILT_PROC, 5000, kq_pred_any, 0, &ev);
    CHECK(ev.fflags & NOTE_EXIT);
    return (int)ev.data;
}

/* The child was reaped (by the library's reaper): its pid is gone within 5 s. */
static void check_reaped_soon(pid_t pid) {
    int64_t deadline = kq_now_ns() + 5000000000LL;
    while (kill(pid, 0) == 0) {
        CHECK_MSG(kq_now_ns() < deadline, "pid %d still exists (a zombie nobody reaped?)", (int)pid);
        struct timespec step = {0, 1000000};
        nanosleep(&step, NULL);
    }
    CHECK_EQ_INT(errno, ESRCH);
}

/* ---- pdfork, EVFILT_PROCDESC ------------------------------------------------------------ */

static volatile sig_atomic_t sigchld_count;
static void on_sigchld(int sig) {
    (void)sig;
    sigchld_count++;
}

TEST(test_procdesc_note_exit_wait_status_no_sigchld_not_seen_by_wait_any) {
    signal(SIGCHLD, on_sigchld);
    struct child c = start_child(0, 7);
    pid_t pid = 0;
    CHECK_SYS(pdgetpid(c.fd, &pid));
    CHECK_EQ_INT(pid, c.pid);
    int kq = kq_new();
    KQ_SET(kq, c.fd, EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, (void *)0x77);
    CHECK_NO_EVENT(kq);
    CHECK(answers(&c));
    close(c.ping); /* the child exits with 7 */
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK_EQ_INT(ev.ident, c.fd);
    CHECK_EQ_INT(ev.filter, EVFILT_PROCDESC);
    CHECK_EQ_HEX(ev.fflags, NOTE_EXIT);
    CHECK(WIFEXITED((int)ev.data));
    CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 7);
    CHECK_EQ_HEX(ev.flags, EV_CLEAR | EV_EOF | EV_ONESHOT);
    CHECK(ev.udata == (void *)0x77);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_change_errno(kq, c.fd, EVFILT_PROCDESC, EV_DELETE, 0, 0, NULL), ENOENT);
    /* FreeBSD: no SIGCHLD, and wait(WAIT_ANY) skips it (ECHILD: no other child). */
    CHECK_EQ_INT(sigchld_count, 0);
    int status;
    CHECK_ERRNO(waitpid(-1, &status, WNOHANG), ECHILD);
    /* A zombie still takes signals (ignored) and keeps its pid. */
    CHECK_SYS(pdkill(c.fd, SIGTERM));
    CHECK_SYS(pdgetpid(c.fd, &pid));
    CHECK_EQ_INT(pid, c.pid);
    CHECK(kill(c.pid, 0) == 0);
    /* The last close reaps it at once. */
    close(c.fd);
    CHECK_ERRNO(kill(c.pid, 0), ESRCH);
    CHECK_EQ_INT(sigchld_count, 0);
    close(c.pong);
    close(kq);
}

TEST(test_procdesc_registered_after_exit_reports_at_once) {
    struct child c = start_child(0, 3);
    int kq = observer_new(c.pid);
    close(c.ping);
    CHECK_EQ_INT(WEXITSTATUS(observed_status(kq, c.pid)), 3);
    KQ_SET(kq, c.fd, EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.fflags, NOTE_EXIT);
    CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 3);
    CHECK_EQ_HEX(ev.flags, EV_CLEAR | EV_EOF | EV_ONESHOT);
    close(c.fd);
    close(c.pong);
    close(kq);
}

TEST(test_procdesc_pdkill_signal_shows_in_the_wait_status) {
    struct child c = start_child(0, 0);
    int kq = kq_new();
    KQ_SET(kq, c.fd, EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, NULL);
    CHECK_SYS(pdkill(c.fd, 0)); /* a permission check only */
    CHECK(answers(&c));
    CHECK_SYS(pdkill(c.fd, SIGTERM));
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK(WIFSIGNALED((int)ev.data));
    CHECK_EQ_INT(WTERMSIG((int)ev.data), SIGTERM);
    close(c.fd);
    close(c.ping);
    close(c.pong);
    close(kq);
}

TEST(test_procdesc_without_note_exit_the_knote_is_dropped_at_exit) {
    struct child c = start_child(0, 0);
    int kq = kq_new();
    KQ_SET(kq, c.fd, EVFILT_PROCDESC, EV_ADD, 0, 0, NULL);
    int observer = observer_new(c.pid);
    close(c.ping);
    observed_status(observer, c.pid);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_change_errno(kq, c.fd, EVFILT_PROCDESC, EV_DELETE, 0, 0, NULL), ENOENT);
    close(c.fd);
    close(c.pong);
    close(kq);
    close(observer);
}

TEST(test_procdesc_close_of_the_descriptor_removes_its_knote) {
    struct child c = start_child(0, 0);
    int kq = kq_new();
    int observer = observer_new(c.pid);
    int copy = (int)CHECK_SYS(dup(c.fd));
    KQ_SET(kq, copy, EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, NULL);
    close(copy);
    CHECK(answers(&c)); /* c.fd is still open: not killed */
    CHECK_SYS(pdkill(c.fd, SIGTERM));
    CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGTERM);
    CHECK_NO_EVENT(kq); /* the knote went with its descriptor */
    close(c.ping);
    close(c.fd);
    close(c.pong);
    close(kq);
    close(observer);
}

/* ---- the last close --------------------------------------------------------------------- */

TEST(test_procdesc_close_of_the_last_descriptor_kills_a_running_child) {
    struct child c = start_child(0, 0);
    int observer = observer_new(c.pid);
    CHECK(answers(&c));
    close(c.fd);
    int status = observed_status(observer, c.pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ_INT(WTERMSIG(status), SIGKILL);
    CHECK(!answers(&c));
    check_reaped_soon(c.pid);
    close(c.ping);
    close(c.pong);
    close(observer);
}

TEST(test_procdesc_duplicates_keep_it_alive_until_the_last_is_closed) {
    struct child c = start_child(0, 0);
    int observer = observer_new(c.pid);
    int copy = (int)CHECK_SYS(dup(c.fd));
    int copy2 = (int)CHECK_SYS(fcntl(c.fd, F_DUPFD_CLOEXEC, 100));
    int copy3 = (int)CHECK_SYS(dup2(c.fd, 200));
    close(c.fd);
    CHECK(answers(&c));
    close(copy);
    CHECK(answers(&c));
    close(copy2);
    CHECK(answers(&c));
    close(copy3);
    CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGKILL);
    check_reaped_soon(c.pid);
    close(c.ping);
    close(c.pong);
    close(observer);
}

TEST(test_procdesc_dup2_over_the_last_descriptor_kills_and_close_range_too) {
    struct child c = start_child(0, 0);
    int observer = observer_new(c.pid);
    int devnull = (int)CHECK_SYS(open("/dev/null", O_RDONLY | O_CLOEXEC));
    CHECK_SYS(dup2(devnull, c.fd));
    CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGKILL);
    close(c.fd);
    close(observer);
    struct child d = start_child(0, 0);
    observer = observer_new(d.pid);
    CHECK_SYS(close_range((unsigned)d.fd, (unsigned)d.fd, 0));
    CHECK_EQ_INT(WTERMSIG(observed_status(observer, d.pid)), SIGKILL);
    check_reaped_soon(d.pid);
    close(devnull);
    close(c.ping);
    close(c.pong);
    close(d.ping);
    close(d.pong);
    close(observer);
}

TEST(test_procdesc_pd_daemon_survives_the_last_close_and_is_reaped_when_it_exits) {
    struct child c = start_child(PD_DAEMON, 5);
    int observer = observer_new(c.pid);
    close(c.fd);
    CHECK(answers(&c));
    close(c.ping); /* now it exits by itself */
    CHECK_EQ_INT(WEXITSTATUS(observed_status(observer, c.pid)), 5);
    check_reaped_soon(c.pid);
    close(c.pong);
    close(observer);
}

TEST(test_procdesc_an_exited_child_is_reaped_by_the_last_close) {
    struct child c = start_child(0, 9);
    int observer = observer_new(c.pid);
    close(c.ping);
    CHECK_EQ_INT(WEXITSTATUS(observed_status(observer, c.pid)), 9);
    CHECK(kill(c.pid, 0) == 0); /* a zombie while the descriptor is open */
    close(c.fd);
    CHECK_ERRNO(kill(c.pid, 0), ESRCH);
    close(c.pong);
    close(observer);
}

/* A fork child holds a copy of every descriptor: the child process lives until the last copy,
 * in whichever process, goes away; here the holder closes it and then exits. */
TEST(test_procdesc_a_fork_child_copy_keeps_it_alive_until_the_holder_closes_it) {
    struct child c = start_child(0, 0);
    int observer = observer_new(c.pid);
    int go[2];
    CHECK_SYS(pipe2(go, O_CLOEXEC));
    pid_t holder = kq_fork();
    if (holder == 0) {
        char byte;
        if (read(go[0], &byte, 1) != 1) _exit(1);
        close(c.fd); /* the last reference: SIGKILL from this process */
        if (read(go[0], &byte, 1) != 1) _exit(1);
        _exit(0);
    }
    close(c.fd);
    CHECK(answers(&c)); /* the holder's copy keeps it alive */
    CHECK_EQ_INT(write(go[1], "1", 1), 1);
    CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGKILL);
    check_reaped_soon(c.pid); /* reaped by this process, its parent */
    CHECK_EQ_INT(write(go[1], "2", 1), 1);
    int status;
    CHECK(kq_waitpid_bounded(holder, &status, 5000));
    CHECK_EQ_INT(status, 0);
    close(go[0]);
    close(go[1]);
    close(c.ping);
    close(c.pong);
    close(observer);
}

TEST(test_procdesc_a_fork_child_holding_the_last_copy_exits_and_kills_it) {
    struct child c = start_child(0, 0);
    int observer = observer_new(c.pid);
    int go[2];
    CHECK_SYS(pipe2(go, O_CLOEXEC));
    pid_t holder = kq_fork();
    if (holder == 0) {
        char byte;
        (void)read(go[0], &byte, 1);
        _exit(0); /* exit releases the copy without any close() call */
    }
    close(c.fd);
    CHECK(answers(&c));
    CHECK_EQ_INT(write(go[1], "x", 1), 1);
    CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGKILL);
    check_reaped_soon(c.pid);
    int status;
    CHECK(kq_waitpid_bounded(holder, &status, 5000));
    close(go[0]);
    close(go[1]);
    close(c.ping);
    close(c.pong);
    close(observer);
}

/* exec with PD_CLOEXEC drops the holder's copy; without it the copy survives the exec. */
static void exec_holder(int cloexec) {
    struct child c = start_child(cloexec ? PD_CLOEXEC : 0, 0);
    int flags = (int)CHECK_SYS(fcntl(c.fd, F_GETFD));
    CHECK_EQ_INT(flags & FD_CLOEXEC, cloexec ? FD_CLOEXEC : 0);
    int observer = observer_new(c.pid);
    int ready[2];
    CHECK_SYS(pipe(ready)); /* inherited by the exec'd shell: it writes when it runs */
    pid_t holder = kq_fork();
    if (holder == 0) {
        char command[64];
        snprintf(command, sizeof command, "echo x >/dev/fd/%d; exec sleep 30", ready[1]);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    char byte;
    struct pollfd poller = {ready[0], POLLIN, 0};
    CHECK(poll(&poller, 1, 5000) == 1 && read(ready[0], &byte, 1) == 1); /* exec'd */
    close(c.fd);
    if (cloexec) {
        CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGKILL);
    } else {
        CHECK(answers(&c)); /* the exec'd holder still has it */
    }
    kill(holder, SIGKILL);
    int status;
    CHECK(kq_waitpid_bounded(holder, &status, 5000));
    if (!cloexec) CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGKILL);
    check_reaped_soon(c.pid);
    close(ready[0]);
    close(c.ping);
    close(c.pong);
    close(observer);
}

TEST(test_procdesc_pd_cloexec_exec_of_the_holder_releases_it) { exec_holder(1); }

TEST(test_procdesc_without_pd_cloexec_an_exec_keeps_it) { exec_holder(0); }

/* A copy passed over a UNIX socket is a reference too (FreeBSD: DFLAG_PASSABLE). */
TEST(test_procdesc_a_copy_passed_over_a_unix_socket_keeps_it_alive) {
    int sp[2];
    CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    pid_t receiver = kq_fork(); /* forked first: it inherits no copy */
    if (receiver == 0) {
        close(sp[0]);
        char byte;
        char control[CMSG_SPACE(sizeof(int))];
        struct iovec io = {&byte, 1};
        struct msghdr message = {0};
        message.msg_iov = &io;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        if (recvmsg(sp[1], &message, 0) != 1) _exit(1);
        int received;
        memcpy(&received, CMSG_DATA(CMSG_FIRSTHDR(&message)), sizeof received);
        if (write(sp[1], "r", 1) != 1) _exit(2);
        if (read(sp[1], &byte, 1) != 1) _exit(3);
        close(received);
        _exit(0);
    }
    close(sp[1]);
    struct child c = start_child(0, 0);
    int observer = observer_new(c.pid);
    char byte = 'd';
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec io = {&byte, 1};
    struct msghdr message = {0};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &c.fd, sizeof(int));
    CHECK_EQ_INT(sendmsg(sp[0], &message, 0), 1);
    kq_read_n(sp[0], &byte, 1); /* received */
    close(c.fd);
    CHECK(answers(&c));
    CHECK_EQ_INT(write(sp[0], "c", 1), 1); /* the receiver closes its copy */
    CHECK_EQ_INT(WTERMSIG(observed_status(observer, c.pid)), SIGKILL);
    check_reaped_soon(c.pid);
    int status;
    CHECK(kq_waitpid_bounded(receiver, &status, 5000));
    CHECK_EQ_INT(status, 0);
    close(sp[0]);
    close(c.ping);
    close(c.pong);
    close(observer);
}

/* FreeBSD: the parent's exit closes its descriptors, so the child is killed. */
static void exiting_parent(void *arg) {
    int report = *(int *)arg;
    struct child c = start_child(0, 0);
    CHECK_EQ_INT(write(report, &c.pid, sizeof c.pid), (ssize_t)sizeof c.pid);
    CHECK(answers(&c));
    _exit(0); /* with the descriptor open */
}

TEST(test_procdesc_exit_of_the_parent_kills_the_child) {
    int report[2];
    CHECK_SYS(pipe2(report, O_CLOEXEC));
    pid_t pid = 0;
    int kq = -1;
    kq_run_child(exiting_parent, &report[1], 5000);
    CHECK_EQ_INT(read(report[0], &pid, sizeof pid), (ssize_t)sizeof pid);
    /* It is init's now: watch it until it is gone. */
    int64_t deadline = kq_now_ns() + 5000000000LL;
    while (kill(pid, 0) == 0) {
        char path[64], state = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *file = fopen(path, "re");
        if (file != NULL) {
            if (fscanf(file, "%*d %*s %c", &state) != 1) state = 0;
            fclose(file);
        }
        if (state == 'Z') break; /* killed; its new parent reaps it when it does */
        CHECK_MSG(kq_now_ns() < deadline, "the child of an exited parent still runs");
        struct timespec step = {0, 1000000};
        nanosleep(&step, NULL);
    }
    (void)kq;
    close(report[0]);
    close(report[1]);
}

/* ---- wait ------------------------------------------------------------------------------- */

TEST(test_procdesc_explicit_waitpid_reaps_it_then_pdkill_is_esrch_and_pdgetpid_still_works) {
    struct child c = start_child(0, 4);
    int status;
    CHECK_ERRNO(waitpid(-1, &status, WNOHANG), ECHILD);
    close(c.ping);
    CHECK_EQ_INT(waitpid(c.pid, &status, 0), c.pid); /* FreeBSD: P_PID reaps it */
    CHECK_EQ_INT(WEXITSTATUS(status), 4);
    CHECK_ERRNO(pdkill(c.fd, SIGTERM), ESRCH);
    pid_t pid = 0;
    CHECK_SYS(pdgetpid(c.fd, &pid));
    CHECK_EQ_INT(pid, c.pid);
    /* EVFILT_PROCDESC still reports the exit with its status. */
    int kq = kq_new();
    KQ_SET(kq, c.fd, EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.fflags & NOTE_EXIT, NOTE_EXIT);
    if (!(ev.fflags & NOTE_EXIT_UNKNOWN)) CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 4);
    close(c.fd);
    close(c.pong);
    close(kq);
}

/* ---- bad input -------------------------------------------------------------------------- */

TEST(test_procdesc_bad_input_freebsd_errnos) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    int closed = dup(p[0]);
    close(closed);
    pid_t pid = 0;
    int fd = -1;
    /* sys_procdesc.c kern_pdgetpid / procdesc_find: EBADF, also for a non-procdesc file. */
    CHECK_ERRNO(pdgetpid(closed, &pid), EBADF);
    CHECK_ERRNO(pdgetpid(-1, &pid), EBADF);
    CHECK_ERRNO(pdgetpid(p[0], &pid), EBADF);
    CHECK_ERRNO(pdkill(p[0], SIGTERM), EBADF);
    CHECK_ERRNO(pdkill(closed, SIGTERM), EBADF);
    /* kern_sig.c sys_pdkill: the signal is checked first, (u_int)signum > _SIG_MAXSIG. */
    CHECK_ERRNO(pdkill(closed, -1), EINVAL);
    CHECK_ERRNO(pdkill(p[0], 129), EINVAL);
    /* kern_fork.c fork1: flags outside PD_ALLOWED_AT_FORK. */
    CHECK_ERRNO(pdfork(&fd, 0x4), EINVAL);
    CHECK_ERRNO(pdfork(&fd, -1), EINVAL);
    CHECK_EQ_INT(fd, -1);
    /* EVFILT_PROCDESC: a closed number is EBADF (f_isfd); another file's fo_kqfilter EINVAL. */
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)closed, EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, NULL), EBADF);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)p[0], EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, NULL), EINVAL);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)kq, EVFILT_PROCDESC, EV_ADD, NOTE_EXIT, 0, NULL), EINVAL);
    struct child c = start_child(0, 0);
    CHECK_ERRNO(pdkill(c.fd, 65), EINVAL); /* Linux has no signal 65..128 */
    close(c.ping);
    close(c.fd);
    close(c.pong);
    close(p[0]);
    close(p[1]);
    close(kq);
}

RUN_TESTS()
