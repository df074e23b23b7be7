/*
 * FreeBSD's process descriptors on Linux: pdfork(2), pdgetpid(2), pdkill(2) (<sys/procdesc.h>).
 *
 * A process descriptor is the pidfd that clone3(CLONE_PIDFD) returns for a child created with
 * exit_signal 0: the child sends no SIGCHLD, and wait(WAIT_ANY) (which on Linux waits only for
 * children that signal SIGCHLD, unless __WALL is given) does not see it, as on FreeBSD. An
 * explicit waitpid(pid)/wait4(pid)/waitid(P_PID, pid) still reaps it, as on FreeBSD: those
 * interposers add __WALL for the pid of a live process descriptor.
 *
 * Last close. FreeBSD kills a running child with SIGKILL (unless PD_DAEMON) and reaps an exited
 * one when the last reference to the descriptor's file goes away, wherever it was held: any
 * number in this process, a fork child's copy, a copy passed over a UNIX socket. Linux tells
 * nobody when a pidfd's file is released, so two kernel facilities are combined:
 *
 *  - the sentinel: the descriptor is registered in a private epoll instance. An epoll
 *    registration holds no reference to its file and disappears when the file is released,
 *    so the epoll instance's /proc/self/fdinfo listing tells whether the file still exists
 *    anywhere (each registration is listed with a key of ours);
 *  - the watcher: an inotify watch on the child's pidfs inode (every pidfd of one process is a
 *    file of the same inode, Linux 6.9+) reports IN_CLOSE_* whenever a pidfd file of that
 *    process is released, in any process: the moment to look at the sentinel.
 *
 * Close of a number of this process is seen at once by the close/dup2/dup3/close_range
 * interposers (the numbers pdfork returned and dup2/dup3 copies are tracked): when the object
 * has no number left here, the sentinel is read right after the real close, so close() returns
 * after the SIGKILL was sent, as on FreeBSD. Releases elsewhere (a fork child's close, exit or
 * exec; a passed copy closed) are seen by a reaper thread that reads the watcher. The reaper
 * also reaps the children whose last descriptor went away (FreeBSD reparents them to init,
 * which reaps them; on Linux only the parent can). The thread runs while process descriptors
 * exist, with every signal blocked.
 *
 * The holder's own end: when this process exits (however) while a non-PD_DAEMON child runs,
 * the child gets SIGKILL through PR_SET_PDEATHSIG, set in the child when pdfork was called from
 * the main thread (the signal follows the creating thread, so other threads' children are not
 * given it). What Linux cannot do here is listed in docs/GUARANTEES.md.
 */
#define _GNU_SOURCE
#include "CKQueueShim.h"
#include "next_symbol.h"
#include "procdesc_hooks.h"

#include <sys/procdesc.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef PR_GET_TID_ADDRESS
#define PR_GET_TID_ADDRESS 40
#endif

/* One pdfork'd child. */
struct pd_object {
    int used;
    pid_t pid;
    int daemon;
    int internal;      /* our own pidfd of the child (its own file): kill, reap */
    int sentinel;      /* the epoll instance holding the descriptor's registration */
    uint64_t key;      /* the registration's epoll_data */
    ino_t inode;       /* the child's pidfs inode (pdgetpid after a reap) */
    int numbers;       /* numbers of this process known to refer to the descriptor */
    int inherited;     /* a fork child's copy of its parent's object: it cannot reap */
    int detached;      /* the descriptor's last reference is gone: waiting to reap */
    int reaped;        /* the application reaped it (waitpid): the pid may be reused */
};

static pthread_mutex_t pd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pd_object *objects;
static int object_capacity;
/* Objects in use: the interposers' fast path reads it without the lock. */
static _Atomic int pd_active;
/* Descriptor number -> object index + 1 (0: not a process descriptor we know). */
static int *number_map;
static size_t number_map_size;
static int sentinel = -1; /* this process's sentinel epoll instance */
static int watcher = -1;  /* this process's inotify instance */
static int wake = -1;     /* eventfd that wakes the reaper */
static int reaper_running;
static uint64_t next_key = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pd_real_close(int fd) {
    if (fd >= 0) (void)kq_shim_real_close(fd);
}

/* ---- what the kernel says about a pidfd ---------------------------------------------- */

/* The "Pid:" line of a descriptor's fdinfo: 1 and *pid (-1 once reaped, 0 in another pid
 * namespace) for a pidfd, 0 for another kind of file, -1 with errno when `fd` is not open. */
static int fdinfo_pid(int fd, pid_t *pid) {
    char path[64], buffer[1024];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    int file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0) {
        if (fcntl(fd, F_GETFD) == -1) return -1;
        errno = ENOSYS; /* no /proc: cannot tell */
        return -1;
    }
    ssize_t n = read(file, buffer, sizeof buffer - 1);
    pd_real_close(file);
    if (n <= 0) return 0;
    buffer[n] = 0;
    for (char *line = buffer; line != NULL && *line; line = strchr(line, '\n')) {
        if (*line == '\n') line++;
        if (strncmp(line, "Pid:", 4) == 0) {
            *pid = (pid_t)strtol(line + 4, NULL, 10);
            return 1;
        }
    }
    return 0;
}

int kq_shim_procdesc_pid(int fd, pid_t *pid) {
    if (fd < 0) return EBADF;
    int kind = fdinfo_pid(fd, pid);
    if (kind < 0) return errno;
    return kind == 1 ? 0 : EINVAL;
}

/* Does the sentinel `epoll` still list `key`? 1 yes, 0 no, -1 cannot tell. */
static int sentinel_lists(int epoll, uint64_t key) {
    if (epoll < 0) return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epoll);
    int file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0) return -1;
    /* Lines: "tfd: N events: E data: KEY pos:P ino:I sdev:D". */
    size_t capacity = 4096, length = 0;
    char *text = malloc(capacity);
    int result = -1;
    if (text != NULL) {
        for (;;) {
            if (capacity - length < 1024) {
                char *bigger = realloc(text, capacity * 2);
                if (bigger == NULL) break;
                text = bigger;
                capacity *= 2;
            }
            ssize_t n = read(file, text + length, capacity - length - 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                if (n == 0) result = 0;
                break;
            }
            length += (size_t)n;
        }
        if (result == 0) {
            text[length] = 0;
            for (char *at = strstr(text, "data:"); at != NULL; at = strstr(at + 5, "data:")) {
                if (strtoull(at + 5, NULL, 16) == key) {
                    result = 1;
                    break;
                }
            }
        }
        free(text);
    }
    pd_real_close(file);
    return result;
}

/* ---- the object table (pd_lock held) ---------------------------------------------------- */

static void numbers_init(void) {
    if (number_map != NULL) return;
    struct rlimit limit;
    size_t size = 1 << 16;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur > size)
        size = (size_t)limit.rlim_cur;
    if (size > ((size_t)1 << 20)) size = (size_t)1 << 20;
    number_map = calloc(size, sizeof(int));
    if (number_map != NULL) number_map_size = size;
}

static void map_number(int fd, int index) {
    if (fd >= 0 && (size_t)fd < number_map_size) number_map[fd] = index + 1;
}

static int allocate_object(void) {
    for (int i = 0; i < object_capacity; i++)
        if (!objects[i].used) return i;
    int capacity = object_capacity ? object_capacity * 2 : 16;
    struct pd_object *bigger = realloc(objects, (size_t)capacity * sizeof *objects);
    if (bigger == NULL) return -1;
    memset(bigger + object_capacity, 0, (size_t)(capacity - object_capacity) * sizeof *objects);
    objects = bigger;
    int index = object_capacity;
    object_capacity = capacity;
    return index;
}

static void free_object(int index) {
    struct pd_object *object = &objects[index];
    pd_real_close(object->internal);
    for (size_t fd = 0; fd < number_map_size && object->numbers > 0; fd++) {
        if (number_map[fd] == index + 1) {
            number_map[fd] = 0;
            object->numbers--;
        }
    }
    memset(object, 0, sizeof *object);
    atomic_fetch_sub(&pd_active, 1);
}

static void wake_reaper(void) {
    if (wake < 0) return;
    uint64_t one = 1;
    ssize_t n = write(wake, &one, sizeof one);
    (void)n;
}

/* The child has exited (not reaped): 1, running: 0. */
static int has_exited(struct pd_object *object) {
    struct pollfd poller = {.fd = object->internal, .events = POLLIN};
    return poll(&poller, 1, 0) == 1 && (poller.revents & POLLIN);
}

static int reap(struct pd_object *object) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    return waitid((idtype_t)P_PIDFD, (id_t)object->internal, &info, WEXITED | WNOHANG | __WALL) == 0 &&
           info.si_pid != 0;
}

/* FreeBSD's procdesc_close: the last reference to the descriptor went away. An exited child
 * is reaped now; a running one gets SIGKILL unless PD_DAEMON, and is reaped by the reaper
 * when it exits. A fork child's copy cannot reap: its parent's reaper does. */
static void last_close(int index) {
    struct pd_object *object = &objects[index];
    if (object->detached) return;
    object->detached = 1;
    if (object->reaped) {
        free_object(index);
        return;
    }
    if (!object->daemon && !has_exited(object))
        (void)syscall(SYS_pidfd_send_signal, object->internal, SIGKILL, NULL, 0);
    if (object->inherited) {
        free_object(index);
        return;
    }
    if (has_exited(object) && reap(object)) {
        free_object(index);
        return;
    }
    wake_reaper(); /* it polls the child's pidfd and reaps it when it exits */
}

/* Checks every object that no number of this process refers to. */
static void check_unreferenced(int only_without_numbers) {
    for (int i = 0; i < object_capacity; i++) {
        struct pd_object *object = &objects[i];
        if (!object->used || object->detached) continue;
        if (only_without_numbers && object->numbers > 0) continue;
        if (sentinel_lists(object->sentinel, object->key) == 0) last_close(i);
    }
}

/* ---- the reaper thread ------------------------------------------------------------------ */

static void *reaper_main(void *unused) {
    (void)unused;
    struct pollfd *pollers = NULL;
    int *indices = NULL;
    int capacity = 0;
    pthread_mutex_lock(&pd_lock);
    for (;;) {
        int own = 0;
        for (int i = 0; i < object_capacity; i++)
            if (objects[i].used && !objects[i].inherited) own++;
        if (own == 0 || watcher < 0 || wake < 0) break;
        if (own + 2 > capacity) {
            capacity = own + 2;
            struct pollfd *p = realloc(pollers, (size_t)capacity * sizeof *pollers);
            if (p != NULL) pollers = p;
            int *x = realloc(indices, (size_t)capacity * sizeof *indices);
            if (x != NULL) indices = x;
            if (p == NULL || x == NULL) break;
        }
        int count = 0;
        pollers[count++] = (struct pollfd){.fd = wake, .events = POLLIN};
        pollers[count++] = (struct pollfd){.fd = watcher, .events = POLLIN};
        for (int i = 0; i < object_capacity; i++) {
            if (!objects[i].used || objects[i].inherited || !objects[i].detached) continue;
            indices[count] = i;
            pollers[count++] = (struct pollfd){.fd = objects[i].internal, .events = POLLIN};
        }
        pthread_mutex_unlock(&pd_lock);
        int ready = poll(pollers, (nfds_t)count, -1);
        pthread_mutex_lock(&pd_lock);
        if (ready <= 0) continue;
        if (pollers[0].revents) {
            uint64_t value;
            ssize_t n = read(wake, &value, sizeof value);
            (void)n;
        }
        if (pollers[1].revents) {
            char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            while (read(watcher, events, sizeof events) > 0) { }
            check_unreferenced(0);
        }
        for (int k = 2; k < count; k++) {
            int i = indices[k];
            if (!pollers[k].revents || !objects[i].used || !objects[i].detached) continue;
            if (reap(&objects[i])) free_object(i);
        }
    }
    reaper_running = 0;
    pthread_mutex_unlock(&pd_lock);
    free(pollers);
    free(indices);
    return NULL;
}

/* Starts the reaper if it is not running (pd_lock held). */
static void start_reaper(void) {
    if (reaper_running) return;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pthread_t thread;
    if (pthread_create(&thread, &attributes, reaper_main, NULL) == 0) reaper_running = 1;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attributes);
}

/* ---- fork ------------------------------------------------------------------------------- */

static void pd_fork_prepare(void) { pthread_mutex_lock(&pd_lock); }

static void pd_fork_parent(void) { pthread_mutex_unlock(&pd_lock); }

/* A fork child holds copies of every descriptor (FreeBSD's fdcopy does the same): its objects
 * are its parent's, which it can kill on its own last close but not reap. It gets its own
 * watcher, sentinel and reaper for the children it creates itself. */
static void pd_fork_child(void) {
    for (int i = 0; i < object_capacity; i++) {
        if (!objects[i].used) continue;
        if (objects[i].detached) {
            free_object(i);
            continue;
        }
        objects[i].inherited = 1;
    }
    pd_real_close(watcher);
    pd_real_close(wake);
    watcher = wake = -1;
    sentinel = -1; /* the inherited objects keep using the parent's (shared) instance */
    reaper_running = 0;
    pthread_mutex_init(&pd_lock, NULL);
}

static void install_atfork(void) { (void)pthread_atfork(pd_fork_prepare, pd_fork_parent, pd_fork_child); }

/* This process's sentinel, watcher and reaper wakeup (pd_lock held): 0 or an errno. */
static int ensure_sources(void) {
    numbers_init();
    if (sentinel < 0) sentinel = epoll_create1(EPOLL_CLOEXEC);
    if (sentinel < 0) return errno;
    if (watcher < 0) watcher = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watcher < 0) return errno;
    if (wake < 0) wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake < 0) return errno;
    return 0;
}

/* ---- pdfork, pdgetpid, pdkill ------------------------------------------------------------ */

/* Records the new child (pd_lock held). */
static void record(pid_t pid, int fd, int flags) {
    int index = allocate_object();
    if (index < 0) return; /* out of memory: the descriptor works, its last close is not seen */
    struct pd_object *object = &objects[index];
    memset(object, 0, sizeof *object);
    object->used = 1;
    object->pid = pid;
    object->daemon = (flags & PD_DAEMON) != 0;
    /* Our child, not reaped yet (only a __WALL wait could have): the pid is its own. */
    object->internal = (int)syscall(SYS_pidfd_open, pid, 0);
    if (object->internal >= 0) (void)fcntl(object->internal, F_SETFD, FD_CLOEXEC);
    object->sentinel = sentinel;
    object->key = next_key++;
    struct stat status;
    if (fstat(fd, &status) == 0) object->inode = status.st_ino;
    struct epoll_event registration = {.events = EPOLLIN, .data.u64 = object->key};
    if (object->internal < 0 || epoll_ctl(sentinel, EPOLL_CTL_ADD, fd, &registration) != 0) {
        pd_real_close(object->internal);
        memset(object, 0, sizeof *object);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    (void)inotify_add_watch(watcher, path, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE);
    atomic_fetch_add(&pd_active, 1);
    map_number(fd, index);
    object->numbers = (size_t)fd < number_map_size ? 1 : 0;
    start_reaper();
}

pid_t pdfork(int *fdp, int flags) {
    if (flags & ~PD_ALLOWED_AT_FORK) {
        errno = EINVAL;
        return -1;
    }
    if (fdp == NULL) {
        errno = EFAULT;
        return -1;
    }
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&pd_lock);
    int error = ensure_sources();
    pthread_mutex_unlock(&pd_lock);
    if (error != 0) {
        errno = error;
        return -1;
    }
    /* The kernel writes the child's thread id where glibc keeps it (as glibc's fork does),
     * so that pthread_self()-based calls (raise, pthread_kill) work in the child. */
    void *tid_address = NULL;
    if (prctl(PR_GET_TID_ADDRESS, &tid_address, 0, 0, 0) != 0) tid_address = NULL;
    pid_t parent = getpid();
    int main_thread = (pid_t)syscall(SYS_gettid) == parent;
    int fd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD;
    if (tid_address != NULL) {
        args.flags |= CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
        args.child_tid = (uint64_t)(uintptr_t)tid_address;
    }
    args.pidfd = (uint64_t)(uintptr_t)&fd;
    args.exit_signal = 0; /* no SIGCHLD; not seen by wait(WAIT_ANY) */

    /* Fork handlers in pthread_atfork's order: the last registered prepares first. */
    pd_fork_prepare();
    kq_shim_run_fork_prepare();
    long pid = syscall(SYS_clone3, &args, sizeof args);
    int clone_error = errno;
    if (pid == 0) {
        kq_shim_run_fork_child();
        pd_fork_child();
        if (!(flags & PD_DAEMON) && main_thread) {
            /* The parent's exit closes its descriptors: the child dies with it. */
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
            if (getppid() != parent) (void)syscall(SYS_kill, getpid(), SIGKILL);
        }
        return 0;
    }
    kq_shim_run_fork_parent();
    if (pid < 0) {
        pd_fork_parent();
        errno = clone_error;
        return -1;
    }
    /* clone3 makes the pidfd close-on-exec; PD_CLOEXEC decides. */
    if (!(flags & PD_CLOEXEC)) (void)fcntl(fd, F_SETFD, 0);
    record((pid_t)pid, fd, flags);
    pd_fork_parent();
    *fdp = fd;
    return (pid_t)pid;
}

/* The pid of a pdfork'd child whose pidfs inode is `inode`, or 0 (pd_lock held). */
static pid_t cached_pid(ino_t inode) {
    for (int i = 0; i < object_capacity; i++)
        if (objects[i].used && objects[i].inode == inode) return objects[i].pid;
    return 0;
}

int pdgetpid(int fd, pid_t *pidp) {
    pid_t pid = 0;
    int kind = fd < 0 ? -1 : fdinfo_pid(fd, &pid);
    if (kind < 0 && fd >= 0 && errno == ENOSYS) return -1;
    if (kind != 1) {
        errno = EBADF; /* not open, or not a process descriptor (FreeBSD: EBADF) */
        return -1;
    }
    if (pid <= 0) {
        /* Reaped already: FreeBSD keeps the pid in the descriptor; so do we for pdfork's. */
        struct stat status;
        pid = 0;
        if (fstat(fd, &status) == 0 && atomic_load(&pd_active) > 0) {
            pthread_mutex_lock(&pd_lock);
            pid = cached_pid(status.st_ino);
            pthread_mutex_unlock(&pd_lock);
        }
        if (pid == 0) {
            errno = ESRCH;
            return -1;
        }
    }
    if (pidp == NULL) {
        errno = EFAULT;
        return -1;
    }
    *pidp = pid;
    return 0;
}

int pdkill(int fd, int signum) {
    /* FreeBSD checks the signal first: (u_int)signum > _SIG_MAXSIG (128) is EINVAL. Linux
     * has no signal above 64. */
    if (signum < 0 || signum > 128 || signum >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    pid_t pid = 0;
    int kind = fd < 0 ? -1 : fdinfo_pid(fd, &pid);
    if (kind < 0 && fd >= 0 && errno == ENOSYS) return -1;
    if (kind != 1) {
        errno = EBADF;
        return -1;
    }
    /* A zombie is signalled without error (0), a reaped process is ESRCH: as on FreeBSD. */
    if (syscall(SYS_pidfd_send_signal, fd, signum, NULL, 0) != 0) return -1;
    return 0;
}

/* ---- the interposers' side ---------------------------------------------------------------- */

int kq_procdesc_number_closing(int fd) {
    if (__builtin_expect(atomic_load_explicit(&pd_active, memory_order_relaxed) == 0, 1)) return 0;
    int was = 0;
    pthread_mutex_lock(&pd_lock);
    if (fd >= 0 && (size_t)fd < number_map_size && number_map[fd] != 0) {
        struct pd_object *object = &objects[number_map[fd] - 1];
        number_map[fd] = 0;
        if (object->numbers > 0) object->numbers--;
        was = 1;
    }
    pthread_mutex_unlock(&pd_lock);
    return was;
}

size_t kq_procdesc_number_limit(void) {
    if (__builtin_expect(atomic_load_explicit(&pd_active, memory_order_relaxed) == 0, 1)) return 0;
    pthread_mutex_lock(&pd_lock);
    size_t limit = number_map_size;
    pthread_mutex_unlock(&pd_lock);
    return limit;
}

void kq_procdesc_numbers_closed(void) {
    pthread_mutex_lock(&pd_lock);
    check_unreferenced(1);
    pthread_mutex_unlock(&pd_lock);
}

void kq_procdesc_number_copied(int from, int to) {
    if (__builtin_expect(atomic_load_explicit(&pd_active, memory_order_relaxed) == 0, 1)) return;
    pthread_mutex_lock(&pd_lock);
    if (from >= 0 && (size_t)from < number_map_size && number_map[from] != 0 && to >= 0 &&
        (size_t)to < number_map_size && number_map[to] == 0) {
        number_map[to] = number_map[from];
        objects[number_map[from] - 1].numbers++;
    }
    pthread_mutex_unlock(&pd_lock);
}

/* ---- wait: an explicit wait for a process descriptor's pid reaps it, as on FreeBSD ---------- */

/* The index of the live object for `pid`, or -1 (pd_lock held). */
static int object_for_pid(pid_t pid) {
    for (int i = 0; i < object_capacity; i++)
        if (objects[i].used && !objects[i].inherited && !objects[i].reaped && !objects[i].detached &&
            objects[i].pid == pid)
            return i;
    return -1;
}

/* __WALL when `pid` is a live process descriptor's child (Linux waits only for children that
 * signal SIGCHLD without it). */
static int wait_options(pid_t pid, int options) {
    if (pid <= 0 || __builtin_expect(atomic_load_explicit(&pd_active, memory_order_relaxed) == 0, 1))
        return options;
    pthread_mutex_lock(&pd_lock);
    int found = object_for_pid(pid) >= 0;
    pthread_mutex_unlock(&pd_lock);
    return found ? options | __WALL : options;
}

static void reaped_by_application(pid_t pid) {
    pthread_mutex_lock(&pd_lock);
    int index = object_for_pid(pid);
    if (index >= 0) objects[index].reaped = 1;
    pthread_mutex_unlock(&pd_lock);
}

typedef pid_t (*wait4_fn)(pid_t, int *, int, struct rusage *);
typedef pid_t (*waitpid_fn)(pid_t, int *, int);
typedef int (*waitid_fn)(idtype_t, id_t, siginfo_t *, int);
NEXT_SYMBOL(wait4, wait4_fn)
NEXT_SYMBOL(waitpid, waitpid_fn)
NEXT_SYMBOL(waitid, waitid_fn)

pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage) {
    wait4_fn fn = next_wait4();
    int adjusted = wait_options(pid, options);
    pid_t result = fn ? fn(pid, status, adjusted, usage) : (pid_t)syscall(SYS_wait4, pid, status, adjusted, usage);
    if (adjusted != options && result == pid) reaped_by_application(pid);
    return result;
}

pid_t waitpid(pid_t pid, int *status, int options) {
    waitpid_fn fn = next_waitpid();
    int adjusted = wait_options(pid, options);
    pid_t result = fn ? fn(pid, status, adjusted) : (pid_t)syscall(SYS_wait4, pid, status, adjusted, NULL);
    if (adjusted != options && result == pid) reaped_by_application(pid);
    return result;
}

int waitid(idtype_t type, id_t id, siginfo_t *info, int options) {
    waitid_fn fn = next_waitid();
    int adjusted = type == P_PID ? wait_options((pid_t)id, options) : options;
    int result = fn ? fn(type, id, info, adjusted) : (int)syscall(SYS_waitid, type, id, info, adjusted, NULL);
    if (adjusted != options && result == 0 && info != NULL && info->si_pid == (pid_t)id && !(options & WNOWAIT) &&
        (info->si_code == CLD_EXITED || info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED))
        reaped_by_application((pid_t)id);
    return result;
}
