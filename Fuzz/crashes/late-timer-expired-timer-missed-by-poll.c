/* A zero-timeout poll with room for everything misses a timer that expired before the call
 * (its expiry is processed after the user event was drained in the same scan, and deferred).
 * cc -I Sources/CKQueue/include Fuzz/crashes/late-timer-expired-timer-missed-by-poll.c \
 *    -L .build/debug -Wl,-rpath,$PWD/.build/debug -lkqueue -o /tmp/late-timer && /tmp/late-timer */
#include <sys/event.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    struct kevent c[2], ev[8];
    EV_SET(&c[0], 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL);                /* pending */
    EV_SET(&c[1], 2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, NOTE_NSECONDS, 0, NULL); /* fires at once */
    kevent(kq, c, 2, NULL, 0, NULL);
    usleep(10000); /* the timer expired long ago */
    struct timespec zero = {0, 0};
    int n = kevent(kq, NULL, 0, ev, 8, &zero);
    printf("poll with room for 8: %d event(s)%s\n", n, n == 2 ? "" : " -- expected 2 (USER, TIMER)");
    return n == 2 ? 0 : 1;
}
