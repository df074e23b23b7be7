/*
 * What shim.c's close(2), dup2(2), dup3(2) and close_range(2) interposers and its fork hooks
 * share with procdesc.c (process descriptors). Private to CKQueueShim.
 */
#ifndef CKQUEUE_SHIM_PROCDESC_HOOKS_H
#define CKQUEUE_SHIM_PROCDESC_HOOKS_H

#include <stddef.h>

/* Before `fd` is closed (close, the target of dup2/dup3, close_range): forgets it as a
 * process descriptor number. Returns 1 when it was one; then call
 * kq_procdesc_numbers_closed() once the real call returned. One atomic load while no
 * process descriptor exists. */
int kq_procdesc_number_closing(int fd);
/* After the real close: a process descriptor without a number left in this process is
 * checked; if no reference to it is left anywhere, its last close is acted on. */
void kq_procdesc_numbers_closed(void);
/* One past the highest number that may be a process descriptor (0 while none exists): what
 * close_range's interposer must walk. */
size_t kq_procdesc_number_limit(void);
/* dup2/dup3 made `to` refer to what `from` refers to. */
void kq_procdesc_number_copied(int from, int to);

/* The library's fork handlers (KQueueRegistry's), installed through
 * kq_shim_install_fork_hooks: pdfork runs them around its clone3 as fork() does. */
void kq_shim_run_fork_prepare(void);
void kq_shim_run_fork_parent(void);
void kq_shim_run_fork_child(void);

#endif
