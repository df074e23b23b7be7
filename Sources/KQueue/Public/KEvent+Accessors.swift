/// Typed views of a returned event, one per filter: each is nil for an event of another
/// filter, so `if let descriptor = event.descriptor` both checks the filter and converts the
/// ident. Computed from the C fields; no allocation.
extension KEvent {
    /// The descriptor of a ``Filter/read``, ``Filter/write``, ``Filter/empty`` or
    /// ``Filter/vnode`` event (its `ident`).
    @inlinable public var descriptor: FileDescriptor? {
        switch filter {
        case .read, .write, .empty, .vnode: return FileDescriptor(rawValue: Int32(truncatingIfNeeded: ident))
        default: return nil
        }
    }

    /// The process of a ``Filter/process`` event (its `ident`).
    @inlinable public var processID: ProcessID? {
        guard filter == .process else { return nil }
        return ProcessID(rawValue: Int32(truncatingIfNeeded: ident))
    }

    /// The signal of a ``Filter/signal`` event (its `ident`); `data` counts its deliveries
    /// since the last event.
    @inlinable public var signal: Signal? {
        guard filter == .signal else { return nil }
        return Signal(rawValue: Int32(truncatingIfNeeded: ident))
    }

    /// What happened to the file of a ``Filter/vnode`` event (its `fflags`).
    @inlinable public var vnodeNote: VnodeNote? {
        guard filter == .vnode else { return nil }
        return VnodeNote(rawValue: fflags)
    }

    /// What happened to the process of a ``Filter/process`` event (its `fflags`); with
    /// ``ProcessNote/exit``, ``processExitStatus`` decodes `data`.
    @inlinable public var processNote: ProcessNote? {
        guard filter == .process else { return nil }
        return ProcessNote(rawValue: fflags)
    }

    /// The parent of a process followed by ``ProcessNote/track``: in its first event, which
    /// reports ``ProcessNote/child``, `data` is the parent's pid.
    @inlinable public var parentProcessID: ProcessID? {
        guard filter == .process, fflags & ProcessNote.child.rawValue != 0 else { return nil }
        return ProcessID(rawValue: Int32(truncatingIfNeeded: data))
    }

    /// What happened to mounts, in a ``Filter/fileSystem`` event (its `fflags`).
    @inlinable public var fileSystemNote: FileSystemNote? {
        guard filter == .fileSystem else { return nil }
        return FileSystemNote(rawValue: fflags)
    }

    /// The expirations a ``Filter/timer`` event counts (its `data`) since the last one.
    @inlinable public var timerExpirations: Int64? {
        guard filter == .timer else { return nil }
        return data
    }

    /// The 24-bit value a ``Filter/user`` event carries (its `fflags` less the control bits).
    @inlinable public var userValue: UInt32? {
        guard filter == .user else { return nil }
        return fflags & UserNote.valueMask
    }

    /// The socket error of a ``Filter/read`` or ``Filter/write`` event that reports
    /// ``Flags/endOfFile`` (its `fflags`, as on FreeBSD), or nil: no error, or another event.
    @inlinable public var socketError: Errno? {
        guard filter == .read || filter == .write, flags.contains(.endOfFile), fflags != 0 else { return nil }
        return Errno(rawValue: Int32(truncatingIfNeeded: fflags))
    }
}

extension KEvent {
    /// A change or event for deliveries of `signal` to the process (``Filter/signal``; EV_CLEAR
    /// is added by the filter; each event's `data` counts the deliveries since the last one).
    /// The application's own disposition keeps working: kqueue only observes, so a program
    /// that handles ``Signal/interrupt`` this way first calls ``Signal/ignore()``.
    @inlinable
    public static func signal(
        _ signal: Signal, flags: Flags = .add, udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(ident: UInt(UInt32(bitPattern: signal.rawValue)), filter: .signal, flags: flags, udata: udata)
    }

    /// A change or event for process `process` (``Filter/process``; EV_CLEAR is added by the
    /// filter).
    @inlinable
    public static func process(
        _ process: ProcessID, flags: Flags = .add, note: ProcessNote = .exit, udata: UnsafeMutableRawPointer? = nil
    ) -> KEvent {
        KEvent(
            ident: UInt(UInt32(bitPattern: process.rawValue)), filter: .process, flags: flags, fflags: note.rawValue,
            udata: udata)
    }
}
