import CKQueue
import Glibc
@_spi(CABI) import KQueue

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
