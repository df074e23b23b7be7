/* libkqueue.so's POSIX asynchronous I/O entry points (aio.c): no declarations of its own;
 * programs use <aio.h> and <sys/event.h>. */
#ifndef CKQUEUE_AIO_H
#define CKQUEUE_AIO_H
#endif
