#define _GNU_SOURCE
#include "CKQueueShim.h"
#include "next_symbol.h"
#include "signal_consumers.h"
#include "procdesc_hooks.h"

#include <dlfcn.h>
#include <malloc.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <poll.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KQ_SHIM_THREAD_SANITIZER 1
#endif
#endif

int kq_shim_epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                         const struct timespec *timeout) {
#ifdef KQ_SHIM_THREAD_SANITIZER
    /* ThreadSanitizer runs a signal handler at once only inside a call it intercepts as
     * blocking (epoll_wait is one; a raw syscall is not): otherwise the handler runs after the
     * call returned EINTR, too late for the engine to see that only EVFILT_SIGNAL's handler
     * ran, and the wait fails with EINTR for a signal the application ignores. So, in the
     * ThreadSanitizer build only, the timed wait is epoll_wait's, in milliseconds rounded up. */
    long long ms = (long long)timeout->tv_sec * 1000 + (timeout->tv_nsec + 999999) / 1000000;
    return epoll_wait(epfd, events, maxevents, ms > INT_MAX ? INT_MAX : (int)ms);
#else
    return (int)syscall(SYS_epoll_pwait2, epfd, events, maxevents, timeout, NULL, 0);
#endif
}

int kq_shim_ioctl_int(int fd, unsigned long request, int *value) {
    return ioctl(fd, request, value);
}

int kq_shim_fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }

int kq_shim_fcntl(int fd, int cmd) { return fcntl(fd, cmd); }

int kq_shim_pidfd_open(pid_t pid, unsigned int flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

int kq_shim_pidfd_has_exited(int pidfd) {
    struct pollfd poller = {.fd = pidfd, .events = POLLIN};
    return poll(&poller, 1, 0) == 1 && (poller.revents & POLLIN) ? 1 : 0;
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* The pid a pidfd refers to now, from /proc/self/fdinfo: the pid, 0 when it is in another
 * pid namespace, -1 once the process was reaped (or on error). */
static long pidfd_current_pid(int pidfd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    FILE *file = fopen(path, "re");
    if (!file) return -1;
    char line[256];
    long pid = -1;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, "Pid:", 4) == 0) {
            pid = strtol(line + 4, NULL, 10);
            break;
        }
    }
    fclose(file);
    return pid;
}

/* Field 52 of /proc/PID/stat (exit_code, Linux 3.5+), or -1. */
static int proc_stat_exit_code(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "re");
    if (!file) return -1;
    char buffer[2048];
    size_t length = fread(buffer, 1, sizeof buffer - 1, file);
    fclose(file);
    buffer[length] = 0;
    /* The command name (field 2) may contain spaces and parentheses: count from the last ')'. */
    char *cursor = strrchr(buffer, ')');
    if (!cursor) return -1;
    cursor++;
    /* After ')' come fields 3..52: the exit code is the 50th of them. */
    for (int field = 3; field < 52; field++) {
        cursor = strchr(cursor + 1, ' ');
        if (!cursor) return -1;
    }
    char *end;
    long code = strtol(cursor + 1, &end, 10);
    if (end == cursor + 1) return -1;
    return (int)code;
}

/* PIDFD_GET_INFO (Linux 6.15+): version 0 of struct pidfd_info, 64 bytes; exit_code took
 * the place of its last spare word. Declared here: the installed kernel headers may predate it. */
struct kq_pidfd_info {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    int32_t exit_code;
};
_Static_assert(sizeof(struct kq_pidfd_info) == 64, "PIDFD_INFO_SIZE_VER0");
#define KQ_PIDFD_INFO_EXIT (1ULL << 3)
#define KQ_PIDFD_GET_INFO _IOWR(0xFF, 11, struct kq_pidfd_info)

/* The wait status the kernel kept for a process that was reaped (by anyone): only once it
 * was reaped does the pidfd carry it. */
static int pidfd_info_exit_status(int pidfd, int *status) {
    struct kq_pidfd_info info;
    memset(&info, 0, sizeof info);
    info.mask = KQ_PIDFD_INFO_EXIT;
    if (ioctl(pidfd, KQ_PIDFD_GET_INFO, &info) != 0 || !(info.mask & KQ_PIDFD_INFO_EXIT)) return -1;
    *status = info.exit_code;
    return 0;
}

int kq_shim_pidfd_exit_status(int pidfd, pid_t pid, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG | WNOWAIT | __WALL) == 0 &&
        info.si_pid != 0) {
        switch (info.si_code) {
        case CLD_EXITED: *status = (info.si_status & 0xff) << 8; return 0;
        case CLD_KILLED: *status = info.si_status & 0x7f; return 0;
        case CLD_DUMPED: *status = (info.si_status & 0x7f) | 0x80; return 0;
        default: break;
        }
    }
    /* Not our child: the zombie's exit code, if the pidfd still names it before and after. */
    if (pidfd_current_pid(pidfd) == pid) {
        int code = proc_stat_exit_code(pid);
        if (code >= 0 && pidfd_current_pid(pidfd) == pid) {
            *status = code;
            return 0;
        }
    }
    /* Reaped already (by the application, its SIGCHLD handler, another library): the status
     * the kernel kept in the pidfd. */
    return pidfd_info_exit_status(pidfd, status);
}

void kq_shim_return_free_memory(void) { (void)malloc_trim(0); }

int kq_shim_tcp_accept_queue_length(int fd) {
    struct tcp_info info;
    socklen_t len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
    /* For a listening socket the kernel reports the accept-queue length in tcpi_unacked. */
    return (int)info.tcpi_unacked;
}

/* glibc's struct tcp_info stops at tcpi_total_retrans; the kernel's goes on (Linux 4.1+):
 * pacing rates, then tcpi_bytes_acked. */
struct kq_tcp_info_longer {
    struct tcp_info base;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked;
};

int kq_shim_tcp_send_info(int fd, struct kq_tcp_send_info *out) {
    struct kq_tcp_info_longer info;
    memset(&info, 0, sizeof info);
    socklen_t len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
    out->state = info.base.tcpi_state;
    out->rtt_us = info.base.tcpi_rtt;
    out->bytes_acked = len >= sizeof(info) ? info.bytes_acked : 0;
    return 0;
}

/* listmount(2) (Linux 6.8): the same number on every architecture; the installed headers
 * may predate it. */
#ifndef SYS_listmount
#define SYS_listmount 458
#endif
struct kq_mnt_id_req {
    uint32_t size, spare;
    uint64_t mnt_id, param;
};
#define KQ_LSMT_ROOT 0xffffffffffffffffULL

static long unique_mount_ids(uint64_t *ids, size_t capacity) {
    uint64_t page[256];
    size_t total = 0;
    uint64_t last = 0;
    for (;;) {
        struct kq_mnt_id_req request = {sizeof request, 0, KQ_LSMT_ROOT, last};
        long n = syscall(SYS_listmount, &request, page, sizeof page / sizeof page[0], 0UL);
        if (n < 0) return -errno;
        for (long i = 0; i < n; i++, total++)
            if (total < capacity) ids[total] = page[i];
        if ((size_t)n < sizeof page / sizeof page[0]) return (long)total;
        last = page[n - 1];
    }
}

/* The first field of every line of /proc/self/mountinfo. */
static long mountinfo_ids(int fd, uint64_t *ids, size_t capacity) {
    char buffer[4096];
    off_t offset = 0;
    size_t total = 0;
    int at_line_start = 1, in_number = 0;
    uint64_t value = 0;
    for (;;) {
        ssize_t n = pread(fd, buffer, sizeof buffer, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return (long)total;
        offset += n;
        for (ssize_t i = 0; i < n; i++) {
            char c = buffer[i];
            if (at_line_start || in_number) {
                if (c >= '0' && c <= '9') {
                    value = value * 10 + (uint64_t)(c - '0');
                    at_line_start = 0;
                    in_number = 1;
                    continue;
                }
                if (in_number) {
                    if (total < capacity) ids[total] = value;
                    total++;
                }
                in_number = 0;
                at_line_start = 0;
                value = 0;
            }
            if (c == '\n') at_line_start = 1;
        }
    }
}

/* fanotify's mount events (Linux 6.15); the installed headers may predate them. */
#define KQ_FAN_REPORT_MNT 0x00004000U
#define KQ_FAN_MARK_MNTNS 0x00000110U
#define KQ_FAN_MNT_ATTACH 0x01000000ULL
#define KQ_FAN_MNT_DETACH 0x02000000ULL

int kq_shim_mount_events_open(void) {
    int fd = fanotify_init(KQ_FAN_REPORT_MNT | FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (ns < 0 || fanotify_mark(fd, FAN_MARK_ADD | KQ_FAN_MARK_MNTNS, KQ_FAN_MNT_ATTACH | KQ_FAN_MNT_DETACH, ns,
                                NULL) != 0) {
        int error = errno;
        if (ns >= 0) kq_shim_real_close(ns);
        kq_shim_real_close(fd);
        return -error;
    }
    kq_shim_real_close(ns);
    return fd;
}

int kq_shim_mount_events_read(int fd) {
    _Alignas(struct fanotify_event_metadata) char buffer[4096];
    int bits = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return bits;
        struct fanotify_event_metadata *event = (struct fanotify_event_metadata *)buffer;
        while (FAN_EVENT_OK(event, n)) {
            if (event->mask & KQ_FAN_MNT_ATTACH) bits |= KQ_MOUNT_ATTACHED;
            if (event->mask & KQ_FAN_MNT_DETACH) bits |= KQ_MOUNT_DETACHED;
            if (event->mask & FAN_Q_OVERFLOW) bits |= KQ_MOUNT_EVENTS_LOST;
            if (event->fd >= 0) kq_shim_real_close(event->fd);
            event = FAN_EVENT_NEXT(event, n);
        }
    }
}

long kq_shim_mount_ids(int mountinfo_fd, int unique, uint64_t *ids, size_t capacity) {
    return unique ? unique_mount_ids(ids, capacity) : mountinfo_ids(mountinfo_fd, ids, capacity);
}

int kq_shim_unix_accept_queue_length(int fd) {
    struct stat status;
    if (fstat(fd, &status) != 0 || !S_ISSOCK(status.st_mode)) return -1;
    int sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (sock < 0) return -1;
    struct {
        struct nlmsghdr header;
        struct unix_diag_req request;
    } message;
    memset(&message, 0, sizeof(message));
    message.header.nlmsg_len = sizeof(message);
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;
    message.request.sdiag_family = AF_UNIX;
    message.request.udiag_states = -1;
    message.request.udiag_ino = (unsigned int)status.st_ino;
    message.request.udiag_show = UDIAG_SHOW_RQLEN;
    message.request.udiag_cookie[0] = message.request.udiag_cookie[1] = (unsigned int)-1;
    int result = -1;
    if (send(sock, &message, sizeof(message), 0) == (ssize_t)sizeof(message)) {
        long buffer[1024];
        ssize_t n = recv(sock, buffer, sizeof(buffer), 0);
        struct nlmsghdr *header = (struct nlmsghdr *)buffer;
        if (n > 0 && NLMSG_OK(header, (unsigned int)n) && header->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            struct unix_diag_msg *reply = NLMSG_DATA(header);
            int length = (int)(header->nlmsg_len - NLMSG_LENGTH(sizeof(*reply)));
            struct rtattr *attribute = (struct rtattr *)(reply + 1);
            while (RTA_OK(attribute, length)) {
                if (attribute->rta_type == UNIX_DIAG_RQLEN) {
                    struct unix_diag_rqlen *queue = RTA_DATA(attribute);
                    result = (int)queue->udiag_rqueue;
                }
                attribute = RTA_NEXT(attribute, length);
            }
        }
    }
    kq_shim_real_close(sock);
    return result;
}

/* ---- close(2) interposition ------------------------------------------------------- */

/* Watched descriptor numbers, one bit each. Allocated once and never freed or moved, so
 * readers need no lock; numbers beyond its size always take the slow path. */
static _Atomic(_Atomic uint64_t *) watched_bits;
static _Atomic size_t watched_words;
static _Atomic(kq_shim_close_hook) close_hook;
static pthread_once_t watched_once = PTHREAD_ONCE_INIT;

static void watched_init(void) {
    struct rlimit lim;
    size_t fds = 1 << 16;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max != RLIM_INFINITY && lim.rlim_max > fds)
        fds = (size_t)lim.rlim_max;
    if (fds > ((size_t)1 << 26)) fds = (size_t)1 << 26;
    size_t words = (fds + 63) / 64;
    _Atomic uint64_t *bits = calloc(words, sizeof(uint64_t));
    if (bits == NULL) return; /* every number then takes the slow path */
    atomic_store(&watched_words, words);
    atomic_store(&watched_bits, bits);
}

void kq_shim_set_close_hook(kq_shim_close_hook hook) {
    pthread_once(&watched_once, watched_init);
    atomic_store(&close_hook, hook);
}

void kq_shim_mark_watched(int fd) {
    if (fd < 0) return;
    _Atomic uint64_t *bits = atomic_load_explicit(&watched_bits, memory_order_acquire);
    size_t word = (size_t)fd / 64;
    if (bits == NULL || word >= atomic_load_explicit(&watched_words, memory_order_relaxed)) return;
    atomic_fetch_or_explicit(&bits[word], (uint64_t)1 << (fd % 64), memory_order_release);
}

void kq_shim_clear_watched(int fd) {
    if (fd < 0) return;
    _Atomic uint64_t *bits = atomic_load_explicit(&watched_bits, memory_order_acquire);
    size_t word = (size_t)fd / 64;
    if (bits == NULL || word >= atomic_load_explicit(&watched_words, memory_order_relaxed)) return;
    atomic_fetch_and_explicit(&bits[word], ~((uint64_t)1 << (fd % 64)), memory_order_release);
}

int kq_shim_is_watched(int fd) {
    if (fd < 0) return 0;
    if (atomic_load_explicit(&close_hook, memory_order_relaxed) == NULL) return 0;
    _Atomic uint64_t *bits = atomic_load_explicit(&watched_bits, memory_order_acquire);
    size_t word = (size_t)fd / 64;
    if (bits == NULL || word >= atomic_load_explicit(&watched_words, memory_order_relaxed)) return 1;
    return (atomic_load_explicit(&bits[word], memory_order_acquire) >> (fd % 64)) & 1;
}

/* A lazily allocated array of one atomic int per descriptor number (as many as the watched
 * bitmap covers, at least 65,536); numbers past it have no slot. */
struct fd_table {
    _Atomic(_Atomic int *) slots;
    _Atomic size_t count;
};

static _Atomic int *fd_table_slot(struct fd_table *table, int fd, int create) {
    if (fd < 0) return NULL;
    _Atomic int *slots = atomic_load_explicit(&table->slots, memory_order_acquire);
    if (slots == NULL) {
        if (!create) return NULL;
        size_t count = atomic_load(&watched_words) * 64;
        if (count < (1 << 16)) count = 1 << 16;
        _Atomic int *fresh = calloc(count, sizeof(int));
        if (fresh == NULL) return NULL;
        _Atomic int *expected = NULL;
        if (atomic_compare_exchange_strong(&table->slots, &expected, fresh)) {
            atomic_store(&table->count, count);
            slots = fresh;
        } else {
            free(fresh);
            slots = expected;
            while (atomic_load(&table->count) == 0) { }
        }
    }
    if ((size_t)fd >= atomic_load_explicit(&table->count, memory_order_acquire)) return NULL;
    return &slots[fd];
}

/* Socket errors the engine consumed from the kernel, kept for the application. */
static struct fd_table kept_errors;
/* Sockets whose sending side the application shut down (shutdown(2) with SHUT_WR or
 * SHUT_RDWR): FreeBSD's SBS_CANTSENDMORE, which Linux's poll does not show. */
static struct fd_table send_shutdowns;

typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);
NEXT_SYMBOL(getsockopt, getsockopt_fn)

static int real_getsockopt(int fd, int level, int name, void *value, socklen_t *length) {
    getsockopt_fn fn = next_getsockopt();
    if (fn == NULL) { errno = ENOSYS; return -1; }
    return fn(fd, level, name, value, length);
}

static _Atomic int *kept_error_slot(int fd, int create) { return fd_table_slot(&kept_errors, fd, create); }

typedef int (*shutdown_fn)(int, int);
NEXT_SYMBOL(shutdown, shutdown_fn)

int shutdown(int fd, int how) {
    shutdown_fn fn = next_shutdown();
    int result = fn ? fn(fd, how) : (int)syscall(SYS_shutdown, fd, how);
    if (result == 0 && (how == SHUT_WR || how == SHUT_RDWR)) {
        _Atomic int *slot = fd_table_slot(&send_shutdowns, fd, 1);
        if (slot != NULL) atomic_store_explicit(slot, 1, memory_order_relaxed);
    }
    return result;
}

/* EVFILT_EMPTY: sockets whose idle EV_CLEAR knote waits for the application's next send.
 * A slot holds (sends << 1) | armed: a successful send on an armed socket clears `armed`,
 * counts one and writes the process-wide eventfd, which every kqueue with such knotes watches;
 * a kqueue sees that the count moved since it armed. */
static struct fd_table empty_armed;
_Atomic int kq_shim_empty_armed_any;
static _Atomic int empty_wake = -1;
static pthread_mutex_t empty_wake_lock = PTHREAD_MUTEX_INITIALIZER;

int kq_shim_empty_wake_fd(void) {
    int fd = atomic_load(&empty_wake);
    if (fd >= 0) return fd;
    pthread_mutex_lock(&empty_wake_lock);
    fd = atomic_load(&empty_wake);
    if (fd < 0) {
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd >= 0) atomic_store(&empty_wake, fd);
    }
    pthread_mutex_unlock(&empty_wake_lock);
    return fd;
}

int64_t kq_shim_empty_arm(int fd) {
    _Atomic int *slot = fd_table_slot(&empty_armed, fd, 1);
    if (slot == NULL) return -1;
    atomic_store(&kq_shim_empty_armed_any, 1);
    return (int64_t)((unsigned)atomic_fetch_or(slot, 1) >> 1);
}

int64_t kq_shim_empty_sends(int fd) {
    _Atomic int *slot = fd_table_slot(&empty_armed, fd, 0);
    return slot == NULL ? -1 : (int64_t)((unsigned)atomic_load(slot) >> 1);
}

void kq_shim_empty_sent(int fd) {
    _Atomic int *slot = fd_table_slot(&empty_armed, fd, 0);
    if (slot == NULL) return;
    int value = atomic_load_explicit(slot, memory_order_relaxed);
    while (value & 1) {
        if (atomic_compare_exchange_weak(slot, &value, (int)((((unsigned)value >> 1) + 1) << 1))) {
            int wake = atomic_load(&empty_wake);
            uint64_t one = 1;
            if (wake >= 0 && syscall(SYS_write, wake, &one, sizeof one) < 0) { /* full: still readable */ }
            return;
        }
    }
}

int kq_shim_send_is_shut_down(int fd) {
    _Atomic int *slot = fd_table_slot(&send_shutdowns, fd, 0);
    return slot != NULL && atomic_load_explicit(slot, memory_order_relaxed) != 0;
}

int kq_shim_take_socket_error(int fd) {
    int value = 0;
    socklen_t length = sizeof(value);
    if (real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) != 0) value = 0;
    _Atomic int *slot = kept_error_slot(fd, value != 0);
    if (slot == NULL) return value;
    if (value != 0) {
        atomic_store(slot, value);
        return value;
    }
    return atomic_load(slot);
}

int kq_shim_kept_socket_error(int fd, int take) {
    /* The fast path of every interposed read and write: one load while nothing was kept. */
    if (__builtin_expect(atomic_load_explicit(&kept_errors.slots, memory_order_relaxed) == NULL, 1)) return 0;
    _Atomic int *slot = kept_error_slot(fd, 0);
    if (slot == NULL || atomic_load_explicit(slot, memory_order_relaxed) == 0) return 0;
    return take ? atomic_exchange(slot, 0) : atomic_load(slot);
}

int getsockopt(int fd, int level, int name, void *value, socklen_t *length) {
    if (level == SOL_SOCKET && name == SO_ERROR && value != NULL && length != NULL && *length >= sizeof(int)) {
        _Atomic int *slot = kept_error_slot(fd, 0);
        int kept = slot != NULL ? atomic_exchange(slot, 0) : 0;
        if (kept != 0) {
            int current = 0;
            socklen_t current_length = sizeof(current);
            /* A newer error wins; otherwise the one the engine kept. */
            if (real_getsockopt(fd, level, name, &current, &current_length) == 0 && current != 0) kept = current;
            *(int *)value = kept;
            *length = sizeof(int);
            return 0;
        }
    }
    return real_getsockopt(fd, level, name, value, length);
}

/* Numbers registered in some AIO ring (aio_backend.c, "registered files"): how many rings. */
static struct fd_table ring_files;

int kq_shim_ring_file_count(int fd, int delta) {
    _Atomic int *slot = fd_table_slot(&ring_files, fd, delta > 0);
    if (slot == NULL) return -1;
    atomic_fetch_add_explicit(slot, delta, memory_order_acq_rel);
    return 0;
}

static _Atomic unsigned long descriptor_epoch;

unsigned long kq_shim_descriptor_epoch(void) {
    return atomic_load_explicit(&descriptor_epoch, memory_order_acquire);
}

static void notify_closing(int fd) {
    atomic_fetch_add_explicit(&descriptor_epoch, 1, memory_order_release);
    kq_shim_signalfd_forget(fd);
    _Atomic int *slot = kept_error_slot(fd, 0);
    if (slot != NULL) atomic_store_explicit(slot, 0, memory_order_relaxed);
    slot = fd_table_slot(&send_shutdowns, fd, 0);
    if (slot != NULL) atomic_store_explicit(slot, 0, memory_order_relaxed);
    slot = fd_table_slot(&empty_armed, fd, 0);
    if (slot != NULL) atomic_fetch_and_explicit(slot, ~1, memory_order_relaxed);
    /* A ring's registration would keep the file open past this close. */
    slot = fd_table_slot(&ring_files, fd, 0);
    if (slot != NULL && atomic_load_explicit(slot, memory_order_acquire) > 0) kq_aio_forget_ring_file(fd);
    if (!kq_shim_is_watched(fd)) return;
    kq_shim_close_hook hook = atomic_load_explicit(&close_hook, memory_order_acquire);
    if (hook != NULL) hook(fd);
}

typedef int (*close_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);
typedef int (*close_range_fn)(unsigned int, unsigned int, int);
NEXT_SYMBOL(close, close_fn)
NEXT_SYMBOL(dup2, dup2_fn)
NEXT_SYMBOL(dup3, dup3_fn)
NEXT_SYMBOL(close_range, close_range_fn)

int kq_shim_real_close(int fd) {
    close_fn fn = next_close();
    if (fn == NULL) return (int)syscall(SYS_close, fd);
    return fn(fd);
}

int close(int fd) {
    notify_closing(fd);
    int process_descriptor = kq_procdesc_number_closing(fd);
    int result = kq_shim_real_close(fd);
    if (process_descriptor) kq_procdesc_numbers_closed();
    return result;
}

int dup2(int oldfd, int newfd) {
    dup2_fn fn = next_dup2();
    if (fn == NULL) { errno = ENOSYS; return -1; }
    /* dup2 closes newfd first, unless it is oldfd itself or oldfd is not open. */
    int replaces = oldfd != newfd && fcntl(oldfd, F_GETFD) != -1;
    /* Watched or not: what the library keeps about the number (a send shutdown, a kept
     * error) belongs to the file it names now, not to the one dup2 puts there. */
    if (replaces) notify_closing(newfd);
    int process_descriptor = replaces && kq_procdesc_number_closing(newfd);
    int result = fn(oldfd, newfd);
    if (result >= 0 && replaces) kq_procdesc_number_copied(oldfd, newfd);
    if (process_descriptor) kq_procdesc_numbers_closed();
    return result;
}

int dup3(int oldfd, int newfd, int flags) {
    dup3_fn fn = next_dup3();
    if (fn == NULL) { errno = ENOSYS; return -1; }
    int replaces = oldfd != newfd && fcntl(oldfd, F_GETFD) != -1;
    if (replaces) notify_closing(newfd); /* as dup2 */
    int process_descriptor = replaces && kq_procdesc_number_closing(newfd);
    int result = fn(oldfd, newfd, flags);
    if (result >= 0 && replaces) kq_procdesc_number_copied(oldfd, newfd);
    if (process_descriptor) kq_procdesc_numbers_closed();
    return result;
}

/* One past the highest number the library may keep something about: watched by a kqueue,
 * a kept socket error, a send shutdown, an armed EMPTY knote, a file registered in an AIO
 * ring, an application signalfd, a process descriptor (0: none). close_range walks its range
 * up to there, not to INT_MAX: a program that closes every number above 2 before it made a
 * kqueue would otherwise wait for two billion look-ups. Without the watched bitmap (its
 * allocation failed) any number may be watched: the whole range. */
static size_t tracked_number_limit(unsigned int last) {
    if (atomic_load_explicit(&close_hook, memory_order_relaxed) != NULL &&
        atomic_load_explicit(&watched_bits, memory_order_acquire) == NULL)
        return (size_t)last + 1;
    size_t limits[] = {
        atomic_load_explicit(&watched_words, memory_order_relaxed) * 64,
        atomic_load_explicit(&kept_errors.count, memory_order_acquire),
        atomic_load_explicit(&send_shutdowns.count, memory_order_acquire),
        atomic_load_explicit(&empty_armed.count, memory_order_acquire),
        atomic_load_explicit(&ring_files.count, memory_order_acquire),
        kq_shim_signalfd_number_limit(),
        kq_procdesc_number_limit(),
    };
    size_t limit = 0;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        if (limits[i] > limit) limit = limits[i];
    return limit;
}

int close_range(unsigned int first, unsigned int last, int flags) {
    close_range_fn fn = next_close_range();
    if (fn == NULL) { errno = ENOSYS; return -1; }
    int process_descriptors = 0;
#ifdef CLOSE_RANGE_CLOEXEC
    if (!(flags & CLOSE_RANGE_CLOEXEC))
#endif
    {
        size_t limit = tracked_number_limit(last);
        unsigned int top = (size_t)last >= limit ? (unsigned int)(limit - 1) : last;
        for (unsigned int fd = first; limit > 0 && fd <= top && fd <= (unsigned int)INT32_MAX; fd++) {
            notify_closing((int)fd);
            if (kq_procdesc_number_closing((int)fd)) process_descriptors = 1;
            if (fd == top) break;
        }
    }
    int result = fn(first, last, flags);
    if (process_descriptors) kq_procdesc_numbers_closed();
    return result;
}

/* ---- fork(2) ---------------------------------------------------------------------- */

/* Kept for pdfork (procdesc.c), which runs them around its clone3 as fork() does. */
static _Atomic(kq_shim_fork_hook) fork_prepare_hook, fork_parent_hook, fork_child_hook;

int kq_shim_install_fork_hooks(kq_shim_fork_hook prepare, kq_shim_fork_hook parent,
                               kq_shim_fork_hook child) {
    int result = pthread_atfork(prepare, parent, child);
    if (result == 0) {
        atomic_store(&fork_prepare_hook, prepare);
        atomic_store(&fork_parent_hook, parent);
        atomic_store(&fork_child_hook, child);
    }
    return result;
}

void kq_shim_run_fork_prepare(void) {
    kq_shim_fork_hook hook = atomic_load(&fork_prepare_hook);
    if (hook != NULL) hook();
}

void kq_shim_run_fork_parent(void) {
    kq_shim_fork_hook hook = atomic_load(&fork_parent_hook);
    if (hook != NULL) hook();
}

void kq_shim_run_fork_child(void) {
    kq_shim_fork_hook hook = atomic_load(&fork_child_hook);
    if (hook != NULL) hook();
}
