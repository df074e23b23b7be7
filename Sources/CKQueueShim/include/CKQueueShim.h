/*
 * Internal C shim for the KQueue engine: what Swift cannot import directly (variadic
 * calls such as ioctl and fcntl, syscalls without a glibc wrapper), and the hooks that let
 * the engine see close(2) and fork(2) the way a kernel kqueue does.
 *
 * Not a public API: nothing here is part of <sys/event.h>.
 */
#ifndef CKQUEUE_SHIM_H
#define CKQUEUE_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <time.h>
#include <poll.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Syscalls and variadic calls. Each returns -1 with errno set on failure. */
int kq_shim_epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                         const struct timespec *timeout);
int kq_shim_ioctl_int(int fd, unsigned long request, int *value);
int kq_shim_fcntl_int(int fd, int cmd, int arg);
int kq_shim_fcntl(int fd, int cmd);
int kq_shim_pidfd_open(pid_t pid, unsigned int flags);

/* EVFILT_SIGNAL (signals.c): start/stop observing a signal for one knote (reference
 * counted over all kqueues; returns 0 or an errno), the number of deliveries observed so far,
 * and the process-wide eventfd the handler writes (-1 before the first watch). */
int kq_shim_signal_watch(int sig);
void kq_shim_signal_unwatch(int sig);
uint64_t kq_shim_signal_count(int sig);
int kq_shim_signal_wake_fd(void);
/* The process-wide signalfd (never read) whose mask is the watched signals: readable while
 * one is pending, it wakes the kqueues when a blocked signal is generated (-1 before the first
 * watch). kq_shim_signal_observe_pending() then counts each watched signal pending and not yet
 * counted, and returns how many it counted. */
int kq_shim_signal_pending_fd(void);
int kq_shim_signal_observe_pending(void);
/* A wait that fails with EINTR because only EVFILT_SIGNAL's handler ran for a signal the
 * application ignores was not interrupted for the application: reset before each wait, ask
 * after an EINTR. */
void kq_shim_signal_interruptions_reset(void);
int kq_shim_signal_interruption_was_transparent(void);
/* Since the reset, the application's handler (or a default action) ran in this thread. */
int kq_shim_signal_application_handler_ran(void);
/* fork handlers: prepare takes the signal lock, the parent releases it, the child restores
 * the application's dispositions (no kqueue survives fork). */
void kq_shim_signal_fork_prepare(void);
void kq_shim_signal_fork_parent(void);
void kq_shim_signal_fork_child(void);

/* EVFILT_PROC's process connector (proc_connector.c). */
enum { KQ_PROC_EVENT_FORK = 1, KQ_PROC_EVENT_EXEC = 2, KQ_PROC_EVENT_EXIT = 3 };
struct kq_proc_event {
    int kind;   /* KQ_PROC_EVENT_* */
    int pid;    /* the new process (fork), the process that exec'd or exited */
    int parent; /* fork: the process that forked */
    int status; /* exit: the wait status (as from waitpid) */
};
/* A connector socket listening to process events, or -errno (EPERM without CAP_NET_ADMIN). */
int kq_shim_proc_connector_open(void);
/* Reads pending events (forks of processes, execs, exits) into `events`; returns how many.
 * Sets *overflowed when the socket lost events. */
int kq_shim_proc_connector_read(int fd, struct kq_proc_event *events, int capacity, int *overflowed);

/* The process names the connector reports (PROC_EVENT_COMM: at exec, the new program's name,
 * and at prctl(PR_SET_NAME) of a main thread), for `kq trace`. Returns how many were read. */
struct kq_proc_name {
    int pid;
    char name[17];
};
int kq_shim_proc_connector_read_names(int fd, struct kq_proc_name *names, int capacity);

/* EVFILT_PROC: 1 if the process behind `pidfd` has exited (the pidfd is readable), else 0. */
int kq_shim_pidfd_has_exited(int pidfd);

/* EVFILT_PROC: the wait status (as from waitpid) of the exited process `pid` behind `pidfd`,
 * without reaping it: waitid(P_PIDFD, WNOWAIT) for a child, else the exit code the kernel
 * shows in /proc/PID/stat while the process is a zombie, checked against the pidfd so that
 * a reused pid is never read, else (once someone reaped it) the status the kernel keeps in
 * the pidfd (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15+). Returns 0 and sets *status,
 * or -1 when it cannot be known (an older kernel, after a reap). */
int kq_shim_pidfd_exit_status(int pidfd, pid_t pid, int *status);
/* EVFILT_PROCDESC (procdesc.c): 0 and the pid behind a pidfd (-1 once reaped, 0 in another
 * pid namespace); EINVAL when `fd` is open but not a pidfd, EBADF when it is not open. */
int kq_shim_procdesc_pid(int fd, pid_t *pid);
/* Connections waiting on a listening TCP socket's accept queue (TCP_INFO tcpi_unacked), or -1. */
int kq_shim_tcp_accept_queue_length(int fd);
/* EVFILT_EMPTY: what TCP_INFO tells of a connection's sending side. Returns 0, or -1 with
 * errno (not a TCP socket). bytes_acked is 0 on a kernel that does not report it (< 4.1). */
struct kq_tcp_send_info {
    uint8_t state;        /* TCP_ESTABLISHED, TCP_FIN_WAIT1, ... (linux/tcp.h numbering) */
    uint32_t rtt_us;      /* smoothed round-trip time */
    uint64_t bytes_acked; /* data bytes the peer acknowledged so far (tcpi_bytes_acked) */
};
int kq_shim_tcp_send_info(int fd, struct kq_tcp_send_info *info);
/* EVFILT_FS: a fanotify group told of every mount attached to or detached from the caller's
 * mount namespace (FAN_REPORT_MNT, Linux 6.15+; needs CAP_SYS_ADMIN in the user namespace that
 * owns it: EPERM otherwise, EINVAL on older kernels). Returns the descriptor or -errno. */
int kq_shim_mount_events_open(void);
enum { KQ_MOUNT_ATTACHED = 1, KQ_MOUNT_DETACHED = 2, KQ_MOUNT_EVENTS_LOST = 4 };
/* Reads every queued mount event: the KQ_MOUNT_* bits of what was read (0 when none). */
int kq_shim_mount_events_read(int fd);
/* EVFILT_FS: the mount IDs of the caller's mount namespace, into ids[0..capacity). With
 * `unique`, listmount(2)'s 64-bit IDs, never reused (Linux 6.8+; ENOSYS before); else the
 * 32-bit IDs of /proc/self/mountinfo, read from `mountinfo_fd` (the kernel may reuse them).
 * Returns how many mounts there are (more than `capacity`: call again with room), or -errno. */
long kq_shim_mount_ids(int mountinfo_fd, int unique, uint64_t *ids, size_t capacity);
/* Connections waiting on a listening UNIX socket (sock_diag UNIX_DIAG_RQLEN), or -1. */
int kq_shim_unix_accept_queue_length(int fd);

/* malloc_trim(0): gives freed heap memory back to the system (after a large table went). */
void kq_shim_return_free_memory(void);

/* Calls close(2) itself, bypassing the interposer below (for the engine's own descriptors). */
int kq_shim_real_close(int fd);
/* Counts the descriptor numbers released through the interposers (close, dup2 and dup3 over an
 * open number, close_range): a number seen twice with the same count names the same file. */
unsigned long kq_shim_descriptor_epoch(void);
/* Counts the AIO rings a number is registered in (+1 or -1); -1 for a number too high to
 * track (the ring then keeps using the descriptor). */
int kq_shim_ring_file_count(int fd, int delta);
/* Unregisters the file of `fd` from every AIO ring (called by the interposers before the
 * number is released). */
void kq_aio_forget_ring_file(int fd);

/* The io_uring readiness backend (ring_readiness.c): an epoll interface kept by poll
 * requests in a ring of the kqueue's own. Each returns 0 or -errno unless said otherwise;
 * every call but kq_shim_ring_enter is made with the kqueue's lock held. */
struct kq_ring;
int kq_shim_ring_open(unsigned entries, struct kq_ring **out);
void kq_shim_ring_close(struct kq_ring *ring);
int kq_shim_ring_fd(const struct kq_ring *ring);
/* EPOLL_CTL_ADD / MOD / DEL with epoll's events word and a 64-bit tag. */
int kq_shim_ring_ctl(struct kq_ring *ring, int op, int fd, uint32_t events, uint64_t tag);
/* Writes the queued arms to the submission queue (the next enter submits them). */
int kq_shim_ring_prepare(struct kq_ring *ring);
/* 1 while written or queued requests have not reached the kernel. */
int kq_shim_ring_pending(const struct kq_ring *ring);
/* prepare, then submit without waiting. */
int kq_shim_ring_submit(struct kq_ring *ring);
/* Posts a completion nobody takes: every wait returns (the kqueue is closing). */
int kq_shim_ring_wake_all(struct kq_ring *ring);
/* Submits and waits for a completion: NULL forever, a zero timeout only submits. */
int kq_shim_ring_enter(struct kq_ring *ring, const struct timespec *timeout);
/* Moves completions to `out` as epoll reports (events, tag); returns how many. */
int kq_shim_ring_take(struct kq_ring *ring, struct epoll_event *out, int capacity);
/* A TCP socket: READ's byte count comes through the ring (SIOCINQ linked after the read
 * poll); kq_shim_ring_bytes gives the count taken with the last take's report, if any. */
void kq_shim_ring_count_bytes(struct kq_ring *ring, int fd);
int kq_shim_ring_bytes(const struct kq_ring *ring, int fd, int64_t *bytes);
/* io_uring_setup is allowed and complete here: 0, or the errno of the probe. */
int kq_shim_ring_probe(void);

/*
 * close(2) interposition. libkqueue.so (and any binary that links the KQueue module) defines
 * close, dup2, dup3 and close_range. Before the real call they tell the engine, through the
 * hook, that a watched descriptor number is going away, so that its knotes are removed as
 * FreeBSD's close() does (SPEC.md 2, "Descriptor lifetime"). Numbers that no kqueue watches
 * cost one relaxed atomic load.
 */
typedef void (*kq_shim_close_hook)(int fd);
void kq_shim_set_close_hook(kq_shim_close_hook hook);
/* Marks a descriptor number as watched by some kqueue: a later close() calls the hook. */
void kq_shim_mark_watched(int fd);
void kq_shim_clear_watched(int fd);
int kq_shim_is_watched(int fd);

/*
 * Socket errors. FreeBSD reports a socket's pending error in an EV_EOF event's fflags without
 * consuming it; on Linux reading SO_ERROR clears it. The engine reads it through
 * kq_shim_take_socket_error, which keeps the value; the getsockopt(SO_ERROR) interposer hands
 * it to the application afterwards, so the application still sees its error exactly once.
 */
int kq_shim_take_socket_error(int fd);
/* The error kept for `fd` (0 if none), cleared when `take` is set: what the application's
 * read, recv, write, send and connect get back (socket_errors.c). */
int kq_shim_kept_socket_error(int fd, int take);

/* EVFILT_EMPTY: the application's sends on a socket whose idle EV_CLEAR knote waits for one.
 * kq_shim_empty_arm marks `fd` (the next successful write, send, sendto or sendmsg on it then
 * writes the process-wide eventfd kq_shim_empty_wake_fd) and returns the socket's send count,
 * which kq_shim_empty_sends reads later (moved: a send came); -1 when `fd` has no slot. */
int kq_shim_empty_wake_fd(void);
int64_t kq_shim_empty_arm(int fd);
int64_t kq_shim_empty_sends(int fd);
void kq_shim_empty_sent(int fd);

/* shutdown(2) is interposed: true once the application shut down `fd`'s sending side
 * (SHUT_WR or SHUT_RDWR), which EVFILT_WRITE reports as EV_EOF (FreeBSD's SBS_CANTSENDMORE). */
int kq_shim_send_is_shut_down(int fd);

/*
 * EVFILT_AIO's I/O backends (aio_backend.c): io_uring, or a thread pool where io_uring is not
 * available or KQUEUE_AIO_BACKEND=threads. One per kqueue with requests; every call but the
 * pool's own is made under that kqueue's lock. Completions are signalled on the eventfd.
 */
enum { KQ_AIO_BACKEND_AUTO = 0, KQ_AIO_BACKEND_IO_URING = 1, KQ_AIO_BACKEND_THREADS = 2 };
enum {
    KQ_AIO_OP_READ = 1, KQ_AIO_OP_WRITE = 2, KQ_AIO_OP_READV = 3, KQ_AIO_OP_WRITEV = 4,
    KQ_AIO_OP_FSYNC = 5, KQ_AIO_OP_FDATASYNC = 6
};
struct kq_aio_op {
    uint64_t tag;    /* given back with the completion (below 2^63) */
    int opcode;      /* KQ_AIO_OP_* */
    int fd;
    void *buffer;    /* READ/WRITE: the bytes; READV/WRITEV: a struct iovec array */
    uint64_t length; /* READ/WRITE: bytes; READV/WRITEV: iovec count */
    int64_t offset;
    int attempt;     /* 0: first (io_uring: RWF_NOWAIT); 1: after EAGAIN from the first */
};
struct kq_aio_completion {
    uint64_t tag;
    int64_t result; /* bytes transferred, or -errno */
};
struct kq_aio_backend;
/* KQUEUE_AIO_BACKEND: "threads", "io_uring" or anything else (auto). */
int kq_aio_backend_default_kind(void);
/* A new backend of `kind` (AUTO: io_uring, else threads; IO_URING: io_uring or NULL). */
struct kq_aio_backend *kq_aio_backend_open(int kind, int *error);
int kq_aio_backend_kind(const struct kq_aio_backend *backend);
int kq_aio_backend_event_fd(const struct kq_aio_backend *backend);
/* The ring's descriptor (-1 for the thread pool). */
int kq_aio_backend_ring_fd(const struct kq_aio_backend *backend);
int64_t kq_aio_backend_inflight(const struct kq_aio_backend *backend);
/* Starts `count` requests: returns how many were taken (a prefix), or -errno if none. */
int kq_aio_backend_submit(struct kq_aio_backend *backend, const struct kq_aio_op *ops, int count);
/* Requests of this backend queued for the helper threads and not yet taken (a hint: helpers
 * take from the queue at any moment). */
int kq_aio_backend_shared(struct kq_aio_backend *backend);
/* Runs up to a chunk of the requests queued for the helpers in the calling thread (from the
 * back: helpers take from the front): how many. For a submitter that would otherwise wait. */
int kq_aio_backend_assist(struct kq_aio_backend *backend);
/* Reads the eventfd down to zero: called before a reap, so that a completion that comes after
 * the reap signals it again (aio_suspend polls it). */
void kq_aio_backend_acknowledge(struct kq_aio_backend *backend);
/* Takes up to `capacity` completions, never blocking. */
int kq_aio_backend_reap(struct kq_aio_backend *backend, struct kq_aio_completion *out, int capacity);
/* 0: cancelled (its completion, -ECANCELED, follows); -EALREADY: running, not cancelled;
 * -ENOENT: not in flight (done, or unknown). */
int kq_aio_backend_cancel(struct kq_aio_backend *backend, uint64_t tag);
/* Blocks until a completion may be ready to reap (or returns at once if some are). */
int kq_aio_backend_wait(struct kq_aio_backend *backend);
/* Frees a backend with nothing in flight: a ring is kept for the next kqueue (up to 8), since
 * destroying one interrupts the waits of the threads that submitted to it. */
void kq_aio_backend_close(struct kq_aio_backend *backend);
/* Drained rings kept for reuse. */
int kq_aio_backend_idle_rings(void);

/* A request as the C ABI (libkqueue.so's aio_read, lio_listio, ...) hands it to the engine:
 * the knote to register on the kqueue (filter 0: none) and the I/O (opcode 0: none, an
 * EVFILT_LIO marker completed later by the C ABI). */
struct kq_aio_request {
    uintptr_t ident;
    short filter;         /* EVFILT_AIO, EVFILT_LIO or 0 */
    unsigned short flags; /* EV_ONESHOT, EV_CLEAR, EV_DISPATCH (others: EINVAL) */
    void *udata;
    struct kq_aio_op op;  /* the tag is set by the engine */
    void *token;          /* handed to the completion hook */
};
/* Called by the engine, with the kqueue's lock held, when a C request completes (error 0 and
 * status the bytes, or the errno and -1). Must not call back into the engine. */
typedef void (*kq_aio_completion_hook)(void *token, int error, int64_t status);
void kq_aio_set_completion_hook(kq_aio_completion_hook hook);
void kq_aio_call_completion_hook(void *token, int error, int64_t status);

/* fork(2): the child handler closes every kqueue (SPEC.md 2: not inherited by a child). */
typedef void (*kq_shim_fork_hook)(void);
int kq_shim_install_fork_hooks(kq_shim_fork_hook prepare, kq_shim_fork_hook parent,
                               kq_shim_fork_hook child);

#ifdef __cplusplus
}
#endif

#endif
