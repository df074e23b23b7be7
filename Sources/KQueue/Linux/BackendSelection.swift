import Glibc
import SystemPackage

/// Which readiness backend a new kqueue gets: `KQUEUE_BACKEND` (`epoll`, `io_uring`, `auto`)
/// or the Swift API's request, and whether io_uring can be used here (probed once: a ring is
/// created and closed; refused by old kernels, `kernel.io_uring_disabled`, seccomp).
///
/// The `auto` rule (docs/BENCHMARKS.md, "Backends"): epoll. Measured on this kind of
/// machine, io_uring wins the re-arm workloads (EV_DISPATCH, EV_ONESHOT) and loses the
/// persistent ones, whose level-triggered polls must be armed again after every report,
/// and epoll is what every kqueue got before; a program that re-arms asks for io_uring.
enum BackendSelection {
    /// The process's default request, from `KQUEUE_BACKEND` as it is when the kqueue is
    /// created (unset or unknown: auto). Read at every kqueue(): a C program may set it
    /// between two, as a shell sets it for a child.
    static var processRequest: KernelQueue.BackendRequest {
        guard let text = environment else { return .automatic }
        return KernelQueue.BackendRequest(text) ?? .automatic
    }

    static var environment: String? {
        guard let value = getenv("KQUEUE_BACKEND") else { return nil }
        return String(cString: value)
    }

    /// nil when a ring can be created here, else why not (probed on first use).
    static let ioURingUnavailable: Errno? = Syscall.ringProbe()

    /// The backend to open for `request` (the ring's own creation may still fail: the kqueue
    /// then falls back to epoll and records why).
    static func backend(for request: KernelQueue.BackendRequest) -> KernelQueue.Backend {
        switch request {
        case .automatic: automaticChoice
        case .backend(let backend): backend
        }
    }

    /// `auto`'s choice (see the type's comment for the rule).
    static let automaticChoice = KernelQueue.Backend.epoll

    static func report() -> BackendReport {
        let request = processRequest
        let unavailable = ioURingUnavailable
        let wanted = backend(for: request)
        let chosen: KernelQueue.Backend = wanted == .ioURing && unavailable != nil ? .epoll : wanted
        let reason: String
        switch (request, wanted, unavailable) {
        case (.automatic, _, _):
            reason =
                "auto: epoll (io_uring is faster only for re-arming workloads, measured in docs/BENCHMARKS.md; "
                + "ask for it with KQUEUE_BACKEND=io_uring or KernelQueue(backend:))"
        case (_, .ioURing, let error?):
            reason = "io_uring asked for but unavailable (\(error)): epoll"
        default:
            reason = "\(wanted) asked for"
        }
        return BackendReport(
            environment: environment, request: request, ioURingUnavailable: unavailable, chosen: chosen,
            reason: reason)
    }
}
