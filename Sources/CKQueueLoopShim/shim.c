#define _GNU_SOURCE
#include "CKQueueLoopShim.h"

#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>

int kq_loop_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

void kq_loop_name_thread(const char *name) { pthread_setname_np(pthread_self(), name); }
