/*
 * SPEC.md 3, EVFILT_AIO with <aio.h> included before <sys/event.h>, and with
 * _FILE_OFFSET_BITS=64 (glibc's <aio.h> then names aio_read64 and friends): the same
 * requests work as in aio.c, where the order is the other one.
 */
#define _GNU_SOURCE /* before the first system header, for kqtest.h */
#define _FILE_OFFSET_BITS 64
#include <aio.h>

#include "kqtest.h"

#define U(x) ((void *)(uintptr_t)(x))

static void prepare(struct aiocb *cb, int fd, void *buf, size_t n, off_t offset, int kq, void *udata) {
    memset(cb, 0, sizeof *cb);
    cb->aio_fildes = fd;
    cb->aio_buf = buf;
    cb->aio_nbytes = n;
    cb->aio_offset = offset;
    cb->aio_sigevent.sigev_notify = SIGEV_KEVENT;
    cb->aio_sigevent.sigev_notify_kqueue = kq;
    cb->aio_sigevent.sigev_value.sival_ptr = udata;
}

static int temp_file(void) {
    char path[] = "/tmp/kq-aio-order-XXXXXX";
    int fd = (int)CHECK_SYS(mkstemp(path));
    CHECK_SYS(unlink(path));
    return fd;
}

TEST(test_aio_include_order_aio_h_first_write_read_event_and_return) {
    int kq = kq_new();
    int fd = temp_file();
    char out[6] = "kqueue", in[6];
    struct aiocb cb;
    prepare(&cb, fd, out, sizeof out, 3, kq, U(1));
    CHECK_SYS(aio_write(&cb));
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, &cb, EVFILT_AIO, 5000, kq_pred_any, 0, &ev);
    CHECK_EQ_HEX(ev.udata, 1);
    CHECK_EQ_INT(aio_return(&cb), 6);
    prepare(&cb, fd, in, sizeof in, 3, kq, U(2));
    CHECK_SYS(aio_read(&cb));
    CHECK_EVENT_UNTIL(kq, &cb, EVFILT_AIO, 5000, kq_pred_any, 0, &ev);
    CHECK_EQ_INT(aio_error(&cb), 0);
    CHECK_EQ_INT(aio_return(&cb), 6);
    CHECK(memcmp(in, out, 6) == 0);
    close(fd);
    close(kq);
}

TEST(test_aio_include_order_lio_listio_suspend_cancel_fsync) {
    int kq = kq_new();
    int fd = temp_file();
    char a[4] = "abcd", b[4];
    struct aiocb w, r;
    prepare(&w, fd, a, 4, 0, kq, NULL);
    w.aio_lio_opcode = LIO_WRITE;
    struct aiocb *list[1] = {&w};
    struct sigevent sig;
    memset(&sig, 0, sizeof sig);
    sig.sigev_notify = SIGEV_KEVENT;
    sig.sigev_notify_kqueue = kq;
    CHECK_SYS(lio_listio(LIO_NOWAIT, list, 1, &sig));
    struct kevent ev;
    CHECK_EVENT_UNTIL(kq, list, EVFILT_LIO, 5000, kq_pred_any, 0, &ev);
    CHECK_EQ_INT(aio_return(&w), 4);
    prepare(&r, fd, b, 4, 0, kq, NULL);
    CHECK_SYS(aio_read(&r));
    const struct aiocb *wait_list[1] = {&r};
    struct timespec limit = {5, 0};
    CHECK_SYS(aio_suspend(wait_list, 1, &limit));
    CHECK_EQ_INT(aio_cancel(fd, &r), AIO_ALLDONE);
    CHECK_EQ_INT(aio_return(&r), 4);
    CHECK(memcmp(a, b, 4) == 0);
    prepare(&r, fd, NULL, 0, 0, kq, NULL);
    CHECK_SYS(aio_fsync(O_SYNC, &r));
    CHECK_SYS(aio_suspend(wait_list, 1, &limit));
    CHECK_EQ_INT(aio_return(&r), 0);
    close(fd);
    close(kq);
}

RUN_TESTS()
