/*
 * The hot path allocates nothing: once a kqueue has seen its first events, a kevent() call
 * that collects READ events (persistent, EV_CLEAR and EV_DISPATCH re-enabled) or WRITE
 * events, or USER triggers, makes no malloc, calloc, realloc or aligned allocation, on
 * either readiness backend (CI runs this program with KQUEUE_BACKEND=io_uring too).
 *
 * The program defines malloc and its family, counting the calls while a test asks, and
 * forwards to glibc's allocator; the library's allocations (Swift's runtime included) resolve
 * to these. Under a sanitizer, whose runtime owns malloc, the tests skip.
 */
#include "kqtest.h"

#include <stdatomic.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

#ifndef SANITIZED
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static atomic_int counting;
static atomic_long allocations;

static void count(void) {
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

void *malloc(size_t size) {
    count();
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size) {
    count();
    return __libc_calloc(n, size);
}
void *realloc(void *pointer, size_t size) {
    count();
    return __libc_realloc(pointer, size);
}
void *memalign(size_t alignment, size_t size) {
    count();
    return __libc_memalign(alignment, size);
}
void *aligned_alloc(size_t alignment, size_t size) {
    count();
    return __libc_memalign(alignment, size);
}
int posix_memalign(void **out, size_t alignment, size_t size) {
    count();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}
void free(void *pointer) { __libc_free(pointer); }

static void start_counting(void) {
    atomic_store(&allocations, 0);
    atomic_store(&counting, 1);
}
static long stop_counting(void) {
    atomic_store(&counting, 0);
    return atomic_load(&allocations);
}
#endif

enum { pairs = 32, rounds = 2000 };

/* Moves one byte through each of `pairs` socket pairs per round, collecting READ events with
 * the given flags (EV_DISPATCH ones re-enabled by the next call's changelist), and returns the
 * allocations of the last `rounds` rounds (the first ones warm the tables up). */
KQ_UNUSED static long read_rounds(unsigned short flags) {
    int sv[pairs][2];
    struct kevent changes[pairs], events[pairs];
    for (int i = 0; i < pairs; i++) {
        kq_socketpair(SOCK_STREAM, sv[i]);
        EV_SET(&changes[i], sv[i][0], EVFILT_READ, EV_ADD | flags, 0, 0, (void *)(intptr_t)i);
    }
#ifndef SANITIZED
    /* The counter sees the library's allocations: a new kqueue's tables are allocated. */
    start_counting();
#endif
    int kq = kq_new();
    CHECK_EQ_INT(kevent(kq, changes, pairs, NULL, 0, NULL), 0);
#ifndef SANITIZED
    long setup = stop_counting();
    CHECK_MSG(setup > 0, "no allocation counted while a kqueue was created and filled");
#endif
    long counted = 0;
    for (int round = 0; round < 2 * rounds; round++) {
        if (round == rounds) {
#ifndef SANITIZED
            start_counting();
#endif
        }
        char byte = 'x';
        for (int i = 0; i < pairs; i++) CHECK_EQ_INT(write(sv[i][1], &byte, 1), 1);
        int nchanges = 0;
        int got = 0;
        while (got < pairs) {
            struct timespec limit = {5, 0};
            int n = kevent(kq, changes, nchanges, events, pairs, &limit);
            CHECK_MSG(n > 0, "kevent returned %d (errno %s)", n, kq_errname(errno));
            nchanges = 0;
            for (int k = 0; k < n; k++) {
                int i = (int)(intptr_t)events[k].udata;
                CHECK_EQ_INT(read(sv[i][0], &byte, 1), 1);
                if (flags & EV_DISPATCH) EV_SET(&changes[nchanges++], sv[i][0], EVFILT_READ, EV_ENABLE, 0, 0, events[k].udata);
            }
            got += n;
        }
        /* The last re-enables go in with the next round's first call. */
        if (nchanges > 0) CHECK_EQ_INT(kevent(kq, changes, nchanges, NULL, 0, NULL), 0);
    }
#ifndef SANITIZED
    counted = stop_counting();
#endif
    for (int i = 0; i < pairs; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    close(kq);
    return counted;
}

TEST(test_allocations_none_per_event_for_persistent_read_registrations) {
#ifdef SANITIZED
    SKIP("a sanitizer's runtime owns malloc");
#else
    long n = read_rounds(0);
    CHECK_MSG(n == 0, "%ld allocations in %d events", n, pairs * rounds);
#endif
}

TEST(test_allocations_none_per_event_for_ev_clear_read_registrations) {
#ifdef SANITIZED
    SKIP("a sanitizer's runtime owns malloc");
#else
    long n = read_rounds(EV_CLEAR);
    CHECK_MSG(n == 0, "%ld allocations in %d events", n, pairs * rounds);
#endif
}

TEST(test_allocations_none_per_event_for_ev_dispatch_read_registrations_re_enabled) {
#ifdef SANITIZED
    SKIP("a sanitizer's runtime owns malloc");
#else
    long n = read_rounds(EV_DISPATCH);
    CHECK_MSG(n == 0, "%ld allocations in %d events", n, pairs * rounds);
#endif
}

TEST(test_allocations_none_per_event_for_user_triggers_and_writable_sockets) {
#ifdef SANITIZED
    SKIP("a sanitizer's runtime owns malloc");
#else
    int kq = kq_new();
    int sv[2];
    kq_socketpair(SOCK_STREAM, sv);
    struct kevent change[2], events[4];
    EV_SET(&change[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    EV_SET(&change[1], sv[0], EVFILT_WRITE, EV_ADD | EV_DISPATCH, 0, 0, NULL);
    CHECK_EQ_INT(kevent(kq, change, 2, NULL, 0, NULL), 0);
    for (int round = 0; round < 2 * rounds; round++) {
        if (round == rounds) start_counting();
        EV_SET(&change[0], 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
        EV_SET(&change[1], sv[0], EVFILT_WRITE, EV_ENABLE, 0, 0, NULL);
        struct timespec limit = {5, 0};
        int got = 0;
        int n = kevent(kq, change, 2, events, 4, &limit);
        while (n > 0 && (got += n) < 2) n = kevent(kq, NULL, 0, events, 4, &limit);
        CHECK_MSG(got == 2, "round %d: %d events (errno %s)", round, got, kq_errname(errno));
    }
    long n = stop_counting();
    CHECK_MSG(n == 0, "%ld allocations in %d events", n, 2 * rounds);
    close(sv[0]);
    close(sv[1]);
    close(kq);
#endif
}

RUN_TESTS()
