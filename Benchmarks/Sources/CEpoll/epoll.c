/* Header-only: <sys/epoll.h> for Swift. */
