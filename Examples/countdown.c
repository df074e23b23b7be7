/*
 * A FreeBSD kqueue program, unchanged: a periodic timer counts down three ticks while a user
 * event, triggered from the same loop, says when it is done. Build it against libkqueue.so
 * as the README shows; it prints a line per tick, then "done", and exits 0.
 */
#include <sys/event.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    if (kq == -1) err(1, "kqueue");
    struct kevent changes[2];
    EV_SET(&changes[0], 1, EVFILT_TIMER, EV_ADD, NOTE_MSECONDS, 50, NULL);   /* every 50 ms */
    EV_SET(&changes[1], 2, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    if (kevent(kq, changes, 2, NULL, 0, NULL) == -1) err(1, "kevent: register");

    int ticks = 3;
    for (;;) {
        struct kevent event;
        struct timespec timeout = {5, 0};
        int n = kevent(kq, NULL, 0, &event, 1, &timeout);
        if (n == -1) err(1, "kevent: wait");
        if (n == 0) errx(1, "no event within 5 s");
        if (event.filter == EVFILT_TIMER) {
            ticks -= (int)event.data;  /* expirations since the last one returned */
            printf("tick (%d left)\n", ticks > 0 ? ticks : 0);
            if (ticks <= 0) {
                struct kevent trigger;
                EV_SET(&trigger, 2, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
                if (kevent(kq, &trigger, 1, NULL, 0, NULL) == -1) err(1, "kevent: trigger");
            }
        } else if (event.filter == EVFILT_USER) {
            printf("done\n");
            break;
        }
    }
    close(kq);
    return 0;
}
