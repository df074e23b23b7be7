/* An EV_CLEAR READ knote with NOTE_FILE_POLL on a regular file: ready when registered, then
 * the file is written, both before the first retrieval. The two triggers must merge into one
 * event (SPEC.md 2 delivery rules); the library returns the knote in two polls in a row
 * (since 87ea8a7 only when the first poll has room for one event).
 * cc -I Sources/CKQueue/include Fuzz/crashes/clear-repeat-file-poll-knote-returned-twice.c \
 *    -L .build/debug -Wl,-rpath,$PWD/.build/debug -lkqueue -o /tmp/clear-file && /tmp/clear-file */
#define _GNU_SOURCE
#include <sys/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
    struct kevent c, ev[8];
    struct timespec zero = {0, 0};
    EV_SET(&c, fd, EVFILT_READ, EV_ADD | EV_CLEAR, NOTE_FILE_POLL, 0, NULL); /* ready at once */
    kevent(kq, &c, 1, NULL, 0, NULL);
    write(fd, "x", 1); /* a second trigger before any retrieval */
    int n = kevent(kq, NULL, 0, ev, 1, &zero); /* room for one: the only knote */
    printf("poll: %d event(s)\n", n);
    n = kevent(kq, NULL, 0, ev, 8, &zero);
    printf("poll again, nothing changed: %d event(s)%s\n", n, n ? " -- expected none (EV_CLEAR)" : "");
    return n != 0;
}
