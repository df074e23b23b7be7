/*
 * EVFILT_AIO's I/O backends (docs/ARCHITECTURE.md, "Asynchronous I/O"): one per kqueue that
 * has requests, created on first use. Two kinds behind one interface:
 *
 *   io_uring  a ring of the kqueue's own, driven by raw system calls (no liburing: the C ABI
 *             library gains no run-time dependency), for the reads and writes that complete
 *             without blocking (RWF_NOWAIT: the page cache, a ready socket), many per system
 *             call; what would block, and fsync, goes to the thread pool below. Completions
 *             are signalled through an eventfd registered with IORING_REGISTER_EVENTFD (the
 *             pool writes the same eventfd), which the kqueue's epoll instance watches.
 *   threads   a process-wide pool of worker threads running pread/pwrite/preadv/pwritev/
 *             fsync; a worker appends the result to the backend's completion list and writes
 *             the same kind of eventfd. Used where io_uring is unavailable (old kernel,
 *             kernel.io_uring_disabled, a seccomp filter) or when KQUEUE_AIO_BACKEND=threads.
 *
 * Both share batches of reads and writes on regular files with helper threads (one per CPU
 * beyond the first): the only way past a pread loop's speed on cached data is a second core
 * copying at the same time ("helpers" below).
 *
 * Every call on a backend except the pool's and the helpers' own threads is made with the
 * owning kqueue's lock held: the ring's submission and completion queues have one producer
 * and one consumer each.
 */
#define _GNU_SOURCE
#include "CKQueueShim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif

/* The user_data of the ring's own cancel requests (never a job's tag: tags are below 2^63). */
#define CANCEL_TAG UINT64_MAX

/* Reads and writes are shared with helper threads ("helpers" below) once this many are in
 * flight with the submission's, from a submission of at least SHARE_MIN_SUBMISSION (a smaller
 * one would leave the helpers nothing). The count includes what is in flight: an application
 * resubmits each batch of completions as it comes, and those batches shrink as the helpers'
 * and the submitter's parts complete apart, so a threshold on the submission alone stopped
 * sharing after the first few batches. */
#define SHARE_MIN_BATCH 16
#define SHARE_MIN_SUBMISSION 4
#define SHARE_CHUNK 8 /* what the submitter runs at a time (taken back to assist, or run inline) */

struct pool_job;
#define FIXED_SLOTS 8

struct kq_aio_backend {
    int kind;
    int event_fd;
    /* Completions taken from the ring while waiting for a cancel's answer (io_uring), or
     * posted by pool workers (threads): returned first by the next reap. */
    pthread_mutex_t done_lock;
    struct kq_aio_completion *done;
    size_t done_count, done_capacity;
    int64_t inflight; /* submitted, not reaped (kqueue lock) */
    /* The pool wrote the eventfd and no reap has read it since: later completions need not
     * write it again (cleared by kq_aio_backend_acknowledge after it reads). */
    _Atomic int signalled;

    /* io_uring */
    int ring_fd;
    void *sq_map, *cq_map;
    size_t sq_map_size, cq_map_size;
    struct io_uring_sqe *sqes;
    size_t sqes_size;
    unsigned sq_entries, cq_entries;
    _Atomic unsigned *sq_head, *sq_tail, *cq_head, *cq_tail;
    unsigned *sq_mask, *sq_array, *cq_mask;
    struct io_uring_cqe *cqes;

    /* threads: requests of this backend queued or running in the pool (pool lock) */
    int pool_jobs;

    /* Shared reads and writes (share_lock): a queue [share_head, share_head + share_count)
     * modulo share_capacity that helpers take from the front and the submitter from the back,
     * and how many a helper has taken and not yet stashed. */
    struct kq_aio_op *share_ops;
    unsigned share_capacity, share_head, share_count;
    int share_busy;
    int share_listed; /* on the ready list */
    /* Requests helpers have taken from this queue, ever, and the count at the last offer
     * (share_lock): what they ran between two submissions sizes the next part. */
    unsigned share_taken, share_taken_mark;
    struct kq_aio_backend *share_next;

    /* Registered files (fixed_lock): plain reads of regular files the ring runs name their
     * file by a slot of the ring's table instead of a descriptor (see "registered files"). */
    int fixed_state; /* 0: no table yet, 1: a table of FIXED_SLOTS, -1: the ring refused one */
    struct fixed_file {
        int fd; /* -1: empty */
        dev_t dev;
        ino_t ino;
    } fixed[FIXED_SLOTS];
    unsigned fixed_next;   /* the slot the next registration replaces */
    int fixed_listed;      /* on fixed_backends */
    struct kq_aio_backend *fixed_list_next;
};

/* ---- raw io_uring ------------------------------------------------------------------- */

static int sys_uring_setup(unsigned entries, struct io_uring_params *p) {
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_uring_enter(int fd, unsigned submit, unsigned complete, unsigned flags) {
    return (int)syscall(__NR_io_uring_enter, fd, submit, complete, flags, NULL, 0);
}

static int sys_uring_register(int fd, unsigned op, void *arg, unsigned n) {
    return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

static void uring_unmap(struct kq_aio_backend *b) {
    if (b->sqes != NULL && b->sqes != MAP_FAILED) munmap(b->sqes, b->sqes_size);
    if (b->cq_map != NULL && b->cq_map != MAP_FAILED && b->cq_map != b->sq_map) munmap(b->cq_map, b->cq_map_size);
    if (b->sq_map != NULL && b->sq_map != MAP_FAILED) munmap(b->sq_map, b->sq_map_size);
    b->sqes = NULL;
    b->cq_map = b->sq_map = NULL;
}

/* Every opcode the backend uses, known to this kernel (IORING_REGISTER_PROBE). */
static int uring_has_opcodes(int fd) {
    size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = calloc(1, size);
    if (probe == NULL) return 0;
    int ok = sys_uring_register(fd, IORING_REGISTER_PROBE, probe, 256) == 0;
    static const int needed[] = {IORING_OP_READ, IORING_OP_WRITE, IORING_OP_READV, IORING_OP_WRITEV,
                                 IORING_OP_ASYNC_CANCEL};
    for (size_t i = 0; ok && i < sizeof needed / sizeof needed[0]; i++) {
        ok = needed[i] <= probe->last_op && (probe->ops[needed[i]].flags & IO_URING_OP_SUPPORTED);
    }
    free(probe);
    return ok;
}

static int uring_open(struct kq_aio_backend *b) {
    struct io_uring_params p;
    int fd = -1;
    /* SUBMIT_ALL (5.18): a bad entry does not stop the rest of a batch. */
    static const unsigned flag_sets[] = {IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL,
                                         IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP};
    for (size_t i = 0; i < 2 && fd < 0; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        p.cq_entries = 4096;
        fd = sys_uring_setup(256, &p);
        if (fd < 0 && errno != EINVAL) return -errno;
    }
    if (fd < 0) return -errno;
    /* Needed: one mmap for both rings, no dropped completions, and every opcode. */
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP) || !uring_has_opcodes(fd)) {
        kq_shim_real_close(fd);
        return -ENOSYS;
    }
    b->ring_fd = fd;
    b->sq_entries = p.sq_entries;
    b->cq_entries = p.cq_entries;
    b->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (cq_size > b->sq_map_size) b->sq_map_size = cq_size;
    b->sq_map = mmap(NULL, b->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    b->cq_map = b->sq_map;
    b->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    b->sqes = b->sq_map == MAP_FAILED ? MAP_FAILED
                                      : mmap(NULL, b->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                                             fd, IORING_OFF_SQES);
    if (b->sq_map == MAP_FAILED || b->sqes == MAP_FAILED) {
        int error = errno;
        uring_unmap(b);
        kq_shim_real_close(fd);
        return -error;
    }
    /* A fork child never sees the ring (SPEC.md 2: no kqueue survives fork). */
    madvise(b->sq_map, b->sq_map_size, MADV_DONTFORK);
    madvise(b->sqes, b->sqes_size, MADV_DONTFORK);
    char *sq = b->sq_map, *cq = b->cq_map;
    b->sq_head = (_Atomic unsigned *)(void *)(sq + p.sq_off.head);
    b->sq_tail = (_Atomic unsigned *)(void *)(sq + p.sq_off.tail);
    b->sq_mask = (unsigned *)(void *)(sq + p.sq_off.ring_mask);
    b->sq_array = (unsigned *)(void *)(sq + p.sq_off.array);
    b->cq_head = (_Atomic unsigned *)(void *)(cq + p.cq_off.head);
    b->cq_tail = (_Atomic unsigned *)(void *)(cq + p.cq_off.tail);
    b->cq_mask = (unsigned *)(void *)(cq + p.cq_off.ring_mask);
    b->cqes = (struct io_uring_cqe *)(void *)(cq + p.cq_off.cqes);
    /* The identity map of SQ slots to SQEs, set once. */
    for (unsigned i = 0; i < p.sq_entries; i++) b->sq_array[i] = i;
    if (sys_uring_register(fd, IORING_REGISTER_EVENTFD, &b->event_fd, 1) != 0) {
        int error = errno;
        uring_unmap(b);
        kq_shim_real_close(fd);
        return -error;
    }
    return 0;
}

/* Appends to the completion list (done_lock held by the caller when pool workers may run). */
static int stash(struct kq_aio_backend *b, uint64_t tag, int64_t result) {
    if (b->done_count == b->done_capacity) {
        size_t capacity = b->done_capacity ? b->done_capacity * 2 : 64;
        struct kq_aio_completion *grown = realloc(b->done, capacity * sizeof *grown);
        if (grown == NULL) return -ENOMEM;
        b->done = grown;
        b->done_capacity = capacity;
    }
    b->done[b->done_count].tag = tag;
    b->done[b->done_count].result = result;
    b->done_count++;
    return 0;
}

/* Moves every CQE to the stash, except the answer of the cancel request (returned through
 * *cancel_result when not NULL, which is then set to 1 when it was seen). */
static void uring_drain_cq(struct kq_aio_backend *b, int *cancel_seen, int *cancel_result) {
    unsigned head = atomic_load_explicit(b->cq_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(b->cq_tail, memory_order_acquire);
    while (head != tail) {
        struct io_uring_cqe *cqe = &b->cqes[head & *b->cq_mask];
        if (cqe->user_data == CANCEL_TAG) {
            if (cancel_seen != NULL) {
                *cancel_seen = 1;
                *cancel_result = cqe->res;
            }
        } else if (stash(b, cqe->user_data, cqe->res) != 0) {
            break; /* no memory: left in the ring for the next reap */
        }
        head++;
    }
    atomic_store_explicit(b->cq_head, head, memory_order_release);
}

/* Enters the ring until `count` queued SQEs are consumed. A full completion queue (EBUSY)
 * or a kernel short of memory (EAGAIN) is waited out by moving completions to the stash. */
static int uring_flush(struct kq_aio_backend *b, unsigned count) {
    while (count > 0) {
        int n = sys_uring_enter(b->ring_fd, count, 0, 0);
        if (n >= 0) {
            count -= (unsigned)n;
            if (n == 0) sched_yield();
            continue;
        }
        int error = errno;
        if (error == EINTR) continue;
        if (error == EBUSY || error == EAGAIN) {
            uring_drain_cq(b, NULL, NULL);
            sys_uring_enter(b->ring_fd, 0, 1, IORING_ENTER_GETEVENTS);
            continue;
        }
        return -error; /* the entries stay queued: the next enter takes them */
    }
    return 0;
}

/* Only first attempts of reads and writes enter the ring, with RWF_NOWAIT: data in the page
 * cache is copied during the submission itself (the fast path), and anything that would block
 * fails with EAGAIN at once, to be retried (second attempt) in the thread pool, as are fsyncs.
 * Whatever io_uring has to wait for itself it completes with task work in the submitting
 * thread, or hands to io-wq workers whose creation is task work too; both interrupt that
 * thread's epoll_wait with EINTR, a signal the application never sent (docs/ARCHITECTURE.md). */
static void uring_prepare(struct io_uring_sqe *sqe, const struct kq_aio_op *op) {
    memset(sqe, 0, sizeof *sqe);
    sqe->fd = op->fd;
    sqe->user_data = op->tag;
    sqe->off = (uint64_t)op->offset;
    sqe->addr = (uint64_t)(uintptr_t)op->buffer;
    sqe->len = (unsigned)op->length;
    sqe->rw_flags = RWF_NOWAIT;
    switch (op->opcode) {
    case KQ_AIO_OP_READ: sqe->opcode = IORING_OP_READ; break;
    case KQ_AIO_OP_WRITE: sqe->opcode = IORING_OP_WRITE; break;
    case KQ_AIO_OP_READV: sqe->opcode = IORING_OP_READV; break;
    case KQ_AIO_OP_WRITEV: sqe->opcode = IORING_OP_WRITEV; break;
    default: sqe->opcode = IORING_OP_NOP; break;
    }
}

static int pool_submit(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n);

/* The last descriptor asked about, its status flags (F_GETFL; -1: not open) and whether it is
 * a regular file or block device (fstat; -1: not asked yet): a batch's requests mostly share
 * one, so a submission asks once per run of them, for both the ring's O_DIRECT test and the
 * helpers' tests. */
struct fd_flags_cache {
    int fd;
    int flags;
    int seekable_file;
    dev_t dev; /* the file's identity, with seekable_file */
    ino_t ino;
};

static int cached_fd_flags(int fd, struct fd_flags_cache *cache) {
    if (fd != cache->fd) {
        cache->fd = fd;
        cache->flags = fcntl(fd, F_GETFL);
        cache->seekable_file = -1;
    }
    return cache->flags;
}

static int cached_seekable_file(int fd, struct fd_flags_cache *cache) {
    (void)cached_fd_flags(fd, cache);
    if (cache->seekable_file < 0) {
        struct stat st;
        cache->seekable_file = fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
        cache->dev = cache->seekable_file ? st.st_dev : 0;
        cache->ino = cache->seekable_file ? st.st_ino : 0;
    }
    return cache->seekable_file;
}

/* First attempts of reads and writes, except on an O_DIRECT descriptor: the block layer
 * completes those later even under RWF_NOWAIT, through task work that would end the
 * submitting thread's wait with EINTR; the pool runs them. (A bad descriptor enters the ring,
 * which reports EBADF during the submission.) */
static int in_ring(const struct kq_aio_op *op, struct fd_flags_cache *cache) {
    if (op->attempt != 0 || op->opcode == KQ_AIO_OP_FSYNC || op->opcode == KQ_AIO_OP_FDATASYNC) return 0;
    int flags = cached_fd_flags(op->fd, cache);
    return !(flags >= 0 && (flags & O_DIRECT) != 0);
}

/* ---- registered files ------------------------------------------------------------------
 * A read through the ring looks its descriptor up (fget and fput: an increment and a
 * decrement of the file's reference count), and so does each pread a helper makes on the same
 * file from the other CPU: the count's cache line moves between the two at every request (7.6%
 * of a helper's time at depth 64). So the plain reads of a regular file that the ring runs for
 * the submitter name the file by a slot of the ring's registered-file table, which holds the
 * file without counting per request (docs/BENCHMARKS.md). A registered file stays open while
 * registered, so: only a regular file this submission checked with fstat is registered, and
 * its slot serves only requests whose descriptor still names that file (device and inode: a
 * number reused behind the interposers' back gets a fresh registration, never the old file);
 * and a number released through the close/dup2/dup3/close_range interposers is unregistered
 * from every ring before the descriptor goes (kq_aio_forget_ring_file: its flock locks and a
 * deleted file's blocks go at close, as they would without us). A number released by a raw
 * system call stays registered until its slot is reused or the kqueue closes. */
static pthread_mutex_t fixed_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kq_aio_backend *fixed_backends; /* those with a registered file (fixed_lock) */
static int fixed_fork_hook;

/* Forgets the backend's registrations in our books (the shim's counts), not in its ring. */
static void fixed_forget_all(struct kq_aio_backend *b) {
    for (int i = 0; i < FIXED_SLOTS; i++)
        if (b->fixed[i].fd >= 0) {
            kq_shim_ring_file_count(b->fixed[i].fd, -1);
            b->fixed[i].fd = -1;
        }
}

/* A fork child has the numbers but none of our rings (their descriptors are closed there):
 * it forgets the registrations, without a call on a ring (the parent's, still). */
static void fixed_fork_child(void) {
    pthread_mutex_init(&fixed_lock, NULL);
    for (struct kq_aio_backend *b = fixed_backends; b != NULL; b = b->fixed_list_next) fixed_forget_all(b);
    fixed_backends = NULL;
}

static int fixed_update(struct kq_aio_backend *b, int slot, int fd) {
    struct io_uring_files_update update = {.offset = (unsigned)slot, .fds = (uint64_t)(uintptr_t)&fd};
    return sys_uring_register(b->ring_fd, IORING_REGISTER_FILES_UPDATE, &update, 1) == 1 ? 0 : -1;
}

/* Empties a slot (fixed_lock held). */
static void fixed_clear(struct kq_aio_backend *b, int slot) {
    if (b->fixed[slot].fd < 0) return;
    (void)fixed_update(b, slot, -1);
    kq_shim_ring_file_count(b->fixed[slot].fd, -1);
    b->fixed[slot].fd = -1;
}

/* The ring's table of FIXED_SLOTS empty slots, on first use (fixed_lock held): 0, or -1. */
static int fixed_table(struct kq_aio_backend *b) {
    if (b->fixed_state == 0) {
        int empty[FIXED_SLOTS];
        for (int i = 0; i < FIXED_SLOTS; i++) {
            empty[i] = -1;
            b->fixed[i].fd = -1;
        }
        b->fixed_state = sys_uring_register(b->ring_fd, IORING_REGISTER_FILES, empty, FIXED_SLOTS) == 0 ? 1 : -1;
        if (!fixed_fork_hook) fixed_fork_hook = pthread_atfork(NULL, NULL, fixed_fork_child) == 0;
    }
    return b->fixed_state == 1 && fixed_fork_hook ? 0 : -1;
}

/* The slot holding the file of `op` (a plain read whose descriptor the submission checked:
 * `cache`), registered now if need be and `may_register` (no entry of an earlier enter is
 * still queued: one could name the slot a registration replaces); -1: use the descriptor
 * (fixed_lock held). */
static int fixed_slot(struct kq_aio_backend *b, const struct kq_aio_op *op, const struct fd_flags_cache *cache,
                      int may_register) {
    if (op->opcode != KQ_AIO_OP_READ || cache == NULL || op->fd != cache->fd || cache->seekable_file != 1 ||
        cache->flags < 0 || (cache->flags & O_ACCMODE) == O_WRONLY)
        return -1;
    if (fixed_table(b) != 0) return -1;
    int slot = -1;
    for (int i = 0; i < FIXED_SLOTS && slot < 0; i++)
        if (b->fixed[i].fd == op->fd) slot = i;
    if (slot >= 0 && b->fixed[slot].dev == cache->dev && b->fixed[slot].ino == cache->ino) return slot;
    if (!may_register) return -1;
    /* Another file behind the number now, or not registered: (re)register it. */
    if (slot < 0) slot = (int)(b->fixed_next++ % FIXED_SLOTS);
    fixed_clear(b, slot);
    if (kq_shim_ring_file_count(op->fd, 1) != 0) return -1; /* a number the interposers cannot track */
    if (fixed_update(b, slot, op->fd) != 0) {
        kq_shim_ring_file_count(op->fd, -1);
        return -1;
    }
    b->fixed[slot] = (struct fixed_file){.fd = op->fd, .dev = cache->dev, .ino = cache->ino};
    if (!b->fixed_listed) {
        b->fixed_listed = 1;
        b->fixed_list_next = fixed_backends;
        fixed_backends = b;
    }
    return slot;
}

/* Before the backend is freed or kept idle: no file registered, off the list. */
static void fixed_release(struct kq_aio_backend *b) {
    pthread_mutex_lock(&fixed_lock);
    if (b->fixed_state == 1) {
        fixed_forget_all(b);
        (void)sys_uring_register(b->ring_fd, IORING_UNREGISTER_FILES, NULL, 0);
    }
    b->fixed_state = 0;
    if (b->fixed_listed) {
        struct kq_aio_backend **link = &fixed_backends;
        while (*link != b) link = &(*link)->fixed_list_next;
        *link = b->fixed_list_next;
        b->fixed_listed = 0;
    }
    pthread_mutex_unlock(&fixed_lock);
}

void kq_aio_forget_ring_file(int fd) {
    pthread_mutex_lock(&fixed_lock);
    for (struct kq_aio_backend *b = fixed_backends; b != NULL; b = b->fixed_list_next)
        for (int i = 0; i < FIXED_SLOTS; i++)
            if (b->fixed[i].fd == fd) fixed_clear(b, i);
    pthread_mutex_unlock(&fixed_lock);
}

/* Queues a run of first attempts in the ring and enters it: how many were queued (a prefix;
 * queued entries a failed enter left behind are submitted by the next enter), or -errno.
 * `cache` (or NULL) is the submission's knowledge of the last descriptor it checked: plain
 * reads of that file use a registered slot; fixed_lock is held from their preparation to the
 * enter, so no slot they name is emptied or reused before the ring has taken them. */
static int uring_submit_run(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n,
                            const struct fd_flags_cache *cache) {
    int done = 0;
    while (done < n) {
        unsigned head = atomic_load_explicit(b->sq_head, memory_order_acquire);
        unsigned tail = atomic_load_explicit(b->sq_tail, memory_order_relaxed);
        unsigned room = b->sq_entries - (tail - head);
        unsigned batch = (unsigned)(n - done) < room ? (unsigned)(n - done) : room;
        if (batch == 0) {
            int r = uring_flush(b, tail - head);
            if (r < 0) return done > 0 ? done : r;
            continue;
        }
        int locked = cache != NULL && cache->seekable_file == 1;
        if (locked) pthread_mutex_lock(&fixed_lock);
        for (unsigned i = 0; i < batch; i++) {
            struct io_uring_sqe *sqe = &b->sqes[(tail + i) & *b->sq_mask];
            uring_prepare(sqe, &ops[done + (int)i]);
            int slot = locked ? fixed_slot(b, &ops[done + (int)i], cache, tail == head) : -1;
            if (slot >= 0) {
                sqe->fd = slot;
                sqe->flags |= IOSQE_FIXED_FILE;
            }
        }
        atomic_store_explicit(b->sq_tail, tail + batch, memory_order_release);
        b->inflight += batch;
        done += (int)batch;
        int r = uring_flush(b, tail + batch - head);
        if (locked) pthread_mutex_unlock(&fixed_lock);
        if (r < 0) return done; /* queued: submitted by the next enter */
    }
    return done;
}

static int share_offer(struct kq_aio_backend *b, const struct kq_aio_op *ops, int fits);
static int share_wanted(struct kq_aio_backend *b, int n);
static void share_run(struct kq_aio_backend *b, const struct kq_aio_op *mine, int k);
static int share_fitting_prefix(const struct kq_aio_op *ops, int n, struct fd_flags_cache *cache);
static int pool_submit(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n);

static int uring_submit(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n) {
    int done = 0, error = 0;
    int sharing = share_wanted(b, n);
    struct fd_flags_cache cache = {.fd = -1, .flags = -1, .seekable_file = -1};
    while (done < n) {
        if (!in_ring(&ops[done], &cache)) {
            int r = pool_submit(b, &ops[done], 1);
            if (r < 0) {
                error = r;
                break;
            }
            done++;
            continue;
        }
        int plain = done;
        while (plain < n && in_ring(&ops[plain], &cache)) plain++;
        int fits =
            sharing && share_wanted(b, plain - done) ? share_fitting_prefix(&ops[done], plain - done, &cache) : 0;
        /* The helpers' part first (a prefix of the run), then the rest in the ring. */
        done += fits > 0 ? share_offer(b, &ops[done], fits) : 0;
        if (done == plain) continue;
        int r = uring_submit_run(b, &ops[done], plain - done, fits > 0 ? &cache : NULL);
        if (r < 0) {
            error = r;
            break;
        }
        done += r;
        if (done < plain) break; /* the ring took only part */
    }
    return done > 0 ? done : error;
}

/* The pool backend's first attempts on a regular file that are not shared (`ops`, a prefix
 * share_fitting_prefix accepted): run at once in the submitter with RWF_NOWAIT, as the ring
 * runs them inside io_uring_enter (cached data is a copy; a hand-off to a pool worker and
 * back costs tens of microseconds more), their results stashed like a helper's. What would
 * block fails with EAGAIN and goes to the pool as a second attempt. */
static void threads_run_inline(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n) {
    for (int done = 0; done < n; done += SHARE_CHUNK) {
        int k = n - done < SHARE_CHUNK ? n - done : SHARE_CHUNK;
        b->inflight += k;
        share_run(b, &ops[done], k);
    }
}

/* The pool backend: first attempts of reads and writes on regular files are shared like the
 * ring's (the submitter's part run inline with RWF_NOWAIT), or run inline when not shared;
 * the rest queued in the pool. */
static int threads_submit(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n) {
    int done = 0, error = 0;
    int sharing = share_wanted(b, n);
    struct fd_flags_cache cache = {.fd = -1, .flags = -1, .seekable_file = -1};
    while (done < n) {
        int plain = done;
        while (plain < n && in_ring(&ops[plain], &cache)) plain++;
        int fits = plain > done ? share_fitting_prefix(&ops[done], plain - done, &cache) : 0;
        /* The helpers' part first (a prefix of the run), then the rest inline. */
        int queued = sharing && fits > 0 ? share_offer(b, &ops[done], fits) : 0;
        done += queued;
        fits -= queued;
        if (fits > 0) {
            threads_run_inline(b, &ops[done], fits);
            done += fits;
            continue;
        }
        if (queued > 0) continue;
        int end = plain > done ? plain : done + 1;
        int r = pool_submit(b, &ops[done], end - done);
        if (r < 0) {
            error = r;
            break;
        }
        done += r;
        if (done < end) break;
    }
    return done > 0 ? done : error;
}

static int uring_cancel(struct kq_aio_backend *b, uint64_t tag) {
    unsigned head = atomic_load_explicit(b->sq_head, memory_order_acquire);
    unsigned tail = atomic_load_explicit(b->sq_tail, memory_order_relaxed);
    if (tail - head == b->sq_entries) {
        int r = uring_flush(b, tail - head);
        if (r < 0) return r;
    }
    struct io_uring_sqe *sqe = &b->sqes[tail & *b->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = tag;
    sqe->user_data = CANCEL_TAG;
    atomic_store_explicit(b->sq_tail, tail + 1, memory_order_release);
    int r = uring_flush(b, tail + 1 - atomic_load_explicit(b->sq_head, memory_order_acquire));
    if (r < 0) return r;
    int seen = 0, result = 0;
    for (;;) {
        uring_drain_cq(b, &seen, &result);
        if (seen) return result; /* 0, -EALREADY or -ENOENT */
        if (sys_uring_enter(b->ring_fd, 0, 1, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR) return -errno;
    }
}

/* ---- the thread pool ----------------------------------------------------------------- */

/* QUEUED: in the queue. STARTING: taken by a worker, no system call made yet. WAITING: a
 * stream waiting for readiness. All three can be cancelled; RUNNING (in the read, write or
 * fsync itself) cannot. */
enum { POOL_QUEUED, POOL_STARTING, POOL_WAITING, POOL_RUNNING };

struct pool_job {
    struct kq_aio_op op;
    struct kq_aio_backend *backend;
    struct pool_job *next, *prev;
    int state;
    int cancelled;
};

#define POOL_MAX_THREADS 16
#define POOL_IDLE_SECONDS 10

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER;
static struct pool_job *pool_head, *pool_tail;
static struct pool_job *pool_running; /* list of running and waiting jobs */
static int pool_threads, pool_idle;
static int pool_fork_hooks;

static void pool_unlink(struct pool_job **list_head, struct pool_job *job) {
    if (job->prev != NULL) job->prev->next = job->next; else *list_head = job->next;
    if (job->next != NULL) job->next->prev = job->prev;
    else if (list_head == &pool_head) pool_tail = job->prev;
    job->next = job->prev = NULL;
}

static void pool_push_running(struct pool_job *job) {
    job->prev = NULL;
    job->next = pool_running;
    if (pool_running != NULL) pool_running->prev = job;
    pool_running = job;
}

static void signal_event_fd(int fd) {
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {}
}

/* Called with pool_lock held: the job is off every list. */
static void pool_complete(struct pool_job *job, int64_t result) {
    struct kq_aio_backend *b = job->backend;
    pthread_mutex_lock(&b->done_lock);
    while (stash(b, job->op.tag, result) != 0) {
        pthread_mutex_unlock(&b->done_lock);
        sched_yield();
        pthread_mutex_lock(&b->done_lock);
    }
    pthread_mutex_unlock(&b->done_lock);
    if (!atomic_exchange(&b->signalled, 1)) signal_event_fd(b->event_fd);
    b->pool_jobs--;
        free(job);
}

/* A descriptor that has no file position (pipe, FIFO, socket, tty) is read and written at its
 * stream position; the request waits for readiness in slices so that it stays cancellable. */
static int pool_wait_ready(struct pool_job *job, short events) {
    struct pollfd pfd = {.fd = job->op.fd, .events = events};
    for (;;) {
        int n = poll(&pfd, 1, 20);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return -errno;
        pthread_mutex_lock(&pool_lock);
        int cancelled = job->cancelled;
        pthread_mutex_unlock(&pool_lock);
        if (cancelled) return -ECANCELED;
    }
}

/* The job leaves STARTING or WAITING for RUNNING, unless it was cancelled meanwhile. */
static int pool_start_running(struct pool_job *job) {
    pthread_mutex_lock(&pool_lock);
    int cancelled = job->cancelled;
    job->state = POOL_RUNNING;
    pthread_mutex_unlock(&pool_lock);
    return cancelled ? -ECANCELED : 0;
}

static int64_t pool_perform(struct pool_job *job) {
    const struct kq_aio_op *op = &job->op;
    ssize_t r;
    if ((op->opcode == KQ_AIO_OP_FSYNC || op->opcode == KQ_AIO_OP_FDATASYNC) && pool_start_running(job) < 0)
        return -ECANCELED;
    switch (op->opcode) {
    case KQ_AIO_OP_FSYNC: r = fsync(op->fd); break;
    case KQ_AIO_OP_FDATASYNC: r = fdatasync(op->fd); break;
    case KQ_AIO_OP_READ:
    case KQ_AIO_OP_WRITE:
    case KQ_AIO_OP_READV:
    case KQ_AIO_OP_WRITEV: {
        int reading = op->opcode == KQ_AIO_OP_READ || op->opcode == KQ_AIO_OP_READV;
        int vectored = op->opcode == KQ_AIO_OP_READV || op->opcode == KQ_AIO_OP_WRITEV;
        const struct iovec *iov = op->buffer;
        int stream = lseek(op->fd, 0, SEEK_CUR) < 0 && errno == ESPIPE;
        if (stream) {
            pthread_mutex_lock(&pool_lock);
            job->state = POOL_WAITING;
            pthread_mutex_unlock(&pool_lock);
            int ready = pool_wait_ready(job, reading ? POLLIN : POLLOUT);
            if (ready == 0) ready = pool_start_running(job); /* cancelled after it became ready */
            if (ready < 0) return ready;
            if (vectored) r = reading ? readv(op->fd, iov, (int)op->length) : writev(op->fd, iov, (int)op->length);
            else r = reading ? read(op->fd, op->buffer, op->length) : write(op->fd, op->buffer, op->length);
        } else if (pool_start_running(job) < 0) {
            return -ECANCELED;
        } else if (vectored) {
            r = reading ? preadv(op->fd, iov, (int)op->length, op->offset)
                        : pwritev(op->fd, iov, (int)op->length, op->offset);
        } else {
            r = reading ? pread(op->fd, op->buffer, op->length, op->offset)
                        : pwrite(op->fd, op->buffer, op->length, op->offset);
        }
        break;
    }
    default: r = 0; break;
    }
    return r < 0 ? -(int64_t)errno : (int64_t)r;
}

static void *pool_worker(void *unused) {
    (void)unused;
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        while (pool_head == NULL) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += POOL_IDLE_SECONDS;
            pool_idle++;
            int r = pthread_cond_timedwait(&pool_work, &pool_lock, &until);
            pool_idle--;
            if (r == ETIMEDOUT && pool_head == NULL) {
                pool_threads--;
                pthread_mutex_unlock(&pool_lock);
                return NULL;
            }
        }
        struct pool_job *job = pool_head;
        pool_unlink(&pool_head, job);
        job->state = POOL_STARTING;
        pool_push_running(job);
        pthread_mutex_unlock(&pool_lock);
        int64_t result = pool_perform(job);
        pthread_mutex_lock(&pool_lock);
        pool_unlink(&pool_running, job);
        pool_complete(job, result);
    }
}

static void pool_fork_prepare(void) { pthread_mutex_lock(&pool_lock); }
static void pool_fork_parent(void) { pthread_mutex_unlock(&pool_lock); }
/* The child has none of the workers, and none of the requests: they are the parent's. */
static void pool_fork_child(void) {
    pthread_mutex_init(&pool_lock, NULL);
    pthread_cond_init(&pool_work, NULL);
    pool_head = pool_tail = pool_running = NULL;
    pool_threads = pool_idle = 0;
}

/* Starts a detached library thread (pool worker, sharing helper) with a 64 KiB stack and every
 * signal blocked: the application's signals go to its own threads. Returns pthread_create's
 * result. */
static int start_library_thread(void *(*body)(void *)) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int r = pthread_create(&thread, &attr, body, NULL);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    pthread_attr_destroy(&attr);
    return r;
}

static int pool_submit(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n) {
    pthread_mutex_lock(&pool_lock);
    if (!pool_fork_hooks) {
        if (pthread_atfork(pool_fork_prepare, pool_fork_parent, pool_fork_child) != 0) {
            pthread_mutex_unlock(&pool_lock);
            return -ENOMEM;
        }
        pool_fork_hooks = 1;
    }
    int done = 0;
    for (; done < n; done++) {
        struct pool_job *job = calloc(1, sizeof *job);
        if (job == NULL) break;
        job->op = ops[done];
        job->backend = b;
        job->state = POOL_QUEUED;
        job->prev = pool_tail;
        if (pool_tail != NULL) pool_tail->next = job; else pool_head = job;
        pool_tail = job;
        b->pool_jobs++;
        b->inflight++;
    }
    int wanted = done;
    if (wanted > pool_idle && pool_threads < POOL_MAX_THREADS) {
        int start = wanted - pool_idle;
        if (start > POOL_MAX_THREADS - pool_threads) start = POOL_MAX_THREADS - pool_threads;
        for (int i = 0; i < start; i++) {
            if (start_library_thread(pool_worker) != 0) break;
            pool_threads++;
        }
    }
    if (pool_threads == 0 && done > 0) {
        /* No worker could be started: take the requests back. */
        for (struct pool_job *job = pool_head, *next; job != NULL; job = next) {
            next = job->next;
            if (job->backend != b) continue;
            pool_unlink(&pool_head, job);
            free(job);
            b->pool_jobs--;
            b->inflight--;
        }
        pthread_mutex_unlock(&pool_lock);
        return -EAGAIN;
    }
    pthread_cond_broadcast(&pool_work);
    pthread_mutex_unlock(&pool_lock);
    return done > 0 ? done : -ENOMEM;
}

static int pool_cancel(struct kq_aio_backend *b, uint64_t tag) {
    pthread_mutex_lock(&pool_lock);
    int result = -ENOENT;
    for (struct pool_job *job = pool_head; job != NULL; job = job->next) {
        if (job->backend == b && job->op.tag == tag) {
            pool_unlink(&pool_head, job);
            pool_complete(job, -ECANCELED);
            result = 0;
            break;
        }
    }
    if (result == -ENOENT) {
        for (struct pool_job *job = pool_running; job != NULL; job = job->next) {
            if (job->backend != b || job->op.tag != tag) continue;
            if (job->state == POOL_WAITING || job->state == POOL_STARTING) {
                job->cancelled = 1;
                result = 0;
            } else {
                result = -EALREADY;
            }
            break;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return result;
}

/* ---- helpers: the second core --------------------------------------------------------- */

/* A copy out of the page cache costs as much inside io_uring_enter as inside pread, so one
 * thread cannot read cached data faster than a pread loop, however it batches. A batch of
 * reads and writes on regular files is therefore shared with helper threads (one per CPU
 * beyond the first, at most SHARE_MAX_HELPERS): the submitter queues the helpers' part of the
 * batch (sized per backend to keep them busy until the next submission: see share_part) and
 * runs the rest itself at once (through the ring, inline); a helper works through the queue
 * from the front while the application handles what completed, and a submitter about to wait
 * runs what is still queued from the back (kq_aio_backend_assist). A helper calls
 * preadv2/pwritev2 with RWF_NOWAIT, like the ring: what would block fails with EAGAIN and the
 * engine retries it in the pool. Helpers make no io_uring call, so no task work reaches any
 * thread (docs/ARCHITECTURE.md). */
#define SHARE_MAX_HELPERS 2
#define SHARE_HELPER_CHUNK 4
#define SHARE_SPIN_NS 50000L
#define SHARE_IDLE_SECONDS 10

static pthread_mutex_t share_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t share_work = PTHREAD_COND_INITIALIZER;
/* Backends with queued requests, in the order helpers serve them (share_lock). */
static struct kq_aio_backend *share_ready_head, *share_ready_tail;
/* Requests queued in every backend: what a helper spinning without the lock watches. */
static _Atomic unsigned share_queued;
static int share_helpers, share_sleeping, share_fork_hook;
static int share_limit = -1; /* helpers allowed; -1 until computed */
static int share_keep_percent = -1; /* the helpers' part to start from (or to keep) */
static int share_adapt = 1;
#define SHARE_KEEP_MAX 90 /* percent of a submission, at most, to the helpers */

/* KQUEUE_AIO_HELPERS=N overrides the count (0: no sharing, every read in the submitter);
 * KQUEUE_AIO_SHARE_KEEP=P fixes the helpers' part at P percent instead of adapting it (for
 * measurements: docs/BENCHMARKS.md). */
static int share_helper_limit(void) {
    if (share_limit < 0) {
        const char *forced = getenv("KQUEUE_AIO_HELPERS");
        if (forced != NULL && *forced != '\0') {
            share_limit = atoi(forced);
        } else {
            cpu_set_t set;
            share_limit = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) - 1 : 0;
        }
        if (share_limit < 0) share_limit = 0;
        if (share_limit > SHARE_MAX_HELPERS) share_limit = SHARE_MAX_HELPERS;
        const char *keep = getenv("KQUEUE_AIO_SHARE_KEEP");
        share_keep_percent = keep != NULL && *keep != '\0' ? atoi(keep) : 50;
        share_adapt = keep == NULL || *keep == '\0';
        if (share_keep_percent < 0 || share_keep_percent > 100) share_keep_percent = 50;
    }
    return share_limit;
}

static void share_fork_child(void) {
    pthread_mutex_init(&share_lock, NULL);
    pthread_cond_init(&share_work, NULL);
    share_ready_head = share_ready_tail = NULL;
    atomic_store(&share_queued, 0);
    share_helpers = share_sleeping = 0;
}

static void share_list(struct kq_aio_backend *b) {
    if (b->share_listed) return;
    b->share_listed = 1;
    b->share_next = NULL;
    if (share_ready_tail != NULL) share_ready_tail->share_next = b; else share_ready_head = b;
    share_ready_tail = b;
}

static void share_unlist(struct kq_aio_backend *b) {
    if (!b->share_listed) return;
    struct kq_aio_backend **link = &share_ready_head, *previous = NULL;
    while (*link != b) {
        previous = *link;
        link = &(*link)->share_next;
    }
    *link = b->share_next;
    if (share_ready_tail == b) share_ready_tail = previous;
    b->share_listed = 0;
    b->share_next = NULL;
}

/* A helper's memory of the descriptor of its last plain reads. preadv2 with RWF_NOWAIT costs a
 * helper more than pread(2) (the iovec to import and the vectored path: about a tenth of its
 * time per cached 4 KiB read), but pread may block. So after SHARE_PROVEN_READS whole reads in a
 * row with RWF_NOWAIT on one descriptor (its filesystem supports RWF_NOWAIT, and what was read
 * was cached), plain reads on it use pread, until those of a chunk take longer than
 * SHARE_BLOCKED_NS from the first (a read went to the disk: the helper is back to RWF_NOWAIT, whose EAGAIN
 * sends the rest to the pool) or a number is closed through the library's interposers (the
 * descriptor may name another file now). What a misjudged read costs is one blocking read in
 * the helper, with the rest of its chunk behind it; data and results are those of pread. */
#define SHARE_PROVEN_READS 64
#define SHARE_BLOCKED_NS 50000L
struct share_proof {
    int fd;
    unsigned long epoch;
    unsigned whole_reads;         /* in a row, with RWF_NOWAIT */
    int plain_in_chunk;           /* a read of the current chunk used pread */
    struct timespec plain_since;  /* when its first pread started */
};

static int share_proven(const struct kq_aio_op *op, const struct share_proof *proof) {
    return proof != NULL && op->opcode == KQ_AIO_OP_READ && op->fd == proof->fd &&
           proof->whole_reads >= SHARE_PROVEN_READS && proof->epoch == kq_shim_descriptor_epoch();
}

/* Learns from a plain read's RWF_NOWAIT answer `r`. */
static void share_learn(const struct kq_aio_op *op, ssize_t r, struct share_proof *proof) {
    if (proof == NULL || op->opcode != KQ_AIO_OP_READ) return;
    unsigned long epoch = kq_shim_descriptor_epoch();
    if (op->fd != proof->fd || epoch != proof->epoch) {
        proof->fd = op->fd;
        proof->epoch = epoch;
        proof->whole_reads = 0;
    }
    proof->whole_reads = r == (ssize_t)op->length ? proof->whole_reads + 1 : 0;
}

/* Runs a request in the calling thread; `proof` (a helper's, or NULL) may let a plain read
 * use pread (above). */
static int64_t share_perform(const struct kq_aio_op *op, struct share_proof *proof) {
    if (share_proven(op, proof)) {
        if (!proof->plain_in_chunk) clock_gettime(CLOCK_MONOTONIC, &proof->plain_since);
        proof->plain_in_chunk = 1;
        ssize_t r = pread(op->fd, op->buffer, (size_t)op->length, op->offset);
        if (r >= 0) return r;
        /* Not the file it was (a number closed behind the interposers' back): the pool's
         * attempt gives the answer, and the helper proves the descriptor again. */
        proof->whole_reads = 0;
        return -(int64_t)EAGAIN;
    }
    struct iovec one = {.iov_base = op->buffer, .iov_len = (size_t)op->length};
    const struct iovec *iov = &one;
    int count = 1;
    if (op->opcode == KQ_AIO_OP_READV || op->opcode == KQ_AIO_OP_WRITEV) {
        iov = op->buffer;
        count = (int)op->length;
    }
    int reading = op->opcode == KQ_AIO_OP_READ || op->opcode == KQ_AIO_OP_READV;
    ssize_t r = reading ? preadv2(op->fd, iov, count, op->offset, RWF_NOWAIT)
                        : pwritev2(op->fd, iov, count, op->offset, RWF_NOWAIT);
    share_learn(op, r, proof);
    if (r >= 0) return r;
    int error = errno;
    /* The pool's second attempt gives the real answer (a file without RWF_NOWAIT support). */
    if (error == EOPNOTSUPP || error == ESPIPE || error == EINTR) error = EAGAIN;
    return -(int64_t)error;
}

static long share_elapsed_ns(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

/* Stashes results, one eventfd write unless one is pending since the last reap. */
static void share_complete(struct kq_aio_backend *b, const struct kq_aio_completion *results, int n) {
    pthread_mutex_lock(&b->done_lock);
    for (int i = 0; i < n; i++) {
        while (stash(b, results[i].tag, results[i].result) != 0) {
            pthread_mutex_unlock(&b->done_lock);
            sched_yield();
            pthread_mutex_lock(&b->done_lock);
        }
    }
    pthread_mutex_unlock(&b->done_lock);
    if (!atomic_exchange(&b->signalled, 1)) signal_event_fd(b->event_fd);
}

/* Waits a while for new work before sleeping: the next batch usually comes within
 * microseconds, sooner than a sleeping thread wakes. It yields rather than spins, so that a
 * busy machine's other threads (the application's among them) get the CPU first. 1 when some
 * work came. */
static int share_spin(void) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (atomic_load_explicit(&share_queued, memory_order_relaxed) > 0) return 1;
        sched_yield();
        if (share_elapsed_ns(&start) > SHARE_SPIN_NS) return 0;
    }
}

static void *share_helper(void *unused) {
    (void)unused;
    pthread_setname_np(pthread_self(), "kq-aio-helper");
    struct kq_aio_op ops[SHARE_HELPER_CHUNK];
    struct kq_aio_completion results[SHARE_HELPER_CHUNK];
    struct share_proof proof = {.fd = -1};
    pthread_mutex_lock(&share_lock);
    for (;;) {
        struct kq_aio_backend *b = share_ready_head;
        if (b == NULL) {
            pthread_mutex_unlock(&share_lock);
            int found = share_spin();
            pthread_mutex_lock(&share_lock);
            if (found || share_ready_head != NULL) continue;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += SHARE_IDLE_SECONDS;
            share_sleeping++;
            int r = pthread_cond_timedwait(&share_work, &share_lock, &until);
            share_sleeping--;
            if (r == ETIMEDOUT && share_ready_head == NULL) {
                share_helpers--;
                pthread_mutex_unlock(&share_lock);
                return NULL;
            }
            continue;
        }
        share_unlist(b);
        unsigned n = 0;
        while (n < SHARE_HELPER_CHUNK && b->share_count > 0) {
            ops[n++] = b->share_ops[b->share_head];
            b->share_head = (b->share_head + 1) % b->share_capacity;
            b->share_count--;
        }
        if (b->share_count > 0) share_list(b); /* to the back: backends take turns */
        b->share_busy += (int)n;
        b->share_taken += n;
        atomic_fetch_sub_explicit(&share_queued, n, memory_order_relaxed);
        pthread_mutex_unlock(&share_lock);
        proof.plain_in_chunk = 0;
        for (unsigned i = 0; i < n; i++) {
            results[i].tag = ops[i].tag;
            results[i].result = share_perform(&ops[i], &proof);
        }
        /* A read of this chunk went to the disk (or the helper lost its CPU): RWF_NOWAIT again. */
        if (proof.plain_in_chunk && share_elapsed_ns(&proof.plain_since) > SHARE_BLOCKED_NS)
            proof.whole_reads = 0;
        share_complete(b, results, (int)n);
        pthread_mutex_lock(&share_lock);
        b->share_busy -= (int)n; /* after this the helper no longer touches b */
    }
}

/* Starts a helper (share_lock held); 0 when it could not. */
static int share_start_helper(void) {
    if (!share_fork_hook) {
        if (pthread_atfork(NULL, NULL, share_fork_child) != 0) return 0;
        share_fork_hook = 1;
    }
    if (start_library_thread(share_helper) != 0) return 0;
    share_helpers++;
    return 1;
}

/* A regular file (or block device) open for the transfer's direction: a request on anything
 * else, or on a bad descriptor, stays in the submitter (the ring finds EBADF during the
 * submission, which the engine reports as a submission error). */
static int share_fits(const struct kq_aio_op *op, struct fd_flags_cache *cache) {
    int flags = cached_fd_flags(op->fd, cache);
    if (flags < 0) return 0;
    int reading = op->opcode == KQ_AIO_OP_READ || op->opcode == KQ_AIO_OP_READV;
    int mode = flags & O_ACCMODE;
    if (reading ? mode == O_WRONLY : mode == O_RDONLY) return 0;
    if (flags & O_DIRECT) return 0;
    return cached_seekable_file(op->fd, cache);
}

/* Appends to the backend's queue (share_lock held): 0, or -ENOMEM. */
static int share_enqueue(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n) {
    if (b->share_count + (unsigned)n > b->share_capacity) {
        unsigned capacity = b->share_capacity ? b->share_capacity : 64;
        while (capacity < b->share_count + (unsigned)n) capacity *= 2;
        struct kq_aio_op *grown = malloc(capacity * sizeof *grown);
        if (grown == NULL) return -ENOMEM;
        for (unsigned i = 0; i < b->share_count; i++)
            grown[i] = b->share_ops[(b->share_head + i) % b->share_capacity];
        free(b->share_ops);
        b->share_ops = grown;
        b->share_capacity = capacity;
        b->share_head = 0;
    }
    for (int i = 0; i < n; i++)
        b->share_ops[(b->share_head + b->share_count + (unsigned)i) % b->share_capacity] = ops[i];
    b->share_count += (unsigned)n;
    atomic_fetch_add_explicit(&share_queued, (unsigned)n, memory_order_relaxed);
    return 0;
}

/* Requests the submitter took back and could not run: to the helpers. */
static void share_put_back(struct kq_aio_backend *b, const struct kq_aio_op *ops, int n) {
    pthread_mutex_lock(&share_lock);
    if (share_enqueue(b, ops, n) == 0) {
        b->inflight += n;
        share_list(b);
        if (share_sleeping > 0) pthread_cond_signal(&share_work);
    }
    pthread_mutex_unlock(&share_lock);
}

/* The longest prefix of `ops` (first attempts of reads and writes) on regular files or block
 * devices open for their direction: what a helper, or the pool's submitter, may run with
 * preadv2/pwritev2 (`cache` asks the system once per run of requests on one descriptor). */
static int share_fitting_prefix(const struct kq_aio_op *ops, int n, struct fd_flags_cache *cache) {
    int fits = 0;
    while (fits < n && share_fits(&ops[fits], cache)) fits++;
    return fits;
}

/* The helpers' part of a run of `n` requests that fit (share_lock held): enough to keep them
 * busy until the next submission, judged by what they took since the last one, plus half and
 * two chunks of slack (less left them idle between submissions), less what is still queued.
 * Helpers that took nothing (not getting a CPU) get two chunks: the submitter runs the rest
 * itself, and runs what is queued when it would wait (kq_aio_backend_assist). */
static int share_part(struct kq_aio_backend *b, int n) {
    if (!share_adapt) return (int)((long)n * share_keep_percent / 100);
    unsigned ran = b->share_taken - b->share_taken_mark;
    b->share_taken_mark = b->share_taken;
    unsigned wanted = ran + ran / 2 + 2 * SHARE_HELPER_CHUNK;
    unsigned part = wanted > b->share_count ? wanted - b->share_count : 0;
    unsigned most = (unsigned)n * SHARE_KEEP_MAX / 100;
    return (int)(part < most ? part : most);
}

/* Queues the helpers' part of `ops` (a prefix share_fitting_prefix accepted, `fits` long):
 * how many were queued, a prefix of `ops` (0: run them all in the submitter). */
static int share_offer(struct kq_aio_backend *b, const struct kq_aio_op *ops, int fits) {
    if (!share_wanted(b, fits)) return 0;
    pthread_mutex_lock(&share_lock);
    /* No helper allowed, or none could be started: the submitter runs them all. */
    int part = share_helper_limit() > 0 ? share_part(b, fits) : 0;
    if (part == 0 || (share_helpers == 0 && !share_start_helper()) || share_enqueue(b, ops, part) != 0) {
        pthread_mutex_unlock(&share_lock);
        return 0;
    }
    b->inflight += part;
    share_list(b);
    if (share_sleeping > 0) pthread_cond_signal(&share_work);
    else if (share_helpers < share_limit) share_start_helper();
    pthread_mutex_unlock(&share_lock);
    return part;
}

/* Takes up to `capacity` requests from the back of the queue, for the submitter to run. */
static int share_take_back(struct kq_aio_backend *b, struct kq_aio_op *out, int capacity) {
    pthread_mutex_lock(&share_lock);
    int n = 0;
    while (n < capacity && b->share_count > 0) {
        b->share_count--;
        out[n++] = b->share_ops[(b->share_head + b->share_count) % b->share_capacity];
    }
    if (n > 0) atomic_fetch_sub_explicit(&share_queued, (unsigned)n, memory_order_relaxed);
    pthread_mutex_unlock(&share_lock);
    return n;
}

/* A queued request leaves the queue, completed with ECANCELED; -ENOENT when not queued. */
static int share_cancel(struct kq_aio_backend *b, uint64_t tag) {
    pthread_mutex_lock(&share_lock);
    int result = -ENOENT;
    for (unsigned i = 0; i < b->share_count; i++) {
        unsigned at = (b->share_head + i) % b->share_capacity;
        if (b->share_ops[at].tag != tag) continue;
        b->share_count--;
        b->share_ops[at] = b->share_ops[(b->share_head + b->share_count) % b->share_capacity];
        atomic_fetch_sub_explicit(&share_queued, 1, memory_order_relaxed);
        struct kq_aio_completion cancelled = {.tag = tag, .result = -ECANCELED};
        share_complete(b, &cancelled, 1);
        result = 0;
        break;
    }
    pthread_mutex_unlock(&share_lock);
    return result;
}

/* Before a backend is freed or kept idle: off the ready list, and no helper still holds one of
 * its requests (a helper stashes, signals, then drops its count under share_lock). */
static void share_forget(struct kq_aio_backend *b) {
    for (;;) {
        pthread_mutex_lock(&share_lock);
        int busy = b->share_busy;
        if (busy == 0) share_unlist(b);
        pthread_mutex_unlock(&share_lock);
        if (busy == 0) return;
        sched_yield();
    }
}

/* Runs requests taken back from the queue in this thread: through the ring (inline), or for
 * the pool backend by the same calls a helper makes. What the ring refuses goes back to the
 * helpers. */
static void share_run(struct kq_aio_backend *b, const struct kq_aio_op *mine, int k) {
    if (b->kind != KQ_AIO_BACKEND_IO_URING) {
        struct kq_aio_completion results[SHARE_CHUNK];
        for (int i = 0; i < k; i++) {
            results[i].tag = mine[i].tag;
            results[i].result = share_perform(&mine[i], NULL);
        }
        share_complete(b, results, k);
        return;
    }
    b->inflight -= k; /* counted again by the ring */
    int r = uring_submit_run(b, mine, k, NULL);
    if (r < 0) r = 0;
    /* The ring refused the rest: back to the helpers (the queue has the room). */
    if (r < k) share_put_back(b, &mine[r], k - r);
}

int kq_aio_backend_shared(struct kq_aio_backend *b) {
    pthread_mutex_lock(&share_lock);
    int queued = (int)b->share_count;
    pthread_mutex_unlock(&share_lock);
    return queued;
}

/* The submitter, about to wait for completions, runs queued requests itself: whatever the
 * split at submission was, no request waits in the queue while a thread of ours waits. */
int kq_aio_backend_assist(struct kq_aio_backend *b) {
    struct kq_aio_op mine[SHARE_CHUNK];
    int k = share_take_back(b, mine, SHARE_CHUNK);
    if (k > 0) share_run(b, mine, k);
    return k;
}

/* Whether a submission of `n` is offered to the helpers. */
static int share_wanted(struct kq_aio_backend *b, int n) {
    return n >= SHARE_MIN_SUBMISSION && n + b->inflight >= SHARE_MIN_BATCH;
}

/* ---- the interface ------------------------------------------------------------------- */

int kq_aio_backend_default_kind(void) {
    const char *forced = getenv("KQUEUE_AIO_BACKEND");
    if (forced != NULL) {
        if (strcmp(forced, "threads") == 0) return KQ_AIO_BACKEND_THREADS;
        if (strcmp(forced, "io_uring") == 0) return KQ_AIO_BACKEND_IO_URING;
    }
    return KQ_AIO_BACKEND_AUTO;
}

/* ---- idle rings ----------------------------------------------------------------------- */

/* Destroying a ring makes the kernel queue task work, with TWA_SIGNAL, to every thread that
 * ever submitted to it (io_ring_exit_work removing the threads' io_uring contexts), which
 * ends such a thread's epoll_wait with EINTR. So a closed kqueue's ring, drained, is kept for
 * the next kqueue instead of being destroyed: at most IDLE_RINGS of them (each an io_uring
 * and its eventfd); past that a ring is destroyed. A fork child closes its copies. */
#define IDLE_RINGS 8
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kq_aio_backend *idle_rings[IDLE_RINGS];
static int idle_count;
static int idle_fork_hook;

static void idle_fork_child(void) {
    pthread_mutex_init(&idle_lock, NULL);
    for (int i = 0; i < idle_count; i++) {
        kq_shim_real_close(idle_rings[i]->ring_fd); /* its mappings are not in the child */
        kq_shim_real_close(idle_rings[i]->event_fd);
        idle_rings[i] = NULL; /* the memory stays: another thread of the parent may have held it */
    }
    idle_count = 0;
}

static struct kq_aio_backend *take_idle_ring(void) {
    pthread_mutex_lock(&idle_lock);
    struct kq_aio_backend *b = idle_count > 0 ? idle_rings[--idle_count] : NULL;
    pthread_mutex_unlock(&idle_lock);
    if (b != NULL) kq_aio_backend_acknowledge(b);
    return b;
}

/* Keeps a drained ring; 0 when the cache is full (the caller destroys it). */
static int keep_idle_ring(struct kq_aio_backend *b) {
    pthread_mutex_lock(&idle_lock);
    int kept = 0;
    if (!idle_fork_hook) idle_fork_hook = pthread_atfork(NULL, NULL, idle_fork_child) == 0;
    if (idle_fork_hook && idle_count < IDLE_RINGS) {
        idle_rings[idle_count++] = b;
        kept = 1;
    }
    pthread_mutex_unlock(&idle_lock);
    return kept;
}

int kq_aio_backend_idle_rings(void) {
    pthread_mutex_lock(&idle_lock);
    int n = idle_count;
    pthread_mutex_unlock(&idle_lock);
    return n;
}

struct kq_aio_backend *kq_aio_backend_open(int kind, int *error) {
    if (kind == KQ_AIO_BACKEND_AUTO) kind = kq_aio_backend_default_kind();
    if (kind != KQ_AIO_BACKEND_THREADS) {
        struct kq_aio_backend *idle = take_idle_ring();
        if (idle != NULL) return idle;
    }
    struct kq_aio_backend *b = calloc(1, sizeof *b);
    if (b == NULL) {
        *error = ENOMEM;
        return NULL;
    }
    b->ring_fd = -1;
    pthread_mutex_init(&b->done_lock, NULL);
    b->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->event_fd < 0) {
        *error = errno;
        pthread_mutex_destroy(&b->done_lock);
        free(b);
        return NULL;
    }
    if (kind != KQ_AIO_BACKEND_THREADS) {
        int r = uring_open(b);
        if (r == 0) {
            b->kind = KQ_AIO_BACKEND_IO_URING;
            return b;
        }
        if (kind == KQ_AIO_BACKEND_IO_URING) {
            /* Forced: no fallback, so that a test of this path cannot pass on the other. */
            *error = -r;
            kq_shim_real_close(b->event_fd);
            pthread_mutex_destroy(&b->done_lock);
            free(b);
            return NULL;
        }
    }
    b->kind = KQ_AIO_BACKEND_THREADS;
    return b;
}

int kq_aio_backend_kind(const struct kq_aio_backend *b) { return b->kind; }
int kq_aio_backend_event_fd(const struct kq_aio_backend *b) { return b->event_fd; }
int kq_aio_backend_ring_fd(const struct kq_aio_backend *b) { return b->ring_fd; }
int64_t kq_aio_backend_inflight(const struct kq_aio_backend *b) { return b->inflight; }

int kq_aio_backend_submit(struct kq_aio_backend *b, const struct kq_aio_op *ops, int count) {
    if (count <= 0) return 0;
    return b->kind == KQ_AIO_BACKEND_IO_URING ? uring_submit(b, ops, count) : threads_submit(b, ops, count);
}

void kq_aio_backend_acknowledge(struct kq_aio_backend *b) {
    uint64_t count;
    while (read(b->event_fd, &count, sizeof count) < 0 && errno == EINTR) {}
    /* After the read: a completion stashed before this store skipped its write, and the reap
     * that follows takes it; one stashed after writes again. (Before the read, a write the
     * read then consumed would leave the flag set with nothing to report: a lost wakeup.) */
    atomic_store(&b->signalled, 0);
}

int kq_aio_backend_reap(struct kq_aio_backend *b, struct kq_aio_completion *out, int capacity) {
    int n = 0;
    pthread_mutex_lock(&b->done_lock);
    if (b->done_count > 0) {
        n = b->done_count < (size_t)capacity ? (int)b->done_count : capacity;
        memcpy(out, b->done, (size_t)n * sizeof *out);
        memmove(b->done, b->done + n, (b->done_count - (size_t)n) * sizeof *out);
        b->done_count -= (size_t)n;
    }
    pthread_mutex_unlock(&b->done_lock);
    if (b->kind == KQ_AIO_BACKEND_IO_URING) {
        unsigned head = atomic_load_explicit(b->cq_head, memory_order_relaxed);
        unsigned tail = atomic_load_explicit(b->cq_tail, memory_order_acquire);
        while (head != tail && n < capacity) {
            struct io_uring_cqe *cqe = &b->cqes[head & *b->cq_mask];
            head++;
            if (cqe->user_data == CANCEL_TAG) continue; /* a cancel nobody waits for */
            out[n].tag = cqe->user_data;
            out[n].result = cqe->res;
            n++;
        }
        atomic_store_explicit(b->cq_head, head, memory_order_release);
    }
    b->inflight -= n;
    return n;
}

int kq_aio_backend_cancel(struct kq_aio_backend *b, uint64_t tag) {
    /* A request still queued for the helpers; a helper's running one is not cancelled (the
     * ring and the pool then answer -ENOENT, and the engine waits for its end). */
    if (share_cancel(b, tag) == 0) return 0;
    /* An io_uring backend hands retries of pollable descriptors to the pool. */
    int result = pool_cancel(b, tag);
    if (result != -ENOENT || b->kind != KQ_AIO_BACKEND_IO_URING) return result;
    return uring_cancel(b, tag);
}

int kq_aio_backend_wait(struct kq_aio_backend *b) {
    /* Both kinds signal the eventfd on every completion, and a reap reads it first. */
    struct pollfd pfd = {.fd = b->event_fd, .events = POLLIN};
    if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return -errno;
    return 0;
}

void kq_aio_backend_close(struct kq_aio_backend *b) {
    if (b == NULL) return;
    /* A worker stashes a completion and writes the eventfd in one pool_lock section, which
     * also drops its count: once that count is 0 under the lock, no worker touches `b`. */
    for (;;) {
        pthread_mutex_lock(&pool_lock);
        int busy = b->pool_jobs;
        pthread_mutex_unlock(&pool_lock);
        if (busy == 0) break;
        sched_yield();
    }
    share_forget(b);
    if (b->kind == KQ_AIO_BACKEND_IO_URING) fixed_release(b);
    if (b->kind == KQ_AIO_BACKEND_IO_URING && b->inflight == 0 && b->pool_jobs == 0 && b->done_count == 0 &&
        b->share_count == 0 &&
        atomic_load_explicit(b->sq_head, memory_order_acquire) == atomic_load_explicit(b->sq_tail, memory_order_relaxed) &&
        atomic_load_explicit(b->cq_head, memory_order_relaxed) == atomic_load_explicit(b->cq_tail, memory_order_acquire) &&
        keep_idle_ring(b))
        return;
    if (b->ring_fd >= 0) {
        uring_unmap(b);
        kq_shim_real_close(b->ring_fd);
    }
    kq_shim_real_close(b->event_fd);
    pthread_mutex_destroy(&b->done_lock);
    free(b->done);
    free(b->share_ops);
    free(b);
}

/* ---- the C ABI's completion hook ------------------------------------------------------ */

static _Atomic(kq_aio_completion_hook) completion_hook;

void kq_aio_set_completion_hook(kq_aio_completion_hook hook) {
    atomic_store_explicit(&completion_hook, hook, memory_order_release);
}

void kq_aio_call_completion_hook(void *token, int error, int64_t status) {
    kq_aio_completion_hook hook = atomic_load_explicit(&completion_hook, memory_order_acquire);
    if (hook != NULL) hook(token, error, status);
}
