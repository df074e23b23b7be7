/* An EV_CLEAR READ knote on a stream socket, added (in one call, after a READ was added and
 * deleted beside a disabled WRITE knote) on an edge-triggered epoll registration that already
 * had read interest; the peer shuts down its sending side; one poll returns the READ with
 * EV_EOF and the next returned it again, with no change of the socket between (FreeBSD:
 * once, SPEC.md 2: EV_CLEAR resets the state until the source changes). The new knote was
 * checked from the active queue and epoll's edge for the same change queued it once more.
 * Found by `bash Fuzz/run.sh 240 -- -seed=11`.
 * cc -I Sources/CKQueue/include Fuzz/crashes/clear-repeat-read-returned-again-after-touches-beside-a-write-knote.c \
 *    -L .build/debug -Wl,-rpath,$PWD/.build/debug -lkqueue -o /tmp/clear-repeat && /tmp/clear-repeat */
#define _GNU_SOURCE
#include <sys/event.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct kevent c[7], ev[8];
    struct timespec zero = {0, 0};
    /* As the fuzzer's input does it: WRITE added disabled; READ added, deleted, added again
     * with EV_CLEAR (EV_ADD|EV_DELETE adds a knote that does not exist, deletes one that does). */
    EV_SET(&c[0], sv[0], EVFILT_WRITE, EV_ADD | EV_DELETE | EV_DISABLE | EV_ONESHOT | EV_RECEIPT, 0, 0, NULL);
    EV_SET(&c[1], sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    EV_SET(&c[2], sv[0], EVFILT_READ, EV_ADD | EV_DELETE | EV_ONESHOT | EV_RECEIPT, 0, 0, NULL);
    EV_SET(&c[3], sv[0], EVFILT_READ, EV_ADD | EV_DELETE | EV_ENABLE | EV_CLEAR, 0, 0, NULL);
    kevent(kq, c, 4, ev, 8, &zero);
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 7; i++) EV_SET(&c[i], sv[0], EVFILT_READ, 0, 0, 0, (void *)(uintptr_t)(i + 1));
    int first = kevent(kq, c, 7, ev, 8, &zero);
    int second = kevent(kq, NULL, 0, ev, 8, &zero);
    printf("first call: %d event(s), second call: %d event(s)%s\n", first, second,
           second ? " -- expected none: the socket did not change" : "");
    return first != 1 || second != 0;
}
