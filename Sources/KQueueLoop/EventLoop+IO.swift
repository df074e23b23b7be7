import KQueue

/// The socket support of the networking layer: one slot per socket, holding at most one
/// waiting reader and one waiting writer.
///
/// Reads use a persistent EV_CLEAR registration: an event comes when new data (or end of
/// stream) arrives, and the slot remembers it (`mayRead`) until a read finds the socket
/// drained; so a steady stream of requests costs no kevent change. A writer that finds no
/// room arms a one-shot EVFILT_WRITE, which joins the next kevent() call. All of it runs on
/// the loop thread only.
extension EventLoop {
    /// Takes a slot for socket `descriptor` and registers its read interest (EV_CLEAR).
    func registerIO(_ descriptor: Int32) throws(Errno) -> SlotToken {
        assertInLoop()
        let token = try core.allocate(.io(IOEntry(descriptor: descriptor)))
        do throws(Errno) {
            try queue.applyReportingErrno([
                .read(FileDescriptor(rawValue: descriptor), flags: [.add, .clear], udata: token.udata)
            ])
        } catch {
            core.release(token)
            throw error
        }
        return token
    }

    /// The socket's slot, nil once it is gone (closed).
    @inline(__always)
    func ioState(_ token: SlotToken) -> IOEntry? {
        guard core.isLive(token), case .io(let entry) = core.slots[Int(token.index)].handler else { return nil }
        return entry
    }

    /// Why the socket `token` names cannot be used: the loop shut down, the idle timeout
    /// closed it, or it was closed.
    func ioFailure(_ token: SlotToken) -> Errno {
        if core.closing { return .canceled }
        if let entry = ioState(token), entry.expired { return .timedOut }
        return .badFileDescriptor
    }

    /// A read or write moved data: stamps the socket's progress with the iteration time (a
    /// plain store: no clock read, no branch on whether a timeout is set).
    @inline(__always)
    func ioProgress(_ token: SlotToken) {
        core.idle[Int(token.index)].lastProgress = core.now
    }

    /// True when a read may find data: an event came since the last read found none.
    @inline(__always)
    func ioMayRead(_ token: SlotToken) -> Bool {
        guard core.isLive(token), case .io(let entry) = core.slots[Int(token.index)].handler else { return true }
        return entry.mayRead
    }

    /// A read found the socket drained: wait for the next read event before reading again.
    @inline(__always)
    func ioDrained(_ token: SlotToken) {
        guard core.isLive(token), case .io(var entry) = core.slots[Int(token.index)].handler else { return }
        // After end of stream no new event comes: reads must go on finding it.
        guard !entry.endOfStream else { return }
        entry.mayRead = false
        core.slots[Int(token.index)].handler = .io(entry)
    }

    /// Waits for a read event (returns at once when one came already).
    func ioWaitReadable(_ token: SlotToken) async throws {
        try await ioWait(token, reader: true)
    }

    /// Arms a one-shot EVFILT_WRITE and waits for room to write.
    func ioWaitWritable(_ token: SlotToken) async throws {
        try await ioWait(token, reader: false)
    }

    private func ioWait(_ token: SlotToken, reader: Bool) async throws {
        assertInLoop()
        let core = self.core
        // This wait's ticket: the cancellation handler below acts only on the wait that holds it.
        let ticket = core.takeWaitTicket()
        // The form without executor hops of its own, as in `nextEvent(_:)` (EventLoop+Async.swift).
        try await _unsafeInheritExecutor_withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let index = Int(token.index)
                guard core.isLive(token), case .io(var entry) = core.slots[index].handler else {
                    continuation.resume(throwing: core.closing ? Errno.canceled : Errno.badFileDescriptor)
                    return
                }
                if entry.expired { return continuation.resume(throwing: Errno.timedOut) }
                if let failure = entry.failure {
                    entry.failure = nil
                    core.slots[index].handler = .io(entry)
                    continuation.resume(throwing: failure)
                    return
                }
                // Cancelled before it waits: onCancel ran already and found no one to resume.
                if Task.isCancelled { return continuation.resume(throwing: CancellationError()) }
                if reader {
                    guard !entry.mayRead else { return continuation.resume() }
                    guard entry.reader == nil else { return continuation.resume(throwing: Errno.resourceBusy) }
                    entry.reader = continuation
                    entry.readerTicket = ticket
                } else {
                    guard entry.writer == nil else { return continuation.resume(throwing: Errno.resourceBusy) }
                    entry.writer = continuation
                    entry.writerTicket = ticket
                    if !entry.writeArmed {
                        entry.writeArmed = true
                        core.changes.append(
                            .write(
                                FileDescriptor(rawValue: entry.descriptor), flags: [.add, .oneShot],
                                udata: token.udata))
                    }
                }
                core.slots[index].handler = .io(entry)
            }
        } onCancel: {
            if self.inEventLoop {
                self.ioCancelWait(token, reader: reader, ticket: ticket)
            } else {
                self.execute { self.ioCancelWait(token, reader: reader, ticket: ticket) }
            }
        }
    }

    /// Resumes the waiting reader or writer with `CancellationError` if it is still the wait
    /// `ticket` names; the socket stays usable. A handler that runs after its wait ended
    /// (from another thread its job may come after the next wait began) does nothing.
    func ioCancelWait(_ token: SlotToken, reader: Bool, ticket: UInt64) {
        guard core.isLive(token), case .io(var entry) = core.slots[Int(token.index)].handler else { return }
        guard (reader ? entry.readerTicket : entry.writerTicket) == ticket else { return }
        let continuation = reader ? entry.reader : entry.writer
        if reader { entry.reader = nil } else { entry.writer = nil }
        core.slots[Int(token.index)].handler = .io(entry)
        continuation?.resume(throwing: CancellationError())
    }

    /// Frees the socket's slot and closes it; waiting tasks get `error`.
    /// False when the slot was gone already (shutdown closed the socket).
    @discardableResult
    func closeIO(_ token: SlotToken, error: Errno = .badFileDescriptor) -> Bool {
        assertInLoop()
        guard core.isLive(token), case .io(let entry) = core.slots[Int(token.index)].handler else { return false }
        core.release(token)
        _ = core.dropPendingChange(for: token)
        // Closing the descriptor removes its kevent registrations with it.
        LoopSyscall.close(entry.descriptor)
        if core.idleTracked == 0 { updateIdleTimer(smallest: nil) }
        entry.reader?.resume(throwing: error)
        entry.writer?.resume(throwing: error)
        return true
    }
}
