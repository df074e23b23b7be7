/*
 * Interposers call the definition they replace (libc's, or a sanitizer's) through
 * NEXT_SYMBOL(name, type): it defines `static type next_name(void)`, which looks the next
 * `name` up with dlsym(RTLD_NEXT) once and returns it (NULL if there is none).
 * Private to CKQueueShim.
 */
#ifndef CKQUEUE_SHIM_NEXT_SYMBOL_H
#define CKQUEUE_SHIM_NEXT_SYMBOL_H

#include <dlfcn.h>
#include <stdatomic.h>

#define NEXT_SYMBOL(name, type)                                                \
    static _Atomic(type) cached_##name;                                         \
    static type next_##name(void) {                                            \
        type fn = atomic_load_explicit(&cached_##name, memory_order_relaxed);  \
        if (fn == NULL) {                                                      \
            fn = (type)dlsym(RTLD_NEXT, #name);                                \
            atomic_store_explicit(&cached_##name, fn, memory_order_relaxed);   \
        }                                                                      \
        return fn;                                                             \
    }

#endif
