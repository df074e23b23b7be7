/*
 * SPEC.md 3, EVFILT_EMPTY (FreeBSD's filt_soempty): ready when the socket's send queue is
 * empty, `data` the bytes still queued (so 0 in every event). TCP: sent data counts until it
 * is acknowledged. Other sockets (UNIX stream, datagram) and listening sockets: ready at once,
 * as in FreeBSD 12, whose UNIX sockets append straight to the peer's receive buffer.
 * Not a socket: EINVAL (FreeBSD's fo_kqfilter of pipes, vnodes and kqueues).
 */
#include "kqtest.h"

#include <sys/eventfd.h>
#include <sys/uio.h>

/* A loopback TCP pair whose server's receive window is small from the handshake on (set on
 * the listener, inherited by the accepted socket) and whose client's send buffer is small: a
 * full send queue then holds data the peer cannot take (nor acknowledge) until it reads. */
static void tcp_pair_small_window(int *client, int *server) {
    int lfd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int size = 4096;
    CHECK_SYS(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_SYS(bind(lfd, (struct sockaddr *)&sa, sizeof sa));
    CHECK_SYS(listen(lfd, 1));
    socklen_t len = sizeof sa;
    CHECK_SYS(getsockname(lfd, (struct sockaddr *)&sa, &len));
    *client = kq_tcp_connect(ntohs(sa.sin_port));
    *server = kq_tcp_accept(lfd);
    close(lfd);
    size = 16384;
    CHECK_SYS(setsockopt(*client, SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
    kq_nonblock(*client);
    kq_nonblock(*server);
}

/* A TCP pair whose client has its send queue full: the server reads nothing yet. */
static size_t tcp_pair_with_full_queue(int *client, int *server) {
    tcp_pair_small_window(client, server);
    return kq_fill(*client);
}

static int outq(int fd) {
    int n = -1;
    CHECK_SYS(ioctl(fd, TIOCOUTQ, &n));
    return n;
}

/* Reads what `fd` has now. */
static void drain(int fd) {
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {}
}

/* Reads the server side until the client's EMPTY knote fires; returns it (bounded: 5 s). */
static struct kevent read_until_empty_fires(int kq, int client, int server) {
    int64_t deadline = kq_now_ns() + 5000000000LL;
    struct kevent ev;
    memset(&ev, 0, sizeof ev);
    while (kq_now_ns() < deadline) {
        drain(server);
        int n = KQ_WAIT(kq, &ev, 1, 1);
        if (n == 1 && ev.ident == (uintptr_t)client && ev.filter == EVFILT_EMPTY) return ev;
    }
    FAILF("EVFILT_EMPTY did not fire within 5 s (client outq %d)", outq(client));
}

TEST(test_empty_tcp_idle_socket_ready_at_once_data_zero_level_triggered) {
    int client, server;
    kq_tcp_pair(&client, &server);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD, 0, 0, (void *)7);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, client);
    CHECK_EQ_INT(ev.filter, EVFILT_EMPTY);
    CHECK_EQ_INT(ev.data, 0);
    CHECK_EQ_HEX(ev.fflags, 0);
    CHECK_EQ_HEX(ev.flags, 0);
    CHECK(ev.udata == (void *)7);
    /* Level-triggered: returned again while the queue stays empty. */
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.filter, EVFILT_EMPTY);
    close(kq);
    close(client);
    close(server);
}

TEST(test_empty_tcp_fires_once_peer_acknowledged_everything) {
    int client, server;
    size_t queued = tcp_pair_with_full_queue(&client, &server);
    CHECK(queued > 0);
    CHECK(outq(client) > 0);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    struct kevent ev = read_until_empty_fires(kq, client, server);
    CHECK_EQ_INT(ev.data, 0);
    CHECK_EQ_INT(outq(client), 0);
    close(kq);
    close(client);
    close(server);
}

TEST(test_empty_tcp_not_ready_while_data_is_unacknowledged_then_level_stops_after_write) {
    int client, server;
    tcp_pair_small_window(&client, &server);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK(kq_fill(client) > 0);
    /* Queued and unacknowledged: the level knote is not returned any more. */
    CHECK_NO_EVENT_WITHIN(kq, 50);
    ev = read_until_empty_fires(kq, client, server);
    CHECK_EQ_INT(ev.data, 0);
    close(kq);
    close(client);
    close(server);
}

TEST(test_empty_tcp_ev_clear_fires_once_per_drain) {
    int client, server;
    kq_tcp_pair(&client, &server);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD | EV_CLEAR, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev); /* empty at registration: fires once */
    CHECK_EQ_HEX(ev.flags, EV_CLEAR);
    CHECK_NO_EVENT_WITHIN(kq, 30);
    for (int round = 0; round < 3; round++) {
        /* The send interposer tells the idle knote at once (the look for sends it cannot see
         * comes only every second). */
        int64_t start = kq_now_ns();
        kq_write_n(client, 1000 * (size_t)(round + 1));
        ev = read_until_empty_fires(kq, client, server);
        CHECK_MSG(kq_now_ns() - start < 500000000, "EV_CLEAR after a send: %lld ms", (long long)((kq_now_ns() - start) / 1000000));
        CHECK_EQ_INT(ev.data, 0);
        CHECK_EQ_HEX(ev.flags, EV_CLEAR);
        CHECK_NO_EVENT_WITHIN(kq, 30);
    }
    /* writev is not interposed: the acknowledged-byte count, looked at every second, shows it. */
    struct iovec part = {(void *)"abcdef", 6};
    CHECK_EQ_INT(writev(client, &part, 1), 6);
    struct kevent later;
    CHECK_EVENT_UNTIL(kq, client, EVFILT_EMPTY, 3000, kq_pred_any, 0, &later);
    CHECK_EQ_INT(later.data, 0);
    close(kq);
    close(client);
    close(server);
}

TEST(test_empty_tcp_oneshot_after_write_fires_once_and_is_deleted) {
    int client, server;
    size_t queued = tcp_pair_with_full_queue(&client, &server);
    CHECK(queued > 0);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    struct kevent ev = read_until_empty_fires(kq, client, server);
    CHECK_EQ_HEX(ev.flags, EV_ONESHOT);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_change_errno(kq, client, EVFILT_EMPTY, EV_DELETE, 0, 0, NULL), ENOENT);
    close(kq);
    close(client);
    close(server);
}

TEST(test_empty_tcp_disable_enable) {
    int client, server;
    kq_tcp_pair(&client, &server);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD | EV_DISABLE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ENABLE, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.filter, EVFILT_EMPTY);
    close(kq);
    close(client);
    close(server);
}

/* A reset connection has nothing left to send (FreeBSD drops the send buffer; Linux keeps
 * counting the purged queue in SIOCOUTQ). */
TEST(test_empty_tcp_reset_with_data_queued_fires) {
    int client, server;
    CHECK(tcp_pair_with_full_queue(&client, &server) > 0);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 30);
    struct linger hard = {1, 0};
    CHECK_SYS(setsockopt(server, SOL_SOCKET, SO_LINGER, &hard, sizeof hard));
    close(server);
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, client, EVFILT_EMPTY, 2000, kq_pred_any, 0, &ev);
    CHECK_EQ_INT(ev.data, 0);
    close(kq);
    close(client);
}

/* After shutdown(SHUT_WR) the FIN takes a sequence number that SIOCOUTQ counts until it is
 * acknowledged; it is not data: the queue is empty at once. */
TEST(test_empty_tcp_after_shutdown_is_empty_at_once) {
    int client, server;
    kq_tcp_pair(&client, &server);
    kq_write_n(client, 100);
    char buf[100];
    kq_read_n(server, buf, sizeof buf);
    CHECK_SYS(shutdown(client, SHUT_WR));
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, client, EVFILT_EMPTY, 2000, kq_pred_any, 0, &ev);
    CHECK_EQ_INT(ev.data, 0);
    close(kq);
    close(client);
    close(server);
}

TEST(test_empty_tcp_listening_and_unconnected_sockets_ready_at_once) {
    uint16_t port;
    int listener = kq_tcp_listener(&port, 1);
    int fresh = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM, 0));
    int kq = kq_new();
    KQ_SET(kq, listener, EVFILT_EMPTY, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    KQ_SET(kq, fresh, EVFILT_EMPTY, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    struct kevent ev[4];
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 4, 0), 2);
    CHECK_EQ_INT(ev[0].data, 0);
    CHECK_EQ_INT(ev[1].data, 0);
    close(kq);
    close(listener);
    close(fresh);
}

/* FreeBSD 12: a UNIX stream socket's send buffer never holds data (a send appends to the
 * peer's receive buffer), so EMPTY is ready at once even while the peer has not read. */
TEST(test_empty_unix_stream_ready_at_once_even_with_unread_data) {
    int fds[2];
    kq_socketpair(SOCK_STREAM, fds);
    kq_write_n(fds[0], 1000);
    int kq = kq_new();
    KQ_SET(kq, fds[0], EVFILT_EMPTY, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, fds[0]);
    CHECK_EQ_INT(ev.data, 0);
    close(kq);
    close(fds[0]);
    close(fds[1]);
}

TEST(test_empty_datagram_sockets_ready_at_once) {
    int fds[2];
    kq_socketpair(SOCK_DGRAM, fds);
    int udp = (int)CHECK_SYS(socket(AF_INET, SOCK_DGRAM, 0));
    int kq = kq_new();
    KQ_SET(kq, fds[0], EVFILT_EMPTY, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    KQ_SET(kq, udp, EVFILT_EMPTY, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    struct kevent ev[4];
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 4, 0), 2);
    close(kq);
    close(fds[0]);
    close(fds[1]);
    close(udp);
}

/* READ and EMPTY share the descriptor's epoll registration: each keeps its own semantics. */
TEST(test_empty_and_read_on_one_socket) {
    int client, server;
    kq_tcp_pair(&client, &server);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD | EV_CLEAR, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.filter, EVFILT_EMPTY);
    CHECK_NO_EVENT(kq);
    kq_write_n(server, 10);
    CHECK_EVENT_UNTIL(kq, client, EVFILT_READ, 2000, kq_pred_data_eq, 10, &ev);
    /* Level READ is returned again; EMPTY (EV_CLEAR, nothing sent) is not. */
    struct kevent evs[4];
    int n = KQ_WAIT(kq, evs, 4, 20);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(evs[0].filter, EVFILT_READ);
    KQ_SET(kq, client, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    kq_write_n(client, 10);
    ev = read_until_empty_fires(kq, client, server);
    CHECK_EQ_INT(ev.data, 0);
    close(kq);
    close(client);
    close(server);
}

/* close(2) removes the knote, as for READ and WRITE (f_isfd): the number reused by another
 * socket has no EMPTY knote. */
TEST(test_empty_close_removes_knote) {
    int client, server;
    CHECK(tcp_pair_with_full_queue(&client, &server) > 0);
    int kq = kq_new();
    KQ_SET(kq, client, EVFILT_EMPTY, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    int number = client;
    close(client);
    CHECK_EQ_INT(kq_change_errno(kq, number, EVFILT_EMPTY, EV_DELETE, 0, 0, NULL), EBADF);
    int again = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_EQ_INT(again, number);
    CHECK_EQ_INT(kq_change_errno(kq, again, EVFILT_EMPTY, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(again);
    close(kq);
    close(server);
}

/* FreeBSD: EVFILT_EMPTY attaches through the file's fo_kqfilter; pipes (pipe_kqfilter),
 * files and directories (vfs_kqfilter) and kqueues (kqueue_kqfilter) answer EINVAL. A number
 * that is not open: EBADF (fget). */
TEST(test_empty_bad_input_einval_for_non_sockets_ebadf_for_closed) {
    int kq = kq_new();
    int fds[2];
    kq_pipe(fds);
    CHECK_EQ_INT(kq_change_errno(kq, fds[0], EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
    CHECK_EQ_INT(kq_change_errno(kq, fds[1], EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
    int file = (int)CHECK_SYS(open("/proc/self/exe", O_RDONLY));
    CHECK_EQ_INT(kq_change_errno(kq, file, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
    int dir = (int)CHECK_SYS(open("/", O_RDONLY | O_DIRECTORY));
    CHECK_EQ_INT(kq_change_errno(kq, dir, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
    int other = kq_new();
    CHECK_EQ_INT(kq_change_errno(kq, other, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
    int event = (int)CHECK_SYS(eventfd(0, 0));
    CHECK_EQ_INT(kq_change_errno(kq, event, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EINVAL);
    CHECK_EQ_INT(kq_change_errno(kq, 9999, EVFILT_EMPTY, EV_ADD, 0, 0, NULL), EBADF);
    /* Nothing was registered: a READ knote on the pipe still works normally. */
    KQ_SET(kq, fds[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(write(fds[1], "x", 1), 1);
    struct kevent ev;
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 1000);
    CHECK_EQ_INT(ev.filter, EVFILT_READ);
    close(event);
    close(other);
    close(dir);
    close(file);
    close(fds[0]);
    close(fds[1]);
    close(kq);
}

/* A waiting knote costs one timerfd per kqueue, however many sockets: descriptors come back
 * when the kqueue closes. */
TEST(test_empty_many_waiting_sockets_use_one_descriptor) {
    enum { N = 8 };
    int clients[N], servers[N];
    for (int i = 0; i < N; i++) CHECK(tcp_pair_with_full_queue(&clients[i], &servers[i]) > 0);
    int before = kq_fd_count();
    int kq = kq_new();
    int with_kqueue = kq_fd_count();
    for (int i = 0; i < N; i++) KQ_SET(kq, clients[i], EVFILT_EMPTY, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    CHECK_EQ_INT(kq_fd_count(), with_kqueue + 1);
    close(kq);
    CHECK_EQ_INT(kq_fd_count(), before);
    for (int i = 0; i < N; i++) {
        close(clients[i]);
        close(servers[i]);
    }
}

RUN_TESTS()
