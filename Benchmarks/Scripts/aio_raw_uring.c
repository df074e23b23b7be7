/*
 * The ceiling for AIORandomRead's io_uring row: the library's backend alone (aio_backend.c: the
 * ring's RWF_NOWAIT batches, shared with its helper threads), no kqueue, no epoll wait, against
 * a pread loop, 4 KiB random reads over a 256 MiB file in the page cache. Shows how much the
 * backend can gain over pread on a machine (docs/BENCHMARKS.md, "Asynchronous I/O");
 * KQUEUE_AIO_HELPERS=0 shows the ring alone in one thread.
 *
 *   cc -O2 -I Sources/CKQueueShim/include Benchmarks/Scripts/aio_raw_uring.c -o /tmp/aio_raw -lpthread
 *   /tmp/aio_raw [DEPTH (64)] [SECONDS (2)]
 */
#include "../../Sources/CKQueueShim/aio_backend.c"

#include <stdio.h>

int kq_shim_real_close(int fd) { return close(fd); }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t state = 0x9E3779B97F4A7C15ULL;
static long long next_offset(void) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (long long)((state * 0x2545F4914F6CDD1DULL) % 65536) * 4096;
}

int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 64;
    double seconds = argc > 2 ? atof(argv[2]) : 2;
    if (depth < 1 || depth > 256) return 2;
    const char *path = "/tmp/kq-aio-raw.dat";
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    static char chunk[1 << 20];
    for (long o = 0; o < 256L << 20; o += 1 << 20)
        if (pwrite(fd, chunk, sizeof chunk, o) != (ssize_t)sizeof chunk) return 1;
    for (int pass = 0; pass < 2; pass++)
        for (long o = 0; o < 256L << 20; o += 1 << 20)
            if (pread(fd, chunk, sizeof chunk, o) != (ssize_t)sizeof chunk) return 1;
    char *buffers = aligned_alloc(4096, 4096 * (size_t)depth);
    double start = now();
    long done = 0;
    while (now() - start < seconds) {
        for (int i = 0; i < 256; i++)
            if (pread(fd, buffers, 4096, next_offset()) != 4096) return 1;
        done += 256;
    }
    double pread_rate = (double)done / (now() - start);
    int error;
    struct kq_aio_backend *ring = kq_aio_backend_open(KQ_AIO_BACKEND_IO_URING, &error);
    if (ring == NULL) return 3;
    struct kq_aio_op ops[256];
    struct kq_aio_completion completions[256];
    for (int i = 0; i < depth; i++)
        ops[i] = (struct kq_aio_op){.tag = (uint64_t)i + 1, .opcode = KQ_AIO_OP_READ, .fd = fd,
                                    .buffer = buffers + 4096 * i, .length = 4096, .offset = next_offset()};
    kq_aio_backend_submit(ring, ops, depth);
    start = now();
    done = 0;
    while (now() - start < seconds) {
        int n = kq_aio_backend_reap(ring, completions, 256);
        for (int k = 0; k < n; k++) {
            int i = (int)completions[k].tag - 1;
            ops[k] = (struct kq_aio_op){.tag = (uint64_t)i + 1, .opcode = KQ_AIO_OP_READ, .fd = fd,
                                        .buffer = buffers + 4096 * i, .length = 4096, .offset = next_offset()};
        }
        done += n;
        if (n > 0) kq_aio_backend_submit(ring, ops, n);
        else kq_aio_backend_assist(ring); /* as a kqueue about to wait does */
    }
    double ring_rate = (double)done / (now() - start);
    const char *helpers = getenv("KQUEUE_AIO_HELPERS");
    printf("depth %d: pread %.0f req/s, raw backend (RWF_NOWAIT batches, KQUEUE_AIO_HELPERS=%s) %.0f req/s, "
           "ratio %.2f\n",
           depth, pread_rate, helpers != NULL ? helpers : "default", ring_rate, ring_rate / pread_rate);
    unlink(path);
    return 0;
}
