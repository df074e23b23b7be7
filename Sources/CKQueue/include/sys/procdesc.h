/*
 * <sys/procdesc.h>: FreeBSD's process descriptors (pdfork(2)), on Linux pidfds.
 *
 * pdfork() creates a child like fork() and returns, in the parent, the child's pid and a
 * process descriptor through fdp (a Linux pidfd); the child does not send SIGCHLD when it
 * exits and wait(WAIT_ANY) does not see it. Closing the last descriptor of a running child
 * kills it with SIGKILL unless PD_DAEMON was given. EVFILT_PROCDESC (<sys/event.h>) reports
 * NOTE_EXIT on the descriptor. Values and prototypes are FreeBSD's; see SPEC.md.
 */
#ifndef _SYS_PROCDESC_H_
#define _SYS_PROCDESC_H_

#include <sys/types.h>  /* pid_t */

#ifdef __cplusplus
extern "C" {
#endif

/* Flags which can be passed to pdfork(2). */
#define PD_DAEMON          0x00000001  /* Don't exit when procdesc closes. */
#define PD_CLOEXEC         0x00000002  /* Close file descriptor on exec. */

#define PD_ALLOWED_AT_FORK (PD_DAEMON | PD_CLOEXEC)

pid_t pdfork(int *fdp, int flags);
int pdkill(int fd, int signum);
int pdgetpid(int fd, pid_t *pidp);

#ifdef __cplusplus
}
#endif

#endif /* !_SYS_PROCDESC_H_ */
