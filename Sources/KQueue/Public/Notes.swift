/// `fflags` of ``Filter/read`` and ``Filter/write`` events.
@frozen
public struct DescriptorNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `data` holds a low-water mark. The corresponding C constant is `NOTE_LOWAT`.
    @inlinable public static var lowWater: DescriptorNote { DescriptorNote(rawValue: 0x0001) }
    /// Regular files: always ready, like poll(2). The corresponding C constant is
    /// `NOTE_FILE_POLL`.
    @inlinable public static var filePoll: DescriptorNote { DescriptorNote(rawValue: 0x0002) }
}

/// `fflags` of ``Filter/user`` events: a control operation in the top bits, a 24-bit value
/// in the low bits, and ``trigger``.
@frozen
public struct UserNote: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Keep the stored value. The corresponding C constant is `NOTE_FFNOP`.
    @inlinable public static var noOperation: UserNote { UserNote(rawValue: 0) }
    /// Trigger the event. The corresponding C constant is `NOTE_TRIGGER`.
    @inlinable public static var trigger: UserNote { UserNote(rawValue: 0x0100_0000) }
    /// Mask of the 24-bit value. The corresponding C constant is `NOTE_FFLAGSMASK`.
    public static let valueMask: UInt32 = 0x00FF_FFFF

    /// AND `value` into the stored value. The corresponding C constant is `NOTE_FFAND`.
    public static func and(_ value: UInt32) -> UserNote { UserNote(rawValue: 0x4000_0000 | (value & valueMask)) }
    /// OR `value` into the stored value. The corresponding C constant is `NOTE_FFOR`.
    public static func or(_ value: UInt32) -> UserNote { UserNote(rawValue: 0x8000_0000 | (value & valueMask)) }
    /// Replace the stored value. The corresponding C constant is `NOTE_FFCOPY`.
    public static func copy(_ value: UInt32) -> UserNote { UserNote(rawValue: 0xC000_0000 | (value & valueMask)) }

    /// This note with ``trigger`` added.
    public var triggering: UserNote { UserNote(rawValue: rawValue | UserNote.trigger.rawValue) }
}

/// `fflags` of ``Filter/timer`` registrations: the unit of `data` (none means
/// milliseconds) and ``absoluteTime``.
@frozen
public struct TimerNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `data` is in seconds. The corresponding C constant is `NOTE_SECONDS`.
    @inlinable public static var seconds: TimerNote { TimerNote(rawValue: 0x1) }
    /// `data` is in milliseconds (also the default). The corresponding C constant is
    /// `NOTE_MSECONDS`.
    @inlinable public static var milliseconds: TimerNote { TimerNote(rawValue: 0x2) }
    /// `data` is in microseconds. The corresponding C constant is `NOTE_USECONDS`.
    @inlinable public static var microseconds: TimerNote { TimerNote(rawValue: 0x4) }
    /// `data` is in nanoseconds. The corresponding C constant is `NOTE_NSECONDS`.
    @inlinable public static var nanoseconds: TimerNote { TimerNote(rawValue: 0x8) }
    /// `data` is an absolute wall-clock time since the Unix epoch; the timer fires once and
    /// is not given EV_CLEAR. The corresponding C constant is `NOTE_ABSTIME`.
    @inlinable public static var absoluteTime: TimerNote { TimerNote(rawValue: 0x10) }
}

/// `fflags` of ``Filter/process`` (EVFILT_PROC): the process events wanted, and in a returned
/// event, the ones that happened.
public struct ProcessNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The process exited; the event's `data` is its wait status (as from `waitpid`), its flags
    /// carry EV_EOF and EV_ONESHOT. The watcher never reaps the process. C: `NOTE_EXIT`.
    @inlinable public static var exit: ProcessNote { ProcessNote(rawValue: 0x8000_0000) }
    /// The process forked. C: `NOTE_FORK`. From the kernel's process connector, which needs
    /// CAP_NET_ADMIN: without it, registering fails with `ENOTSUP`.
    @inlinable public static var fork: ProcessNote { ProcessNote(rawValue: 0x4000_0000) }
    /// The process called exec. C: `NOTE_EXEC`. Needs the process connector, as ``fork``.
    @inlinable public static var exec: ProcessNote { ProcessNote(rawValue: 0x2000_0000) }
    /// Follow the process across forks: each child is registered with the same notes and
    /// reports ``child`` with `data` = the parent's pid. C: `NOTE_TRACK`. Needs the process
    /// connector, as ``fork``.
    @inlinable public static var track: ProcessNote { ProcessNote(rawValue: 0x0000_0001) }
    /// In a returned event: following a child failed. C: `NOTE_TRACKERR`.
    @inlinable public static var trackError: ProcessNote { ProcessNote(rawValue: 0x0000_0002) }
    /// In a returned event: this process is a child followed by ``track``. C: `NOTE_CHILD`.
    @inlinable public static var child: ProcessNote { ProcessNote(rawValue: 0x0000_0004) }
    /// In a returned ``exit`` event: the kernel could not tell the exit status (a process
    /// reaped by someone else, on a kernel before Linux 6.15), and `data` is 0, not a status.
    /// Not in FreeBSD. C: `NOTE_EXIT_UNKNOWN`.
    @inlinable public static var exitStatusUnknown: ProcessNote { ProcessNote(rawValue: 0x0000_0008) }
}

/// `fflags` of ``Filter/vnode`` (EVFILT_VNODE): the changes to a file or directory wanted, and
/// in a returned event, the ones that happened (all the bits of an occurrence, when any of
/// them was wanted). Use ``Flags/clear``: without it the event keeps being returned, as on
/// FreeBSD.
public struct VnodeNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The file's last link was removed. C: `NOTE_DELETE`.
    @inlinable public static var delete: VnodeNote { VnodeNote(rawValue: 0x0001) }
    /// The contents changed (a write, a truncation; in a directory, an entry was added,
    /// removed or renamed). C: `NOTE_WRITE`.
    @inlinable public static var write: VnodeNote { VnodeNote(rawValue: 0x0002) }
    /// The file grew. C: `NOTE_EXTEND`.
    @inlinable public static var extend: VnodeNote { VnodeNote(rawValue: 0x0004) }
    /// Attributes changed (mode, owner, times, a truncation). C: `NOTE_ATTRIB`.
    @inlinable public static var attrib: VnodeNote { VnodeNote(rawValue: 0x0008) }
    /// The link count changed (in a directory: a subdirectory was added or removed). C: `NOTE_LINK`.
    @inlinable public static var link: VnodeNote { VnodeNote(rawValue: 0x0010) }
    /// The file was renamed (the watch follows it). C: `NOTE_RENAME`.
    @inlinable public static var rename: VnodeNote { VnodeNote(rawValue: 0x0020) }
    /// Access was revoked (its filesystem was unmounted); the event has EV_EOF. C: `NOTE_REVOKE`.
    @inlinable public static var revoke: VnodeNote { VnodeNote(rawValue: 0x0040) }
    /// The file was opened. C: `NOTE_OPEN`.
    @inlinable public static var open: VnodeNote { VnodeNote(rawValue: 0x0080) }
    /// A descriptor that could not write was closed. C: `NOTE_CLOSE`.
    @inlinable public static var close: VnodeNote { VnodeNote(rawValue: 0x0100) }
    /// A descriptor that could write was closed. C: `NOTE_CLOSE_WRITE`.
    @inlinable public static var closeWrite: VnodeNote { VnodeNote(rawValue: 0x0200) }
    /// The file was read. C: `NOTE_READ`.
    @inlinable public static var read: VnodeNote { VnodeNote(rawValue: 0x0400) }
}

/// `fflags` of ``Filter/fileSystem`` (EVFILT_FS) events: what happened to mounts since the last
/// event (FreeBSD's `VQ_*` values, from `<sys/mount.h>` there, `<sys/event.h>` here). A
/// registration's `fflags` are ignored: every change is reported. Linux tells ``mount`` and
/// ``unmount`` (in the caller's mount namespace); FreeBSD 12 raises the others for NFS only.
public struct FileSystemNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A server stopped responding. C: `VQ_NOTRESP`.
    @inlinable public static var notResponding: FileSystemNote { FileSystemNote(rawValue: 0x0001) }
    /// A server refused authentication. C: `VQ_NEEDAUTH`.
    @inlinable public static var needsAuthentication: FileSystemNote { FileSystemNote(rawValue: 0x0002) }
    /// A file system is low on space. C: `VQ_LOWDISK`.
    @inlinable public static var lowDisk: FileSystemNote { FileSystemNote(rawValue: 0x0004) }
    /// A file system was mounted. C: `VQ_MOUNT`.
    @inlinable public static var mount: FileSystemNote { FileSystemNote(rawValue: 0x0008) }
    /// A file system was unmounted. C: `VQ_UNMOUNT`.
    @inlinable public static var unmount: FileSystemNote { FileSystemNote(rawValue: 0x0010) }
    /// A file system is dead and needs a forced unmount. C: `VQ_DEAD`.
    @inlinable public static var dead: FileSystemNote { FileSystemNote(rawValue: 0x0020) }
    /// A file system needs help from an external program. C: `VQ_ASSIST`.
    @inlinable public static var assist: FileSystemNote { FileSystemNote(rawValue: 0x0040) }
    /// A server's lock daemon stopped responding. C: `VQ_NOTRESPLOCK`.
    @inlinable public static var lockNotResponding: FileSystemNote { FileSystemNote(rawValue: 0x0080) }
}
