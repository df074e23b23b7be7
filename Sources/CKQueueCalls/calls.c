#include "CKQueueCalls.h"

int kq_call_kqueue(void) { return kqueue(); }

int kq_call_kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
                   int nevents, const struct timespec *timeout) {
    return kevent(kq, changelist, nchanges, eventlist, nevents, timeout);
}
