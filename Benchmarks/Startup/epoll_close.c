/* kqueue_close.c's baseline without the library: one epoll_create1() and its close(). */
#include <sys/epoll.h>
#include <unistd.h>

int main(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return 1;
    return close(ep) == 0 ? 0 : 1;
}
