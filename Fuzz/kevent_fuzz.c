/*
 * kevent_fuzz.c: a libFuzzer target on the C ABI of libkqueue (<sys/event.h>), checked
 * against a reference model of SPEC.md section 2 (and the READ, WRITE, USER and TIMER
 * filters of section 3).
 *
 * One input is a small program over a fixed pool of real objects: two kqueue slots, twelve
 * descriptor slots (pipe ends, AF_UNIX socketpair ends and regular files, created, written,
 * read, shut down, truncated, closed, dup'd and dup2'd onto each other so that numbers are
 * reused), timers and user events, and kevent()
 * calls with random changelists (every EV_* flag, READ/WRITE/USER/TIMER, unimplemented and
 * unknown filters, bad idents, negative counts, bad timeouts) and small eventlists.
 *
 * The model keeps, per kqueue, the set of knotes (ident, filter) with what SPEC.md says is
 * stored: udata, ext[2..3], ONESHOT/CLEAR/DISPATCH, enabled, saved fflags/data, the user
 * event's trigger state and stored fflags/data, the FORCEONESHOT activation, the timer's
 * start and period. For every change it predicts the set of acceptable outcomes (0 or an
 * errno); after the call it matches the EV_ERROR entries (or the -1/errno) against them and
 * follows the outcome the library chose. For every returned event it checks what the spec
 * guarantees deterministically; see docs/FUZZING.md for the full list. Any disagreement
 * prints the rule, the call and the operations of the input, then aborts.
 *
 * Where SPEC.md is silent, FreeBSD's kern_event.c (the reference SPEC.md names) decides;
 * where the two could both be right, the model accepts every answer and follows the one
 * given (a knote whose state is then not known is "vague": only its existence is checked).
 *
 * Environment: KQ_FUZZ_TRACE=1 prints every operation as it runs; KQ_FUZZ_FDCHECK=1 checks
 * after every input that /proc/self/fd holds as many descriptors as after the first input
 * (a descriptor leak fails the input; run libFuzzer with -print_funcs=0, since symbolizing
 * new functions opens pipes to llvm-symbolizer that stay open); KQ_FUZZ_KNOWN=id,... lets the
 * checks with those ids (recorded bugs, Fuzz/known-bugs.txt) count and go on.
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef F_GETPIPE_SZ
#define F_GETPIPE_SZ 1032
#endif
#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif

#define NKQ 2      /* kqueue slots */
#define NFD 12     /* descriptor slots */
#define NOFD 64    /* open file descriptions created per input */
#define MAXKN 64   /* knotes per kqueue (the ident pools bound it well below) */
#define MAXCH 8    /* changes per call */
#define MAXOPS 80  /* operations per input */
#define PIPEBUF 4096

#define FLAG_ACTIONS (EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT)
#define FLAG_STORED (EV_ONESHOT | EV_CLEAR | EV_DISPATCH)

/* ---- input ---------------------------------------------------------------------------- */

static const uint8_t *in_data;
static size_t in_size, in_pos;

static uint8_t u8(void) { return in_pos < in_size ? in_data[in_pos++] : 0; }

/* ---- trace and failure -------------------------------------------------------------- */

static char trace_buf[48 * 1024];
static size_t trace_len;
static int trace_echo;    /* KQ_FUZZ_TRACE */
static int fd_check;      /* KQ_FUZZ_FDCHECK */
static int baseline_fds = -1;
static unsigned long input_serial;

__attribute__((format(printf, 1, 2))) static void trace(const char *fmt, ...) {
    va_list ap;
    if (trace_echo) {
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    if (trace_len + 2 >= sizeof(trace_buf)) return;
    va_start(ap, fmt);
    int n = vsnprintf(trace_buf + trace_len, sizeof(trace_buf) - trace_len - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    trace_len += (size_t)n;
    if (trace_len > sizeof(trace_buf) - 2) trace_len = sizeof(trace_buf) - 2;
    trace_buf[trace_len++] = '\n';
    trace_buf[trace_len] = 0;
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
    fprintf(stderr, "\n==== kevent_fuzz: the library disagrees with the SPEC.md model ====\n");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n---- operations of this input (latest last) ----\n%s---- end ----\n", trace_buf);
    abort();
}

/* KQ_FUZZ_KNOWN: comma-separated ids of library bugs already recorded in Fuzz/crashes/
 * (Fuzz/known-bugs.txt): a check with such an id counts the hit and goes on instead of
 * aborting, so that a recorded bug does not hide new ones. */
static char known_ids[1024];
static unsigned long known_hits[16];
static const char *known_names[16];
static int nknown;

static int known(const char *id) {
    for (int i = 0; i < nknown; i++) {
        if (strcmp(known_names[i], id) == 0) {
            if (known_hits[i]++ == 0)
                fprintf(stderr, "kevent_fuzz: known library bug '%s' hit (Fuzz/known-bugs.txt); going on\n", id);
            return 1;
        }
    }
    return 0;
}

static void parse_known(const char *list) {
    if (!list) return;
    snprintf(known_ids, sizeof known_ids, "%s", list);
    for (char *save = NULL, *t = strtok_r(known_ids, ", ", &save); t && nknown < 16; t = strtok_r(NULL, ", ", &save))
        known_names[nknown++] = t;
}

/* A check on a returned event: fails unless its id is a known bug (then counts and goes on). */
#define REPORT(id, ...)                                  \
    do {                                                 \
        if (!known(id)) fail("[" id "] " __VA_ARGS__);   \
    } while (0)

static const char *errname(int e) {
    switch (e) {
    case 0: return "success";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EPIPE: return "EPIPE";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "ENOTSUP";
    case ENXIO: return "ENXIO";
    case EFAULT: return "EFAULT";
    case EINTR: return "EINTR";
    case EEXIST: return "EEXIST";
    case ELOOP: return "ELOOP";
    case ENOMEM: return "ENOMEM";
    default: return "errno?";
    }
}

static const char *filtname(short f) {
    static char other[16];
    switch (f) {
    case EVFILT_READ: return "READ";
    case EVFILT_WRITE: return "WRITE";
    case EVFILT_AIO: return "AIO";
    case EVFILT_VNODE: return "VNODE";
    case EVFILT_PROC: return "PROC";
    case EVFILT_SIGNAL: return "SIGNAL";
    case EVFILT_TIMER: return "TIMER";
    case EVFILT_PROCDESC: return "PROCDESC";
    case EVFILT_FS: return "FS";
    case EVFILT_LIO: return "LIO";
    case EVFILT_USER: return "USER";
    case EVFILT_SENDFILE: return "SENDFILE";
    case EVFILT_EMPTY: return "EMPTY";
    default: snprintf(other, sizeof other, "%d", f); return other;
    }
}

static const char *flagnames(unsigned short fl) {
    static char buf[4][160];
    static int which;
    char *b = buf[which++ & 3];
    static const struct { unsigned short bit; const char *name; } names[] = {
        {EV_ADD, "ADD"}, {EV_DELETE, "DELETE"}, {EV_ENABLE, "ENABLE"}, {EV_DISABLE, "DISABLE"},
        {EV_ONESHOT, "ONESHOT"}, {EV_CLEAR, "CLEAR"}, {EV_RECEIPT, "RECEIPT"},
        {EV_DISPATCH, "DISPATCH"}, {EV_FORCEONESHOT, "FORCEONESHOT"}, {EV_KEEPUDATA, "KEEPUDATA"},
        {0x1000, "DROP"}, {0x2000, "FLAG1"}, {EV_ERROR, "ERROR"}, {EV_EOF, "EOF"},
    };
    size_t n = 0;
    b[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (fl & names[i].bit) n += (size_t)snprintf(b + n, 160 - n, "%s%s", n ? "|" : "", names[i].name);
    }
    unsigned short rest = fl & ~0xF3FFu;
    if (rest) n += (size_t)snprintf(b + n, 160 - n, "%s%#x", n ? "|" : "", rest);
    if (n == 0) snprintf(b, 160, "0");
    return b;
}

static const char *kevstr(const struct kevent *e) {
    static char buf[4][200];
    static int which;
    char *b = buf[which++ & 3];
    snprintf(b, 200, "{ident=%" PRIuPTR " filter=%s flags=%s fflags=%#x data=%" PRId64 " udata=%#" PRIxPTR "}",
             e->ident, filtname(e->filter), flagnames(e->flags), e->fflags, e->data, (uintptr_t)e->udata);
    return b;
}

/* ---- time ------------------------------------------------------------------------------ */

static int64_t now_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- the pool of real objects --------------------------------------------------------- */

enum ofd_kind { O_NONE, O_PIPE_R, O_PIPE_W, O_STREAM, O_DGRAM, O_FILE_R, O_FILE_W };
static const char *kind_names[] = {"none", "pipe-read", "pipe-write", "stream", "dgram", "file-read", "file-append"};

/* An open file description: one end of a pipe or of a socketpair, or a regular file opened
 * twice (an appending writer and a reader, two offsets on one inode). */
struct ofd {
    int kind;
    int peer;    /* the other end */
    int refs;    /* pool descriptors referring to it */
    int shut_wr; /* shutdown(SHUT_WR) done on it */
};

struct slot {
    int fd;   /* -1: closed */
    int ofd;
    int last; /* last number it had (-1: never opened) */
};

static struct ofd ofds[NOFD];
static int nofds;
static struct slot slots[NFD];

/* ---- the model of each kqueue --------------------------------------------------------- */

enum { TRIG_NO = 0, TRIG_YES = 1, TRIG_UNKNOWN = 2 };
enum { FORCE_NONE = 0, FORCE_MUST = 1, FORCE_MAY = 2 };

struct knote {
    int used;
    int maybe; /* might not exist (an outcome the call did not reveal) */
    int vague; /* existence known, the rest not: only existence is checked */
    uintptr_t ident;
    short filter;
    unsigned short flags; /* stored ONESHOT/CLEAR/DISPATCH */
    int enabled;
    uintptr_t udata;
    uint64_t ext2, ext3;
    uint32_t sfflags; /* READ/WRITE: saved fflags; USER: stored low 24 bits */
    int64_t sdata;
    int trig;   /* USER: triggered state */
    int armed;  /* USER: triggered since the last delivery; a queued oneshot is returned as
                 * recorded even if a later EV_CLEAR change reset the state (FreeBSD) */
    int cleared; /* READ/WRITE with EV_CLEAR: returned, and its source has not changed since */
    int forced; /* an EV_FORCEONESHOT activation not yet delivered: FORCE_MUST, or FORCE_MAY
                 * once the knote was disabled after it (FreeBSD keeps the activation across
                 * EV_DISABLE/EV_ENABLE; SPEC.md's "EV_ENABLE re-checks the filter" need not) */
    /* TIMER */
    int64_t t_start;   /* CLOCK_MONOTONIC before the call that (re)started it */
    int64_t period;    /* data in ns (0: no lower bound known) */
    int64_t deadline;  /* NOTE_ABSTIME: CLOCK_REALTIME deadline in ns */
    int abstime;
    int due;           /* must fire at the next wait (oneshot delay 0, past absolute time) */
    int64_t expirations;
};

struct kqmodel {
    int open;
    int fd;
    int last;
    struct knote kn[MAXKN];
};

static struct kqmodel kqs[NKQ];
static uint64_t token_serial;

static struct knote *kn_find(struct kqmodel *q, uintptr_t ident, short filter) {
    for (int i = 0; i < MAXKN; i++)
        if (q->kn[i].used && q->kn[i].ident == ident && q->kn[i].filter == filter) return &q->kn[i];
    return NULL;
}

static struct knote *kn_alloc(struct kqmodel *q, uintptr_t ident, short filter) {
    for (int i = 0; i < MAXKN; i++) {
        if (!q->kn[i].used) {
            memset(&q->kn[i], 0, sizeof q->kn[i]);
            q->kn[i].used = 1;
            q->kn[i].ident = ident;
            q->kn[i].filter = filter;
            return &q->kn[i];
        }
    }
    fail("harness: knote table of the model is full");
}

static int kn_count(const struct kqmodel *q) {
    int n = 0;
    for (int i = 0; i < MAXKN; i++) n += q->kn[i].used;
    return n;
}

/* close(n) removes every knote on descriptor number n in every kqueue (SPEC.md 2). */
static void model_number_closed(int n) {
    for (int k = 0; k < NKQ; k++) {
        if (!kqs[k].open) continue;
        for (int i = 0; i < MAXKN; i++) {
            struct knote *kn = &kqs[k].kn[i];
            if (kn->used && kn->ident == (uintptr_t)n &&
                (kn->filter == EVFILT_READ || kn->filter == EVFILT_WRITE || kn->filter == EVFILT_VNODE ||
                 kn->filter == EVFILT_EMPTY || kn->filter == EVFILT_PROCDESC))
                kn->used = 0;
        }
    }
}

/* ---- what a number is ----------------------------------------------------------------- */

enum { N_CLOSED, N_POOL, N_KQ, N_FOREIGN, N_HUGE };

static int classify(uintptr_t n, int *which);

/* Something happened to the object behind open file description o (I/O, shutdown, close,
 * truncation of either end): an EV_CLEAR knote on it may fire again. Conservative: FreeBSD
 * re-evaluates every knote of a pipe or socket on any of these. */
static void model_object_touched(int o) {
    for (int k = 0; k < NKQ; k++) {
        if (!kqs[k].open) continue;
        for (int i = 0; i < MAXKN; i++) {
            struct knote *kn = &kqs[k].kn[i];
            if (!kn->used || !kn->cleared) continue;
            int which;
            if (classify(kn->ident, &which) != N_POOL) continue;
            int ko = slots[which].ofd;
            if (ko == o || ko == ofds[o].peer) kn->cleared = 0;
        }
    }
}

static int classify(uintptr_t n, int *which) {
    *which = -1;
    if (n > INT_MAX) return N_HUGE;
    for (int i = 0; i < NFD; i++)
        if (slots[i].fd >= 0 && (uintptr_t)slots[i].fd == n) { *which = i; return N_POOL; }
    for (int k = 0; k < NKQ; k++)
        if (kqs[k].open && (uintptr_t)kqs[k].fd == n) { *which = k; return N_KQ; }
    if (fcntl((int)n, F_GETFD) == -1 && errno == EBADF) return N_CLOSED;
    return N_FOREIGN;
}

/* What each change's ident was before the call: the library may open a descriptor of its
 * own during the call (inotify, on a READ on a regular file) on a number a change before it
 * found closed. */
static int snap_cls[MAXCH], snap_which[MAXCH];
static const struct kevent *snap_changes;
static int snap_count;

static int classify_change(const struct kevent *c, int *which) {
    if (snap_changes && c >= snap_changes && c < snap_changes + snap_count) {
        *which = snap_which[c - snap_changes];
        return snap_cls[c - snap_changes];
    }
    return classify(c->ident, which);
}

static int64_t bytes_readable(int fd) {
    int v = 0;
    if (ioctl(fd, FIONREAD, &v) != 0) return -1;
    return v;
}

/* ---- timers ----------------------------------------------------------------------------- */

/* Valid per SPEC.md 3 (+ FreeBSD: more than one unit bit is EINVAL). Also the length in ns. */
static int timer_valid(uint32_t fflags, int64_t data, int64_t *ns) {
    if (data < 0) return 0;
    if (fflags & ~(uint32_t)(NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS | NOTE_ABSTIME)) return 0;
    int64_t scale;
    switch (fflags & 0xF) {
    case 0: case NOTE_MSECONDS: scale = 1000000; break;
    case NOTE_SECONDS: scale = 1000000000; break;
    case NOTE_USECONDS: scale = 1000; break;
    case NOTE_NSECONDS: scale = 1; break;
    default: return 0;
    }
    if (data > INT64_MAX / scale) { *ns = INT64_MAX; return 2; } /* overflow: never generated */
    *ns = data * scale;
    return 1;
}

static void timer_start(struct knote *kn, int64_t t0m, int64_t t0r) {
    int64_t ns = 0;
    timer_valid(kn->sfflags, kn->sdata, &ns);
    kn->abstime = (kn->sfflags & NOTE_ABSTIME) != 0;
    kn->t_start = t0m;
    kn->period = ns;
    kn->deadline = ns;
    kn->expirations = 0;
    kn->forced = 0;
    if (kn->abstime) kn->due = ns <= t0r;
    else kn->due = (kn->flags & EV_ONESHOT) && ns == 0;
}

/* ---- prediction ------------------------------------------------------------------------- */

/* errno values as bits; ENOTSUP (95, EVFILT_PROC's unsupported notes) takes the spare bit 63. */
#define B(e) ((e) == ENOTSUP ? (1ULL << 63) : (1ULL << ((e) & 63)))
#define OK B(0)

static int is_fd_filter(short f) { return f == EVFILT_READ || f == EVFILT_WRITE; }
static int is_known(short f) { return is_fd_filter(f) || f == EVFILT_USER || f == EVFILT_TIMER; }

static const char *maskstr(uint64_t m) {
    static char buf[2][128];
    static int which;
    char *b = buf[which++ & 1];
    size_t n = 0;
    b[0] = 0;
    for (int e = 0; e < 64; e++)
        if (m & (1ULL << e))
            n += (size_t)snprintf(b + n, 128 - n, "%s%s", n ? " or " : "", errname(e == 63 ? ENOTSUP : e));
    return b;
}

/* Outcomes for a missing knote. */
static uint64_t predict_missing(int k, const struct kevent *c, unsigned short fl) {
    if (!(fl & EV_ADD)) return B(ENOENT);
    if (fl & EV_KEEPUDATA) return B(EINVAL);
    if (c->filter == EVFILT_TIMER) {
        int64_t ns;
        return timer_valid(c->fflags, c->data, &ns) ? OK : B(EINVAL);
    }
    if (is_fd_filter(c->filter)) {
        int which;
        int cls = classify_change(c, &which);
        if (cls == N_KQ) {
            if (which == k) return B(EINVAL);              /* a kqueue in itself */
            return c->filter == EVFILT_READ ? OK : (OK | B(EINVAL)); /* WRITE: not in SPEC */
        }
        if (cls == N_POOL) {
            struct ofd *o = &ofds[slots[which].ofd];
            if (c->filter == EVFILT_WRITE && o->kind == O_PIPE_W && ofds[o->peer].refs == 0) return B(EPIPE);
            /* WRITE on a pipe's read end: FreeBSD pipes are bidirectional; not in SPEC. */
            if (c->filter == EVFILT_WRITE && o->kind == O_PIPE_R && ofds[o->peer].refs == 0) return OK | B(EPIPE);
        }
    }
    return OK;
}

/* Outcomes for an existing knote. */
static uint64_t predict_existing(const struct kevent *c, unsigned short fl) {
    if (fl & EV_DELETE) return OK;
    if (c->filter == EVFILT_TIMER && (fl & EV_ADD)) {
        int64_t ns;
        return timer_valid(c->fflags, c->data, &ns) ? OK : B(EINVAL);
    }
    return OK;
}

/* Every acceptable outcome of change c on kqueue k, as a set of errno bits (bit 0: success). */
static uint64_t predict(int k, const struct kevent *c) {
    unsigned short fl = c->flags & 0x0FFF; /* SPEC.md 1: system bits are stripped */
    short f = c->filter;
    int fd_bad = 0;
    if (is_fd_filter(f)) {
        int which;
        int cls = classify_change(c, &which);
        fd_bad = cls == N_CLOSED || cls == N_HUGE;
    }
    if ((fl & (EV_ENABLE | EV_DISABLE)) == (EV_ENABLE | EV_DISABLE)) {
        /* EINVAL; SPEC.md does not order it against the filter's or the descriptor's error. */
        uint64_t m = B(EINVAL);
        if (fd_bad) m |= B(EBADF);
        if (f < 0 && f >= -EVFILT_SYSCOUNT && !is_known(f)) m |= B(ENOSYS) | B(ENXIO) | B(EPERM);
        return m;
    }
    if (f > 0 || f < -EVFILT_SYSCOUNT) return B(EINVAL);
    /* EVFILT_PROC: the model does not know which pids exist; its own tests (Tests/C/proc.c)
     * pin the semantics. Any of these outcomes is accepted and the knote becomes vague. */
    if (f == EVFILT_PROC) return OK | B(ESRCH) | B(ENOTSUP) | B(ENOENT) | B(EINVAL);
    /* EVFILT_VNODE: likewise loose (which numbers name files is the pool's business);
     * Tests/C/vnode.c pins its semantics. */
    if (f == EVFILT_VNODE) return OK | B(EBADF) | B(EINVAL) | B(ENOENT);
    /* EVFILT_SIGNAL: the fuzzer sends no signal; Tests/C/signal.c pins the semantics. */
    if (f == EVFILT_SIGNAL) return OK | B(EINVAL) | B(ENOENT);
    /* EVFILT_EMPTY (a socket's send queue) and EVFILT_FS (mounts): loose as well;
     * Tests/C/empty.c and Tests/C/fs.c pin their semantics. */
    if (f == EVFILT_EMPTY) return OK | B(EBADF) | B(EINVAL) | B(ENOENT);
    if (f == EVFILT_FS) return OK | B(EINVAL) | B(ENOENT);
    /* EVFILT_PROCDESC: the fuzzer makes no process descriptor (any other file is EINVAL);
     * Tests/C/procdesc.c pins its semantics. */
    if (f == EVFILT_PROCDESC) return OK | B(EBADF) | B(EINVAL) | B(ENOENT);
    if (!is_known(f)) {
        /* EVFILT_AIO and EVFILT_LIO: only a request registers one (EPERM from user space),
         * after the registration rules (EV_ADD|EV_KEEPUDATA on a new knote: EINVAL). */
        int requests = f == EVFILT_AIO || f == EVFILT_LIO;
        uint64_t m = requests ? B(EPERM) : (B(ENOSYS) | B(ENXIO));
        if (requests && (fl & (EV_ADD | EV_KEEPUDATA)) == (EV_ADD | EV_KEEPUDATA)) m |= B(EINVAL);
        if (!(fl & EV_ADD)) m |= B(ENOENT); /* FreeBSD looks the knote up before attaching */
        return m;
    }
    if (fd_bad) {
        uint64_t m = B(EBADF);
        if ((fl & (EV_ADD | EV_KEEPUDATA)) == (EV_ADD | EV_KEEPUDATA)) m |= B(EINVAL); /* two rules apply */
        return m;
    }
    struct knote *kn = kn_find(&kqs[k], c->ident, f);
    uint64_t m = 0;
    if (kn) m |= predict_existing(c, fl);
    if (!kn || kn->maybe) m |= predict_missing(k, c, fl);
    return m;
}

/* ---- applying an outcome to the model ------------------------------------------------- */

/* A documented deviation (docs/GUARANTEES.md, "EV_CLEAR and the other filter"): READ and
 * WRITE on one descriptor share one epoll registration; when a change on one filter grows
 * its interest, epoll re-polls the file and reports the other filter's EV_CLEAR knote again
 * if its condition holds. A spurious event, never a lost one; the model allows it once. */
static void other_filter_changed(struct kqmodel *q, uintptr_t ident, short f) {
    struct knote *other = kn_find(q, ident, f == EVFILT_READ ? EVFILT_WRITE : EVFILT_READ);
    if (other) other->cleared = 0;
}

static void apply_modify(struct knote *kn, const struct kevent *c, unsigned short fl, int64_t t0m, int64_t t0r) {
    kn->cleared = 0; /* a modification re-checks the filter */
    if (fl & EV_FORCEONESHOT) {
        kn->flags |= EV_ONESHOT;
        kn->forced = kn->enabled ? FORCE_MUST : FORCE_MAY; /* fired while disabled: see forced */
    }
    if (fl & EV_ENABLE) kn->enabled = 1;
    else if (fl & EV_DISABLE) kn->enabled = 0;
    if (!kn->enabled && kn->forced) kn->forced = FORCE_MAY;
    if (!(fl & EV_KEEPUDATA)) kn->udata = (uintptr_t)c->udata;
    kn->ext2 = c->ext[2];
    kn->ext3 = c->ext[3];
    switch (c->filter) {
    case EVFILT_USER: {
        if (c->fflags & NOTE_TRIGGER) kn->trig = TRIG_YES, kn->armed = 1;
        uint32_t v = c->fflags & NOTE_FFLAGSMASK;
        switch (c->fflags & NOTE_FFCTRLMASK) {
        case NOTE_FFAND: kn->sfflags &= v; break;
        case NOTE_FFOR: kn->sfflags |= v; break;
        case NOTE_FFCOPY: kn->sfflags = v; break;
        default: break;
        }
        kn->sdata = c->data;
        if (c->flags & EV_CLEAR) {
            /* FreeBSD's f_touch resets the state; with NOTE_TRIGGER in the same change
             * SPEC.md's "NOTE_TRIGGER fires it" says otherwise: either is accepted. */
            kn->trig = (c->fflags & NOTE_TRIGGER) ? TRIG_UNKNOWN : TRIG_NO;
        }
        break;
    }
    case EVFILT_TIMER:
        if (fl & EV_ADD) {
            kn->sfflags = c->fflags;
            kn->sdata = c->data;
            timer_start(kn, t0m, t0r); /* cancels, discards expirations, starts again */
        }
        break;
    default: /* READ, WRITE: the stored fflags and data are replaced */
        kn->sfflags = c->fflags;
        kn->sdata = c->data;
        break;
    }
}

/* PROC, VNODE, SIGNAL, EMPTY, FS and PROCDESC: the model keeps only whether the knote exists (vague
 * knotes). */
static void apply_loose(struct kqmodel *q, const struct kevent *c, unsigned short fl, int actual) {
    struct knote *kn = kn_find(q, c->ident, c->filter);
    if (actual == ENOENT) {
        if (kn) kn->used = 0; /* dropped by the library (an exit nobody asked for) */
        return;
    }
    if (actual != 0) return; /* ESRCH, ENOTSUP, EINVAL: nothing created or changed */
    if (kn && (fl & EV_DELETE)) {
        kn->used = 0;
        return;
    }
    if (!kn) {
        kn = kn_alloc(q, c->ident, c->filter);
        kn->flags = (fl & FLAG_STORED) | (c->filter == EVFILT_VNODE || c->filter == EVFILT_EMPTY ? 0 : EV_CLEAR);
        kn->udata = (uintptr_t)c->udata;
    }
    kn->vague = 1;
}

static void apply(int k, const struct kevent *c, int actual, int64_t t0m, int64_t t0r) {
    struct kqmodel *q = &kqs[k];
    unsigned short fl = c->flags & 0x0FFF;
    short f = c->filter;
    if ((f == EVFILT_PROC || f == EVFILT_VNODE || f == EVFILT_SIGNAL || f == EVFILT_EMPTY || f == EVFILT_FS ||
         f == EVFILT_PROCDESC) &&
        (fl & (EV_ENABLE | EV_DISABLE)) != (EV_ENABLE | EV_DISABLE)) {
        apply_loose(q, c, fl, actual);
        return;
    }
    if (f > 0 || f < -EVFILT_SYSCOUNT || !is_known(f)) return;
    if ((fl & (EV_ENABLE | EV_DISABLE)) == (EV_ENABLE | EV_DISABLE)) return;
    if (is_fd_filter(f)) {
        int which;
        int cls = classify_change(c, &which);
        if (cls == N_CLOSED || cls == N_HUGE) return;
    }
    struct knote *kn = kn_find(q, c->ident, f);
    if (actual == 0 && is_fd_filter(f)) other_filter_changed(q, c->ident, f);
    if (actual != 0) {
        if (kn && kn->maybe) {
            if (actual == ENOENT) kn->used = 0;
            else if (!(predict_missing(k, c, fl) & B(actual))) kn->maybe = 0; /* it existed */
            return;
        }
        if (kn && f == EVFILT_TIMER && (fl & EV_ADD) && !(fl & EV_DELETE)) kn->vague = 1; /* half-applied */
        return;
    }
    if (kn && kn->maybe) {
        if ((fl & (EV_ADD | EV_DELETE)) == (EV_ADD | EV_DELETE)) {
            /* Deleted if it existed, created if it did not: still unknown. */
            kn->vague = 1;
            return;
        }
        kn->maybe = 0;
        if ((fl & EV_DELETE) && !(fl & EV_ADD)) kn->used = 0;
        else if (fl & EV_ADD) kn->vague = 1;
        else apply_modify(kn, c, fl, t0m, t0r);
        return;
    }
    if (!kn) {
        if (!(fl & EV_ADD)) fail("harness: success applied to a missing knote without EV_ADD");
        kn = kn_alloc(q, c->ident, f);
        kn->flags = fl & FLAG_STORED;
        kn->enabled = !(fl & EV_DISABLE);
        kn->udata = (uintptr_t)c->udata;
        kn->ext2 = c->ext[2];
        kn->ext3 = c->ext[3];
        kn->sfflags = c->fflags;
        kn->sdata = c->data;
        if (f == EVFILT_USER) {
            kn->trig = (c->fflags & NOTE_TRIGGER) ? TRIG_YES : TRIG_NO;
            kn->armed = kn->trig == TRIG_YES;
            kn->sfflags = c->fflags & NOTE_FFLAGSMASK;
        } else if (f == EVFILT_TIMER) {
            if (!(c->fflags & NOTE_ABSTIME)) kn->flags |= EV_CLEAR; /* SPEC.md 2: TIMER adds EV_CLEAR */
            timer_start(kn, t0m, t0r);
        }
        return;
    }
    if (fl & EV_DELETE) {
        kn->used = 0;
        return;
    }
    apply_modify(kn, c, fl, t0m, t0r);
}

/* The call's outcome for change c could not be observed: the knote may be in any state. */
static void make_uncertain(int k, const struct kevent *c) {
    short f = c->filter;
    if (f > 0 || f < -EVFILT_SYSCOUNT ||
        (!is_known(f) && f != EVFILT_PROC && f != EVFILT_VNODE && f != EVFILT_SIGNAL && f != EVFILT_EMPTY &&
         f != EVFILT_FS && f != EVFILT_PROCDESC))
        return;
    if (is_fd_filter(f)) {
        int which;
        int cls = classify_change(c, &which);
        if (cls == N_CLOSED || cls == N_HUGE) return;
    }
    struct knote *kn = kn_find(&kqs[k], c->ident, f);
    if (!kn) kn = kn_alloc(&kqs[k], c->ident, f);
    kn->maybe = 1;
    kn->vague = 1;
}

/* ---- checking returned events ---------------------------------------------------------- */

/* "Fires at once" is a timer expiring now, which both FreeBSD (a callout) and Linux (an
 * hrtimer behind the timerfd) deliver asynchronously, within microseconds: the model asks
 * for it only once this long has passed since the timer was started. */
#define DUE_GRACE_NS 2000000

/* Room for the library's internal reports (4 wakeup eventfds, 2 timerfds, inotify). */
#define SPARE_ROOM 8

static int must_fire(const struct knote *kn, int64_t t0m) {
    if (kn->vague || kn->maybe || !kn->enabled) return 0;
    if (kn->forced == FORCE_MUST) return 1; /* EV_FORCEONESHOT fires it */
    if (kn->forced) return 0;
    switch (kn->filter) {
    case EVFILT_USER:
        return kn->trig == TRIG_YES;
    case EVFILT_TIMER:
        return kn->due && kn->expirations == 0 && t0m - kn->t_start >= DUE_GRACE_NS;
    case EVFILT_READ:
    case EVFILT_WRITE: {
        if (kn->flags & EV_CLEAR) return 0;
        if (kn->sfflags & (NOTE_LOWAT | NOTE_FILE_POLL)) return 0;
        int which;
        if (classify(kn->ident, &which) != N_POOL) return 0;
        int fd = (int)kn->ident;
        struct ofd *o = &ofds[slots[which].ofd];
        struct ofd *p = &ofds[o->peer];
        if (kn->filter == EVFILT_READ) {
            if (o->kind == O_PIPE_R) return p->refs == 0 || bytes_readable(fd) > 0;
            if (o->kind == O_STREAM) return p->refs == 0 || p->shut_wr || bytes_readable(fd) > 0;
            return 0;
        }
        if (o->kind == O_PIPE_W) return p->refs == 0 || bytes_readable(fd) == 0;
        if (o->kind == O_FILE_R || o->kind == O_FILE_W) return 1; /* regular files: always ready */
        return 0;
    }
    }
    return 0;
}

static void check_fd_event(const struct kevent *e, const struct knote *kn, int k) {
    int which;
    int cls = classify(e->ident, &which);
    if (cls == N_KQ) {
        if (e->filter == EVFILT_READ && (int)which == k) REPORT("self-event", "kq%d: event for itself %s", k, kevstr(e));
        return; /* READ on another kqueue: data is its pending count, time-dependent */
    }
    if (cls != N_POOL) REPORT("stale", "kq%d: event for descriptor %" PRIuPTR " that is not open: %s", k, e->ident, kevstr(e));
    if ((kn->flags & EV_CLEAR) && kn->cleared && !kn->forced)
        REPORT("clear-repeat", "kq%d: EV_CLEAR knote returned again although its source did not change since it was "
             "last returned (SPEC.md 2 delivery rules: reset until the source changes again): %s", k, kevstr(e));
    if (kn->flags & EV_ONESHOT) return; /* a oneshot is returned as recorded (FreeBSD) */
    int fd = (int)e->ident;
    struct ofd *o = &ofds[slots[which].ofd];
    struct ofd *p = &ofds[o->peer];
    int eof = (e->flags & EV_EOF) != 0;
    if (e->filter == EVFILT_READ && (o->kind == O_PIPE_R || o->kind == O_STREAM)) {
        int64_t bytes = bytes_readable(fd);
        int want_eof = o->kind == O_PIPE_R ? p->refs == 0 : (p->refs == 0 || p->shut_wr);
        if (e->data != bytes)
            REPORT("read-data", "kq%d: READ on %s %d: data %" PRId64 " but %" PRId64 " bytes are readable (SPEC.md 3 READ): %s",
                 k, kind_names[o->kind], fd, e->data, bytes, kevstr(e));
        if (eof != want_eof)
            REPORT("read-eof", "kq%d: READ on %s %d: EV_EOF is %d but the writer is %s (SPEC.md 3 READ): %s", k,
                 kind_names[o->kind], fd, eof, want_eof ? "gone" : "there", kevstr(e));
        if (!eof) {
            int64_t low = (kn->sfflags & NOTE_LOWAT) ? kn->sdata : 1;
            if (e->data < low)
                REPORT("read-lowat", "kq%d: READ on %s %d returned with data %" PRId64 " below the low-water mark %" PRId64
                     " and no EOF (SPEC.md 3 READ: fires when data >= low-water mark): %s",
                     k, kind_names[o->kind], fd, e->data, low, kevstr(e));
        }
    } else if (e->filter == EVFILT_WRITE && o->kind == O_PIPE_W) {
        int64_t bytes = bytes_readable(fd);
        int size = fcntl(fd, F_GETPIPE_SZ);
        int want_eof = p->refs == 0;
        if (e->data != size - bytes)
            REPORT("write-data", "kq%d: WRITE on pipe %d: data %" PRId64 " but free space is %d - %" PRId64
                 " (SPEC.md 3 WRITE, 4: F_GETPIPE_SZ minus FIONREAD): %s", k, fd, e->data, size, bytes, kevstr(e));
        if (eof != want_eof)
            REPORT("write-eof", "kq%d: WRITE on pipe %d: EV_EOF is %d but the reader is %s (SPEC.md 3 WRITE): %s", k, fd, eof,
                 want_eof ? "gone" : "there", kevstr(e));
        if (!eof && !(kn->sfflags & NOTE_LOWAT) && e->data < PIPEBUF)
            REPORT("write-room", "kq%d: WRITE on pipe %d returned with %" PRId64 " bytes free, less than PIPE_BUF (SPEC.md 3 WRITE): %s",
                 k, fd, e->data, kevstr(e));
    } else if (e->filter == EVFILT_READ && (o->kind == O_FILE_R || o->kind == O_FILE_W)) {
        struct stat st;
        off_t off = lseek(fd, 0, SEEK_CUR);
        if (fstat(fd, &st) != 0 || off < 0) fail("harness: fstat/lseek(%d): %s", fd, strerror(errno));
        int64_t want = (int64_t)st.st_size - (int64_t)off;
        if (e->data != want)
            REPORT("file-data", "kq%d: READ on regular file %d: data %" PRId64 " but size %" PRId64 " - offset %" PRId64
                 " = %" PRId64 " (SPEC.md 3 READ: regular files): %s", k, fd, e->data, (int64_t)st.st_size,
                 (int64_t)off, want, kevstr(e));
        if (e->data == 0 && !(kn->sfflags & NOTE_FILE_POLL))
            REPORT("file-zero", "kq%d: READ on regular file %d returned with data 0 without NOTE_FILE_POLL (SPEC.md 3 READ): %s",
                 k, fd, kevstr(e));
    } else if (e->filter == EVFILT_WRITE && o->kind == O_STREAM && !o->shut_wr) {
        int want_eof = p->refs == 0;
        if (eof != want_eof)
            REPORT("write-eof", "kq%d: WRITE on stream socket %d: EV_EOF is %d but the peer is %s (SPEC.md 3 WRITE): %s", k, fd,
                 eof, want_eof ? "gone" : "there", kevstr(e));
    }
}

static void check_timer_event(const struct kevent *e, const struct knote *kn, int k, int64_t t1m, int64_t t1r) {
    if (e->fflags != 0) REPORT("timer-fflags", "kq%d: TIMER event with fflags %#x (SPEC.md 3 TIMER: fflags = 0): %s", k, e->fflags, kevstr(e));
    if (kn->forced) return; /* returned as recorded */
    if (e->data < 1) REPORT("timer-count", "kq%d: TIMER event with data %" PRId64 " < 1 expiration: %s", k, e->data, kevstr(e));
    if (kn->abstime) {
        if (t1r < kn->deadline)
            REPORT("timer-early", "kq%d: NOTE_ABSTIME timer fired %" PRId64 " ns before its time (SPEC.md 3 TIMER: never early): %s", k,
                 kn->deadline - t1r, kevstr(e));
        /* It expires once. Without EV_CLEAR (which NOTE_ABSTIME does not add) the event is
         * level-triggered on that one expiration, as on FreeBSD. */
        int64_t total = (kn->flags & EV_CLEAR) ? kn->expirations + e->data : e->data;
        if (total > 1)
            REPORT("timer-count", "kq%d: NOTE_ABSTIME timer expired %" PRId64 " times (SPEC.md 3 TIMER: does not repeat): %s", k,
                 total, kevstr(e));
        return;
    }
    int64_t elapsed = t1m - kn->t_start;
    if (elapsed < kn->period)
        REPORT("timer-early", "kq%d: TIMER fired %" PRId64 " ns after its start, period %" PRId64 " ns (SPEC.md 3 TIMER: never early): %s",
             k, elapsed, kn->period, kevstr(e));
    if (kn->flags & EV_ONESHOT) {
        if (e->data != 1) REPORT("timer-count", "kq%d: oneshot TIMER with data %" PRId64 " (one expiration): %s", k, e->data, kevstr(e));
    } else if (kn->period > 0) {
        /* With EV_CLEAR each event counts the expirations since the last one; without it
         * (a timer made NOTE_ABSTIME first) the count is never reset. */
        int64_t total = (kn->flags & EV_CLEAR) ? kn->expirations + e->data : e->data;
        if (total > elapsed / kn->period)
            REPORT("timer-count", "kq%d: TIMER counted %" PRId64 " expirations in %" PRId64 " ns with period %" PRId64
                 " ns (missed periods are counted, never more): %s", k, total, elapsed, kn->period, kevstr(e));
    }
}

static void check_events(int k, const struct kevent *ev, int n, int nevents, int64_t t0m, int64_t t1m, int64_t t1r) {
    struct kqmodel *q = &kqs[k];
    int total = kn_count(q);
    char seen[MAXKN] = {0};
    struct knote *hit[MAXKN];
    for (int i = 0; i < n; i++) {
        const struct kevent *e = &ev[i];
        if (e->flags & EV_ERROR) REPORT("event-error", "kq%d: event %d has EV_ERROR among pending events: %s", k, i, kevstr(e));
        struct knote *kn = kn_find(q, e->ident, e->filter);
        hit[i] = NULL;
        if (!kn && e->filter == EVFILT_PROC && (e->fflags & NOTE_CHILD)) {
            /* NOTE_TRACK followed a fork of a watched process (pid 1 forks whenever the
             * machine runs a command): the library registered the child itself. */
            kn = kn_alloc(q, e->ident, EVFILT_PROC);
            kn->flags = EV_CLEAR;
            kn->vague = 1;
        }
        if (!kn) {
            REPORT("stale", "kq%d: event %d for a knote the model says does not exist (never added, deleted, a "
                   "oneshot already returned, or its descriptor was closed: a stale event): %s", k, i, kevstr(e));
            continue;
        }
        int idx = (int)(kn - q->kn);
        if (seen[idx]) {
            REPORT("twice", "kq%d: knote returned twice in one call (SPEC.md 2.10): %s", k, kevstr(e));
            continue;
        }
        seen[idx] = 1;
        hit[i] = kn;
        if (e->flags & (FLAG_ACTIONS | EV_KEEPUDATA))
            REPORT("event-flags", "kq%d: returned flags keep an action bit (SPEC.md 2 delivery rules): %s", k, kevstr(e));
        if (kn->vague) continue;
        if (!kn->enabled) REPORT("disabled", "kq%d: event for a disabled knote (SPEC.md 2: EV_DISABLE stops delivery): %s", k, kevstr(e));
        if ((e->flags & FLAG_STORED) != kn->flags)
            REPORT("event-flags", "kq%d: returned ONESHOT/CLEAR/DISPATCH are %s, stored %s (SPEC.md 2 delivery rules): %s", k,
                 flagnames(e->flags & FLAG_STORED), flagnames(kn->flags), kevstr(e));
        if ((uintptr_t)e->udata != kn->udata)
            REPORT("udata", "kq%d: udata %#" PRIxPTR ", the model has %#" PRIxPTR " (udata is returned as given; EV_KEEPUDATA "
                 "keeps it): %s", k, (uintptr_t)e->udata, kn->udata, kevstr(e));
        if (e->ext[2] != kn->ext2 || e->ext[3] != kn->ext3)
            REPORT("ext", "kq%d: ext[2..3] = %#" PRIx64 ",%#" PRIx64 ", given %#" PRIx64 ",%#" PRIx64 " (SPEC.md 1): %s", k,
                 e->ext[2], e->ext[3], kn->ext2, kn->ext3, kevstr(e));
        switch (e->filter) {
        case EVFILT_USER:
            if (kn->trig == TRIG_NO && !kn->forced && !((kn->flags & EV_ONESHOT) && kn->armed))
                REPORT("user-spurious", "kq%d: USER event returned but never triggered since its last reset (SPEC.md 3 USER): %s", k, kevstr(e));
            if (e->fflags != kn->sfflags || e->data != kn->sdata)
                REPORT("user-value", "kq%d: USER event fflags %#x data %" PRId64 ", the model has %#x and %" PRId64
                     " (SPEC.md 3 USER: stored low 24 bits, stored data): %s", k, e->fflags, e->data, kn->sfflags,
                     kn->sdata, kevstr(e));
            if (e->flags & EV_EOF) REPORT("event-flags", "kq%d: USER event with EV_EOF: %s", k, kevstr(e));
            break;
        case EVFILT_TIMER:
            if (e->flags & EV_EOF) REPORT("event-flags", "kq%d: TIMER event with EV_EOF: %s", k, kevstr(e));
            check_timer_event(e, kn, k, t1m, t1r);
            break;
        default:
            check_fd_event(e, kn, k);
            break;
        }
    }
    /* Every knote that must fire did, when the eventlist had room for every knote. */
    if (nevents >= total) {
        for (int i = 0; i < MAXKN; i++) {
            struct knote *kn = &q->kn[i];
            if (!kn->used || seen[i] || !must_fire(kn, t0m)) continue;
            /* With little room beyond the knotes, a miss may be the library's epoll batch
             * (sized by nevents) filled by its own wakeup descriptors: "late-batch". */
            const char *id = nevents < total + SPARE_ROOM ? "late-batch"
                             : kn->forced ? "late-forced"
                             : kn->filter == EVFILT_USER ? "late-user"
                             : kn->filter == EVFILT_TIMER ? "late-timer"
                             : kn->filter == EVFILT_READ ? "late-read" : "late-write";
            if (known(id)) continue;
            struct kevent shown;
            EV_SET(&shown, kn->ident, kn->filter, kn->flags, kn->sfflags, kn->sdata, (void *)kn->udata);
            fail("[%s] kq%d: knote %s must be returned (enabled, %s) but the poll returned %d of %d possible events",
                 id, k, kevstr(&shown),
                 kn->forced ? "EV_FORCEONESHOT pending"
                 : kn->filter == EVFILT_USER ? "triggered"
                 : kn->filter == EVFILT_TIMER ? "oneshot delay 0 or past absolute time: fires at once"
                 : "level-triggered and its condition holds",
                 n, nevents);
        }
    }
    /* Delivery effects. */
    for (int i = 0; i < n; i++) {
        const struct kevent *e = &ev[i];
        struct knote *kn = hit[i];
        if (!kn || !kn->used) continue;
        if (kn->vague) {
            kn->maybe = 0;
            if (e->flags & EV_ONESHOT) kn->used = 0;
            continue;
        }
        if (kn->flags & EV_ONESHOT) {
            kn->used = 0; /* returned once, then deleted */
            continue;
        }
        if (kn->flags & EV_DISPATCH) kn->enabled = 0;
        if (kn->filter == EVFILT_USER && (kn->flags & EV_CLEAR)) kn->trig = TRIG_NO, kn->armed = 0;
        if (kn->filter == EVFILT_USER && kn->trig == TRIG_UNKNOWN) kn->trig = TRIG_YES; /* it fired */
        if (kn->filter == EVFILT_TIMER) {
            kn->expirations += e->data;
            kn->due = 0;
        }
        if (is_fd_filter(kn->filter) && (kn->flags & EV_CLEAR)) kn->cleared = 1;
    }
}

/* ---- kevent() with a changelist, checked ---------------------------------------------- */

enum { TO_ZERO, TO_SHORT, TO_NULL, TO_BAD_SEC, TO_BAD_NSEC, TO_BIG_NSEC };

static int call_serial;

static void do_kevent(int k, struct kevent *changes, int nch, int nevents, int tkind) {
    struct kqmodel *q = &kqs[k];
    struct timespec ts = {0, 0};
    const struct timespec *tp = &ts;
    switch (tkind) {
    case TO_SHORT: ts.tv_nsec = 1000; break;
    case TO_NULL: tp = NULL; break;
    case TO_BAD_SEC: ts.tv_sec = -1; break;
    case TO_BAD_NSEC: ts.tv_nsec = -1; break;
    case TO_BIG_NSEC: ts.tv_nsec = 1000000000; break;
    default: break;
    }
    int bad_timeout = tkind >= TO_BAD_SEC;
    if (tp == NULL && nevents > 0) tp = &ts; /* never block forever */

    /* Exact-size heap buffers: ASan sees any access past them. */
    struct kevent *cl = nch ? malloc((size_t)nch * sizeof *cl) : NULL;
    struct kevent *el = nevents ? malloc((size_t)nevents * sizeof *el) : NULL;
    if (nch) memcpy(cl, changes, (size_t)nch * sizeof *cl);
    if (nevents) memset(el, 0xA5, (size_t)nevents * sizeof *el);

    call_serial++;
    trace("kevent#%d(kq%d=%d, nchanges=%d, nevents=%d, timeout=%s)", call_serial, k, q->fd, nch, nevents,
          tp == NULL ? "NULL" : tkind == TO_SHORT ? "1us" : bad_timeout ? "invalid" : "0");
    for (int i = 0; i < nch; i++) trace("    change[%d] %s", i, kevstr(&changes[i]));

    for (int i = 0; i < nch; i++) snap_cls[i] = classify(changes[i].ident, &snap_which[i]);
    snap_changes = changes;
    snap_count = nch;
    int64_t t0m = now_ns(CLOCK_MONOTONIC), t0r = now_ns(CLOCK_REALTIME);
    errno = 0;
    int ret = kevent(q->fd, cl, nch, el, nevents, tp);
    int err = errno;
    int64_t t1m = now_ns(CLOCK_MONOTONIC), t1r = now_ns(CLOCK_REALTIME);
    if (ret < 0) trace("    -> -1 %s", errname(err));
    else trace("    -> %d", ret);
    for (int i = 0; i < ret && i < nevents; i++) trace("    out[%d] %s", i, kevstr(&el[i]));

    if (ret < -1 || ret > nevents) fail("kq%d: kevent returned %d with nevents %d (SPEC.md 2.9)", k, ret, nevents);

    int written = 0;        /* EV_ERROR entries matched so far */
    int error_claimed = 0;  /* a change accounts for ret == -1 */
    for (int i = 0; i < nch; i++) {
        const struct kevent *c = &changes[i];
        if (c->filter == 0) continue; /* SPEC.md 2.2: skipped */
        uint64_t pred = predict(k, c);
        int receipt = (c->flags & EV_RECEIPT) != 0;
        if (written < nevents) {
            int actual = 0;
            /* The entry is there even when a later change ran out of room and made the call
             * return -1 (SPEC.md 2.3: earlier changes stay applied). */
            if ((ret > written || ret == -1) && (el[written].flags & EV_ERROR) && el[written].udata == c->udata) {
                const struct kevent *e = &el[written];
                if (e->flags != EV_ERROR || e->ident != c->ident || e->filter != c->filter ||
                    e->fflags != c->fflags || e->ext[0] != c->ext[0] || e->ext[1] != c->ext[1] ||
                    e->ext[2] != c->ext[2] || e->ext[3] != c->ext[3])
                    fail("kq%d: EV_ERROR entry %d %s does not copy change %d %s (SPEC.md 2.3: flags = EV_ERROR, "
                         "other fields as given)", k, written, kevstr(e), i, kevstr(c));
                if (e->data < 0 || e->data > 4095) fail("kq%d: EV_ERROR entry with data %" PRId64, k, e->data);
                actual = (int)e->data;
                written++;
                if (actual == 0 && !receipt)
                    fail("kq%d: change %d %s without EV_RECEIPT produced an entry with data 0", k, i, kevstr(c));
            } else if (receipt) {
                fail("kq%d: change %d %s has EV_RECEIPT and room, but no EV_ERROR entry was written "
                     "(SPEC.md 2.4); expected %s", k, i, kevstr(c), maskstr(pred));
            }
            if (!(pred & B(actual)))
                fail("kq%d: change %d %s: the library says %s, the model expects %s", k, i, kevstr(c),
                     errname(actual), maskstr(pred));
            apply(k, c, actual, t0m, t0r);
            continue;
        }
        /* No room for an entry: an error fails the call, a receipt ends the changes. */
        if (ret == -1) {
            if (pred == OK) {
                if (receipt)
                    fail("kq%d: change %d %s succeeds with EV_RECEIPT and no room: kevent must return "
                         "without error (SPEC.md 2.4), it returned -1 %s", k, i, kevstr(c), errname(err));
                apply(k, c, 0, t0m, t0r);
                continue;
            }
            if (!(pred & OK)) {
                if (!(pred & B(err)))
                    fail("kq%d: change %d %s fails with no room for an entry: the model expects %s, kevent "
                         "returned -1 %s (SPEC.md 2.3)", k, i, kevstr(c), maskstr(pred), errname(err));
                apply(k, c, err, t0m, t0r);
                error_claimed = 1;
                break;
            }
            if (!(pred & B(err))) { /* it cannot be the failing one: it succeeded */
                apply(k, c, 0, t0m, t0r);
                continue;
            }
            /* Could have failed here or succeeded and failed later: unknown from here on. */
            for (int j = i; j < nch; j++)
                if (changes[j].filter != 0) make_uncertain(k, &changes[j]);
            error_claimed = 1;
            break;
        }
        if (!(pred & OK))
            fail("kq%d: change %d %s must fail (%s) with no room for an entry, but kevent returned %d (SPEC.md 2.3)",
                 k, i, kevstr(c), maskstr(pred), ret);
        apply(k, c, 0, t0m, t0r);
        if (receipt) break; /* SPEC.md 2.4: no room for the receipt: changes stop here */
    }

    if (ret == -1 && !error_claimed) {
        /* SPEC.md 2.8: a signal (libFuzzer's -timeout alarm) ends a wait with EINTR; the
         * changes stay applied. */
        if (written == 0 && nevents > 0 && !bad_timeout && err == EINTR) {
            trace("    (interrupted by a signal)");
        } else if (!(written == 0 && nevents > 0 && bad_timeout && err == EINVAL))
            fail("kq%d: kevent returned -1 %s that no change and no argument accounts for", k, errname(err));
    } else if (ret >= 0) {
        if (written > 0) {
            if (ret != written)
                fail("kq%d: kevent wrote %d EV_ERROR entries but returned %d (SPEC.md 2.5: no events then)", k,
                     written, ret);
        } else if (nevents > 0) {
            if (bad_timeout) fail("kq%d: invalid timeout accepted (SPEC.md 2.1: EINVAL), returned %d", k, ret);
            check_events(k, el, ret, nevents, t0m, t1m, t1r);
        } else if (ret != 0) {
            fail("kq%d: nevents 0 but kevent returned %d", k, ret);
        }
    }
    snap_changes = NULL;
    snap_count = 0;
    free(cl);
    free(el);
}

/* ---- generating changes ---------------------------------------------------------------- */

static const int64_t data_table[16] = {
    0, 1, 2, 3, 5, 10, 50, 100, 1000, 4096, 65536, -1, INT64_MIN, 1000000000, 4000000000LL, 7,
};

static const short filter_table[30] = {
    EVFILT_READ, EVFILT_READ, EVFILT_READ, EVFILT_READ, EVFILT_READ, EVFILT_READ,
    EVFILT_WRITE, EVFILT_WRITE, EVFILT_WRITE, EVFILT_WRITE, EVFILT_WRITE,
    EVFILT_USER, EVFILT_USER, EVFILT_USER, EVFILT_USER, EVFILT_USER, EVFILT_USER,
    EVFILT_TIMER, EVFILT_TIMER, EVFILT_TIMER, EVFILT_TIMER,
    EVFILT_AIO, EVFILT_VNODE, EVFILT_PROC, EVFILT_SIGNAL, EVFILT_PROCDESC, EVFILT_FS, EVFILT_LIO,
    EVFILT_SENDFILE, EVFILT_EMPTY,
};

static short decode_filter(uint8_t b) {
    uint8_t i = b % 36;
    if (i < 30) return filter_table[i];
    switch (i) {
    case 30: return 0;
    case 31: return 1;
    case 32: return -14;
    case 33: return SHRT_MIN;
    case 34: return SHRT_MAX;
    default: return -100;
    }
}

static uintptr_t other_ident(uint8_t b) {
    switch (b % 8) {
    case 4: return UINTPTR_MAX;
    case 5: return (uintptr_t)1 << 40;
    case 6: return (uintptr_t)INT_MAX + 1;
    case 7: return 0x7fffffff;
    default: return b % 8;
    }
}

/* A descriptor number for READ/WRITE; returns 0 when the change should be skipped. */
static int fd_ident(int k, uint8_t b, short *filter, uintptr_t *ident) {
    int s = b % 16;
    if (s < NFD) {
        if (slots[s].fd >= 0) *ident = (uintptr_t)slots[s].fd;
        else if (slots[s].last >= 0) *ident = (uintptr_t)slots[s].last;
        else *ident = 0x7ffffff0;
    } else if (s == 12) {
        int o = k ^ 1;
        if (k == 0 && kqs[o].open) {
            *ident = (uintptr_t)kqs[o].fd;
            *filter = EVFILT_READ;
        } else {
            *ident = (uintptr_t)kqs[k].fd;
        }
    } else if (s == 13) {
        *ident = (uintptr_t)(kqs[k].open ? kqs[k].fd : kqs[k].last);
    } else if (s == 14) {
        *ident = (b & 0x80) ? UINTPTR_MAX : (b & 0x40) ? ((uintptr_t)1 << 40) : (uintptr_t)INT_MAX + 1;
    } else {
        *ident = (b & 0x80) ? 0x7ffffff0 : 1000;
    }
    int which;
    int cls = classify(*ident, &which);
    if (cls == N_FOREIGN) return 0; /* stdin, libFuzzer's, the library's own: not ours to watch */
    if (cls == N_KQ && !(which == k || (k == 0 && which == 1 && *filter == EVFILT_READ))) return 0; /* no cycles */
    return 1;
}

/* Set by a change that may make the library open a descriptor of its own during the call, on
 * the lowest free number (READ on a regular file: inotify; TIMER: a timerfd; VNODE: inotify;
 * PROC: a pidfd); later changes of the list then avoid closed numbers. */
static int list_may_open_descriptor;

static void decode_change(int k, struct kevent *c, int index) {
    uint8_t bf = u8(), bi = u8(), blo = u8(), bhi = u8(), bff = u8(), bd = u8();
    short filter = decode_filter(bf);
    uintptr_t ident = 0;
    unsigned short flags = (unsigned short)(blo | ((bhi & 0x3) << 8));
    if (bhi & 0x80) flags |= (unsigned short)((bhi & 0x70) << 8); /* system bits: must be ignored */
    if (bhi & 0x08) flags |= EV_EOF;
    uint32_t fflags = 0;
    int64_t data = data_table[bd & 15];
    switch (filter) {
    case EVFILT_READ:
    case EVFILT_WRITE:
        if (!fd_ident(k, bi, &filter, &ident)) {
            filter = 0;
        } else {
            int which;
            int cls = classify(ident, &which);
            if (cls == N_CLOSED && list_may_open_descriptor) ident = 0x7ffffff0;
            if (cls == N_POOL && filter == EVFILT_READ &&
                (ofds[slots[which].ofd].kind == O_FILE_R || ofds[slots[which].ofd].kind == O_FILE_W))
                list_may_open_descriptor = 1;
        }
        fflags = (bff & 3) == 1 ? NOTE_LOWAT : (bff & 3) == 2 ? NOTE_FILE_POLL : 0;
        break;
    case EVFILT_USER: {
        ident = other_ident(bi);
        uint32_t low = (uint32_t)(bff & 0x1f);
        if (bff & 0x10) low |= 0xF00000;
        fflags = ((uint32_t)(bff >> 6) << 30) | ((bff & 0x20) ? NOTE_TRIGGER : 0) | low;
        if ((bd & 0xF0) == 0xF0) fflags |= 0x02000000; /* a bit outside the known ones */
        data = (bd & 0x10) ? data_table[bd & 15] : (int64_t)(bd >> 5);
        break;
    }
    case EVFILT_TIMER: {
        ident = other_ident(bi);
        static const uint32_t units[8] = {0, NOTE_SECONDS, NOTE_MSECONDS, NOTE_USECONDS, NOTE_NSECONDS,
                                          NOTE_NSECONDS, NOTE_USECONDS, NOTE_SECONDS | NOTE_MSECONDS};
        fflags = units[bff & 7];
        if (bff & 0x08) fflags |= NOTE_ABSTIME;
        if ((bff & 0xF0) == 0xF0) fflags |= 0x100; /* not a timer bit: EINVAL */
        /* Small periods: sub-millisecond units mostly. */
        if (!(bd & 0x80) && !(fflags & NOTE_ABSTIME) && (fflags & 0xF) != NOTE_NSECONDS && (fflags & 0xF) != NOTE_USECONDS)
            data = data % 4;
        break;
    }
    default:
        ident = other_ident(bi);
        fflags = bff;
        break;
    }
    if (filter == EVFILT_TIMER || filter == EVFILT_VNODE || filter == EVFILT_PROC || filter == EVFILT_SIGNAL ||
        filter == EVFILT_EMPTY || filter == EVFILT_FS || filter == EVFILT_PROCDESC)
        list_may_open_descriptor = 1;
    uint64_t token = ((uint64_t)++token_serial << 8) | (uint64_t)index | 0x1;
    EV_SET(c, ident, filter, flags, fflags, data, (void *)(uintptr_t)token);
    c->ext[0] = token ^ 0x1111;
    c->ext[1] = token ^ 0x2222;
    c->ext[2] = token ^ 0x3333;
    c->ext[3] = token ^ 0x4444;
}

/* ---- pool operations -------------------------------------------------------------------- */

static char wbuf[70000];
static char rbuf[70000];
static const int size_table[8] = {1, 10, 100, 1000, 4096, 5000, 65536, 70000};

static int free_slot(void) {
    for (int i = 0; i < NFD; i++)
        if (slots[i].fd < 0) return i;
    return -1;
}

static int new_ofd(int kind) {
    if (nofds >= NOFD) return -1;
    ofds[nofds] = (struct ofd){kind, -1, 0, 0};
    return nofds++;
}

static void put_fd(int s, int fd, int o) {
    slots[s].fd = fd;
    slots[s].ofd = o;
    slots[s].last = fd;
    ofds[o].refs++;
}

static void close_slot(int s) {
    int fd = slots[s].fd;
    if (fd < 0) return;
    if (close(fd) != 0) fail("harness: close(%d) failed: %s", fd, strerror(errno));
    ofds[slots[s].ofd].refs--;
    slots[s].fd = -1;
    model_number_closed(fd);
    model_object_touched(slots[s].ofd);
}

static int open_tmpfile(void) {
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char name[] = "/tmp/kevent_fuzz.XXXXXX";
    fd = mkostemp(name, O_CLOEXEC);
    if (fd < 0) fail("harness: mkostemp: %s", strerror(errno));
    unlink(name);
    return fd;
}

/* kind: 0 pipe, 1 socketpair, 2 regular file (appending writer + reader). */
static void op_pair(int kind, uint8_t b) {
    int socket_pair = kind == 1;
    int a = -1, c = -1;
    for (int i = 0; i < NFD && c < 0; i++)
        if (slots[i].fd < 0) { if (a < 0) a = i; else c = i; }
    if (c < 0 || nofds + 2 > NOFD) return;
    int fds[2];
    int kind0, kind1;
    if (kind == 2) {
        fds[1] = open_tmpfile();
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[1]);
        fds[0] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[0] < 0) fail("harness: open(%s): %s", path, strerror(errno));
        fcntl(fds[1], F_SETFL, O_APPEND | O_WRONLY);
        kind0 = O_FILE_R;
        kind1 = O_FILE_W;
    } else if (socket_pair) {
        int type = (b & 1) ? SOCK_DGRAM : SOCK_STREAM;
        if (socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) fail("harness: socketpair: %s", strerror(errno));
        kind0 = kind1 = type == SOCK_DGRAM ? O_DGRAM : O_STREAM;
    } else {
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) fail("harness: pipe2: %s", strerror(errno));
        if (b & 1) fcntl(fds[1], F_SETPIPE_SZ, 4096);
        kind0 = O_PIPE_R;
        kind1 = O_PIPE_W;
    }
    int o0 = new_ofd(kind0), o1 = new_ofd(kind1);
    ofds[o0].peer = o1;
    ofds[o1].peer = o0;
    /* Both orders, so that a read end and a write end each get reused numbers. */
    if (b & 2) {
        put_fd(a, fds[0], o0);
        put_fd(c, fds[1], o1);
    } else {
        put_fd(a, fds[1], o1);
        put_fd(c, fds[0], o0);
    }
    trace("%s -> slot%d=%d (%s), slot%d=%d (%s)", kind == 2 ? "file" : socket_pair ? "socketpair" : "pipe", a, slots[a].fd,
          kind_names[ofds[slots[a].ofd].kind], c, slots[c].fd, kind_names[ofds[slots[c].ofd].kind]);
}

static void op_kq_open(int k, uint8_t b) {
    struct kqmodel *q = &kqs[k];
    if (q->open) return;
    int fd;
    if (b & 0x40) {
        errno = 0;
        int bad = kqueuex(0x2 | (b & 1));
        if (bad != -1 || errno != EINVAL) fail("kqueuex(unknown flag) returned %d errno %s, expected -1 EINVAL", bad, errname(errno));
    }
    fd = (b & 1) ? kqueuex(KQUEUE_CLOEXEC) : kqueue();
    if (fd < 0) fail("kqueue() failed: %s", strerror(errno));
    int which;
    if (classify((uintptr_t)fd, &which) == N_POOL) fail("kqueue() returned %d, a descriptor of the pool", fd);
    memset(q, 0, sizeof *q);
    q->open = 1;
    q->fd = fd;
    q->last = fd;
    /* Create the kqueue's timerfds now (they are made on first use and kept): a descriptor
     * the library opens in the middle of a call would take a number the model thinks closed.
     * (Its inotify instance, made on the first READ on a regular file, is not made here:
     * closing one costs milliseconds. decode_change keeps clear of that case instead.) */
    struct kevent w[4];
    EV_SET(&w[0], 0xFEEDF00D, EVFILT_TIMER, EV_ADD, 0, 1000000, NULL);
    EV_SET(&w[1], 0xFEEDF00E, EVFILT_TIMER, EV_ADD, NOTE_ABSTIME | NOTE_SECONDS, 4000000000LL, NULL);
    EV_SET(&w[2], 0xFEEDF00D, EVFILT_TIMER, EV_DELETE, 0, 0, NULL);
    EV_SET(&w[3], 0xFEEDF00E, EVFILT_TIMER, EV_DELETE, 0, 0, NULL);
    if (kevent(fd, w, 4, NULL, 0, NULL) != 0) fail("kq%d: warm-up failed: %s", k, strerror(errno));
    trace("kqueue -> kq%d=%d", k, fd);
}

static void op_kq_close(int k) {
    struct kqmodel *q = &kqs[k];
    if (!q->open) return;
    trace("close(kq%d=%d)", k, q->fd);
    if (close(q->fd) != 0) fail("close(kq%d=%d): %s", k, q->fd, strerror(errno));
    q->open = 0;
    memset(q->kn, 0, sizeof q->kn);
    model_number_closed(q->fd);
}

static void op_bad_call(uint8_t b) {
    int k = b & 1;
    struct kqmodel *q = &kqs[k];
    struct kevent c;
    EV_SET(&c, 0xABCDEF, EVFILT_USER, EV_ADD | EV_RECEIPT, NOTE_TRIGGER, 0, NULL);
    struct kevent ev[2];
    struct timespec zero = {0, 0};
    int ret, want, want_errno;
    const char *what;
    errno = 0;
    switch ((b >> 1) % 5) {
    case 0: { /* not a kqueue */
        int fd = -1;
        uint8_t s = (uint8_t)((b >> 4) % (NFD + 2));
        if (s < NFD && slots[s].fd >= 0) fd = slots[s].fd;
        else if (s == NFD) fd = 0x7ffffff0;
        else if (s < NFD && slots[s].last >= 0) {
            int which;
            int cls = classify((uintptr_t)slots[s].last, &which);
            fd = cls == N_KQ ? -1 : slots[s].last;
        }
        what = "kevent on a descriptor that is not a kqueue";
        ret = kevent(fd, &c, 1, ev, 2, &zero);
        want = -1;
        want_errno = EBADF;
        trace("bad call: kevent(%d, ...) [%s]", fd, what);
        break;
    }
    case 1:
        if (!q->open) return;
        what = "nchanges < 0";
        trace("bad call: kevent(kq%d, nchanges=-1)", k);
        ret = kevent(q->fd, &c, -1, NULL, 0, &zero);
        want = -1;
        want_errno = EINVAL;
        break;
    case 2:
        if (!q->open) return;
        what = "nevents < 0";
        trace("bad call: kevent(kq%d, nevents=-1)", k);
        ret = kevent(q->fd, NULL, 0, ev, -1, &zero);
        want = -1;
        want_errno = EINVAL;
        break;
    case 3: {
        if (!q->open) return;
        struct timespec bad = {(b & 0x10) ? -1 : 0, (b & 0x10) ? 0 : ((b & 0x20) ? -1 : 1000000000)};
        what = "invalid timeout, nevents 0 (SPEC.md 2.6: returns right after the changes)";
        trace("bad call: kevent(kq%d, no changes, nevents=0, invalid timeout)", k);
        ret = kevent(q->fd, NULL, 0, NULL, 0, &bad);
        want = 0;
        want_errno = 0;
        break;
    }
    default: {
        if (!q->open) return;
        struct timespec bad = {(b & 0x10) ? -1 : 0, (b & 0x10) ? 0 : ((b & 0x20) ? -1 : 1000000000)};
        what = "invalid timeout (SPEC.md 2.1)";
        trace("bad call: kevent(kq%d, no changes, nevents=2, invalid timeout)", k);
        ret = kevent(q->fd, NULL, 0, ev, 2, &bad);
        want = -1;
        want_errno = EINVAL;
        break;
    }
    }
    int err = errno;
    if (ret != want || (want == -1 && err != want_errno))
        fail("%s: kevent returned %d (%s), expected %d (%s)", what, ret, ret < 0 ? errname(err) : "-", want,
             errname(want_errno));
}

/* ---- the program ------------------------------------------------------------------------ */

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static const char *list_fds(void) {
    static char buf[2048];
    size_t n = 0;
    buf[0] = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return "?";
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < sizeof buf - 200) {
        if (e->d_name[0] == '.') continue;
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        target[len > 0 ? len : 0] = 0;
        n += (size_t)snprintf(buf + n, sizeof buf - n, " %s->%s", e->d_name, target);
    }
    closedir(d);
    return buf;
}

static void reset(void) {
    memset(ofds, 0, sizeof ofds);
    nofds = 0;
    for (int i = 0; i < NFD; i++) slots[i] = (struct slot){-1, -1, -1};
    memset(kqs, 0, sizeof kqs);
    for (int k = 0; k < NKQ; k++) kqs[k].last = -1;
    trace_len = 0;
    trace_buf[0] = 0;
    call_serial = 0;
}

static void cleanup(void) {
    for (int i = 0; i < NFD; i++) close_slot(i);
    for (int k = 0; k < NKQ; k++) op_kq_close(k);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    /* 1 us timeouts would otherwise sleep the default 50 us of timer slack. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    const char *t = getenv("KQ_FUZZ_TRACE");
    trace_echo = t && *t && *t != '0';
    const char *f = getenv("KQ_FUZZ_FDCHECK");
    fd_check = f && *f && *f != '0';
    parse_known(getenv("KQ_FUZZ_KNOWN"));
    memset(wbuf, 'x', sizeof wbuf);
    /* EVFILT_SIGNAL opens one eventfd for the whole process, on first use, and keeps it: open
     * it now, so that the descriptor-leak check's baseline includes it. */
    int kq = kqueue();
    struct kevent change;
    EV_SET(&change, SIGWINCH, EVFILT_SIGNAL, EV_ADD, 0, 0, NULL);
    (void)kevent(kq, &change, 1, NULL, 0, NULL);
    close(kq);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    in_data = data;
    in_size = size;
    in_pos = 0;
    input_serial++;
    reset();
    if (trace_echo) fprintf(stderr, "==== input %lu (%zu bytes)\n", input_serial, size);
    op_kq_open(0, 0);

    for (int op = 0; op < MAXOPS && in_pos < in_size; op++) {
        uint8_t code = u8();
        switch (code % 16) {
        case 0: op_kq_open(u8() & 1, u8()); break;
        case 1: op_kq_close(u8() & 1); break;
        case 2: {
            uint8_t b = u8();
            /* Regular files one time in eight: a kqueue that watched one costs ~10 ms to close
             * (the kernel tears its inotify instance down after an SRCU grace period). */
            op_pair((b & 0x38) == 0x38 ? 2 : 0, b);
            break;
        }
        case 3: op_pair(1, u8()); break;
        case 4: { /* write */
            uint8_t b = u8();
            int s = b % NFD;
            if (slots[s].fd < 0) break;
            int n = size_table[(b >> 4) & 7];
            int kind = ofds[slots[s].ofd].kind;
            if ((kind == O_FILE_R || kind == O_FILE_W) && n > 5000) n = 5000;
            ssize_t r = (kind == O_STREAM || kind == O_DGRAM) ? send(slots[s].fd, wbuf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT)
                                                            : write(slots[s].fd, wbuf, (size_t)n);
            trace("write(slot%d=%d, %d) -> %zd%s", s, slots[s].fd, n, r, r < 0 ? strerror(errno) : "");
            model_object_touched(slots[s].ofd);
            break;
        }
        case 5: { /* read */
            uint8_t b = u8();
            int s = b % NFD;
            if (slots[s].fd < 0) break;
            int n = size_table[(b >> 4) & 7];
            ssize_t r = read(slots[s].fd, rbuf, (size_t)n);
            trace("read(slot%d=%d, %d) -> %zd", s, slots[s].fd, n, r);
            model_object_touched(slots[s].ofd);
            break;
        }
        case 6: { /* close one descriptor: close(2), or close_range(2) of just that number */
            uint8_t b = u8();
            int s = b % NFD;
            if (slots[s].fd < 0) break;
            if (b & 0x80) {
                int fd = slots[s].fd;
                trace("close_range(slot%d=%d, %d, 0)", s, fd, fd);
                if (close_range((unsigned)fd, (unsigned)fd, 0) != 0) fail("harness: close_range(%d): %s", fd, strerror(errno));
                ofds[slots[s].ofd].refs--;
                slots[s].fd = -1;
                model_number_closed(fd);
                model_object_touched(slots[s].ofd);
            } else {
                trace("close(slot%d=%d)", s, slots[s].fd);
                close_slot(s);
            }
            break;
        }
        case 7: { /* dup into a free slot (the lowest free number) */
            int s = u8() % NFD;
            int d = free_slot();
            if (slots[s].fd < 0 || d < 0) break;
            int fd = fcntl(slots[s].fd, F_DUPFD_CLOEXEC, 0);
            if (fd < 0) fail("harness: dup: %s", strerror(errno));
            put_fd(d, fd, slots[s].ofd);
            trace("dup(slot%d=%d) -> slot%d=%d", s, slots[s].fd, d, fd);
            break;
        }
        case 8: { /* dup2 onto another slot's number: closes it, the number now names another file */
            uint8_t b = u8();
            int s = b % NFD, d = (b >> 4) % NFD;
            if (s == d || slots[s].fd < 0) break;
            int target = slots[d].fd >= 0 ? slots[d].fd : slots[d].last;
            if (target < 0) break;
            int which;
            int cls = classify((uintptr_t)target, &which);
            if (!(cls == N_CLOSED || (cls == N_POOL && which == d))) break;
            int three = (b ^ (b >> 4)) & 1;
            trace("%s(slot%d=%d, slot%d=%d)", three ? "dup3" : "dup2", s, slots[s].fd, d, target);
            if (slots[d].fd >= 0) {
                ofds[slots[d].ofd].refs--;
                slots[d].fd = -1;
                model_object_touched(slots[d].ofd);
            }
            int got = three ? dup3(slots[s].fd, target, O_CLOEXEC) : dup2(slots[s].fd, target);
            if (got != target) fail("harness: dup2/dup3: %s", strerror(errno));
            model_number_closed(target);
            put_fd(d, target, slots[s].ofd);
            break;
        }
        case 9: { /* shutdown(SHUT_WR) of a stream socket; truncate or rewind a file */
            uint8_t b = u8();
            int s = b % NFD;
            if (slots[s].fd < 0) break;
            int kind = ofds[slots[s].ofd].kind;
            if (kind == O_STREAM) {
                shutdown(slots[s].fd, SHUT_WR);
                ofds[slots[s].ofd].shut_wr = 1;
                trace("shutdown(slot%d=%d, SHUT_WR)", s, slots[s].fd);
            } else if (kind == O_FILE_W) {
                off_t len = (b & 0x20) ? 0 : 10;
                int r = ftruncate(slots[s].fd, len);
                trace("ftruncate(slot%d=%d, %lld) -> %d", s, slots[s].fd, (long long)len, r);
            } else if (kind == O_FILE_R) {
                off_t to = (b & 0x20) ? 0 : 5;
                off_t r = lseek(slots[s].fd, to, SEEK_SET);
                trace("lseek(slot%d=%d, %lld) -> %lld", s, slots[s].fd, (long long)to, (long long)r);
            }
            model_object_touched(slots[s].ofd);
            break;
        }
        case 10:
        case 11:
        case 12: { /* kevent with changes */
            uint8_t b0 = u8(), b1 = u8();
            int k = b0 & 1;
            if (!kqs[k].open) break;
            int nch = 1 + ((b0 >> 1) & 7);
            static const int nev_table[16] = {0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 8, 16, 72, 72, 72};
            int nevents = nev_table[b1 & 15];
            int tkind = TO_ZERO;
            switch (b1 >> 4) {
            case 1: tkind = TO_SHORT; break;
            case 2: tkind = TO_NULL; break;
            case 3: tkind = TO_BAD_SEC; break;
            case 4: tkind = TO_BAD_NSEC; break;
            case 5: tkind = TO_BIG_NSEC; break;
            default: break;
            }
            struct kevent ch[MAXCH];
            list_may_open_descriptor = 0;
            for (int i = 0; i < nch; i++) decode_change(k, &ch[i], i);
            do_kevent(k, ch, nch, nevents, tkind);
            break;
        }
        case 13:
        case 14: { /* wait: no changes, zero timeout */
            uint8_t b = u8();
            int k = b & 1;
            if (!kqs[k].open) break;
            static const int wait_table[8] = {1, 2, 3, 4, 8, 72, 72, 72};
            do_kevent(k, NULL, 0, wait_table[(b >> 1) & 7], (b & 0xC0) == 0xC0 ? TO_SHORT : TO_ZERO);
            break;
        }
        default:
            op_bad_call(u8());
            break;
        }
    }
    /* A final wait with room for everything checks what must still fire. */
    int64_t wait_until = 0;
    for (int k = 0; k < NKQ; k++)
        for (int i = 0; kqs[k].open && i < MAXKN; i++)
            if (kqs[k].kn[i].used && kqs[k].kn[i].filter == EVFILT_TIMER && kqs[k].kn[i].due &&
                kqs[k].kn[i].t_start + DUE_GRACE_NS > wait_until)
                wait_until = kqs[k].kn[i].t_start + DUE_GRACE_NS;
    int64_t now = now_ns(CLOCK_MONOTONIC);
    /* Sleeping costs throughput: only inputs whose first byte asks for it. */
    if (wait_until > now && size > 0 && (data[0] & 0x60) == 0x60) {
        struct timespec pause = {0, (long)(wait_until - now)};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
        }
    }
    for (int k = 0; k < NKQ; k++)
        if (kqs[k].open) do_kevent(k, NULL, 0, MAXKN + SPARE_ROOM, TO_ZERO);
    cleanup();
    if (fd_check) {
        int n = count_fds();
        if (baseline_fds < 0) baseline_fds = n;
        else if (n != baseline_fds)
            fail("descriptor leak: %d descriptors open after the input, %d after the first one:%s", n, baseline_fds,
                 list_fds());
    }
    return 0;
}
