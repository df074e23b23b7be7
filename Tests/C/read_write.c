/*
 * SPEC.md 3, EVFILT_READ and EVFILT_WRITE on TCP and UNIX sockets, listening sockets, pipes,
 * FIFOs, regular files and terminals; NOTE_LOWAT; READ and WRITE on one descriptor.
 */
#include "kqtest.h"

#define U(x) ((void *)(uintptr_t)(x))

/* Bounded wait for an event on (ident, filter) with data == want. */
#define WAIT_DATA(kq, ident, filter, want, evp)                                         \
    CHECK_EVENT_UNTIL((kq), (ident), (filter), 2000, kq_pred_data_eq, (want), (evp))

/* Bounded wait for an event on (ident, filter) carrying all of `flags`. */
#define WAIT_FLAGS(kq, ident, filter, flags, evp)                                       \
    CHECK_EVENT_UNTIL((kq), (ident), (filter), 2000, kq_pred_flags, (flags), (evp))

/* Reads everything readable now from a nonblocking descriptor. */
static size_t drain(int fd) {
    char buf[8192];
    size_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            total += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        return total;
    }
}

/* ---- TCP ----------------------------------------------------------------------------- */

TEST(test_read_tcp_data_is_bytes_readable) {
    int kq = kq_new();
    struct kevent ev;
    int c, s;
    kq_tcp_pair(&c, &s);
    KQ_SET(kq, s, EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_n(c, 100);
    WAIT_DATA(kq, s, EVFILT_READ, 100, &ev);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    kq_write_n(c, 50);
    WAIT_DATA(kq, s, EVFILT_READ, 150, &ev);
    kq_read_n(s, NULL, 150);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(kq);
    close(c);
    close(s);
}

TEST(test_read_tcp_eof_when_peer_shuts_down_writing_with_data_buffered) {
    int kq = kq_new();
    struct kevent ev;
    int c, s;
    kq_tcp_pair(&c, &s);
    KQ_SET(kq, s, EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_n(c, 10);
    CHECK_SYS(shutdown(c, SHUT_WR));
    WAIT_FLAGS(kq, s, EVFILT_READ, EV_EOF, &ev);
    CHECK_EQ_INT(ev.data, 10); /* fires with the data still buffered */
    CHECK_EQ_INT(ev.fflags, 0); /* no socket error */
    kq_read_n(s, NULL, 10);
    CHECK_ONE_EVENT(kq, &ev); /* EOF holds with nothing left to read */
    CHECK(ev.flags & EV_EOF);
    CHECK_EQ_INT(ev.data, 0);
    close(kq);
    close(c);
    close(s);
}

TEST(test_read_tcp_eof_fflags_is_socket_error_after_reset) {
    int kq = kq_new();
    struct kevent ev;
    int c, s;
    kq_tcp_pair(&c, &s);
    KQ_SET(kq, s, EVFILT_READ, EV_ADD, 0, 0, NULL);
    struct linger lg = {1, 0};
    CHECK_SYS(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(c); /* sends RST */
    WAIT_FLAGS(kq, s, EVFILT_READ, EV_EOF, &ev);
    CHECK_MSG(ev.fflags == ECONNRESET, "fflags %u (%s), expected ECONNRESET", ev.fflags, kq_errname((int)ev.fflags));
    close(kq);
    close(s);
}

TEST(test_write_tcp_data_is_free_send_space) {
    int kq = kq_new();
    struct kevent ev;
    int c, s;
    kq_tcp_pair(&c, &s);
    int sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    CHECK_SYS(getsockopt(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len));
    KQ_SET(kq, c, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.filter, EVFILT_WRITE);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    /* Nothing queued: the whole send buffer is free. */
    CHECK_EQ_INT(ev.data, sndbuf);
    close(kq);
    close(c);
    close(s);
}

TEST(test_write_tcp_fires_again_after_full_buffer_drains) {
    int kq = kq_new();
    struct kevent ev;
    int c, s;
    kq_tcp_pair(&c, &s);
    KQ_SET(kq, c, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    size_t sent = kq_fill(c);
    CHECK(sent > 0);
    /* Drain everything on the other side (bounded). */
    size_t got = 0;
    int64_t deadline = kq_now_ns() + 5000000000LL;
    while (got < sent && kq_now_ns() < deadline) {
        struct pollfd pfd = {s, POLLIN, 0};
        poll(&pfd, 1, 100);
        got += drain(s);
    }
    CHECK_EQ_INT(got, sent);
    CHECK_EVENT_UNTIL(kq, c, EVFILT_WRITE, 2000, kq_pred_data_ge, 1, &ev);
    close(kq);
    close(c);
    close(s);
}

TEST(test_write_tcp_eof_when_peer_can_no_longer_receive) {
    int kq = kq_new();
    struct kevent ev;
    int c, s;
    kq_tcp_pair(&c, &s);
    close(s);
    /* The peer is gone: our next segment is answered with RST. */
    (void)send(c, "x", 1, MSG_NOSIGNAL);
    KQ_SET(kq, c, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    int64_t deadline = kq_now_ns() + 2000000000LL;
    int seen = 0;
    while (!seen && kq_now_ns() < deadline) {
        if (kq_wait_until(kq, c, EVFILT_WRITE, 100, kq_pred_flags, EV_EOF, &ev)) seen = 1;
        else (void)send(c, "x", 1, MSG_NOSIGNAL);
    }
    CHECK_MSG(seen, "no EV_EOF on WRITE after the peer closed; last %s", kq_ev_str(&ev));
    close(kq);
    close(c);
}

/* ---- UNIX sockets -------------------------------------------------------------------- */

TEST(test_read_unix_stream_data_and_eof_when_peer_closes) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(sv[1], "1234567", 7);
    WAIT_DATA(kq, sv[0], EVFILT_READ, 7, &ev);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    close(sv[1]);
    WAIT_FLAGS(kq, sv[0], EVFILT_READ, EV_EOF, &ev);
    CHECK_EQ_INT(ev.data, 7);
    CHECK_EQ_INT(ev.fflags, 0);
    /* Also a half close. */
    int t[2];
    kq_socketpair(SOCK_STREAM, t);
    KQ_SET(kq, t[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_all(t[1], "ab", 2);
    CHECK_SYS(shutdown(t[1], SHUT_WR));
    WAIT_FLAGS(kq, t[0], EVFILT_READ, EV_EOF, &ev);
    CHECK_EQ_INT(ev.data, 2);
    close(kq);
    close(sv[0]);
    close(t[0]);
    close(t[1]);
}

TEST(test_write_unix_stream_free_space_and_eof_when_peer_closes) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK(ev.data > 0);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    close(sv[1]);
    WAIT_FLAGS(kq, sv[0], EVFILT_WRITE, EV_EOF, &ev);
    close(kq);
    close(sv[0]);
}

TEST(test_read_unix_datagram_data_is_bytes_readable) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_DGRAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    /* Writable at once. */
    CHECK_EVENT_UNTIL(kq, sv[0], EVFILT_WRITE, 1000, kq_pred_data_ge, 1, &ev);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    char msg[37];
    memset(msg, 'd', sizeof msg);
    CHECK_EQ_INT(send(sv[1], msg, sizeof msg, 0), 37);
    WAIT_DATA(kq, sv[0], EVFILT_READ, 37, &ev);
    char buf[64];
    CHECK_EQ_INT(recv(sv[0], buf, sizeof buf, 0), 37);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

/* ---- listening sockets --------------------------------------------------------------- */

TEST(test_read_listening_socket_data_is_accept_queue_length) {
    int kq = kq_new();
    struct kevent ev;
    uint16_t port;
    int l = kq_tcp_listener(&port, 16);
    kq_nonblock(l);
    KQ_SET(kq, l, EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    int clients[3];
    for (int i = 0; i < 3; i++) clients[i] = kq_tcp_connect(port);
    WAIT_DATA(kq, l, EVFILT_READ, 3, &ev);
    int a = (int)CHECK_SYS(accept(l, NULL, NULL));
    WAIT_DATA(kq, l, EVFILT_READ, 2, &ev);
    int b = (int)CHECK_SYS(accept(l, NULL, NULL));
    int c = (int)CHECK_SYS(accept(l, NULL, NULL));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(a);
    close(b);
    close(c);
    for (int i = 0; i < 3; i++) close(clients[i]);
    close(l);
    close(kq);
}

TEST(test_write_listening_socket_never_fires) {
    int kq = kq_new();
    uint16_t port;
    int l = kq_tcp_listener(&port, 16);
    kq_nonblock(l);
    KQ_SET(kq, l, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    int c = kq_tcp_connect(port);
    struct kevent ev;
    /* A READ knote on it fires, the WRITE knote still does not. */
    KQ_SET(kq, l, EVFILT_READ, EV_ADD, 0, 0, NULL);
    WAIT_DATA(kq, l, EVFILT_READ, 1, &ev);
    KQ_SET(kq, l, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    close(c);
    close(l);
    close(kq);
}

TEST(test_write_unconnected_tcp_socket_never_fires) {
    int kq = kq_new();
    int s = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    KQ_SET(kq, s, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    /* Bound but still unconnected. */
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_SYS(bind(s, (struct sockaddr *)&sa, sizeof sa));
    CHECK_NO_EVENT_WITHIN(kq, 50);
    close(s);
    close(kq);
}

/* ---- pipes --------------------------------------------------------------------------- */

TEST(test_read_pipe_data_and_eof_when_last_writer_closes) {
    int kq = kq_new();
    struct kevent ev;
    int p[2];
    kq_pipe(p);
    int w2 = (int)CHECK_SYS(dup(p[1]));
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(p[1], "hello", 5);
    WAIT_DATA(kq, p[0], EVFILT_READ, 5, &ev);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    /* One writer left: no EOF. */
    close(p[1]);
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 20);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    /* The last writer goes: EOF, with the data still there. */
    close(w2);
    WAIT_FLAGS(kq, p[0], EVFILT_READ, EV_EOF, &ev);
    CHECK_EQ_INT(ev.data, 5);
    kq_read_n(p[0], NULL, 5);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK(ev.flags & EV_EOF);
    CHECK_EQ_INT(ev.data, 0);
    close(kq);
    close(p[0]);
}

TEST(test_write_pipe_data_is_free_space) {
    int kq = kq_new();
    struct kevent ev;
    int p[2];
    kq_pipe(p);
    int size = (int)CHECK_SYS(fcntl(p[1], F_GETPIPE_SZ));
    KQ_SET(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, size);
    kq_write_n(p[1], 100);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, size - 100);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_write_pipe_fires_when_at_least_pipe_buf_free) {
    int kq = kq_new();
    struct kevent ev;
    int p[2];
    kq_pipe(p);
    int size = (int)CHECK_SYS(fcntl(p[1], F_GETPIPE_SZ));
    size_t filled = kq_fill(p[1]);
    CHECK_EQ_INT(filled, size);
    KQ_SET(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_read_n(p[0], NULL, 100); /* 100 free: less than PIPE_BUF */
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_read_n(p[0], NULL, 3900); /* 4000 free */
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_read_n(p[0], NULL, 100); /* 4100 free: at least PIPE_BUF */
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 2000);
    CHECK_EQ_INT(ev.data, 4100);
    CHECK(ev.data >= PIPE_BUF);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_write_pipe_eof_when_reader_closes) {
    int kq = kq_new();
    struct kevent ev;
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    close(p[0]);
    WAIT_FLAGS(kq, p[1], EVFILT_WRITE, EV_EOF, &ev);
    /* Also when the pipe was full (not writable) at the time. */
    int q[2];
    kq_pipe(q);
    kq_fill(q[1]);
    KQ_SET(kq, q[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, p[1], EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(q[0]);
    WAIT_FLAGS(kq, q[1], EVFILT_WRITE, EV_EOF, &ev);
    close(kq);
    close(p[1]);
    close(q[1]);
}

TEST(test_write_pipe_ev_add_after_reader_closed_epipe) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    close(p[0]);
    CHECK_ERR(kq_change_errno(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL), EPIPE);
    CHECK_NO_EVENT(kq);
    CHECK_ERR(kq_change_errno(kq, p[1], EVFILT_WRITE, EV_DELETE, 0, 0, NULL), ENOENT);
    close(kq);
    close(p[1]);
}

/* ---- FIFOs --------------------------------------------------------------------------- */

TEST(test_read_fifo_data_eof_and_eof_clears_when_new_writer_opens) {
    char dir[64], path[128];
    kq_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK_SYS(mkfifo(path, 0600));
    int r = (int)CHECK_SYS(open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    int w = (int)CHECK_SYS(open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, r, EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(w, "abc", 3);
    WAIT_DATA(kq, r, EVFILT_READ, 3, &ev);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    close(w);
    WAIT_FLAGS(kq, r, EVFILT_READ, EV_EOF, &ev);
    CHECK_EQ_INT(ev.data, 3);
    kq_read_n(r, NULL, 3);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK(ev.flags & EV_EOF);
    CHECK_EQ_INT(ev.data, 0);
    /* A new writer: EOF cleared, the empty FIFO is not readable. */
    w = (int)CHECK_SYS(open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_write_all(w, "de", 2);
    WAIT_DATA(kq, r, EVFILT_READ, 2, &ev);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    /* And WRITE on the FIFO: free space. */
    KQ_SET(kq, w, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    int size = (int)CHECK_SYS(fcntl(w, F_GETPIPE_SZ));
    WAIT_DATA(kq, w, EVFILT_WRITE, size - 2, &ev);
    close(w);
    close(r);
    close(kq);
    kq_rmdir_all(dir);
}

/* ---- regular files ------------------------------------------------------------------- */

static int make_file(char *dir, size_t dirsize, char *path, size_t pathsize, size_t len) {
    kq_tmpdir(dir, dirsize);
    snprintf(path, pathsize, "%s/file", dir);
    int w = (int)CHECK_SYS(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    kq_write_n(w, len);
    return w;
}

TEST(test_read_regular_file_data_is_size_minus_offset) {
    char dir[64], path[128];
    int w = make_file(dir, sizeof dir, path, sizeof path, 100);
    int f = (int)CHECK_SYS(open(path, O_RDONLY | O_CLOEXEC));
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, f, EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 100);
    CHECK_SYS(lseek(f, 30, SEEK_SET));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 70);
    /* Past the end: negative, and still fires (data != 0). */
    CHECK_SYS(lseek(f, 150, SEEK_SET));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, -50);
    /* At the end: data == 0, not returned. */
    CHECK_SYS(lseek(f, 100, SEEK_SET));
    CHECK_NO_EVENT(kq);
    close(kq);
    close(f);
    close(w);
    kq_rmdir_all(dir);
}

TEST(test_read_regular_file_refires_when_file_grows) {
    char dir[64], path[128];
    int w = make_file(dir, sizeof dir, path, sizeof path, 100);
    int f = (int)CHECK_SYS(open(path, O_RDONLY | O_CLOEXEC));
    CHECK_SYS(lseek(f, 100, SEEK_SET));
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, f, EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_n(w, 30);
    WAIT_DATA(kq, f, EVFILT_READ, 30, &ev);
    kq_read_n(f, NULL, 30);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    /* Again, through another open file (a different writer). */
    int w2 = (int)CHECK_SYS(open(path, O_WRONLY | O_APPEND | O_CLOEXEC));
    kq_write_n(w2, 7);
    WAIT_DATA(kq, f, EVFILT_READ, 7, &ev);
    /* EV_CLEAR: fires again on growth even after being reset. */
    int f2 = (int)CHECK_SYS(open(path, O_RDONLY | O_CLOEXEC));
    KQ_SET(kq, f, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    KQ_SET(kq, f2, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 137);
    CHECK_NO_EVENT(kq);
    kq_write_n(w2, 3);
    WAIT_DATA(kq, f2, EVFILT_READ, 140, &ev);
    close(kq);
    close(f);
    close(f2);
    close(w);
    close(w2);
    kq_rmdir_all(dir);
}

TEST(test_read_regular_file_note_file_poll_always_fires) {
    char dir[64], path[128];
    int w = make_file(dir, sizeof dir, path, sizeof path, 10);
    int f = (int)CHECK_SYS(open(path, O_RDONLY | O_CLOEXEC));
    CHECK_SYS(lseek(f, 10, SEEK_SET));
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, f, EVFILT_READ, EV_ADD, NOTE_FILE_POLL, 0, NULL);
    for (int i = 0; i < 3; i++) {
        CHECK_ONE_EVENT(kq, &ev);
        CHECK_EQ_INT(ev.ident, f);
        CHECK_EQ_INT(ev.data, 0);
    }
    close(kq);
    close(f);
    close(w);
    kq_rmdir_all(dir);
}

TEST(test_write_regular_file_always_ready) {
    char dir[64], path[128];
    int w = make_file(dir, sizeof dir, path, sizeof path, 10);
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, w, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    for (int i = 0; i < 3; i++) {
        CHECK_ONE_EVENT(kq, &ev);
        CHECK_EQ_INT(ev.ident, w);
        CHECK_EQ_INT(ev.filter, EVFILT_WRITE);
    }
    close(kq);
    close(w);
    kq_rmdir_all(dir);
}

/* ---- terminals ----------------------------------------------------------------------- */

#include <termios.h>

TEST(test_read_pty_data_is_bytes_readable) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) SKIP("posix_openpt: %s", strerror(errno));
    if (grantpt(m) != 0 || unlockpt(m) != 0) SKIP("grantpt/unlockpt: %s", strerror(errno));
    char *name = ptsname(m);
    if (name == NULL) SKIP("ptsname: %s", strerror(errno));
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) SKIP("open %s: %s", name, strerror(errno));
    struct termios t;
    CHECK_SYS(tcgetattr(s, &t));
    cfmakeraw(&t);
    CHECK_SYS(tcsetattr(s, TCSANOW, &t));
    kq_nonblock(m);
    kq_nonblock(s);
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, s, EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, m, EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(m, "hello", 5);
    WAIT_DATA(kq, s, EVFILT_READ, 5, &ev);
    kq_read_n(s, NULL, 5);
    kq_write_all(s, "abc", 3);
    WAIT_DATA(kq, m, EVFILT_READ, 3, &ev);
    kq_read_n(m, NULL, 3);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    /* WRITE on the terminal. */
    KQ_SET(kq, s, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_EVENT_UNTIL(kq, s, EVFILT_WRITE, 1000, kq_pred_any, 0, &ev);
    close(kq);
    close(s);
    close(m);
}

/* ---- low-water marks ----------------------------------------------------------------- */

static void check_note_lowat_read(int rd, int wr) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, rd, EVFILT_READ, EV_ADD, NOTE_LOWAT, 10, NULL);
    kq_write_all(wr, "12345", 5);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    kq_write_all(wr, "67890", 5);
    WAIT_DATA(kq, rd, EVFILT_READ, 10, &ev);
    close(kq);
}

TEST(test_read_note_lowat_unix_stream_socket) {
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    check_note_lowat_read(sv[0], sv[1]);
    close(sv[0]);
    close(sv[1]);
}

TEST(test_read_note_lowat_tcp_socket) {
    int c, s;
    kq_tcp_pair(&c, &s);
    check_note_lowat_read(s, c);
    close(c);
    close(s);
}

TEST(test_read_so_rcvlowat_socket) {
    int c, s;
    kq_tcp_pair(&c, &s);
    int lowat = 10;
    CHECK_SYS(setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat));
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, s, EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_all(c, "12345", 5);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    kq_write_all(c, "67890", 5);
    WAIT_DATA(kq, s, EVFILT_READ, 10, &ev);
    close(kq);
    close(c);
    close(s);

    /* A UNIX stream socket with SO_RCVLOWAT. */
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    CHECK_SYS(setsockopt(sv[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat));
    kq = kq_new();
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_all(sv[1], "12345", 5);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    kq_write_all(sv[1], "67890", 5);
    WAIT_DATA(kq, sv[0], EVFILT_READ, 10, &ev);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

TEST(test_read_eof_fires_even_below_low_water_mark) {
    int kq = kq_new();
    struct kevent ev;
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, NOTE_LOWAT, 100, NULL);
    kq_write_all(sv[1], "12345", 5);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    CHECK_SYS(shutdown(sv[1], SHUT_WR));
    WAIT_FLAGS(kq, sv[0], EVFILT_READ, EV_EOF, &ev);
    CHECK_EQ_INT(ev.data, 5);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    int c, s;
    kq_tcp_pair(&c, &s);
    KQ_SET(kq, s, EVFILT_READ, EV_ADD, NOTE_LOWAT, 100, NULL);
    kq_write_all(c, "12345", 5);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    CHECK_SYS(shutdown(c, SHUT_WR));
    WAIT_FLAGS(kq, s, EVFILT_READ, EV_EOF, &ev);
    CHECK_EQ_INT(ev.data, 5);
    close(kq);
    close(sv[0]);
    close(sv[1]);
    close(c);
    close(s);
}

TEST(test_write_note_lowat_socket) {
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    int kq = kq_new();
    struct kevent ev;
    /* A mark above any possible free space: never fires. */
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, NOTE_LOWAT, 1 << 30, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 50);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, NOTE_LOWAT, 1, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK(ev.data >= 1);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

/* ---- READ and WRITE on one descriptor ------------------------------------------------ */

TEST(test_read_and_write_same_descriptor_different_flags) {
    int kq = kq_new();
    struct kevent ev[8];
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, U(1));
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, U(2));
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 1);
        CHECK_EQ_INT(ev[0].filter, EVFILT_WRITE);
        CHECK_EQ_INT(ev[0].udata, 2);
        CHECK_EQ_HEX(ev[0].flags, 0);
    }
    kq_write_all(sv[1], "abc", 3);
    struct kevent r;
    CHECK_EVENT_UNTIL(kq, sv[0], EVFILT_READ, 2000, kq_pred_any, 0, &r);
    CHECK_EQ_INT(r.udata, 1);
    CHECK_EQ_INT(r.data, 3);
    CHECK_EQ_HEX(r.flags, EV_CLEAR);
    /* READ was cleared, WRITE is still level. */
    for (int i = 0; i < 2; i++) {
        int n = KQ_WAIT(kq, ev, 8, 0);
        CHECK_MSG(n == 1 && ev[0].filter == EVFILT_WRITE,
                  "poll %d after the EV_CLEAR READ was returned: %d events: %s %s", i, n,
                  n > 0 ? kq_ev_str(&ev[0]) : "", n > 1 ? kq_ev_str(&ev[1]) : "");
    }
    /* Deleting WRITE leaves READ working. */
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(sv[1], "d", 1);
    CHECK_EVENT_UNTIL(kq, sv[0], EVFILT_READ, 2000, kq_pred_data_eq, 4, &r);
    CHECK_NO_EVENT(kq);
    /* A oneshot WRITE next to a disabled READ. */
    KQ_SET(kq, sv[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD | EV_ONESHOT, 0, 0, U(3));
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 1);
    CHECK_EQ_INT(ev[0].filter, EVFILT_WRITE);
    CHECK_EQ_HEX(ev[0].flags, EV_ONESHOT);
    kq_write_all(sv[1], "e", 1);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    /* Re-enable READ: it fires; WRITE is gone. */
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ENABLE, 0, 0, U(1));
    int n = KQ_WAIT(kq, ev, 8, 0);
    CHECK_MSG(n == 1, "after EV_ENABLE of READ: %d events: %s %s", n, kq_ev_str(&ev[0]), n > 1 ? kq_ev_str(&ev[1]) : "");
    CHECK_EQ_INT(ev[0].filter, EVFILT_READ);
    CHECK_EQ_INT(ev[0].data, 5);
    CHECK_ERR(kq_change_errno(kq, sv[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL), ENOENT);
    /* Deleting READ while WRITE exists, on a pipe-like end with both. */
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, U(4));
    KQ_SET(kq, sv[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    kq_write_all(sv[1], "f", 1);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 20), 1);
    CHECK_EQ_INT(ev[0].filter, EVFILT_WRITE);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

TEST(test_read_level_and_write_clear_same_descriptor) {
    /* The mirror case: a level READ that stays ready must not make the EV_CLEAR WRITE knote
     * on the same descriptor fire again. */
    int kq = kq_new();
    struct kevent ev[8];
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    kq_write_all(sv[1], "abc", 3);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, U(1));
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, U(2));
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 2);
    for (int i = 0; i < 3; i++) {
        int n = KQ_WAIT(kq, ev, 8, 0);
        CHECK_MSG(n == 1 && ev[0].filter == EVFILT_READ,
                  "poll %d after the EV_CLEAR WRITE was returned: %d events: %s %s", i, n,
                  n > 0 ? kq_ev_str(&ev[0]) : "", n > 1 ? kq_ev_str(&ev[1]) : "");
        CHECK_EQ_INT(ev[0].data, 3);
    }
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

RUN_TESTS()
