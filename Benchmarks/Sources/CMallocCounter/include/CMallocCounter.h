/*
 * A malloc-family call counter for ChainRatio: this target defines malloc, calloc, realloc,
 * free, posix_memalign, aligned_alloc, memalign, valloc and pvalloc, so every allocation of
 * the process (the Swift runtime's, libkqueue.so's, glibc's own) goes through it and then to
 * glibc's allocator through its exported __libc_* entry points. Counting is off until
 * chain_malloc_counting(1); the counters are process-wide relaxed atomics.
 */
#ifndef CMALLOC_COUNTER_H
#define CMALLOC_COUNTER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void chain_malloc_counting(int enabled);
void chain_malloc_reset(void);
/* malloc, calloc, the aligned variants, and realloc that allocates (NULL or growing). */
uint64_t chain_malloc_count(void);
uint64_t chain_free_count(void);

#ifdef __cplusplus
}
#endif

#endif
