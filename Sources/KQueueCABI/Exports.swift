import CKQueue
import CKQueueShim
import Glibc
@_spi(CABI) @_spi(Testing) import KQueue

// The symbols of libkqueue.so, as declared in <sys/event.h>.

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
// header a program includes.

@_cdecl("kq_engine_aio_submit")
public func kq_engine_aio_submit(
    _ kq: Int32, _ requests: UnsafePointer<kq_aio_request>, _ count: Int32, _ tags: UnsafeMutablePointer<UInt64>,
    _ errors: UnsafeMutablePointer<Int32>
) {
    CABI.aioSubmit(kq, requests, count, tags, errors)
}

@_cdecl("kq_engine_aio_cancel")
public func kq_engine_aio_cancel(_ kq: Int32, _ tag: UInt64) -> Int32 { CABI.aioCancel(kq, tag) }

@_cdecl("kq_engine_aio_release")
public func kq_engine_aio_release(_ kq: Int32, _ ident: UInt, _ filter: Int16, _ tag: UInt64) {
    CABI.aioRelease(kq, ident, filter, tag)
}

@_cdecl("kq_engine_aio_poll")
public func kq_engine_aio_poll(_ kq: Int32) { CABI.aioPoll(kq) }

@_cdecl("kq_engine_aio_wait_fd")
public func kq_engine_aio_wait_fd(_ kq: Int32) -> Int32 { CABI.aioWaitDescriptor(kq) }

@_cdecl("kq_engine_aio_mark_done")
public func kq_engine_aio_mark_done(_ kq: Int32, _ tag: UInt64) { CABI.aioMarkDone(kq, tag) }
