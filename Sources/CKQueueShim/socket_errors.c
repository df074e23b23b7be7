/*
 * A socket's pending error belongs to the application. Reporting EV_EOF reads SO_ERROR,
 * which on Linux clears it; FreeBSD's filters read so_error without clearing it. The engine
 * keeps what it read (shim.c, kq_shim_take_socket_error), and these interposers hand it back
 * where the kernel would have: getsockopt(SO_ERROR) (shim.c); read, recv, recvfrom and
 * recvmsg once no data is left to read (data queued before the error comes first, as in the
 * kernel); write, send, sendto and sendmsg at once; connect where the kernel's own connect
 * would have returned it. Each error is given once.
 *
 * While no error is kept (no socket error was ever reported through a kqueue), each call
 * costs one relaxed atomic load before the real one (read: one more after it, for the
 * application's signalfds, signals.c).
 */
#define _GNU_SOURCE
#include "CKQueueShim.h"
#include "next_symbol.h"
#include "signal_consumers.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef ssize_t (*recvfrom_fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

NEXT_SYMBOL(read, read_fn)
NEXT_SYMBOL(recv, recv_fn)
NEXT_SYMBOL(recvfrom, recvfrom_fn)
NEXT_SYMBOL(recvmsg, recvmsg_fn)
NEXT_SYMBOL(write, write_fn)
NEXT_SYMBOL(send, send_fn)
NEXT_SYMBOL(sendto, sendto_fn)
NEXT_SYMBOL(sendmsg, sendmsg_fn)
NEXT_SYMBOL(connect, connect_fn)

/* A kept error a receive gets now: only once nothing is left to read. */
static int error_for_receive(int fd) {
    if (__builtin_expect(kq_shim_kept_socket_error(fd, 0) == 0, 1)) return 0;
    int queued = 0;
    if (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0) return 0;
    return kq_shim_kept_socket_error(fd, 1);
}

/* A kept error a send gets now. */
static int error_for_send(int fd) { return kq_shim_kept_socket_error(fd, 1); }

/* EVFILT_EMPTY (shim.c): set once a socket was armed; until then a send costs this one load. */
extern _Atomic int kq_shim_empty_armed_any;

static ssize_t sent(int fd, ssize_t result) {
    if (__builtin_expect(atomic_load_explicit(&kq_shim_empty_armed_any, memory_order_relaxed) != 0, 0) && result > 0)
        kq_shim_empty_sent(fd);
    return result;
}

#define FAIL_WITH(error)        \
    do {                        \
        errno = (error);        \
        return -1;              \
    } while (0)

ssize_t read(int fd, void *buffer, size_t count) {
    int error = error_for_receive(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    read_fn fn = next_read();
    ssize_t result = fn ? fn(fd, buffer, count) : syscall(SYS_read, fd, buffer, count);
    /* A read of the application's signalfd dequeues signals EVFILT_SIGNAL may have counted. */
    if (__builtin_expect(atomic_load_explicit(&kq_shim_application_signalfds_exist, memory_order_relaxed) != 0, 0))
        kq_shim_signalfd_was_read(fd, buffer, result);
    return result;
}

ssize_t recv(int fd, void *buffer, size_t count, int flags) {
    int error = error_for_receive(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    recv_fn fn = next_recv();
    return fn ? fn(fd, buffer, count, flags) : syscall(SYS_recvfrom, fd, buffer, count, flags, NULL, NULL);
}

ssize_t recvfrom(int fd, void *buffer, size_t count, int flags, struct sockaddr *address, socklen_t *length) {
    int error = error_for_receive(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    recvfrom_fn fn = next_recvfrom();
    return fn ? fn(fd, buffer, count, flags, address, length)
              : syscall(SYS_recvfrom, fd, buffer, count, flags, address, length);
}

ssize_t recvmsg(int fd, struct msghdr *message, int flags) {
    /* MSG_ERRQUEUE reads the error queue, not so_error. */
    int error = (flags & MSG_ERRQUEUE) ? 0 : error_for_receive(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    recvmsg_fn fn = next_recvmsg();
    return fn ? fn(fd, message, flags) : syscall(SYS_recvmsg, fd, message, flags);
}

ssize_t write(int fd, const void *buffer, size_t count) {
    int error = error_for_send(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    write_fn fn = next_write();
    return sent(fd, fn ? fn(fd, buffer, count) : syscall(SYS_write, fd, buffer, count));
}

ssize_t send(int fd, const void *buffer, size_t count, int flags) {
    int error = error_for_send(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    send_fn fn = next_send();
    return sent(fd, fn ? fn(fd, buffer, count, flags) : syscall(SYS_sendto, fd, buffer, count, flags, NULL, 0));
}

ssize_t sendto(int fd, const void *buffer, size_t count, int flags, const struct sockaddr *address,
               socklen_t length) {
    int error = error_for_send(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    sendto_fn fn = next_sendto();
    return sent(fd, fn ? fn(fd, buffer, count, flags, address, length)
                       : syscall(SYS_sendto, fd, buffer, count, flags, address, length));
}

ssize_t sendmsg(int fd, const struct msghdr *message, int flags) {
    int error = error_for_send(fd);
    if (__builtin_expect(error != 0, 0)) FAIL_WITH(error);
    sendmsg_fn fn = next_sendmsg();
    return sent(fd, fn ? fn(fd, message, flags) : syscall(SYS_sendmsg, fd, message, flags));
}

/* connect(2) runs first: the kernel's connect also moves a failed connection's state (to
 * unconnected). Where it would have returned the pending error, it finds none (the engine
 * took it) and says ECONNABORTED: the kept error is returned instead. */
int connect(int fd, const struct sockaddr *address, socklen_t length) {
    connect_fn fn = next_connect();
    int result = fn ? fn(fd, address, length) : (int)syscall(SYS_connect, fd, address, length);
    if (__builtin_expect(result == -1 && errno == ECONNABORTED, 0)) {
        int error = kq_shim_kept_socket_error(fd, 1);
        if (error != 0) errno = error;
    }
    return result;
}
