/* The header-only C ABI module: <sys/event.h>. */
