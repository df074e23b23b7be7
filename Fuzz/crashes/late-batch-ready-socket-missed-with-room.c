/* Two knotes ready, room for three: a zero-timeout poll returns one (the library asks epoll
 * for nevents reports and its own wakeup eventfds take some of them).
 * cc -I Sources/CKQueue/include Fuzz/crashes/late-batch-ready-socket-missed-with-room.c \
 *    -L .build/debug -Wl,-rpath,$PWD/.build/debug -lkqueue -o /tmp/late-batch && /tmp/late-batch */
#include <sys/event.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    struct kevent c, ev[3];
    struct timespec zero = {0, 0};
    EV_SET(&c, sv[1], EVFILT_WRITE, EV_ADD, NOTE_LOWAT, 1000, NULL); /* writable: fires */
    int n = kevent(kq, &c, 1, ev, 2, &zero);
    printf("WRITE added: %d event(s)\n", n);
    shutdown(sv[1], SHUT_WR);                                        /* sv[0] now reads EOF */
    EV_SET(&c, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kevent(kq, &c, 1, NULL, 0, NULL);
    n = kevent(kq, NULL, 0, ev, 3, &zero);                           /* 2 knotes, room for 3 */
    printf("poll with room for 3: %d event(s)%s\n", n, n == 2 ? "" : " -- expected 2 (READ with EV_EOF, WRITE)");
    return n == 2 ? 0 : 1;
}
