/*
 * The seed program (/work/shared/seed/telnet.c, compiled unchanged against <sys/event.h> and
 * libkqueue.so) run end to end against a loopback TCP server: stdin line -> server, server
 * reply -> stdout, exit status 0 when the server closes (EV_EOF). Skipped (77) unless
 * KQ_TELNET_BIN names an executable.
 */
#include "kqtest.h"

static const char *telnet_bin(void) {
    const char *bin = getenv("KQ_TELNET_BIN");
    if (bin == NULL || bin[0] == 0) SKIP("KQ_TELNET_BIN is not set");
    if (access(bin, X_OK) != 0) SKIP("KQ_TELNET_BIN=%s is not executable: %s", bin, strerror(errno));
    return bin;
}

struct telnet_proc {
    pid_t pid;
    int in;  /* write end of the client's stdin */
    int out; /* read end of the client's stdout */
};

static struct telnet_proc start_telnet(const char *bin, uint16_t port) {
    int in[2], out[2];
    CHECK_SYS(pipe2(in, O_CLOEXEC));
    CHECK_SYS(pipe2(out, O_CLOEXEC));
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    pid_t pid = kq_fork();
    if (pid == 0) {
        if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0) _exit(126);
        execl(bin, bin, "127.0.0.1", portstr, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    struct telnet_proc p = {pid, in[1], out[0]};
    return p;
}

/* Reads from fd until `needle` has been seen or EOF (or the deadline); returns bytes read. */
static size_t read_until(int fd, char *buf, size_t size, const char *needle, int until_eof, long ms) {
    int64_t deadline = kq_now_ns() + (int64_t)ms * 1000000;
    size_t got = 0;
    buf[0] = 0;
    for (;;) {
        if (!until_eof && needle != NULL && strstr(buf, needle) != NULL) return got;
        int64_t left = (deadline - kq_now_ns()) / 1000000;
        if (left <= 0) return got;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)left);
        if (r <= 0) continue;
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return got; /* EOF or error */
        got += (size_t)n;
        buf[got] = 0;
        if (got == size - 1) return got;
    }
}

static void finish(struct telnet_proc *p, int *status, int *ended) {
    *ended = kq_waitpid_bounded(p->pid, status, 5000);
    if (!*ended) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, status, 0);
    }
    close(p->in);
    close(p->out);
}

TEST(test_seed_telnet_line_to_server_reply_to_stdout_exit_0_on_peer_close) {
    const char *bin = telnet_bin();
    uint16_t port;
    int l = kq_tcp_listener(&port, 4);
    struct telnet_proc p = start_telnet(bin, port);
    int s = kq_tcp_accept(l);

    /* stdin -> server */
    static const char line[] = "hello from the test\n";
    kq_write_all(p.in, line, strlen(line));
    char buf[4096];
    read_until(s, buf, sizeof buf, "\n", 0, 5000);
    CHECK_MSG(strcmp(buf, line) == 0, "server received \"%s\", expected \"%s\"", buf, line);

    /* server -> stdout, then the server closes: the client exits with 0. */
    static const char reply[] = "reply from the server\n";
    kq_write_all(s, reply, strlen(reply));
    CHECK_SYS(close(s));
    char out[8192];
    read_until(p.out, out, sizeof out, NULL, 1, 5000);
    int status = 0, ended = 0;
    finish(&p, &status, &ended);
    CHECK_MSG(ended, "the client did not exit within 5 s after the server closed; stdout so far: \"%s\"", out);
    CHECK_MSG(strstr(out, reply) != NULL, "reply not on the client's stdout: \"%s\"", out);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client status 0x%x (stdout \"%s\")", status, out);
    close(l);
}

TEST(test_seed_telnet_prints_data_and_exits_when_server_closes_first) {
    const char *bin = telnet_bin();
    uint16_t port;
    int l = kq_tcp_listener(&port, 4);
    struct telnet_proc p = start_telnet(bin, port);
    int s = kq_tcp_accept(l);
    static const char banner[] = "welcome, and goodbye\n";
    kq_write_all(s, banner, strlen(banner));
    CHECK_SYS(close(s));
    char out[8192];
    read_until(p.out, out, sizeof out, NULL, 1, 5000);
    int status = 0, ended = 0;
    finish(&p, &status, &ended);
    CHECK_MSG(ended, "the client did not exit within 5 s after the server closed; stdout so far: \"%s\"", out);
    CHECK_MSG(strstr(out, banner) != NULL, "banner not on the client's stdout: \"%s\"", out);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client status 0x%x (stdout \"%s\")", status, out);
    close(l);
}

RUN_TESTS()
