import SystemPackage

/// EVFILT_AIO: only a submitted asynchronous I/O request registers one (SPEC.md 3); a change
/// from user space fails with EPERM, as on FreeBSD. Requests are not implemented yet.
enum AIOFilter: FilterOperations {
    static var filter: Int16 { FilterID.aio }
    static var registrationError: Errno? { .notPermitted }
    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) { throw .notPermitted }
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool { false }
}
