/*
 * SPEC.md 3, EVFILT_PROC: NOTE_EXIT with the wait status, EV_EOF|EV_ONESHOT, EV_CLEAR added,
 * ESRCH for a missing pid, zombies accepted only for NOTE_EXIT, the watcher never reaps.
 * NOTE_FORK / NOTE_EXEC / NOTE_TRACK come from the kernel's process connector; where it is
 * unavailable (no CAP_NET_ADMIN) they fail with ENOTSUP and those tests skip.
 *
 * Children are started blocked on a pipe, so each test decides when they exit; waits are
 * bounded, nothing sleeps a fixed time.
 */
#include "kqtest.h"

#include <sys/prctl.h>
#include <sys/utsname.h>

/* A child that waits for a byte on a pipe, then runs `then(code, signo)`, which does not
 * return. Returns its pid; *release is the pipe end that lets it go. */
static pid_t start_gated_child(void (*then)(int code, int signo), int code, int signo, int *release) {
    int gate[2];
    CHECK_SYS(pipe(gate));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(gate[1]);
        char byte;
        (void)read(gate[0], &byte, 1);
        then(code, signo);
    }
    close(gate[0]);
    *release = gate[1];
    return pid;
}

/* Exits with `code`, or kills itself with `signo` when it is not 0. */
static void exit_or_raise(int code, int signo) {
    if (signo) {
        signal(signo, SIG_DFL);
        raise(signo);
    }
    _exit(code);
}

/* A gated child that exits with `code` (or kills itself with `signo`). */
static pid_t start_child(int code, int signo, int *release) {
    return start_gated_child(exit_or_raise, code, signo, release);
}

static void release_child(int release) {
    CHECK_EQ_INT(write(release, "x", 1), 1);
    close(release);
}

/* Waits (bounded) until `pid` is a zombie, without reaping it. */
static void wait_zombie(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    CHECK_SYS(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT));
    CHECK_EQ_INT(info.si_pid, pid);
}

TEST(test_proc_note_exit_returns_wait_status_with_eof_and_oneshot) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(7, 0, &release);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, (void *)0x1234);
    CHECK_NO_EVENT(kq);
    release_child(release);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK_EQ_INT(ev.ident, pid);
    CHECK_EQ_INT(ev.filter, EVFILT_PROC);
    CHECK_EQ_HEX(ev.fflags, NOTE_EXIT);
    CHECK(WIFEXITED((int)ev.data));
    CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 7);
    CHECK_EQ_HEX(ev.flags, EV_CLEAR | EV_EOF | EV_ONESHOT);
    CHECK(ev.udata == (void *)0x1234);
    /* Oneshot: the knote is gone. */
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)pid, EVFILT_PROC, EV_DELETE, 0, 0, NULL), ENOENT);
    /* The watcher never reaps: the parent still collects the status. */
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK_EQ_INT(WEXITSTATUS(status), 7);
    close(kq);
}

/* The exit status is exact even when someone else reaped the process before the event was
 * collected (the application's waitpid, a SIGCHLD handler, Foundation.Process): the kernel
 * keeps it in the pidfd (PIDFD_GET_INFO, Linux 6.15+). Where it cannot, the event says so
 * with NOTE_EXIT_UNKNOWN instead of a status that looks like a clean exit. */
static void check_status_after_reap(int code, int signo) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(code, signo, &release);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    release_child(release);
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid); /* reaped before kevent() collects */
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK_EQ_INT(ev.ident, pid);
    CHECK(ev.fflags & NOTE_EXIT);
    if (ev.fflags & NOTE_EXIT_UNKNOWN) {
        CHECK_EQ_INT(ev.data, 0);
        struct utsname name;
        uname(&name);
        int major = 0, minor = 0;
        sscanf(name.release, "%d.%d", &major, &minor);
        CHECK_MSG(major < 6 || (major == 6 && minor < 15), "kernel %s has PIDFD_INFO_EXIT", name.release);
        SKIP("kernel %s keeps no exit status in a pidfd: NOTE_EXIT_UNKNOWN, as documented", name.release);
    }
    CHECK_EQ_HEX(ev.fflags, NOTE_EXIT);
    CHECK_EQ_INT((int)ev.data, status);
    close(kq);
}

TEST(test_proc_exit_status_exact_after_the_application_reaped_it) { check_status_after_reap(42, 0); }

TEST(test_proc_exit_status_exact_after_the_application_reaped_a_killed_process) {
    check_status_after_reap(0, SIGKILL);
}

TEST(test_proc_note_exit_of_a_killed_process_reports_the_signal) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(0, SIGTERM, &release);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    release_child(release);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK(WIFSIGNALED((int)ev.data));
    CHECK_EQ_INT(WTERMSIG((int)ev.data), SIGTERM);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_missing_pid_is_esrch) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(0, 0, &release);
    release_child(release);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid); /* reaped: the pid no longer exists */
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL), ESRCH);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)INT_MAX, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL), ESRCH);
    close(kq);
}

TEST(test_proc_zombie_accepted_with_note_exit_and_reported_at_once) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(3, 0, &release);
    release_child(release);
    wait_zombie(pid);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.fflags, NOTE_EXIT);
    CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 3);
    CHECK(ev.flags & EV_EOF);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_zombie_without_note_exit_is_esrch) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(0, 0, &release);
    release_child(release);
    wait_zombie(pid);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)pid, EVFILT_PROC, EV_ADD, 0, 0, NULL), ESRCH);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_exit_without_note_exit_drops_knote_silently) {
    /* FreeBSD's EV_DROP: the process is gone and nothing that happened was asked for. */
    int kq = kq_new();
    int release;
    pid_t pid = start_child(0, 0, &release);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, 0, 0, NULL);
    release_child(release);
    wait_zombie(pid);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)pid, EVFILT_PROC, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_adds_ev_clear_and_keeps_it_on_the_event) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(0, 0, &release);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD | EV_DISPATCH, NOTE_EXIT, 0, NULL);
    release_child(release);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK(ev.flags & EV_CLEAR);
    CHECK(ev.flags & EV_DISPATCH);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_exit_while_disabled_kept_then_ev_enable_returns_it) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(5, 0, &release);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD | EV_DISABLE, NOTE_EXIT, 0, NULL);
    release_child(release);
    wait_zombie(pid);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ENABLE, NOTE_EXIT, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 1000);
    CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 5);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

/* Registers `fflags` on `pid`, or skips the test when the process connector is unavailable
 * (no CAP_NET_ADMIN): then NOTE_FORK/EXEC/TRACK fail with ENOTSUP, never silently. */
static void watch_or_skip(int kq, pid_t pid, unsigned fflags) {
    int error = kq_change_errno(kq, (uintptr_t)pid, EVFILT_PROC, EV_ADD, fflags, 0, NULL);
    if (error == ENOTSUP) SKIP("process connector unavailable here (NOTE_FORK/EXEC/TRACK answer ENOTSUP)");
    CHECK_EQ_INT(error, 0);
}

/* Collects events of `ident` until one carries NOTE_EXIT (bounded); returns the union of their
 * fflags, and the data of the exit event in *status. */
static unsigned collect_until_exit(int kq, pid_t ident, int64_t *status) {
    unsigned notes = 0;
    for (int i = 0; i < 20 && !(notes & NOTE_EXIT); i++) {
        struct kevent ev;
        CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
        CHECK_EQ_INT(ev.ident, ident);
        notes |= ev.fflags;
        if (ev.fflags & NOTE_EXIT) *status = ev.data;
    }
    return notes;
}

static void fork_grandchild_then_exit(int code, int signo) {
    (void)signo;
    pid_t grandchild = fork();
    if (grandchild == 0) _exit(0);
    waitpid(grandchild, NULL, 0);
    _exit(code);
}

static void exec_shell_exiting_with(int code, int signo) {
    (void)signo;
    char command[32];
    snprintf(command, sizeof command, "exit %d", code);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    _exit(127);
}

TEST(test_proc_note_fork_reported_when_the_process_forks) {
    int kq = kq_new();
    int release;
    pid_t pid = start_gated_child(fork_grandchild_then_exit, 4, 0, &release);
    watch_or_skip(kq, pid, NOTE_FORK | NOTE_EXIT);
    release_child(release);
    int64_t status = -1;
    unsigned notes = collect_until_exit(kq, pid, &status);
    CHECK_EQ_HEX(notes & (NOTE_FORK | NOTE_EXIT), NOTE_FORK | NOTE_EXIT);
    CHECK_EQ_INT(WEXITSTATUS((int)status), 4);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_note_exec_reported_when_the_process_execs) {
    int kq = kq_new();
    int release;
    pid_t pid = start_gated_child(exec_shell_exiting_with, 6, 0, &release);
    watch_or_skip(kq, pid, NOTE_EXEC | NOTE_EXIT);
    release_child(release);
    int64_t status = -1;
    unsigned notes = collect_until_exit(kq, pid, &status);
    CHECK_EQ_HEX(notes & (NOTE_EXEC | NOTE_EXIT), NOTE_EXEC | NOTE_EXIT);
    CHECK_EQ_INT(WEXITSTATUS((int)status), 6);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_note_track_follows_the_child_with_note_child_then_its_exit) {
    int kq = kq_new();
    int gate[2], grand_gate[2], reap_gate[2], report[2];
    CHECK_SYS(pipe(gate));
    CHECK_SYS(pipe(grand_gate));
    CHECK_SYS(pipe(reap_gate));
    CHECK_SYS(pipe(report));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char byte;
        (void)read(gate[0], &byte, 1);
        pid_t grandchild = fork();
        if (grandchild == 0) {
            (void)read(grand_gate[0], &byte, 1);
            _exit(5);
        }
        (void)!write(report[1], &grandchild, sizeof grandchild);
        (void)read(reap_gate[0], &byte, 1); /* reap only once the watcher saw the exit */
        waitpid(grandchild, NULL, 0);
        _exit(0);
    }
    watch_or_skip(kq, pid, NOTE_TRACK | NOTE_FORK | NOTE_EXIT);
    CHECK_EQ_INT(write(gate[1], "x", 1), 1);
    pid_t grandchild;
    CHECK_EQ_INT(read(report[0], &grandchild, sizeof grandchild), (int)sizeof grandchild);
    /* Two events, in either order: NOTE_FORK on the parent, NOTE_CHILD on the child. */
    int saw_fork = 0, saw_child = 0;
    struct kevent got[4];
    for (int tries = 0; tries < 4 && !(saw_fork && saw_child); tries++) {
        struct timespec limit = {5, 0};
        int n = kevent(kq, NULL, 0, got, 4, &limit);
        CHECK(n > 0);
        for (int k = 0; k < n; k++) {
            if (got[k].ident == (uintptr_t)pid) {
                CHECK(got[k].fflags & NOTE_FORK);
                CHECK(!(got[k].fflags & NOTE_TRACKERR));
                saw_fork = 1;
            } else {
                CHECK_EQ_INT(got[k].ident, grandchild);
                CHECK_EQ_HEX(got[k].fflags, NOTE_CHILD);
                CHECK_EQ_INT(got[k].data, pid);
                CHECK(got[k].flags & EV_CLEAR);
                saw_child = 1;
            }
        }
    }
    CHECK(saw_fork && saw_child);
    /* The followed child's exit is its own event (never shared with NOTE_CHILD). */
    CHECK_EQ_INT(write(grand_gate[1], "x", 1), 1);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK_EQ_INT(ev.ident, grandchild);
    CHECK_EQ_HEX(ev.fflags, NOTE_EXIT);
    CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 5);
    CHECK_EQ_INT(write(reap_gate[1], "x", 1), 1);
    int64_t status = -1;
    CHECK(collect_until_exit(kq, pid, &status) & NOTE_EXIT);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

TEST(test_proc_knote_descriptor_released_on_delete_and_on_close) {
    int before = kq_fd_count();
    int kq = kq_new();
    int release;
    pid_t pid = start_child(0, 0, &release);
    int with_kqueue = kq_fd_count();
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    KQ_SET(kq, pid, EVFILT_PROC, EV_DELETE, 0, 0, NULL);
    CHECK_EQ_INT(kq_fd_count(), with_kqueue);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    close(kq);
    release_child(release);
    CHECK_EQ_INT(kq_fd_count(), before);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
}

/* Descriptors of this process that are pidfds (/proc/self/fd links "anon_inode:[pidfd]"). */
static int pidfd_count(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        if (strstr(target, "pidfd")) count++;
    }
    closedir(dir);
    return count;
}

static void fork_child_has_no_pidfd(void *arg) {
    /* In a fork child the kqueue is gone (EBADF) with every descriptor it held, pidfds too. */
    int kq = *(int *)arg;
    CHECK_ERRNO(kevent(kq, NULL, 0, NULL, 0, NULL), EBADF);
    CHECK_EQ_INT(pidfd_count(), 0);
}

TEST(test_proc_fork_child_inherits_no_process_descriptor) {
    int kq = kq_new();
    int release;
    pid_t pid = start_child(0, 0, &release);
    CHECK_EQ_INT(pidfd_count(), 0);
    KQ_SET(kq, pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    CHECK_EQ_INT(pidfd_count(), 1);
    kq_run_child(fork_child_has_no_pidfd, &kq, 5000);
    release_child(release);
    CHECK_EQ_INT(waitpid(pid, NULL, 0), pid);
    close(kq);
}

static void grandchild_watcher(void *arg) {
    (void)arg;
    /* Watch a process that is not our child: its exit is reported with NOTE_EXIT and, while
     * its parent (our child) has not reaped it yet, with its status. */
    int to_parent[2], go_grandchild[2], go_middle[2];
    CHECK_SYS(pipe(to_parent));
    CHECK_SYS(pipe(go_grandchild));
    CHECK_SYS(pipe(go_middle));
    pid_t middle = fork();
    CHECK(middle >= 0);
    if (middle == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) {
            char byte;
            (void)read(go_grandchild[0], &byte, 1);
            _exit(9);
        }
        (void)write(to_parent[1], &grandchild, sizeof grandchild);
        char byte;
        (void)read(go_middle[0], &byte, 1);
        waitpid(grandchild, NULL, 0);
        _exit(0);
    }
    pid_t grandchild;
    CHECK_EQ_INT(read(to_parent[0], &grandchild, sizeof grandchild), (int)sizeof grandchild);
    int kq = kq_new();
    KQ_SET(kq, grandchild, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
    CHECK_EQ_INT(write(go_grandchild[1], "x", 1), 1);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK_EQ_INT(ev.ident, grandchild);
    CHECK_EQ_HEX(ev.fflags, NOTE_EXIT);
    CHECK(ev.flags & EV_EOF);
    CHECK(WIFEXITED((int)ev.data));
    CHECK_EQ_INT(WEXITSTATUS((int)ev.data), 9);
    CHECK_EQ_INT(write(go_middle[1], "x", 1), 1);
    CHECK_EQ_INT(waitpid(middle, NULL, 0), middle);
    close(kq);
}

TEST(test_proc_note_exit_of_a_process_that_is_not_a_child) {
    kq_run_child(grandchild_watcher, NULL, 10000);
}

/* A tracked process's fork is in the connector before its exit happens: the exit is recorded
 * only after the connector is read, so a child forked just before the exit is followed even
 * when the exit is seen first (on io_uring the connector's poll, re-armed with the next wait,
 * completes behind the pidfd's; one event per call then returned the exit, and dropped the
 * knote, before the fork was read: no NOTE_CHILD, no NOTE_TRACKERR). */
TEST(test_proc_note_track_a_fork_is_read_before_the_exit_that_follows_it) {
    int kq = kq_new();
    int gate[2], hold[2], report[2];
    CHECK_SYS(pipe(gate));
    CHECK_SYS(pipe(hold));
    CHECK_SYS(pipe(report));
    pid_t parent = fork();
    CHECK(parent >= 0);
    if (parent == 0) {
        close(hold[1]);
        char byte;
        for (int i = 0; i < 2; i++) {
            if (read(gate[0], &byte, 1) != 1) _exit(0);
            pid_t child = fork();
            if (child == 0) {
                (void)!read(hold[0], &byte, 1); /* until the test closes `hold` */
                _exit(0);
            }
            (void)!write(report[1], &child, sizeof child);
        }
        _exit(0); /* at once after the second fork */
    }
    close(hold[0]);
    watch_or_skip(kq, parent, NOTE_TRACK | NOTE_EXIT);
    /* The first fork: its NOTE_CHILD comes from a connector report, whose poll is then armed
     * again only with the next wait. */
    CHECK_EQ_INT(write(gate[1], "x", 1), 1);
    pid_t first, second;
    CHECK_EQ_INT(read(report[0], &first, sizeof first), (int)sizeof first);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK_MSG(ev.ident == (uintptr_t)first && ev.fflags == NOTE_CHILD, "%s", kq_ev_str(&ev));
    /* The second fork, and the parent's exit right after it. */
    CHECK_EQ_INT(write(gate[1], "x", 1), 1);
    CHECK_EQ_INT(read(report[0], &second, sizeof second), (int)sizeof second);
    wait_zombie(parent);
    int saw_exit = 0, saw_child = 0;
    int64_t deadline = kq_now_ns() + 5000000000LL;
    while (!(saw_exit && saw_child) && kq_now_ns() < deadline) {
        int n = KQ_WAIT(kq, &ev, 1, 200);
        if (n == 0) continue;
        CHECK_MSG(!(ev.fflags & NOTE_TRACKERR), "%s", kq_ev_str(&ev));
        if (ev.ident == (uintptr_t)parent && (ev.fflags & NOTE_EXIT)) saw_exit = 1;
        if (ev.ident == (uintptr_t)second && (ev.fflags & NOTE_CHILD)) {
            CHECK_EQ_INT(ev.data, parent);
            saw_child = 1;
        }
    }
    CHECK_MSG(saw_exit, "no NOTE_EXIT for the parent");
    CHECK_MSG(saw_child, "the child forked just before its parent's exit was never followed");
    close(hold[1]);
    CHECK_EQ_INT(waitpid(parent, NULL, 0), parent);
    close(gate[0]);
    close(gate[1]);
    close(report[0]);
    close(report[1]);
    close(kq);
}

/* ---- NOTE_TRACK over whole trees of short-lived processes -------------------------------- */

/* What each grandchild does once forked. */
enum tree_work { WORK_TRUE, WORK_EXIT, WORK_SH_EXIT, WORK_SH_TREE, WORK_KINDS, WORK_MIXED = WORK_KINDS };
/* When the root reaps its children. */
enum tree_reaping { ROOT_REAPS_AT_ONCE, ROOT_REAPS_AT_THE_END, ROOT_EXITS_FIRST };

struct tree_plan {
    int children;           /* the root forks this many; each forks one grandchild */
    enum tree_work work;    /* WORK_MIXED: each grandchild in turn does another one */
    int child_reaps;        /* the child waits for its grandchild (else it exits first) */
    enum tree_reaping root;
    int buffer;             /* events per kevent() call: 1 and 2 make merges across calls */
};

/* What a process of the tree tells the test about a child it forked. */
struct tree_report {
    pid_t pid, parent;
    int status; /* the wait status it will end with */
};

static int grandchild_status(enum tree_work work) { return work == WORK_TRUE ? 0 : 3 << 8; }

static void do_tree_work(enum tree_work work) {
    switch (work) {
    case WORK_TRUE: execl("/bin/true", "true", (char *)NULL); break;
    case WORK_EXIT: _exit(3);
    case WORK_SH_EXIT: execl("/bin/sh", "sh", "-c", "exit 3", (char *)NULL); break;
    default: execl("/bin/sh", "sh", "-c", "/bin/true; (exit 3)", (char *)NULL); break;
    }
    _exit(127);
}

static void report_child(int fd, pid_t pid, int status) {
    struct tree_report report = {pid, getpid(), status};
    (void)!write(fd, &report, sizeof report); /* under PIPE_BUF: one piece */
}

/* The tracked root: forks children that fork grandchildren, then ends as the plan says. */
__attribute__((noreturn)) static void run_tree(const struct tree_plan *plan, int gate, int reports) {
    char byte;
    if (read(gate, &byte, 1) != 1) _exit(0); /* the test skipped */
    for (int i = 0; i < plan->children; i++) {
        enum tree_work work = plan->work == WORK_MIXED ? (enum tree_work)(i % WORK_KINDS) : plan->work;
        pid_t child = fork();
        if (child == 0) {
            pid_t grandchild = fork();
            if (grandchild == 0) do_tree_work(work);
            if (grandchild > 0) report_child(reports, grandchild, grandchild_status(work));
            if (plan->child_reaps) waitpid(grandchild, NULL, 0);
            _exit(i & 7);
        }
        if (child > 0) report_child(reports, child, (i & 7) << 8);
        if (child > 0 && plan->root == ROOT_REAPS_AT_ONCE) waitpid(child, NULL, 0);
    }
    if (plan->root == ROOT_REAPS_AT_THE_END) {
        while (wait(NULL) > 0) {}
    }
    _exit(0);
}

struct tracked_process {
    pid_t pid, parent;
    int exits;
    struct kevent exit_event;
};

#define TREE_MAX 4096
static struct tracked_process tree[TREE_MAX];
static int tree_size;

static struct tracked_process *tree_find(pid_t pid) {
    for (int k = 0; k < tree_size; k++)
        if (tree[k].pid == pid) return &tree[k];
    return NULL;
}

/* Checks one event against what the tree did so far and records it. */
static void tree_record(const struct kevent *ev, int *track_errors) {
    CHECK_MSG(ev->filter == EVFILT_PROC && !(ev->flags & EV_ERROR), "unexpected event %s", kq_ev_str(ev));
    if (ev->fflags & NOTE_TRACKERR) (*track_errors)++;
    if (ev->fflags & NOTE_CHILD) {
        CHECK_MSG(!(ev->fflags & NOTE_EXIT), "NOTE_CHILD shares an event with NOTE_EXIT: %s", kq_ev_str(ev));
        CHECK_MSG(tree_find((pid_t)ev->data), "NOTE_CHILD whose parent is not in the tree: %s", kq_ev_str(ev));
        CHECK_MSG(!tree_find((pid_t)ev->ident), "a second NOTE_CHILD for one pid: %s", kq_ev_str(ev));
        CHECK(tree_size < TREE_MAX);
        tree[tree_size++] = (struct tracked_process){(pid_t)ev->ident, (pid_t)ev->data, 0, {0}};
    }
    struct tracked_process *process = tree_find((pid_t)ev->ident);
    CHECK_MSG(process, "an event for a pid the tracked tree never had: %s", kq_ev_str(ev));
    if (ev->fflags & NOTE_EXIT) {
        CHECK_MSG(process->exits == 0, "pid %d exited twice: first %s, then %s", (int)process->pid,
                  kq_ev_str(&process->exit_event), kq_ev_str(ev));
        CHECK_MSG(ev->flags & EV_EOF, "NOTE_EXIT without EV_EOF: %s", kq_ev_str(ev));
        process->exits = 1;
        process->exit_event = *ev;
    }
}

static int tree_all_exited(void) {
    for (int k = 0; k < tree_size; k++)
        if (!tree[k].exits) return 0;
    return 1;
}

/*
 * Tracks (NOTE_TRACK|NOTE_FORK|NOTE_EXEC|NOTE_EXIT) a root running `plan` and collects its
 * events `plan->buffer` at a time until every tracked process exited, then reaps what is left
 * (the test is the orphans' subreaper) and checks that nothing more comes: each exit exactly
 * once, never with NOTE_CHILD, each NOTE_CHILD with its real parent in `data`, each exit with
 * the status the process ended with, every process followed (no NOTE_TRACKERR, even for a
 * child reaped before its fork was read).
 */
static void track_tree(const struct tree_plan *plan) {
    CHECK_SYS(prctl(PR_SET_CHILD_SUBREAPER, 1));
    int gate[2], reports[2];
    CHECK_SYS(pipe(gate));
    CHECK_SYS(pipe2(reports, O_NONBLOCK));
    pid_t root = fork();
    CHECK(root >= 0);
    if (root == 0) {
        close(gate[1]);
        close(reports[0]);
        run_tree(plan, gate[0], reports[1]);
    }
    close(gate[0]);
    close(reports[1]);
    int kq = kq_new();
    watch_or_skip(kq, root, NOTE_TRACK | NOTE_FORK | NOTE_EXEC | NOTE_EXIT);
    tree_size = 0;
    tree[tree_size++] = (struct tracked_process){root, getpid(), 0, {0}};
    CHECK_EQ_INT(write(gate[1], "x", 1), 1);
    int track_errors = 0;
    struct kevent events[64];
    CHECK(plan->buffer <= 64);
    int64_t deadline = kq_now_ns() + 5000000000LL;
    for (;;) {
        /* Once every known process exited, forks not read yet are already in the connector:
         * a poll finds them; else wait (bounded) for more. */
        int done = tree_all_exited();
        int n = kq_wait(kq, events, plan->buffer, done ? 0 : 200);
        if (n < 0 && errno == EINTR) continue;
        CHECK_SYS(n);
        for (int k = 0; k < n; k++) tree_record(&events[k], &track_errors);
        if (n == 0 && done) break;
        CHECK_MSG(kq_now_ns() < deadline, "not every tracked process exited within 5 s (%d tracked)", tree_size);
    }
    while (waitpid(-1, NULL, 0) > 0) {} /* the root and the orphans; the kernel wakes pidfds */
    int n = kq_wait(kq, events, plan->buffer, 50);
    for (int k = 0; k < n; k++) tree_record(&events[k], &track_errors);
    CHECK_EQ_INT(n, 0);
    /* What the tree says it forked: parents and statuses of the processes that were tracked. */
    struct tree_report report;
    while (read(reports[0], &report, sizeof report) == (ssize_t)sizeof report) {
        struct tracked_process *process = tree_find(report.pid);
        CHECK_MSG(process, "pid %d (forked by %d) was never followed", (int)report.pid, (int)report.parent);
        CHECK_MSG(process->parent == report.parent, "pid %d: NOTE_CHILD data %d, parent %d", (int)report.pid,
                  (int)process->parent, (int)report.parent);
        if (process->exit_event.fflags & NOTE_EXIT_UNKNOWN) continue; /* kernels before 6.15 */
        CHECK_MSG(process->exit_event.data == report.status, "pid %d: exit %s, status 0x%x", (int)report.pid,
                  kq_ev_str(&process->exit_event), report.status);
    }
    CHECK_EQ_INT(track_errors, 0);
    close(reports[0]);
    close(gate[1]);
    close(kq);
}

/* A tracked root forks children that exit at once: the first stays a zombie, the second is
 * reaped before the watcher reads anything; the root reports both pids, then waits on `gate`.
 * After a byte on `gate` it reaps the zombie and reports 0, then exits when `gate` closes. */
static pid_t start_root_of_exited_children(int *gate_out, int *reports_out) {
    int gate[2], reports[2];
    CHECK_SYS(pipe(gate));
    CHECK_SYS(pipe(reports));
    pid_t root = fork();
    CHECK(root >= 0);
    if (root == 0) {
        close(gate[1]);
        close(reports[0]);
        char byte;
        if (read(gate[0], &byte, 1) != 1) _exit(0);
        pid_t zombie = fork();
        if (zombie == 0) _exit(4);
        siginfo_t info;
        waitid(P_PID, (id_t)zombie, &info, WEXITED | WNOWAIT);
        pid_t reaped = fork();
        if (reaped == 0) _exit(6);
        waitpid(reaped, NULL, 0);
        pid_t pids[2] = {zombie, reaped};
        (void)!write(reports[1], pids, sizeof pids);
        (void)!read(gate[0], &byte, 1);
        waitpid(zombie, NULL, 0);
        pid_t done = 0;
        (void)!write(reports[1], &done, sizeof done);
        (void)!read(gate[0], &byte, 1);
        _exit(0);
    }
    close(gate[0]);
    close(reports[1]);
    *gate_out = gate[1];
    *reports_out = reports[0];
    return root;
}

/* Collects events (bounded) until both children had `wanted` (NOTE_CHILD, or NOTE_EXIT);
 * fails on NOTE_TRACKERR and on NOTE_CHILD with NOTE_EXIT. Returns the children's exit events
 * in exits[] (fflags 0 when none came). */
static void collect_children(int kq, pid_t root, const pid_t children[2], unsigned wanted, struct kevent exits[2]) {
    int seen[2] = {0, 0};
    int64_t deadline = kq_now_ns() + 5000000000LL;
    while (!(seen[0] && seen[1])) {
        CHECK_MSG(kq_now_ns() < deadline, "no %s for both children within 5 s", wanted == NOTE_EXIT ? "exit" : "NOTE_CHILD");
        struct kevent ev[4];
        int n = KQ_WAIT(kq, ev, 4, 200);
        for (int k = 0; k < n; k++) {
            CHECK_MSG(!(ev[k].fflags & NOTE_TRACKERR), "NOTE_TRACKERR: %s", kq_ev_str(&ev[k]));
            CHECK_MSG((ev[k].fflags & (NOTE_CHILD | NOTE_EXIT)) != (NOTE_CHILD | NOTE_EXIT), "%s", kq_ev_str(&ev[k]));
            if (ev[k].ident == (uintptr_t)root) continue;
            int which = ev[k].ident == (uintptr_t)children[0] ? 0 : 1;
            CHECK_MSG(ev[k].ident == (uintptr_t)children[which], "event for another pid: %s", kq_ev_str(&ev[k]));
            if (ev[k].fflags & NOTE_CHILD) CHECK_EQ_INT(ev[k].data, root);
            if (ev[k].fflags & NOTE_EXIT) exits[which] = ev[k];
            if (ev[k].fflags & wanted) seen[which] = 1;
        }
    }
}

TEST(test_proc_note_track_follows_children_that_exited_before_their_fork_was_read) {
    /* FreeBSD makes the child's knote at fork: a child that is a zombie, or already reaped,
     * when the watcher reads its fork is followed all the same. NOTE_CHILD, then NOTE_EXIT
     * with the real status (for the reaped one, from the connector's exit message). */
    int kq = kq_new();
    int gate, reports;
    pid_t root = start_root_of_exited_children(&gate, &reports);
    watch_or_skip(kq, root, NOTE_TRACK | NOTE_FORK | NOTE_EXIT);
    CHECK_EQ_INT(write(gate, "x", 1), 1);
    pid_t children[2];
    CHECK_EQ_INT(read(reports, children, sizeof children), (int)sizeof children);
    struct kevent exits[2];
    memset(exits, 0, sizeof exits);
    collect_children(kq, root, children, NOTE_CHILD, exits);
    collect_children(kq, root, children, NOTE_EXIT, exits);
    CHECK_EQ_HEX(exits[0].fflags, NOTE_EXIT);
    CHECK_EQ_INT(exits[0].data, 4 << 8);
    CHECK_EQ_HEX(exits[1].fflags, NOTE_EXIT);
    CHECK_EQ_INT(exits[1].data, 6 << 8);
    CHECK_EQ_HEX(exits[1].flags & (EV_EOF | EV_ONESHOT), EV_EOF | EV_ONESHOT);
    CHECK_NO_EVENT(kq);
    close(gate);
    int64_t status = -1;
    CHECK(collect_until_exit(kq, root, &status) & NOTE_EXIT);
    CHECK_EQ_INT(waitpid(root, NULL, 0), root);
    close(reports);
    close(kq);
}

TEST(test_proc_note_track_without_note_exit_follows_children_that_exited) {
    /* Without NOTE_EXIT: NOTE_CHILD for both, and no NOTE_TRACKERR; then each knote goes away
     * when its process is gone for good (the reaped one at once, the zombie once reaped). */
    int kq = kq_new();
    int gate, reports;
    pid_t root = start_root_of_exited_children(&gate, &reports);
    watch_or_skip(kq, root, NOTE_TRACK | NOTE_FORK);
    CHECK_EQ_INT(write(gate, "x", 1), 1);
    pid_t children[2];
    CHECK_EQ_INT(read(reports, children, sizeof children), (int)sizeof children);
    struct kevent exits[2];
    memset(exits, 0, sizeof exits);
    collect_children(kq, root, children, NOTE_CHILD, exits);
    CHECK_EQ_HEX(exits[0].fflags | exits[1].fflags, 0);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)children[1], EVFILT_PROC, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_EQ_INT(write(gate, "x", 1), 1); /* the root reaps the zombie */
    pid_t done = -1;
    CHECK_EQ_INT(read(reports, &done, sizeof done), (int)sizeof done);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)children[0], EVFILT_PROC, EV_DELETE, 0, 0, NULL), ENOENT);
    close(gate);
    CHECK_EQ_INT(waitpid(root, NULL, 0), root);
    close(reports);
    close(kq);
}

TEST(test_proc_note_track_tree_each_exit_once_one_event_per_call) {
    struct tree_plan plan = {40, WORK_MIXED, 1, ROOT_REAPS_AT_THE_END, 1};
    track_tree(&plan);
}

TEST(test_proc_note_track_tree_each_exit_once_exec_and_reaped_at_once) {
    struct tree_plan plan = {40, WORK_TRUE, 1, ROOT_REAPS_AT_ONCE, 1};
    track_tree(&plan);
}

TEST(test_proc_note_track_tree_each_exit_once_two_events_per_call_parents_exit_first) {
    struct tree_plan plan = {40, WORK_MIXED, 0, ROOT_EXITS_FIRST, 2};
    track_tree(&plan);
}

TEST(test_proc_note_track_tree_each_exit_once_shells_forking) {
    struct tree_plan plan = {30, WORK_SH_TREE, 1, ROOT_REAPS_AT_THE_END, 2};
    track_tree(&plan);
}

TEST(test_proc_note_track_tree_each_exit_once_large_buffer) {
    struct tree_plan plan = {60, WORK_MIXED, 1, ROOT_REAPS_AT_ONCE, 64};
    track_tree(&plan);
}

TEST(test_proc_note_track_tree_each_exit_once_large_buffer_parents_exit_first) {
    struct tree_plan plan = {60, WORK_MIXED, 0, ROOT_EXITS_FIRST, 64};
    track_tree(&plan);
}

TEST(test_proc_note_track_tree_each_exit_once_no_exec) {
    struct tree_plan plan = {60, WORK_EXIT, 0, ROOT_EXITS_FIRST, 1};
    track_tree(&plan);
}

TEST(test_proc_note_track_of_a_process_that_never_existed_is_esrch) {
    int kq = kq_new();
    long pid_max = 0;
    FILE *file = fopen("/proc/sys/kernel/pid_max", "r");
    if (file) {
        if (fscanf(file, "%ld", &pid_max) != 1) pid_max = 0;
        fclose(file);
    }
    unsigned notes = NOTE_TRACK | NOTE_FORK | NOTE_EXEC | NOTE_EXIT;
    if (pid_max > 0 && pid_max < INT_MAX)
        CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)pid_max, EVFILT_PROC, EV_ADD, notes, 0, NULL), ESRCH);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)INT_MAX, EVFILT_PROC, EV_ADD, notes, 0, NULL), ESRCH);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)INT_MAX + 1, EVFILT_PROC, EV_ADD, notes, 0, NULL), ESRCH);
    CHECK_EQ_INT(kq_change_errno(kq, (uintptr_t)-1, EVFILT_PROC, EV_ADD, notes, 0, NULL), ESRCH);
    CHECK_NO_EVENT(kq);
    close(kq);
}

RUN_TESTS()
