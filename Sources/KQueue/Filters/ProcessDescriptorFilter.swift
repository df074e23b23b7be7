import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// EVFILT_PROCDESC (SPEC.md 3): the ident is a process descriptor (a pidfd, from `pdfork` or
/// `pidfd_open`); NOTE_EXIT reports the process's exit with `data` = its wait status, flags
/// EV_EOF|EV_ONESHOT, as FreeBSD's `procdesc_kqops_event`. EV_CLEAR is added at attach. A
/// descriptor that is not a process descriptor is EINVAL (FreeBSD's `fo_kqfilter` of other
/// files); close(2) of the descriptor removes the knote.
///
/// The knote watches a pidfd of its own (the descriptor's process, opened with `pidfd_open` and
/// checked against the descriptor, so a reused pid is never watched), registered edge-triggered
/// in the kqueue's epoll instance with the knote's index as payload: registering the
/// application's descriptor itself would clash with a READ or WRITE knote on the same number,
/// and a duplicate of it would keep its file alive (process descriptors act on their last
/// close). A process reaped before registration (by an explicit `waitpid`) needs no watch: its
/// status is in the descriptor (PIDFD_GET_INFO, Linux 6.15+).
enum ProcessDescriptorFilter: FilterOperations {
    static var filter: Int16 { FilterID.procdesc }
    static var identIsDescriptor: Bool { true }

    static func attach(_ knote: Int32, in state: inout QueueState) throws(Errno) {
        let descriptor = Int32(truncatingIfNeeded: state.table[knote].ident)
        var pid: pid_t = 0
        let error = kq_shim_procdesc_pid(descriptor, &pid)
        if error != 0 { throw Errno(rawValue: error) }
        var watch: Int32 = -1
        if pid > 0, let pidfd = try? KQueueRegistry.openProcessDescriptor(pid) {
            var now: pid_t = 0
            if kq_shim_procdesc_pid(descriptor, &now) == 0 && now == pid {
                watch = pidfd  // still not reaped after the open: the pid was its own
            } else {
                closeWatch(pidfd)
            }
        }
        if watch >= 0 {
            let edge = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
            do throws(Errno) {
                let tag = EpollTag.source(filter: filter, payload: UInt32(knote))
                try state.backend.add(watch, events: edge, tag: tag)
            } catch {
                closeWatch(watch)
                throw error
            }
        }
        state.table[knote].filterState = Int64(watch)
        state.table[knote].flags |= EV.clear  // procdesc_kqfilter: EV_CLEAR
        Syscall.markWatched(descriptor)  // close(2) of it removes the knote
    }

    private static func closeWatch(_ pidfd: Int32) {
        KQueueRegistry.processDescriptorClosing(pidfd)
        Syscall.closeInternal(pidfd)
    }

    static func detach(_ knote: Int32, in state: inout QueueState) {
        let watch = Int32(truncatingIfNeeded: state.table[knote].filterState)
        if watch >= 0 {
            state.backend.remove(watch)
            closeWatch(watch)
        }
        state.table[knote].filterState = -1
    }

    /// The knote's watch (payload: its index) reported: the process exited.
    static func sourceReported(_ payload: UInt32, in state: inout QueueState) {
        let index = Int32(bitPattern: payload)
        guard index >= 0, Int(index) < state.table.slots.count, state.table[index].status.contains(.inUse),
            state.table[index].filter == filter
        else { return }
        exitLearnt(index, in: &state)
    }

    /// After EV_ADD, EV_ENABLE or a change: a process that already exited reports at once
    /// (FreeBSD's first `f_event` with hint 0).
    static func registered(_ knote: Int32, justAttached: Bool, in state: inout QueueState) {
        guard state.table[knote].status.contains(.inUse) else { return }
        if hasExited(knote, in: state) {
            exitLearnt(knote, in: &state)
            guard state.table[knote].status.contains(.inUse) else { return }
        }
        checkAndQueue(knote, in: &state)
    }

    static func event(_ knote: Int32, in state: inout QueueState) -> Bool {
        state.table[knote].fflags != 0
    }

    private static func hasExited(_ knote: Int32, in state: borrowing QueueState) -> Bool {
        let watch = Int32(truncatingIfNeeded: state.table[knote].filterState)
        return watch < 0 || Syscall.pidfdHasExited(watch)
    }

    /// The process exited: NOTE_EXIT with the wait status, EV_EOF and EV_ONESHOT when NOTE_EXIT
    /// is wanted; otherwise the knote is dropped (FreeBSD's EV_DROP: nothing was asked).
    private static func exitLearnt(_ knote: Int32, in state: inout QueueState) {
        guard hasExited(knote, in: state), !state.table[knote].status.contains(.endOfFile) else { return }
        guard state.table[knote].savedFlags & Note.exit != 0 else {
            state.drop(knote)
            return
        }
        let watch = Int32(truncatingIfNeeded: state.table[knote].filterState)
        let descriptor = Int32(truncatingIfNeeded: state.table[knote].ident)
        var pid: pid_t = 0
        _ = kq_shim_procdesc_pid(descriptor, &pid)
        // From the watch while the process is a zombie, else from the descriptor itself.
        let status =
            watch >= 0
            ? Syscall.pidfdExitStatus(watch, pid: pid) ?? Syscall.pidfdExitStatus(descriptor, pid: pid)
            : Syscall.pidfdExitStatus(descriptor, pid: pid)
        if let status {
            state.table[knote].fflags |= Note.exit
            state.table[knote].data = Int64(status)
        } else {
            state.table[knote].fflags |= Note.exit | Note.exitUnknown
            state.table[knote].data = 0
        }
        state.table[knote].flags |= EV.oneShot
        state.table[knote].status.insert(.endOfFile)
        state.activate(knote)
    }
}
