/*
 * libkqueue.so's POSIX asynchronous I/O: FreeBSD's SIGEV_KEVENT on glibc (SPEC.md 3,
 * EVFILT_AIO; the mechanism: docs/ARCHITECTURE.md, "Asynchronous I/O").
 *
 * The library defines aio_read, aio_write, aio_fsync, aio_error, aio_return, aio_suspend,
 * aio_cancel and lio_listio (and their *64 names, which glibc's <aio.h> redirects to under
 * _FILE_OFFSET_BITS=64), plus aio_readv and aio_writev, which glibc lacks. A program linked
 * with -lkqueue calls these before glibc's, whatever order it included <aio.h> and
 * <sys/event.h> in. A request whose sigevent asks for SIGEV_KEVENT (or a list with one) is
 * the library's: it runs on the kqueue's backend and its knote is registered at submission,
 * as FreeBSD's aio_aqueue does. Every other request, and every call about one, goes to glibc
 * unchanged.
 *
 * glibc's struct aiocb has no FreeBSD `_aiocb_private`; its private `__return_value` and
 * `__error_code` play FreeBSD's `status` and `error` (written where FreeBSD's kernel writes
 * them: at submission and at aio_return). The library's requests are found by address in a
 * process-wide table, from submission to aio_return.
 */
#define _GNU_SOURCE
#include <aio.h>
#include <sys/event.h>

#include "CKQueueShim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The engine (Sources/KQueueCABI/Exports.swift), in the same library. */
void kqueue_engine_aio_submit(int kq, const struct kq_aio_request *requests, int count, uint64_t *tags, int *errors);
int kqueue_engine_aio_cancel(int kq, uint64_t tag);
void kqueue_engine_aio_release(int kq, uintptr_t ident, short filter, uint64_t tag);
void kqueue_engine_aio_poll(int kq);
int kqueue_engine_aio_wait_fd(int kq);
void kqueue_engine_aio_mark_done(int kq, uint64_t tag);

/* ---- glibc's definitions ----------------------------------------------------------------- */

typedef int (*aio_rw_fn)(struct aiocb *);
typedef int (*aio_error_fn)(const struct aiocb *);
typedef ssize_t (*aio_return_fn)(struct aiocb *);
typedef int (*aio_fsync_fn)(int, struct aiocb *);
typedef int (*aio_cancel_fn)(int, struct aiocb *);
typedef int (*aio_suspend_fn)(const struct aiocb *const[], int, const struct timespec *);
typedef int (*lio_listio_fn)(int, struct aiocb *const[], int, struct sigevent *);

#define GLIBC(name, type)                                                      \
    static type glibc_##name(void) {                                           \
        static _Atomic(type) cached;                                           \
        type fn = atomic_load_explicit(&cached, memory_order_relaxed);         \
        if (fn == NULL) {                                                      \
            fn = (type)dlsym(RTLD_NEXT, #name);                                \
            atomic_store_explicit(&cached, fn, memory_order_relaxed);          \
        }                                                                      \
        return fn;                                                             \
    }

GLIBC(aio_read, aio_rw_fn)
GLIBC(aio_write, aio_rw_fn)
GLIBC(aio_error, aio_error_fn)
GLIBC(aio_return, aio_return_fn)
GLIBC(aio_fsync, aio_fsync_fn)
GLIBC(aio_cancel, aio_cancel_fn)
GLIBC(aio_suspend, aio_suspend_fn)
GLIBC(lio_listio, lio_listio_fn)

#define FORWARD_OR_ENOSYS(fn, ...)                                             \
    do {                                                                       \
        if ((fn) == NULL) {                                                    \
            errno = ENOSYS;                                                    \
            return -1;                                                         \
        }                                                                      \
        return (fn)(__VA_ARGS__);                                              \
    } while (0)

/* ---- the library's requests ------------------------------------------------------------- */

struct lio;

struct job {
    struct aiocb *cb;
    int kq;        /* the kqueue whose backend runs it */
    uint64_t tag;  /* the engine's name for it */
    int fd;
    int done;
    int error;
    ssize_t status;
    int has_knote; /* registered an EVFILT_AIO knote (ident cb) on kq */
    int visited;   /* aio_cancel(fd, NULL) asked for it already */
    struct sigevent notify; /* SIGEV_SIGNAL members of a list: signalled at the end */
    struct lio *lio;
    struct job *next; /* hash chain */
};

struct lio {
    int kq;           /* EVFILT_LIO's kqueue (-1: none) */
    uint64_t tag;     /* its marker */
    uintptr_t ident;  /* the list's address */
    int count;        /* queued members not returned, plus a hold while submitting */
    int finished;     /* queued members done */
    int holding;      /* the submitting call has not finished */
    struct sigevent signal; /* SIGEV_SIGNAL */
    int posted;
};

/* lio_listio's largest list (FreeBSD: the vfs.aio.max_aio_queue_per_proc sysctl). */
#define KQ_LISTIO_MAX 65536

#define BUCKETS 4096
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress = PTHREAD_COND_INITIALIZER;
static struct job *table[BUCKETS];
static _Atomic long live_jobs;

/* aio_suspend callers, each woken through its own eventfd (it also polls the backends). */
struct sleeper {
    int fd;
    struct sleeper *next;
};
static struct sleeper *sleepers;

static size_t bucket(const struct aiocb *cb) {
    uintptr_t p = (uintptr_t)cb;
    return (size_t)((p >> 4) ^ (p >> 16)) & (BUCKETS - 1);
}

/* lock held */
static struct job *find(const struct aiocb *cb) {
    for (struct job *job = table[bucket(cb)]; job != NULL; job = job->next)
        if (job->cb == cb) return job;
    return NULL;
}

static void insert(struct job *job) {
    size_t b = bucket(job->cb);
    job->next = table[b];
    table[b] = job;
    atomic_fetch_add_explicit(&live_jobs, 1, memory_order_relaxed);
}

static void unlink_job(struct job *job) {
    for (struct job **p = &table[bucket(job->cb)]; *p != NULL; p = &(*p)->next) {
        if (*p == job) {
            *p = job->next;
            atomic_fetch_sub_explicit(&live_jobs, 1, memory_order_relaxed);
            return;
        }
    }
}

/* Is `cb` (possibly) the library's? Without the lock: a request the table may hold. */
static int maybe_ours(const struct aiocb *cb) {
    return cb != NULL && atomic_load_explicit(&live_jobs, memory_order_relaxed) > 0;
}

static void wake_sleepers(void) {
    uint64_t one = 1;
    for (struct sleeper *s = sleepers; s != NULL; s = s->next) {
        ssize_t w = write(s->fd, &one, sizeof one);
        (void)w;
    }
    pthread_cond_broadcast(&progress);
}

static void send_signal(const struct sigevent *sev) {
    if (sev->sigev_notify == SIGEV_SIGNAL) sigqueue(getpid(), sev->sigev_signo, sev->sigev_value);
}

/* Every queued member done and the submitting call gone (lock held)? Posts the list's
 * notification once (FreeBSD: LIOJ_KEVENT_POSTED, then the signal). */
static void lio_check(struct lio *lio) {
    if (lio->posted || lio->holding || lio->count == 0 || lio->count != lio->finished) return;
    lio->posted = 1;
    if (lio->kq >= 0) {
        int kq = lio->kq;
        uint64_t tag = lio->tag;
        /* The engine's mailbox takes no kqueue lock: allowed under ours. */
        kqueue_engine_aio_mark_done(kq, tag);
    }
    send_signal(&lio->signal);
}

/* The engine's hook: a request ended (the kqueue's lock is held; never call into it, except
 * kqueue_engine_aio_mark_done, which only takes the target kqueue's mailbox lock). */
static void completed(void *token, int error, int64_t status) {
    struct job *job = token;
    struct sigevent notify;
    pthread_mutex_lock(&lock);
    job->done = 1;
    job->error = error;
    job->status = (ssize_t)status;
    notify = job->notify;
    if (job->lio != NULL) {
        job->lio->finished++;
        lio_check(job->lio);
    }
    wake_sleepers();
    pthread_mutex_unlock(&lock);
    send_signal(&notify);
}

static pthread_once_t hook_once = PTHREAD_ONCE_INIT;
static void install_hook(void) { kq_aio_set_completion_hook(completed); }

/* ---- submission (FreeBSD's aio_aqueue) ---------------------------------------------------- */

enum { OP_NONE = 0 };

static void store(struct aiocb *cb, ssize_t status, int error) {
    cb->__return_value = status;
    cb->__error_code = error;
}

/* What FreeBSD checks before it queues a request, in its order. Returns 0 or the errno. */
static int validate(struct aiocb *cb, int opcode, int in_list) {
    store(cb, -1, 0);
    if (cb->aio_nbytes > INT_MAX) return EINVAL; /* IOSIZE_MAX; status stays -1, error 0 */
    int notify = cb->aio_sigevent.sigev_notify;
    if (notify != SIGEV_KEVENT && notify != SIGEV_SIGNAL && notify != SIGEV_NONE) {
        /* SIGEV_THREAD (glibc's, done in user space) is not offered in a kqueue list */
        store(cb, -1, EINVAL);
        return EINVAL;
    }
    if (notify == SIGEV_SIGNAL && (cb->aio_sigevent.sigev_signo <= 0 || cb->aio_sigevent.sigev_signo >= NSIG))
        return EINVAL;
    (void)in_list;
    int flags = fcntl(cb->aio_fildes, F_GETFL);
    int mode = flags & O_ACCMODE;
    int reading = opcode == KQ_AIO_OP_READ || opcode == KQ_AIO_OP_READV;
    int writing = opcode == KQ_AIO_OP_WRITE || opcode == KQ_AIO_OP_WRITEV;
    if (flags == -1 || (reading && mode == O_WRONLY) || (writing && mode == O_RDONLY)) {
        store(cb, -1, EBADF);
        return EBADF;
    }
    struct stat st;
    if ((opcode == KQ_AIO_OP_FSYNC || opcode == KQ_AIO_OP_FDATASYNC) && fstat(cb->aio_fildes, &st) == 0 &&
        (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode))) {
        store(cb, -1, EINVAL); /* no vnode */
        return EINVAL;
    }
    if ((reading || writing) && cb->aio_offset < 0 &&
        !(fstat(cb->aio_fildes, &st) == 0 && S_ISCHR(st.st_mode))) {
        store(cb, -1, EINVAL);
        return EINVAL;
    }
    if (opcode == KQ_AIO_OP_READV || opcode == KQ_AIO_OP_WRITEV) {
        if (cb->aio_nbytes > IOV_MAX) {
            store(cb, -1, EINVAL);
            return EINVAL;
        }
    }
    if (notify == SIGEV_KEVENT) {
        int ev = cb->aio_sigevent.sigev_notify_kevent_flags;
        if ((ev & ~(EV_CLEAR | EV_DISPATCH | EV_ONESHOT)) != 0) {
            store(cb, -1, EINVAL);
            return EINVAL;
        }
    }
    return 0;
}

/* Fills the engine's request for `cb`. */
static void describe(struct kq_aio_request *r, struct aiocb *cb, int opcode, struct job *job) {
    memset(r, 0, sizeof *r);
    r->op.opcode = opcode;
    r->op.fd = cb->aio_fildes;
    r->op.buffer = (void *)cb->aio_buf;
    r->op.length = cb->aio_nbytes;
    r->op.offset = cb->aio_offset;
    r->token = job;
    if (cb->aio_sigevent.sigev_notify == SIGEV_KEVENT) {
        r->ident = (uintptr_t)cb;
        r->filter = EVFILT_AIO;
        r->flags = (unsigned short)cb->aio_sigevent.sigev_notify_kevent_flags;
        r->udata = cb->aio_sigevent.sigev_value.sival_ptr;
    }
}

static struct job *new_job(struct aiocb *cb, int kq, struct lio *lio) {
    struct job *job = calloc(1, sizeof *job);
    if (job == NULL) return NULL;
    job->cb = cb;
    job->kq = kq;
    job->fd = cb->aio_fildes;
    job->lio = lio;
    job->status = -1;
    job->has_knote = cb->aio_sigevent.sigev_notify == SIGEV_KEVENT;
    if (cb->aio_sigevent.sigev_notify == SIGEV_SIGNAL) job->notify = cb->aio_sigevent;
    else job->notify.sigev_notify = SIGEV_NONE;
    return job;
}

/* Submits `n` validated requests on `kq` as one batch; per request 0 or the errno. */
static void submit(int kq, struct aiocb **cbs, const int *opcodes, struct job **jobs, int n, int *errors) {
    struct kq_aio_request *requests = calloc((size_t)n, sizeof *requests);
    uint64_t *tags = calloc((size_t)n, sizeof *tags);
    if (requests == NULL || tags == NULL) {
        for (int i = 0; i < n; i++) errors[i] = EAGAIN;
        free(requests);
        free(tags);
        return;
    }
    for (int i = 0; i < n; i++) describe(&requests[i], cbs[i], opcodes[i], jobs[i]);
    /* The jobs are in the table (in progress) before the engine can complete them. */
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n; i++) {
        insert(jobs[i]);
        store(cbs[i], -1, EINPROGRESS);
    }
    pthread_mutex_unlock(&lock);
    kqueue_engine_aio_submit(kq, requests, n, tags, errors);
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n; i++) {
        if (errors[i] == 0) {
            jobs[i]->tag = tags[i];
        } else {
            unlink_job(jobs[i]);
            store(cbs[i], -1, errors[i]);
        }
    }
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++) {
        if (errors[i] != 0) {
            free(jobs[i]);
            jobs[i] = NULL;
        }
    }
    free(requests);
    free(tags);
}

static int submit_one(struct aiocb *cb, int opcode) {
    pthread_once(&hook_once, install_hook);
    int error = validate(cb, opcode, 0);
    if (error != 0) {
        errno = error;
        return -1;
    }
    pthread_mutex_lock(&lock);
    struct job *old = find(cb);
    if (old != NULL && !old->done) {
        /* FreeBSD does not check; two requests on one aiocb could not be told apart here */
        pthread_mutex_unlock(&lock);
        store(cb, -1, EINVAL);
        errno = EINVAL;
        return -1;
    }
    if (old != NULL) {
        unlink_job(old); /* finished, never returned: forgotten, as a reused aiocb */
        free(old);
    }
    pthread_mutex_unlock(&lock);
    struct job *job = new_job(cb, cb->aio_sigevent.sigev_notify_kqueue, NULL);
    if (job == NULL) {
        store(cb, -1, EAGAIN);
        errno = EAGAIN;
        return -1;
    }
    submit(job->kq, &cb, &opcode, &job, 1, &error);
    if (error != 0) {
        errno = error;
        return -1;
    }
    return 0;
}

static int is_kevent(const struct aiocb *cb) { return cb != NULL && cb->aio_sigevent.sigev_notify == SIGEV_KEVENT; }

int aio_read(struct aiocb *cb) {
    if (!is_kevent(cb)) FORWARD_OR_ENOSYS(glibc_aio_read(), cb);
    return submit_one(cb, KQ_AIO_OP_READ);
}

int aio_write(struct aiocb *cb) {
    if (!is_kevent(cb)) FORWARD_OR_ENOSYS(glibc_aio_write(), cb);
    return submit_one(cb, KQ_AIO_OP_WRITE);
}

int aio_readv(struct aiocb *cb) {
    if (!is_kevent(cb)) {
        /* glibc has no vectored requests: only SIGEV_KEVENT and SIGEV_NONE ones exist here */
        if (cb == NULL || cb->aio_sigevent.sigev_notify != SIGEV_NONE) {
            errno = EINVAL;
            return -1;
        }
    }
    return submit_one(cb, KQ_AIO_OP_READV);
}

int aio_writev(struct aiocb *cb) {
    if (!is_kevent(cb)) {
        if (cb == NULL || cb->aio_sigevent.sigev_notify != SIGEV_NONE) {
            errno = EINVAL;
            return -1;
        }
    }
    return submit_one(cb, KQ_AIO_OP_WRITEV);
}

int aio_fsync(int op, struct aiocb *cb) {
    if (!is_kevent(cb)) FORWARD_OR_ENOSYS(glibc_aio_fsync(), op, cb);
    if (op != O_SYNC && op != O_DSYNC) {
        errno = EINVAL;
        return -1;
    }
    return submit_one(cb, op == O_DSYNC ? KQ_AIO_OP_FDATASYNC : KQ_AIO_OP_FSYNC);
}

/* ---- results -------------------------------------------------------------------------------- */

/* Lets the engine take what the job's backend completed (outside the lock). */
static void poll_job_kqueue(const struct aiocb *cb) {
    pthread_mutex_lock(&lock);
    struct job *job = find(cb);
    int kq = job != NULL && !job->done ? job->kq : -1;
    pthread_mutex_unlock(&lock);
    if (kq >= 0) kqueue_engine_aio_poll(kq);
}

int aio_error(const struct aiocb *cb) {
    if (maybe_ours(cb)) {
        poll_job_kqueue(cb);
        pthread_mutex_lock(&lock);
        struct job *job = find(cb);
        int result = job == NULL ? -1 : job->done ? job->error : EINPROGRESS;
        pthread_mutex_unlock(&lock);
        if (job != NULL) return result;
    }
    if (is_kevent(cb)) {
        /* Not (or no longer) in flight: FreeBSD's "hack for failure of aio_aqueue". */
        return cb->__return_value == -1 ? cb->__error_code : EINVAL;
    }
    FORWARD_OR_ENOSYS(glibc_aio_error(), cb);
}

/* Forgets a returned job (lock held); its knote and list bookkeeping are released outside. */
struct release {
    int kq;
    uintptr_t ident;
    short filter;
    uint64_t tag;
};

static int release_job(struct job *job, struct release out[2]) {
    int n = 0;
    unlink_job(job);
    if (job->has_knote) out[n++] = (struct release){job->kq, (uintptr_t)job->cb, EVFILT_AIO, job->tag};
    struct lio *lio = job->lio;
    if (lio != NULL) {
        lio->count--;
        lio->finished--;
        if (lio->count == 0 && !lio->holding) {
            if (lio->kq >= 0) out[n++] = (struct release){lio->kq, lio->ident, EVFILT_LIO, lio->tag};
            free(lio);
        }
    }
    free(job);
    return n;
}

ssize_t aio_return(struct aiocb *cb) {
    if (maybe_ours(cb)) {
        poll_job_kqueue(cb);
        pthread_mutex_lock(&lock);
        struct job *job = find(cb);
        if (job != NULL) {
            if (!job->done) {
                pthread_mutex_unlock(&lock);
                errno = EINVAL;
                return -1;
            }
            ssize_t status = job->status;
            int error = job->error;
            struct release released[2];
            int n = release_job(job, released);
            store(cb, status, error);
            pthread_mutex_unlock(&lock);
            for (int i = 0; i < n; i++)
                kqueue_engine_aio_release(released[i].kq, released[i].ident, released[i].filter, released[i].tag);
            if (error != 0) {
                errno = error;
                return -1;
            }
            return status;
        }
        pthread_mutex_unlock(&lock);
    }
    if (is_kevent(cb)) {
        errno = EINVAL;
        return -1;
    }
    if (glibc_aio_return() == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return glibc_aio_return()(cb);
}

/* ---- cancellation --------------------------------------------------------------------------- */

int aio_cancel(int fd, struct aiocb *cb) {
    if (fcntl(fd, F_GETFD) == -1) {
        errno = EBADF;
        return -1;
    }
    /* The library's requests on fd (the one, or all). */
    int cancelled = 0, notcancelled = 0, ours = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        struct job *pick = NULL;
        if (cb != NULL) {
            struct job *job = find(cb);
            if (job != NULL) ours = 1;
            if (job != NULL && !job->done && job->fd == fd) pick = job;
        } else {
            for (size_t b = 0; b < BUCKETS && pick == NULL; b++)
                for (struct job *job = table[b]; job != NULL; job = job->next)
                    if (job->fd == fd && !job->done && job->tag != 0 && !job->visited) {
                        pick = job;
                        break;
                    }
        }
        int kq = pick != NULL ? pick->kq : -1;
        uint64_t tag = pick != NULL ? pick->tag : 0;
        if (pick != NULL) pick->visited = 1;
        pthread_mutex_unlock(&lock);
        if (pick == NULL) break;
        int r = kqueue_engine_aio_cancel(kq, tag);
        if (r == 0) cancelled++;
        else if (r == 1) notcancelled++;
        if (cb != NULL) break;
    }
    pthread_mutex_lock(&lock);
    for (size_t b = 0; b < BUCKETS; b++)
        for (struct job *job = table[b]; job != NULL; job = job->next) job->visited = 0;
    pthread_mutex_unlock(&lock);
    int result;
    if (cb != NULL && cancelled) result = AIO_CANCELED;
    else if (notcancelled) result = AIO_NOTCANCELED;
    else if (cancelled) result = AIO_CANCELED;
    else result = AIO_ALLDONE;
    if (cb != NULL && (ours || is_kevent(cb))) return result;
    /* glibc's requests on fd too (cb NULL), or glibc's request cb. */
    aio_cancel_fn next = glibc_aio_cancel();
    if (next == NULL) return result;
    int theirs = next(fd, cb);
    if (theirs == -1) return cb == NULL ? result : -1;
    if (cb != NULL) return theirs;
    if (result == AIO_NOTCANCELED || theirs == AIO_NOTCANCELED) return AIO_NOTCANCELED;
    if (result == AIO_CANCELED || theirs == AIO_CANCELED) return AIO_CANCELED;
    return AIO_ALLDONE;
}

/* ---- aio_suspend ------------------------------------------------------------------------------ */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int aio_suspend(const struct aiocb *const list[], int n, const struct timespec *timeout) {
    if (n < 0 || (n > 0 && (uintptr_t)list == 0)) {
        errno = EINVAL;
        return -1;
    }
    if (timeout != NULL && (timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000 || timeout->tv_sec < 0)) {
        errno = EINVAL;
        return -1;
    }
    int mine = 0, theirs = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n; i++) {
        if (list[i] == NULL) continue;
        if (find(list[i]) != NULL) mine++;
        else if (!is_kevent(list[i])) theirs++;
    }
    pthread_mutex_unlock(&lock);
    if (mine == 0 && theirs > 0) FORWARD_OR_ENOSYS(glibc_aio_suspend(), list, n, timeout);
    if (mine == 0) return 0; /* FreeBSD: none of them is a request any more */

    int64_t deadline = timeout == NULL ? -1 : now_ns() + (int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec;
    struct sleeper self = {.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    if (self.fd < 0) return -1;
    pthread_mutex_lock(&lock);
    self.next = sleepers;
    sleepers = &self;
    pthread_mutex_unlock(&lock);
    struct pollfd *fds = calloc((size_t)n + 1, sizeof *fds);
    int result = 0, error = 0;
    for (;;) {
        for (int i = 0; i < n; i++)
            if (list[i] != NULL) poll_job_kqueue(list[i]);
        int nfds = 0, found = 0, done = 0;
        fds[nfds++] = (struct pollfd){.fd = self.fd, .events = POLLIN};
        pthread_mutex_lock(&lock);
        for (int i = 0; i < n; i++) {
            if (list[i] == NULL) continue;
            struct job *job = find(list[i]);
            if (job == NULL) continue;
            found++;
            if (job->done) done = 1;
            else if (fds != NULL) {
                int fd = kqueue_engine_aio_wait_fd(job->kq);
                int seen = 0;
                for (int k = 0; k < nfds; k++) seen |= fds[k].fd == fd;
                if (fd >= 0 && !seen) fds[nfds++] = (struct pollfd){.fd = fd, .events = POLLIN};
            }
        }
        pthread_mutex_unlock(&lock);
        /* Glibc's requests in a mixed list: checked each round (their ends do not wake us). */
        for (int i = 0; i < n && !done; i++)
            if (list[i] != NULL && !is_kevent(list[i]) && glibc_aio_error() != NULL &&
                find(list[i]) == NULL && glibc_aio_error()(list[i]) != EINPROGRESS)
                done = 1;
        if (done || (found == 0 && theirs == 0)) break;
        int wait_ms = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ns();
            if (left <= 0) {
                result = -1;
                error = EAGAIN;
                break;
            }
            wait_ms = (int)((left + 999999) / 1000000);
        }
        if (theirs > 0 && (wait_ms < 0 || wait_ms > 10)) wait_ms = 10;
        if (fds == NULL) {
            result = -1;
            error = ENOMEM;
            break;
        }
        int r = poll(fds, (nfds_t)nfds, wait_ms);
        if (r < 0 && errno == EINTR) {
            result = -1;
            error = EINTR;
            break;
        }
        uint64_t count;
        ssize_t got = read(self.fd, &count, sizeof count);
        (void)got;
    }
    pthread_mutex_lock(&lock);
    for (struct sleeper **p = &sleepers; *p != NULL; p = &(*p)->next) {
        if (*p == &self) {
            *p = self.next;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    free(fds);
    kq_shim_real_close(self.fd);
    if (result != 0) errno = error;
    return result;
}

/* ---- lio_listio --------------------------------------------------------------------------------- */

static int list_is_ours(struct aiocb *const list[], int n, const struct sigevent *sig, int mode) {
    if (mode == LIO_NOWAIT && sig != NULL && sig->sigev_notify == SIGEV_KEVENT) return 1;
    for (int i = 0; i < n; i++)
        if (is_kevent(list[i])) return 1;
    return 0;
}

static int opcode_of(int lio_opcode) {
    switch (lio_opcode) {
    case LIO_READ: return KQ_AIO_OP_READ;
    case LIO_WRITE: return KQ_AIO_OP_WRITE;
    case LIO_READV: return KQ_AIO_OP_READV;
    case LIO_WRITEV: return KQ_AIO_OP_WRITEV;
    case LIO_NOP: return OP_NONE;
    default: return -1;
    }
}

int lio_listio(int mode, struct aiocb *const list[], int n, struct sigevent *sig) {
    if (mode != LIO_WAIT && mode != LIO_NOWAIT) {
        errno = EINVAL;
        return -1;
    }
    if (n < 0 || n > KQ_LISTIO_MAX || (n > 0 && (uintptr_t)list == 0)) {
        errno = EINVAL;
        return -1;
    }
    if (!list_is_ours(list, n, sig, mode)) FORWARD_OR_ENOSYS(glibc_lio_listio(), mode, list, n, sig);
    pthread_once(&hook_once, install_hook);

    struct lio *lio = calloc(1, sizeof *lio);
    if (lio == NULL) {
        errno = EAGAIN;
        return -1;
    }
    lio->kq = -1;
    lio->holding = 1;
    lio->signal.sigev_notify = SIGEV_NONE;
    int list_kq = -1;
    if (mode == LIO_NOWAIT && sig != NULL) {
        if (sig->sigev_notify == SIGEV_KEVENT) {
            list_kq = sig->sigev_notify_kqueue;
            struct kq_aio_request marker;
            memset(&marker, 0, sizeof marker);
            marker.ident = (uintptr_t)list;
            marker.filter = EVFILT_LIO;
            marker.udata = sig->sigev_value.sival_ptr;
            uint64_t tag = 0;
            int error = 0;
            kqueue_engine_aio_submit(list_kq, &marker, 1, &tag, &error);
            if (error != 0) {
                free(lio);
                errno = error;
                return -1;
            }
            lio->kq = list_kq;
            lio->tag = tag;
            lio->ident = (uintptr_t)list;
        } else if (sig->sigev_notify == SIGEV_SIGNAL) {
            if (sig->sigev_signo <= 0 || sig->sigev_signo >= NSIG) {
                free(lio);
                errno = EINVAL;
                return -1;
            }
            lio->signal = *sig;
        } else if (sig->sigev_notify != SIGEV_NONE) {
            free(lio);
            errno = EINVAL;
            return -1;
        }
    }
    /* Each member runs on its own kqueue's backend (SIGEV_KEVENT), else on the list's or on
     * the first member kqueue's. */
    int fallback_kq = list_kq;
    for (int i = 0; i < n && fallback_kq < 0; i++)
        if (is_kevent(list[i])) fallback_kq = list[i]->aio_sigevent.sigev_notify_kqueue;

    int nerror = 0, nagain = 0;
    struct aiocb **cbs = calloc((size_t)n + 1, sizeof *cbs);
    int *opcodes = calloc((size_t)n + 1, sizeof *opcodes);
    struct job **jobs = calloc((size_t)n + 1, sizeof *jobs);
    int *errors = calloc((size_t)n + 1, sizeof *errors);
    if (cbs == NULL || opcodes == NULL || jobs == NULL || errors == NULL) nagain = n;
    /* Group consecutive members of one kqueue into one batch. */
    for (int i = 0; i < n && cbs != NULL && opcodes != NULL && jobs != NULL && errors != NULL;) {
        int batch = 0, kq = -1;
        for (; i < n; i++) {
            struct aiocb *cb = list[i];
            if (cb == NULL) continue;
            int opcode = opcode_of(cb->aio_lio_opcode);
            if (opcode == OP_NONE) continue;
            store(cb, -1, 0);
            if (opcode < 0) {
                store(cb, -1, EINVAL);
                nerror++;
                continue;
            }
            int error = validate(cb, opcode, 1);
            int member_kq = is_kevent(cb) ? cb->aio_sigevent.sigev_notify_kqueue : fallback_kq;
            if (error == 0 && member_kq < 0) error = EINVAL;
            pthread_mutex_lock(&lock);
            struct job *old = error == 0 ? find(cb) : NULL;
            if (old != NULL && !old->done) error = EINVAL;
            else if (old != NULL) {
                unlink_job(old);
                free(old);
            }
            pthread_mutex_unlock(&lock);
            if (error != 0) {
                if (error == EAGAIN) nagain++; else nerror++;
                continue;
            }
            if (batch > 0 && member_kq != kq) break;
            kq = member_kq;
            struct job *job = new_job(cb, member_kq, lio);
            if (job == NULL) {
                nagain++;
                continue;
            }
            cbs[batch] = cb;
            opcodes[batch] = opcode;
            jobs[batch] = job;
            batch++;
        }
        if (batch == 0) continue;
        pthread_mutex_lock(&lock);
        lio->count += batch;
        pthread_mutex_unlock(&lock);
        submit(kq, cbs, opcodes, jobs, batch, errors);
        /* A member that failed never counted: the engine never completes it. */
        pthread_mutex_lock(&lock);
        for (int k = 0; k < batch; k++) {
            if (errors[k] == 0) continue;
            lio->count--;
            if (errors[k] == EAGAIN) nagain++; else nerror++;
        }
        pthread_mutex_unlock(&lock);
    }
    free(cbs);
    free(opcodes);
    free(jobs);
    free(errors);

    int error = 0;
    pthread_mutex_lock(&lock);
    if (mode == LIO_WAIT) {
        while (lio->count != lio->finished) {
            /* Completions are taken by whoever reaps the backends: do it here too. */
            int kq = -1;
            for (size_t b = 0; b < BUCKETS && kq < 0; b++)
                for (struct job *job = table[b]; job != NULL; job = job->next)
                    if (job->lio == lio && !job->done) {
                        kq = job->kq;
                        break;
                    }
            pthread_mutex_unlock(&lock);
            if (kq >= 0) {
                kqueue_engine_aio_poll(kq);
                int fd = kqueue_engine_aio_wait_fd(kq);
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                pthread_mutex_lock(&lock);
                int more = lio->count != lio->finished;
                pthread_mutex_unlock(&lock);
                if (more && fd >= 0 && poll(&pfd, 1, 10) < 0 && errno == EINTR) {
                    pthread_mutex_lock(&lock);
                    error = EINTR;
                    break;
                }
            }
            pthread_mutex_lock(&lock);
        }
    }
    lio->holding = 0;
    if (mode == LIO_NOWAIT) lio_check(lio);
    struct release release = {-1, 0, 0, 0};
    if (lio->count == 0) {
        /* Nothing queued: no event (FreeBSD posts it and deletes the knote at once). */
        if (lio->kq >= 0) release = (struct release){lio->kq, lio->ident, EVFILT_LIO, lio->tag};
        free(lio);
    }
    pthread_mutex_unlock(&lock);
    if (release.kq >= 0) kqueue_engine_aio_release(release.kq, release.ident, release.filter, release.tag);
    if (nerror > 0) error = EIO;
    else if (nagain > 0) error = EAGAIN;
    if (error != 0) {
        errno = error;
        return -1;
    }
    return 0;
}

/* ---- the *64 names glibc's <aio.h> uses under _FILE_OFFSET_BITS=64 (same layout here) ---- */

_Static_assert(sizeof(struct aiocb) == sizeof(struct aiocb64), "aiocb64 is aiocb on this ABI");

int aio_read64(struct aiocb64 *cb) { return aio_read((struct aiocb *)cb); }
int aio_write64(struct aiocb64 *cb) { return aio_write((struct aiocb *)cb); }
int aio_error64(const struct aiocb64 *cb) { return aio_error((const struct aiocb *)cb); }
ssize_t aio_return64(struct aiocb64 *cb) { return aio_return((struct aiocb *)cb); }
int aio_fsync64(int op, struct aiocb64 *cb) { return aio_fsync(op, (struct aiocb *)cb); }
int aio_cancel64(int fd, struct aiocb64 *cb) { return aio_cancel(fd, (struct aiocb *)cb); }
int aio_suspend64(const struct aiocb64 *const list[], int n, const struct timespec *timeout) {
    return aio_suspend((const struct aiocb *const *)list, n, timeout);
}
int lio_listio64(int mode, struct aiocb64 *const list[], int n, struct sigevent *sig) {
    return lio_listio(mode, (struct aiocb *const *)list, n, sig);
}
