/// `fflags` of ``Filter/read`` and ``Filter/write`` events.
@frozen
public struct DescriptorNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `data` holds a low-water mark. The corresponding C constant is `NOTE_LOWAT`.
    public static let lowWater = DescriptorNote(rawValue: 0x0001)
    /// Regular files: always ready, like poll(2). The corresponding C constant is
    /// `NOTE_FILE_POLL`.
    public static let filePoll = DescriptorNote(rawValue: 0x0002)
}

/// `fflags` of ``Filter/user`` events: a control operation in the top bits, a 24-bit value
/// in the low bits, and ``trigger``.
@frozen
public struct UserNote: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Keep the stored value. The corresponding C constant is `NOTE_FFNOP`.
    public static let noOperation = UserNote(rawValue: 0)
    /// Trigger the event. The corresponding C constant is `NOTE_TRIGGER`.
    public static let trigger = UserNote(rawValue: 0x0100_0000)
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
    public static let seconds = TimerNote(rawValue: 0x1)
    /// `data` is in milliseconds (also the default). The corresponding C constant is
    /// `NOTE_MSECONDS`.
    public static let milliseconds = TimerNote(rawValue: 0x2)
    /// `data` is in microseconds. The corresponding C constant is `NOTE_USECONDS`.
    public static let microseconds = TimerNote(rawValue: 0x4)
    /// `data` is in nanoseconds. The corresponding C constant is `NOTE_NSECONDS`.
    public static let nanoseconds = TimerNote(rawValue: 0x8)
    /// `data` is an absolute wall-clock time since the Unix epoch; the timer fires once and
    /// is not given EV_CLEAR. The corresponding C constant is `NOTE_ABSTIME`.
    public static let absoluteTime = TimerNote(rawValue: 0x10)
}

/// `fflags` of ``Filter/process`` (EVFILT_PROC): the process events wanted, and in a returned
/// event, the ones that happened.
public struct ProcessNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The process exited; the event's `data` is its wait status (as from `waitpid`), its flags
    /// carry EV_EOF and EV_ONESHOT. The watcher never reaps the process. C: `NOTE_EXIT`.
    public static let exit = ProcessNote(rawValue: 0x8000_0000)
    /// The process forked. C: `NOTE_FORK`. From the kernel's process connector, which needs
    /// CAP_NET_ADMIN: without it, registering fails with `ENOTSUP`.
    public static let fork = ProcessNote(rawValue: 0x4000_0000)
    /// The process called exec. C: `NOTE_EXEC`. Needs the process connector, as ``fork``.
    public static let exec = ProcessNote(rawValue: 0x2000_0000)
    /// Follow the process across forks: each child is registered with the same notes and
    /// reports ``child`` with `data` = the parent's pid. C: `NOTE_TRACK`. Needs the process
    /// connector, as ``fork``.
    public static let track = ProcessNote(rawValue: 0x0000_0001)
    /// In a returned event: following a child failed. C: `NOTE_TRACKERR`.
    public static let trackError = ProcessNote(rawValue: 0x0000_0002)
    /// In a returned event: this process is a child followed by ``track``. C: `NOTE_CHILD`.
    public static let child = ProcessNote(rawValue: 0x0000_0004)
    /// In a returned ``exit`` event: the kernel could not tell the exit status (a process
    /// reaped by someone else, on a kernel before Linux 6.15), and `data` is 0, not a status.
    /// Not in FreeBSD. C: `NOTE_EXIT_UNKNOWN`.
    public static let exitStatusUnknown = ProcessNote(rawValue: 0x0000_0008)
}

/// `fflags` of ``Filter/vnode`` (EVFILT_VNODE): the changes to a file or directory wanted, and
/// in a returned event, the ones that happened (all the bits of an occurrence, when any of
/// them was wanted). Use ``Flags/clear``: without it the event keeps being returned, as on
/// FreeBSD.
public struct VnodeNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The file's last link was removed. C: `NOTE_DELETE`.
    public static let delete = VnodeNote(rawValue: 0x0001)
    /// The contents changed (a write, a truncation; in a directory, an entry was added,
    /// removed or renamed). C: `NOTE_WRITE`.
    public static let write = VnodeNote(rawValue: 0x0002)
    /// The file grew. C: `NOTE_EXTEND`.
    public static let extend = VnodeNote(rawValue: 0x0004)
    /// Attributes changed (mode, owner, times, a truncation). C: `NOTE_ATTRIB`.
    public static let attrib = VnodeNote(rawValue: 0x0008)
    /// The link count changed (in a directory: a subdirectory was added or removed). C: `NOTE_LINK`.
    public static let link = VnodeNote(rawValue: 0x0010)
    /// The file was renamed (the watch follows it). C: `NOTE_RENAME`.
    public static let rename = VnodeNote(rawValue: 0x0020)
    /// Access was revoked (its filesystem was unmounted); the event has EV_EOF. C: `NOTE_REVOKE`.
    public static let revoke = VnodeNote(rawValue: 0x0040)
    /// The file was opened. C: `NOTE_OPEN`.
    public static let open = VnodeNote(rawValue: 0x0080)
    /// A descriptor that could not write was closed. C: `NOTE_CLOSE`.
    public static let close = VnodeNote(rawValue: 0x0100)
    /// A descriptor that could write was closed. C: `NOTE_CLOSE_WRITE`.
    public static let closeWrite = VnodeNote(rawValue: 0x0200)
    /// The file was read. C: `NOTE_READ`.
    public static let read = VnodeNote(rawValue: 0x0400)
}

/// `fflags` of ``Filter/fileSystem`` (EVFILT_FS) events: what happened to mounts since the last
/// event (FreeBSD's `VQ_*` values, from `<sys/mount.h>` there, `<sys/event.h>` here). A
/// registration's `fflags` are ignored: every change is reported. Linux tells ``mount`` and
/// ``unmount`` (in the caller's mount namespace); FreeBSD 12 raises the others for NFS only.
public struct FileSystemNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A server stopped responding. C: `VQ_NOTRESP`.
    public static let notResponding = FileSystemNote(rawValue: 0x0001)
    /// A server refused authentication. C: `VQ_NEEDAUTH`.
    public static let needsAuthentication = FileSystemNote(rawValue: 0x0002)
    /// A file system is low on space. C: `VQ_LOWDISK`.
    public static let lowDisk = FileSystemNote(rawValue: 0x0004)
    /// A file system was mounted. C: `VQ_MOUNT`.
    public static let mount = FileSystemNote(rawValue: 0x0008)
    /// A file system was unmounted. C: `VQ_UNMOUNT`.
    public static let unmount = FileSystemNote(rawValue: 0x0010)
    /// A file system is dead and needs a forced unmount. C: `VQ_DEAD`.
    public static let dead = FileSystemNote(rawValue: 0x0020)
    /// A file system needs help from an external program. C: `VQ_ASSIST`.
    public static let assist = FileSystemNote(rawValue: 0x0040)
    /// A server's lock daemon stopped responding. C: `VQ_NOTRESPLOCK`.
    public static let lockNotResponding = FileSystemNote(rawValue: 0x0080)
}
