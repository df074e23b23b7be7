/// The kind of source a ``KEvent`` describes (the `filter` field of `struct kevent`).
@frozen
public struct Filter: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The FreeBSD `EVFILT_*` value.
    public var rawValue: Int16

    @inlinable
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// Readable data on a descriptor. The corresponding C constant is `EVFILT_READ`.
    @inlinable public static var read: Filter { Filter(rawValue: -1) }
    /// Room to write on a descriptor. The corresponding C constant is `EVFILT_WRITE`.
    @inlinable public static var write: Filter { Filter(rawValue: -2) }
    /// Asynchronous I/O completion. The corresponding C constant is `EVFILT_AIO`.
    @inlinable public static var aio: Filter { Filter(rawValue: -3) }
    /// Changes to a file or directory. The corresponding C constant is `EVFILT_VNODE`.
    @inlinable public static var vnode: Filter { Filter(rawValue: -4) }
    /// Process events (exit, fork, exec). The corresponding C constant is `EVFILT_PROC`.
    @inlinable public static var process: Filter { Filter(rawValue: -5) }
    /// Signal deliveries. The corresponding C constant is `EVFILT_SIGNAL`.
    @inlinable public static var signal: Filter { Filter(rawValue: -6) }
    /// Timers. The corresponding C constant is `EVFILT_TIMER`.
    @inlinable public static var timer: Filter { Filter(rawValue: -7) }
    /// Process descriptors. The corresponding C constant is `EVFILT_PROCDESC`.
    @inlinable public static var processDescriptor: Filter { Filter(rawValue: -8) }
    /// File system events. The corresponding C constant is `EVFILT_FS`.
    @inlinable public static var fileSystem: Filter { Filter(rawValue: -9) }
    /// List I/O completion. The corresponding C constant is `EVFILT_LIO`.
    @inlinable public static var listIO: Filter { Filter(rawValue: -10) }
    /// User-triggered events. The corresponding C constant is `EVFILT_USER`.
    @inlinable public static var user: Filter { Filter(rawValue: -11) }
    /// sendfile completion. The corresponding C constant is `EVFILT_SENDFILE`.
    @inlinable public static var sendFile: Filter { Filter(rawValue: -12) }
    /// An empty socket send buffer. The corresponding C constant is `EVFILT_EMPTY`.
    @inlinable public static var empty: Filter { Filter(rawValue: -13) }

    /// The Swift name: `.read`, `.user`; `Filter(-42)` for an unknown value.
    public var description: String {
        switch self {
        case .read: return ".read"
        case .write: return ".write"
        case .aio: return ".aio"
        case .vnode: return ".vnode"
        case .process: return ".process"
        case .signal: return ".signal"
        case .timer: return ".timer"
        case .processDescriptor: return ".processDescriptor"
        case .fileSystem: return ".fileSystem"
        case .listIO: return ".listIO"
        case .user: return ".user"
        case .sendFile: return ".sendFile"
        case .empty: return ".empty"
        default: return "Filter(\(rawValue))"
        }
    }
}
