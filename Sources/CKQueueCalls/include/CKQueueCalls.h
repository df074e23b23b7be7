/*
 * Calls into the C ABI exactly as a C program makes them, for Swift code that must measure
 * or exercise <sys/event.h>'s kqueue() and kevent() (Swift cannot call the function kevent
 * directly: the name resolves to struct kevent). Link with the KQueueCABI target.
 */
#ifndef CKQUEUE_CALLS_H
#define CKQUEUE_CALLS_H

#include <sys/event.h>

int kq_call_kqueue(void);
int kq_call_kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
                   int nevents, const struct timespec *timeout);

#endif
