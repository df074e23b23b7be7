import KQueue

extension KernelQueue {
    /// `apply(_:)` with a failed change's errno as the error. The loop registers one change
    /// at a time, so the change is known to the caller; its API throws `Errno` throughout.
    func applyReportingErrno(_ changes: [KEvent]) throws(Errno) {
        do {
            try apply(changes)
        } catch {
            throw error.errno
        }
    }
}
