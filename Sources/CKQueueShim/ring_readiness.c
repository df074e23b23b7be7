/*
 * The io_uring readiness backend (docs/ARCHITECTURE.md, "The io_uring backend"): an epoll
 * interface (add, modify, remove a descriptor's interest with a 64-bit tag; wait; take
 * reports as struct epoll_event) kept by IORING_OP_POLL_ADD requests in a ring of the
 * kqueue's own, so the engine's scan is the same on both backends.
 *
 *   level-triggered interest   a one-shot poll, armed again after each report (by the next
 *                              submission: a ready file completes at once, at the tail of
 *                              the completion queue, as epoll's level list puts it back at
 *                              the tail of its ready list)
 *   EPOLLET                    a multishot poll (IORING_POLL_ADD_MULTI: one completion per
 *                              wakeup, which is epoll's edge)
 *   modify                     IORING_POLL_UPDATE_EVENTS on an armed poll of the same kind
 *                              (the kernel polls the file again, like EPOLL_CTL_MOD), else a
 *                              cancel and a new poll
 *   remove                     IORING_OP_POLL_REMOVE, submitted at once: a pending poll holds
 *                              a reference to the file, which must not outlive close(2); a poll
 *                              in the middle of its completion answers EALREADY and stays, so
 *                              that answer is met with IORING_OP_ASYNC_CANCEL
 *   epoll's ready list         the completions of one registration in one take are one report
 *                              (masks joined); an overflowed completion queue is flushed by
 *                              the next enter, a poll's included
 *
 * A descriptor's interest is kept by up to two polls, one for reading (EPOLLIN, RDHUP, PRI)
 * and one for writing (EPOLLOUT): a one-shot poll completes with what is ready at that
 * moment, so one poll for both would report a writable socket and miss the data that comes
 * after, until the next wait (epoll reports both, polled at the wait).
 *
 * Changes are written to the submission queue and go to the kernel with the next wait, in
 * one io_uring_enter (IORING_ENTER_GETEVENTS, the timeout through IORING_ENTER_EXT_ARG).
 * Each poll's user_data is (arm sequence << 32 | descriptor): a completion of an earlier arm
 * (cancelled, replaced) is recognised and dropped; the engine's tag stays in the table.
 *
 * Raw system calls, no liburing: the deployable front gains no run-time dependency. No
 * IORING_SETUP_SINGLE_ISSUER / DEFER_TASKRUN: several threads submit and wait on one kqueue,
 * and a poll armed by one thread must complete while another waits (task work posted with
 * TWA_SIGNAL to the arming thread, or the ring's fallback worker once that thread exited).
 *
 * Every call except kq_shim_ring_enter is made with the owning kqueue's lock held: the
 * submission and completion queues then have one producer and one consumer each.
 */
#define _GNU_SOURCE
#include "CKQueueShim.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* user_data of the ring's own control requests (removals, updates, no-ops): dropped. */
#define CONTROL_TAG UINT64_MAX
/* user_data of a poll: (arm sequence << 32) | (half << 31) | descriptor (30 bits of sequence
 * are compared); with BYTES_BIT, the SIOCINQ linked after that arm; with REMOVE_BIT, the
 * removal of that arm (with both, its update): their success posts nothing, a failure is
 * answered (EALREADY). */
#define DESCRIPTOR_MASK 0x7fffffffull
#define HALF_SHIFT 31
#define SEQUENCE_MASK 0x3fffffffu
#define BYTES_BIT (1ull << 63)
#define REMOVE_BIT (1ull << 62)
#define UPDATE_BITS (BYTES_BIT | REMOVE_BIT)
/* include/uapi/linux/io_uring.h (6.7): a socket's SIOCINQ as an IORING_OP_URING_CMD. */
#define KQ_SOCKET_URING_OP_SIOCINQ 0
/* The interest bits a poll request takes (behaviour bits stay out of poll32_events). */
#define POLL_BITS ((uint32_t)~(EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE | EPOLLWAKEUP))
#define WRITE_BITS ((uint32_t)(EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND))

enum { READ_HALF = 0, WRITE_HALF = 1 };
enum { IDLE = 0, ARMED, ARM_PENDING };

struct half {
    uint32_t sequence; /* the live arm's number (upper half of user_data) */
    uint8_t state;
    uint8_t multishot; /* the live arm is a multishot poll */
};

struct registration {
    uint64_t tag;    /* the engine's tag, reported as epoll_data */
    uint32_t events; /* epoll interest, EPOLLET included */
    uint8_t registered;
    /* A TCP socket: a one-shot read poll is linked to SIOCINQ, READ's byte count (kept until
     * the socket says it cannot, EOPNOTSUPP, as a reused number's other file would). */
    uint8_t count_bytes;
    struct half half[2];
    int64_t bytes;        /* the count taken with the last report */
    uint32_t bytes_taken; /* the take it was taken in (kq_ring.takes) */
    uint32_t report_take; /* the take whose report `report` is (kq_ring.takes) */
    int report;           /* its index in that take's output */
};

struct kq_ring {
    int fd;
    void *ring_map;
    size_t ring_map_size;
    struct io_uring_sqe *sqes;
    size_t sqes_size;
    unsigned sq_entries;
    _Atomic unsigned *sq_head, *sq_tail, *cq_head, *cq_tail, *sq_flags;
    unsigned *sq_mask, *cq_mask;
    struct io_uring_cqe *cqes;
    unsigned sq_local_tail; /* SQEs written; published to *sq_tail before each enter */

    struct registration *table; /* indexed by descriptor number */
    size_t table_size;
    unsigned *to_arm;           /* (descriptor << 1 | half) in ARM_PENDING, in order */
    size_t to_arm_count, to_arm_capacity;
    uint32_t takes;             /* numbers the takes, for registration.bytes_taken */
};

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned complete, unsigned flags, void *arg, size_t size) {
    return (int)syscall(__NR_io_uring_enter, fd, submit, complete, flags, arg, size);
}

static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
    return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

static void ring_unmap(struct kq_ring *r) {
    if (r->sqes != NULL && r->sqes != MAP_FAILED) munmap(r->sqes, r->sqes_size);
    if (r->ring_map != NULL && r->ring_map != MAP_FAILED) munmap(r->ring_map, r->ring_map_size);
    r->sqes = NULL;
    r->ring_map = NULL;
}

/* The opcodes and features the backend needs, known to this kernel. */
static int ring_is_complete(int fd, const struct io_uring_params *p) {
    unsigned needed_features = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
    if ((p->features & needed_features) != needed_features) return 0;
    size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = calloc(1, size);
    if (probe == NULL) return 0;
    int ok = sys_register(fd, IORING_REGISTER_PROBE, probe, 256) == 0;
    static const int needed[] = {IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_ASYNC_CANCEL, IORING_OP_NOP};
    for (size_t i = 0; ok && i < sizeof needed / sizeof needed[0]; i++) {
        ok = needed[i] <= probe->last_op && (probe->ops[needed[i]].flags & IO_URING_OP_SUPPORTED);
    }
    free(probe);
    return ok;
}

int kq_shim_ring_open(unsigned entries, struct kq_ring **out) {
    struct kq_ring *r = calloc(1, sizeof *r);
    if (r == NULL) return -ENOMEM;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* SUBMIT_ALL (5.18): one bad entry does not hold back the rest of the batch. A large
     * completion queue: multishot polls of a busy kqueue post many entries per wait. */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = entries * 8;
    int fd = sys_setup(entries, &p);
    if (fd < 0) {
        int error = errno;
        free(r);
        return -error;
    }
    if (!ring_is_complete(fd, &p)) {
        kq_shim_real_close(fd);
        free(r);
        return -ENOSYS;
    }
    r->fd = fd;
    r->sq_entries = p.sq_entries;
    r->ring_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (cq_size > r->ring_map_size) r->ring_map_size = cq_size;
    r->ring_map = mmap(NULL, r->ring_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                       IORING_OFF_SQ_RING);
    r->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = r->ring_map == MAP_FAILED ? MAP_FAILED
                                        : mmap(NULL, r->sqes_size, PROT_READ | PROT_WRITE,
                                               MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (r->ring_map == MAP_FAILED || r->sqes == MAP_FAILED) {
        int error = errno;
        ring_unmap(r);
        kq_shim_real_close(fd);
        free(r);
        return -error;
    }
    /* A fork child never sees the ring (SPEC.md 2: no kqueue survives fork). */
    madvise(r->ring_map, r->ring_map_size, MADV_DONTFORK);
    madvise(r->sqes, r->sqes_size, MADV_DONTFORK);
    char *base = r->ring_map;
    r->sq_head = (_Atomic unsigned *)(void *)(base + p.sq_off.head);
    r->sq_tail = (_Atomic unsigned *)(void *)(base + p.sq_off.tail);
    r->sq_mask = (unsigned *)(void *)(base + p.sq_off.ring_mask);
    r->sq_flags = (_Atomic unsigned *)(void *)(base + p.sq_off.flags);
    r->cq_head = (_Atomic unsigned *)(void *)(base + p.cq_off.head);
    r->cq_tail = (_Atomic unsigned *)(void *)(base + p.cq_off.tail);
    r->cq_mask = (unsigned *)(void *)(base + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(void *)(base + p.cq_off.cqes);
    unsigned *array = (unsigned *)(void *)(base + p.sq_off.array);
    for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i; /* identity, set once */
    r->sq_local_tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
    *out = r;
    return 0;
}

int kq_shim_ring_fd(const struct kq_ring *r) { return r->fd; }

void kq_shim_ring_close(struct kq_ring *r) {
    if (r == NULL) return;
    ring_unmap(r);
    if (r->fd >= 0) kq_shim_real_close(r->fd); /* the kernel cancels every pending poll */
    free(r->table);
    free(r->to_arm);
    free(r);
}

/* ---- submission ---------------------------------------------------------------------- */

/* Completions wait in the kernel's overflow list (the completion queue was full): only an
 * io_uring_enter with IORING_ENTER_GETEVENTS moves them to the queue. */
static int overflowed(const struct kq_ring *r) {
    return (atomic_load_explicit(r->sq_flags, memory_order_acquire) & IORING_SQ_CQ_OVERFLOW) != 0;
}

/* Publishes written SQEs and hands them to the kernel without waiting (flushing overflowed
 * completions: GETEVENTS with no minimum does not wait). */
static int submit_now(struct kq_ring *r) {
    atomic_store_explicit(r->sq_tail, r->sq_local_tail, memory_order_release);
    for (;;) {
        unsigned flags = overflowed(r) ? IORING_ENTER_GETEVENTS : 0;
        int n = sys_enter(r->fd, r->sq_entries, 0, flags, NULL, 0);
        if (n >= 0) return 0;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EBUSY) return 0; /* left in the queue for the next enter */
        return -errno;
    }
}

/* A free SQE, submitting what is queued when the queue is full. */
static struct io_uring_sqe *next_sqe(struct kq_ring *r) {
    unsigned head = atomic_load_explicit(r->sq_head, memory_order_acquire);
    if (r->sq_local_tail - head >= r->sq_entries) {
        submit_now(r);
        head = atomic_load_explicit(r->sq_head, memory_order_acquire);
        if (r->sq_local_tail - head >= r->sq_entries) return NULL;
    }
    struct io_uring_sqe *sqe = &r->sqes[r->sq_local_tail & *r->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    r->sq_local_tail++;
    return sqe;
}

static uint64_t user_data(int fd, int half, uint32_t sequence) {
    return (uint64_t)(sequence & SEQUENCE_MASK) << 32 | (uint64_t)half << HALF_SHIFT | (uint32_t)fd;
}

/* A half's share of the interest, behaviour bits (EPOLLET) kept. */
static uint32_t half_events(uint32_t events, int half) {
    uint32_t behaviour = events & ~POLL_BITS;
    return behaviour | (half == WRITE_HALF ? events & WRITE_BITS : events & POLL_BITS & ~WRITE_BITS);
}

/* Interest beyond hang-up and error (which every poll reports anyway): worth a poll. */
static int has_interest(uint32_t events) { return (events & POLL_BITS & ~(uint32_t)(EPOLLHUP | EPOLLERR)) != 0; }

static int write_arm(struct kq_ring *r, int fd, int half) {
    struct registration *g = &r->table[fd];
    struct half *h = &g->half[half];
    uint32_t events = half_events(g->events, half);
    int multishot = (events & EPOLLET) != 0;
    /* READ's byte count rides the wait: SIOCINQ linked after a one-shot read poll (a
     * multishot poll cannot head a link). Both entries go in one submission. */
    int link = half == READ_HALF && !multishot && g->count_bytes;
    if (link) {
        unsigned head = atomic_load_explicit(r->sq_head, memory_order_acquire);
        if (r->sq_local_tail - head + 2 > r->sq_entries) submit_now(r);
    }
    struct io_uring_sqe *sqe = next_sqe(r);
    if (sqe == NULL) return -EBUSY;
    h->sequence++;
    h->multishot = (uint8_t)multishot;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->poll32_events = events & POLL_BITS;
    sqe->len = multishot ? IORING_POLL_ADD_MULTI : 0;
    sqe->user_data = user_data(fd, half, h->sequence);
    h->state = ARMED;
    if (link) {
        struct io_uring_sqe *count = next_sqe(r);
        if (count != NULL) {
            sqe->flags |= IOSQE_IO_LINK;
            count->opcode = IORING_OP_URING_CMD;
            count->fd = fd;
            count->cmd_op = KQ_SOCKET_URING_OP_SIOCINQ;
            count->user_data = BYTES_BIT | user_data(fd, half, h->sequence);
        }
    }
    return 0;
}

/* Cancels the armed poll of a half (its completion, -ECANCELED, is dropped as stale). */
static int write_remove(struct kq_ring *r, int fd, int half) {
    struct half *h = &r->table[fd].half[half];
    struct io_uring_sqe *sqe = next_sqe(r);
    if (sqe == NULL) return -EBUSY;
    sqe->opcode = IORING_OP_POLL_REMOVE;
    sqe->fd = -1;
    sqe->addr = user_data(fd, half, h->sequence);
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = REMOVE_BIT | sqe->addr; /* a failure (EALREADY) is answered at the take */
    h->sequence++;
    h->state = IDLE;
    return 0;
}

/* New interest for an armed poll of the same kind: the kernel polls the file again. If the
 * poll completed meanwhile (ENOENT, dropped), its completion re-arms it with this interest. */
static int write_update(struct kq_ring *r, int fd, int half) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (sqe == NULL) return -EBUSY;
    sqe->opcode = IORING_OP_POLL_REMOVE;
    sqe->fd = -1;
    sqe->addr = user_data(fd, half, r->table[fd].half[half].sequence);
    sqe->len = IORING_POLL_UPDATE_EVENTS;
    sqe->poll32_events = half_events(r->table[fd].events, half) & POLL_BITS;
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = UPDATE_BITS | sqe->addr; /* a failure (EALREADY) is answered at the take */
    return 0;
}

static int queue_arm(struct kq_ring *r, int fd, int half);

/* Cancels the poll whose user_data is `target` by IORING_OP_ASYNC_CANCEL, which, unlike
 * IORING_OP_POLL_REMOVE, also takes a poll whose completion is under way: it marks the poll
 * cancelled and the completion's task work ends it. Its answer is dropped (ENOENT: the poll
 * ended meanwhile). */
static int write_cancel(struct kq_ring *r, uint64_t target) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (sqe == NULL) return -EBUSY;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = target;
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = CONTROL_TAG;
    return 0;
}

/* The answer of a removal or an update that failed (`data`: REMOVE_BIT or UPDATE_BITS with
 * the arm's user_data). EALREADY: the poll is in the middle of its completion (its task work
 * owns it) and stays armed: a removed poll would go on holding its file (a multishot one for
 * good), an update would leave the old interest. The poll is cancelled; an update's half is
 * armed anew with the interest it has now (the old arm's completions are dropped as stale).
 * ENOENT: the poll completed meanwhile (its completion re-arms it as the table says). Returns
 * 1 when it wrote a cancel, to submit. */
static int answer_control(struct kq_ring *r, uint64_t data, int32_t res) {
    if (res != -EALREADY) return 0;
    uint64_t target = data & ~UPDATE_BITS;
    if ((data & UPDATE_BITS) == UPDATE_BITS) {
        int fd = (int)(target & DESCRIPTOR_MASK), half = (int)(target >> HALF_SHIFT & 1);
        uint32_t sequence = (uint32_t)(target >> 32) & SEQUENCE_MASK;
        if ((size_t)fd >= r->table_size) return 0;
        struct registration *g = &r->table[fd];
        struct half *h = &g->half[half];
        if (!g->registered || h->state != ARMED || (h->sequence & SEQUENCE_MASK) != sequence) return 0;
        if (write_cancel(r, target) != 0) return 0;
        h->sequence++;
        h->state = IDLE;
        queue_arm(r, fd, half);
        return 1;
    }
    return write_cancel(r, target) == 0;
}

/* Answers the failed removals among the completions posted since `from` (a removal fails
 * inside the submission that carried it), before the caller goes on to close(2): the file is
 * let go. They are marked answered for the take. */
static void answer_posted_removals(struct kq_ring *r, unsigned from) {
    unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
    int answered = 0;
    for (unsigned i = from; i != tail; i++) {
        struct io_uring_cqe *cqe = &r->cqes[i & *r->cq_mask];
        if (cqe->user_data == CONTROL_TAG || !(cqe->user_data & REMOVE_BIT)) continue;
        answered |= answer_control(r, cqe->user_data, cqe->res);
        cqe->user_data = CONTROL_TAG;
    }
    if (answered) submit_now(r);
}

static int queue_arm(struct kq_ring *r, int fd, int half) {
    struct half *h = &r->table[fd].half[half];
    if (h->state == ARM_PENDING) return 0;
    if (r->to_arm_count == r->to_arm_capacity) {
        size_t capacity = r->to_arm_capacity ? r->to_arm_capacity * 2 : 64;
        unsigned *grown = realloc(r->to_arm, capacity * sizeof *grown);
        if (grown == NULL) return -ENOMEM;
        r->to_arm = grown;
        r->to_arm_capacity = capacity;
    }
    r->to_arm[r->to_arm_count++] = (unsigned)fd << 1 | (unsigned)half;
    h->state = ARM_PENDING;
    return 0;
}

static int grow_table(struct kq_ring *r, int fd) {
    if ((size_t)fd < r->table_size) return 0;
    size_t size = r->table_size ? r->table_size : 64;
    while (size <= (size_t)fd) size *= 2;
    struct registration *grown = realloc(r->table, size * sizeof *grown);
    if (grown == NULL) return -ENOMEM;
    memset(grown + r->table_size, 0, (size - r->table_size) * sizeof *grown);
    r->table = grown;
    r->table_size = size;
    return 0;
}

/* A half after its interest changed (EPOLL_CTL_MOD). */
static int modify_half(struct kq_ring *r, int fd, int half, int was_multishot) {
    struct half *h = &r->table[fd].half[half];
    uint32_t events = half_events(r->table[fd].events, half);
    if (h->state != ARMED) return has_interest(events) ? queue_arm(r, fd, half) : 0;
    if (!has_interest(events)) return write_remove(r, fd, half);
    if (was_multishot == ((events & EPOLLET) != 0)) return write_update(r, fd, half);
    int error = write_remove(r, fd, half); /* another kind of poll: cancel, then arm anew */
    return error ? error : queue_arm(r, fd, half);
}

int kq_shim_ring_ctl(struct kq_ring *r, int op, int fd, uint32_t events, uint64_t tag) {
    if (fd < 0) return -EBADF;
    int error = grow_table(r, fd);
    if (error) return error;
    struct registration *g = &r->table[fd];
    switch (op) {
    case EPOLL_CTL_ADD:
        if (g->registered) return -EEXIST;
        g->registered = 1;
        g->tag = tag;
        g->events = events;
        for (int half = READ_HALF; half <= WRITE_HALF && !error; half++) {
            g->half[half].state = IDLE;
            if (has_interest(half_events(events, half))) error = queue_arm(r, fd, half);
        }
        return error;
    case EPOLL_CTL_MOD:
        if (!g->registered) return -ENOENT;
        g->tag = tag;
        g->events = events;
        for (int half = READ_HALF; half <= WRITE_HALF && !error; half++) {
            error = modify_half(r, fd, half, g->half[half].multishot);
        }
        return error;
    case EPOLL_CTL_DEL: {
        if (!g->registered) return -ENOENT;
        int armed = 0;
        for (int half = READ_HALF; half <= WRITE_HALF; half++) {
            if (g->half[half].state == ARMED) {
                armed = 1;
                if (!error) error = write_remove(r, fd, half);
            }
            g->half[half].state = IDLE;
            g->half[half].sequence++; /* any completion still in the queue is stale */
        }
        g->registered = 0;
        if (armed && !error) {
            /* The file is let go before close(2) goes on; a removal that met the poll in the
             * middle of its completion (EALREADY) is answered with a cancel at once. */
            unsigned from = atomic_load_explicit(r->cq_tail, memory_order_acquire);
            error = submit_now(r);
            if (!error) answer_posted_removals(r, from);
        }
        return error;
    }
    default:
        return -EINVAL;
    }
}

int kq_shim_ring_prepare(struct kq_ring *r) {
    for (size_t i = 0; i < r->to_arm_count; i++) {
        int fd = (int)(r->to_arm[i] >> 1), half = (int)(r->to_arm[i] & 1);
        if ((size_t)fd >= r->table_size || r->table[fd].half[half].state != ARM_PENDING) continue;
        if (!r->table[fd].registered || !has_interest(half_events(r->table[fd].events, half))) {
            r->table[fd].half[half].state = IDLE; /* nothing to wait for (every knote disabled) */
            continue;
        }
        int error = write_arm(r, fd, half);
        if (error) {
            /* No room even after a submission: keep the rest for the next prepare. */
            memmove(r->to_arm, r->to_arm + i, (r->to_arm_count - i) * sizeof *r->to_arm);
            r->to_arm_count -= i;
            atomic_store_explicit(r->sq_tail, r->sq_local_tail, memory_order_release);
            return error;
        }
    }
    r->to_arm_count = 0;
    atomic_store_explicit(r->sq_tail, r->sq_local_tail, memory_order_release);
    return 0;
}

int kq_shim_ring_pending(const struct kq_ring *r) {
    return r->to_arm_count > 0 || atomic_load_explicit(r->sq_head, memory_order_acquire) != r->sq_local_tail ||
           overflowed(r);
}

int kq_shim_ring_submit(struct kq_ring *r) {
    int error = kq_shim_ring_prepare(r);
    if (error && error != -EBUSY) return error;
    return submit_now(r);
}

int kq_shim_ring_wake_all(struct kq_ring *r) {
    /* A completion nobody takes any more: every wait, present and future, returns. */
    struct io_uring_sqe *sqe = next_sqe(r);
    if (sqe == NULL) return -EBUSY;
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = CONTROL_TAG;
    return submit_now(r);
}

/* ---- waiting (without the lock) and taking reports (with it) ----------------------------- */

int kq_shim_ring_enter(struct kq_ring *r, const struct timespec *timeout) {
    unsigned flags = 0, complete = 0;
    struct io_uring_getevents_arg arg;
    struct __kernel_timespec ts;
    void *argp = NULL;
    size_t size = 0;
    if (overflowed(r)) flags = IORING_ENTER_GETEVENTS; /* a poll ({0,0}) flushes the overflow */
    if (timeout == NULL || timeout->tv_sec != 0 || timeout->tv_nsec != 0) {
        flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
        complete = 1;
        memset(&arg, 0, sizeof arg);
        if (timeout != NULL) {
            ts.tv_sec = timeout->tv_sec;
            ts.tv_nsec = timeout->tv_nsec;
            arg.ts = (uint64_t)(uintptr_t)&ts;
        }
        argp = &arg;
        size = sizeof arg;
    }
    /* Exactly what is queued (published by the prepare of this or another thread): the
     * kernel skips the wait when it submits fewer entries than asked. A thread submitting at
     * the same time can make this one return at once: the caller looks again. */
    unsigned submit = atomic_load_explicit(r->sq_tail, memory_order_acquire) -
                      atomic_load_explicit(r->sq_head, memory_order_acquire);
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_acquire);
    unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
    int n = sys_enter(r->fd, submit, complete, flags, argp, size);
    /* Fewer submitted than asked (another thread took some): the kernel did not wait. */
    if (n >= 0 && (unsigned)n != submit) return 0;
    if (n > 0 && complete && head == tail && atomic_load_explicit(r->cq_tail, memory_order_acquire) == tail) {
        /* The call submitted, so the kernel returned the count and kept the wait's error: a
         * wait that began on an empty queue and ended with no completion posted was ended by
         * a signal (EINTR) or its timeout (ETIME: the caller tells them apart by the clock). */
        return timeout == NULL ? -EINTR : -ETIME;
    }
    if (n >= 0) return 0;
    if (errno == EAGAIN || errno == EBUSY) return 0;
    return -errno;
}

int kq_shim_ring_take(struct kq_ring *r, struct epoll_event *out, int capacity) {
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
    int written = 0, answered = 0;
    r->takes++;
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
        uint64_t data = cqe->user_data;
        if (data == CONTROL_TAG) continue;
        if (data & REMOVE_BIT) {
            answered |= answer_control(r, data, cqe->res);
            continue;
        }
        int fd = (int)(data & DESCRIPTOR_MASK);
        int half = (int)(data >> HALF_SHIFT & 1);
        uint32_t sequence = (uint32_t)(data >> 32) & SEQUENCE_MASK;
        if ((size_t)fd >= r->table_size) continue;
        struct registration *g = &r->table[fd];
        struct half *h = &g->half[half];
        if (data & BYTES_BIT) {
            /* The count linked after that arm's poll (which completed just before it). */
            if (cqe->res >= 0 && (h->sequence & SEQUENCE_MASK) == sequence) {
                g->bytes = cqe->res;
                g->bytes_taken = r->takes;
            } else if (cqe->res == -EOPNOTSUPP || cqe->res == -EINVAL || cqe->res == -ENOTSOCK) {
                g->count_bytes = 0; /* not a socket that can say: FIONREAD from now on */
            }
            continue;
        }
        if (!g->registered || h->state != ARMED || (h->sequence & SEQUENCE_MASK) != sequence) continue;
        int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
        if (cqe->res < 0) {
            /* The file went away under the poll (EBADF), or the kernel cancelled it: a cancel
             * is armed again, anything else leaves the half quiet, as epoll forgets a file. */
            if (!more) {
                h->state = IDLE;
                if (cqe->res == -ECANCELED) queue_arm(r, fd, half);
            }
            continue;
        }
        /* Completions of one registration in one take are one report, their masks joined
         * (epoll's one ready-list entry): a multishot poll posts one per wakeup (data, then
         * the EOF), and the scan returns a knote once per call, so a second report of it
         * would be skipped and its news (the EOF) lost. Joined even when the output is full. */
        int merge = g->report_take == r->takes && g->report < written && out[g->report].data.u64 == g->tag;
        if (!merge && written == capacity) break; /* full: the rest stays for the next take */
        if (!more) {
            h->state = IDLE;
            queue_arm(r, fd, half); /* level: ask again with the next wait; edge: re-arm */
        }
        if (merge) {
            out[g->report].events |= (uint32_t)cqe->res;
            continue;
        }
        out[written].events = (uint32_t)cqe->res;
        out[written].data.u64 = g->tag;
        g->report_take = r->takes;
        g->report = written;
        written++;
    }
    atomic_store_explicit(r->cq_head, head, memory_order_release);
    if (answered) submit_now(r); /* the cancels: a removed poll lets its file go */
    return written;
}

void kq_shim_ring_count_bytes(struct kq_ring *r, int fd) {
    if (fd >= 0 && grow_table(r, fd) == 0) r->table[fd].count_bytes = 1;
}

int kq_shim_ring_bytes(const struct kq_ring *r, int fd, int64_t *bytes) {
    if (fd < 0 || (size_t)fd >= r->table_size || r->table[fd].bytes_taken != r->takes) return 0;
    *bytes = r->table[fd].bytes;
    return 1;
}

int kq_shim_ring_probe(void) {
    struct kq_ring *r = NULL;
    int error = kq_shim_ring_open(4, &r);
    if (error) return -error;
    kq_shim_ring_close(r);
    return 0;
}
