/* A WRITE knote refused with EPIPE leaves the descriptor's kind (pipe) cached; once the number
 * names an empty regular file, READ on it fires with data 0 (SPEC.md 3 READ, regular files:
 * fires when data != 0).
 * cc -I Sources/CKQueue/include Fuzz/crashes/stale-kind-after-epipe.c \
 *    -L .build/debug -Wl,-rpath,$PWD/.build/debug -lkqueue -o /tmp/stale-kind && /tmp/stale-kind */
#define _GNU_SOURCE
#include <sys/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    int p[2];
    pipe(p);
    close(p[0]); /* the reader is gone */
    struct kevent c, ev[4];
    EV_SET(&c, p[1], EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    int r = kevent(kq, &c, 1, NULL, 0, NULL);
    printf("WRITE on the pipe: %d (EPIPE expected)\n", r);
    int file = open("/tmp", O_TMPFILE | O_RDWR, 0600); /* an empty regular file */
    dup2(file, p[1]);                                  /* the number now names it */
    close(file);
    EV_SET(&c, p[1], EVFILT_READ, EV_ADD, 0, 0, NULL);
    kevent(kq, &c, 1, NULL, 0, NULL);
    struct timespec zero = {0, 0};
    int n = kevent(kq, NULL, 0, ev, 4, &zero);
    printf("poll: %d event(s)%s\n", n, n ? " -- expected none: the file is empty (data 0)" : "");
    return n != 0;
}
