/*
 * SPEC.md 3, EVFILT_USER: NOTE_TRIGGER, the fflags control bits on the stored 24 bits, the
 * returned data, EV_CLEAR vs level, triggers while disabled, cross-thread wakeups, and no
 * descriptor per user knote.
 */
#include "kqtest.h"

#define U(x) ((void *)(uintptr_t)(x))

TEST(test_user_note_trigger_without_ev_add_fires_existing_knote) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD, 0, 0, U(1));
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(1));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 1);
    CHECK_EQ_INT(ev.filter, EVFILT_USER);
    CHECK_EQ_INT(ev.udata, 1);
    CHECK_EQ_HEX(ev.fflags & NOTE_TRIGGER, 0);
    close(kq);
}

TEST(test_user_note_trigger_with_ev_add_on_existing_knote_fires) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 2);
    close(kq);
}

TEST(test_user_note_trigger_with_ev_add_on_new_knote_fires) {
    /* SPEC.md 3: "NOTE_TRIGGER in a change (with or without EV_ADD) fires it." */
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 3, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, U(3));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 3);
    CHECK_EQ_INT(ev.udata, 3);
    CHECK_NO_EVENT(kq);
    close(kq);
}

TEST(test_user_untriggered_knote_never_fires) {
    int kq = kq_new();
    KQ_SET(kq, 4, EVFILT_USER, EV_ADD, 0x123, 77, NULL);
    KQ_SET(kq, 4, EVFILT_USER, EV_ENABLE, 0, 0, NULL);
    KQ_SET(kq, 4, EVFILT_USER, 0, NOTE_FFOR | 0x1, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(kq);
}

/* Applies `fflags` (control bits and value) with a trigger and returns the event's fflags. */
static unsigned int trigger_and_get_fflags(int kq, uintptr_t ident, unsigned int fflags) {
    KQ_SET(kq, ident, EVFILT_USER, 0, NOTE_TRIGGER | fflags, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, ident);
    return ev.fflags;
}

TEST(test_user_fflags_control_nop_and_or_copy_on_stored_24_bits) {
    int kq = kq_new();
    KQ_SET(kq, 5, EVFILT_USER, EV_ADD | EV_CLEAR, 0x11, 0, NULL);
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFNOP | 0x22), 0x11);   /* keeps */
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFOR | 0x22), 0x33);    /* ors */
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFAND | 0x21), 0x21);   /* ands */
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFCOPY | 0xABCDEF), 0xABCDEF); /* replaces */
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFNOP), 0xABCDEF);
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFAND | 0x0F00F0), 0x0B00E0);
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFOR | 0xF00000), 0xFB00E0);
    /* Only the low 24 bits are stored: the trigger bit and bits 24..29 never come back. */
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFCOPY | 0x3FFFFFFF), 0xFFFFFF);
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFAND), 0);
    /* The control bits also apply without a trigger, to a later event. */
    KQ_SET(kq, 5, EVFILT_USER, 0, NOTE_FFOR | 0x4, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 5, EVFILT_USER, 0, NOTE_FFOR | 0x8, 0, NULL);
    CHECK_EQ_HEX(trigger_and_get_fflags(kq, 5, NOTE_FFNOP), 0xC);
    /* With EV_ADD on the existing knote as well. */
    KQ_SET(kq, 5, EVFILT_USER, EV_ADD, NOTE_FFCOPY | NOTE_TRIGGER | 0x77, 0, NULL);
    struct kevent ev;
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.fflags, 0x77);
    close(kq);
}

TEST(test_user_returned_data_is_stored_data) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 6, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    KQ_SET(kq, 6, EVFILT_USER, 0, NOTE_TRIGGER, 12345, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, 12345);
    KQ_SET(kq, 6, EVFILT_USER, 0, NOTE_TRIGGER, -7, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, -7);
    KQ_SET(kq, 6, EVFILT_USER, 0, NOTE_TRIGGER, INT64_MAX, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.data, INT64_MAX);
    /* Data given at EV_ADD is stored too. */
    KQ_SET(kq, 7, EVFILT_USER, EV_ADD | EV_CLEAR, 0x5, 99, NULL);
    KQ_SET(kq, 7, EVFILT_USER, 0, NOTE_TRIGGER, 99, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 7);
    CHECK_EQ_INT(ev.data, 99);
    CHECK_EQ_HEX(ev.fflags, 0x5);
    close(kq);
}

TEST(test_user_ev_clear_resets_on_retrieval) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 8, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    for (int round = 0; round < 3; round++) {
        KQ_SET(kq, 8, EVFILT_USER, 0, NOTE_TRIGGER, round, NULL);
        CHECK_ONE_EVENT(kq, &ev);
        CHECK_EQ_INT(ev.ident, 8);
        CHECK(ev.flags & EV_CLEAR);
        CHECK_NO_EVENT(kq);
    }
    close(kq);
}

TEST(test_user_level_stays_triggered) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 9, EVFILT_USER, EV_ADD, 0, 0, NULL);
    KQ_SET(kq, 9, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x42, 5, NULL);
    for (int i = 0; i < 5; i++) {
        CHECK_ONE_EVENT(kq, &ev);
        CHECK_EQ_INT(ev.ident, 9);
        CHECK_EQ_HEX(ev.fflags, 0x42);
        CHECK_EQ_INT(ev.data, 5);
    }
    /* Until deleted. */
    KQ_SET(kq, 9, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    close(kq);
}

TEST(test_user_trigger_while_disabled_kept_then_ev_enable_returns_it) {
    int kq = kq_new();
    struct kevent ev;
    /* Level. */
    KQ_SET(kq, 10, EVFILT_USER, EV_ADD | EV_DISABLE, 0, 0, U(10));
    KQ_SET(kq, 10, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(10));
    CHECK_NO_EVENT_WITHIN(kq, 20);
    KQ_SET(kq, 10, EVFILT_USER, EV_ENABLE, 0, 0, U(10));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 10);
    /* EV_CLEAR: disabled after being added enabled. */
    KQ_SET(kq, 11, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, U(11));
    KQ_SET(kq, 11, EVFILT_USER, EV_DISABLE, 0, 0, U(11));
    KQ_SET(kq, 11, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x9, 0, U(11));
    KQ_SET(kq, 10, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    KQ_SET(kq, 11, EVFILT_USER, EV_ENABLE, 0, 0, U(11));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 11);
    CHECK_EQ_HEX(ev.fflags, 0x9);
    CHECK_NO_EVENT(kq);
    /* Triggered, then disabled before retrieval, then enabled. */
    KQ_SET(kq, 11, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(11));
    KQ_SET(kq, 11, EVFILT_USER, EV_DISABLE, 0, 0, U(11));
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 11, EVFILT_USER, EV_ENABLE, 0, 0, U(11));
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 11);
    close(kq);
}

TEST(test_user_knote_deleted_and_added_again_starts_untriggered) {
    int kq = kq_new();
    struct kevent ev;
    KQ_SET(kq, 12, EVFILT_USER, EV_ADD, 0x7, 0, NULL);
    KQ_SET(kq, 12, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    KQ_SET(kq, 12, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 12, EVFILT_USER, EV_ADD, 0x1, 0, NULL);
    CHECK_NO_EVENT(kq);
    KQ_SET(kq, 12, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_HEX(ev.fflags, 0x1);
    close(kq);
}

/* ---- cross-thread trigger ------------------------------------------------------------ */

struct trigger_arg {
    int kq;
    long delay_ms;
    int64_t triggered_at;
    int result;
};

static void *trigger_thread(void *p) {
    struct trigger_arg *a = p;
    struct timespec ts = kq_ts_ms(a->delay_ms);
    nanosleep(&ts, NULL);
    struct kevent ch;
    EV_SET(&ch, 42, EVFILT_USER, 0, NOTE_TRIGGER, 0, U(42));
    a->triggered_at = kq_now_ns();
    a->result = kevent(a->kq, &ch, 1, NULL, 0, NULL);
    return NULL;
}

static void cross_thread_child(void *arg) {
    (void)arg;
    int kq = kq_new();
    KQ_SET(kq, 42, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, U(42));
    for (int round = 0; round < 5; round++) {
        struct trigger_arg a = {kq, 50, 0, -2};
        pthread_t t;
        CHECK_EQ_INT(pthread_create(&t, NULL, trigger_thread, &a), 0);
        struct kevent ev;
        int n = kevent(kq, NULL, 0, &ev, 1, NULL); /* NULL timeout: waits for the trigger */
        int64_t woke = kq_now_ns();
        pthread_join(t, NULL);
        CHECK_EQ_INT(a.result, 0);
        CHECK_EQ_INT(n, 1);
        CHECK_EQ_INT(ev.ident, 42);
        CHECK_EQ_INT(ev.udata, 42);
        CHECK_MSG(woke - a.triggered_at < 1000000000LL, "woke %lld ns after the trigger",
                  (long long)(woke - a.triggered_at));
    }
    close(kq);
}

TEST(test_user_trigger_from_other_thread_wakes_null_timeout_wait) {
    kq_run_child(cross_thread_child, NULL, 5000);
}

/* ---- a trigger in a call that also collects ------------------------------------------ */

static int kq_poll_readable(int kq) {
    struct pollfd pfd = {.fd = kq, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

TEST(test_user_trigger_and_collect_in_one_call_returns_it_even_with_null_timeout) {
    int kq = kq_new();
    struct kevent ch, ev[4];
    KQ_SET(kq, 5, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    for (int i = 0; i < 3; i++) {
        EV_SET(&ch, 5, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        CHECK_EQ_INT(kevent(kq, &ch, 1, ev, 4, NULL), 1); /* must not block */
        CHECK_EQ_INT(ev[0].ident, 5);
        CHECK_EQ_INT(ev[0].filter, EVFILT_USER);
        CHECK(!kq_poll_readable(kq)); /* collected: nothing pending */
        CHECK_NO_EVENT(kq);
    }
    close(kq);
}

TEST(test_user_trigger_in_collecting_call_without_room_stays_pending_and_readable) {
    /* The eventlist is filled by an older event: the triggered knote is left pending, the
     * kqueue descriptor is readable, and the next call returns it. */
    int kq = kq_new();
    struct kevent ch, ev[2];
    KQ_SET(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, NULL);
    KQ_SET(kq, 2, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    EV_SET(&ch, 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    struct timespec zero = {0, 0};
    CHECK_EQ_INT(kevent(kq, &ch, 1, ev, 1, &zero), 1);
    CHECK_EQ_INT(ev[0].ident, 1); /* first activated, first returned */
    CHECK(kq_poll_readable(kq));
    CHECK_ONE_EVENT(kq, &ev[0]);
    CHECK_EQ_INT(ev[0].ident, 2);
    CHECK(!kq_poll_readable(kq));
    close(kq);
}

TEST(test_user_trigger_with_receipt_in_collecting_call_is_signalled) {
    /* EV_RECEIPT: the call returns the receipt and collects nothing (SPEC.md 2.5); the
     * trigger still makes the kqueue readable and is returned by the next call. */
    int kq = kq_new();
    struct kevent ch, ev[4];
    KQ_SET(kq, 3, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    EV_SET(&ch, 3, EVFILT_USER, EV_RECEIPT, NOTE_TRIGGER, 0, NULL);
    CHECK_EQ_INT(kevent(kq, &ch, 1, ev, 4, NULL), 1);
    CHECK(ev[0].flags & EV_ERROR);
    CHECK_EQ_INT(ev[0].data, 0);
    CHECK(kq_poll_readable(kq));
    CHECK_ONE_EVENT(kq, &ev[0]);
    CHECK_EQ_INT(ev[0].ident, 3);
    close(kq);
}

TEST(test_user_trigger_in_call_with_invalid_timeout_is_signalled) {
    /* The timeout is checked after the changes (FreeBSD): the trigger is applied, the call
     * fails with EINVAL, and the event is pending for the next call. */
    int kq = kq_new();
    struct kevent ch, ev[4];
    KQ_SET(kq, 4, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    EV_SET(&ch, 4, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    struct timespec bad = {0, -1};
    errno = 0;
    CHECK_EQ_INT(kevent(kq, &ch, 1, ev, 4, &bad), -1);
    CHECK_EQ_INT(errno, EINVAL);
    CHECK(kq_poll_readable(kq));
    CHECK_ONE_EVENT(kq, &ev[0]);
    CHECK_EQ_INT(ev[0].ident, 4);
    close(kq);
}

/* ---- no descriptor per user knote ---------------------------------------------------- */

TEST(test_user_knotes_use_no_descriptor) {
    enum { COUNT = 10000, BATCH = 500 };
    int kq = kq_new();
    int before = kq_fd_count();
    static struct kevent ch[BATCH];
    for (int base = 0; base < COUNT; base += BATCH) {
        for (int i = 0; i < BATCH; i++) EV_SET(&ch[i], 1000 + base + i, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
        CHECK_EQ_INT(kevent(kq, ch, BATCH, NULL, 0, NULL), 0);
    }
    CHECK_EQ_INT(kq_fd_count(), before);
    /* Trigger them all: still no descriptor, and all are delivered. */
    for (int base = 0; base < COUNT; base += BATCH) {
        for (int i = 0; i < BATCH; i++) EV_SET(&ch[i], 1000 + base + i, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        CHECK_EQ_INT(kevent(kq, ch, BATCH, NULL, 0, NULL), 0);
    }
    CHECK_EQ_INT(kq_fd_count(), before);
    int total = 0;
    static struct kevent ev[1024];
    for (;;) {
        int n = KQ_WAIT(kq, ev, 1024, 0);
        if (n == 0) break;
        total += n;
    }
    CHECK_EQ_INT(total, COUNT);
    for (int base = 0; base < COUNT; base += BATCH) {
        for (int i = 0; i < BATCH; i++) EV_SET(&ch[i], 1000 + base + i, EVFILT_USER, EV_DELETE, 0, 0, NULL);
        CHECK_EQ_INT(kevent(kq, ch, BATCH, NULL, 0, NULL), 0);
    }
    CHECK_EQ_INT(kq_fd_count(), before);
    close(kq);
}

RUN_TESTS()
