/*
 * SPEC.md 3, EVFILT_WRITE on a stream socket that was connected and no longer can send
 * (FreeBSD's filt_sowrite: SBS_CANTSENDMORE gives EV_EOF and fires at once): after EV_DELETE
 * of its knotes, a new EV_ADD of EVFILT_WRITE is reported at once, writable with EV_EOF.
 * Covered: an RST received, a peer close, a local shutdown(SHUT_WR), for TCP and UNIX
 * stream sockets. A socket that never connected still never fires.
 */
#include "kqtest.h"

/* Waits (bounded) until poll(2) shows `events` on `fd`. */
static void wait_for(int fd, short events) {
    struct pollfd p = {fd, events, 0};
    CHECK_MSG(poll(&p, 1, 5000) == 1 && (p.revents & events), "fd %d: no 0x%x within 5 s", fd, events);
}

/* Watches `fd` for WRITE, collects once, deletes the knote; then adds it again, which must
 * be reported at once with EV_EOF. */
static void check_write_after_readd_reports_eof(int fd) {
    int kq = kq_new();
    KQ_SET(kq, fd, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct kevent ev[2];
    (void)KQ_WAIT(kq, ev, 2, 0); /* whatever it says now */
    KQ_SET(kq, fd, EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
    KQ_SET(kq, fd, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct kevent one;
    CHECK_ONE_EVENT(kq, &one);
    CHECK_EQ_INT(one.ident, fd);
    CHECK_EQ_INT(one.filter, EVFILT_WRITE);
    CHECK_MSG(one.flags & EV_EOF, "expected EV_EOF, got %s", kq_ev_str(&one));
    close(kq);
}

/* An RST received: the peer closes with SO_LINGER {1, 0}. The pending error is read first
 * (by the application), so only the connection's end is left to report. */
static void tcp_reset(int *client) {
    int server;
    kq_tcp_pair(client, &server);
    struct linger hard = {1, 0};
    CHECK_SYS(setsockopt(server, SOL_SOCKET, SO_LINGER, &hard, sizeof hard));
    close(server);
    wait_for(*client, POLLHUP);
}

TEST(test_write_tcp_reset_then_readd_reports_eof) {
    int client;
    tcp_reset(&client);
    check_write_after_readd_reports_eof(client);
    close(client);
}

TEST(test_write_tcp_reset_error_consumed_then_readd_reports_eof) {
    int client;
    tcp_reset(&client);
    int error = 0;
    socklen_t length = sizeof error;
    CHECK_SYS(getsockopt(client, SOL_SOCKET, SO_ERROR, &error, &length));
    CHECK_EQ_INT(error, ECONNRESET);
    check_write_after_readd_reports_eof(client);
    close(client);
}

/* A TCP peer close: our side still may send (FreeBSD too) until the peer's RST answers a
 * write; from then on WRITE reports EV_EOF. */
TEST(test_write_tcp_peer_close_then_write_then_readd_reports_eof) {
    int client, server;
    kq_tcp_pair(&client, &server);
    close(server);
    wait_for(client, POLLRDHUP);
    CHECK_SYS(send(client, "x", 1, MSG_NOSIGNAL));
    wait_for(client, POLLHUP);
    check_write_after_readd_reports_eof(client);
    close(client);
}

TEST(test_write_unix_peer_close_then_readd_reports_eof) {
    int fds[2];
    kq_socketpair(SOCK_STREAM, fds);
    close(fds[1]);
    check_write_after_readd_reports_eof(fds[0]);
    close(fds[0]);
}

TEST(test_write_tcp_local_shutdown_wr_reports_eof) {
    int client, server;
    kq_tcp_pair(&client, &server);
    CHECK_SYS(shutdown(client, SHUT_WR));
    check_write_after_readd_reports_eof(client);
    close(client);
    close(server);
}

TEST(test_write_unix_local_shutdown_wr_reports_eof) {
    int fds[2];
    kq_socketpair(SOCK_STREAM, fds);
    CHECK_SYS(shutdown(fds[0], SHUT_WR));
    check_write_after_readd_reports_eof(fds[0]);
    close(fds[0]);
    close(fds[1]);
}

/* The shutdown mark goes with the descriptor: a new socket behind the same number is open. */
TEST(test_write_shutdown_mark_ends_with_close) {
    int fds[2];
    kq_socketpair(SOCK_STREAM, fds);
    CHECK_SYS(shutdown(fds[0], SHUT_WR));
    int number = fds[0];
    close(fds[0]);
    close(fds[1]);
    int again[2];
    kq_socketpair(SOCK_STREAM, again);
    CHECK_EQ_INT(again[0], number);
    int kq = kq_new();
    KQ_SET(kq, again[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_MSG(!(ev.flags & EV_EOF), "a fresh socket reported EV_EOF: %s", kq_ev_str(&ev));
    close(kq);
    close(again[0]);
    close(again[1]);
}

/* A fresh socket moved onto the number of one that was shut down (with no kqueue watching
 * it then) is open: WRITE reports it writable without EV_EOF. */
static void check_fresh_socket_behind_shut_down_number(int how) {
    int old[2], fresh[2];
    kq_socketpair(SOCK_STREAM, old);
    CHECK_SYS(shutdown(old[0], SHUT_WR));
    kq_socketpair(SOCK_STREAM, fresh);
    int number = old[0];
    if (how == 0) CHECK_SYS(dup2(fresh[0], number));
    else if (how == 1) CHECK_SYS(dup3(fresh[0], number, O_CLOEXEC));
    else {
        CHECK_SYS(close_range((unsigned)number, (unsigned)number, 0));
        CHECK_SYS(dup2(fresh[0], number)); /* nothing to replace: the number is free */
    }
    int kq = kq_new();
    KQ_SET(kq, number, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_MSG(!(ev.flags & EV_EOF), "fresh socket on %d (%s): %s", number,
              how == 0 ? "dup2" : how == 1 ? "dup3" : "close_range, dup2", kq_ev_str(&ev));
    close(kq);
    close(number);
    close(old[1]);
    close(fresh[0]);
    close(fresh[1]);
}

TEST(test_write_shutdown_mark_ends_when_dup2_replaces_the_number) { check_fresh_socket_behind_shut_down_number(0); }
TEST(test_write_shutdown_mark_ends_when_dup3_replaces_the_number) { check_fresh_socket_behind_shut_down_number(1); }
TEST(test_write_shutdown_mark_ends_with_close_range) { check_fresh_socket_behind_shut_down_number(2); }

/* close_range over a high number while a kqueue watches only low ones: the number's mark goes
 * too (the interposer walks every number the library keeps something about). */
TEST(test_write_shutdown_mark_of_a_high_number_ends_with_close_range) {
    int old[2], fresh[2];
    kq_socketpair(SOCK_STREAM, old);
    int high = (int)CHECK_SYS(fcntl(old[0], F_DUPFD, 700));
    close(old[0]);
    CHECK_SYS(shutdown(high, SHUT_WR));
    kq_socketpair(SOCK_STREAM, fresh);
    int kq = kq_new();
    KQ_SET(kq, fresh[1], EVFILT_READ, EV_ADD, 0, 0, NULL); /* a low number watched */
    CHECK_SYS(close_range((unsigned)high, (unsigned)high, 0));
    CHECK_EQ_INT(CHECK_SYS(fcntl(fresh[0], F_DUPFD, high)), high);
    KQ_SET(kq, high, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, high);
    CHECK_MSG(!(ev.flags & EV_EOF), "fresh socket on %d after close_range: %s", high, kq_ev_str(&ev));
    close(kq);
    close(high);
    close(old[1]);
    close(fresh[0]);
    close(fresh[1]);
}

/* Never connected: never fires, neither TCP nor UNIX (SPEC.md 3). */
TEST(test_write_never_connected_stream_socket_never_fires) {
    int tcp = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int unix_socket = (int)CHECK_SYS(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int kq = kq_new();
    KQ_SET(kq, tcp, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, unix_socket, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    close(kq);
    close(tcp);
    close(unix_socket);
}

RUN_TESTS()
