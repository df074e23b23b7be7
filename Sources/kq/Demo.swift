import ArgumentParser
import Glibc
import KQueue

/// A self-contained loopback tour: a TCP server and client on 127.0.0.1 driven by one
/// kqueue, plus a user event triggered from another thread. Checks what it sees and exits
/// non-zero if anything differs from FreeBSD's semantics.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a loopback demo of KQueue (listening, accept, read, EOF, user events) and check it.")

    func run() throws {
        let queue = try KernelQueue()
        let (listener, port) = try Socket.listenOnLoopback()
        try Socket.setNonBlocking(listener)
        print("kqueue descriptor \(queue.descriptor.rawValue); listening on 127.0.0.1:\(port)")
        try queue.apply([.read(FileDescriptor(rawValue: listener)), .user(7, flags: [.add, .clear])])

        let client = try Socket.connect(host: "127.0.0.1", port: String(port))
        var event = try expect(queue, .read, ident: listener, "a connection waits in the accept queue")
        check(event.data == 1, "data is the accept-queue length (1), got \(event.data)")
        let server = accept(listener, nil, nil)
        guard server >= 0 else { throw Socket.Failure("accept") }
        try Socket.setNonBlocking(server)
        try queue.apply([
            .read(FileDescriptor(rawValue: server), flags: [.add, .clear]),
            .read(FileDescriptor(rawValue: listener), flags: .delete),
        ])

        let message = Array("hello, kqueue\n".utf8)
        _ = message.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        event = try expect(queue, .read, ident: server, "the client's bytes are readable")
        check(
            event.data == Int64(message.count),
            "data is the number of bytes readable (\(message.count)), got \(event.data)")
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(server, $0.baseAddress, $0.count) }
        print("  server read: \(String(decoding: buffer[..<max(0, n)], as: UTF8.self).debugDescription)")

        let trigger = Thread {
            try? queue.apply([.user(7, note: UserNote.copy(0x42).triggering, data: 2026)])
        }
        event = try expect(queue, .user, ident: 7, "a user event triggered from another thread wakes the wait")
        check(
            event.fflags == 0x42 && event.data == 2026,
            "fflags/data as stored (0x42/2026), got \(event.fflags)/\(event.data)")
        trigger.join()

        Glibc.close(client)
        event = try expect(queue, .read, ident: server, "the peer closed: EV_EOF")
        check(event.flags.contains(.endOfFile), "EV_EOF is set")
        Glibc.close(server)
        Glibc.close(listener)
        queue.close()
        print(failures == 0 ? "all checks passed" : "\(failures) check(s) failed")
        if failures > 0 { throw ExitCode.failure }
    }

    private var failures: Int { Demo.failureCount }
    nonisolated(unsafe) private static var failureCount = 0

    private func check(_ condition: Bool, _ what: String) {
        print("  \(condition ? "ok  " : "FAIL") \(what)")
        if !condition { Demo.failureCount += 1 }
    }

    private func expect(_ queue: KernelQueue, _ filter: Filter, ident: Int32, _ what: String) throws -> KEvent {
        let events = try queue.events(maxEvents: 8, timeout: .seconds(5))
        print("event: \(events.map(\.description).joined(separator: ", "))")
        guard let event = events.first(where: { $0.filter == filter && $0.ident == UInt(ident) }) else {
            check(false, what)
            throw ExitCode.failure
        }
        check(true, what)
        return event
    }
}

/// A joinable thread running one closure (enough for the demo; no Foundation needed).
final class Thread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self)
        pthread_create(
            &thread, nil,
            { argument in
                let me = Unmanaged<Thread>.fromOpaque(argument!).takeRetainedValue()
                me.body()
                return nil
            }, box.toOpaque())
    }

    func join() { pthread_join(thread, nil) }
}
