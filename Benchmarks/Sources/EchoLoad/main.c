// EchoLoad: a line echo load client for docs/BENCHMARKS.md, in C on raw epoll so that the
// client's own cost is the same, and small, for every server it measures.
//
//   EchoLoad PORT [CONNECTIONS=100] [SECONDS=10] [WARMUP_SECONDS=1]
//
// Each connection sends a 32-byte line, waits for its echo, and sends the next one (one
// request in flight per connection, like wrk). Round-trip latencies after the warm-up are
// kept and sorted; prints requests/s and the p50/p99/max latency in microseconds, and the
// round trips counted (after the warm-up) and in total.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE "0123456789abcdefghijklmnopqrstu\n"
#define LINE_LENGTH 32

struct client {
    int fd;
    int received;
    uint64_t sent_at;
};

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: EchoLoad PORT [CONNECTIONS] [SECONDS] [WARMUP_SECONDS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int count = argc > 2 ? atoi(argv[2]) : 100;
    int seconds = argc > 3 ? atoi(argv[3]) : 10;
    int warmup = argc > 4 ? atoi(argv[4]) : 1;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct client *clients = calloc((size_t)count, sizeof *clients);
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        clients[i].fd = fd;
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
    }
    size_t capacity = 1 << 24, latencies = 0, total = 0;
    uint64_t *samples = malloc(capacity * sizeof *samples);
    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)warmup * 1000000000u;
    uint64_t end = measure_from + (uint64_t)seconds * 1000000000u;
    for (int i = 0; i < count; i++) {
        clients[i].sent_at = now_ns();
        if (write(clients[i].fd, LINE, LINE_LENGTH) != LINE_LENGTH) {
            perror("write");
            return 1;
        }
    }
    struct epoll_event events[256];
    char buffer[4096];
    uint64_t now = start;
    while (now < end) {
        int n = epoll_wait(epfd, events, 256, 100);
        now = now_ns();
        for (int e = 0; e < n; e++) {
            struct client *c = &clients[events[e].data.u32];
            ssize_t got = read(c->fd, buffer, sizeof buffer);
            if (got <= 0) {
                fprintf(stderr, "connection %u: %s\n", events[e].data.u32, got == 0 ? "closed" : strerror(errno));
                return 1;
            }
            c->received += (int)got;
            if (c->received < LINE_LENGTH) continue;
            c->received -= LINE_LENGTH;
            total++;
            if (c->sent_at >= measure_from && latencies < capacity) samples[latencies++] = now - c->sent_at;
            c->sent_at = now;
            if (write(c->fd, LINE, LINE_LENGTH) != LINE_LENGTH) {
                perror("write");
                return 1;
            }
        }
    }
    qsort(samples, latencies, sizeof *samples, compare);
    double rate = (double)latencies / seconds;
    printf(
        "requests/s %.0f p50_us %.1f p99_us %.1f max_us %.1f requests %zu total %zu\n", rate,
        latencies ? samples[latencies / 2] / 1e3 : 0, latencies ? samples[latencies * 99 / 100] / 1e3 : 0,
        latencies ? samples[latencies - 1] / 1e3 : 0, latencies, total);
    return 0;
}
