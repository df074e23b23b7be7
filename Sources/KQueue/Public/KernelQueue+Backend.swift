/// The kernel interface a kqueue waits in (docs/ARCHITECTURE.md, "Backends").
extension KernelQueue {
    /// A readiness backend: what a kqueue uses to learn that descriptors are ready.
    public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
        /// An epoll instance: one `epoll_ctl` per change, one `epoll_wait` per wait.
        case epoll
        /// io_uring poll requests: the changelist is submitted with the wait, in one
        /// `io_uring_enter`.
        case ioURing = "io_uring"

        public var description: String { rawValue }
    }

    /// What a new kqueue asks for. The environment variable `KQUEUE_BACKEND`
    /// (`epoll`, `io_uring` or `auto`) sets the default of the process.
    public enum BackendRequest: Sendable, Equatable, CustomStringConvertible {
        /// The automatic rule (docs/ARCHITECTURE.md, "Readiness backends"): io_uring where it is available and measured
        /// faster, else epoll.
        case automatic
        /// This backend; io_uring falls back to epoll where it is unavailable (no kernel
        /// support, `kernel.io_uring_disabled`, a seccomp filter, no memory for a ring).
        case backend(Backend)

        public var description: String {
            switch self {
            case .automatic: "auto"
            case .backend(let backend): backend.rawValue
            }
        }

        /// Parses `epoll`, `io_uring` (or `iouring`, `uring`) and `auto`.
        public init?(_ text: String) {
            switch text.lowercased() {
            case "auto", "automatic", "": self = .automatic
            case "epoll": self = .backend(.epoll)
            case "io_uring", "iouring", "uring": self = .backend(.ioURing)
            default: return nil
            }
        }
    }

    /// Creates a kqueue on the backend `request` asks for (``BackendRequest/backend(_:)``
    /// of io_uring gives epoll where io_uring is unavailable: ``backend`` says which one).
    public convenience init(backend request: BackendRequest) throws(Errno) {
        try self.init(core: KQueueRegistry.create(backend: request))
    }

    /// The backend this kqueue uses.
    public var backend: Backend { core.backend.kind }

    /// Why this kqueue does not use the backend it asked for (io_uring could not be set up:
    /// e.g. `.notPermitted` under `kernel.io_uring_disabled` or a seccomp filter), nil if it does.
    public var backendFallback: Errno? { core.fallback }

    /// How the process chooses: the request in the environment, whether io_uring is available
    /// here, and the backend a new kqueue gets, with the reason (`kq info` prints it).
    public static var backendReport: BackendReport { BackendSelection.report() }
}
