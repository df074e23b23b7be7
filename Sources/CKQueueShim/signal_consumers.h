/*
 * Between signals.c and the read interposer (socket_errors.c) and the close interposers
 * (shim.c): reads of the application's own signalfds dequeue signals that EVFILT_SIGNAL may
 * have counted while they were pending. Private to CKQueueShim.
 */
#ifndef CKQUEUE_SHIM_SIGNAL_CONSUMERS_H
#define CKQUEUE_SHIM_SIGNAL_CONSUMERS_H

#include <stdatomic.h>
#include <sys/types.h>

/* Nonzero once the application created a signalfd: until then reads pay one relaxed load. */
extern _Atomic int kq_shim_application_signalfds_exist;

/* After a successful read of `length` bytes from `fd` into `buffer`: if `fd` is one of the
 * application's signalfds, each record is a dequeued signal. */
void kq_shim_signalfd_was_read(int fd, const void *buffer, ssize_t length);

/* `fd` is being closed (or replaced by dup2/dup3): it is no longer a signalfd. */
void kq_shim_signalfd_forget(int fd);

/* One past the highest number that may be one of the application's signalfds (0 while it
 * has none): what close_range's interposer must walk. */
size_t kq_shim_signalfd_number_limit(void);

#endif
