/*
 * SPEC.md 3, EVFILT_AIO and EVFILT_LIO: FreeBSD's aio_read, aio_write, aio_readv, aio_writev,
 * aio_fsync and lio_listio with SIGEV_KEVENT, their events (ident the aiocb, udata the
 * sigev_value, data the error, EV_EOF), aio_error, aio_return, aio_suspend and aio_cancel, bad
 * input reported where FreeBSD reports it, 1,000 requests in flight, a kqueue closed with
 * requests in flight, and other notification modes left to glibc.
 *
 * <sys/event.h> comes first here (kqtest.h), <aio.h> after it; aio_include_order.c has the
 * other order with _FILE_OFFSET_BITS=64. CI runs this program on both backends
 * (KQUEUE_AIO_BACKEND=threads for the thread pool).
 */
#include "kqtest.h"

#include <aio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#define U(x) ((void *)(uintptr_t)(x))

/* A file of `size` bytes where byte i is (i * 7 + 3) & 0xff. */
static int make_file(size_t size) {
    char path[] = "/tmp/kq-aio-XXXXXX";
    int fd = (int)CHECK_SYS(mkstemp(path));
    CHECK_SYS(unlink(path));
    unsigned char *data = malloc(size ? size : 1);
    CHECK(data != NULL);
    for (size_t i = 0; i < size; i++) data[i] = (unsigned char)((i * 7 + 3) & 0xff);
    CHECK_EQ_INT(pwrite(fd, data, size, 0), (long long)size);
    free(data);
    return fd;
}

static unsigned char pattern(size_t i) { return (unsigned char)((i * 7 + 3) & 0xff); }

static void prepare(struct aiocb *cb, int fd, void *buf, size_t n, off_t offset, int kq, void *udata, int evflags) {
    memset(cb, 0, sizeof *cb);
    cb->aio_fildes = fd;
    cb->aio_buf = buf;
    cb->aio_nbytes = n;
    cb->aio_offset = offset;
    cb->aio_sigevent.sigev_notify = SIGEV_KEVENT;
    cb->aio_sigevent.sigev_notify_kqueue = kq;
    cb->aio_sigevent.sigev_notify_kevent_flags = evflags;
    cb->aio_sigevent.sigev_value.sival_ptr = udata;
}

/* Waits for the EVFILT_AIO event of `cb`. */
static struct kevent wait_aio(int kq, struct aiocb *cb) {
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, cb, EVFILT_AIO, 5000, kq_pred_any, 0, &ev);
    return ev;
}

TEST(test_aio_read_event_has_aiocb_ident_sigev_value_udata_error_data_and_eof) {
    int kq = kq_new();
    int fd = make_file(8192);
    char buf[4096];
    struct aiocb cb;
    prepare(&cb, fd, buf, sizeof buf, 100, kq, U(0xabc), 0);
    CHECK_SYS(aio_read(&cb));
    struct kevent ev = wait_aio(kq, &cb);
    CHECK_EQ_HEX(ev.ident, (uintptr_t)&cb);
    CHECK_EQ_INT(ev.filter, EVFILT_AIO);
    CHECK_EQ_HEX(ev.udata, 0xabc);
    CHECK_EQ_INT(ev.data, 0);
    CHECK_EQ_HEX(ev.flags, EV_EOF);
    CHECK_EQ_INT(ev.fflags, 0);
    CHECK_EQ_INT(aio_error(&cb), 0);
    CHECK_EQ_INT(aio_return(&cb), 4096);
    for (size_t i = 0; i < sizeof buf; i++) CHECK_EQ_INT((unsigned char)buf[i], pattern(i + 100));
    /* aio_return released the request: its knote is gone, a second aio_return is EINVAL. */
    CHECK_NO_EVENT(kq);
    CHECK_ERRNO(aio_return(&cb), EINVAL);
    close(fd);
    close(kq);
}

/* Each of `count` regions of `region` bytes has only its first half in the page cache: the
 * file is written, synced and dropped from the cache, then the halves are read back without
 * read-ahead. Checked with mincore, so that the test cannot pass by a cache left warm. */
static int make_half_cached_file(size_t count, size_t region) {
    size_t size = count * region;
    int fd = make_file(size);
    CHECK_SYS(fsync(fd));
    CHECK_EQ_INT(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    CHECK_EQ_INT(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);
    unsigned char *scratch = malloc(region / 2);
    CHECK(scratch != NULL);
    for (size_t i = 0; i < count; i++)
        CHECK_EQ_INT(pread(fd, scratch, region / 2, (off_t)(i * region)), (long long)(region / 2));
    free(scratch);
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *resident = malloc(size / page);
    CHECK(resident != NULL);
    CHECK_SYS(mincore(map, size, resident));
    for (size_t i = 0; i < count; i++) {
        CHECK((resident[i * region / page] & 1) == 1);
        CHECK((resident[(i * region + region / 2) / page] & 1) == 0);
    }
    free(resident);
    CHECK_SYS(munmap(map, size));
    return fd;
}

/* FreeBSD reads a regular file whole (short only at its end). A first attempt that stops at
 * the first page missing from the cache (RWF_NOWAIT) is continued, not reported short: one
 * request alone, a vectored one, and 32 in one list (shared with the helper threads). */
TEST(test_aio_read_of_a_file_partly_in_the_page_cache_is_whole_not_short) {
    enum { count = 32, region = 64 * 1024 };
    int kq = kq_new();
    int fd = make_half_cached_file(count, region);
    unsigned char *buf = malloc((size_t)count * region);
    CHECK(buf != NULL);
    struct aiocb one;
    prepare(&one, fd, buf, region, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&one));
    wait_aio(kq, &one);
    CHECK_EQ_INT(aio_return(&one), region);
    for (size_t i = 0; i < region; i++) CHECK_EQ_INT(buf[i], pattern(i));

    /* Vectored: the cached half ends inside the second segment. */
    memset(buf, 0, region);
    struct iovec iov[3] = {{buf, 10000}, {buf + 10000, 40000}, {buf + 50000, region - 50000}};
    struct aiocb vectored;
    prepare(&vectored, fd, NULL, 0, region, kq, NULL, 0);
    vectored.aio_iov = iov;
    vectored.aio_iovcnt = 3;
    CHECK_SYS(aio_readv(&vectored));
    wait_aio(kq, &vectored);
    CHECK_EQ_INT(aio_return(&vectored), region);
    for (size_t i = 0; i < region; i++) CHECK_EQ_INT(buf[i], pattern(i + region));
    close(fd);

    fd = make_half_cached_file(count, region);
    memset(buf, 0, (size_t)count * region);
    static struct aiocb cbs[count];
    struct aiocb *list[count];
    for (int i = 0; i < count; i++) {
        prepare(&cbs[i], fd, buf + (size_t)i * region, region, (off_t)i * region, kq, NULL, 0);
        cbs[i].aio_lio_opcode = LIO_READ;
        list[i] = &cbs[i];
    }
    CHECK_SYS(lio_listio(LIO_WAIT, list, count, NULL));
    for (int i = 0; i < count; i++) CHECK_EQ_INT(aio_return(&cbs[i]), region);
    for (size_t i = 0; i < (size_t)count * region; i++) CHECK_EQ_INT(buf[i], pattern(i));
    free(buf);
    close(fd);
    close(kq);
}

TEST(test_aio_write_then_read_back) {
    int kq = kq_new();
    int fd = make_file(0);
    char out[5000], in[5000];
    for (size_t i = 0; i < sizeof out; i++) out[i] = (char)(i % 251);
    struct aiocb cb;
    prepare(&cb, fd, out, sizeof out, 10, kq, U(1), 0);
    CHECK_SYS(aio_write(&cb));
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_error(&cb), 0);
    CHECK_EQ_INT(aio_return(&cb), (long long)sizeof out);
    CHECK_EQ_INT(pread(fd, in, sizeof in, 10), (long long)sizeof in);
    CHECK(memcmp(in, out, sizeof in) == 0);
    close(fd);
    close(kq);
}

TEST(test_aio_readv_and_writev_use_aio_iov_and_aio_iovcnt) {
    int kq = kq_new();
    int fd = make_file(0);
    char a[3] = {'a', 'b', 'c'}, b[5] = {'d', 'e', 'f', 'g', 'h'};
    struct iovec wiov[2] = {{a, sizeof a}, {b, sizeof b}};
    struct aiocb cb;
    prepare(&cb, fd, NULL, 0, 4, kq, U(2), 0);
    cb.aio_iov = wiov;
    cb.aio_iovcnt = 2;
    CHECK_SYS(aio_writev(&cb));
    /* FreeBSD copies the iovec array at submission: it may change at once. */
    memset(wiov, 0, sizeof wiov);
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_return(&cb), 8);
    char x[4] = {0}, y[4] = {0};
    struct iovec riov[2] = {{x, sizeof x}, {y, sizeof y}};
    prepare(&cb, fd, NULL, 0, 4, kq, U(3), 0);
    cb.aio_iov = riov;
    cb.aio_iovcnt = 2;
    CHECK_SYS(aio_readv(&cb));
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_return(&cb), 8);
    CHECK(memcmp(x, "abcd", 4) == 0);
    CHECK(memcmp(y, "efgh", 4) == 0);
    close(fd);
    close(kq);
}

TEST(test_aio_fsync_o_sync_and_o_dsync_complete_other_op_einval) {
    int kq = kq_new();
    int fd = make_file(100);
    struct aiocb cb;
    prepare(&cb, fd, NULL, 0, 0, kq, U(4), 0);
    CHECK_SYS(aio_fsync(O_SYNC, &cb));
    struct kevent ev = wait_aio(kq, &cb);
    CHECK_EQ_INT(ev.data, 0);
    CHECK_EQ_INT(aio_return(&cb), 0);
    prepare(&cb, fd, NULL, 0, 0, kq, U(5), 0);
    CHECK_SYS(aio_fsync(O_DSYNC, &cb));
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_return(&cb), 0);
    prepare(&cb, fd, NULL, 0, 0, kq, U(6), 0);
    CHECK_ERRNO(aio_fsync(O_RDONLY, &cb), EINVAL);
    close(fd);
    close(kq);
}

TEST(test_aio_short_read_at_end_of_file_and_zero_past_it) {
    int kq = kq_new();
    int fd = make_file(1000);
    char buf[256];
    struct aiocb cb;
    prepare(&cb, fd, buf, sizeof buf, 990, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_return(&cb), 10);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT((unsigned char)buf[i], pattern((size_t)(990 + i)));
    prepare(&cb, fd, buf, sizeof buf, 5000, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    struct kevent ev = wait_aio(kq, &cb);
    CHECK_EQ_INT(ev.data, 0);
    CHECK_EQ_INT(aio_return(&cb), 0);
    close(fd);
    close(kq);
}

TEST(test_aio_event_level_triggered_until_aio_return_oneshot_clear_dispatch_once) {
    int kq = kq_new();
    int fd = make_file(64);
    char buf[16];
    struct aiocb cb;
    struct kevent ev;
    /* No flag: returned again by every kevent() until aio_return (FreeBSD's filt_aio). */
    prepare(&cb, fd, buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    wait_aio(kq, &cb);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.ident, (uintptr_t)&cb);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(aio_return(&cb), 16);
    CHECK_NO_EVENT(kq);
    int flags[] = {EV_ONESHOT, EV_CLEAR, EV_DISPATCH};
    for (int k = 0; k < 3; k++) {
        prepare(&cb, fd, buf, sizeof buf, 0, kq, NULL, flags[k]);
        CHECK_SYS(aio_read(&cb));
        ev = wait_aio(kq, &cb);
        CHECK_EQ_HEX(ev.flags, EV_EOF | flags[k]);
        CHECK_NO_EVENT(kq);
        CHECK_EQ_INT(aio_return(&cb), 16);
    }
    close(fd);
    close(kq);
}

TEST(test_aio_pending_read_einprogress_aio_return_einval_until_done) {
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    char buf[32] = {0};
    struct aiocb cb;
    prepare(&cb, sv[0], buf, sizeof buf, 0, kq, U(7), 0);
    CHECK_SYS(aio_read(&cb));
    CHECK_EQ_INT(aio_error(&cb), EINPROGRESS);
    CHECK_ERRNO(aio_return(&cb), EINVAL);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_write_all(sv[1], "ping", 4);
    struct kevent ev = wait_aio(kq, &cb);
    CHECK_EQ_HEX(ev.udata, 7);
    CHECK_EQ_INT(aio_error(&cb), 0);
    CHECK_EQ_INT(aio_return(&cb), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    close(sv[0]);
    close(sv[1]);
    close(kq);
}

/* Writes to `fd` once the thread `tid` sleeps (in kevent()), bounded. */
struct late_writer {
    pid_t tid;
    int fd;
};

static void *write_when_asleep(void *arg) {
    struct late_writer *w = arg;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)w->tid);
    for (int i = 0; i < 5000; i++) {
        char stat[512] = {0};
        int fd = open(path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, stat, sizeof stat - 1) : -1;
        if (fd >= 0) close(fd);
        char *end = n > 0 ? strrchr(stat, ')') : NULL;
        if (end != NULL && end[1] == ' ' && end[2] == 'S') break;
        poll(NULL, 0, 1);
    }
    ssize_t w1 = write(w->fd, "wake", 4);
    (void)w1;
    return NULL;
}

TEST(test_aio_completion_after_waiting_never_interrupts_the_submitters_kevent_with_eintr) {
    /* io_uring completes what it waited for by task work in the submitting thread, which ends
     * an epoll_wait with EINTR: the library never leaves a request to it (ARCHITECTURE.md). */
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    char buf[8];
    struct aiocb cb;
    prepare(&cb, sv[0], buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    struct late_writer w = {(pid_t)syscall(SYS_gettid), sv[1]};
    pthread_t thread;
    CHECK_EQ_INT(pthread_create(&thread, NULL, write_when_asleep, &w), 0);
    struct kevent ev;
    struct timespec limit = {5, 0};
    int n = kevent(kq, NULL, 0, &ev, 1, &limit);
    int e = errno;
    pthread_join(thread, NULL);
    CHECK_MSG(n == 1, "kevent returned %d (errno %s), not the completion", n, kq_errname(e));
    CHECK_EQ_HEX(ev.ident, (uintptr_t)&cb);
    CHECK_EQ_INT(aio_return(&cb), 4);
    /* Data not in the page cache, and an fsync, waited for in the same thread. */
    int fd = make_file(1 << 20);
    CHECK_SYS(fsync(fd));
    CHECK_SYS(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    char page[4096];
    prepare(&cb, fd, page, sizeof page, 512 * 1024, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    n = kevent(kq, NULL, 0, &ev, 1, &limit);
    CHECK_MSG(n == 1, "kevent returned %d (errno %s), not the read", n, kq_errname(errno));
    CHECK_EQ_INT(aio_return(&cb), 4096);
    CHECK_EQ_INT((unsigned char)page[0], pattern(512 * 1024));
    prepare(&cb, fd, NULL, 0, 0, kq, NULL, 0);
    CHECK_SYS(aio_fsync(O_SYNC, &cb));
    n = kevent(kq, NULL, 0, &ev, 1, &limit);
    CHECK_MSG(n == 1, "kevent returned %d (errno %s), not the fsync", n, kq_errname(errno));
    CHECK_EQ_INT(aio_return(&cb), 0);
    /* O_DIRECT: the block layer completes it later even under RWF_NOWAIT, so it never enters
     * the ring (a file system without O_DIRECT is skipped over). Several reads, since one may
     * complete before the wait starts. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int direct = open(path, O_RDONLY | O_DIRECT);
    if (direct >= 0) {
        void *aligned = NULL;
        CHECK_EQ_INT(posix_memalign(&aligned, 4096, 8 * 4096), 0);
        for (int round = 0; round < 8; round++) {
            prepare(&cb, direct, (char *)aligned + round * 4096, 4096, (off_t)round * 65536, kq, NULL, 0);
            CHECK_SYS(aio_read(&cb));
            n = kevent(kq, NULL, 0, &ev, 1, &limit);
            CHECK_MSG(n == 1, "kevent returned %d (errno %s), not the O_DIRECT read", n, kq_errname(errno));
            CHECK_EQ_INT(aio_return(&cb), 4096);
            CHECK_EQ_INT(((unsigned char *)aligned)[round * 4096], pattern((size_t)round * 65536));
        }
        free(aligned);
        close(direct);
    }
    close(fd);
    close(sv[0]);
    close(sv[1]);
    close(kq);
}

TEST(test_aio_cancel_pending_read_canceled_event_ecanceled_then_alldone) {
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    char buf[32] = {0};
    struct aiocb cb;
    prepare(&cb, sv[0], buf, sizeof buf, 0, kq, U(8), 0);
    CHECK_SYS(aio_read(&cb));
    CHECK_EQ_INT(aio_cancel(sv[0], &cb), AIO_CANCELED);
    CHECK_EQ_INT(aio_error(&cb), ECANCELED);
    struct kevent ev = wait_aio(kq, &cb);
    CHECK_EQ_INT(ev.data, ECANCELED);
    CHECK_EQ_HEX(ev.flags, EV_EOF);
    CHECK_EQ_INT(aio_cancel(sv[0], &cb), AIO_ALLDONE);
    CHECK_ERRNO(aio_return(&cb), ECANCELED);
    /* The buffer is never written after the cancel. */
    kq_write_all(sv[1], "late", 4);
    char probe[4];
    kq_read_n(sv[0], probe, 4);
    CHECK_EQ_INT(buf[0], 0);
    close(sv[0]);
    close(sv[1]);
    close(kq);
}

TEST(test_aio_cancel_all_requests_on_a_descriptor_and_bad_descriptor) {
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    char b1[8], b2[8];
    struct aiocb c1, c2;
    prepare(&c1, sv[0], b1, sizeof b1, 0, kq, NULL, 0);
    prepare(&c2, sv[0], b2, sizeof b2, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&c1));
    CHECK_SYS(aio_read(&c2));
    CHECK_EQ_INT(aio_cancel(sv[0], NULL), AIO_CANCELED);
    CHECK_EQ_INT(aio_error(&c1), ECANCELED);
    CHECK_EQ_INT(aio_error(&c2), ECANCELED);
    CHECK_EQ_INT(aio_cancel(sv[0], NULL), AIO_ALLDONE);
    CHECK_ERRNO(aio_return(&c1), ECANCELED);
    CHECK_ERRNO(aio_return(&c2), ECANCELED);
    CHECK_ERRNO(aio_cancel(-1, NULL), EBADF);
    CHECK_ERRNO(aio_cancel(1000000, NULL), EBADF);
    close(sv[0]);
    close(sv[1]);
    close(kq);
}

TEST(test_aio_bad_input_reported_at_submission_where_freebsd_reports_it) {
    int kq = kq_new();
    int fd = make_file(100);
    char buf[16];
    struct aiocb cb;
    /* Negative offset: EINVAL, also from aio_error afterwards. */
    prepare(&cb, fd, buf, sizeof buf, -1, kq, NULL, 0);
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    CHECK_EQ_INT(aio_error(&cb), EINVAL);
    prepare(&cb, fd, buf, sizeof buf, -4096, kq, NULL, 0);
    CHECK_ERRNO(aio_write(&cb), EINVAL);
    /* A descriptor that is not open, and -1. */
    prepare(&cb, 1000000, buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_ERRNO(aio_read(&cb), EBADF);
    CHECK_EQ_INT(aio_error(&cb), EBADF);
    prepare(&cb, -1, buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_ERRNO(aio_write(&cb), EBADF);
    /* Opened without the access the transfer needs. */
    char path[] = "/tmp/kq-aio-mode-XXXXXX";
    int rw = (int)CHECK_SYS(mkstemp(path));
    int ro = (int)CHECK_SYS(open(path, O_RDONLY));
    int wo = (int)CHECK_SYS(open(path, O_WRONLY));
    CHECK_SYS(unlink(path));
    prepare(&cb, wo, buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_ERRNO(aio_read(&cb), EBADF);
    prepare(&cb, ro, buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_ERRNO(aio_write(&cb), EBADF);
    /* fsync needs no write access (FreeBSD's fget with fsync rights). */
    prepare(&cb, ro, NULL, 0, 0, kq, NULL, 0);
    CHECK_SYS(aio_fsync(O_SYNC, &cb));
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_return(&cb), 0);
    /* Not a kqueue; kevent flags other than ONESHOT, CLEAR, DISPATCH; too many bytes. */
    prepare(&cb, fd, buf, sizeof buf, 0, fd, NULL, 0);
    CHECK_ERRNO(aio_read(&cb), EBADF);
    prepare(&cb, fd, buf, sizeof buf, 0, -1, NULL, 0);
    CHECK_ERRNO(aio_read(&cb), EBADF);
    prepare(&cb, fd, buf, sizeof buf, 0, kq, NULL, EV_ADD);
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    prepare(&cb, fd, buf, (size_t)INT_MAX + 1, 0, kq, NULL, 0);
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    /* Nothing of these reached the kqueue. */
    CHECK_NO_EVENT(kq);
    /* An I/O error found while running is reported in the completion: a write to a socket
     * whose peer is gone. */
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    close(sv[1]);
    prepare(&cb, sv[0], buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_SYS(aio_write(&cb));
    struct kevent ev = wait_aio(kq, &cb);
    CHECK_EQ_INT(ev.data, EPIPE);
    CHECK_EQ_INT(aio_error(&cb), EPIPE);
    CHECK_ERRNO(aio_return(&cb), EPIPE);
    close(sv[0]);
    close(ro);
    close(wo);
    close(rw);
    close(fd);
    close(kq);
}

TEST(test_aio_evfilt_aio_and_lio_from_user_space_eperm) {
    int kq = kq_new();
    CHECK_ERR(kq_change_errno(kq, 1, EVFILT_AIO, EV_ADD, 0, 0, NULL), EPERM);
    CHECK_ERR(kq_change_errno(kq, 1, EVFILT_LIO, EV_ADD, 0, 0, NULL), EPERM);
    CHECK_ERR(kq_change_errno(kq, 1, EVFILT_AIO, EV_ADD | EV_FLAG1, 0, 0, NULL), EPERM);
    close(kq);
}

TEST(test_lio_listio_nowait_one_evfilt_lio_event_when_the_whole_list_is_done) {
    int kq = kq_new();
    int fd = make_file(16384);
    enum { N = 4 };
    char bufs[N][512];
    struct aiocb cbs[N];
    struct aiocb *list[N + 1];
    for (int i = 0; i < N; i++) {
        prepare(&cbs[i], fd, bufs[i], sizeof bufs[i], i * 1000, kq, U(100 + i), 0);
        cbs[i].aio_lio_opcode = LIO_READ;
        list[i] = &cbs[i];
    }
    list[N] = NULL; /* NULL entries are skipped */
    struct sigevent sig;
    memset(&sig, 0, sizeof sig);
    sig.sigev_notify = SIGEV_KEVENT;
    sig.sigev_notify_kqueue = kq;
    sig.sigev_value.sival_ptr = U(0x11);
    CHECK_SYS(lio_listio(LIO_NOWAIT, list, N + 1, &sig));
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, list, EVFILT_LIO, 5000, kq_pred_any, 0, &ev);
    CHECK_EQ_HEX(ev.udata, 0x11);
    CHECK_EQ_INT(ev.data, 0);
    CHECK_EQ_HEX(ev.flags & EV_EOF, 0);
    /* Every member has its own EVFILT_AIO event too, and is done. */
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(aio_error(&cbs[i]), 0);
        struct kevent one;
        CHECK_EVENT_UNTIL(kq, &cbs[i], EVFILT_AIO, 5000, kq_pred_any, 0, &one);
        CHECK_EQ_HEX(one.udata, 100 + i);
    }
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(aio_return(&cbs[i]), 512);
        CHECK_EQ_INT((unsigned char)bufs[i][0], pattern((size_t)i * 1000));
    }
    /* The list's knote goes with its last request. */
    CHECK_NO_EVENT(kq);
    close(fd);
    close(kq);
}

TEST(test_lio_listio_with_one_bad_entry_eio_others_complete) {
    int kq = kq_new();
    int fd = make_file(4096);
    char good1[64], good2[64], bad[64];
    struct aiocb c1, c2, cbad;
    prepare(&c1, fd, good1, sizeof good1, 0, kq, NULL, 0);
    prepare(&cbad, fd, bad, sizeof bad, -5, kq, NULL, 0); /* negative offset */
    prepare(&c2, fd, good2, sizeof good2, 64, kq, NULL, 0);
    c1.aio_lio_opcode = c2.aio_lio_opcode = cbad.aio_lio_opcode = LIO_READ;
    struct aiocb *list[3] = {&c1, &cbad, &c2};
    struct sigevent sig;
    memset(&sig, 0, sizeof sig);
    sig.sigev_notify = SIGEV_KEVENT;
    sig.sigev_notify_kqueue = kq;
    CHECK_ERRNO(lio_listio(LIO_NOWAIT, list, 3, &sig), EIO);
    CHECK_EQ_INT(aio_error(&cbad), EINVAL);
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, list, EVFILT_LIO, 5000, kq_pred_any, 0, &ev);
    CHECK_EQ_INT(aio_return(&c1), 64);
    CHECK_EQ_INT(aio_return(&c2), 64);
    /* LIO_WAIT: returns once all are done; a bad opcode counts as an error too. */
    prepare(&c1, fd, good1, sizeof good1, 0, kq, NULL, 0);
    c1.aio_lio_opcode = LIO_READ;
    prepare(&cbad, fd, bad, sizeof bad, 0, kq, NULL, 0);
    cbad.aio_lio_opcode = 77;
    struct aiocb *list2[2] = {&c1, &cbad};
    CHECK_ERRNO(lio_listio(LIO_WAIT, list2, 2, NULL), EIO);
    CHECK_EQ_INT(aio_error(&c1), 0);
    CHECK_EQ_INT(aio_return(&c1), 64);
    CHECK_ERRNO(lio_listio(3, list2, 2, NULL), EINVAL);
    CHECK_ERRNO(lio_listio(LIO_WAIT, list2, -1, NULL), EINVAL);
    close(fd);
    close(kq);
}

TEST(test_lio_listio_wait_with_vectored_entries) {
    int kq = kq_new();
    int fd = make_file(0);
    char a[4] = "wxyz", b[4] = "1234";
    struct iovec iov[2] = {{a, 4}, {b, 4}};
    struct aiocb w;
    prepare(&w, fd, NULL, 0, 0, kq, NULL, 0);
    w.aio_iov = iov;
    w.aio_iovcnt = 2;
    w.aio_lio_opcode = LIO_WRITEV;
    struct aiocb *list[1] = {&w};
    CHECK_SYS(lio_listio(LIO_WAIT, list, 1, NULL));
    CHECK_EQ_INT(aio_return(&w), 8);
    char back[8];
    CHECK_EQ_INT(pread(fd, back, 8, 0), 8);
    CHECK(memcmp(back, "wxyz1234", 8) == 0);
    close(fd);
    close(kq);
}

TEST(test_aio_suspend_returns_when_one_is_done_eagain_after_timeout) {
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    char buf[8];
    struct aiocb cb;
    prepare(&cb, sv[0], buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    const struct aiocb *list[2] = {NULL, &cb};
    struct timespec short_wait = {0, 30 * 1000 * 1000};
    int64_t start = kq_now_ns();
    CHECK_ERRNO(aio_suspend(list, 2, &short_wait), EAGAIN);
    CHECK(kq_now_ns() - start >= 30 * 1000 * 1000);
    struct timespec bad = {0, 1000000000};
    CHECK_ERRNO(aio_suspend(list, 2, &bad), EINVAL);
    kq_write_all(sv[1], "x", 1);
    struct timespec limit = {5, 0};
    CHECK_SYS(aio_suspend(list, 2, &limit));
    CHECK_EQ_INT(aio_error(&cb), 0);
    CHECK_EQ_INT(aio_return(&cb), 1);
    /* Nothing in the list is a request any more: at once. */
    CHECK_SYS(aio_suspend(list, 2, NULL));
    close(sv[0]);
    close(sv[1]);
    close(kq);
}

TEST(test_aio_1000_requests_in_flight_each_event_once_data_right) {
    int kq = kq_new();
    enum { N = 1000, SIZE = 4096 };
    int fd = make_file((size_t)N * 64);
    struct aiocb *cbs = calloc(N, sizeof *cbs);
    unsigned char *bufs = calloc(N, SIZE);
    char *seen = calloc(N, 1);
    CHECK(cbs != NULL && bufs != NULL && seen != NULL);
    for (int i = 0; i < N; i++) {
        prepare(&cbs[i], fd, bufs + (size_t)i * SIZE, 64, (off_t)i * 64, kq, U(i + 1), EV_ONESHOT);
        CHECK_SYS(aio_read(&cbs[i]));
    }
    int got = 0;
    int64_t deadline = kq_now_ns() + 10LL * 1000 * 1000 * 1000;
    struct kevent evs[64];
    while (got < N && kq_now_ns() < deadline) {
        int n = KQ_WAIT(kq, evs, 64, 1000);
        for (int k = 0; k < n; k++) {
            CHECK_EQ_INT(evs[k].filter, EVFILT_AIO);
            int i = (int)((uintptr_t)evs[k].udata - 1);
            CHECK(i >= 0 && i < N);
            CHECK_EQ_HEX(evs[k].ident, (uintptr_t)&cbs[i]);
            CHECK_EQ_INT(seen[i], 0);
            seen[i] = 1;
            CHECK_EQ_INT(evs[k].data, 0);
            got++;
        }
    }
    CHECK_EQ_INT(got, N);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(aio_return(&cbs[i]), 64);
        CHECK_EQ_INT(bufs[(size_t)i * SIZE], pattern((size_t)i * 64));
    }
    CHECK_NO_EVENT(kq);
    free(cbs);
    free(bufs);
    free(seen);
    close(fd);
    close(kq);
}

/* One kqueue that ran a request and was closed: its backend's ring (if any) stays for the
 * next kqueue, as a process-wide cache (ARCHITECTURE.md). */
static void warm_up_backend(void) {
    int kq = kq_new();
    int fd = make_file(64);
    char buf[8];
    struct aiocb cb;
    prepare(&cb, fd, buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_return(&cb), 8);
    close(fd);
    close(kq);
}

TEST(test_aio_kqueue_closed_with_requests_in_flight_cancelled_buffer_untouched) {
    warm_up_backend();
    int before = kq_fd_count();
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    char buf[16];
    memset(buf, 'z', sizeof buf);
    struct aiocb cb;
    prepare(&cb, sv[0], buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    CHECK_EQ_INT(aio_error(&cb), EINPROGRESS);
    CHECK_SYS(close(kq));
    /* The request ended with the kqueue: cancelled, and its result is still there. */
    CHECK_EQ_INT(aio_error(&cb), ECANCELED);
    CHECK_ERRNO(aio_return(&cb), ECANCELED);
    kq_write_all(sv[1], "data", 4);
    char probe[4];
    kq_read_n(sv[0], probe, 4);
    CHECK_EQ_INT(buf[0], 'z');
    close(sv[0]);
    close(sv[1]);
    /* Every descriptor the kqueue's backend had went with it (or back to the ring cache). */
    CHECK_EQ_INT(kq_fd_count(), before);
}

/* A list of file reads is shared with a helper thread on a machine with a second CPU
 * (ARCHITECTURE.md): a kqueue closed right after it cancels what is still queued, waits for
 * what a helper or the ring is running, and each request ends once: read in full, or
 * ECANCELED with its buffer untouched. */
TEST(test_aio_kqueue_closed_after_a_shared_list_each_read_whole_or_cancelled_untouched) {
    enum { N = 256, SIZE = 4096 };
    int fd = make_file((size_t)N * SIZE);
    struct aiocb *cbs = calloc(N, sizeof *cbs);
    struct aiocb **list = calloc(N, sizeof *list);
    unsigned char *bufs = malloc((size_t)N * SIZE);
    CHECK(cbs != NULL && list != NULL && bufs != NULL);
    int cancelled = 0;
    for (int round = 0; round < 20; round++) {
        int kq = kq_new();
        memset(bufs, 'z', (size_t)N * SIZE);
        for (int i = 0; i < N; i++) {
            prepare(&cbs[i], fd, bufs + (size_t)i * SIZE, SIZE, (off_t)i * SIZE, kq, U(i + 1), EV_ONESHOT);
            cbs[i].aio_lio_opcode = LIO_READ;
            list[i] = &cbs[i];
        }
        CHECK_SYS(lio_listio(LIO_NOWAIT, list, N, NULL));
        CHECK_SYS(close(kq));
        for (int i = 0; i < N; i++) {
            int error = aio_error(&cbs[i]);
            ssize_t r = aio_return(&cbs[i]);
            unsigned char *buf = bufs + (size_t)i * SIZE;
            if (error == 0) {
                CHECK_EQ_INT(r, SIZE);
                CHECK_EQ_INT(buf[0], pattern((size_t)i * SIZE));
                CHECK_EQ_INT(buf[SIZE - 1], pattern((size_t)i * SIZE + SIZE - 1));
            } else {
                CHECK_EQ_INT(error, ECANCELED);
                CHECK_EQ_INT(r, -1);
                CHECK_EQ_INT(buf[0], 'z');
                CHECK_EQ_INT(buf[SIZE - 1], 'z');
                cancelled++;
            }
        }
    }
    printf("  %d of %d reads cancelled by the close\n", cancelled, 20 * N);
    free(cbs);
    free(list);
    free(bufs);
    close(fd);
}

TEST(test_aio_500_kqueue_cycles_with_requests_leave_descriptors_where_they_were) {
    warm_up_backend();
    int before = kq_fd_count();
    int fd = make_file(4096);
    for (int cycle = 0; cycle < 500; cycle++) {
        int kq = kq_new();
        char buf[16];
        struct aiocb cb;
        prepare(&cb, fd, buf, sizeof buf, cycle, kq, NULL, 0);
        CHECK_SYS(aio_read(&cb));
        if (cycle % 2 == 0) {
            wait_aio(kq, &cb);
            CHECK_EQ_INT(aio_return(&cb), 16);
        }
        close(kq); /* half of them with the request still in flight or not returned */
        if (cycle % 2 == 1) {
            errno = 0;
            ssize_t r = aio_return(&cb); /* done before the close, or cancelled by it */
            CHECK_MSG(r == 16 || (r == -1 && errno == ECANCELED), "aio_return %zd errno %d", r, errno);
        }
    }
    close(fd);
    CHECK_EQ_INT(kq_fd_count(), before);
}

TEST(test_aio_constant_descriptors_per_kqueue_however_many_requests) {
    int kq = kq_new();
    int fd = make_file(4096);
    char buf[8];
    struct aiocb cb;
    prepare(&cb, fd, buf, sizeof buf, 0, kq, NULL, 0);
    CHECK_SYS(aio_read(&cb));
    wait_aio(kq, &cb);
    CHECK_EQ_INT(aio_return(&cb), 8);
    int with_one = kq_fd_count();
    enum { N = 200 };
    struct aiocb many[N];
    char bufs[N][8];
    for (int i = 0; i < N; i++) {
        prepare(&many[i], fd, bufs[i], 8, i, kq, NULL, EV_ONESHOT);
        CHECK_SYS(aio_read(&many[i]));
    }
    CHECK_EQ_INT(kq_fd_count(), with_one);
    for (int i = 0; i < N; i++) {
        const struct aiocb *one[1] = {&many[i]};
        struct timespec limit = {5, 0};
        CHECK_SYS(aio_suspend(one, 1, &limit));
        CHECK_EQ_INT(aio_return(&many[i]), 8);
    }
    close(fd);
    close(kq);
}

/* Reads `n` blocks of 4096 bytes at offsets 0, 4096, ... through one lio_listio (a batch the
 * helpers share, whose other part the ring runs from its registered files) and checks each
 * block against `seed`'s pattern. */
static void read_blocks_in_one_list(int kq, int fd, int n, unsigned seed) {
    enum { SIZE = 4096 };
    struct aiocb *cbs = calloc((size_t)n, sizeof *cbs);
    struct aiocb **list = calloc((size_t)n, sizeof *list);
    unsigned char *bufs = malloc((size_t)n * SIZE);
    CHECK(cbs != NULL && list != NULL && bufs != NULL);
    for (int i = 0; i < n; i++) {
        prepare(&cbs[i], fd, bufs + (size_t)i * SIZE, SIZE, (off_t)i * SIZE, kq, U(i + 1), EV_ONESHOT);
        cbs[i].aio_lio_opcode = LIO_READ;
        list[i] = &cbs[i];
    }
    CHECK_SYS(lio_listio(LIO_WAIT, list, n, NULL));
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(aio_error(&cbs[i]), 0);
        CHECK_EQ_INT(aio_return(&cbs[i]), SIZE);
        unsigned char *buf = bufs + (size_t)i * SIZE;
        CHECK_EQ_INT(buf[0], (unsigned char)(((size_t)i * SIZE * 7 + seed) & 0xff));
        CHECK_EQ_INT(buf[SIZE - 1], (unsigned char)(((size_t)i * SIZE + SIZE - 1) * 7 + seed) & 0xff);
    }
    /* Their events (EV_ONESHOT) go with the kqueue's next look. */
    struct kevent events[64];
    struct timespec zero = {0, 0};
    while (kevent(kq, NULL, 0, events, 64, &zero) > 0) {}
    free(cbs);
    free(list);
    free(bufs);
}

/* A named file of `size` bytes where byte i is (i * 7 + seed) & 0xff, open read-write. */
static int make_named_file(char *path, size_t size, unsigned seed) {
    int fd = (int)CHECK_SYS(mkstemp(path));
    unsigned char *data = malloc(size);
    CHECK(data != NULL);
    for (size_t i = 0; i < size; i++) data[i] = (unsigned char)((i * 7 + seed) & 0xff);
    CHECK_EQ_INT(pwrite(fd, data, size, 0), (long long)size);
    free(data);
    return fd;
}

/* The ring reads a regular file through a registered slot, which holds the open file; a
 * close through the library releases it at once, as a close without kqueue would: the flock
 * lock the descriptor held is free for the next opener. */
TEST(test_aio_file_read_in_a_shared_list_is_released_by_close_its_flock_free) {
    enum { N = 128 };
    char path[] = "/tmp/kq-aio-flock-XXXXXX";
    int fd = make_named_file(path, (size_t)N * 4096, 3);
    CHECK_SYS(flock(fd, LOCK_EX));
    int kq = kq_new();
    for (int round = 0; round < 4; round++) read_blocks_in_one_list(kq, fd, N, 3);
    /* A fork child's close is its own: the parent's reads go on. */
    pid_t child = (pid_t)CHECK_SYS(fork());
    if (child == 0) _exit(close(fd) == 0 ? 0 : 1);
    int status = 0;
    CHECK_SYS(waitpid(child, &status, 0));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    read_blocks_in_one_list(kq, fd, N, 3);
    CHECK_SYS(close(fd));
    int again = (int)CHECK_SYS(open(path, O_RDWR));
    CHECK_EQ_INT(flock(again, LOCK_EX | LOCK_NB), 0);
    /* The same through close_range. */
    for (int round = 0; round < 4; round++) read_blocks_in_one_list(kq, again, N, 3);
    CHECK_SYS(close_range((unsigned)again, (unsigned)again, 0));
    int third = (int)CHECK_SYS(open(path, O_RDONLY));
    CHECK_EQ_INT(flock(third, LOCK_EX | LOCK_NB), 0);
    close(third);
    close(kq);
    unlink(path);
}

/* A number the ring registered, then pointed at another file by dup2 (through the library)
 * or by a raw dup3 system call (behind its back): the next reads read the new file. */
TEST(test_aio_number_pointed_at_another_file_reads_the_new_file) {
    enum { N = 128 };
    char first_path[] = "/tmp/kq-aio-first-XXXXXX", second_path[] = "/tmp/kq-aio-second-XXXXXX";
    char third_path[] = "/tmp/kq-aio-third-XXXXXX";
    int fd = make_named_file(first_path, (size_t)N * 4096, 3);
    int second = make_named_file(second_path, (size_t)N * 4096, 5);
    int third = make_named_file(third_path, (size_t)N * 4096, 11);
    int kq = kq_new();
    for (int round = 0; round < 2; round++) read_blocks_in_one_list(kq, fd, N, 3);
    CHECK_EQ_INT(dup2(second, fd), fd);
    for (int round = 0; round < 2; round++) read_blocks_in_one_list(kq, fd, N, 5);
    CHECK_EQ_INT(syscall(SYS_dup3, third, fd, 0), fd);
    for (int round = 0; round < 2; round++) read_blocks_in_one_list(kq, fd, N, 11);
    close(kq);
    close(fd);
    close(second);
    close(third);
    unlink(first_path);
    unlink(second_path);
    unlink(third_path);
}

TEST(test_aio_other_notification_modes_are_glibcs) {
    int fd = make_file(4096);
    char buf[100];
    struct aiocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = fd;
    cb.aio_buf = buf;
    cb.aio_nbytes = sizeof buf;
    cb.aio_offset = 7;
    cb.aio_sigevent.sigev_notify = SIGEV_NONE;
    CHECK_SYS(aio_read(&cb));
    const struct aiocb *list[1] = {&cb};
    struct timespec limit = {5, 0};
    while (aio_error(&cb) == EINPROGRESS) CHECK_SYS(aio_suspend(list, 1, &limit));
    CHECK_EQ_INT(aio_error(&cb), 0);
    CHECK_EQ_INT(aio_return(&cb), 100);
    CHECK_EQ_INT((unsigned char)buf[0], pattern(7));
    /* glibc's lio_listio, LIO_WAIT. */
    cb.aio_lio_opcode = LIO_READ;
    cb.aio_offset = 9;
    struct aiocb *l[1] = {&cb};
    CHECK_SYS(lio_listio(LIO_WAIT, l, 1, NULL));
    CHECK_EQ_INT(aio_return(&cb), 100);
    CHECK_EQ_INT((unsigned char)buf[0], pattern(9));
    close(fd);
}

RUN_TESTS()
