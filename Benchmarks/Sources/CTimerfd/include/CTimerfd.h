/* <sys/timerfd.h> for the one-timerfd-per-timer baseline (Glibc's Swift module lacks it),
 * and close(2) as a raw syscall so the baseline does not pass through libkqueue.so's
 * close() interposer. */
#ifndef CTIMERFD_H
#define CTIMERFD_H
#include <sys/timerfd.h>

int timer_baseline_raw_close(int fd);

#endif
