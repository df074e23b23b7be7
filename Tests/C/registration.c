/*
 * SPEC.md 2, "Registration rules": uniqueness, EV_ADD on new and existing knotes,
 * modification without EV_ADD, ENOENT/EINVAL/EBADF cases, EV_DISABLE/EV_ENABLE re-check,
 * EV_FORCEONESHOT and the stripping of the system flags.
 */
#include "kqtest.h"

#include <sys/resource.h>

#define U(x) ((void *)(uintptr_t)(x))

/* A descriptor number that is not open. */
static int closed_fd_number(void) {
    int fd = (int)CHECK_SYS(dup(0));
    CHECK_SYS(close(fd));
    CHECK(!kq_fd_is_open(fd));
    return fd;
}

/* ---- uniqueness ---------------------------------------------------------------------- */

TEST(test_registration_knote_unique_per_ident_filter_user) {
    int kq = kq_new();
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, U(1));
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, U(2));
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(2));
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 1);
    CHECK_EQ_INT(ev.filter, EVFILT_USER);
    /* One knote: one EV_DELETE removes it, a second finds nothing. */
    KQ_SET(kq, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    CHECK_ERR(kq_change_errno(kq, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_NO_EVENT(kq);
    close(kq);
}

TEST(test_registration_knote_unique_per_ident_filter_descriptor) {
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, U(1));
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, 0, 0, U(2));
    kq_write_all(sv[1], "abc", 3);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, sv[0]);
    CHECK_EQ_INT(ev.filter, EVFILT_READ);
    CHECK_EQ_INT(ev.data, 3);
    /* The same descriptor with another filter is a different knote. */
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, U(3));
    struct kevent evs[4];
    int n = KQ_WAIT(kq, evs, 4, 0);
    CHECK_EQ_INT(n, 2);
    CHECK(evs[0].filter != evs[1].filter);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    CHECK_ERR(kq_change_errno(kq, sv[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.filter, EVFILT_WRITE);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

TEST(test_registration_knote_unique_per_kqueue_not_shared_between_kqueues) {
    int kq1 = kq_new(), kq2 = kq_new();
    KQ_SET(kq1, 7, EVFILT_USER, EV_ADD, 0, 0, U(1));
    KQ_SET(kq2, 7, EVFILT_USER, EV_ADD, 0, 0, U(2));
    KQ_SET(kq1, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(1));
    struct kevent ev;
    CHECK_ONE_EVENT(kq1, &ev);
    CHECK_EQ_INT(ev.udata, 1);
    CHECK_NO_EVENT(kq2);
    /* Deleting in one kqueue leaves the other's knote alone. */
    KQ_SET(kq1, 7, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    KQ_SET(kq2, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(2));
    CHECK_ONE_EVENT(kq2, &ev);
    CHECK_EQ_INT(ev.udata, 2);
    /* A descriptor watched by two kqueues is reported by both. */
    int p[2];
    kq_pipe(p);
    KQ_SET(kq1, p[0], EVFILT_READ, EV_ADD, 0, 0, U(10));
    KQ_SET(kq2, p[0], EVFILT_READ, EV_ADD, 0, 0, U(20));
    kq_write_all(p[1], "z", 1);
    CHECK_ONE_EVENT(kq1, &ev);
    CHECK_EQ_INT(ev.udata, 10);
    struct kevent evs[4];
    int n = KQ_WAIT(kq2, evs, 4, 0);
    CHECK_EQ_INT(n, 2); /* the user knote (level) and the pipe */
    close(kq1);
    close(kq2);
    close(p[0]);
    close(p[1]);
}

/* ---- EV_ADD on a new knote ----------------------------------------------------------- */

TEST(test_registration_ev_add_new_source_already_ready_queued_at_once) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "12345", 5);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(9));
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev); /* a poll, no waiting: queued at attach */
    CHECK_EQ_INT(ev.ident, p[0]);
    CHECK_EQ_INT(ev.data, 5);
    CHECK_EQ_INT(ev.udata, 9);
    /* Same in a single call: the change, then the poll. */
    int kq2 = kq_new();
    struct kevent ch, out[2];
    EV_SET(&ch, p[0], EVFILT_READ, EV_ADD, 0, 0, U(10));
    struct timespec zero = {0, 0};
    int n = (int)CHECK_SYS(kevent(kq2, &ch, 1, out, 2, &zero));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(out[0].data, 5);
    CHECK_EQ_INT(out[0].udata, 10);
    /* A socket is writable at once. */
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    int kq3 = kq_new();
    KQ_SET(kq3, sv[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    CHECK_ONE_EVENT(kq3, &ev);
    CHECK_EQ_INT(ev.filter, EVFILT_WRITE);
    close(kq);
    close(kq2);
    close(kq3);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- EV_ADD on an existing knote ----------------------------------------------------- */

TEST(test_registration_ev_add_existing_modifies_udata) {
    int kq = kq_new();
    KQ_SET(kq, 3, EVFILT_USER, EV_ADD, 0, 0, U(0xA));
    KQ_SET(kq, 3, EVFILT_USER, EV_ADD, 0, 0, U(0xB));
    KQ_SET(kq, 3, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, U(0xC));
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.udata, 0xC);

    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(0x100));
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(0x200));
    KQ_SET(kq, 3, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    kq_write_all(p[1], "x", 1);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, p[0]);
    CHECK_EQ_INT(ev.udata, 0x200);
    /* Modifying while an event is queued: the returned event carries the new udata. */
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(0x300));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.udata, 0x300);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_ev_add_existing_updates_fflags_data_and_rechecks) {
    /* NOTE_LOWAT 10 with 5 bytes buffered: not ready. Re-adding with NOTE_LOWAT 3 updates
     * the stored data and re-checks the filter: ready at once. */
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, NOTE_LOWAT, 10, NULL);
    kq_write_all(sv[1], "12345", 5);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, NOTE_LOWAT, 3, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 5);
    /* And back up to 8: not ready any more. */
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, NOTE_LOWAT, 8, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    kq_write_all(sv[1], "678", 3);
    CHECK_ONE_EVENT_WITHIN(kq, &ev, 1000);
    CHECK_EQ_INT(ev.data, 8);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

TEST(test_registration_ev_add_existing_applies_enable_disable) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_ENABLE, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 1);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_modification_keeps_oneshot_clear_dispatch_bits) {
    int kq = kq_new();
    struct kevent ev;
    /* EV_CLEAR stays although the modification does not repeat it. */
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.flags & (EV_CLEAR | EV_ONESHOT | EV_DISPATCH), EV_CLEAR);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 1, EVFILT_USER, EV_DELETE, 0, 0, NULL);

    /* EV_ONESHOT stays: returned once, then gone. */
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 2);
    CHECK_EQ_HEX(ev.flags & (EV_CLEAR | EV_ONESHOT | EV_DISPATCH), EV_ONESHOT);
    CHECK_NO_EVENT(kq);
    CHECK_ERR(kq_change_errno(kq, 2, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);

    /* EV_DISPATCH stays: returned once, then disabled until EV_ENABLE. */
    KQ_SET(kq, 3, EVFILT_USER, EV_ADD | EV_DISPATCH, 0, 0, NULL);
    KQ_SET(kq, 3, EVFILT_USER, EV_ADD | EV_ENABLE, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.flags & (EV_CLEAR | EV_ONESHOT | EV_DISPATCH), EV_DISPATCH);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 3, EVFILT_USER, EV_ENABLE, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 3);
    KQ_SET(kq, 3, EVFILT_USER, EV_DELETE, 0, 0, NULL);

    /* A modification does not add those bits either. */
    KQ_SET(kq, 4, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 4, EVFILT_USER, EV_ADD | EV_ONESHOT | EV_CLEAR | EV_DISPATCH, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.flags & (EV_CLEAR | EV_ONESHOT | EV_DISPATCH), 0);
    CHECK_ONE_EVENT(kq, &ev); /* still level-triggered, still registered */
    CHECK_EQ_INT(ev.ident, 4);
    KQ_SET(kq, 4, EVFILT_USER, EV_DELETE, 0, 0, NULL);

    /* Same for a descriptor knote. */
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_DISPATCH, 0, 0, NULL);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kq_write_all(p[1], "ab", 2);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK(ev.flags & EV_DISPATCH);
    CHECK_NO_EVENT(kq);
    close(kq);
    close(p[0]);
    close(p[1]);
}

/* ---- changes without EV_ADD ---------------------------------------------------------- */

TEST(test_registration_change_without_ev_add_on_existing_is_modification) {
    int kq = kq_new();
    struct kevent ev;
    /* NOTE_TRIGGER alone. */
    KQ_SET(kq, 5, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(kq, 5, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 5);
    /* EV_DISABLE alone, EV_ENABLE alone. */
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, p[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, p[0]);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_change_without_ev_add_replaces_udata) {
    /* A modification replaces udata unless EV_KEEPUDATA, whether or not EV_ADD is given. */
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 6, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, U(1));
    KQ_SET(kq, 6, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(2));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.udata, 2);
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, U(3));
    KQ_SET(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, U(4));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.udata, 4);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_change_without_ev_add_updates_fflags_data) {
    /* EV_ENABLE alone carries fflags 0 / data 0: the stored NOTE_LOWAT is replaced, so the
     * re-check finds the 5 buffered bytes enough. */
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ADD, NOTE_LOWAT, 10, NULL);
    kq_write_all(sv[1], "12345", 5);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    KQ_SET(kq, sv[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 5);
    close(kq);
    close(sv[0]);
    close(sv[1]);
}

TEST(test_registration_change_without_ev_add_on_missing_knote_enoent) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    CHECK_ERR(kq_change_errno(kq, 11, EVFILT_USER, EV_ENABLE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, 11, EVFILT_USER, EV_DISABLE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, 11, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, 11, EVFILT_USER, 0, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, 0, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, p[1], EVFILT_WRITE, EV_DISABLE, 0, 0, NULL), ENOENT);
    /* Nothing was created by those. */
    kq_write_all(p[1], "x", 1);
    CHECK_NO_EVENT(kq);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_ev_delete_missing_knote_enoent) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    CHECK_ERR(kq_change_errno(kq, 12, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    /* Another filter on the same ident does not count. */
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL), ENOENT);
    KQ_SET(kq, 12, EVFILT_USER, EV_ADD, 0, 0, NULL);
    CHECK_ERR(kq_change_errno(kq, 13, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    /* A deleted knote is missing. */
    KQ_SET(kq, 12, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    CHECK_ERR(kq_change_errno(kq, 12, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    KQ_SET(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_ev_delete_after_oneshot_fired_enoent) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 14, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    KQ_SET(kq, 14, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 14);
    CHECK_ERR(kq_change_errno(kq, 14, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    CHECK_ERR(kq_change_errno(kq, 14, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL), ENOENT);

    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, p[0]);
    CHECK_NO_EVENT(kq);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    close(kq);
    close(p[0]);
    close(p[1]);
}

/* ---- EINVAL pairs -------------------------------------------------------------------- */

TEST(test_registration_ev_enable_with_ev_disable_einval) {
    int kq = kq_new();
    /* On a new knote: EINVAL, nothing created. */
    CHECK_ERR(kq_change_errno(kq, 15, EVFILT_USER, EV_ADD | EV_ENABLE | EV_DISABLE, 0, 0, NULL), EINVAL);
    CHECK_ERR(kq_change_errno(kq, 15, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_ADD | EV_ENABLE | EV_DISABLE, 0, 0, NULL), EINVAL);
    CHECK_NO_EVENT(kq);
    /* On an existing knote: EINVAL, the knote unchanged (still enabled). */
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(1));
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_ENABLE | EV_DISABLE, 0, 0, U(2)), EINVAL);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_ADD | EV_ENABLE | EV_DISABLE, 0, 0, U(2)), EINVAL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, p[0]);
    CHECK_EQ_INT(ev.udata, 1);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_ev_add_keepudata_on_new_knote_einval) {
    int kq = kq_new();
    CHECK_ERR(kq_change_errno(kq, 16, EVFILT_USER, EV_ADD | EV_KEEPUDATA, 0, 0, U(1)), EINVAL);
    CHECK_ERR(kq_change_errno(kq, 16, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_ADD | EV_KEEPUDATA, 0, 0, U(1)), EINVAL);
    CHECK_NO_EVENT(kq);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_keepudata_on_existing_keeps_udata) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 17, EVFILT_USER, EV_ADD, 0, 0, U(0xA1));
    KQ_SET(kq, 17, EVFILT_USER, EV_ADD | EV_KEEPUDATA, 0, 0, U(0xB2));
    KQ_SET(kq, 17, EVFILT_USER, EV_KEEPUDATA, NOTE_TRIGGER, 0, U(0xC3));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.udata, 0xA1);
    KQ_SET(kq, 17, EVFILT_USER, EV_DELETE, 0, 0, NULL);

    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(0xD4));
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_KEEPUDATA, 0, 0, U(0xE5));
    KQ_SET(kq, p[0], EVFILT_READ, EV_DISABLE | EV_KEEPUDATA, 0, 0, U(0xF6));
    KQ_SET(kq, p[0], EVFILT_READ, EV_ENABLE | EV_KEEPUDATA, 0, 0, U(0xF7));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.udata, 0xD4);
    close(kq);
    close(p[0]);
    close(p[1]);
}

/* ---- EBADF --------------------------------------------------------------------------- */

TEST(test_registration_descriptor_filter_on_closed_number_ebadf) {
    int kq = kq_new();
    int bad = closed_fd_number();
    CHECK_ERR(kq_change_errno(kq, bad, EVFILT_READ, EV_ADD, 0, 0, NULL), EBADF);
    CHECK_ERR(kq_change_errno(kq, bad, EVFILT_WRITE, EV_ADD, 0, 0, NULL), EBADF);
    CHECK_ERR(kq_change_errno(kq, bad, EVFILT_READ, EV_DELETE, 0, 0, NULL), EBADF);
    CHECK_ERR(kq_change_errno(kq, bad, EVFILT_READ, EV_ENABLE, 0, 0, NULL), EBADF);
    /* Reported through the eventlist too. */
    struct kevent ch, out;
    EV_SET(&ch, bad, EVFILT_READ, EV_ADD, 0, 0, U(5));
    struct timespec zero = {0, 0};
    CHECK_EQ_INT(kevent(kq, &ch, 1, &out, 1, &zero), 1);
    CHECK_EQ_HEX(out.flags, EV_ERROR);
    CHECK_EQ_INT(out.data, EBADF);
    CHECK_NO_EVENT(kq);
    close(kq);
}

static void high_numbers_child(void *arg) {
    (void)arg;
    /* Process-wide: raise the soft descriptor limit to the hard one (in a child). */
    struct rlimit rl;
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < 2048) SKIP("RLIMIT_NOFILE too small (%llu)", (unsigned long long)rl.rlim_cur);
    int high = rl.rlim_cur > (1 << 20) ? (1 << 20) - 1 : (int)rl.rlim_cur - 1;
    int targets[] = {1023, 1024, 1025, 4096, high - 1, high};
    int kq = kq_new();
    struct kevent ev;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        int p[2];
        kq_pipe(p);
        int r = (int)CHECK_SYS(dup2(p[0], targets[i]));
        close(p[0]);
        KQ_SET(kq, r, EVFILT_READ, EV_ADD, 0, 0, U(r));
        kq_write_all(p[1], "x", 1);
        CHECK_EVENT_UNTIL(kq, r, EVFILT_READ, 1000, kq_pred_data_eq, 1, &ev);
        CHECK_EQ_INT(ev.udata, r);
        CHECK_SYS(close(r));
        CHECK_ERR(kq_change_errno(kq, r, EVFILT_READ, EV_DELETE, 0, 0, NULL), EBADF);
        CHECK_NO_EVENT(kq);
        close(p[1]);
    }
    /* Just past the limit: not an open descriptor. */
    CHECK_ERR(kq_change_errno(kq, (uintptr_t)rl.rlim_cur, EVFILT_READ, EV_ADD, 0, 0, NULL), EBADF);
    close(kq);
}

TEST(test_registration_descriptor_filter_high_descriptor_numbers) {
    kq_run_child(high_numbers_child, NULL, 5000);
}

TEST(test_registration_descriptor_filter_on_huge_ident_ebadf) {
    /* Idents that cannot be descriptors at all (ident is a uintptr_t). */
    int kq = kq_new();
    static const uintptr_t idents[] = {1u << 20, (uintptr_t)INT_MAX, (uintptr_t)INT_MAX + 1, (uintptr_t)UINT32_MAX,
                                       (uintptr_t)UINT32_MAX + 1, UINTPTR_MAX};
    for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++) {
        int e = kq_change_errno(kq, idents[i], EVFILT_READ, EV_ADD, 0, 0, NULL);
        CHECK_MSG(e == EBADF, "READ ident %#zx: expected EBADF, got %d %s", (size_t)idents[i], e, kq_errname(e));
        e = kq_change_errno(kq, idents[i], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
        CHECK_MSG(e == EBADF, "WRITE ident %#zx: expected EBADF, got %d %s", (size_t)idents[i], e, kq_errname(e));
        e = kq_change_errno(kq, idents[i], EVFILT_READ, EV_DELETE, 0, 0, NULL);
        CHECK_MSG(e == EBADF, "READ EV_DELETE ident %#zx: expected EBADF, got %d %s", (size_t)idents[i], e, kq_errname(e));
    }
    CHECK_NO_EVENT(kq);
    close(kq);
}

/* ---- EV_DISABLE / EV_ENABLE ---------------------------------------------------------- */

TEST(test_registration_ev_disable_stops_delivery) {
    int kq = kq_new();
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, NULL);
    kq_write_all(p[1], "abc", 3);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    /* Disabled while queued: no more events. */
    KQ_SET(kq, p[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    kq_write_all(p[1], "d", 1);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(kq);
    close(p[0]);
    close(p[1]);
}

TEST(test_registration_ev_enable_rechecks_and_queues_at_once) {
    int kq = kq_new();
    struct kevent ev;
    int p[2];
    kq_pipe(p);
    /* Level: data present before enable. */
    kq_write_all(p[1], "abc", 3);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev); /* a poll: queued by the enable itself */
    CHECK_EQ_INT(ev.data, 3);
    KQ_SET(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);

    /* EV_CLEAR: consumed event, more data while disabled, enable returns it. */
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 3);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, p[0], EVFILT_READ, EV_DISABLE, 0, 0, NULL);
    kq_write_all(p[1], "de", 2);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 5);
    KQ_SET(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);

    /* Enable when the condition does not hold: nothing. */
    char buf[8];
    kq_read_n(p[0], buf, 5);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, NULL);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);

    /* A socket that became writable while disabled. */
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ADD | EV_DISABLE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, sv[0], EVFILT_WRITE, EV_ENABLE, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.filter, EVFILT_WRITE);
    close(kq);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- EV_FORCEONESHOT ----------------------------------------------------------------- */

TEST(test_registration_ev_forceoneshot_makes_oneshot_and_fires) {
    int kq = kq_new();
    struct kevent ev;
    /* An untriggered user knote fires once and is deleted. */
    KQ_SET(kq, 18, EVFILT_USER, EV_ADD, 0, 0, U(1));
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 18, EVFILT_USER, EV_FORCEONESHOT, 0, 0, U(1));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 18);
    CHECK(ev.flags & EV_ONESHOT);
    CHECK(!(ev.flags & EV_FORCEONESHOT));
    CHECK_NO_EVENT(kq);
    CHECK_ERR(kq_change_errno(kq, 18, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);

    /* A descriptor knote whose condition does not hold fires all the same. */
    int p[2];
    kq_pipe(p);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(2));
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, p[0], EVFILT_READ, EV_FORCEONESHOT, 0, 0, U(2));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, p[0]);
    CHECK(ev.flags & EV_ONESHOT);
    CHECK_NO_EVENT(kq);
    CHECK_ERR(kq_change_errno(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL), ENOENT);
    kq_write_all(p[1], "x", 1);
    CHECK_NO_EVENT(kq);

    /* A ready level knote: one last event, then gone. */
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD, 0, 0, U(3));
    CHECK_ONE_EVENT(kq, &ev);
    KQ_SET(kq, p[0], EVFILT_READ, EV_FORCEONESHOT, 0, 0, U(3));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK(ev.flags & EV_ONESHOT);
    CHECK_NO_EVENT(kq);

    /* On a missing knote: ENOENT like any change without EV_ADD. */
    CHECK_ERR(kq_change_errno(kq, 19, EVFILT_USER, EV_FORCEONESHOT, 0, 0, NULL), ENOENT);
    close(kq);
    close(p[0]);
    close(p[1]);
}

/* ---- system flags -------------------------------------------------------------------- */

TEST(test_registration_system_flags_0xf000_stripped) {
    int kq = kq_new();
    struct kevent ev;
    /* EV_ADD with every system bit: an ordinary add, the bits never come back. */
    KQ_SET(kq, 20, EVFILT_USER, EV_ADD | EV_SYSFLAGS, 0, 0, U(1));
    KQ_SET(kq, 20, EVFILT_USER, EV_SYSFLAGS, NOTE_TRIGGER, 0, U(1));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 20);
    CHECK_EQ_HEX(ev.flags, 0);
    /* EV_DROP (0x1000) in particular must not drop the knote. */
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 20);
    KQ_SET(kq, 20, EVFILT_USER, EV_DELETE | EV_EOF | EV_ERROR, 0, 0, NULL);
    CHECK_ERR(kq_change_errno(kq, 20, EVFILT_USER, EV_DELETE, 0, 0, NULL), ENOENT);

    /* A caller cannot set EOF on a READ knote. */
    int p[2];
    kq_pipe(p);
    kq_write_all(p[1], "x", 1);
    KQ_SET(kq, p[0], EVFILT_READ, EV_ADD | EV_EOF | EV_FLAG1, 0, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.flags & EV_SYSFLAGS, 0);

    /* With room in the eventlist, EV_ERROR in a change does not make it a receipt or error. */
    struct kevent ch, out[2];
    EV_SET(&ch, 21, EVFILT_USER, EV_ADD | EV_ERROR, 0, 0, NULL);
    struct timespec zero = {0, 0};
    KQ_SET(kq, p[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, &ch, 1, out, 2, &zero), 0);
    KQ_SET(kq, 21, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 21);
    CHECK_EQ_HEX(ev.flags, 0);
    close(kq);
    close(p[0]);
    close(p[1]);
}

RUN_TESTS()
