/* <sys/epoll.h> for the raw-epoll baseline (Glibc's Swift module does not include it). */
#ifndef CEPOLL_H
#define CEPOLL_H
#include <sys/epoll.h>
#endif
