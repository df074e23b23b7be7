/*
 * The resource snapshot shared by the stress_*.c programs: descriptors open in the process
 * and resident memory, measured after malloc_trim(0), and the check that both are back to
 * where they started. Include after kqtest.h.
 */
#ifndef KQ_STRESS_H
#define KQ_STRESS_H

#include <dlfcn.h>
#include <malloc.h>


/*
 * Tolerances, with both measurements taken after malloc_trim(0) and after a warm-up run of
 * the same code (so one-time allocations: Swift metadata, the registry, thread stacks and
 * malloc arenas, first use of inotify/timerfd, already exist before the first one):
 *   - anonymous resident memory (heap, stacks: where a leak shows): 256 KiB. Allowed to stay:
 *     allocator bookkeeping and fragmentation (glibc keeps partly used pages of its arenas)
 *     and capacity the library keeps on purpose (grown tables and buffer pools are not
 *     shrunk). A leak of 32 bytes per iteration over 10,000 iterations (312 KiB) exceeds it.
 *   - all resident memory: 1 MiB; it also counts pages of shared libraries' code and data
 *     touched for the first time, which are not allocations at all.
 * Measured here (2 cores, no sanitizer): anonymous +0 to +20 KiB, all +56 to +152 KiB.
 */
#define ANON_TOLERANCE_KB 256L
#define RSS_TOLERANCE_KB 1024L

struct stress_snapshot {
    int fds;
    long rss_kb;  /* resident (statm field 2) */
    long anon_kb; /* resident minus file-backed/shared (statm fields 2 - 3): heap, stacks */
};

KQ_UNUSED static struct stress_snapshot stress_snapshot(void) {
    malloc_trim(0);
    struct stress_snapshot s;
    s.fds = kq_fd_count();
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK_MSG(f != NULL, "fopen(/proc/self/statm): %s", strerror(errno));
    long size = 0, resident = 0, shared = 0;
    int n = fscanf(f, "%ld %ld %ld", &size, &resident, &shared);
    fclose(f);
    CHECK_MSG(n == 3, "cannot parse /proc/self/statm");
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    s.rss_kb = resident * page_kb;
    s.anon_kb = (resident - shared) * page_kb;
    return s;
}

/* Non-NULL (the reason) when resident memory says nothing about leaks in this process: a
 * sanitizer runtime (quarantine, shadow memory) or valgrind is present. */
KQ_UNUSED static const char *stress_rss_unreliable(void) {
    if (dlsym(RTLD_DEFAULT, "__asan_init") != NULL) return "AddressSanitizer runtime present";
    if (dlsym(RTLD_DEFAULT, "__tsan_init") != NULL) return "ThreadSanitizer runtime present";
    if (dlsym(RTLD_DEFAULT, "__msan_init") != NULL) return "MemorySanitizer runtime present";
    const char *preload = getenv("LD_PRELOAD");
    if (preload != NULL && strstr(preload, "vgpreload") != NULL) return "running under valgrind";
    const char *off = getenv("KQ_STRESS_NO_RSS");
    if (off != NULL && off[0] != 0 && strcmp(off, "0") != 0) return "KQ_STRESS_NO_RSS is set";
    return NULL;
}

KQ_UNUSED static void stress_check_back_to_start(const char *what, struct stress_snapshot before,
                                       struct stress_snapshot after) {
    const char *unreliable = stress_rss_unreliable();
    printf("%s: descriptors before %d after %d; resident memory before %ld KiB after %ld KiB "
           "(delta %+ld KiB, tolerance %ld KiB; anonymous %ld -> %ld KiB, tolerance %ld KiB%s%s)\n",
           what, before.fds, after.fds, before.rss_kb, after.rss_kb, after.rss_kb - before.rss_kb,
           RSS_TOLERANCE_KB, before.anon_kb, after.anon_kb, ANON_TOLERANCE_KB, unreliable ? "; not checked: " : "",
           unreliable ? unreliable : "");
    fflush(stdout);
    CHECK_MSG(after.fds == before.fds, "%s: %d descriptors open after, %d before", what, after.fds, before.fds);
    if (unreliable == NULL) {
        CHECK_MSG(after.anon_kb - before.anon_kb <= ANON_TOLERANCE_KB,
                  "%s: anonymous resident memory grew by %ld KiB (tolerance %ld KiB)", what,
                  after.anon_kb - before.anon_kb, ANON_TOLERANCE_KB);
        CHECK_MSG(after.rss_kb - before.rss_kb <= RSS_TOLERANCE_KB,
                  "%s: resident memory grew by %ld KiB (tolerance %ld KiB)", what,
                  after.rss_kb - before.rss_kb, RSS_TOLERANCE_KB);
    }
}

#endif /* KQ_STRESS_H */
