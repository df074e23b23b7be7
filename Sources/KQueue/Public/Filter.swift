/// The kind of source a ``KEvent`` describes (the `filter` field of `struct kevent`).
@frozen
public struct Filter: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The FreeBSD `EVFILT_*` value.
    public var rawValue: Int16

    @inlinable
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// Readable data on a descriptor. The corresponding C constant is `EVFILT_READ`.
    public static let read = Filter(rawValue: -1)
    /// Room to write on a descriptor. The corresponding C constant is `EVFILT_WRITE`.
    public static let write = Filter(rawValue: -2)
    /// Asynchronous I/O completion. The corresponding C constant is `EVFILT_AIO`.
    public static let aio = Filter(rawValue: -3)
    /// Changes to a file or directory. The corresponding C constant is `EVFILT_VNODE`.
    public static let vnode = Filter(rawValue: -4)
    /// Process events (exit, fork, exec). The corresponding C constant is `EVFILT_PROC`.
    public static let process = Filter(rawValue: -5)
    /// Signal deliveries. The corresponding C constant is `EVFILT_SIGNAL`.
    public static let signal = Filter(rawValue: -6)
    /// Timers. The corresponding C constant is `EVFILT_TIMER`.
    public static let timer = Filter(rawValue: -7)
    /// Process descriptors. The corresponding C constant is `EVFILT_PROCDESC`.
    public static let processDescriptor = Filter(rawValue: -8)
    /// File system events. The corresponding C constant is `EVFILT_FS`.
    public static let fileSystem = Filter(rawValue: -9)
    /// List I/O completion. The corresponding C constant is `EVFILT_LIO`.
    public static let listIO = Filter(rawValue: -10)
    /// User-triggered events. The corresponding C constant is `EVFILT_USER`.
    public static let user = Filter(rawValue: -11)
    /// sendfile completion. The corresponding C constant is `EVFILT_SENDFILE`.
    public static let sendFile = Filter(rawValue: -12)
    /// An empty socket send buffer. The corresponding C constant is `EVFILT_EMPTY`.
    public static let empty = Filter(rawValue: -13)

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
