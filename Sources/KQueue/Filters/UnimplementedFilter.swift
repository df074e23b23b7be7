import SystemPackage

/// The filter FreeBSD has and this library does not implement (EVFILT_SENDFILE: docs/SPEC.md
/// says why): every change fails with ENOSYS.
enum UnimplementedFilter: FilterOperations {
    static var filter: Int16 { 0 }
    static var registrationError: Errno? { .noFunction }
    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) { throw .noFunction }
    static func event(_ knote: Int32, in state: inout QueueState) -> Bool { false }
}
