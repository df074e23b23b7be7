#include "CMallocCounter.h"

#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>

/* glibc's own allocator, exported by libc.so.6 (GLIBC_2.2.5). */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

static atomic_int counting;
static atomic_uint_fast64_t mallocs;
static atomic_uint_fast64_t frees;

void chain_malloc_counting(int enabled) { atomic_store_explicit(&counting, enabled, memory_order_relaxed); }
void chain_malloc_reset(void) {
    atomic_store_explicit(&mallocs, 0, memory_order_relaxed);
    atomic_store_explicit(&frees, 0, memory_order_relaxed);
}
uint64_t chain_malloc_count(void) { return atomic_load_explicit(&mallocs, memory_order_relaxed); }
uint64_t chain_free_count(void) { return atomic_load_explicit(&frees, memory_order_relaxed); }

static inline void count_malloc(void) {
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&mallocs, 1, memory_order_relaxed);
}
static inline void count_free(void *pointer) {
    if (pointer && atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
}

void *malloc(size_t size) {
    count_malloc();
    return __libc_malloc(size);
}
void *calloc(size_t count, size_t size) {
    count_malloc();
    return __libc_calloc(count, size);
}
void *realloc(void *pointer, size_t size) {
    if (pointer == NULL || size > 0) count_malloc();
    if (pointer != NULL && size == 0) count_free(pointer);
    return __libc_realloc(pointer, size);
}
void free(void *pointer) {
    count_free(pointer);
    __libc_free(pointer);
}
void *memalign(size_t alignment, size_t size) {
    count_malloc();
    return __libc_memalign(alignment, size);
}
void *aligned_alloc(size_t alignment, size_t size) {
    count_malloc();
    return __libc_memalign(alignment, size);
}
int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count_malloc();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL && size != 0) return ENOMEM;
    *result = pointer;
    return 0;
}
void *valloc(size_t size) {
    count_malloc();
    return __libc_valloc(size);
}
void *pvalloc(size_t size) {
    count_malloc();
    return __libc_pvalloc(size);
}
