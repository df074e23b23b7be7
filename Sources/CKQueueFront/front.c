/*
 * The front of the deployable C library, libkqueue.so.12 (docs/C-LIBRARY.md, "Two files").
 * Built only by scripts/build-clib.sh, with the C shim's objects (Sources/CKQueueShim: the
 * interposers, the signal observer, the descriptor tables); not a SwiftPM target.
 *
 * kqueue(), kqueuex() and kevent() are defined here. The Swift engine is a second library,
 * libkqueue-engine.so.VERSION (KQ_ENGINE_FILE), in the same directory as this one: the first
 * kqueue() or kqueuex() loads it with dlopen (RTLD_NOW | RTLD_LOCAL) and looks up its three
 * entry points; every call then goes through a function pointer. So a program that links
 * the library but has not created a kqueue yet pays nothing for the Swift runtime: the loader
 * maps and relocates only this small library at start-up.
 *
 * The engine is found next to this library, wherever that was installed: in the directory of
 * the path the dynamic loader loaded it from (dladdr) when that path is absolute, else in the
 * directory of the file mapped at this code's address (/proc/self/maps: symbolic links
 * resolved, always absolute), and last in the loader's relative path's directory (relative to
 * the working directory, which may have changed since start-up). Never through
 * LD_LIBRARY_PATH or a run path.
 *
 * The engine's references to the shim's kq_shim_* functions are resolved to this library's
 * definitions when it is loaded (they are exported for that), so the process has one copy of
 * the shim's state: signal counts, kept socket errors, the close hook. A program that loaded
 * this library with dlopen(RTLD_LOCAL) has it outside the global scope, where the engine's
 * references are looked up: it is promoted there first.
 *
 * aio.c (Sources/CKQueueAIO: the aio_* functions) is in this library too; its calls into the
 * engine (kqueue_engine_aio_*) are defined at the end of this file and go through pointers looked
 * up with the three entry points.
 *
 * If the engine cannot be loaded (missing, or its dependencies cannot be satisfied):
 * kqueue() and kqueuex() fail with ELIBACC, every time; kevent() fails with EBADF, as for any
 * descriptor that is not a kqueue (none can exist). Nothing is printed. Before the first
 * kqueue(), kevent() fails with EBADF the same way, without loading the engine.
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CKQueueShim.h"

#ifndef KQ_ENGINE_FILE
#error "KQ_ENGINE_FILE (the engine library's file name) is defined by scripts/build-clib.sh"
#endif

typedef int (*engine_kqueue_fn)(void);
typedef int (*engine_kqueuex_fn)(unsigned int);
typedef int (*engine_kevent_fn)(int, const struct kevent *, int, struct kevent *, int, const struct timespec *);

/* Written once, by load_engine under engine_once; NULL when the engine could not be loaded. */
static engine_kqueue_fn engine_kqueue;
static engine_kqueuex_fn engine_kqueuex;
/* Read without pthread_once on kevent()'s path: published with a release store, last. */
static _Atomic(engine_kevent_fn) engine_kevent;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

/* The engine's side of aio.c's SIGEV_KEVENT requests (aio.c is in this library). Each needs a
 * kqueue, so the engine is loaded by the time one is called with a real kqueue; before that
 * (or without an engine) they answer as for a descriptor that is not a kqueue. */
struct engine_aio_calls {
    void (*submit)(int, const struct kq_aio_request *, int, uint64_t *, int *);
    int (*cancel)(int, uint64_t);
    void (*release)(int, uintptr_t, short, uint64_t);
    void (*poll)(int);
    int (*wait_fd)(int);
    void (*mark_done)(int, uint64_t);
};
/* Published with a release store once every member is set. */
static _Atomic(const struct engine_aio_calls *) engine_aio;
static struct engine_aio_calls engine_aio_storage;

/* Opens DIRECTORY/KQ_ENGINE_FILE, where DIRECTORY is the first `length` bytes of `path`. */
static void *open_engine_in(const char *path, size_t length) {
    static const char file[] = KQ_ENGINE_FILE;
    char engine[PATH_MAX];
    if (length + 1 + sizeof file > sizeof engine) return NULL;
    memcpy(engine, path, length);
    engine[length] = '/';
    memcpy(engine + length + 1, file, sizeof file);
    return dlopen(engine, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
}

/* The length of `path`'s directory part (without the last '/'), or 0 if it has none. */
static size_t directory_length(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash == NULL ? 0 : (size_t)(slash - path);
}

/* The file mapped at `address`, from /proc/self/maps (absolute, symbolic links resolved).
 * Returns 0 and fills `path`, or -1. */
static int mapped_file(const void *address, char *path, size_t size) {
    FILE *maps = fopen("/proc/self/maps", "re");
    if (maps == NULL) return -1;
    char line[PATH_MAX + 128];
    int found = -1;
    uintptr_t target = (uintptr_t)address;
    while (fgets(line, sizeof line, maps) != NULL) {
        char *cursor;
        uintptr_t start = (uintptr_t)strtoull(line, &cursor, 16);
        if (*cursor != '-') continue;
        uintptr_t end = (uintptr_t)strtoull(cursor + 1, &cursor, 16);
        if (target < start || target >= end) continue;
        char *name = strchr(cursor, '/');
        if (name != NULL) {
            name[strcspn(name, "\n")] = 0;
            if (strlen(name) < size) {
                strcpy(path, name);
                found = 0;
            }
        }
        break;
    }
    fclose(maps);
    return found;
}

static void load_engine(void) {
    Dl_info info;
    void *engine = NULL;
    const char *front = NULL;
    if (dladdr((void *)&load_engine, &info) != 0 && info.dli_fname != NULL) {
        front = info.dli_fname;
        /* The engine resolves its kq_shim_* references in the global scope (what a lookup
         * through the main program's handle searches). A program linked with this library has
         * it there; one that loaded it with dlopen(RTLD_LOCAL) has not: then it is promoted
         * (about 12 µs, so only when needed). */
        void *global = dlopen(NULL, RTLD_NOW);
        if (global == NULL || dlsym(global, "kq_shim_set_close_hook") == NULL)
            (void)dlopen(front, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
        /* A relative path (a relative LD_LIBRARY_PATH entry) is relative to the working
         * directory at start-up, which may have changed since: tried last. */
        if (front[0] == '/') engine = open_engine_in(front, directory_length(front));
    }
    if (engine == NULL) {
        char real[PATH_MAX];
        if (mapped_file((const void *)&load_engine, real, sizeof real) == 0) {
            size_t length = directory_length(real);
            int tried = front != NULL && front[0] == '/' && directory_length(front) == length &&
                        strncmp(front, real, length) == 0;
            if (!tried) engine = open_engine_in(real, length);
        }
    }
    if (engine == NULL && front != NULL && front[0] != '/' && directory_length(front) > 0)
        engine = open_engine_in(front, directory_length(front));
    if (engine == NULL) return;
    engine_kqueue_fn kq = (engine_kqueue_fn)dlsym(engine, "kqueue_engine_kqueue");
    engine_kqueuex_fn kqx = (engine_kqueuex_fn)dlsym(engine, "kqueue_engine_kqueuex");
    engine_kevent_fn kev = (engine_kevent_fn)dlsym(engine, "kqueue_engine_kevent");
    if (kq == NULL || kqx == NULL || kev == NULL) return;
    struct engine_aio_calls *aio = &engine_aio_storage;
    *(void **)&aio->submit = dlsym(engine, "kqueue_engine_aio_submit");
    *(void **)&aio->cancel = dlsym(engine, "kqueue_engine_aio_cancel");
    *(void **)&aio->release = dlsym(engine, "kqueue_engine_aio_release");
    *(void **)&aio->poll = dlsym(engine, "kqueue_engine_aio_poll");
    *(void **)&aio->wait_fd = dlsym(engine, "kqueue_engine_aio_wait_fd");
    *(void **)&aio->mark_done = dlsym(engine, "kqueue_engine_aio_mark_done");
    if (aio->submit == NULL || aio->cancel == NULL || aio->release == NULL || aio->poll == NULL ||
        aio->wait_fd == NULL || aio->mark_done == NULL)
        return;
    atomic_store_explicit(&engine_aio, aio, memory_order_release);
    engine_kqueue = kq;
    engine_kqueuex = kqx;
    atomic_store_explicit(&engine_kevent, kev, memory_order_release);
}

int kqueue(void) {
    pthread_once(&engine_once, load_engine);
    if (engine_kqueue == NULL) {
        errno = ELIBACC;
        return -1;
    }
    return engine_kqueue();
}

int kqueuex(unsigned int flags) {
    pthread_once(&engine_once, load_engine);
    if (engine_kqueuex == NULL) {
        errno = ELIBACC;
        return -1;
    }
    return engine_kqueuex(flags);
}

/* The hot path: one acquire load (a plain load on x86-64) and an indirect tail call. */
int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist, int nevents,
           const struct timespec *timeout) {
    engine_kevent_fn fn = atomic_load_explicit(&engine_kevent, memory_order_acquire);
    if (__builtin_expect(fn == NULL, 0)) {
        errno = EBADF;
        return -1;
    }
    return fn(kq, changelist, nchanges, eventlist, nevents, timeout);
}

/* aio.c's calls into the engine (Sources/KQueueCABI/Exports.swift names them
 * kqueue_engine_aio_* in the one-file library). Hidden: not exported (scripts/libkqueue.map). */
static const struct engine_aio_calls *aio_calls(void) {
    return atomic_load_explicit(&engine_aio, memory_order_acquire);
}

void kqueue_engine_aio_submit(int kq, const struct kq_aio_request *requests, int count, uint64_t *tags, int *errors) {
    const struct engine_aio_calls *calls = aio_calls();
    if (calls != NULL) {
        calls->submit(kq, requests, count, tags, errors);
        return;
    }
    for (int i = 0; i < count; i++) {
        tags[i] = 0;
        errors[i] = EBADF;
    }
}

int kqueue_engine_aio_cancel(int kq, uint64_t tag) {
    const struct engine_aio_calls *calls = aio_calls();
    return calls != NULL ? calls->cancel(kq, tag) : -1;
}

void kqueue_engine_aio_release(int kq, uintptr_t ident, short filter, uint64_t tag) {
    const struct engine_aio_calls *calls = aio_calls();
    if (calls != NULL) calls->release(kq, ident, filter, tag);
}

void kqueue_engine_aio_poll(int kq) {
    const struct engine_aio_calls *calls = aio_calls();
    if (calls != NULL) calls->poll(kq);
}

int kqueue_engine_aio_wait_fd(int kq) {
    const struct engine_aio_calls *calls = aio_calls();
    return calls != NULL ? calls->wait_fd(kq) : -1;
}

void kqueue_engine_aio_mark_done(int kq, uint64_t tag) {
    const struct engine_aio_calls *calls = aio_calls();
    if (calls != NULL) calls->mark_done(kq, tag);
}
