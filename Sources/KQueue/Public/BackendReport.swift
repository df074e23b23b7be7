/// How a new kqueue's backend is chosen in this process (``KernelQueue/backendReport``).
public struct BackendReport: Sendable {
    /// `KQUEUE_BACKEND` as set, nil when unset.
    public var environment: String?
    /// What a new kqueue asks for by default.
    public var request: KernelQueue.BackendRequest
    /// nil when io_uring can be used here, else the errno its set-up failed with.
    public var ioURingUnavailable: Errno?
    /// The backend a new kqueue gets.
    public var chosen: KernelQueue.Backend
    /// Why, in words.
    public var reason: String
}
