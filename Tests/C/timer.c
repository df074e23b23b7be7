/*
 * SPEC.md 3, EVFILT_TIMER (and the delivery rules of SPEC.md 2 as they apply to timers),
 * through <sys/event.h> and kevent().
 *
 * Timing: every wait is a bounded wait on the kqueue; times are CLOCK_MONOTONIC
 * (CLOCK_REALTIME for NOTE_ABSTIME). "Never early" is asserted exactly; lateness and lost
 * expirations loosely (a quarter of a period of timer latency, seconds for single events).
 * Where expirations must pile up, the test is deliberately busy (nanosleep without kevent)
 * and always stops in the middle of a period.
 *
 * The wall-clock jump test changes CLOCK_REALTIME for the whole machine: it runs only with
 * KQ_ALLOW_CLOCK_CHANGE=1 (otherwise it skips and says why), in a forked child, and the
 * clock is restored even when the child fails.
 */
#include "kqtest.h"

#include <sys/mman.h>

#define U(x) ((void *)(uintptr_t)(x))
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

/* ---- helpers ------------------------------------------------------------------------- */

static int64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Monotonic times just before and just after a call. */
typedef struct {
    int64_t before, after;
} stamp;

/* Sleeps without calling kevent (a deliberately busy loop); never used to wait for events. */
static void busy_ns(int64_t ns) {
    if (ns <= 0) return;
    struct timespec req = {ns / NS_PER_S, ns % NS_PER_S}, rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
}

/* One timer change that must succeed, stamped. */
#define TSET(kq, ident, flags, fflags, data)                                            \
    ({                                                                                  \
        stamp tset_s_;                                                                  \
        tset_s_.before = kq_now_ns();                                                   \
        KQ_SET((kq), (ident), EVFILT_TIMER, (flags), (fflags), (data), NULL);           \
        tset_s_.after = kq_now_ns();                                                    \
        tset_s_;                                                                        \
    })

/* The errno of one timer change (0 on success). */
static int terr(int kq, uintptr_t ident, unsigned short flags, unsigned int fflags, int64_t data) {
    return kq_change_errno(kq, ident, EVFILT_TIMER, flags, fflags, data, NULL);
}

/*
 * The errno of one timer change, both ways: kevent() with no event list (-1/errno) and with
 * room for an EV_ERROR entry (whose other fields must be as given). The two must agree.
 * A change that succeeded is deleted again before the second form.
 */
static int terr_both_at(const char *file, int line, int kq, uintptr_t ident, unsigned short flags,
                        unsigned int fflags, int64_t data) {
    int direct = terr(kq, ident, flags, fflags, data);
    if (direct == 0) terr(kq, ident, EV_DELETE, 0, 0);
    struct kevent ch, out[2];
    EV_SET(&ch, ident, EVFILT_TIMER, flags, fflags, data, U(0x5a));
    struct timespec zero = {0, 0};
    int n = kevent(kq, &ch, 1, out, 2, &zero);
    int listed = 0;
    if (n < 0) kq_fail(file, line, "kevent with room for the error returned -1 (%s)", kq_errname(errno));
    for (int i = 0; i < n; i++) {
        if ((out[i].flags & EV_ERROR) == 0) continue;
        listed = (int)out[i].data;
        if (out[i].ident != ident || out[i].filter != EVFILT_TIMER || out[i].fflags != fflags ||
            out[i].udata != U(0x5a))
            kq_fail(file, line, "EV_ERROR entry does not keep the change's fields: %s", kq_ev_str(&out[i]));
    }
    if (listed == 0) terr(kq, ident, EV_DELETE, 0, 0);
    if (direct != listed)
        kq_fail(file, line, "change (flags 0x%x, fflags 0x%x, data %" PRId64 "): errno %s without an event list, %s as an EV_ERROR entry",
                flags, fflags, data, kq_errname(direct), kq_errname(listed));
    return direct;
}
#define TERR_BOTH(kq, ident, flags, fflags, data) terr_both_at(__FILE__, __LINE__, (kq), (ident), (flags), (fflags), (data))

/* Waits up to `ms` for the next event of timer `ident`; stamps the call that returned it. */
static int next_timer(int kq, uintptr_t ident, long ms, struct kevent *out, stamp *call) {
    int64_t deadline = kq_now_ns() + (int64_t)ms * NS_PER_MS;
    for (;;) {
        int64_t before = kq_now_ns();
        int64_t left = deadline - before;
        if (left < 0) left = 0;
        struct timespec ts = {left / NS_PER_S, left % NS_PER_S};
        struct kevent ev[64];
        int n = kevent(kq, NULL, 0, ev, 64, &ts);
        int64_t after = kq_now_ns();
        if (n < 0 && errno != EINTR) return 0;
        for (int i = 0; i < n; i++) {
            if (ev[i].ident == ident && ev[i].filter == EVFILT_TIMER) {
                *out = ev[i];
                if (call) {
                    call->before = before;
                    call->after = after;
                }
                return 1;
            }
        }
        if (after >= deadline) return 0;
    }
}

#define NEXT_TIMER(kq, ident, ms, evp, callp)                                          \
    CHECK_MSG(next_timer((kq), (ident), (ms), (evp), (callp)), "no event for timer %s within %ld ms", #ident, (long)(ms))

/* Polls ({0,0}); returns the number of events, stamps the call. */
static int poll_stamped(int kq, struct kevent *ev, int n, stamp *call) {
    call->before = kq_now_ns();
    int r = KQ_WAIT(kq, ev, n, 0);
    call->after = kq_now_ns();
    return r;
}

/* Waits `ms` and fails if timer `ident` reports anything meanwhile. */
static void check_silence_at(const char *file, int line, int kq, uintptr_t ident, long ms) {
    struct kevent ev;
    if (next_timer(kq, ident, ms, &ev, NULL))
        kq_fail(file, line, "expected no event for timer %" PRIuPTR " within %ld ms, got %s", ident, ms, kq_ev_str(&ev));
}
#define CHECK_SILENCE(kq, ident, ms) check_silence_at(__FILE__, __LINE__, (kq), (ident), (ms))

/*
 * Expirations of a periodic timer started during `start`, counted by a retrieval during
 * `seen`: at most floor((seen.after - start.before) / period) (never early, exact); at least
 * floor((seen.before - start.after - period / 4) / period) (none lost, loose).
 */
static void check_count_at(const char *file, int line, int64_t total, stamp start, stamp seen, int64_t period) {
    int64_t most = (seen.after - start.before) / period;
    int64_t least = (seen.before - start.after - period / 4) / period;
    if (least < 0) least = 0;
    if (total > most)
        kq_fail(file, line, "early: %" PRId64 " expirations counted, only %" PRId64 " periods of %" PRId64 " ns had passed",
                total, most, period);
    if (total < least)
        kq_fail(file, line, "lost: %" PRId64 " expirations counted, %" PRId64 " periods of %" PRId64 " ns had passed",
                total, least, period);
}
#define CHECK_COUNT(total, start, seen, period) check_count_at(__FILE__, __LINE__, (total), (start), (seen), (period))

/* A oneshot with (fflags, data) fires once, never before `delay` ns, within `delay` + 5 s. */
static void check_oneshot_delay_at(const char *file, int line, unsigned int fflags, int64_t data, int64_t delay) {
    int kq = kq_new();
    stamp start = TSET(kq, 7, EV_ADD | EV_ONESHOT, fflags, data);
    struct kevent ev;
    stamp call;
    if (!next_timer(kq, 7, (long)(delay / NS_PER_MS) + 5000, &ev, &call))
        kq_fail(file, line, "oneshot (fflags 0x%x, data %" PRId64 ") did not fire", fflags, data);
    int64_t elapsed = call.after - start.before;
    if (elapsed < delay)
        kq_fail(file, line, "oneshot (fflags 0x%x, data %" PRId64 ") fired after %" PRId64 " ns, before its %" PRId64 " ns",
                fflags, data, elapsed, delay);
    if (ev.data != 1 || ev.fflags != 0 || (ev.flags & EV_ONESHOT) == 0 || (ev.flags & EV_CLEAR) == 0)
        kq_fail(file, line, "unexpected oneshot event %s", kq_ev_str(&ev));
    if (terr(kq, 7, EV_DELETE, 0, 0) != ENOENT) kq_fail(file, line, "a fired oneshot is still registered");
    close(kq);
}
#define CHECK_ONESHOT_DELAY(fflags, data, delay) check_oneshot_delay_at(__FILE__, __LINE__, (fflags), (data), (delay))

/* ---- the C ABI values ---------------------------------------------------------------- */

TEST(test_timer_note_values_are_freebsd) {
    CHECK_EQ_INT(EVFILT_TIMER, -7);
    CHECK_EQ_HEX(NOTE_SECONDS, 0x1);
    CHECK_EQ_HEX(NOTE_MSECONDS, 0x2);
    CHECK_EQ_HEX(NOTE_USECONDS, 0x4);
    CHECK_EQ_HEX(NOTE_NSECONDS, 0x8);
    CHECK_EQ_HEX(NOTE_ABSTIME, 0x10);
    CHECK_EQ_HEX(NOTE_ABSOLUTE, NOTE_ABSTIME);
}

/* ---- units --------------------------------------------------------------------------- */

TEST(test_timer_unit_note_seconds) { CHECK_ONESHOT_DELAY(NOTE_SECONDS, 1, NS_PER_S); }

TEST(test_timer_unit_note_mseconds) { CHECK_ONESHOT_DELAY(NOTE_MSECONDS, 60, 60 * NS_PER_MS); }

TEST(test_timer_unit_note_useconds) {
    CHECK_ONESHOT_DELAY(NOTE_USECONDS, 60000, 60 * NS_PER_MS);
    CHECK_ONESHOT_DELAY(NOTE_USECONDS, 12345, 12345000);
}

TEST(test_timer_unit_note_nseconds_nanosecond_resolution) {
    CHECK_ONESHOT_DELAY(NOTE_NSECONDS, 60000000, 60000000);
    CHECK_ONESHOT_DELAY(NOTE_NSECONDS, 12345678, 12345678);
}

TEST(test_timer_no_unit_means_milliseconds) {
    CHECK_ONESHOT_DELAY(0, 60, 60 * NS_PER_MS);
    /* Periodic too: 25 ms, not 25 s or 25 us. */
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD, 0, 25);
    busy_ns(4 * 25 * NS_PER_MS + 25 * NS_PER_MS / 2);
    struct kevent ev[4];
    stamp call;
    CHECK_EQ_INT(poll_stamped(kq, ev, 4, &call), 1);
    CHECK_COUNT(ev[0].data, start, call, 25 * NS_PER_MS);
    close(kq);
}

/* ---- bad input ----------------------------------------------------------------------- */

static const unsigned int all_units[] = {0, NOTE_SECONDS, NOTE_MSECONDS, NOTE_USECONDS, NOTE_NSECONDS};

TEST(test_timer_negative_data_is_einval) {
    int kq = kq_new();
    const int64_t datas[] = {-1, -1000, INT64_MIN};
    const unsigned short flagsets[] = {EV_ADD, EV_ADD | EV_ONESHOT, EV_ADD | EV_CLEAR, EV_ADD | EV_DISPATCH};
    for (size_t u = 0; u < 5; u++)
        for (int abs = 0; abs < 2; abs++)
            for (size_t f = 0; f < 4; f++)
                for (size_t d = 0; d < 3; d++)
                    CHECK_ERR(TERR_BOTH(kq, 3, flagsets[f], all_units[u] | (abs ? NOTE_ABSTIME : 0), datas[d]), EINVAL);
    CHECK_ERR(terr(kq, 3, EV_DELETE, 0, 0), ENOENT);
    CHECK_NO_EVENT(kq);
    close(kq);
}

TEST(test_timer_unknown_fflags_bit_is_einval) {
    int kq = kq_new();
    for (int bit = 5; bit < 32; bit++) {
        unsigned int extra = 1u << bit;
        CHECK_ERR(TERR_BOTH(kq, 4, EV_ADD, extra, 10), EINVAL);
        CHECK_ERR(TERR_BOTH(kq, 4, EV_ADD, NOTE_MSECONDS | extra, 10), EINVAL);
        CHECK_ERR(TERR_BOTH(kq, 4, EV_ADD | EV_ONESHOT, NOTE_NSECONDS | extra, 10), EINVAL);
        CHECK_ERR(TERR_BOTH(kq, 4, EV_ADD, NOTE_SECONDS | NOTE_ABSTIME | extra, 10), EINVAL);
    }
    CHECK_ERR(terr(kq, 4, EV_DELETE, 0, 0), ENOENT);
    close(kq);
}

TEST(test_timer_more_than_one_unit_bit_is_einval) {
    int kq = kq_new();
    for (unsigned int units = 0; units <= 0xF; units++) {
        if (__builtin_popcount(units) < 2) continue;
        CHECK_ERR(TERR_BOTH(kq, 5, EV_ADD, units, 10), EINVAL);
        CHECK_ERR(TERR_BOTH(kq, 5, EV_ADD | EV_ONESHOT, units, 10), EINVAL);
        CHECK_ERR(TERR_BOTH(kq, 5, EV_ADD, units | NOTE_ABSTIME, 10), EINVAL);
    }
    CHECK_ERR(terr(kq, 5, EV_DELETE, 0, 0), ENOENT);
    close(kq);
}

TEST(test_timer_unit_overflow_to_nanoseconds_is_einval) {
    int kq = kq_new();
    const struct {
        unsigned int unit;
        int64_t data;
    } cases[] = {
        {NOTE_SECONDS, INT64_MAX},           {NOTE_SECONDS, INT64_MAX / 1000000000 + 1},
        {NOTE_MSECONDS, INT64_MAX},          {NOTE_MSECONDS, INT64_MAX / 1000000 + 1},
        {0, INT64_MAX},                      {0, INT64_MAX / 1000000 + 1},
        {NOTE_USECONDS, INT64_MAX},          {NOTE_USECONDS, INT64_MAX / 1000 + 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_ERR(TERR_BOTH(kq, 6, EV_ADD, cases[i].unit, cases[i].data), EINVAL);
        CHECK_ERR(TERR_BOTH(kq, 6, EV_ADD | EV_ONESHOT, cases[i].unit, cases[i].data), EINVAL);
        CHECK_ERR(TERR_BOTH(kq, 6, EV_ADD, cases[i].unit | NOTE_ABSTIME, cases[i].data), EINVAL);
    }
    CHECK_ERR(terr(kq, 6, EV_DELETE, 0, 0), ENOENT);
    /* Large but representable: accepted, and not fired. */
    TSET(kq, 7, EV_ADD, NOTE_SECONDS, INT64_MAX / 1000000000 / 4);
    TSET(kq, 8, EV_ADD, NOTE_USECONDS, INT64_MAX / 1000 / 4);
    CHECK_NO_EVENT_WITHIN(kq, 20);
    close(kq);
}

TEST(test_timer_bad_input_clear_errno_never_crash) {
    int kq = kq_new();
    const int64_t datas[] = {INT64_MIN, -1, 0, 1, 1000000000, INT64_MAX / 1000, INT64_MAX - 1, INT64_MAX};
    unsigned int fflagsv[40];
    size_t nf = 0;
    for (unsigned int f = 0; f <= 0x1F; f++) fflagsv[nf++] = f;
    fflagsv[nf++] = 0x20;
    fflagsv[nf++] = 0x3F;
    fflagsv[nf++] = 0x100;
    fflagsv[nf++] = 0x80000000u;
    fflagsv[nf++] = 0xFFFFFFFFu;
    fflagsv[nf++] = 0x10002;
    const unsigned short flagsets[] = {EV_ADD, EV_ADD | EV_ONESHOT, EV_ADD | EV_DISPATCH, EV_ADD | EV_DISABLE,
                                       EV_ADD | EV_RECEIPT};
    for (size_t f = 0; f < nf; f++)
        for (size_t d = 0; d < sizeof datas / sizeof datas[0]; d++)
            for (size_t s = 0; s < sizeof flagsets / sizeof flagsets[0]; s++) {
                struct kevent ch, out[2];
                EV_SET(&ch, 9, EVFILT_TIMER, flagsets[s], fflagsv[f], datas[d], U(9));
                struct timespec zero = {0, 0};
                int n = kevent(kq, &ch, 1, out, 2, &zero);
                CHECK_MSG(n >= 0, "kevent returned -1 (%s) with room for the error", kq_errname(errno));
                int err = 0;
                for (int i = 0; i < n; i++)
                    if (out[i].flags & EV_ERROR) err = (int)out[i].data;
                CHECK_MSG(err == 0 || err == EINVAL, "fflags 0x%x data %" PRId64 ": errno %d %s", fflagsv[f], datas[d],
                          err, kq_errname(err));
                /* The same with no event list: -1/EINVAL or success, matching. */
                int direct = terr(kq, 9, flagsets[s] & ~EV_RECEIPT, fflagsv[f], datas[d]);
                CHECK_MSG(direct == err, "fflags 0x%x data %" PRId64 ": %s as EV_ERROR, %s directly", fflagsv[f],
                          datas[d], kq_errname(err), kq_errname(direct));
                terr(kq, 9, EV_DELETE, 0, 0);
            }
    /* An existing timer modified with bad input: EINVAL too. */
    TSET(kq, 10, EV_ADD, NOTE_SECONDS, 100);
    CHECK_ERR(TERR_BOTH(kq, 10, EV_ADD, NOTE_SECONDS, -1), EINVAL);
    CHECK_ERR(TERR_BOTH(kq, 10, EV_ADD, 0x40, 1), EINVAL);
    CHECK_ERR(TERR_BOTH(kq, 10, EV_ADD, NOTE_SECONDS | NOTE_NSECONDS, 1), EINVAL);
    CHECK_ERR(TERR_BOTH(kq, 10, EV_ADD, NOTE_SECONDS, INT64_MAX), EINVAL);
    /* The kqueue still works. */
    TSET(kq, 11, EV_ADD | EV_ONESHOT, NOTE_NSECONDS, 0);
    struct kevent ev;
    NEXT_TIMER(kq, 11, 2000, &ev, NULL);
    close(kq);
}

/* ---- periodic, oneshot, data, fflags, EV_CLEAR --------------------------------------- */

TEST(test_timer_periodic_unless_ev_oneshot) {
    const int64_t period = 20 * NS_PER_MS;
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD, 0, 20);
    TSET(kq, 2, EV_ADD | EV_ONESHOT, 0, 20);
    int64_t total = 0;
    int periodic = 0, oneshots = 0;
    int64_t deadline = kq_now_ns() + 5 * NS_PER_S;
    while (periodic < 5 && kq_now_ns() < deadline) {
        struct kevent ev[8];
        stamp call;
        call.before = kq_now_ns();
        int n = KQ_WAIT(kq, ev, 8, 1000);
        call.after = kq_now_ns();
        for (int i = 0; i < n; i++) {
            if (ev[i].ident == 1) {
                periodic++;
                total += ev[i].data;
                CHECK_COUNT(total, start, call, period);
            } else if (ev[i].ident == 2) {
                oneshots++;
                CHECK_EQ_INT(ev[i].data, 1);
                CHECK(ev[i].flags & EV_ONESHOT);
                CHECK(call.after - start.before >= period);
            }
        }
    }
    CHECK_EQ_INT(periodic, 5);
    CHECK_EQ_INT(oneshots, 1);
    CHECK_ERR(terr(kq, 2, EV_DELETE, 0, 0), ENOENT);
    CHECK_ERR(terr(kq, 1, EV_DELETE, 0, 0), 0);
    close(kq);
}

TEST(test_timer_data_counts_expirations_since_last_retrieval) {
    const int64_t period = 20 * NS_PER_MS;
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD, NOTE_MSECONDS, 20);
    const int gaps[] = {0, 2, 0, 5, 1, 3};
    int64_t total = 0;
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        busy_ns(gaps[g] * period + period / 2);
        struct kevent ev;
        stamp call;
        NEXT_TIMER(kq, 1, 5000, &ev, &call);
        CHECK(ev.data >= 1);
        total += ev.data;
        CHECK_COUNT(total, start, call, period);
        /* Right after a retrieval nothing already returned is pending again. */
        struct kevent more[4];
        int n = KQ_WAIT(kq, more, 4, 0);
        for (int i = 0; i < n; i++) {
            CHECK_MSG(more[i].data <= 1, "returned again: %s", kq_ev_str(&more[i]));
            total += more[i].data;
        }
    }
    close(kq);
}

TEST(test_timer_missed_periods_counted_in_data) {
    const int64_t period = 10 * NS_PER_MS;
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD, NOTE_USECONDS, 10000);
    busy_ns(10 * period + period / 2); /* busy for 10 periods */
    struct kevent ev[4];
    stamp call;
    CHECK_EQ_INT(poll_stamped(kq, ev, 4, &call), 1);
    CHECK_MSG(ev[0].data >= 10, "a loop busy for 10 periods sees data >= 10, got %" PRId64, ev[0].data);
    CHECK_COUNT(ev[0].data, start, call, period);
    int64_t total = ev[0].data;
    busy_ns(3 * period);
    CHECK_EQ_INT(poll_stamped(kq, ev, 4, &call), 1);
    total += ev[0].data;
    CHECK_COUNT(total, start, call, period);
    close(kq);
}

TEST(test_timer_returned_fflags_zero) {
    int kq = kq_new();
    int64_t wall = real_ns();
    TSET(kq, 1, EV_ADD, NOTE_SECONDS, 0);
    TSET(kq, 2, EV_ADD, NOTE_MSECONDS, 1);
    TSET(kq, 3, EV_ADD, NOTE_USECONDS, 100);
    TSET(kq, 4, EV_ADD, NOTE_NSECONDS, 100000);
    TSET(kq, 5, EV_ADD | EV_ONESHOT, NOTE_USECONDS, 1);
    TSET(kq, 6, EV_ADD, NOTE_NSECONDS | NOTE_ABSTIME, wall);
    TSET(kq, 7, EV_ADD, NOTE_MSECONDS | NOTE_ABSTIME, wall / NS_PER_MS);
    unsigned seen = 0;
    int64_t deadline = kq_now_ns() + 5 * NS_PER_S;
    while (seen != 0xFE && kq_now_ns() < deadline) {
        struct kevent ev[16];
        int n = KQ_WAIT(kq, ev, 16, 1000);
        for (int i = 0; i < n; i++) {
            CHECK_MSG(ev[i].fflags == 0, "fflags not 0: %s", kq_ev_str(&ev[i]));
            seen |= 1u << ev[i].ident;
        }
    }
    CHECK_EQ_HEX(seen, 0xFE);
    close(kq);
}

TEST(test_timer_ev_clear_added_by_filter) {
    int kq = kq_new();
    TSET(kq, 1, EV_ADD, 0, 150);
    TSET(kq, 2, EV_ADD | EV_ONESHOT, 0, 10);
    struct kevent ev;
    NEXT_TIMER(kq, 2, 5000, &ev, NULL);
    CHECK_MSG((ev.flags & (EV_CLEAR | EV_ONESHOT)) == (EV_CLEAR | EV_ONESHOT), "oneshot: %s", kq_ev_str(&ev));
    stamp call;
    NEXT_TIMER(kq, 1, 5000, &ev, &call);
    CHECK_MSG(ev.flags & EV_CLEAR, "periodic: %s", kq_ev_str(&ev));
    /* Edge-triggered: not returned again until the next expiry (150 ms later). */
    struct kevent more[4];
    stamp again;
    int n = poll_stamped(kq, more, 4, &again);
    if (again.after - call.before < 100 * NS_PER_MS)
        CHECK_MSG(n == 0, "returned again without a new expiry: %s", kq_ev_str(&more[0]));
    close(kq);
}

TEST(test_timer_periodic_data_zero_smallest_period) {
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD, NOTE_NSECONDS, 0);
    int64_t total = 0;
    for (int i = 0; i < 3; i++) {
        struct kevent ev;
        stamp call;
        NEXT_TIMER(kq, 1, 2000, &ev, &call);
        CHECK(ev.data >= 1);
        total += ev.data;
        CHECK_COUNT(total, start, call, 1000); /* 1 us, the smallest period here */
        busy_ns(2 * NS_PER_MS);
    }
    for (size_t u = 0; u < 4; u++) {
        TSET(kq, 2, EV_ADD, all_units[u], 0);
        struct kevent ev;
        NEXT_TIMER(kq, 2, 2000, &ev, NULL);
        TSET(kq, 2, EV_DELETE, 0, 0);
    }
    close(kq);
}

TEST(test_timer_oneshot_data_zero_fires_at_once) {
    int kq = kq_new();
    for (size_t u = 0; u < 5; u++) {
        stamp start = TSET(kq, 1, EV_ADD | EV_ONESHOT, all_units[u], 0);
        struct kevent ev;
        stamp call;
        NEXT_TIMER(kq, 1, 5000, &ev, &call);
        CHECK_EQ_INT(ev.data, 1);
        CHECK_MSG(call.after - start.after < NS_PER_S, "not at once (loose bound 1 s)");
    }
    close(kq);
}

TEST(test_timer_ident_any_number) {
    int kq = kq_new();
    const uintptr_t idents[] = {0, 1, (uintptr_t)INT32_MAX + 1, UINTPTR_MAX};
    for (int i = 0; i < 4; i++) KQ_SET(kq, idents[i], EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 5, U(idents[i] | 1));
    int seen[4] = {0};
    int total = 0;
    int64_t deadline = kq_now_ns() + 5 * NS_PER_S;
    while (total < 4 && kq_now_ns() < deadline) {
        struct kevent ev[8];
        int n = KQ_WAIT(kq, ev, 8, 1000);
        for (int i = 0; i < n; i++) {
            CHECK(ev[i].udata == U(ev[i].ident | 1));
            for (int k = 0; k < 4; k++)
                if (ev[i].ident == idents[k]) {
                    CHECK(!seen[k]);
                    seen[k] = 1;
                    total++;
                }
        }
    }
    CHECK_EQ_INT(total, 4);
    close(kq);
}

/* ---- NOTE_ABSTIME -------------------------------------------------------------------- */

TEST(test_timer_abstime_absolute_wall_clock_in_unit) {
    const struct {
        unsigned int unit;
        int64_t scale;
    } cases[] = {{0, NS_PER_MS}, {NOTE_SECONDS, NS_PER_S}, {NOTE_MSECONDS, NS_PER_MS}, {NOTE_USECONDS, 1000},
                 {NOTE_NSECONDS, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int kq = kq_new();
        int64_t scale = cases[i].scale;
        int64_t wanted = real_ns() + 150 * NS_PER_MS;
        int64_t data = (wanted + scale - 1) / scale + (scale == NS_PER_S ? 1 : 0);
        int64_t target = data * scale;
        stamp start = TSET(kq, 1, EV_ADD, cases[i].unit | NOTE_ABSTIME, data);
        struct kevent ev;
        stamp call;
        NEXT_TIMER(kq, 1, (long)((target - real_ns()) / NS_PER_MS) + 5000, &ev, &call);
        int64_t wall = real_ns();
        CHECK_MSG(wall >= target, "unit 0x%x: fired %" PRId64 " ns before its wall-clock time", cases[i].unit,
                  target - wall);
        CHECK_MSG(call.after - start.before >= 100 * NS_PER_MS, "unit 0x%x: fired too soon (unit misread?)",
                  cases[i].unit);
        CHECK_EQ_INT(ev.data, 1);
        CHECK_EQ_INT(ev.fflags, 0);
        close(kq);
    }
}

TEST(test_timer_abstime_past_fires_at_once) {
    int kq = kq_new();
    int64_t now = real_ns();
    const struct {
        unsigned int unit;
        int64_t data;
    } cases[] = {{NOTE_NSECONDS, now - NS_PER_S}, {NOTE_MSECONDS, now / NS_PER_MS - 1}, {NOTE_SECONDS, 1},
                 {NOTE_SECONDS, 0}, {0, 0}, {NOTE_USECONDS, now / 1000}, {NOTE_NSECONDS, now}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stamp start = TSET(kq, i, EV_ADD | EV_ONESHOT, cases[i].unit | NOTE_ABSTIME, cases[i].data);
        struct kevent ev;
        stamp call;
        NEXT_TIMER(kq, i, 5000, &ev, &call);
        CHECK_EQ_INT(ev.data, 1);
        CHECK_MSG(call.after - start.after < NS_PER_S, "case %zu: not at once (loose bound 1 s)", i);
    }
    close(kq);
}

TEST(test_timer_abstime_ev_clear_not_added) {
    int kq = kq_new();
    TSET(kq, 1, EV_ADD, NOTE_NSECONDS | NOTE_ABSTIME, real_ns() + 20 * NS_PER_MS);
    struct kevent ev;
    NEXT_TIMER(kq, 1, 5000, &ev, NULL);
    CHECK_MSG((ev.flags & EV_CLEAR) == 0, "EV_CLEAR added: %s", kq_ev_str(&ev));
    CHECK_EQ_INT(ev.data, 1);
    /* Level-triggered (SPEC.md 2): it stays ready and is returned again, still data 1. */
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 1);
    CHECK_EQ_INT(ev.data, 1);
    CHECK((ev.flags & EV_CLEAR) == 0);
    close(kq);
}

TEST(test_timer_abstime_does_not_repeat) {
    int kq = kq_new();
    int64_t at = real_ns() + 20 * NS_PER_MS;
    TSET(kq, 1, EV_ADD | EV_CLEAR, NOTE_NSECONDS | NOTE_ABSTIME, at);
    TSET(kq, 2, EV_ADD, NOTE_NSECONDS | NOTE_ABSTIME, at);
    struct kevent ev;
    NEXT_TIMER(kq, 1, 5000, &ev, NULL);
    CHECK_EQ_INT(ev.data, 1);
    /* With EV_CLEAR: nothing more. */
    CHECK_SILENCE(kq, 1, 200);
    /* Without EV_CLEAR: still reported (level), never a second expiration. */
    for (int round = 0; round < 5; round++) {
        struct kevent evs[4];
        int n = KQ_WAIT(kq, evs, 4, 0);
        for (int i = 0; i < n; i++) CHECK_MSG(evs[i].data == 1, "repeated: %s", kq_ev_str(&evs[i]));
        busy_ns(20 * NS_PER_MS);
    }
    /* EV_ONESHOT | NOTE_ABSTIME: once, then deleted. */
    TSET(kq, 3, EV_ADD | EV_ONESHOT, NOTE_MSECONDS | NOTE_ABSTIME, real_ns() / NS_PER_MS + 10);
    NEXT_TIMER(kq, 3, 5000, &ev, NULL);
    CHECK_ERR(terr(kq, 3, EV_DELETE, 0, 0), ENOENT);
    close(kq);
}

/* The wall-clock jump runs in a forked child; the parent restores the clock if the child did
 * not. */
struct clock_jump {
    volatile int advanced;       /* the child moved the clock forward 3 s */
    volatile int restored;       /* ... and moved it back */
    volatile int settime_errno;  /* clock_settime failed with this */
    volatile int setup_errno;    /* kqueue/kevent failed with this */
    volatile int early_events;   /* events before the jump */
    volatile int fired;
    volatile int64_t data;
    volatile int64_t registered_ns, jumped_ns, fired_ns;
};

static int shift_realtime(int64_t delta) {
    int64_t t = real_ns() + delta;
    struct timespec ts = {t / NS_PER_S, t % NS_PER_S};
    return clock_settime(CLOCK_REALTIME, &ts) == 0 ? 0 : errno;
}

/* Only system calls here: no CHECK between moving the clock and restoring it. */
static void clock_jump_child(struct clock_jump *s) {
    int kq = kqueue();
    if (kq < 0) {
        s->setup_errno = errno;
        return;
    }
    struct kevent ch, ev[4];
    EV_SET(&ch, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_NSECONDS | NOTE_ABSTIME, real_ns() + 2 * NS_PER_S, NULL);
    s->registered_ns = kq_now_ns();
    if (kevent(kq, &ch, 1, NULL, 0, NULL) != 0) {
        s->setup_errno = errno;
        return;
    }
    struct timespec zero = {0, 0};
    s->early_events = kevent(kq, NULL, 0, ev, 4, &zero);
    int e = shift_realtime(3 * NS_PER_S);
    if (e != 0) {
        s->settime_errno = e;
        return;
    }
    s->advanced = 1;
    s->jumped_ns = kq_now_ns();
    struct timespec wait = {3, 0};
    int n = kevent(kq, NULL, 0, ev, 4, &wait);
    s->fired_ns = kq_now_ns();
    if (shift_realtime(-3 * NS_PER_S) == 0) s->restored = 1;
    if (n == 1 && ev[0].ident == 1 && ev[0].filter == EVFILT_TIMER) {
        s->fired = 1;
        s->data = ev[0].data;
    }
    close(kq);
}

TEST(test_timer_abstime_wall_clock_jump_not_at_old_time) {
    const char *allow = getenv("KQ_ALLOW_CLOCK_CHANGE");
    if (allow == NULL || strcmp(allow, "1") != 0)
        SKIP("changes the machine's CLOCK_REALTIME (settimeofday): runs only with KQ_ALLOW_CLOCK_CHANGE=1");
    struct clock_jump *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != MAP_FAILED);
    memset((void *)s, 0, sizeof *s);
    pid_t pid = kq_fork();
    if (pid == 0) {
        clock_jump_child(s);
        _exit(0);
    }
    int status = 0;
    int ended = kq_waitpid_bounded(pid, &status, 6000);
    if (!ended) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    /* Restore even when the child failed or was killed. */
    int restore_errno = 0;
    if (s->advanced && !s->restored) restore_errno = shift_realtime(-3 * NS_PER_S);
    CHECK_MSG(ended, "child did not finish within 6 s");
    CHECK_MSG(restore_errno == 0, "restoring the clock failed: %s", kq_errname(restore_errno));
    if (s->settime_errno == EPERM)
        SKIP("clock_settime(CLOCK_REALTIME) is not permitted here (EPERM): cannot test a wall-clock jump");
    CHECK_MSG(s->settime_errno == 0, "clock_settime: %s", kq_errname(s->settime_errno));
    CHECK_MSG(s->setup_errno == 0, "kqueue/kevent in the child: %s", kq_errname(s->setup_errno));
    CHECK_EQ_INT(s->early_events, 0);
    CHECK_MSG(s->fired, "the NOTE_ABSTIME timer did not fire within 3 s of the wall clock passing its time");
    CHECK_EQ_INT(s->data, 1);
    int64_t after_jump = s->fired_ns - s->jumped_ns;
    CHECK_MSG(after_jump < 1500 * NS_PER_MS, "fired %" PRId64 " ms after the jump", after_jump / NS_PER_MS);
    CHECK_MSG(s->fired_ns - s->registered_ns < 1900 * NS_PER_MS, "fired at the old time");
    munmap((void *)s, sizeof *s);
}

/* ---- modification -------------------------------------------------------------------- */

TEST(test_timer_ev_add_restarts_with_new_period) {
    int kq = kq_new();
    /* A oneshot due in 100 ms re-added 50 ms later: due 100 ms after the re-add. */
    TSET(kq, 1, EV_ADD | EV_ONESHOT, 0, 100);
    busy_ns(50 * NS_PER_MS);
    stamp restart = TSET(kq, 1, EV_ADD | EV_ONESHOT, 0, 100);
    struct kevent ev;
    stamp call;
    NEXT_TIMER(kq, 1, 5000, &ev, &call);
    CHECK_MSG(call.after - restart.before >= 100 * NS_PER_MS, "fired at the old deadline: not restarted");
    /* A periodic timer re-added with another period (and unit) runs on the new one. */
    TSET(kq, 2, EV_ADD, 0, 10);
    busy_ns(25 * NS_PER_MS);
    stamp slow = TSET(kq, 2, EV_ADD, NOTE_USECONDS, 120000);
    int64_t total = 0;
    for (int i = 0; i < 3; i++) {
        NEXT_TIMER(kq, 2, 5000, &ev, &call);
        total += ev.data;
        CHECK_COUNT(total, slow, call, 120 * NS_PER_MS);
    }
    close(kq);
}

TEST(test_timer_ev_add_discards_uncollected_expirations) {
    int kq = kq_new();
    TSET(kq, 1, EV_ADD, 0, 10);
    busy_ns(35 * NS_PER_MS); /* three expirations pending */
    stamp restart = TSET(kq, 1, EV_ADD, 0, 200);
    CHECK_NO_EVENT(kq);
    struct kevent ev;
    stamp call;
    NEXT_TIMER(kq, 1, 5000, &ev, &call);
    CHECK(call.after - restart.before >= 200 * NS_PER_MS);
    CHECK_COUNT(ev.data, restart, call, 200 * NS_PER_MS);
    /* Also expirations the kqueue has already recorded but not returned: a disabled timer
     * (kevent calls process its expiries meanwhile) and one disabled by EV_DISPATCH. */
    TSET(kq, 1, EV_DELETE, 0, 0);
    TSET(kq, 2, EV_ADD | EV_DISABLE, 0, 10);
    TSET(kq, 3, EV_ADD | EV_DISPATCH, 0, 10);
    NEXT_TIMER(kq, 3, 5000, &ev, NULL);
    for (int i = 0; i < 4; i++) CHECK_NO_EVENT_WITHIN(kq, 10);
    TSET(kq, 2, EV_ADD, 0, 1000);
    TSET(kq, 3, EV_ADD, 0, 1000);
    TSET(kq, 2, EV_ENABLE, 0, 0);
    TSET(kq, 3, EV_ENABLE, 0, 0);
    CHECK_NO_EVENT(kq);
    close(kq);
}

TEST(test_timer_ev_enable_ev_disable_do_not_restart) {
    const int64_t period = 300 * NS_PER_MS;
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD, 0, 300);
    busy_ns(2 * period + period / 2);
    TSET(kq, 1, EV_DISABLE, 0, 0);
    TSET(kq, 1, EV_ENABLE, 0, 0);
    TSET(kq, 1, EV_ENABLE, 0, 0); /* EV_ENABLE on an enabled timer too */
    struct kevent ev[4];
    stamp call;
    CHECK_MSG(poll_stamped(kq, ev, 4, &call) == 1, "expirations before EV_DISABLE/EV_ENABLE were lost (restarted?)");
    int64_t total = ev[0].data;
    CHECK_COUNT(total, start, call, period);
    /* The schedule is unchanged: the third expiry is due at start + 3 periods, not a period
     * after the EV_ENABLE (start + 3.5 periods). */
    busy_ns(start.after + 3 * period + period / 4 - kq_now_ns());
    int n = poll_stamped(kq, ev, 4, &call);
    if (n == 1) total += ev[0].data;
    CHECK_MSG(total >= 3, "the expiry due at start + 3 periods had not come at start + 3.25 periods");
    CHECK_COUNT(total, start, call, period);
    close(kq);
}

TEST(test_timer_expirations_count_while_disabled) {
    const int64_t period = 20 * NS_PER_MS;
    int kq = kq_new();
    stamp start1 = TSET(kq, 1, EV_ADD | EV_DISABLE, 0, 20);
    stamp start2 = TSET(kq, 2, EV_ADD, 0, 20);
    TSET(kq, 2, EV_DISABLE, 0, 0);
    busy_ns(5 * period + period / 2);
    CHECK_NO_EVENT_WITHIN(kq, 30);
    TSET(kq, 1, EV_ENABLE, 0, 0);
    TSET(kq, 2, EV_ENABLE, 0, 0);
    struct kevent ev[4];
    stamp call;
    CHECK_EQ_INT(poll_stamped(kq, ev, 4, &call), 2);
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(ev[i].data >= 5, "expirations while disabled not counted: %s", kq_ev_str(&ev[i]));
        CHECK_COUNT(ev[i].data, ev[i].ident == 1 ? start1 : start2, call, period);
    }
    close(kq);
}

TEST(test_timer_ev_dispatch_once_then_disabled) {
    const int64_t period = 20 * NS_PER_MS;
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD | EV_DISPATCH, 0, 20);
    struct kevent ev;
    stamp call;
    NEXT_TIMER(kq, 1, 5000, &ev, &call);
    CHECK_MSG((ev.flags & (EV_DISPATCH | EV_CLEAR)) == (EV_DISPATCH | EV_CLEAR), "%s", kq_ev_str(&ev));
    int64_t total = ev.data;
    CHECK_COUNT(total, start, call, period);
    CHECK_SILENCE(kq, 1, 110);
    TSET(kq, 1, EV_ENABLE, 0, 0);
    struct kevent evs[4];
    CHECK_MSG(poll_stamped(kq, evs, 4, &call) == 1, "EV_ENABLE after EV_DISPATCH: pending expirations not returned at once");
    CHECK_MSG(evs[0].data >= 4, "expirations while disabled by EV_DISPATCH not counted: %s", kq_ev_str(&evs[0]));
    total += evs[0].data;
    CHECK_COUNT(total, start, call, period);
    CHECK_SILENCE(kq, 1, 50);
    CHECK_ERR(terr(kq, 1, EV_DELETE, 0, 0), 0);
    close(kq);
}

TEST(test_timer_ev_oneshot_deleted_after_delivery) {
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD | EV_ONESHOT, NOTE_MSECONDS, 20);
    struct kevent ev;
    stamp call;
    NEXT_TIMER(kq, 1, 5000, &ev, &call);
    CHECK_EQ_INT(ev.data, 1);
    CHECK(ev.flags & EV_ONESHOT);
    CHECK(call.after - start.before >= 20 * NS_PER_MS);
    CHECK_SILENCE(kq, 1, 100);
    CHECK_ERR(terr(kq, 1, EV_DELETE, 0, 0), ENOENT);
    CHECK_ERR(terr(kq, 1, EV_ENABLE, 0, 0), ENOENT);
    /* Expired while disabled: returned once on EV_ENABLE, then deleted. */
    TSET(kq, 2, EV_ADD | EV_ONESHOT | EV_DISABLE, NOTE_MSECONDS, 5);
    busy_ns(20 * NS_PER_MS);
    CHECK_NO_EVENT(kq);
    TSET(kq, 2, EV_ENABLE, 0, 0);
    CHECK_ONE_EVENT(kq, &ev);
    CHECK_EQ_INT(ev.ident, 2);
    CHECK_EQ_INT(ev.data, 1);
    CHECK_ERR(terr(kq, 2, EV_DELETE, 0, 0), ENOENT);
    close(kq);
}

/* ---- timing -------------------------------------------------------------------------- */

TEST(test_timer_never_early_clock_monotonic) {
    enum { COUNT = 100 };
    int kq = kq_new();
    int64_t due[COUNT];
    for (int i = 0; i < COUNT; i++) {
        int64_t delay = 1000000 + (int64_t)i * 370123; /* odd ns delays, 1 to ~38 ms */
        stamp s = TSET(kq, i, EV_ADD | EV_ONESHOT, NOTE_NSECONDS, delay);
        due[i] = s.before + delay;
    }
    int fired[COUNT] = {0};
    int total = 0;
    int64_t deadline = kq_now_ns() + 10 * NS_PER_S;
    while (total < COUNT && kq_now_ns() < deadline) {
        struct kevent ev[64];
        int n = KQ_WAIT(kq, ev, 64, 1000);
        int64_t after = kq_now_ns();
        for (int k = 0; k < n; k++) {
            int i = (int)ev[k].ident;
            CHECK_MSG(i >= 0 && i < COUNT && !fired[i], "unexpected or repeated %s", kq_ev_str(&ev[k]));
            fired[i] = 1;
            total++;
            CHECK_MSG(after >= due[i], "timer %d fired %" PRId64 " ns early", i, due[i] - after);
        }
    }
    CHECK_EQ_INT(total, COUNT);
    /* Periodic, in every unit: the count never runs ahead of elapsed time. */
    stamp start = TSET(kq, 1000, EV_ADD, NOTE_NSECONDS, 3333333);
    TSET(kq, 1001, EV_ADD, NOTE_USECONDS, 3334);
    TSET(kq, 1002, EV_ADD, NOTE_MSECONDS, 4);
    const int64_t periods[3] = {3333333, 3334000, 4000000};
    int64_t totals[3] = {0, 0, 0};
    int64_t end = kq_now_ns() + 200 * NS_PER_MS;
    while (kq_now_ns() < end) {
        struct kevent ev[8];
        int n = KQ_WAIT(kq, ev, 8, 10);
        int64_t after = kq_now_ns();
        for (int k = 0; k < n; k++) {
            int i = (int)ev[k].ident - 1000;
            CHECK(i >= 0 && i < 3);
            totals[i] += ev[k].data;
            int64_t most = (after - start.before) / periods[i];
            CHECK_MSG(totals[i] <= most, "timer %d: %" PRId64 " expirations counted, %" PRId64 " due", 1000 + i,
                      totals[i], most);
        }
    }
    close(kq);
}

TEST(test_timer_periodic_no_drift) {
    const int64_t period = 5 * NS_PER_MS;
    int kq = kq_new();
    stamp start = TSET(kq, 1, EV_ADD, NOTE_NSECONDS, period);
    int64_t total = 0;
    stamp call = {0, 0};
    for (int i = 0; i < 150; i++) {
        struct kevent ev;
        NEXT_TIMER(kq, 1, 2000, &ev, &call);
        total += ev.data;
        CHECK_MSG(total <= (call.after - start.before) / period, "early");
        /* Work after each event, longer than a period: the next expiry is retrieved late,
         * which must not shift the schedule. */
        busy_ns(period + period / 3);
    }
    /* On schedule (start + n x period) the count is elapsed / period; a timer rescheduled a
     * period after each late retrieval would be ~50 expirations behind. */
    CHECK_COUNT(total, start, call, period);
    close(kq);
}

/* ---- descriptors --------------------------------------------------------------------- */

TEST(test_timer_constant_descriptors_per_kqueue) {
    int base = kq_fd_count();
    int kq = kq_new();
    int64_t wall = real_ns() / NS_PER_S;
    /* One timer on each clock first (the timerfds are created on first use). */
    TSET(kq, 0, EV_ADD, NOTE_SECONDS, 3600);
    TSET(kq, 1, EV_ADD, NOTE_SECONDS | NOTE_ABSTIME, wall + 3600);
    int one_each = kq_fd_count();
    CHECK_MSG(one_each - base <= 8, "a kqueue with two timers holds %d descriptors", one_each - base);
    enum { N = 10000 };
    static struct kevent changes[N];
    for (int i = 2; i < N; i++) {
        if (i % 2)
            EV_SET(&changes[i], i, EVFILT_TIMER, EV_ADD, NOTE_SECONDS | NOTE_ABSTIME, wall + 3600 + i, NULL);
        else
            EV_SET(&changes[i], i, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 3600 + i, NULL);
    }
    CHECK_EQ_INT(CHECK_SYS(kevent(kq, changes + 2, N - 2, NULL, 0, NULL)), 0);
    int all = kq_fd_count();
    CHECK_MSG(all == one_each, "10,000 timers: %d descriptors, with one timer per clock: %d", all, one_each);
    /* Short timers firing in bulk do not open descriptors either. */
    for (int i = 0; i < 1000; i++) EV_SET(&changes[i], 20000 + i, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_USECONDS, i, NULL);
    CHECK_SYS(kevent(kq, changes, 1000, NULL, 0, NULL));
    int got = 0;
    int64_t deadline = kq_now_ns() + 5 * NS_PER_S;
    while (got < 1000 && kq_now_ns() < deadline) {
        struct kevent ev[256];
        got += KQ_WAIT(kq, ev, 256, 1000);
    }
    CHECK_EQ_INT(got, 1000);
    CHECK_EQ_INT(kq_fd_count(), one_each);
    close(kq);
    CHECK_EQ_INT(kq_fd_count(), base);
}

RUN_TESTS()
