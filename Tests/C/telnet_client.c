/*
 * A telnet-like client written against <sys/event.h>: one kqueue watches a stdin-like pipe
 * and a TCP socket; input goes to the socket, socket data goes to an output pipe; EOF on the
 * input half-closes the connection; EV_EOF on the socket ends the client. Run against a
 * loopback echo server (a thread with plain blocking I/O, so the oracle does not use kqueue).
 */
#include "kqtest.h"

/* ---- helpers: echo server, output collector, input feeder ---------------------------- */

struct server {
    int lfd;
    const char *banner; /* if set: send it and close without reading */
    size_t echoed;
    int error;
};

static void *echo_server(void *p) {
    struct server *sv = p;
    struct pollfd pfd = {sv->lfd, POLLIN, 0};
    if (poll(&pfd, 1, 5000) != 1) {
        sv->error = ETIMEDOUT;
        return NULL;
    }
    int c = accept(sv->lfd, NULL, NULL);
    if (c < 0) {
        sv->error = errno;
        return NULL;
    }
    if (sv->banner != NULL) {
        size_t len = strlen(sv->banner);
        if (write(c, sv->banner, len) != (ssize_t)len) sv->error = errno;
        close(c);
        return NULL;
    }
    char buf[16384];
    for (;;) {
        pfd.fd = c;
        if (poll(&pfd, 1, 5000) != 1) {
            sv->error = ETIMEDOUT;
            break;
        }
        ssize_t n = read(c, buf, sizeof buf);
        if (n == 0) break; /* the client half-closed: done */
        if (n < 0) {
            if (errno == EINTR) continue;
            sv->error = errno;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                sv->error = errno;
                close(c);
                return NULL;
            }
            off += w;
        }
        sv->echoed += (size_t)n;
    }
    close(c);
    return NULL;
}

struct collector {
    int fd;
    char *buf;
    size_t cap, len;
};

static void *collect(void *p) {
    struct collector *co = p;
    for (;;) {
        struct pollfd pfd = {co->fd, POLLIN, 0};
        if (poll(&pfd, 1, 10000) != 1) return NULL;
        ssize_t n = read(co->fd, co->buf + co->len, co->cap - co->len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return NULL;
        co->len += (size_t)n;
        if (co->len == co->cap) return NULL;
    }
}

struct feeder {
    int fd;
    const char *data;
    size_t len;
};

static void *feed(void *p) {
    struct feeder *f = p;
    for (size_t off = 0; off < f->len;) {
        size_t chunk = f->len - off < 7000 ? f->len - off : 7000; /* odd sizes on purpose */
        ssize_t w = write(f->fd, f->data + off, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) break;
        off += (size_t)w;
    }
    close(f->fd); /* EOF on the client's input */
    return NULL;
}

/* ---- the client ---------------------------------------------------------------------- */

struct client_result {
    int saw_input_eof;
    int saw_socket_eof;
    size_t sent, received;
};

static void write_fully(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            CHECK_MSG(poll(&pfd, 1, 5000) == 1, "output not writable within 5 s");
            continue;
        }
        CHECK_SYS(w);
        p += w;
        len -= (size_t)w;
    }
}

/*
 * The client loop. Input (`in`, nonblocking) is read on EVFILT_READ and sent to `sock`
 * (nonblocking). When the socket cannot take everything, the rest waits for EVFILT_WRITE and
 * input is disabled meanwhile (so the client never blocks and never deadlocks against the
 * echo). EV_EOF on the input with nothing left to read half-closes the socket. Socket data
 * is copied to `out`. EV_EOF on the socket with nothing left to read ends the loop.
 */
static void run_client(int in, int sock, int out, struct client_result *res) {
    int kq = kq_new();
    struct kevent ch[3];
    EV_SET(&ch[0], in, EVFILT_READ, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[1], sock, EVFILT_READ, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[2], sock, EVFILT_WRITE, EV_ADD | EV_DISABLE, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, ch, 3, NULL, 0, NULL), 0);
    int64_t deadline = kq_now_ns() + 8000000000LL;
    static char pend[16384];
    size_t pend_off = 0, pend_len = 0;
    int input_done = 0;
    char buf[16384];
    for (;;) {
        CHECK_MSG(kq_now_ns() < deadline, "client still running after 8 s (sent %zu, received %zu)", res->sent,
                  res->received);
        struct kevent ev[4];
        int n = kevent(kq, NULL, 0, ev, 4, &(struct timespec){1, 0});
        CHECK_SYS(n);
        for (int i = 0; i < n; i++) {
            CHECK_MSG(!(ev[i].flags & EV_ERROR), "error event %s", kq_ev_str(&ev[i]));
            int flush = 0;
            if (ev[i].ident == (uintptr_t)in && ev[i].filter == EVFILT_READ) {
                CHECK(ev[i].data >= 0);
                CHECK_EQ_INT(pend_len, 0); /* input is disabled while output is pending */
                ssize_t r = read(in, pend, sizeof pend);
                if (r > 0) {
                    pend_off = 0;
                    pend_len = (size_t)r;
                    flush = 1;
                } else if (r == 0 && !(ev[i].flags & EV_EOF)) {
                    /* The writer closed after the event was made: the next event says EOF. */
                } else if (r == 0) {
                    res->saw_input_eof = 1;
                    input_done = 1;
                    KQ_SET(kq, in, EVFILT_READ, EV_DELETE, 0, 0, NULL);
                    CHECK_SYS(shutdown(sock, SHUT_WR));
                } else {
                    CHECK_MSG(errno == EAGAIN, "read(input): %s", strerror(errno));
                }
            } else if (ev[i].ident == (uintptr_t)sock && ev[i].filter == EVFILT_WRITE) {
                CHECK(ev[i].data > 0);
                flush = 1;
            } else if (ev[i].ident == (uintptr_t)sock && ev[i].filter == EVFILT_READ) {
                ssize_t r;
                while ((r = recv(sock, buf, sizeof buf, 0)) > 0) {
                    write_fully(out, buf, (size_t)r);
                    res->received += (size_t)r;
                }
                if (r < 0) CHECK_MSG(errno == EAGAIN, "recv: %s", strerror(errno));
                /* recv() may see the FIN before the event did (it arrived after the event
                 * was made): then the next event carries EV_EOF, like the seed expects. */
                if (r == 0 && (ev[i].flags & EV_EOF)) {
                    res->saw_socket_eof = 1;
                    close(kq);
                    return;
                }
            } else {
                FAILF("unexpected event %s", kq_ev_str(&ev[i]));
            }
            if (flush) {
                while (pend_off < pend_len) {
                    ssize_t w = send(sock, pend + pend_off, pend_len - pend_off, MSG_NOSIGNAL);
                    if (w < 0 && errno == EINTR) continue;
                    if (w < 0 && errno == EAGAIN) break;
                    CHECK_SYS(w);
                    pend_off += (size_t)w;
                    res->sent += (size_t)w;
                }
                int done = pend_off == pend_len;
                if (done) pend_len = pend_off = 0;
                /* Wait for room (WRITE) xor for more input (READ). */
                KQ_SET(kq, sock, EVFILT_WRITE, done ? EV_DISABLE : EV_ENABLE, 0, 0, NULL);
                if (!input_done) KQ_SET(kq, in, EVFILT_READ, done ? EV_ENABLE : EV_DISABLE, 0, 0, NULL);
            }
        }
    }
}

/* Runs the whole scenario: client over a loopback echo server, `input` fed to its stdin. */
static void echo_scenario(const char *input, size_t len, struct collector *co, struct client_result *res) {
    uint16_t port;
    struct server sv = {.lfd = kq_tcp_listener(&port, 4)};
    pthread_t st, ct, ft;
    CHECK_EQ_INT(pthread_create(&st, NULL, echo_server, &sv), 0);
    int sock = kq_tcp_connect(port);
    kq_nonblock(sock);
    int in[2], out[2];
    CHECK_SYS(pipe2(in, O_CLOEXEC));
    CHECK_SYS(pipe2(out, O_CLOEXEC));
    kq_nonblock(in[0]);
    co->fd = out[0];
    CHECK_EQ_INT(pthread_create(&ct, NULL, collect, co), 0);
    struct feeder f = {in[1], input, len};
    CHECK_EQ_INT(pthread_create(&ft, NULL, feed, &f), 0);
    run_client(in[0], sock, out[1], res);
    close(out[1]); /* the collector sees EOF */
    pthread_join(ft, NULL);
    pthread_join(ct, NULL);
    pthread_join(st, NULL);
    CHECK_MSG(sv.error == 0, "echo server error %s", kq_errname(sv.error));
    CHECK_EQ_INT(sv.echoed, len);
    close(in[0]);
    close(out[0]);
    close(sock);
    close(sv.lfd);
}

TEST(test_telnet_client_lines_echoed_then_exits_on_peer_eof) {
    static const char input[] = "line one\nline two\nthe third line\n";
    static char outbuf[1024];
    struct collector co = {.buf = outbuf, .cap = sizeof outbuf - 1};
    struct client_result res = {0};
    echo_scenario(input, strlen(input), &co, &res);
    CHECK(res.saw_input_eof);
    CHECK(res.saw_socket_eof);
    CHECK_EQ_INT(res.sent, strlen(input));
    CHECK_EQ_INT(co.len, strlen(input));
    outbuf[co.len] = 0;
    CHECK_MSG(strcmp(outbuf, input) == 0, "output \"%s\"", outbuf);
}

TEST(test_telnet_client_large_transfer_echoed_intact) {
    enum { LEN = 512 * 1024 };
    static char input[LEN], outbuf[LEN + 1];
    for (size_t i = 0; i < LEN; i++) input[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    struct collector co = {.buf = outbuf, .cap = sizeof outbuf};
    struct client_result res = {0};
    echo_scenario(input, LEN, &co, &res);
    CHECK(res.saw_input_eof);
    CHECK(res.saw_socket_eof);
    CHECK_EQ_INT(res.sent, LEN);
    CHECK_EQ_INT(res.received, LEN);
    CHECK_EQ_INT(co.len, LEN);
    CHECK(memcmp(outbuf, input, LEN) == 0);
}

TEST(test_telnet_client_exits_on_peer_close_with_data_buffered) {
    /* The server sends a banner and closes at once; the input stays open and silent. */
    uint16_t port;
    static const char banner[] = "banner line\n";
    struct server sv = {.lfd = kq_tcp_listener(&port, 4), .banner = banner};
    pthread_t st;
    CHECK_EQ_INT(pthread_create(&st, NULL, echo_server, &sv), 0);
    int sock = kq_tcp_connect(port);
    kq_nonblock(sock);
    pthread_join(st, NULL); /* banner sent and connection closed before the client starts */
    CHECK_EQ_INT(sv.error, 0);
    int in[2], out[2];
    kq_pipe(in);
    kq_pipe(out);
    struct client_result res = {0};
    run_client(in[0], sock, out[1], &res);
    CHECK(res.saw_socket_eof);
    CHECK(!res.saw_input_eof);
    char buf[64] = {0};
    ssize_t n = read(out[0], buf, sizeof buf - 1);
    CHECK_EQ_INT(n, (ssize_t)strlen(banner));
    CHECK(strcmp(buf, banner) == 0);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    close(sock);
    close(sv.lfd);
}

RUN_TESTS()
