import CKQueue
import CKQueueShim
import Glibc
@_spi(CABI) @_spi(Testing) import KQueue

// The C entry points, as declared in <sys/event.h>.
//
// `swift build` (the `kqueue` product: the tests' libkqueue.so) exports them under their C
// names. scripts/build-clib.sh builds with KQUEUE_C_LIBRARY: there they are the entry points
// of the engine library (libkqueue-engine.so), which the plain-C front library libkqueue.so.12
// loads on the first kqueue() and calls through function pointers (docs/C-LIBRARY.md); the
// front defines kqueue, kqueuex and kevent itself.

#if KQUEUE_C_LIBRARY
    @_cdecl("kqueue_engine_kqueue")
    public func kqueue_export() -> Int32 {
        CABI.kqueue()
    }

    @_cdecl("kqueue_engine_kqueuex")
    public func kqueuex_export(_ flags: UInt32) -> Int32 {
        CABI.kqueue(flags: flags)
    }

    @_cdecl("kqueue_engine_kevent")
    public func kevent_export(
        _ kq: Int32, _ changelist: UnsafePointer<kevent>?, _ nchanges: Int32,
        _ eventlist: UnsafeMutablePointer<kevent>?, _ nevents: Int32, _ timeout: UnsafePointer<timespec>?
    ) -> Int32 {
        CABI.kevent(kq, changelist, nchanges, eventlist, nevents, timeout)
    }
#else
    @_cdecl("kqueue")
    public func kqueue_export() -> Int32 {
        CABI.kqueue()
    }

    @_cdecl("kqueuex")
    public func kqueuex_export(_ flags: UInt32) -> Int32 {
        CABI.kqueue(flags: flags)
    }

    @_cdecl("kevent")
    public func kevent_export(
        _ kq: Int32, _ changelist: UnsafePointer<kevent>?, _ nchanges: Int32,
        _ eventlist: UnsafeMutablePointer<kevent>?, _ nevents: Int32, _ timeout: UnsafePointer<timespec>?
    ) -> Int32 {
        CABI.kevent(kq, changelist, nchanges, eventlist, nevents, timeout)
    }
#endif

#if DEBUG
    /// Test-only, debug builds only (not in `<sys/event.h>`): makes the internal system call
    /// named `call` (e.g. "epoll_ctl", "eventfd", "read") fail with `error`, after `skip`
    /// successful calls, `count` times; an `error` of 0 disarms. Returns 0, or -1 for an
    /// unknown name. Tests/C/faults.c finds it with dlsym and skips without it.
    @_cdecl("kqueue_test_inject_fault")
    public func kqueue_test_inject_fault_export(
        _ call: UnsafePointer<CChar>?, _ error: Int32, _ skip: Int32, _ count: Int32
    ) -> Int32 {
        guard let call else { return -1 }
        return kqueueTestInjectFault(call: String(cString: call), error: error, skip: Int(skip), count: Int(count))
    }
#endif

// The engine's side of libkqueue.so's aio_* functions (Sources/CKQueueAIO/aio.c): not in any
// header a program includes. The one-file library (`swift build`) links aio.c with these; the
// deployable one has aio.c in its front, which defines functions of the same names (local to
// it) that call these through pointers looked up when it loads the engine
// (Sources/CKQueueFront/front.c).

@_cdecl("kqueue_engine_aio_submit")
public func aio_submit_export(
    _ kq: Int32, _ requests: UnsafePointer<kq_aio_request>, _ count: Int32, _ tags: UnsafeMutablePointer<UInt64>,
    _ errors: UnsafeMutablePointer<Int32>
) {
    CABI.aioSubmit(kq, requests, count, tags, errors)
}

@_cdecl("kqueue_engine_aio_cancel")
public func aio_cancel_export(_ kq: Int32, _ tag: UInt64) -> Int32 { CABI.aioCancel(kq, tag) }

@_cdecl("kqueue_engine_aio_release")
public func aio_release_export(_ kq: Int32, _ ident: UInt, _ filter: Int16, _ tag: UInt64) {
    CABI.aioRelease(kq, ident, filter, tag)
}

@_cdecl("kqueue_engine_aio_poll")
public func aio_poll_export(_ kq: Int32) { CABI.aioPoll(kq) }

@_cdecl("kqueue_engine_aio_wait_fd")
public func aio_wait_fd_export(_ kq: Int32) -> Int32 { CABI.aioWaitDescriptor(kq) }

@_cdecl("kqueue_engine_aio_mark_done")
public func aio_mark_done_export(_ kq: Int32, _ tag: UInt64) { CABI.aioMarkDone(kq, tag) }
