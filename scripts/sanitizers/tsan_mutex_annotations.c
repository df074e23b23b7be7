/*
 * ThreadSanitizer annotations for Swift's Synchronization.Mutex on Linux, preloaded
 * (LD_PRELOAD) into the TSan test processes by scripts/sanitize.sh. Test infrastructure
 * only: nothing of the library is changed and release builds never see this file.
 *
 * Why: Mutex's uncontended lock and unlock are inlined compare-and-swaps, which TSan
 * instruments and understands. Its contended paths (_lockSlow, _tryLockSlow, _unlockSlow)
 * live in libswiftSynchronization.so, which is not instrumented and hands the lock over
 * through futex(2), which TSan does not model. So whenever two threads really compete for
 * a kqueue's lock, TSan sees no happens-before edge and reports every access made under the
 * lock as a race: a false positive (seen as "Swift access race" pairs whose both stacks are
 * inside Mutex.withLock closures, e.g. KQueueCore.wait vs KQueueRegistry.descriptorClosing).
 *
 * What: these wrappers interpose the three slow-path entry points, call the real ones
 * (dlsym RTLD_NEXT) and tell TSan what they did: __tsan_acquire(lock) after the lock is
 * taken, __tsan_release(lock) before it is given up. The address is the mutex word itself,
 * the same one the inlined compare-and-swaps use, so fast and slow paths synchronize with
 * each other. The TSan entry points are weak: in a process without TSan the wrappers only
 * forward.
 *
 * Calling convention (checked against the call sites the Swift compiler emits): swiftcall,
 * `self` (the address of the _MutexHandle, i.e. of its Atomic<UInt32> word) in the Swift
 * context register (r13 on x86_64), `selfId` (the caller's tid) as the first argument.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if !__has_attribute(swiftcall)
#error "build with clang (the Swift toolchain's): swiftcall is needed"
#endif

#define SWIFTCALL __attribute__((swiftcall))
#define SELF __attribute__((swift_context))

extern void __tsan_acquire(void *addr) __attribute__((weak));
extern void __tsan_release(void *addr) __attribute__((weak));

#define LOCK_SLOW "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define TRY_LOCK_SLOW "$s15Synchronization12_MutexHandleV12_tryLockSlowSbyF"
#define UNLOCK_SLOW "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"

typedef SWIFTCALL void (*lock_slow_fn)(uint32_t, void *SELF);
typedef SWIFTCALL bool (*try_lock_slow_fn)(void *SELF);
typedef SWIFTCALL void (*unlock_slow_fn)(void *SELF);

static void *real_symbol(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (p == NULL) {
        fprintf(stderr, "tsan_mutex_annotations: %s not found: %s\n", name, dlerror());
        abort();
    }
    return p;
}

SWIFTCALL void tsan_lock_slow(uint32_t self_id, void *SELF self) __asm__(LOCK_SLOW);
SWIFTCALL void tsan_lock_slow(uint32_t self_id, void *SELF self) {
    static lock_slow_fn real;
    if (real == NULL) real = (lock_slow_fn)real_symbol(LOCK_SLOW);
    real(self_id, self);
    if (__tsan_acquire) __tsan_acquire(self);
}

SWIFTCALL bool tsan_try_lock_slow(void *SELF self) __asm__(TRY_LOCK_SLOW);
SWIFTCALL bool tsan_try_lock_slow(void *SELF self) {
    static try_lock_slow_fn real;
    if (real == NULL) real = (try_lock_slow_fn)real_symbol(TRY_LOCK_SLOW);
    bool taken = real(self);
    if (taken && __tsan_acquire) __tsan_acquire(self);
    return taken;
}

SWIFTCALL void tsan_unlock_slow(void *SELF self) __asm__(UNLOCK_SLOW);
SWIFTCALL void tsan_unlock_slow(void *SELF self) {
    static unlock_slow_fn real;
    if (real == NULL) real = (unlock_slow_fn)real_symbol(UNLOCK_SLOW);
    if (__tsan_release) __tsan_release(self);
    real(self);
}
