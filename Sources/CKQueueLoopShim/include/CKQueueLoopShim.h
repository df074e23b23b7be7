#ifndef CKQUEUELOOPSHIM_H
#define CKQUEUELOOPSHIM_H

/* What KQueueLoop's Swift cannot import from Glibc: the _GNU_SOURCE calls. */

/* accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC): -1 and errno on failure. */
int kq_loop_accept(int fd);
/* Names the calling thread (at most 15 bytes). */
void kq_loop_name_thread(const char *name);

#endif
