/*
 * kevent() must not consume a socket's pending error (FreeBSD's filters read so_error
 * without clearing it). After a kqueue reported the error (EV_EOF with the errno in
 * fflags), the application's own getsockopt(SO_ERROR), read, recv, recvfrom, recvmsg, write,
 * send, sendto, sendmsg and connect see it exactly as if no kqueue were involved. Each case
 * runs the same sequence of calls twice, with and without a kqueue, and compares them.
 */
#include "kqtest.h"

enum scenario { REFUSED, RESET_WITH_DATA };
enum operation { OP_READ, OP_RECV, OP_RECVFROM, OP_RECVMSG, OP_WRITE, OP_SEND, OP_SENDTO, OP_SENDMSG, OP_CONNECT, OP_GETSOCKOPT };
static const char *op_names[] = {"read", "recv", "recvfrom", "recvmsg", "write", "send", "sendto", "sendmsg", "connect", "getsockopt"};

struct outcome {
    long result;
    int error;
};

static struct sockaddr_in closed_port(void) {
    uint16_t port;
    int listener = kq_tcp_listener(&port, 1);
    close(listener);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    return address;
}

/* A socket whose error is pending: a refused connect, or a reset after 5 bytes of data. */
static int socket_with_error(enum scenario scenario, struct sockaddr_in *address) {
    if (scenario == REFUSED) {
        *address = closed_port();
        int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        CHECK_ERRNO(connect(fd, (struct sockaddr *)address, sizeof *address), EINPROGRESS);
        return fd;
    }
    int client, server;
    kq_tcp_pair(&client, &server);
    socklen_t length = sizeof *address;
    CHECK_SYS(getpeername(client, (struct sockaddr *)address, &length));
    kq_write_all(server, "hello", 5);
    struct linger hard = {1, 0};
    CHECK_SYS(setsockopt(server, SOL_SOCKET, SO_LINGER, &hard, sizeof hard));
    close(server);
    return client;
}

/* Waits until the error is there: through a kqueue (which reports it, EV_EOF with fflags),
 * or with poll(2) (which leaves it alone). */
static void wait_for_error(int fd, int with_kqueue, int expected) {
    if (!with_kqueue) {
        struct pollfd p = {fd, POLLOUT | POLLIN, 0};
        for (int i = 0; i < 500; i++) {
            CHECK_SYS(poll(&p, 1, 10));
            if (p.revents & (POLLERR | POLLHUP)) return;
        }
        FAILF("no error on descriptor %d within 5 s", fd);
    }
    int kq = kq_new();
    KQ_SET(kq, fd, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 5000);
    CHECK_MSG(ev.flags & EV_EOF, "expected EV_EOF: %s", kq_ev_str(&ev));
    CHECK_EQ_INT((int)ev.fflags, expected);
    close(kq);
}

static struct outcome perform(int fd, enum operation op, const struct sockaddr_in *address) {
    char buffer[16];
    struct iovec io = {buffer, sizeof buffer};
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    struct sockaddr_in from;
    socklen_t length = sizeof from;
    int value = 0;
    socklen_t value_length = sizeof value;
    errno = 0;
    long r = -2;
    switch (op) {
    case OP_READ: r = read(fd, buffer, sizeof buffer); break;
    case OP_RECV: r = recv(fd, buffer, sizeof buffer, 0); break;
    case OP_RECVFROM: r = recvfrom(fd, buffer, sizeof buffer, 0, (struct sockaddr *)&from, &length); break;
    case OP_RECVMSG: r = recvmsg(fd, &message, 0); break;
    case OP_WRITE: r = write(fd, "x", 1); break;
    case OP_SEND: r = send(fd, "x", 1, MSG_NOSIGNAL); break;
    case OP_SENDTO: r = sendto(fd, "x", 1, MSG_NOSIGNAL, NULL, 0); break;
    case OP_SENDMSG: io.iov_len = 1; r = sendmsg(fd, &message, MSG_NOSIGNAL); break;
    case OP_CONNECT: r = connect(fd, (const struct sockaddr *)address, sizeof *address); break;
    case OP_GETSOCKOPT: r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &value_length) == 0 ? value : -1; break;
    }
    struct outcome outcome = {r, r == -1 ? errno : 0};
    return outcome;
}

/* The calls `op`, then read, then read again, with or without a kqueue having reported. */
static void sequence(enum scenario scenario, enum operation op, int with_kqueue, struct outcome out[3]) {
    struct sockaddr_in address;
    int expected = scenario == REFUSED ? ECONNREFUSED : ECONNRESET;
    int fd = socket_with_error(scenario, &address);
    wait_for_error(fd, with_kqueue, expected);
    out[0] = perform(fd, op, &address);
    out[1] = perform(fd, OP_READ, &address);
    out[2] = perform(fd, OP_READ, &address);
    close(fd);
}

static void check_same_as_without_kqueue(enum scenario scenario) {
    signal(SIGPIPE, SIG_IGN); /* a write after the error: EPIPE, as without a kqueue */
    for (int op = OP_READ; op <= OP_GETSOCKOPT; op++) {
        struct outcome plain[3], watched[3];
        sequence(scenario, (enum operation)op, 0, plain);
        sequence(scenario, (enum operation)op, 1, watched);
        for (int i = 0; i < 3; i++)
            CHECK_MSG(plain[i].result == watched[i].result && plain[i].error == watched[i].error,
                      "%s then read, read (call %d): without a kqueue %ld/%s, after kevent() %ld/%s",
                      op_names[op], i, plain[i].result, kq_errname(plain[i].error), watched[i].result,
                      kq_errname(watched[i].error));
    }
}

TEST(test_socket_error_refused_connect_seen_by_the_application_after_kevent) {
    check_same_as_without_kqueue(REFUSED);
}

TEST(test_socket_error_reset_after_data_seen_by_the_application_after_kevent) {
    check_same_as_without_kqueue(RESET_WITH_DATA);
}

/* write(2) itself (not only send) hands back the kept error. */
TEST(test_socket_error_write_gets_the_error_after_kevent) {
    struct sockaddr_in address;
    int fd = socket_with_error(REFUSED, &address);
    wait_for_error(fd, 1, ECONNREFUSED);
    signal(SIGPIPE, SIG_IGN);
    CHECK_ERRNO(write(fd, "x", 1), ECONNREFUSED);
    close(fd);
}

/* Bad input: a socket that never connected. Watched through a kqueue (READ and WRITE, which
 * report nothing for it, as FreeBSD's filters), every call still gives what the kernel
 * gives without a kqueue, and no error is made up. */
TEST(test_socket_error_never_connected_socket_calls_unchanged) {
    signal(SIGPIPE, SIG_IGN);
    for (int watched = 0; watched <= 1; watched++) {
        int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        int kq = kq_new();
        if (watched) {
            KQ_SET(kq, fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
            KQ_SET(kq, fd, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
            CHECK_NO_EVENT(kq);
        }
        char buffer[4];
        CHECK_ERRNO(read(fd, buffer, sizeof buffer), ENOTCONN);
        CHECK_ERRNO(recv(fd, buffer, sizeof buffer, 0), ENOTCONN);
        CHECK_ERRNO(write(fd, "x", 1), EPIPE);
        CHECK_ERRNO(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
        int value = -1;
        socklen_t length = sizeof value;
        CHECK_SYS(getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length));
        CHECK_EQ_INT(value, 0);
        close(kq);
        close(fd);
    }
}

/* Bad input: descriptors that are not sockets pass through the interposers untouched, also
 * once the engine keeps an error for some socket (the kept-error table exists). */
TEST(test_socket_error_non_sockets_pass_through_with_an_error_kept) {
    struct sockaddr_in address;
    int failed = socket_with_error(REFUSED, &address);
    wait_for_error(failed, 1, ECONNREFUSED); /* kept, not yet handed back */
    int p[2];
    kq_pipe(p);
    CHECK_EQ_INT(write(p[1], "ab", 2), 2);
    char buffer[4];
    CHECK_EQ_INT(read(p[0], buffer, sizeof buffer), 2);
    int value = 0;
    socklen_t length = sizeof value;
    CHECK_ERRNO(getsockopt(p[0], SOL_SOCKET, SO_ERROR, &value, &length), ENOTSOCK);
    CHECK_ERRNO(recv(p[0], buffer, sizeof buffer, 0), ENOTSOCK);
    CHECK_ERRNO(send(p[1], "x", 1, 0), ENOTSOCK);
    int file = (int)CHECK_SYS(open("/dev/null", O_RDWR | O_CLOEXEC));
    CHECK_EQ_INT(write(file, "x", 1), 1);
    CHECK_EQ_INT(read(file, buffer, sizeof buffer), 0);
    CHECK_ERRNO(connect(file, (struct sockaddr *)&address, sizeof address), ENOTSOCK);
    close(file);
    close(p[0]);
    close(p[1]);
    /* The socket's own error is still there for it. */
    CHECK_SYS(getsockopt(failed, SOL_SOCKET, SO_ERROR, &value, &length));
    CHECK_EQ_INT(value, ECONNREFUSED);
    close(failed);
}

RUN_TESTS()
