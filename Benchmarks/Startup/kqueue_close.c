/* A trivial program that uses the library: one kqueue() and its close(). */
#include <sys/event.h>
#include <unistd.h>

int main(void) {
    int kq = kqueue();
    if (kq < 0) return 1;
    return close(kq) == 0 ? 0 : 1;
}
