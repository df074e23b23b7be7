/*
 * kqtest.h: a tiny single-header harness for the C conformance tests of libkqueue.
 *
 * Every Tests/C/NAME.c is its own program. It includes this header first, defines tests
 * with TEST(name) { ... } and ends with RUN_TESTS(). Each test is named after the SPEC.md
 * rule it pins (see docs/SPEC.md).
 *
 *   TEST(test_delivery_ev_clear_resets_state) { ... CHECK(x); CHECK_EQ_INT(a, b); ... }
 *   RUN_TESTS()
 *
 * Output: one line per test, "ok NAME", "FAIL NAME: file:line: detail" or
 * "skip NAME: reason", then exactly "N passed, M failed". Exit status: 0 when nothing
 * failed, 1 when something failed, 77 when every test skipped.
 * `./prog SUBSTRING...` runs only the tests whose names contain one of the substrings.
 *
 * Every test runs in its own forked child process, killed after KQ_TEST_TIMEOUT_S seconds:
 * a crash, a hang or a leak in one test is reported as that test's failure and the others
 * still run. A failed CHECK ends the current test at once. Do not CHECK from a thread other
 * than the main one: collect results and check them in the main thread. kq_run_child() runs
 * a function in a further child (for process-wide state: signals, fork); CHECK works there
 * and a failure is reported by the calling test. KQTEST_NOFORK=1 runs tests in-process.
 *
 * Tests never sleep a fixed time and hope: they wait for an event with a bounded timeout.
 */
#ifndef KQTEST_H
#define KQTEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/event.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KQ_UNUSED __attribute__((unused))

#ifndef KQ_TEST_TIMEOUT_S
#define KQ_TEST_TIMEOUT_S 10
#endif
#define KQ_MAX_TESTS 256

/* ---- registry ------------------------------------------------------------------------ */

typedef void (*kq_test_fn)(void);

struct kq_test_entry {
    const char *name;
    kq_test_fn fn;
    int line;
};

static struct kq_test_entry kq_tests[KQ_MAX_TESTS];
static int kq_ntests;

KQ_UNUSED static void kq_register(const char *name, kq_test_fn fn, int line) {
    if (kq_ntests == KQ_MAX_TESTS) {
        fprintf(stderr, "kqtest: too many tests\n");
        abort();
    }
    kq_tests[kq_ntests].name = name;
    kq_tests[kq_ntests].fn = fn;
    kq_tests[kq_ntests].line = line;
    kq_ntests++;
}

/* Tests run in the order they appear in the file (sorted by line). */
#define TEST(name)                                                                      \
    static void name(void);                                                             \
    __attribute__((constructor)) static void kq_register_##name(void) {                 \
        kq_register(#name, name, __LINE__);                                             \
    }                                                                                   \
    static void name(void)

/* ---- failure reporting --------------------------------------------------------------- */

enum { KQ_OUTCOME_PASS = 0, KQ_OUTCOME_FAIL = 1, KQ_OUTCOME_SKIP = 2 };

static jmp_buf kq_jmp;
static const char *kq_current_name = "(none)";
static char kq_message[2048];
static int kq_in_child;         /* inside kq_run_child(): report through kq_child_fd */
static int kq_child_fd = -1;    /* write end of the child's report pipe */

KQ_UNUSED static const char *kq_errname(int e) {
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ECONNRESET: return "ECONNRESET";
    case ENOTCONN: return "ENOTCONN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return "E?";
    }
}

/* Ends the current test (or child) with `outcome` and the message already in kq_message. */
__attribute__((noreturn)) static void kq_end(int outcome) {
    if (kq_in_child) {
        if (kq_child_fd >= 0) {
            size_t len = strlen(kq_message);
            ssize_t w = write(kq_child_fd, kq_message, len);
            (void)w;
        }
        fflush(stdout);
        fflush(stderr);
        _exit(outcome == KQ_OUTCOME_SKIP ? 77 : 1);
    }
    longjmp(kq_jmp, outcome);
}

__attribute__((noreturn, format(printf, 3, 4))) static void kq_fail(const char *file, int line,
                                                                    const char *fmt, ...) {
    int n = snprintf(kq_message, sizeof kq_message, "%s:%d: ", file, line);
    if (n < 0) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kq_message + n, sizeof kq_message - (size_t)n, fmt, ap);
    va_end(ap);
    kq_end(KQ_OUTCOME_FAIL);
}

__attribute__((noreturn, format(printf, 1, 2))) static void kq_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kq_message, sizeof kq_message, fmt, ap);
    va_end(ap);
    kq_end(KQ_OUTCOME_SKIP);
}

#define FAILF(...) kq_fail(__FILE__, __LINE__, __VA_ARGS__)
#define SKIP(...) kq_skip(__VA_ARGS__)

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) kq_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                            \
    do {                                                                                \
        if (!(cond)) kq_fail(__FILE__, __LINE__, __VA_ARGS__);                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
    do {                                                                                \
        long long kq_a_ = (long long)(a), kq_b_ = (long long)(b);                       \
        if (kq_a_ != kq_b_)                                                             \
            kq_fail(__FILE__, __LINE__, "CHECK_EQ_INT(%s, %s) failed: %lld != %lld", #a, \
                    #b, kq_a_, kq_b_);                                                  \
    } while (0)

#define CHECK_EQ_HEX(a, b)                                                              \
    do {                                                                                \
        unsigned long long kq_a_ = (unsigned long long)(a), kq_b_ = (unsigned long long)(b); \
        if (kq_a_ != kq_b_)                                                             \
            kq_fail(__FILE__, __LINE__, "CHECK_EQ_HEX(%s, %s) failed: 0x%llx != 0x%llx", \
                    #a, #b, kq_a_, kq_b_);                                              \
    } while (0)

/* expr must not return -1; on -1 the errno is shown. Evaluates to the result. */
#define CHECK_SYS(expr)                                                                 \
    ({                                                                                  \
        long long kq_r_ = (long long)(expr);                                            \
        if (kq_r_ == -1) {                                                              \
            int kq_e_ = errno;                                                          \
            kq_fail(__FILE__, __LINE__, "%s returned -1, errno %d %s (%s)", #expr, kq_e_, \
                    kq_errname(kq_e_), strerror(kq_e_));                                \
        }                                                                               \
        kq_r_;                                                                          \
    })

/* expr must return -1 with errno == err. */
#define CHECK_ERRNO(expr, err)                                                          \
    do {                                                                                \
        errno = 0;                                                                      \
        long long kq_r_ = (long long)(expr);                                            \
        int kq_e_ = errno;                                                              \
        if (kq_r_ != -1 || kq_e_ != (err))                                              \
            kq_fail(__FILE__, __LINE__,                                                 \
                    "%s: expected -1/%s, got %lld with errno %d %s", #expr,             \
                    kq_errname(err), kq_r_, kq_e_, kq_errname(kq_e_));                  \
    } while (0)

/* An errno-valued result (0 = success) must equal err. */
#define CHECK_ERR(expr, err)                                                            \
    do {                                                                                \
        int kq_r_ = (int)(expr);                                                        \
        if (kq_r_ != (err))                                                             \
            kq_fail(__FILE__, __LINE__, "%s: expected %s, got %d %s", #expr,            \
                    kq_errname(err), kq_r_, kq_errname(kq_r_));                         \
    } while (0)

/* ---- time ---------------------------------------------------------------------------- */

KQ_UNUSED static int64_t kq_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

KQ_UNUSED static struct timespec kq_ts_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    return ts;
}

/* ---- kevent helpers ------------------------------------------------------------------ */

KQ_UNUSED static const char *kq_filter_name(int f) {
    switch (f) {
    case EVFILT_READ: return "READ";
    case EVFILT_WRITE: return "WRITE";
    case EVFILT_VNODE: return "VNODE";
    case EVFILT_PROC: return "PROC";
    case EVFILT_SIGNAL: return "SIGNAL";
    case EVFILT_TIMER: return "TIMER";
    case EVFILT_USER: return "USER";
    default: return "?";
    }
}

/* A printable description of an event, for failure messages. */
KQ_UNUSED static const char *kq_ev_str(const struct kevent *ev) {
    static char buf[8][200];
    static int slot;
    char *b = buf[slot++ % 8];
    snprintf(b, sizeof buf[0],
             "{ident=%" PRIuPTR " filter=%d(%s) flags=0x%x fflags=0x%x data=%" PRId64 " udata=%p}",
             ev->ident, ev->filter, kq_filter_name(ev->filter), ev->flags, ev->fflags, ev->data,
             ev->udata);
    return b;
}

/* A new kqueue; fails the test when kqueue() fails. */
#define kq_new() ((int)CHECK_SYS(kqueue()))

/* One change, no eventlist: returns 0, or the errno of the failed change. */
KQ_UNUSED static int kq_change_errno(int kq, uintptr_t ident, short filter, unsigned short flags,
                                     unsigned int fflags, int64_t data, void *udata) {
    struct kevent ch;
    EV_SET(&ch, ident, filter, flags, fflags, data, udata);
    errno = 0;
    int r = kevent(kq, &ch, 1, NULL, 0, NULL);
    if (r == 0) return 0;
    if (r == -1) return errno == 0 ? -1 : errno;
    return -1000 - r; /* an impossible return value */
}

/* One change that must succeed. */
#define KQ_SET(kq, ident, filter, flags, fflags, data, udata)                           \
    do {                                                                                \
        int kq_e_ = kq_change_errno((kq), (uintptr_t)(ident), (short)(filter),          \
                                    (unsigned short)(flags), (unsigned int)(fflags),    \
                                    (int64_t)(data), (void *)(udata));                  \
        if (kq_e_ != 0)                                                                 \
            kq_fail(__FILE__, __LINE__, "kevent change (%s, %s, flags 0x%x) failed: %d %s", \
                    #ident, #filter, (unsigned)(flags), kq_e_, kq_errname(kq_e_));      \
    } while (0)

/* kevent() with no changes and a timeout of `ms` milliseconds (0 = poll). */
KQ_UNUSED static int kq_wait(int kq, struct kevent *ev, int n, long ms) {
    struct timespec ts = kq_ts_ms(ms);
    return kevent(kq, NULL, 0, ev, n, &ts);
}

#define KQ_WAIT(kq, ev, n, ms) ((int)CHECK_SYS(kq_wait((kq), (ev), (n), (ms))))

/* Polls ({0,0}); the kqueue must return no event. */
#define CHECK_NO_EVENT(kq) CHECK_NO_EVENT_WITHIN(kq, 0)

/* Waits `ms`; the kqueue must return no event in that time. */
#define CHECK_NO_EVENT_WITHIN(kq, ms)                                                   \
    do {                                                                                \
        struct kevent kq_ev_[4];                                                        \
        int kq_n_ = kq_wait((kq), kq_ev_, 4, (ms));                                     \
        if (kq_n_ != 0)                                                                 \
            kq_fail(__FILE__, __LINE__, "expected no event, kevent returned %d%s%s (errno %s)", \
                    kq_n_, kq_n_ > 0 ? ", first " : "",                                 \
                    kq_n_ > 0 ? kq_ev_str(&kq_ev_[0]) : "", kq_errname(errno));          \
    } while (0)

/* Returns the one event of a poll ({0,0}); it must exist and be the only one. */
#define CHECK_ONE_EVENT(kq, evp) CHECK_ONE_EVENT_WITHIN(kq, evp, 0)

#define CHECK_ONE_EVENT_WITHIN(kq, evp, ms)                                             \
    do {                                                                                \
        struct kevent kq_ev_[4];                                                        \
        int kq_n_ = kq_wait((kq), kq_ev_, 4, (ms));                                     \
        if (kq_n_ != 1)                                                                 \
            kq_fail(__FILE__, __LINE__, "expected exactly one event, kevent returned %d%s%s%s%s (errno %s)", \
                    kq_n_, kq_n_ > 0 ? ": " : "", kq_n_ > 0 ? kq_ev_str(&kq_ev_[0]) : "", \
                    kq_n_ > 1 ? ", " : "", kq_n_ > 1 ? kq_ev_str(&kq_ev_[1]) : "",     \
                    kq_errname(errno));                                                 \
        *(evp) = kq_ev_[0];                                                             \
    } while (0)

/* Predicate for kq_wait_until: does this event satisfy what the test waits for? */
typedef int (*kq_ev_pred)(const struct kevent *ev, int64_t arg);

KQ_UNUSED static int kq_pred_any(const struct kevent *ev, int64_t arg) {
    (void)ev, (void)arg;
    return 1;
}
KQ_UNUSED static int kq_pred_data_eq(const struct kevent *ev, int64_t arg) { return ev->data == arg; }
KQ_UNUSED static int kq_pred_data_ge(const struct kevent *ev, int64_t arg) { return ev->data >= arg; }
KQ_UNUSED static int kq_pred_flags(const struct kevent *ev, int64_t arg) {
    return (ev->flags & arg) == arg;
}

/*
 * Waits up to `ms` for an event on (ident, filter) that satisfies `pred`. Events on other
 * knotes and earlier events of this knote that do not satisfy `pred` (a level-triggered
 * knote returning partial data, for instance) are skipped. Returns 1 and fills *out when
 * found; returns 0 at the deadline with *out holding the last event seen for that knote (or
 * zeroed).
 */
KQ_UNUSED static int kq_wait_until(int kq, uintptr_t ident, short filter, long ms, kq_ev_pred pred,
                                   int64_t arg, struct kevent *out) {
    int64_t deadline = kq_now_ns() + (int64_t)ms * 1000000;
    memset(out, 0, sizeof *out);
    for (;;) {
        int64_t left = deadline - kq_now_ns();
        if (left < 0) left = 0;
        struct timespec ts = {left / 1000000000, left % 1000000000};
        struct kevent ev[16];
        int n = kevent(kq, NULL, 0, ev, 16, &ts);
        if (n < 0 && errno != EINTR) return 0;
        for (int i = 0; i < n; i++) {
            if (ev[i].ident == ident && ev[i].filter == filter) {
                *out = ev[i];
                if (pred(&ev[i], arg)) return 1;
            }
        }
        if (left == 0) return 0;
        if (n > 0) {
            /* A level-triggered event that does not satisfy pred yet: yield a little
             * instead of spinning flat out, but stay bounded by the deadline. */
            poll(NULL, 0, 1);
        }
    }
}

/* Waits (bounded) for an event on (ident, filter) satisfying pred; fails the test if none. */
#define CHECK_EVENT_UNTIL(kq, ident, filter, ms, pred, arg, evp)                        \
    do {                                                                                \
        if (!kq_wait_until((kq), (uintptr_t)(ident), (short)(filter), (ms), (pred), (arg), (evp))) \
            kq_fail(__FILE__, __LINE__,                                                 \
                    "no event on (%s, %s) satisfying %s(%lld) within %ld ms; last seen %s", \
                    #ident, #filter, #pred, (long long)(arg), (long)(ms), kq_ev_str(evp)); \
    } while (0)

/* ---- descriptors --------------------------------------------------------------------- */

KQ_UNUSED static void kq_nonblock(int fd) {
    int fl = (int)CHECK_SYS(fcntl(fd, F_GETFL));
    CHECK_SYS(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

/* A pipe, both ends nonblocking. */
KQ_UNUSED static void kq_pipe(int fds[2]) {
    CHECK_SYS(pipe2(fds, O_NONBLOCK | O_CLOEXEC));
}

/* A socketpair (AF_UNIX, `type`), both ends nonblocking. */
KQ_UNUSED static void kq_socketpair(int type, int fds[2]) {
    CHECK_SYS(socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds));
}

KQ_UNUSED static void kq_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            CHECK_MSG(poll(&pfd, 1, 5000) == 1, "write: descriptor %d not writable within 5 s", fd);
            continue;
        }
        CHECK_SYS(w);
        p += w;
        len -= (size_t)w;
    }
}

/* Writes `len` bytes of filler. */
KQ_UNUSED static void kq_write_n(int fd, size_t len) {
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    while (len > 0) {
        size_t chunk = len < sizeof buf ? len : sizeof buf;
        kq_write_all(fd, buf, chunk);
        len -= chunk;
    }
}

/* Reads exactly `len` bytes (bounded wait per chunk). */
KQ_UNUSED static void kq_read_n(int fd, void *dst, size_t len) {
    char scratch[4096];
    char *p = dst;
    while (len > 0) {
        size_t chunk = len;
        char *to = p;
        if (dst == NULL) {
            to = scratch;
            if (chunk > sizeof scratch) chunk = sizeof scratch;
        }
        ssize_t r = read(fd, to, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            struct pollfd pfd = {fd, POLLIN, 0};
            CHECK_MSG(poll(&pfd, 1, 5000) == 1, "read: descriptor %d not readable within 5 s", fd);
            continue;
        }
        CHECK_SYS(r);
        CHECK_MSG(r > 0, "read: unexpected end of file on %d", fd);
        if (p != NULL) p += r;
        len -= (size_t)r;
    }
}

/* Fills a nonblocking descriptor until write() says EAGAIN; returns the bytes written. */
KQ_UNUSED static size_t kq_fill(int fd) {
    char buf[4096];
    memset(buf, 'f', sizeof buf);
    size_t total = 0;
    for (;;) {
        ssize_t w = write(fd, buf, sizeof buf);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            /* Top up with single bytes so the buffer is really full. */
            for (;;) {
                ssize_t one = write(fd, buf, 1);
                if (one == 1) { total++; continue; }
                if (one < 0 && errno == EINTR) continue;
                break;
            }
            return total;
        }
        CHECK_SYS(w);
        total += (size_t)w;
    }
}

/* Bytes readable now (FIONREAD). */
KQ_UNUSED static int kq_fionread(int fd) {
    int n = 0;
    CHECK_SYS(ioctl(fd, FIONREAD, &n));
    return n;
}

/* A loopback TCP listener on an ephemeral port (blocking). */
KQ_UNUSED static int kq_tcp_listener(uint16_t *port, int backlog) {
    int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    CHECK_SYS(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    CHECK_SYS(bind(fd, (struct sockaddr *)&sa, sizeof sa));
    CHECK_SYS(listen(fd, backlog));
    socklen_t len = sizeof sa;
    CHECK_SYS(getsockname(fd, (struct sockaddr *)&sa, &len));
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A blocking TCP connection to 127.0.0.1:port. */
KQ_UNUSED static int kq_tcp_connect(uint16_t port) {
    int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    CHECK_SYS(connect(fd, (struct sockaddr *)&sa, sizeof sa));
    return fd;
}

/* accept() with a bounded wait (5 s). */
KQ_UNUSED static int kq_tcp_accept(int lfd) {
    struct pollfd pfd = {lfd, POLLIN, 0};
    CHECK_MSG(poll(&pfd, 1, 5000) == 1, "accept: no connection within 5 s");
    return (int)CHECK_SYS(accept4(lfd, NULL, NULL, SOCK_CLOEXEC));
}

/* A connected loopback TCP pair, both ends nonblocking. */
KQ_UNUSED static void kq_tcp_pair(int *client, int *server) {
    uint16_t port;
    int lfd = kq_tcp_listener(&port, 4);
    *client = kq_tcp_connect(port);
    *server = kq_tcp_accept(lfd);
    close(lfd);
    kq_nonblock(*client);
    kq_nonblock(*server);
}

/* Number of open descriptors of this process (entries of /proc/self/fd). */
KQ_UNUSED static int kq_fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    CHECK_MSG(d != NULL, "opendir(/proc/self/fd): %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

KQ_UNUSED static int kq_fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

/* A fresh temporary directory (removed by kq_rmdir_all). */
KQ_UNUSED static void kq_tmpdir(char *path, size_t size) {
    snprintf(path, size, "/tmp/kqtest.XXXXXX");
    CHECK_MSG(mkdtemp(path) != NULL, "mkdtemp: %s", strerror(errno));
}

KQ_UNUSED static void kq_rmdir_all(const char *path) {
    DIR *d = opendir(path);
    if (d == NULL) return;
    struct dirent *e;
    char sub[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

/* ---- processes ----------------------------------------------------------------------- */

/* fork() after flushing stdio, so buffered output is not duplicated. */
KQ_UNUSED static pid_t kq_fork(void) {
    fflush(stdout);
    fflush(stderr);
    return (pid_t)CHECK_SYS(fork());
}

/*
 * Waits for `pid` up to `ms` milliseconds (polling waitpid in 1 ms steps; bounded). Returns 1
 * with *status filled when it ended; returns 0 at the deadline (the child is left running).
 */
KQ_UNUSED static int kq_waitpid_bounded(pid_t pid, int *status, long ms) {
    int64_t deadline = kq_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno != EINTR) return 0;
        if (kq_now_ns() >= deadline) return 0;
        struct timespec step = {0, 1000000};
        nanosleep(&step, NULL);
    }
}

/*
 * Runs fn(arg) in a forked child and waits for it (at most `ms` milliseconds, then it is
 * killed). Returns a KQ_OUTCOME_* value; `msg` receives the child's failure or skip message.
 */
KQ_UNUSED static int kq_child_outcome(void (*fn)(void *), void *arg, long ms, char *msg, size_t size) {
    int report[2];
    msg[0] = 0;
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(msg, size, "pipe2: %s", strerror(errno));
        return KQ_OUTCOME_FAIL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(msg, size, "fork: %s", strerror(errno));
        close(report[0]);
        close(report[1]);
        return KQ_OUTCOME_FAIL;
    }
    if (pid == 0) {
        close(report[0]);
        kq_in_child = 1;
        kq_child_fd = report[1];
        alarm(0);
        signal(SIGALRM, SIG_DFL);
        fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    close(report[1]);
    int status = 0;
    int ended = kq_waitpid_bounded(pid, &status, ms);
    if (!ended) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    char got_msg[sizeof kq_message];
    size_t got = 0;
    int fl = fcntl(report[0], F_GETFL);
    fcntl(report[0], F_SETFL, fl | O_NONBLOCK);
    for (;;) {
        ssize_t r = read(report[0], got_msg + got, sizeof got_msg - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        if (got >= sizeof got_msg - 1) break;
    }
    got_msg[got] = 0;
    close(report[0]);
    if (!ended) {
        snprintf(msg, size, "timed out after %ld ms (killed)%s%s", ms, got ? "; " : "", got_msg);
        return KQ_OUTCOME_FAIL;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return KQ_OUTCOME_PASS;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        snprintf(msg, size, "%s", got_msg);
        return KQ_OUTCOME_SKIP;
    }
    if (WIFSIGNALED(status))
        snprintf(msg, size, "killed by signal %d (%s)%s%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 got ? "; " : "", got_msg);
    else if (got)
        snprintf(msg, size, "%s", got_msg);
    else
        snprintf(msg, size, "exited with status %d without a message", WEXITSTATUS(status));
    return KQ_OUTCOME_FAIL;
}

/*
 * Runs fn(arg) in a forked child (for tests that touch process-wide state: signals, fork,
 * rlimits). CHECK failures and SKIP inside fn are reported by the calling test. The child is
 * killed if it runs longer than `ms` milliseconds.
 */
KQ_UNUSED static void kq_run_child_at(const char *file, int line, void (*fn)(void *), void *arg,
                                      long ms) {
    char msg[sizeof kq_message - 128];
    int outcome = kq_child_outcome(fn, arg, ms, msg, sizeof msg);
    if (outcome == KQ_OUTCOME_PASS) return;
    if (outcome == KQ_OUTCOME_SKIP) kq_skip("%s", msg);
    kq_fail(file, line, "child: %s", msg);
}

#define kq_run_child(fn, arg, ms) kq_run_child_at(__FILE__, __LINE__, (fn), (arg), (ms))

/* ---- runner -------------------------------------------------------------------------- */

/*
 * Every test runs in its own forked process (as libuv's runner does): a crash, a hang or a
 * leaked descriptor in one test cannot take the others down. The parent never calls the
 * library. KQTEST_NOFORK=1 runs the tests in-process instead (handy under a debugger).
 */
static int kq_passed, kq_failed, kq_skipped;

static void kq_watchdog(int sig) {
    (void)sig;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "FAIL %s: timed out after %d s (watchdog)\n%d passed, %d failed\n",
                     kq_current_name, KQ_TEST_TIMEOUT_S, kq_passed, kq_failed + 1);
    ssize_t w = write(STDOUT_FILENO, buf, (size_t)n);
    (void)w;
    _exit(1);
}

static int kq_cmp_tests(const void *a, const void *b) {
    return ((const struct kq_test_entry *)a)->line - ((const struct kq_test_entry *)b)->line;
}

static void kq_call_test(void *entry) { ((struct kq_test_entry *)entry)->fn(); }

KQ_UNUSED static int kq_run_all(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
    /* Start from a clean signal state whatever the launcher left: a test runner may spawn
     * us from a thread that blocks signals, and blocked masks and ignored dispositions are
     * inherited across exec. */
    {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) continue;
            struct sigaction current;
            if (sigaction(sig, NULL, &current) == 0 && current.sa_handler == SIG_IGN) signal(sig, SIG_DFL);
        }
    }
    /* Writes to a closed pipe or socket must fail with EPIPE, not kill the program. */
    signal(SIGPIPE, SIG_IGN);
    const char *nofork = getenv("KQTEST_NOFORK");
    int in_process = nofork != NULL && nofork[0] != 0 && strcmp(nofork, "0") != 0;
    if (in_process) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = kq_watchdog;
        sigaction(SIGALRM, &sa, NULL);
    }
    qsort(kq_tests, (size_t)kq_ntests, sizeof kq_tests[0], kq_cmp_tests);
    for (int i = 0; i < kq_ntests; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                if (strstr(kq_tests[i].name, argv[a]) != NULL) wanted = 1;
            if (!wanted) continue;
        }
        kq_current_name = kq_tests[i].name;
        kq_message[0] = 0;
        int outcome;
        if (in_process) {
            alarm(KQ_TEST_TIMEOUT_S);
            outcome = setjmp(kq_jmp);
            if (outcome == 0) {
                kq_tests[i].fn();
                outcome = KQ_OUTCOME_PASS;
            }
            alarm(0);
        } else {
            outcome = kq_child_outcome(kq_call_test, &kq_tests[i], KQ_TEST_TIMEOUT_S * 1000L,
                                       kq_message, sizeof kq_message);
        }
        switch (outcome) {
        case KQ_OUTCOME_PASS:
            kq_passed++;
            printf("ok %s\n", kq_tests[i].name);
            break;
        case KQ_OUTCOME_SKIP:
            kq_skipped++;
            printf("skip %s: %s\n", kq_tests[i].name, kq_message);
            break;
        default:
            kq_failed++;
            printf("FAIL %s: %s\n", kq_tests[i].name, kq_message);
            break;
        }
        fflush(stdout);
    }
    if (kq_skipped > 0) printf("%d skipped\n", kq_skipped);
    printf("%d passed, %d failed\n", kq_passed, kq_failed);
    fflush(stdout);
    if (kq_failed > 0) return 1;
    if (kq_passed == 0 && kq_skipped > 0) return 77;
    return 0;
}

#define RUN_TESTS()                                                                     \
    int main(int argc, char **argv) { return kq_run_all(argc, argv); }

#endif /* KQTEST_H */
