/*
 * SPEC.md 2, rules 1-10: one kevent() call applies the changes, then collects events.
 * Argument checks, filter 0, EV_ERROR entries, EV_RECEIPT, timeouts, EINTR, the return
 * value and the order of events; and SPEC.md 1: an unknown filter is EINVAL.
 */
#include "kqtest.h"

#include <sys/epoll.h>

#define U(x) ((void *)(uintptr_t)(x))

static const struct timespec zero_ts = {0, 0};

/* Does user knote `ident` exist? (A NOTE_TRIGGER without EV_ADD is ENOENT otherwise.) */
static int user_knote_exists(int kq, uintptr_t ident) {
    int e = kq_change_errno(kq, ident, EVFILT_USER, 0, 0, 0, NULL);
    CHECK_MSG(e == 0 || e == ENOENT, "probe of user knote %zu: errno %d %s", (size_t)ident, e, kq_errname(e));
    return e == 0;
}

/* ---- rule 1: argument checks --------------------------------------------------------- */

TEST(test_2_1_negative_nchanges_einval) {
    int kq = kq_new();
    struct kevent ch, ev[2];
    EV_SET(&ch, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_ERRNO(kevent(kq, &ch, -1, NULL, 0, &zero_ts), EINVAL);
    CHECK_ERRNO(kevent(kq, &ch, -1, ev, 2, &zero_ts), EINVAL);
    CHECK_ERRNO(kevent(kq, NULL, INT_MIN, ev, 2, &zero_ts), EINVAL);
    close(kq);
}

TEST(test_2_1_negative_nevents_einval) {
    int kq = kq_new();
    struct kevent ev[2];
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, -1, &zero_ts), EINVAL);
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, INT_MIN, &zero_ts), EINVAL);
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, -1, NULL), EINVAL);
    close(kq);
}

TEST(test_2_1_timeout_tv_nsec_negative_einval) {
    int kq = kq_new();
    struct kevent ev[2];
    struct timespec ts = {0, -1};
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &ts), EINVAL);
    ts.tv_sec = 1;
    ts.tv_nsec = -1000;
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &ts), EINVAL);
    close(kq);
}

TEST(test_2_1_timeout_tv_nsec_at_least_1e9_einval) {
    int kq = kq_new();
    struct kevent ev[2];
    struct timespec ts = {0, 1000000000L};
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &ts), EINVAL);
    ts.tv_nsec = LONG_MAX;
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &ts), EINVAL);
    /* The largest valid value is accepted (a user event makes the call return at once). */
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    ts.tv_nsec = 999999999L;
    CHECK_EQ_INT(kevent(kq, NULL, 0, ev, 2, &ts), 1);
    close(kq);
}

TEST(test_2_1_timeout_negative_tv_sec_einval) {
    int kq = kq_new();
    struct kevent ev[2];
    struct timespec ts = {-1, 0};
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &ts), EINVAL);
    ts.tv_sec = -1;
    ts.tv_nsec = 500000000L;
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &ts), EINVAL);
    /* Also when an event is pending: the timeout is checked, not skipped. */
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ERRNO(kevent(kq, NULL, 0, ev, 2, &ts), EINVAL);
    CHECK_EQ_INT(kevent(kq, NULL, 0, ev, 2, &zero_ts), 1);
    close(kq);
}

TEST(test_2_1_kq_not_a_kqueue_ebadf) {
    struct kevent ch, ev[2];
    EV_SET(&ch, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    int p[2];
    kq_pipe(p);
    CHECK_ERRNO(kevent(p[0], NULL, 0, ev, 2, &zero_ts), EBADF);
    CHECK_ERRNO(kevent(p[1], &ch, 1, NULL, 0, &zero_ts), EBADF);
    int devnull = (int)CHECK_SYS(open("/dev/null", O_RDWR | O_CLOEXEC));
    CHECK_ERRNO(kevent(devnull, &ch, 1, ev, 2, &zero_ts), EBADF);
    /* An epoll instance that is not a kqueue. */
    int ep = (int)CHECK_SYS(epoll_create1(EPOLL_CLOEXEC));
    CHECK_ERRNO(kevent(ep, &ch, 1, ev, 2, &zero_ts), EBADF);
    CHECK_ERRNO(kevent(ep, NULL, 0, ev, 2, &zero_ts), EBADF);
    /* Numbers that are not open, and a kqueue already closed. */
    CHECK_ERRNO(kevent(-1, NULL, 0, ev, 2, &zero_ts), EBADF);
    CHECK_ERRNO(kevent(INT_MAX, NULL, 0, ev, 2, &zero_ts), EBADF);
    int kq = kq_new();
    CHECK_SYS(close(kq));
    CHECK_ERRNO(kevent(kq, &ch, 1, ev, 2, &zero_ts), EBADF);
    CHECK_ERRNO(kevent(kq, NULL, 0, NULL, 0, NULL), EBADF);
    close(p[0]);
    close(p[1]);
    close(devnull);
    close(ep);
}

/* ---- rule 2: order, filter 0 --------------------------------------------------------- */

TEST(test_2_2_change_with_filter_zero_skipped) {
    int kq = kq_new();
    struct kevent ch[3], ev[4];
    EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    /* Garbage with filter 0: not an error, not a receipt, nothing registered. */
    EV_SET(&ch[1], 99, 0, EV_ADD | EV_RECEIPT | EV_ENABLE | EV_DISABLE, 0xffffffff, -1, U(7));
    EV_SET(&ch[2], 2, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, ch, 3, ev, 4, &zero_ts), 0);
    CHECK(user_knote_exists(kq, 1));
    CHECK(user_knote_exists(kq, 2));
    /* Also without an eventlist. */
    EV_SET(&ch[0], 3, EVFILT_USER, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[1], 3, 0, EV_DELETE, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, ch, 2, NULL, 0, NULL), 0);
    CHECK(user_knote_exists(kq, 3));
    close(kq);
}

TEST(test_2_2_changes_applied_in_order_before_events_collected) {
    int kq = kq_new();
    struct kevent ch[4], ev[8];
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    /* Deleting the triggered knote and creating/triggering another in the same call: only
     * the new one is returned. */
    EV_SET(&ch[0], 1, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    EV_SET(&ch[1], 2, EVFILT_USER, EV_ADD, 0, 0, U(2));
    EV_SET(&ch[2], 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(2));
    int n = (int)CHECK_SYS(kevent(kq, ch, 3, ev, 8, &zero_ts));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev[0].ident, 2);
    KQ_SET(kq, 2, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    /* Adding a ready pipe and disabling it in the same call: nothing returned. */
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[1], p[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, ch, 2, ev, 8, &zero_ts), 0);
    /* Enabling and then deleting: nothing. */
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
    EV_SET(&ch[1], p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, ch, 2, ev, 8, &zero_ts), 0);
    /* Deleting then re-adding: the re-added knote's state counts. */
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD, 0, 0, U(1));
    EV_SET(&ch[1], p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    EV_SET(&ch[2], p[0], EVFILT_READ, EV_ADD, 0, 0, U(3));
    n = (int)CHECK_SYS(kevent(kq, ch, 3, ev, 8, &zero_ts));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev[0].udata, 3);
    close(kq);
    close(p[0]);
    close(p[1]);
}

/* ---- rules 3-5: errors and receipts -------------------------------------------------- */

TEST(test_2_3_failed_change_with_room_writes_ev_error_entry) {
    int kq = kq_new();
    struct kevent ch[4], ev[8];
    memset(ev, 0xAB, sizeof ev);
    EV_SET(&ch[0], 5, EVFILT_USER, EV_DELETE, 0x123, 77, U(0xabc));
    ch[0].ext[0] = 1;
    ch[0].ext[1] = 2;
    ch[0].ext[2] = 3;
    ch[0].ext[3] = 4;
    EV_SET(&ch[1], 6, EVFILT_USER, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[2], 7, EVFILT_USER, EV_ADD | EV_ENABLE | EV_DISABLE, 0x5, 9, U(0xdef));
    int bad = (int)CHECK_SYS(dup(0));
    close(bad);
    EV_SET(&ch[3], bad, EVFILT_READ, EV_ADD, NOTE_LOWAT, 3, U(0x1));
    int n = (int)CHECK_SYS(kevent(kq, ch, 4, ev, 8, &zero_ts));
    CHECK_EQ_INT(n, 3);
    /* Entry 0: ENOENT, other fields as given. */
    CHECK_EQ_INT(ev[0].ident, 5);
    CHECK_EQ_INT(ev[0].filter, EVFILT_USER);
    CHECK_EQ_HEX(ev[0].flags, EV_ERROR);
    CHECK_EQ_INT(ev[0].data, ENOENT);
    CHECK_EQ_HEX(ev[0].fflags, 0x123);
    CHECK_EQ_INT(ev[0].udata, 0xabc);
    CHECK_EQ_INT(ev[0].ext[0], 1);
    CHECK_EQ_INT(ev[0].ext[1], 2);
    CHECK_EQ_INT(ev[0].ext[2], 3);
    CHECK_EQ_INT(ev[0].ext[3], 4);
    /* Entry 1: EINVAL (processing went on past the first error). */
    CHECK_EQ_INT(ev[1].ident, 7);
    CHECK_EQ_INT(ev[1].filter, EVFILT_USER);
    CHECK_EQ_HEX(ev[1].flags, EV_ERROR);
    CHECK_EQ_INT(ev[1].data, EINVAL);
    CHECK_EQ_HEX(ev[1].fflags, 0x5);
    CHECK_EQ_INT(ev[1].udata, 0xdef);
    /* Entry 2: EBADF. */
    CHECK_EQ_INT(ev[2].ident, bad);
    CHECK_EQ_INT(ev[2].filter, EVFILT_READ);
    CHECK_EQ_HEX(ev[2].flags, EV_ERROR);
    CHECK_EQ_INT(ev[2].data, EBADF);
    CHECK_EQ_HEX(ev[2].fflags, NOTE_LOWAT);
    CHECK_EQ_INT(ev[2].udata, 0x1);
    /* The good change in between was applied; the EINVAL one was not. */
    CHECK(user_knote_exists(kq, 6));
    CHECK(!user_knote_exists(kq, 7));
    close(kq);
}

TEST(test_2_3_failed_change_without_room_returns_minus1_errno) {
    int kq = kq_new();
    struct kevent ch[3];
    EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[1], 2, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    EV_SET(&ch[2], 3, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_ERRNO(kevent(kq, ch, 3, NULL, 0, &zero_ts), ENOENT);
    CHECK(user_knote_exists(kq, 1));  /* earlier change stays applied */
    CHECK(!user_knote_exists(kq, 3)); /* later change not processed */
    /* Same with a NULL timeout: the call still returns at once. */
    EV_SET(&ch[0], 4, EVFILT_USER, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[1], 5, EVFILT_USER, EV_ADD | EV_KEEPUDATA, 0, 0, NULL);
    EV_SET(&ch[2], 6, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_ERRNO(kevent(kq, ch, 3, NULL, 0, NULL), EINVAL);
    CHECK(user_knote_exists(kq, 4));
    CHECK(!user_knote_exists(kq, 5));
    CHECK(!user_knote_exists(kq, 6));
    close(kq);
}

TEST(test_2_3_failed_change_after_room_runs_out_returns_minus1_errno) {
    int kq = kq_new();
    struct kevent ch[4], ev[1];
    memset(ev, 0, sizeof ev);
    EV_SET(&ch[0], 10, EVFILT_USER, EV_DELETE, 0, 0, U(10)); /* ENOENT, fills the room */
    EV_SET(&ch[1], 11, EVFILT_USER, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[2], 12, EVFILT_USER, EV_ADD | EV_ENABLE | EV_DISABLE, 0, 0, NULL); /* EINVAL, no room */
    EV_SET(&ch[3], 13, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_ERRNO(kevent(kq, ch, 4, ev, 1, &zero_ts), EINVAL);
    CHECK_EQ_INT(ev[0].ident, 10);
    CHECK_EQ_HEX(ev[0].flags, EV_ERROR);
    CHECK_EQ_INT(ev[0].data, ENOENT);
    CHECK(user_knote_exists(kq, 11));
    CHECK(!user_knote_exists(kq, 12));
    CHECK(!user_knote_exists(kq, 13));
    close(kq);
}

TEST(test_2_4_ev_receipt_entry_for_every_change_data_zero_on_success) {
    int kq = kq_new();
    struct kevent ch[3], ev[4];
    EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, U(0xA));
    EV_SET(&ch[1], 2, EVFILT_USER, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, U(0xB));
    EV_SET(&ch[2], 3, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, U(0xC));
    int n = (int)CHECK_SYS(kevent(kq, ch, 3, ev, 4, &zero_ts));
    CHECK_EQ_INT(n, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(ev[i].ident, i + 1);
        CHECK_EQ_INT(ev[i].filter, EVFILT_USER);
        CHECK_EQ_HEX(ev[i].flags, EV_ERROR);
        CHECK_EQ_INT(ev[i].udata, 0xA + i);
    }
    CHECK_EQ_INT(ev[0].data, 0);
    CHECK_EQ_INT(ev[1].data, 0);
    CHECK_EQ_INT(ev[2].data, ENOENT);
    CHECK(user_knote_exists(kq, 1));
    CHECK(user_knote_exists(kq, 2));
    /* A receipt on a descriptor knote, and on a delete. */
    int p[2];
    kq_pipe(p);
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD | EV_RECEIPT, 0, 0, NULL);
    EV_SET(&ch[1], p[0], EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
    n = (int)CHECK_SYS(kevent(kq, ch, 2, ev, 4, &zero_ts));
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ev[0].ident, p[0]);
    CHECK_EQ_HEX(ev[0].flags, EV_ERROR);
    CHECK_EQ_INT(ev[0].data, 0);
    CHECK_EQ_INT(ev[1].ident, p[0]);
    CHECK_EQ_HEX(ev[1].flags, EV_ERROR);
    CHECK_EQ_INT(ev[1].data, 0);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_2_4_ev_receipt_without_room_returns_without_error_and_stops) {
    int kq = kq_new();
    struct kevent ch[4], ev[1];
    memset(ev, 0, sizeof ev);
    EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, U(1));
    EV_SET(&ch[1], 2, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, U(2)); /* applied, no room */
    EV_SET(&ch[2], 3, EVFILT_USER, EV_ADD, 0, 0, U(3));               /* not processed */
    EV_SET(&ch[3], 4, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, U(4));
    errno = 0;
    int n = kevent(kq, ch, 4, ev, 1, &zero_ts);
    /* No error. (FreeBSD returns 0 here although one receipt was written; rule 5 would
     * count it: either is accepted, an error is not.) */
    CHECK_MSG(n == 0 || n == 1, "kevent returned %d errno %s, expected 0 or 1", n, kq_errname(errno));
    if (n == 1) {
        CHECK_EQ_INT(ev[0].ident, 1);
        CHECK_EQ_HEX(ev[0].flags, EV_ERROR);
        CHECK_EQ_INT(ev[0].data, 0);
    }
    CHECK(user_knote_exists(kq, 1));
    CHECK(user_knote_exists(kq, 2));
    CHECK(!user_knote_exists(kq, 3));
    CHECK(!user_knote_exists(kq, 4));
    /* No eventlist at all: the first receipt already finds no room. */
    EV_SET(&ch[0], 5, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
    EV_SET(&ch[1], 6, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, ch, 2, NULL, 0, &zero_ts), 0);
    CHECK(user_knote_exists(kq, 5));
    CHECK(!user_knote_exists(kq, 6));
    close(kq);
}

TEST(test_2_5_error_entries_written_no_events_collected) {
    int kq = kq_new();
    struct kevent ch[2], ev[8];
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, U(1));
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(1)); /* level: pending from now on */
    /* An error. */
    EV_SET(&ch[0], 9, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    int n = (int)CHECK_SYS(kevent(kq, ch, 1, ev, 8, &zero_ts));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev[0].ident, 9);
    CHECK_EQ_HEX(ev[0].flags, EV_ERROR);
    /* A receipt. */
    EV_SET(&ch[0], 2, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
    n = (int)CHECK_SYS(kevent(kq, ch, 1, ev, 8, &zero_ts));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ev[0].ident, 2);
    CHECK_EQ_HEX(ev[0].flags, EV_ERROR);
    CHECK_EQ_INT(ev[0].data, 0);
    /* Even with a timeout: returns at once with the entries only. */
    EV_SET(&ch[0], 3, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
    EV_SET(&ch[1], 9, EVFILT_USER, EV_ENABLE, 0, 0, NULL);
    struct timespec ts = {5, 0};
    int64_t t0 = kq_now_ns();
    n = (int)CHECK_SYS(kevent(kq, ch, 2, ev, 8, &ts));
    CHECK(kq_now_ns() - t0 < 1000000000LL);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ev[0].ident, 3);
    CHECK_EQ_INT(ev[1].ident, 9);
    CHECK_EQ_INT(ev[1].data, ENOENT);
    /* The pending event is still there for the next call. */
    struct kevent one;
    CHECK_ONE_EVENT(kq, &one);
    CHECK_EQ_INT(one.ident, 1);
    CHECK_EQ_HEX(one.flags & EV_ERROR, 0);
    close(kq);
}

TEST(test_2_changelist_and_eventlist_may_be_the_same_array) {
    int kq = kq_new();
    struct kevent a[3];
    /* One change, answered in place. */
    EV_SET(&a[0], 1, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, U(1));
    CHECK_EQ_INT(kevent(kq, a, 1, a, 1, &zero_ts), 1);
    CHECK_EQ_INT(a[0].ident, 1);
    CHECK_EQ_HEX(a[0].flags, EV_ERROR);
    CHECK_EQ_INT(a[0].data, 0);
    /* Three receipts in place. */
    for (int i = 0; i < 3; i++) EV_SET(&a[i], 10 + i, EVFILT_USER, (i == 1 ? EV_DELETE : EV_ADD) | EV_RECEIPT, 0, 0, U(i));
    CHECK_EQ_INT(kevent(kq, a, 3, a, 3, &zero_ts), 3);
    CHECK_EQ_INT(a[0].ident, 10);
    CHECK_EQ_INT(a[0].data, 0);
    CHECK_EQ_INT(a[1].ident, 11);
    CHECK_EQ_INT(a[1].data, ENOENT);
    CHECK_EQ_INT(a[2].ident, 12);
    CHECK_EQ_INT(a[2].data, 0);
    CHECK(user_knote_exists(kq, 10));
    CHECK(user_knote_exists(kq, 12));
    /* A change whose event comes back in the same array. */
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "xy", 2);
    EV_SET(&a[0], p[0], EVFILT_READ, EV_ADD, 0, 0, U(5));
    CHECK_EQ_INT(kevent(kq, a, 1, a, 1, &zero_ts), 1);
    CHECK_EQ_INT(a[0].ident, p[0]);
    CHECK_EQ_INT(a[0].filter, EVFILT_READ);
    CHECK_EQ_INT(a[0].data, 2);
    CHECK_EQ_INT(a[0].udata, 5);
    close(kq);
    close(p[0]);
    close(p[1]);
}

/* ---- rule 6: nevents == 0 ------------------------------------------------------------ */

static void nevents_zero_child(void *arg) {
    (void)arg;
    int kq = kq_new();
    struct kevent ch;
    CHECK_EQ_INT(kevent(kq, NULL, 0, NULL, 0, NULL), 0);
    EV_SET(&ch, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, &ch, 1, NULL, 0, NULL), 0);
    /* With an event pending: still 0, and the event stays pending. */
    EV_SET(&ch, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_EQ_INT(kevent(kq, &ch, 1, NULL, 0, NULL), 0);
    CHECK_EQ_INT(kevent(kq, NULL, 0, NULL, 0, NULL), 0);
    struct timespec ts = {5, 0};
    int64_t t0 = kq_now_ns();
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, NULL, 0, NULL, 0, &ts), 0);
    CHECK(kq_now_ns() - t0 < 1000000000LL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 1);
    close(kq);
}

TEST(test_2_6_nevents_zero_returns_at_once_even_with_null_timeout) {
    kq_run_child(nevents_zero_child, NULL, 3000);
}

/* ---- rule 7: timeouts ---------------------------------------------------------------- */

TEST(test_2_7_zero_timeout_polls) {
    int kq = kq_new();
    struct kevent ev[2];
    int64_t t0 = kq_now_ns();
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(kevent(kq, NULL, 0, ev, 2, &zero_ts), 0);
    CHECK(kq_now_ns() - t0 < 500000000LL);
    /* With knotes that are not ready. */
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    t0 = kq_now_ns();
    CHECK_EQ_INT(kevent(kq, NULL, 0, ev, 2, &zero_ts), 0);
    CHECK(kq_now_ns() - t0 < 500000000LL);
    close(kq);
    close(p[0]);
    close(p[1]);
}

static void check_timeout_lower_bound(int kq, long sec, long nsec) {
    struct kevent ev[2];
    struct timespec ts = {sec, nsec};
    int64_t want = (int64_t)sec * 1000000000LL + nsec;
    int64_t t0 = kq_now_ns();
    int n = kevent(kq, NULL, 0, ev, 2, &ts);
    int64_t took = kq_now_ns() - t0;
    CHECK_MSG(n == 0, "kevent with timeout {%ld, %ld} returned %d (errno %s)", sec, nsec, n, kq_errname(errno));
    CHECK_MSG(took >= want, "timeout {%ld, %ld}: returned 0 after %lld ns, before the timeout",
              sec, nsec, (long long)took);
    CHECK_MSG(took < want + 2000000000LL, "timeout {%ld, %ld}: took %lld ns", sec, nsec, (long long)took);
}

TEST(test_2_7_timeout_waits_at_least_requested_time) {
    int kq = kq_new();
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    check_timeout_lower_bound(kq, 0, 50000000L);
    check_timeout_lower_bound(kq, 0, 120000000L);
    check_timeout_lower_bound(kq, 1, 0);
    close(kq);
}

TEST(test_2_7_timeout_nanosecond_precision_never_early) {
    /* Sub-millisecond parts must not be rounded down. */
    int kq = kq_new();
    for (int i = 0; i < 10; i++) check_timeout_lower_bound(kq, 0, 1500000L);
    for (int i = 0; i < 10; i++) check_timeout_lower_bound(kq, 0, 999999L);
    for (int i = 0; i < 10; i++) check_timeout_lower_bound(kq, 0, 2000001L);
    check_timeout_lower_bound(kq, 0, 1);
    close(kq);
}

struct delayed_trigger {
    int kq;
    long delay_ms;
};

static void *delayed_trigger_thread(void *arg) {
    struct delayed_trigger *d = arg;
    struct timespec ts = kq_ts_ms(d->delay_ms);
    nanosleep(&ts, NULL);
    struct kevent ch;
    EV_SET(&ch, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    (void)kevent(d->kq, &ch, 1, NULL, 0, NULL);
    return NULL;
}

TEST(test_2_7_huge_timeout_is_valid_and_waits) {
    static const struct timespec huge[] = {{LONG_MAX, 999999999L}, {LONG_MAX, 0}, {INT_MAX, 0}, {(time_t)1 << 40, 5}};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        int kq = kq_new();
        KQ_SET(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
        struct delayed_trigger d = {kq, 30};
        pthread_t t;
        CHECK_EQ_INT(pthread_create(&t, NULL, delayed_trigger_thread, &d), 0);
        struct kevent ev;
        int64_t t0 = kq_now_ns();
        errno = 0;
        int n = kevent(kq, NULL, 0, &ev, 1, &huge[i]);
        int e = errno;
        int64_t took = kq_now_ns() - t0;
        pthread_join(t, NULL);
        CHECK_MSG(n == 1, "timeout {%lld, %ld}: kevent returned %d errno %s after %lld ms", (long long)huge[i].tv_sec,
                  huge[i].tv_nsec, n, kq_errname(e), (long long)(took / 1000000));
        CHECK_EQ_INT(ev.ident, 1);
        close(kq);
    }
}

struct delayed_write {
    int fd;
    long delay_ms;
    size_t len;
};

static void *delayed_write_thread(void *arg) {
    struct delayed_write *d = arg;
    struct timespec ts = kq_ts_ms(d->delay_ms);
    nanosleep(&ts, NULL);
    char buf[64];
    memset(buf, 'w', sizeof buf);
    ssize_t w = write(d->fd, buf, d->len);
    (void)w;
    return NULL;
}

TEST(test_2_7_filtered_wake_does_not_end_wait_lowat) {
    /* NOTE_LOWAT 100: 10 bytes arriving mid-wait make the descriptor readable for the OS but
     * not for the filter. The wait must go on until the timeout. */
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, NOTE_LOWAT, 100, NULL);
    pthread_t t;
    struct delayed_write d = {sv[1], 30, 10};
    CHECK_EQ_INT(pthread_create(&t, NULL, delayed_write_thread, &d), 0);
    check_timeout_lower_bound(kq, 0, 250000000L);
    pthread_join(t, NULL);
    /* Data already below the mark from the start: same. */
    check_timeout_lower_bound(kq, 0, 100000000L);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

TEST(test_2_7_disabled_knote_wake_does_not_end_wait) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, NULL);
    pthread_t t;
    struct delayed_write d = {p[1], 30, 10};
    CHECK_EQ_INT(pthread_create(&t, NULL, delayed_write_thread, &d), 0);
    check_timeout_lower_bound(kq, 0, 250000000L);
    pthread_join(t, NULL);
    check_timeout_lower_bound(kq, 0, 100000000L);
    /* A knote disabled after it became ready. */
    int p2[2];
    kq_pipe(p2);
    KQ_SET(kq, p2[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_all(p2[1], "x", 1);
    KQ_SET(kq, p2[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL);
    check_timeout_lower_bound(kq, 0, 100000000L);
    close(kq);
    close(p[0]);
    close(p[1]);
    close(p2[0]);
    close(p2[1]);
}

/* ---- rule 8: EINTR ------------------------------------------------------------------- */

static volatile sig_atomic_t signal_count;

static void count_signal(int sig) {
    (void)sig;
    signal_count++;
}

struct eintr_case {
    int restart;    /* install the handler with SA_RESTART */
    int use_thread; /* pthread_kill from another thread instead of setitimer */
    int with_timeout;
};

static pthread_t main_thread;

static void *kill_main_thread(void *arg) {
    (void)arg;
    struct timespec ts = kq_ts_ms(50);
    nanosleep(&ts, NULL);
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

static void eintr_child(void *arg) {
    struct eintr_case *c = arg;
    int sig = c->use_thread ? SIGUSR1 : SIGALRM;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_signal;
    sa.sa_flags = c->restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    CHECK_SYS(sigaction(sig, &sa, NULL));

    int kq = kq_new();
    struct kevent ch[2], ev[4];
    EV_SET(&ch[0], 7, EVFILT_USER, EV_ADD, 0, 0, NULL);
    EV_SET(&ch[1], 8, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);

    pthread_t t;
    if (c->use_thread) {
        main_thread = pthread_self();
        CHECK_EQ_INT(pthread_create(&t, NULL, kill_main_thread, NULL), 0);
    } else {
        struct itimerval it;
        memset(&it, 0, sizeof it);
        it.it_value.tv_usec = 50000;
        CHECK_SYS(setitimer(ITIMER_REAL, &it, NULL));
    }
    struct timespec ts = {30, 0};
    int64_t t0 = kq_now_ns();
    errno = 0;
    int n = kevent(kq, ch, 2, ev, 4, c->with_timeout ? &ts : NULL);
    int e = errno;
    int64_t took = kq_now_ns() - t0;
    if (c->use_thread) pthread_join(t, NULL);
    CHECK_MSG(n == -1 && e == EINTR, "kevent returned %d errno %d %s, expected -1/EINTR", n, e, kq_errname(e));
    CHECK_EQ_INT(signal_count, 1);
    CHECK(took < 5000000000LL);
    /* The changes of the interrupted call stay applied. */
    CHECK(kq_change_errno(kq, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
    CHECK(kq_change_errno(kq, 8, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
    n = KQ_WAIT(kq, ev, 4, 0);
    CHECK_EQ_INT(n, 2);
    close(kq);
}

TEST(test_2_8_signal_interrupts_null_timeout_wait_eintr_changes_stay_applied) {
    struct eintr_case c = {0, 0, 0};
    kq_run_child(eintr_child, &c, 5000);
}

TEST(test_2_8_signal_interrupts_timed_wait_eintr) {
    struct eintr_case c = {0, 0, 1};
    kq_run_child(eintr_child, &c, 5000);
}

TEST(test_2_8_signal_from_thread_pthread_kill_interrupts_wait_eintr) {
    struct eintr_case c = {0, 1, 0};
    kq_run_child(eintr_child, &c, 5000);
}

TEST(test_2_8_wait_not_restarted_even_with_sa_restart) {
    struct eintr_case c = {1, 0, 0};
    kq_run_child(eintr_child, &c, 5000);
}

/* ---- rule 9: return value ------------------------------------------------------------ */

TEST(test_2_9_returns_number_of_events_written_at_most_nevents) {
    int kq = kq_new();
    struct kevent ev[8];
    for (int i = 1; i <= 5; i++) {
        KQ_SET(kq, i, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, NULL);
        KQ_SET(kq, i, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    }
    memset(ev, 0, sizeof ev);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 3, 0), 3);
    CHECK_EQ_INT(ev[3].ident, 0); /* nothing written past nevents */
    CHECK_EQ_INT(ev[3].filter, 0);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 2);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 0);
    /* 0 on timeout. */
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 10), 0);
    close(kq);
}

/* ---- rule 10: order ------------------------------------------------------------------ */

TEST(test_2_10_first_activated_first_returned) {
    int kq = kq_new();
    struct kevent ev[8], ch[3];
    static const int order[] = {5, 3, 9, 1};
    for (int i = 0; i < 4; i++) KQ_SET(kq, order[i], EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    for (int i = 0; i < 4; i++) KQ_SET(kq, order[i], EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 4);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(ev[i].ident, order[i]);
    /* Within one changelist too. */
    EV_SET(&ch[0], 9, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    EV_SET(&ch[1], 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    EV_SET(&ch[2], 5, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_EQ_INT(kevent(kq, ch, 3, NULL, 0, NULL), 0);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 3);
    CHECK_EQ_INT(ev[0].ident, 9);
    CHECK_EQ_INT(ev[1].ident, 1);
    CHECK_EQ_INT(ev[2].ident, 5);
    close(kq);
}

TEST(test_2_10_first_activated_first_returned_across_descriptors_and_user_events) {
    int kq = kq_new();
    struct kevent ev[8];
    int a[2], b[2];
    kq_pipe(a);
    kq_pipe(b);
    KQ_SET(kq, b[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(kq, a[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    /* Two pipes: A became readable before B. */
    kq_write_all(a[1], "a", 1);
    kq_write_all(b[1], "b", 1);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 2);
    CHECK_EQ_INT(ev[0].ident, a[0]);
    CHECK_EQ_INT(ev[1].ident, b[0]);
    /* user 2, then pipe B, then user 1, then pipe A. */
    KQ_SET(kq, 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    kq_write_all(b[1], "b", 1);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    kq_write_all(a[1], "a", 1);
    CHECK_EQ_INT(KQ_WAIT(kq, ev, 8, 0), 4);
    if (!(ev[0].ident == 2 && ev[1].ident == (uintptr_t)b[0] && ev[2].ident == 1 && ev[3].ident == (uintptr_t)a[0]))
        FAILF("order user2, pipeB(%d), user1, pipeA(%d) expected; got %s %s %s %s", b[0], a[0],
              kq_ev_str(&ev[0]), kq_ev_str(&ev[1]), kq_ev_str(&ev[2]), kq_ev_str(&ev[3]));
    CHECK_MSG(ev[0].ident == 2 && ev[0].filter == EVFILT_USER, "first: %s", kq_ev_str(&ev[0]));
    CHECK_MSG(ev[1].ident == (uintptr_t)b[0] && ev[1].filter == EVFILT_READ, "second: %s", kq_ev_str(&ev[1]));
    CHECK_MSG(ev[2].ident == 1 && ev[2].filter == EVFILT_USER, "third: %s", kq_ev_str(&ev[2]));
    CHECK_MSG(ev[3].ident == (uintptr_t)a[0] && ev[3].filter == EVFILT_READ, "fourth: %s", kq_ev_str(&ev[3]));
    close(kq);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

TEST(test_2_10_returned_level_event_goes_back_to_tail) {
    int kq = kq_new();
    struct kevent ev[4];
    for (int i = 1; i <= 3; i++) KQ_SET(kq, i, EVFILT_USER, EV_ADD, 0, 0, NULL);
    for (int i = 1; i <= 3; i++) KQ_SET(kq, i, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    static const int want1[] = {1, 2, 3, 1, 2, 3, 1};
    for (int i = 0; i < 7; i++) {
        CHECK_EQ_INT(KQ_WAIT(kq, ev, 1, 0), 1);
        CHECK_MSG((int)ev[0].ident == want1[i], "call %d returned ident %zu, expected %d", i,
                  (size_t)ev[0].ident, want1[i]);
    }
    /* Two at a time: [2,3] [1,2] [3,1]. */
    static const int want2[] = {2, 3, 1, 2, 3, 1};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(KQ_WAIT(kq, ev, 2, 0), 2);
        CHECK_EQ_INT(ev[0].ident, want2[2 * i]);
        CHECK_EQ_INT(ev[1].ident, want2[2 * i + 1]);
    }
    close(kq);
}

TEST(test_2_10_returned_level_event_goes_back_to_tail_descriptors) {
    int kq = kq_new();
    struct kevent ev[4];
    int a[2], b[2], c[2];
    kq_pipe(a);
    kq_pipe(b);
    kq_pipe(c);
    KQ_SET(kq, a[0], EVFILT_READ, EV_ADD, 0, 0, U('a'));
    KQ_SET(kq, b[0], EVFILT_READ, EV_ADD, 0, 0, U('b'));
    KQ_SET(kq, c[0], EVFILT_READ, EV_ADD, 0, 0, U('c'));
    kq_write_all(b[1], "b", 1);
    kq_write_all(c[1], "c", 1);
    kq_write_all(a[1], "a", 1);
    static const char want[] = "bcabcab";
    for (int i = 0; i < 7; i++) {
        CHECK_EQ_INT(KQ_WAIT(kq, ev, 1, 0), 1);
        CHECK_MSG((char)(uintptr_t)ev[0].udata == want[i], "call %d returned pipe %c, expected %c", i,
                  (char)(uintptr_t)ev[0].udata, want[i]);
    }
    close(kq);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
        close(c[i]);
    }
}

TEST(test_2_10_one_call_never_returns_same_knote_twice) {
    int kq = kq_new();
    struct kevent ev[16];
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "abc", 3);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    for (int round = 0; round < 3; round++) {
        int n = KQ_WAIT(kq, ev, 16, 0);
        CHECK_EQ_INT(n, 3);
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                CHECK(!(ev[i].ident == ev[j].ident && ev[i].filter == ev[j].filter));
    }
    close(kq);
    close(p[0]);
    close(p[1]);
}

/* ---- SPEC.md 1: filters -------------------------------------------------------------- */

TEST(test_1_unknown_filter_einval) {
    int kq = kq_new();
    static const short bad[] = {-14, -20, -100, SHRT_MIN, 1, 5, 13, SHRT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int e = kq_change_errno(kq, 1, bad[i], EV_ADD, 0, 0, NULL);
        CHECK_MSG(e == EINVAL, "filter %d: expected EINVAL, got %d %s", bad[i], e, kq_errname(e));
        e = kq_change_errno(kq, 1, bad[i], EV_DELETE, 0, 0, NULL);
        CHECK_MSG(e == EINVAL, "filter %d (EV_DELETE): expected EINVAL, got %d %s", bad[i], e, kq_errname(e));
    }
    /* Through the eventlist. */
    struct kevent ch, ev;
    EV_SET(&ch, 1, 5, EV_ADD, 0, 0, U(1));
    CHECK_EQ_INT(kevent(kq, &ch, 1, &ev, 1, &zero_ts), 1);
    CHECK_EQ_HEX(ev.flags, EV_ERROR);
    CHECK_EQ_INT(ev.data, EINVAL);
    CHECK_EQ_INT(ev.filter, 5);
    close(kq);
}

RUN_TESTS()
