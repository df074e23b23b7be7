/*
 * <sys/event.h>: the kqueue C ABI, FreeBSD 12+ layout and values.
 *
 * Programs written for FreeBSD (or macOS) include this header unchanged and link with
 * -lkqueue. Layout, constant values and prototypes follow FreeBSD; see SPEC.md section 1.
 */
#ifndef _SYS_EVENT_H_
#define _SYS_EVENT_H_

#include <stdint.h>  /* uintptr_t, int64_t, uint64_t: all the header needs */

#ifdef __cplusplus
extern "C" {
#endif

#define EVFILT_READ      (-1)
#define EVFILT_WRITE     (-2)
#define EVFILT_AIO       (-3)  /* attached to aio requests */
#define EVFILT_VNODE     (-4)  /* attached to vnodes */
#define EVFILT_PROC      (-5)  /* attached to struct proc */
#define EVFILT_SIGNAL    (-6)  /* attached to struct proc */
#define EVFILT_TIMER     (-7)  /* timers */
#define EVFILT_PROCDESC  (-8)  /* attached to process descriptors */
#define EVFILT_FS        (-9)  /* filesystem events */
#define EVFILT_LIO       (-10) /* attached to lio requests */
#define EVFILT_USER      (-11) /* user events */
#define EVFILT_SENDFILE  (-12) /* attached to sendfile requests */
#define EVFILT_EMPTY     (-13) /* empty send socket buf */
#define EVFILT_SYSCOUNT  13

#define EV_SET(kevp_, a, b, c, d, e, f) do {  \
    struct kevent *kevp = (kevp_);            \
    (kevp)->ident = (a);                      \
    (kevp)->filter = (b);                     \
    (kevp)->flags = (c);                      \
    (kevp)->fflags = (d);                     \
    (kevp)->data = (e);                       \
    (kevp)->udata = (f);                      \
    (kevp)->ext[0] = 0;                       \
    (kevp)->ext[1] = 0;                       \
    (kevp)->ext[2] = 0;                       \
    (kevp)->ext[3] = 0;                       \
} while (0)

struct kevent {
    uintptr_t      ident;   /* identifier for this event */
    short          filter;  /* filter for event */
    unsigned short flags;   /* action flags for kqueue */
    unsigned int   fflags;  /* filter flag value */
    int64_t        data;    /* filter data value */
    void          *udata;   /* opaque user data identifier */
    uint64_t       ext[4];  /* extensions */
};

/* actions */
#define EV_ADD          0x0001  /* add event to kq (implies enable) */
#define EV_DELETE       0x0002  /* delete event from kq */
#define EV_ENABLE       0x0004  /* enable event */
#define EV_DISABLE      0x0008  /* disable event (not reported) */
#define EV_FORCEONESHOT 0x0100  /* enable _ONESHOT and force trigger */
#define EV_KEEPUDATA    0x0200  /* do not update the udata field */

/* flags */
#define EV_ONESHOT      0x0010  /* only report one occurrence */
#define EV_CLEAR        0x0020  /* clear event state after reporting */
#define EV_RECEIPT      0x0040  /* force EV_ERROR on success, data=0 */
#define EV_DISPATCH     0x0080  /* disable event after reporting */

#define EV_SYSFLAGS     0xF000  /* reserved by system */
#define EV_DROP         0x1000  /* note should be dropped */
#define EV_FLAG1        0x2000  /* filter-specific flag */
#define EV_FLAG2        0x4000  /* filter-specific flag */

/* returned values */
#define EV_EOF          0x8000  /* EOF detected */
#define EV_ERROR        0x4000  /* error, data contains errno */

/* data/hint flags for EVFILT_USER, shared with userspace */
#define NOTE_FFNOP      0x00000000  /* ignore input fflags */
#define NOTE_FFAND      0x40000000  /* AND fflags */
#define NOTE_FFOR       0x80000000  /* OR fflags */
#define NOTE_FFCOPY     0xc0000000  /* copy fflags */
#define NOTE_FFCTRLMASK 0xc0000000  /* masks for operations */
#define NOTE_FFLAGSMASK 0x00ffffff
#define NOTE_TRIGGER    0x01000000  /* Cause the event to be triggered for output. */

/* data/hint flags for EVFILT_{READ|WRITE}, shared with userspace */
#define NOTE_LOWAT      0x0001  /* low water mark */
#define NOTE_FILE_POLL  0x0002  /* behave like poll() */

/* data/hint flags for EVFILT_VNODE, shared with userspace */
#define NOTE_DELETE      0x0001  /* vnode was removed */
#define NOTE_WRITE       0x0002  /* data contents changed */
#define NOTE_EXTEND      0x0004  /* size increased */
#define NOTE_ATTRIB      0x0008  /* attributes changed */
#define NOTE_LINK        0x0010  /* link count changed */
#define NOTE_RENAME      0x0020  /* vnode was renamed */
#define NOTE_REVOKE      0x0040  /* vnode access was revoked */
#define NOTE_OPEN        0x0080  /* vnode was opened */
#define NOTE_CLOSE       0x0100  /* file closed, fd did not allow write */
#define NOTE_CLOSE_WRITE 0x0200  /* file closed, fd did allow write */
#define NOTE_READ        0x0400  /* file was read */

/* data/hint flags for EVFILT_PROC and EVFILT_PROCDESC, shared with userspace */
#define NOTE_EXIT       0x80000000  /* process exited */
#define NOTE_FORK       0x40000000  /* process forked */
#define NOTE_EXEC       0x20000000  /* process exec'd */
#define NOTE_PCTRLMASK  0xf0000000  /* mask for hint bits */
#define NOTE_PDATAMASK  0x000fffff  /* mask for pid */

/* additional flags for EVFILT_PROC */
#define NOTE_TRACK      0x00000001  /* follow across forks */
#define NOTE_TRACKERR   0x00000002  /* could not track child */
#define NOTE_CHILD      0x00000004  /* am a child process */
/* Not in FreeBSD: with NOTE_EXIT, the kernel could not tell the exit status (a process
 * reaped by someone else, on a kernel before Linux 6.15); data is then 0, not a status. */
#define NOTE_EXIT_UNKNOWN 0x00000008

/* additional flags for EVFILT_TIMER */
#define NOTE_SECONDS    0x00000001  /* data is seconds */
#define NOTE_MSECONDS   0x00000002  /* data is milliseconds */
#define NOTE_USECONDS   0x00000004  /* data is microseconds */
#define NOTE_NSECONDS   0x00000008  /* data is nanoseconds */
#define NOTE_ABSTIME    0x00000010  /* timeout is absolute */
#define NOTE_ABSOLUTE   NOTE_ABSTIME /* macOS spelling, for source compatibility */

/*
 * fflags of EVFILT_FS events (vfsquery flags). FreeBSD declares them in <sys/mount.h>, which on
 * Linux is glibc's mount(2) header (it has no VQ_*): they are here so that a FreeBSD program
 * finds them through <sys/event.h>, which it includes for kevent() anyway. Guarded, so that a
 * header that declares them too (with FreeBSD's values) does not clash.
 */
#ifndef VQ_NOTRESP
#define VQ_NOTRESP      0x0001  /* server down */
#define VQ_NEEDAUTH     0x0002  /* server bad auth */
#define VQ_LOWDISK      0x0004  /* we're low on space */
#define VQ_MOUNT        0x0008  /* new filesystem arrived */
#define VQ_UNMOUNT      0x0010  /* filesystem has left */
#define VQ_DEAD         0x0020  /* filesystem is dead, needs force unmount */
#define VQ_ASSIST       0x0040  /* filesystem needs assistance from external program */
#define VQ_NOTRESPLOCK  0x0080  /* server lockd down */
#define VQ_FLAG0100     0x0100  /* placeholder */
#define VQ_FLAG0200     0x0200  /* placeholder */
#define VQ_FLAG0400     0x0400  /* placeholder */
#define VQ_FLAG0800     0x0800  /* placeholder */
#define VQ_FLAG1000     0x1000  /* placeholder */
#define VQ_FLAG2000     0x2000  /* placeholder */
#define VQ_FLAG4000     0x4000  /* placeholder */
#define VQ_FLAG8000     0x8000  /* placeholder */
#endif

/* Flags for kqueuex(2) */
#define KQUEUE_CLOEXEC  0x00000001  /* close on exec */

/*
 * Asynchronous I/O reported to a kqueue (FreeBSD's <sys/signal.h> and <aio.h> additions),
 * for aio_read(2) and friends with glibc's <aio.h>, included before or after this header.
 * libkqueue.so defines the aio_* functions: requests with SIGEV_KEVENT are its own, others go
 * to glibc. glibc's struct sigevent has no kqueue field: as on FreeBSD, sigev_notify_kqueue
 * is the signal number's field; the kevent flags take the first word of the union.
 */
#define SIGEV_KEVENT    3       /* deliver an EVFILT_AIO/EVFILT_LIO event (not 0-2 nor 4 on glibc) */
#define sigev_notify_kqueue       sigev_signo
#define sigev_notify_kevent_flags _sigev_un._pad[0]
/* Vectored requests (FreeBSD 13's aio_readv, aio_writev; lio_listio opcodes). */
#define LIO_VECTORED    0x4
#define LIO_READV       0x4     /* LIO_READ (0 on glibc) | LIO_VECTORED */
#define LIO_WRITEV      0x5     /* LIO_WRITE (1 on glibc) | LIO_VECTORED */
#define aio_iov         aio_buf         /* I/O scatter/gather list */
#define aio_iovcnt      aio_nbytes      /* length of aio_iov */
struct aiocb;
int aio_readv(struct aiocb *iocb);
int aio_writev(struct aiocb *iocb);

/* Declared, not defined, as on FreeBSD: a program that builds one includes <time.h>. */
struct timespec;

int kqueue(void);
int kqueuex(unsigned int flags);
int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents, const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* !_SYS_EVENT_H_ */
