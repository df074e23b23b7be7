/* A socket shut down for sending (shutdown SHUT_WR) while no kqueue watched its number; dup3
 * then puts a fresh, connected socket behind that number. WRITE on it must not report EV_EOF
 * (SPEC.md 3 WRITE: EV_EOF once the socket cannot send): the library's mark of the shutdown
 * belonged to the old socket, and dup2/dup3 forgot it only for numbers a kqueue watched.
 * cc -I Sources/CKQueue/include Fuzz/crashes/write-eof-shutdown-mark-kept-by-dup3.c \
 *    -L .build/debug -Wl,-rpath,$PWD/.build/debug -lkqueue -o /tmp/dup3-eof && /tmp/dup3-eof */
#define _GNU_SOURCE
#include <sys/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int old[2], fresh[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, old);
    shutdown(old[0], SHUT_WR);
    socketpair(AF_UNIX, SOCK_STREAM, 0, fresh);
    dup3(fresh[0], old[0], O_CLOEXEC); /* old[0] now names the fresh socket */
    int kq = kqueue();
    struct kevent c, ev;
    EV_SET(&c, old[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    struct timespec zero = {0, 0};
    int n = kevent(kq, &c, 1, &ev, 1, &zero);
    int eof = n == 1 && (ev.flags & EV_EOF);
    printf("WRITE on the fresh socket: %d event(s)%s\n", n, eof ? ", EV_EOF -- expected none: it can send" : "");
    return n != 1 || eof;
}
