import CKQueue
import CKQueueShim
import Glibc
import SystemPackage

/// The epoll registration of a descriptor watched by EVFILT_READ and/or EVFILT_WRITE.
///
/// Mode: level-triggered, so that epoll's own ready list is the queue of ready descriptors
/// and a returned level event costs no extra system call. The registration runs
/// edge-triggered (EPOLLET) when a knote wants EV_CLEAR or a low-water mark, when no knote
/// is enabled (only HUP/ERR could be reported), or after readiness was reported that no knote
/// could use; a level knote on an edge-triggered registration is re-checked from the active
/// queue after each delivery.
extension DescriptorFilter {
    /// What ``syncRegistration(fd:repoll:in:)`` did.
    enum SyncResult: Equatable {
        case unchanged
        /// The registration was added or modified: epoll re-polled the file and reports what
        /// is ready now.
        case repolled
    }

    /// The epoll `events` word the descriptor's enabled knotes need. `quietAsEdge`: the
    /// backend reports hang-up and error even without interest (epoll), so a registration no
    /// knote listens to runs edge-triggered; the ring does not poll such a registration at all.
    static func desiredEvents(_ entry: DescriptorEntry, in table: borrowing KnoteTable, quietAsEdge: Bool) -> UInt32 {
        var events: UInt32 = 0
        var edge = entry.edgeForced
        for pass in 0..<2 {
            let index = pass == 0 ? entry.read : entry.write
            let interest = pass == 0 ? ReadFilter.epollInterest : WriteFilter.epollInterest
            guard index >= 0, !table[index].status.contains(.disabled) else { continue }
            events |= interest
            if table[index].flags & EV.clear != 0 || table[index].savedFlags & Note.lowWater != 0 { edge = true }
        }
        // EVFILT_EMPTY wants the write-space edges only (a socket is writable nearly always).
        if entry.empty >= 0 && !table[entry.empty].status.contains(.disabled) {
            events |= EmptyFilter.epollInterest
            edge = true
        }
        if events == 0 && quietAsEdge { edge = true }  // quiet: HUP and ERR cannot be masked out
        return edge ? events | edgeTriggered : events
    }

    /// Brings the epoll registration of `fd` in line with its knotes.
    ///
    /// An edge-triggered registration only ever gains interest bits (until it is removed):
    /// modifying it makes epoll re-poll the file and report an EV_CLEAR knote again although
    /// its source did not change, while a stale bit costs at most one ignored report per edge.
    ///
    /// With `repoll`, the registration is modified even when unchanged, so that epoll polls
    /// the file again and reports it once if it is ready.
    @discardableResult
    static func syncRegistration(fd: Int32, repoll: Bool = false, in state: inout QueueState) -> Result<
        SyncResult, Errno
    > {
        let i = Int(fd)
        guard i < state.sources.descriptors.entries.count else { return .success(.unchanged) }
        let entry = state.sources.descriptors.entries[i]
        guard entry.kind.usesEpoll else { return .success(.unchanged) }
        if entry.isEmpty {
            if entry.isRegistered {
                state.backend.remove(fd)
                state.sources.descriptors.entries[i].isRegistered = false
            }
            return .success(.unchanged)
        }
        var events = desiredEvents(entry, in: state.table, quietAsEdge: state.backend.reportsWithoutInterest)
        if entry.isRegistered {
            if entry.isEdgeTriggered { events |= entry.registeredEvents | edgeTriggered }
            if events == entry.registeredEvents && !repoll { return .success(.unchanged) }
            let tag = EpollTag.descriptor(fd, generation: entry.generation)
            do throws(Errno) {
                try state.backend.modify(fd, events: events, tag: tag)
                state.sources.descriptors.entries[i].registeredEvents = events
                return .success(.repolled)
            } catch {
                // ENOENT: the number now names another open file (closed behind our back and
                // reused); the old registration went with the old file. Register the new one.
                guard error == .noSuchFileOrDirectory else { return .failure(error) }
            }
        }
        return addRegistration(fd: fd, events: events, in: &state)
    }

    private static func addRegistration(fd: Int32, events: UInt32, in state: inout QueueState) -> Result<
        SyncResult, Errno
    > {
        let i = Int(fd)
        let generation = EpollTag.nextGeneration(after: state.sources.descriptors.entries[i].generation)
        let tag = EpollTag.descriptor(fd, generation: generation)
        do throws(Errno) {
            try state.backend.add(fd, events: events, tag: tag)
        } catch {
            return .failure(error)
        }
        state.sources.descriptors.entries[i].generation = generation
        state.sources.descriptors.entries[i].isRegistered = true
        state.sources.descriptors.entries[i].registeredEvents = events
        return .success(.repolled)
    }

    /// Removes and adds the registration of `fd` again: epoll re-polls the file and, if it is
    /// ready, queues it at the tail of its list.
    static func reregister(fd: Int32, in state: inout QueueState) {
        let i = Int(fd)
        guard i < state.sources.descriptors.entries.count, state.sources.descriptors.entries[i].isRegistered else {
            return
        }
        state.backend.remove(fd)
        state.sources.descriptors.entries[i].isRegistered = false
        syncRegistration(fd: fd, in: &state)
    }
}
