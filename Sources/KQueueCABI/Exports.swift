import CKQueue
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
