/*
 * scripts/check-clib.sh's probe of the deployable library's two files (docs/C-LIBRARY.md,
 * "Two files"). Prints one line and exits 0 when the case holds, else prints why and exits 1.
 *
 *   clib-probe works           kqueue() + a user event round trip
 *   clib-probe works-after-cd  the same after chdir("/") (the library found through a
 *                              relative LD_LIBRARY_PATH entry: the engine must still be found)
 *   clib-probe elibacc         the engine is missing: kqueue()/kqueuex() fail with ELIBACC
 *                              (every time), kevent() with EBADF; the interposers still work
 *   clib-probe dlopen LIBRARY  built without -lkqueue (-DKQ_PROBE_DLOPEN): dlopen(LIBRARY,
 *                              RTLD_NOW | RTLD_LOCAL), then kqueue() + a user event through dlsym
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*kqueue_fn)(void);
typedef int (*kevent_fn)(int, const struct kevent *, int, struct kevent *, int, const struct timespec *);

static int round_trip(kqueue_fn kq_create, kevent_fn kev) {
    int kq = kq_create();
    if (kq < 0) {
        printf("kqueue() failed: %s\n", strerror(errno));
        return 1;
    }
    struct kevent change, event;
    EV_SET(&change, 7, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER, 0, (void *)(uintptr_t)7);
    struct timespec zero = {0, 0};
    int n = kev(kq, &change, 1, &event, 1, &zero);
    if (n != 1 || event.ident != 7 || event.filter != EVFILT_USER) {
        printf("kevent() returned %d (%s), not the user event\n", n, n < 0 ? strerror(errno) : "-");
        return 1;
    }
    close(kq);
    printf("kqueue and a user event work\n");
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
#ifdef KQ_PROBE_DLOPEN
    if (strcmp(mode, "dlopen") == 0 && argc > 2) {
        void *library = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        if (library == NULL) {
            printf("dlopen: %s\n", dlerror());
            return 1;
        }
        kqueue_fn kq_create = (kqueue_fn)dlsym(library, "kqueue");
        kevent_fn kev = (kevent_fn)dlsym(library, "kevent");
        if (kq_create == NULL || kev == NULL) {
            printf("dlsym: no kqueue or kevent\n");
            return 1;
        }
        return round_trip(kq_create, kev);
    }
#else
    if (strcmp(mode, "works") == 0) return round_trip(kqueue, kevent);
    if (strcmp(mode, "works-after-cd") == 0) {
        if (chdir("/") != 0) return 1;
        return round_trip(kqueue, kevent);
    }
    if (strcmp(mode, "elibacc") == 0) {
        errno = 0;
        int before = kevent(0, NULL, 0, NULL, 0, NULL);
        int before_errno = errno;
        int first = kqueue(), first_errno = errno;
        int again = kqueue(), again_errno = errno;
        int flagged = kqueuex(KQUEUE_CLOEXEC), flagged_errno = errno;
        int after = kevent(3, NULL, 0, NULL, 0, NULL), after_errno = errno;
        int fds[2];
        int interposers = pipe(fds) == 0 && write(fds[1], "x", 1) == 1 && close(fds[1]) == 0 && close(fds[0]) == 0;
        if (before == -1 && before_errno == EBADF && first == -1 && first_errno == ELIBACC && again == -1 &&
            again_errno == ELIBACC && flagged == -1 && flagged_errno == ELIBACC && after == -1 && after_errno == EBADF &&
            interposers) {
            printf("without the engine: kqueue() and kqueuex() fail with ELIBACC, kevent() with EBADF\n");
            return 0;
        }
        printf("without the engine: kevent %d/%d, kqueue %d/%d then %d/%d, kqueuex %d/%d, kevent %d/%d, "
               "pipe/write/close %s\n",
               before, before_errno, first, first_errno, again, again_errno, flagged, flagged_errno, after,
               after_errno, interposers ? "ok" : "failed");
        return 1;
    }
#endif
    printf("usage: clib-probe works|works-after-cd|elibacc|dlopen LIBRARY\n");
    return 1;
}
