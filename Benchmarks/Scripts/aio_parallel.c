/*
 * Ceilings of the ways to run AIORandomRead's reads on a second core (docs/BENCHMARKS.md,
 * "Asynchronous I/O"): 4 KiB random reads over a 256 MiB file in the page cache, no kqueue,
 * each mode against a plain pread loop measured in the same run.
 *
 *   pread2    two threads each running a pread loop (the machine's parallel ceiling)
 *   inline    the ring, RWF_NOWAIT batches completed inside io_uring_enter (today's backend)
 *   async     the ring, every read IOSQE_ASYNC (io-wq workers), reaped with GETEVENTS
 *   sqpoll    an IORING_SETUP_SQPOLL ring: the kernel's SQ thread issues the reads
 *   worker    one worker thread takes whole batches from a queue and preads them, one
 *             eventfd write per batch it finishes (the reworked thread pool)
 *   share     like worker, but the submitting thread also preads from the queue's tail until
 *             the queue is empty (both cores copy)
 *
 *   cc -O2 -I Sources/CKQueueShim/include Benchmarks/Scripts/aio_parallel.c -o /tmp/aio_par -lpthread
 *   /tmp/aio_par [DEPTH (64)] [SECONDS (1)] [MODE ...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static _Thread_local uint64_t state = 0x9E3779B97F4A7C15ULL;
static long long next_offset(void) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (long long)((state * 0x2545F4914F6CDD1DULL) % 65536) * 4096;
}

static int fd;
static double seconds = 1;
static int depth = 64;
static char *buffers;

/* ---- pread loops ---- */

static _Atomic int stop;
static void *pread_loop(void *out) {
    char *buffer = aligned_alloc(4096, 4096);
    long done = 0;
    state ^= (uint64_t)(uintptr_t)out;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++)
            if (pread(fd, buffer, 4096, next_offset()) != 4096) abort();
        done += 64;
    }
    *(long *)out = done;
    free(buffer);
    return NULL;
}

static double run_preads(int threads) {
    pthread_t t[2];
    long done[2] = {0, 0};
    atomic_store(&stop, 0);
    double start = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, pread_loop, &done[i]);
    while (now() - start < seconds) usleep(10000);
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    return (double)(done[0] + done[1]) / (now() - start);
}

/* ---- a raw ring ---- */

struct ring {
    int fd;
    struct io_uring_sqe *sqes;
    _Atomic unsigned *sq_head, *sq_tail, *cq_head, *cq_tail, *sq_flags;
    unsigned *sq_mask, *sq_array, *cq_mask;
    struct io_uring_cqe *cqes;
};

static int ring_open(struct ring *r, unsigned flags) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = 4096;
    p.sq_thread_idle = 100;
    r->fd = (int)syscall(__NR_io_uring_setup, 256, &p);
    if (r->fd < 0) return -errno;
    size_t size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (cq_size > size) size = cq_size;
    char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
    r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (m == MAP_FAILED || r->sqes == MAP_FAILED) return -ENOMEM;
    r->sq_head = (void *)(m + p.sq_off.head);
    r->sq_tail = (void *)(m + p.sq_off.tail);
    r->sq_flags = (void *)(m + p.sq_off.flags);
    r->sq_mask = (void *)(m + p.sq_off.ring_mask);
    r->sq_array = (void *)(m + p.sq_off.array);
    r->cq_head = (void *)(m + p.cq_off.head);
    r->cq_tail = (void *)(m + p.cq_off.tail);
    r->cq_mask = (void *)(m + p.cq_off.ring_mask);
    r->cqes = (void *)(m + p.cq_off.cqes);
    for (unsigned i = 0; i < p.sq_entries; i++) r->sq_array[i] = i;
    return 0;
}

static void ring_queue(struct ring *r, int i, int sqe_flags, int rw_flags) {
    unsigned tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
    struct io_uring_sqe *sqe = &r->sqes[tail & *r->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_READ;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)(buffers + 4096 * (size_t)i);
    sqe->len = 4096;
    sqe->off = (uint64_t)next_offset();
    sqe->user_data = (uint64_t)i;
    sqe->flags = (uint8_t)sqe_flags;
    sqe->rw_flags = rw_flags;
    atomic_store_explicit(r->sq_tail, tail + 1, memory_order_release);
}

static double run_ring(const char *mode) {
    struct ring r;
    int sqpoll = strcmp(mode, "sqpoll") == 0, async = strcmp(mode, "async") == 0;
    int e = ring_open(&r, sqpoll ? IORING_SETUP_SQPOLL : 0);
    if (e < 0) {
        fprintf(stderr, "%s: io_uring_setup: %s\n", mode, strerror(-e));
        return 0;
    }
    int sqe_flags = async ? IOSQE_ASYNC : 0, rw_flags = async || sqpoll ? 0 : RWF_NOWAIT;
    for (int i = 0; i < depth; i++) ring_queue(&r, i, sqe_flags, rw_flags);
    unsigned pending = (unsigned)depth;
    long done = 0;
    double start = now();
    while (now() - start < seconds) {
        if (sqpoll) {
            if (atomic_load(r.sq_flags) & IORING_SQ_NEED_WAKEUP)
                syscall(__NR_io_uring_enter, r.fd, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0);
            pending = 0;
        }
        unsigned head = atomic_load_explicit(r.cq_head, memory_order_relaxed);
        unsigned tail = atomic_load_explicit(r.cq_tail, memory_order_acquire);
        if (head == tail || pending > 0) {
            int n = (int)syscall(__NR_io_uring_enter, r.fd, pending, head == tail ? 1 : 0,
                                 IORING_ENTER_GETEVENTS, NULL, 0);
            if (n < 0 && errno != EINTR) abort();
            if (n > 0) pending -= (unsigned)n;
            tail = atomic_load_explicit(r.cq_tail, memory_order_acquire);
        }
        for (; head != tail; head++) {
            struct io_uring_cqe *c = &r.cqes[head & *r.cq_mask];
            if (c->res != 4096) {
                fprintf(stderr, "%s: res %d\n", mode, c->res);
                abort();
            }
            ring_queue(&r, (int)c->user_data, sqe_flags, rw_flags);
            pending++;
            done++;
        }
        atomic_store_explicit(r.cq_head, head, memory_order_release);
    }
    double rate = (double)done / (now() - start);
    close(r.fd); /* the memory leaks: a benchmark */
    return rate;
}

/* ---- a worker thread taking batches ---- */

#define QCAP 1024
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t work;
    int items[QCAP];
    int head, tail; /* [head, tail) modulo QCAP */
    int done[QCAP];
    int done_count;
    int event_fd;
    _Atomic int signalled;
    int quit;
};
static struct queue q = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

static void finish(int *mine, int n) {
    pthread_mutex_lock(&q.lock);
    memcpy(q.done + q.done_count, mine, (size_t)n * sizeof *mine);
    q.done_count += n;
    pthread_mutex_unlock(&q.lock);
    if (!atomic_exchange(&q.signalled, 1)) {
        uint64_t one = 1;
        write(q.event_fd, &one, sizeof one);
    }
}

static void *worker(void *unused) {
    (void)unused;
    int mine[QCAP];
    state ^= 0x1234567;
    pthread_mutex_lock(&q.lock);
    for (;;) {
        while (q.head == q.tail && !q.quit) pthread_cond_wait(&q.work, &q.lock);
        if (q.quit) break;
        /* A slice of the queue, not all of it: completions flow while the rest is read. */
        int n = 0;
        while (q.head != q.tail && n < 8) mine[n++] = q.items[q.head++ % QCAP];
        pthread_mutex_unlock(&q.lock);
        for (int k = 0; k < n; k++)
            if (pread(fd, buffers + 4096 * (size_t)mine[k], 4096, next_offset()) != 4096) abort();
        finish(mine, n);
        pthread_mutex_lock(&q.lock);
    }
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static double run_worker(int share) {
    q.event_fd = eventfd(0, EFD_CLOEXEC);
    q.head = q.tail = q.done_count = q.quit = 0;
    atomic_store(&q.signalled, 0);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    int ready[QCAP], n = depth;
    for (int i = 0; i < depth; i++) ready[i] = i;
    long done = 0;
    double start = now();
    while (now() - start < seconds) {
        /* submit */
        pthread_mutex_lock(&q.lock);
        for (int k = 0; k < n; k++) q.items[q.tail++ % QCAP] = ready[k];
        pthread_cond_signal(&q.work);
        pthread_mutex_unlock(&q.lock);
        int own = 0, mine[QCAP];
        if (share) {
            for (;;) {
                pthread_mutex_lock(&q.lock);
                int got = q.head != q.tail;
                if (got) mine[own] = q.items[--q.tail % QCAP];
                pthread_mutex_unlock(&q.lock);
                if (!got) break;
                if (pread(fd, buffers + 4096 * (size_t)mine[own], 4096, next_offset()) != 4096) abort();
                own++;
            }
        }
        /* reap: our own, then the worker's (waiting on the eventfd when there are none) */
        n = 0;
        for (int k = 0; k < own; k++) ready[n++] = mine[k];
        if (n == 0) {
            uint64_t v;
            read(q.event_fd, &v, sizeof v);
            atomic_store(&q.signalled, 0);
        }
        pthread_mutex_lock(&q.lock);
        memcpy(ready + n, q.done, (size_t)q.done_count * sizeof(int));
        n += q.done_count;
        q.done_count = 0;
        pthread_mutex_unlock(&q.lock);
        done += n;
    }
    double rate = (double)done / (now() - start);
    pthread_mutex_lock(&q.lock);
    q.quit = 1;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.lock);
    pthread_join(t, NULL);
    close(q.event_fd);
    return rate;
}

int main(int argc, char **argv) {
    depth = argc > 1 ? atoi(argv[1]) : 64;
    seconds = argc > 2 ? atof(argv[2]) : 1;
    if (depth < 1 || depth > 256) return 2;
    const char *path = "/tmp/kq-aio-parallel.dat";
    fd = open(path, O_RDWR | O_CREAT, 0644);
    static char chunk[1 << 20];
    for (long o = 0; o < 256L << 20; o += 1 << 20)
        if (pwrite(fd, chunk, sizeof chunk, o) != (ssize_t)sizeof chunk) return 1;
    for (int pass = 0; pass < 2; pass++)
        for (long o = 0; o < 256L << 20; o += 1 << 20)
            if (pread(fd, chunk, sizeof chunk, o) != (ssize_t)sizeof chunk) return 1;
    buffers = aligned_alloc(4096, 4096 * (size_t)depth);
    static const char *all[] = {"pread2", "inline", "async", "sqpoll", "worker", "share"};
    const char **modes = argc > 3 ? (const char **)argv + 3 : all;
    int count = argc > 3 ? argc - 3 : 6;
    for (int m = 0; m < count; m++) {
        double base = run_preads(1), rate;
        if (strcmp(modes[m], "pread2") == 0) rate = run_preads(2);
        else if (strcmp(modes[m], "worker") == 0) rate = run_worker(0);
        else if (strcmp(modes[m], "share") == 0) rate = run_worker(1);
        else rate = run_ring(modes[m]);
        printf("depth %d: %-7s %9.0f req/s, pread %9.0f req/s, ratio %.2f\n", depth, modes[m], rate, base,
               rate / base);
        fflush(stdout);
    }
    unlink(path);
    return 0;
}
