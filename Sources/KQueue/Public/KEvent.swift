import CKQueue
import Glibc

/// One change or one event: FreeBSD's `struct kevent`, with Swift names.
///
/// The layout is exactly the C struct's (64 bytes), so buffers of `KEvent` are passed to the
/// engine without conversion.
@frozen
public struct KEvent: @unchecked Sendable, Equatable {
    @usableFromInline
    var base: kevent

    @inlinable
    public init(
        ident: UInt, filter: Filter, flags: Flags = [], fflags: UInt32 = 0, data: Int64 = 0,
        udata: UnsafeMutableRawPointer? = nil, ext: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    ) {
        base = kevent(
            ident: ident, filter: filter.rawValue, flags: flags.rawValue, fflags: fflags, data: data,
            udata: udata, ext: ext)
    }

    @inlinable
    init(_ base: kevent) { self.base = base }

    /// The source: a descriptor, process id, signal number, or any number (timers, user
    /// events). C field `ident`.
    @inlinable public var ident: UInt {
        get { base.ident }
        set { base.ident = newValue }
    }
    /// C field `filter`.
    @inlinable public var filter: Filter {
        get { Filter(rawValue: base.filter) }
        set { base.filter = newValue.rawValue }
    }
    /// C field `flags`.
    @inlinable public var flags: Flags {
        get { Flags(rawValue: base.flags) }
        set { base.flags = newValue.rawValue }
    }
    /// Filter-specific flags (`NOTE_*`). C field `fflags`.
    @inlinable public var fflags: UInt32 {
        get { base.fflags }
        set { base.fflags = newValue }
    }
    /// Filter-specific data; for an `.error` entry, the errno. C field `data`.
    @inlinable public var data: Int64 {
        get { base.data }
        set { base.data = newValue }
    }
    /// Opaque user data, returned as given. C field `udata`.
    @inlinable public var udata: UnsafeMutableRawPointer? {
        get { base.udata }
        set { base.udata = newValue }
    }
    /// Extension words; `ext[2]` and `ext[3]` always pass through. C field `ext`.
    @inlinable public var ext: (UInt64, UInt64, UInt64, UInt64) {
        get { base.ext }
        set { base.ext = newValue }
    }

    /// For an `.error` entry: the errno of the failed change, or nil for a receipt (success).
    public var changeError: Errno? {
        guard flags.contains(.error), data != 0 else { return nil }
        return Errno(rawValue: Int32(truncatingIfNeeded: data))
    }

    public static func == (lhs: KEvent, rhs: KEvent) -> Bool {
        lhs.ident == rhs.ident && lhs.filter == rhs.filter && lhs.flags == rhs.flags && lhs.fflags == rhs.fflags
            && lhs.data == rhs.data && lhs.udata == rhs.udata && lhs.ext.0 == rhs.ext.0 && lhs.ext.1 == rhs.ext.1
            && lhs.ext.2 == rhs.ext.2 && lhs.ext.3 == rhs.ext.3
    }
}

extension KEvent {
    /// A change or event for readable data on `descriptor` (``Filter/read``).
    public static func read(
        _ descriptor: FileDescriptor, flags: Flags = .add, note: DescriptorNote = [], data: Int64 = 0,
        udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(
            ident: UInt(descriptor.rawValue), filter: .read, flags: flags, fflags: note.rawValue, data: data,
            udata: udata)
    }

    /// A change or event for changes to the file or directory open as `descriptor`
    /// (``Filter/vnode``).
    public static func vnode(
        _ descriptor: FileDescriptor, flags: Flags = [.add, .clear], note: VnodeNote,
        udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(ident: UInt(descriptor.rawValue), filter: .vnode, flags: flags, fflags: note.rawValue, udata: udata)
    }

    /// A change or event for deliveries of signal `signal` to the process (``Filter/signal``;
    /// EV_CLEAR is added by the filter; each event's `data` counts the deliveries since the
    /// last one). The application's own disposition keeps working: kqueue only observes.
    public static func signal(
        _ signal: Int32, flags: Flags = .add, udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(ident: UInt(UInt32(bitPattern: signal)), filter: .signal, flags: flags, udata: udata)
    }

    /// A change or event for process `pid` (``Filter/process``; EV_CLEAR is added by the filter).
    public static func process(
        _ pid: pid_t, flags: Flags = .add, note: ProcessNote = .exit, udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(
            ident: UInt(UInt32(bitPattern: pid)), filter: .process, flags: flags, fflags: note.rawValue, udata: udata)
    }

    /// A change or event for the process behind the process descriptor `descriptor`
    /// (``Filter/processDescriptor``, EVFILT_PROCDESC; EV_CLEAR is added by the filter). Only
    /// ``ProcessNote/exit`` is reported: `data` is the wait status, flags carry EV_EOF and
    /// EV_ONESHOT. A descriptor that is not a process descriptor is `EINVAL`.
    public static func processDescriptor(
        _ descriptor: ProcessDescriptor, flags: Flags = .add, note: ProcessNote = .exit,
        udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(
            ident: UInt(descriptor.descriptor.rawValue), filter: .processDescriptor, flags: flags,
            fflags: note.rawValue, udata: udata)
    }

    /// A change or event for room to write on `descriptor` (``Filter/write``).
    public static func write(
        _ descriptor: FileDescriptor, flags: Flags = .add, note: DescriptorNote = [], data: Int64 = 0,
        udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(
            ident: UInt(descriptor.rawValue), filter: .write, flags: flags, fflags: note.rawValue, data: data,
            udata: udata)
    }

    /// A change or event for the send queue of socket `descriptor` being empty
    /// (``Filter/empty``): for TCP, every byte written was acknowledged; other sockets keep
    /// nothing in their send queue (as on FreeBSD 12) and are ready at once. `data` is the
    /// bytes still queued (0 in an event). A descriptor that is not a socket: `EINVAL`.
    public static func empty(
        _ descriptor: FileDescriptor, flags: Flags = .add, udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(ident: UInt(descriptor.rawValue), filter: .empty, flags: flags, udata: udata)
    }

    /// A change or event for mounts and unmounts in the process's mount namespace
    /// (``Filter/fileSystem``; any `ident`, EV_CLEAR is added by the filter; an event's `fflags`
    /// are ``FileSystemNote`` bits).
    public static func fileSystem(
        _ ident: UInt = 0, flags: Flags = .add, udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(ident: ident, filter: .fileSystem, flags: flags, udata: udata)
    }

    /// A change for the user event `ident` (``Filter/user``).
    public static func user(
        _ ident: UInt, flags: Flags = [], note: UserNote = .noOperation, data: Int64 = 0,
        udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(ident: ident, filter: .user, flags: flags, fflags: note.rawValue, data: data, udata: udata)
    }
}
