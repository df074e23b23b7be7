/*
 * Linked into the C test programs of the AddressSanitizer stage (scripts/c-tests.sh
 * --sanitize address); test infrastructure only.
 *
 * kqtest.h runs every test in a forked child that ends with _exit(), and _exit() skips
 * LeakSanitizer's at-exit check, so without this a leak made by one test (or by the library
 * during it) would go unnoticed. This _exit() runs the leak check first (the report goes to
 * stderr) and turns a clean exit into status 23 when something leaked, so the harness reports
 * that test as failed. Non-zero statuses (failures, the watchdog) are passed through as they
 * are. glibc's own exit path calls its internal alias, not this symbol.
 *
 * Only in the test processes themselves (forked once from the runner, which never calls the
 * library), not in processes a test forks in turn: those inherit the test's kqueues, and the
 * library's fork-child handler deliberately keeps inherited kqueue objects alive without a
 * reference (KQueueRegistry.forkChild: no deinit may run against state a lost parent thread
 * may have locked), which LeakSanitizer would report as a leak of every inherited kqueue.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sanitizer/lsan_interface.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fork_depth;

static void count_fork(void) { fork_depth++; }

__attribute__((constructor)) static void install(void) { pthread_atfork(NULL, NULL, count_fork); }

void _exit(int status) {
    if (status == 0 && fork_depth <= 1 && __lsan_do_recoverable_leak_check() != 0) status = 23;
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}
