/*
 * The cost of libkqueue.so's socket-I/O interposers (socket_errors.c) per call, against the
 * raw system call in the same run. Each call is one that fails at once in the kernel
 * (EAGAIN: a read of an empty non-blocking socket, a write into a full one), so the
 * interposer's share is as large as it can be.
 *
 * States, measured in this order:
 *   none      no socket error was ever kept (the fast path: one relaxed load);
 *   held      the engine keeps a refused connect's error for another socket (every call
 *             looks its own descriptor up in the kept-error table);
 *   signalfd  as held, and the application created a signalfd (read checks its table too).
 *
 * Build and run: Benchmarks/Interposers/run.sh   (prints ns per call, medians of rounds)
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CALLS 200000
#define ROUNDS 15

static int empty_socket, full_socket;
static char buffer[64];

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

enum call { READ, RECV, WRITE, SEND, CALL_COUNT };
static const char *call_names[CALL_COUNT] = {"read", "recv", "write", "send"};

static double interposed(enum call which) {
    uint64_t start = now_ns();
    for (int i = 0; i < CALLS; i++) {
        ssize_t r = 0;
        switch (which) {
        case READ: r = read(empty_socket, buffer, sizeof buffer); break;
        case RECV: r = recv(empty_socket, buffer, sizeof buffer, 0); break;
        case WRITE: r = write(full_socket, buffer, sizeof buffer); break;
        case SEND: r = send(full_socket, buffer, sizeof buffer, 0); break;
        default: break;
        }
        if (r != -1 || errno != EAGAIN) { fprintf(stderr, "unexpected result\n"); exit(1); }
    }
    return (double)(now_ns() - start) / CALLS;
}

static double raw(enum call which) {
    uint64_t start = now_ns();
    for (int i = 0; i < CALLS; i++) {
        long r = 0;
        switch (which) {
        case READ: r = syscall(SYS_read, empty_socket, buffer, sizeof buffer); break;
        case RECV: r = syscall(SYS_recvfrom, empty_socket, buffer, sizeof buffer, 0, NULL, NULL); break;
        case WRITE: r = syscall(SYS_write, full_socket, buffer, sizeof buffer); break;
        case SEND: r = syscall(SYS_sendto, full_socket, buffer, sizeof buffer, 0, NULL, 0); break;
        default: break;
        }
        if (r != -1 || errno != EAGAIN) { fprintf(stderr, "unexpected result\n"); exit(1); }
    }
    return (double)(now_ns() - start) / CALLS;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(const char *state) {
    for (int c = 0; c < CALL_COUNT; c++) {
        double with[ROUNDS], without[ROUNDS], delta[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) { /* interleaved, so drift hits both */
            without[r] = raw((enum call)c);
            with[r] = interposed((enum call)c);
            delta[r] = with[r] - without[r];
        }
        qsort(with, ROUNDS, sizeof(double), compare);
        qsort(without, ROUNDS, sizeof(double), compare);
        qsort(delta, ROUNDS, sizeof(double), compare);
        printf("| %-8s | %-5s | %7.1f | %7.1f | %+6.1f | %.3f |\n", state, call_names[c], without[ROUNDS / 2],
               with[ROUNDS / 2], delta[ROUNDS / 2], with[ROUNDS / 2] / without[ROUNDS / 2]);
    }
}

/* A refused non-blocking connect, reported through a kqueue: the engine keeps its error. */
static void keep_a_socket_error(void) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (bind(listener, (struct sockaddr *)&address, length) != 0 ||
        getsockname(listener, (struct sockaddr *)&address, &length) != 0) { perror("bind"); exit(1); }
    close(listener); /* the port is now closed: connect is refused */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (connect(s, (struct sockaddr *)&address, length) == 0 || errno != EINPROGRESS) {
        if (errno != ECONNREFUSED) { perror("connect"); exit(1); }
    }
    int kq = kqueue();
    struct kevent change, event;
    EV_SET(&change, (uintptr_t)s, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct timespec limit = {5, 0};
    if (kevent(kq, &change, 1, &event, 1, &limit) != 1 || !(event.flags & EV_EOF) || event.fflags != ECONNREFUSED) {
        fprintf(stderr, "no refused connect reported\n");
        exit(1);
    }
    /* s keeps its error (never read) for the rest of the run. */
}

int main(void) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) != 0) { perror("socketpair"); return 1; }
    empty_socket = pair[0];
    int other[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, other) != 0) { perror("socketpair"); return 1; }
    full_socket = other[0];
    while (syscall(SYS_write, full_socket, buffer, sizeof buffer) > 0) { }
    printf("ns per call (median of %d rounds of %d calls), raw system call vs the interposed libc name\n\n", ROUNDS,
           CALLS);
    printf("| state    | call  |     raw | interposed |  delta | ratio |\n|---|---|---|---|---|---|\n");
    measure("none");
    keep_a_socket_error();
    measure("held");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    if (signalfd(-1, &set, SFD_CLOEXEC) < 0) { perror("signalfd"); return 1; }
    measure("signalfd");
    return 0;
}
