/* An EV_CLEAR READ knote that was modified (here by a change with no flags) before its source
 * became ready is returned twice for one change of the source (SPEC.md 2: EV_CLEAR resets the
 * state until the source changes again).
 * cc -I Sources/CKQueue/include Fuzz/crashes/clear-repeat-modified-clear-knote-returned-twice.c \
 *    -L .build/debug -Wl,-rpath,$PWD/.build/debug -lkqueue -o /tmp/clear-repeat && /tmp/clear-repeat */
#include <sys/event.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    struct kevent c, ev[8];
    struct timespec zero = {0, 0};
    EV_SET(&c, sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
    kevent(kq, &c, 1, NULL, 0, NULL);
    EV_SET(&c, sv[0], EVFILT_READ, 0, 0, 0, NULL); /* a modification that changes nothing */
    kevent(kq, &c, 1, NULL, 0, NULL);
    shutdown(sv[1], SHUT_WR); /* the one change of the source: EOF */
    int n = kevent(kq, NULL, 0, ev, 1, &zero);
    printf("poll: %d event(s)%s\n", n, n == 1 && (ev[0].flags & EV_EOF) ? " (READ, EV_EOF)" : "");
    n = kevent(kq, NULL, 0, ev, 8, &zero);
    printf("poll again, nothing changed: %d event(s)%s\n", n, n ? " -- expected none (EV_CLEAR)" : "");
    return n != 0;
}
