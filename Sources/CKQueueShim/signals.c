/*
 * EVFILT_SIGNAL's process-wide half: a signal handler that counts each delivery of a watched
 * signal, wakes every kqueue through one eventfd, and then does what the application asked
 * for (its handler, SIG_IGN, or the default action), so that kqueue only observes.
 *
 * - The handler is installed while at least one knote watches the signal, with the
 *   application's own sa_mask and flags (SA_RESTART, SA_NODEFER, SA_ONSTACK), and removed
 *   (the application's disposition restored) with the last knote.
 * - sigaction() and signal() are interposed: while a signal is watched, the application sees
 *   and sets its own disposition, and the handler stays in place. An ignored SIGCHLD is not
 *   observed (FreeBSD does not record it, and SIG_IGN on SIGCHLD changes reaping).
 * - A fork child gets the application's dispositions back (no kqueue survives fork), so a
 *   program it execs inherits SIG_IGN where the application ignored a signal.
 *
 * - A signal blocked in every thread is counted when it is generated and stays pending for
 *   the application (FreeBSD activates the knote at generation, whatever the mask): a
 *   process-wide signalfd, never read, wakes every kqueue (edge-triggered) when a watched
 *   signal is queued, and kq_shim_signal_observe_pending() counts each watched signal it finds
 *   pending and not counted yet. Such an instance is then "counted while pending"
 *   (counted_pending): when it is later dequeued (the interposed sigwait, sigwaitinfo,
 *   sigtimedwait, or a read of an application signalfd) or delivered to the handler (after
 *   it is unblocked), it is not counted again; an instance nobody counted yet is counted
 *   there. So each instance is counted exactly once, at generation when the library can see
 *   it, at the latest when it is dequeued or delivered.
 *
 * Limits (docs/GUARANTEES.md): several sends of a standard signal while it is pending count
 * once (the kernel keeps one); several instances of a blocked real-time signal queued while an
 * earlier one is pending count as one at generation and the others when they are dequeued or
 * delivered; a signal directed at another thread that blocks it (pthread_kill) is counted when
 * it is dequeued or delivered; SIGKILL and SIGSTOP cannot be observed.
 */
#define _GNU_SOURCE
#include "CKQueueShim.h"
#include "next_symbol.h"
#include "signal_consumers.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KQ_NSIG 65

/* The interposers run before a sanitizer runtime is initialized (TSan installs its own
 * handlers through them): their fast path must not be instrumented. */
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define KQ_UNINSTRUMENTED __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef KQ_UNINSTRUMENTED
#define KQ_UNINSTRUMENTED
#endif

/* Set once any signal was watched: until then the interposers only pass calls on. */
static _Atomic int any_watch;

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

/* Deliveries seen per signal since the process started. */
static _Atomic uint64_t delivered[KQ_NSIG];
/* Knotes watching each signal, over all kqueues. Guarded by `lock`. */
static int watchers[KQ_NSIG];
/* 1 while our handler is installed for the signal. Read by the interposers. */
static _Atomic int installed[KQ_NSIG];
/* The application's disposition while our handler is installed, under a sequence lock (odd
 * while a writer changes it) so that the handler reads it without a lock. Writers hold
 * `lock` and block every signal while they write, so a handler never spins on its own thread. */
static struct sigaction application[KQ_NSIG];
static _Atomic unsigned sequence[KQ_NSIG];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int wake_fd = -1;
/* The process-wide signalfd whose mask is the watched signals: polled (edge-triggered) by the
 * kqueues with signal knotes, never read. Created and updated under `lock`. */
static _Atomic int pending_fd = -1;

/* Instances of each signal counted while still pending, not yet dequeued or delivered. */
static _Atomic int counted_pending[KQ_NSIG];
/* The observer's thread id while kq_shim_signal_observe_pending() looks at the pending set
 * (observers serialize on observe_lock, with every signal blocked), else 0: dequeuers wait
 * for it to clear, so that an instance is counted by exactly one side. */
static _Atomic int observing;
static pthread_mutex_t observe_lock = PTHREAD_MUTEX_INITIALIZER;

/* Per thread, since the last kq_shim_signal_interruptions_reset(): our handler ran for a signal
 * the application ignores (or whose default is to ignore), and: an application handler ran.
 * A wait interrupted only by the first kind was not interrupted as far as the application can
 * tell (FreeBSD discards such a signal and wakes the wait through the knote instead). */
static __thread int transparent_interruptions __attribute__((tls_model("initial-exec")));
static __thread int application_interruptions __attribute__((tls_model("initial-exec")));

KQ_UNINSTRUMENTED static sigaction_fn real_sigaction(void) {
    static _Atomic(sigaction_fn) real;
    sigaction_fn fn = atomic_load_explicit(&real, memory_order_relaxed);
    if (fn == NULL) {
        fn = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
        atomic_store_explicit(&real, fn, memory_order_relaxed);
    }
    return fn;
}

KQ_UNINSTRUMENTED static int valid_signal(int sig) { return sig > 0 && sig < KQ_NSIG; }

/* The application's current disposition (lock-free, for the handler). */
KQ_UNINSTRUMENTED static void read_application(int sig, struct sigaction *out) {
    for (;;) {
        unsigned before = atomic_load_explicit(&sequence[sig], memory_order_acquire);
        if (before & 1) continue;
        memcpy(out, &application[sig], sizeof *out);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&sequence[sig], memory_order_relaxed) == before) return;
    }
}

/* Called with `lock` held (or in a fork child). */
static void write_application(int sig, const struct sigaction *action) {
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    atomic_fetch_add_explicit(&sequence[sig], 1, memory_order_acq_rel);
    memcpy(&application[sig], action, sizeof *action);
    atomic_fetch_add_explicit(&sequence[sig], 1, memory_order_release);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

KQ_UNINSTRUMENTED static int is_ignored_by_default(int sig) {
    return sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH;
}

KQ_UNINSTRUMENTED static int stops_by_default(int sig) { return sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU; }

/* What a disposition is: decided by the handler value (SA_SIGINFO only says how a real
 * handler is called; {SIG_DFL, SA_SIGINFO} is what SA_RESETHAND leaves behind). */
KQ_UNINSTRUMENTED static int is_ignore(const struct sigaction *a) { return a->sa_handler == SIG_IGN; }
KQ_UNINSTRUMENTED static int is_default(const struct sigaction *a) { return a->sa_handler == SIG_DFL; }
KQ_UNINSTRUMENTED static int is_caught(const struct sigaction *a) { return !is_ignore(a) && !is_default(a); }

/* `lock` is taken with every signal blocked, so no handler (ours or the application's, which
 * may call the interposed sigaction) ever runs on a thread that holds it. */
static sigset_t fork_saved_mask;

static void lock_blocking_signals(sigset_t *saved) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, saved);
    pthread_mutex_lock(&lock);
}

static void unlock_restoring_signals(const sigset_t *saved) {
    pthread_mutex_unlock(&lock);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static int install(int sig, const struct sigaction *app);

/* Counts one more delivery of `sig` and wakes every kqueue. Async-signal-safe. */
KQ_UNINSTRUMENTED static void count_delivery(int sig) {
    atomic_fetch_add_explicit(&delivered[sig], 1, memory_order_relaxed);
    int fd = atomic_load_explicit(&wake_fd, memory_order_relaxed);
    if (fd >= 0) {
        uint64_t one = 1;
        /* Raw write: the interposed one checks socket errors, and this is a signal handler. */
        (void)!syscall(SYS_write, fd, &one, sizeof one);
    }
}

/* An instance of `sig` left the pending set (dequeued by the application, or delivered to the
 * handler): counted now unless it was counted while pending. Async-signal-safe; the wait for
 * an observer is a few system calls long, on another thread (an observer blocks every signal,
 * so it never runs a handler). */
KQ_UNINSTRUMENTED static void account_dequeued(int sig) {
    int observer = atomic_load_explicit(&observing, memory_order_seq_cst);
    if (observer != 0) {
        /* Never on the observer's own thread (a sanitizer runtime may run a deferred handler
         * there, whatever the mask): that would wait forever. */
        int self = (int)syscall(SYS_gettid);
        while (observer != 0 && observer != self) observer = atomic_load_explicit(&observing, memory_order_seq_cst);
    }
    int counted = atomic_load_explicit(&counted_pending[sig], memory_order_seq_cst);
    while (counted > 0) {
        if (atomic_compare_exchange_weak_explicit(&counted_pending[sig], &counted, counted - 1, memory_order_seq_cst,
                                                  memory_order_seq_cst))
            return;
    }
    count_delivery(sig);
}

/* Runs asynchronously, unknown to a sanitizer runtime: not instrumented. */
KQ_UNINSTRUMENTED static void handler(int sig, siginfo_t *info, void *context) {
    int saved = errno;
    account_dequeued(sig);
    struct sigaction app;
    read_application(sig, &app);
    errno = saved;
    if (is_caught(&app)) {
        application_interruptions = 1;
        if (app.sa_flags & SA_SIGINFO) {
            app.sa_sigaction(sig, info, context);
        } else {
            app.sa_handler(sig);
        }
        return;
    }
    if (is_ignore(&app) || is_ignored_by_default(sig)) {
        transparent_interruptions = 1;
        return;
    }
    application_interruptions = 1;
    if (stops_by_default(sig)) {
        kill(getpid(), SIGSTOP);
        return;
    }
    /* Terminate (and dump core): as if the handler had never been there. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction_fn fn = real_sigaction();
    if (fn) fn(sig, &dfl, NULL);
    /* Raw system calls: a sanitizer's interceptors of pthread_sigmask and raise may defer
     * or filter signals, and this must act like the kernel's default action. */
    uint64_t mask = 1ULL << (sig - 1);
    syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &mask, NULL, sizeof mask);
    syscall(SYS_tgkill, (long)getpid(), (long)syscall(SYS_gettid), (long)sig);
    /* Still alive (the signal does not kill here, e.g. process 1 of a namespace): keep
     * observing. sigaction is async-signal-safe. */
    install(sig, &app);
}

/* Installs our handler with the application's mask and flags. Called with `lock` held (or from
 * the handler, when the default action did not kill). */
KQ_UNINSTRUMENTED static int install(int sig, const struct sigaction *app) {
    sigaction_fn fn = real_sigaction();
    if (!fn) return ENOSYS;
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = handler;
    if (is_caught(app)) {
        ours.sa_mask = app->sa_mask;
    } else {
        sigemptyset(&ours.sa_mask);
    }
    /* The application's SA_RESTART, SA_NODEFER and SA_ONSTACK apply to its handler, and
     * SIGCHLD's SA_NOCLDSTOP and SA_NOCLDWAIT always (they change what the kernel does with
     * children); SA_RESETHAND is not emulated while the signal is watched. An ignored or
     * defaulted signal restarts interrupted calls, as it never interrupted them before. */
    int flags = is_caught(app) ? (app->sa_flags & (SA_RESTART | SA_NODEFER | SA_ONSTACK)) : SA_RESTART;
    if (sig == SIGCHLD) flags |= app->sa_flags & (SA_NOCLDSTOP | SA_NOCLDWAIT);
    ours.sa_flags = SA_SIGINFO | flags;
    if (fn(sig, &ours, NULL) != 0) return errno;
    atomic_store_explicit(&installed[sig], 1, memory_order_release);
    return 0;
}

/* SIGKILL and SIGSTOP cannot be caught or blocked: accepted as on FreeBSD, never observed
 * (their dispositions are not even read: the kernel's are fixed). */
static int observable_at_all(int sig) { return sig != SIGKILL && sig != SIGSTOP; }

/* Whether our handler can stand in for `app` on `sig`. */
static int observable(int sig, const struct sigaction *app) {
    if (!observable_at_all(sig)) return 0;
    /* FreeBSD does not record an ignored SIGCHLD; replacing it would change reaping. */
    return !(sig == SIGCHLD && is_ignore(app));
}

/* Brings the real disposition in line with the application's record while watched. Called
 * with `lock` held. */
static int apply_watched(int sig, const struct sigaction *app) {
    if (observable(sig, app)) return install(sig, app);
    sigaction_fn fn = real_sigaction();
    if (fn && fn(sig, app, NULL) != 0) return errno;
    atomic_store_explicit(&installed[sig], 0, memory_order_release);
    return 0;
}

/* The kernel's sigset_t size (signalfd4 wants it, not glibc's 128 bytes). */
#define KQ_SIGSET_BYTES 8

/* The signalfd's mask: every watched signal. Called with `lock` held. */
static void update_pending_mask(void) {
    int fd = atomic_load_explicit(&pending_fd, memory_order_relaxed);
    if (fd < 0) return;
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig = 1; sig < KQ_NSIG; sig++) {
        if (watchers[sig] > 0 && sig != SIGKILL && sig != SIGSTOP) sigaddset(&mask, sig);
    }
    /* Only EINVAL/EBADF can fail this, for a descriptor made above: nothing to report. */
    (void)syscall(SYS_signalfd4, fd, &mask, KQ_SIGSET_BYTES, 0);
}

int kq_shim_signal_watch(int sig) {
    if (!valid_signal(sig)) return EINVAL;
    atomic_store_explicit(&any_watch, 1, memory_order_seq_cst);
    sigset_t saved;
    lock_blocking_signals(&saved);
    int error = 0;
    if (atomic_load_explicit(&wake_fd, memory_order_relaxed) < 0) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) {
            error = errno;
        } else {
            atomic_store_explicit(&wake_fd, fd, memory_order_release);
        }
    }
    if (error == 0 && atomic_load_explicit(&pending_fd, memory_order_relaxed) < 0) {
        sigset_t none;
        sigemptyset(&none);
        int fd = (int)syscall(SYS_signalfd4, -1, &none, KQ_SIGSET_BYTES, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0) {
            error = errno;
        } else {
            atomic_store_explicit(&pending_fd, fd, memory_order_release);
        }
    }
    if (error == 0 && watchers[sig] == 0 && observable_at_all(sig)) {
        sigaction_fn fn = real_sigaction();
        struct sigaction current;
        if (!fn || fn(sig, NULL, &current) != 0) {
            error = fn ? errno : ENOSYS;
        } else {
            write_application(sig, &current);
            error = apply_watched(sig, &current);
        }
    }
    if (error == 0 && watchers[sig]++ == 0) update_pending_mask();
    unlock_restoring_signals(&saved);
    return error;
}

void kq_shim_signal_unwatch(int sig) {
    if (!valid_signal(sig)) return;
    sigset_t saved;
    lock_blocking_signals(&saved);
    if (watchers[sig] > 0 && --watchers[sig] == 0) {
        if (atomic_load_explicit(&installed[sig], memory_order_relaxed)) {
            struct sigaction app;
            read_application(sig, &app);
            sigaction_fn fn = real_sigaction();
            if (fn) fn(sig, &app, NULL);
            atomic_store_explicit(&installed[sig], 0, memory_order_release);
        }
        /* Unwatched, nobody counts: a later watch starts from what is pending then. */
        atomic_store_explicit(&counted_pending[sig], 0, memory_order_seq_cst);
        update_pending_mask();
    }
    unlock_restoring_signals(&saved);
}

uint64_t kq_shim_signal_count(int sig) {
    return valid_signal(sig) ? atomic_load_explicit(&delivered[sig], memory_order_relaxed) : 0;
}

void kq_shim_signal_interruptions_reset(void) {
    transparent_interruptions = 0;
    application_interruptions = 0;
}

int kq_shim_signal_application_handler_ran(void) { return application_interruptions; }

int kq_shim_signal_interruption_was_transparent(void) {
    return transparent_interruptions && !application_interruptions;
}

int kq_shim_signal_wake_fd(void) { return atomic_load_explicit(&wake_fd, memory_order_acquire); }

int kq_shim_signal_pending_fd(void) { return atomic_load_explicit(&pending_fd, memory_order_acquire); }

int kq_shim_signal_observe_pending(void) {
    sigset_t all, saved, pending;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    pthread_mutex_lock(&observe_lock);
    atomic_store_explicit(&observing, (int)syscall(SYS_gettid), memory_order_seq_cst);
    int counted = 0;
    /* With every signal blocked here, sigpending() is the whole pending set this thread can
     * see: the process's and this thread's own. */
    if (sigpending(&pending) == 0) {
        for (int sig = 1; sig < KQ_NSIG; sig++) {
            if (!atomic_load_explicit(&installed[sig], memory_order_acquire) || !sigismember(&pending, sig)) continue;
            int none = 0;
            if (atomic_compare_exchange_strong(&counted_pending[sig], &none, 1)) {
                atomic_fetch_add_explicit(&delivered[sig], 1, memory_order_relaxed);
                counted++;
            }
        }
    }
    atomic_store_explicit(&observing, 0, memory_order_seq_cst);
    pthread_mutex_unlock(&observe_lock);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    /* What this observer counted is every kqueue's news: another kqueue whose look at the same
     * signalfd edge found the instance already counted here must still re-check its knotes. */
    int fd = atomic_load_explicit(&wake_fd, memory_order_acquire);
    if (counted > 0 && fd >= 0) {
        uint64_t one = 1;
        (void)!syscall(SYS_write, fd, &one, sizeof one);
    }
    return counted;
}

/* fork: the lock is held across fork (so no disposition is half-written in the child). */
void kq_shim_signal_fork_prepare(void) {
    sigset_t saved;
    lock_blocking_signals(&saved);
    fork_saved_mask = saved;
}

void kq_shim_signal_fork_parent(void) { unlock_restoring_signals(&fork_saved_mask); }

void kq_shim_signal_fork_child(void) {
    /* No kqueue survives fork: give the application its dispositions back, and close the
     * eventfd shared with the parent. */
    sigaction_fn fn = real_sigaction();
    for (int sig = 1; sig < KQ_NSIG; sig++) {
        watchers[sig] = 0;
        if (!atomic_load_explicit(&installed[sig], memory_order_relaxed)) continue;
        struct sigaction app;
        read_application(sig, &app);
        if (fn) fn(sig, &app, NULL);
        atomic_store_explicit(&installed[sig], 0, memory_order_relaxed);
    }
    int fd = atomic_exchange_explicit(&wake_fd, -1, memory_order_relaxed);
    if (fd >= 0) kq_shim_real_close(fd);
    fd = atomic_exchange_explicit(&pending_fd, -1, memory_order_relaxed);
    if (fd >= 0) kq_shim_real_close(fd);
    for (int sig = 1; sig < KQ_NSIG; sig++) atomic_store_explicit(&counted_pending[sig], 0, memory_order_relaxed);
    atomic_store_explicit(&observing, 0, memory_order_relaxed);
    pthread_mutex_init(&observe_lock, NULL);
    pthread_mutex_init(&lock, NULL);
    pthread_sigmask(SIG_SETMASK, &fork_saved_mask, NULL);
}

/* ---- interposers: the application keeps seeing and setting its own disposition ---------- */

static int watched_sigaction(sigaction_fn fn, int sig, const struct sigaction *act, struct sigaction *old);

KQ_UNINSTRUMENTED int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    sigaction_fn fn = real_sigaction();
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    if (!valid_signal(sig) || !atomic_load_explicit(&any_watch, memory_order_seq_cst)) return fn(sig, act, old);
    return watched_sigaction(fn, sig, act, old);
}

/* sigaction() once signals are watched: always under the lock. */
static int watched_sigaction(sigaction_fn fn, int sig, const struct sigaction *act, struct sigaction *old) {
    /* Always under the lock: a watch that starts meanwhile must not miss this change. */
    sigset_t saved;
    lock_blocking_signals(&saved);
    if (watchers[sig] == 0 || !observable_at_all(sig)) {
        int result = fn(sig, act, old);
        int error = errno;
        unlock_restoring_signals(&saved);
        errno = error;
        return result;
    }
    struct sigaction previous;
    read_application(sig, &previous);
    if (act) {
        write_application(sig, act);
        int error = apply_watched(sig, act);
        if (error) {
            write_application(sig, &previous);
            (void)apply_watched(sig, &previous);
            unlock_restoring_signals(&saved);
            errno = error;
            return -1;
        }
    }
    unlock_restoring_signals(&saved);
    if (old) *old = previous;
    return 0;
}

KQ_UNINSTRUMENTED sighandler_t signal(int sig, sighandler_t handler_function) {
    /* glibc's signal(): BSD semantics, through the sigaction above. */
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler_function;
    sigemptyset(&act.sa_mask);
    if (valid_signal(sig)) sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}

/* ---- interposers: the application's own dequeues of a pending signal ------------------- */

/* An instance the application dequeued: counted unless counted while pending. */
KQ_UNINSTRUMENTED static void application_dequeued(int sig) {
    if (valid_signal(sig) && atomic_load_explicit(&installed[sig], memory_order_acquire)) account_dequeued(sig);
}

typedef int (*sigwait_fn)(const sigset_t *, int *);
typedef int (*sigwaitinfo_fn)(const sigset_t *, siginfo_t *);
typedef int (*sigtimedwait_fn)(const sigset_t *, siginfo_t *, const struct timespec *);
typedef int (*signalfd_fn)(int, const sigset_t *, int);
NEXT_SYMBOL(sigwait, sigwait_fn)
NEXT_SYMBOL(sigwaitinfo, sigwaitinfo_fn)
NEXT_SYMBOL(sigtimedwait, sigtimedwait_fn)
NEXT_SYMBOL(signalfd, signalfd_fn)

int sigwait(const sigset_t *set, int *sig) {
    sigwait_fn fn = next_sigwait();
    if (fn == NULL) return ENOSYS;
    int result = fn(set, sig);
    if (result == 0) application_dequeued(*sig);
    return result;
}

int sigwaitinfo(const sigset_t *set, siginfo_t *info) {
    sigwaitinfo_fn fn = next_sigwaitinfo();
    if (fn == NULL) {
        errno = ENOSYS;
        return -1;
    }
    int result = fn(set, info);
    if (result > 0) application_dequeued(result);
    return result;
}

int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout) {
    sigtimedwait_fn fn = next_sigtimedwait();
    if (fn == NULL) {
        errno = ENOSYS;
        return -1;
    }
    int result = fn(set, info, timeout);
    if (result > 0) application_dequeued(result);
    return result;
}

/* The application's signalfds (numbers below 65,536), whose reads dequeue signals. */
#define KQ_SIGNALFD_WORDS 1024
static _Atomic uint64_t application_signalfds[KQ_SIGNALFD_WORDS];
_Atomic int kq_shim_application_signalfds_exist;

int signalfd(int fd, const sigset_t *mask, int flags) {
    signalfd_fn fn = next_signalfd();
    int result = fn ? fn(fd, mask, flags) : (int)syscall(SYS_signalfd4, fd, mask, KQ_SIGSET_BYTES, flags);
    if (result >= 0 && result < KQ_SIGNALFD_WORDS * 64) {
        atomic_fetch_or(&application_signalfds[result / 64], 1ULL << (result % 64));
        atomic_store(&kq_shim_application_signalfds_exist, 1);
    }
    return result;
}

size_t kq_shim_signalfd_number_limit(void) {
    return atomic_load_explicit(&kq_shim_application_signalfds_exist, memory_order_relaxed) ? KQ_SIGNALFD_WORDS * 64 : 0;
}

void kq_shim_signalfd_forget(int fd) {
    if (atomic_load_explicit(&kq_shim_application_signalfds_exist, memory_order_relaxed) == 0) return;
    if (fd < 0 || fd >= KQ_SIGNALFD_WORDS * 64) return;
    atomic_fetch_and(&application_signalfds[fd / 64], ~(1ULL << (fd % 64)));
}

void kq_shim_signalfd_was_read(int fd, const void *buffer, ssize_t length) {
    if (fd < 0 || fd >= KQ_SIGNALFD_WORDS * 64 || length <= 0) return;
    if (!((atomic_load(&application_signalfds[fd / 64]) >> (fd % 64)) & 1)) return;
    const struct signalfd_siginfo *records = buffer;
    for (ssize_t i = 0; i < length / (ssize_t)sizeof *records; i++) application_dequeued((int)records[i].ssi_signo);
}
