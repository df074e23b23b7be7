// Examples/AsyncIO/main.swift: asynchronous writes and reads whose completions are kqueue events.
import KQueue

/// What a finished request gave: its byte count, and the bytes of its buffer.
struct Finished {
    var count: Int
    var bytes: [UInt8]
}

/// Waits for the request's EVFILT_AIO event, then takes its completion: the result and the
/// buffer, which the request owned until then (`AIOBuffer` is noncopyable).
func finish(_ id: AIORequestID, on queue: KernelQueue) throws -> Finished {
    while true {
        let events: [KEvent]
        do {
            events = try queue.events(timeout: .seconds(5))
        } catch Errno.interrupted {
            continue  // a signal arrived during the wait: wait again
        } catch {
            throw error
        }
        for event in events where event.aioRequest == id {
            print("event:", event.filter, "result:", event.aioResult.map { "\($0)" } ?? "none")
            guard let done = try queue.completion(of: id) else { continue }
            return Finished(count: (try? done.result.get()) ?? -1, bytes: done.buffer.bytes)
        }
    }
}

func run() throws {
    let queue = try KernelQueue()  // AIO on an io_uring of the queue's own, or a thread pool
    let file = try FileDescriptor.open(
        "/tmp/kqueue-aio-example.txt", .readWrite, options: [.create, .truncate, .closeOnExec],
        permissions: .ownerReadWrite)
    defer { try? file.close() }
    let write = AIORequest.write(to: file, at: 0, from: AIOBuffer("hello, kqueue\n".utf8))
    let written = try finish(try queue.submit(write), on: queue)
    print("wrote", written.count, "bytes")
    let read = AIORequest.read(from: file, at: 7, into: AIOBuffer(count: 64))
    let got = try finish(try queue.submit(read), on: queue)
    print("read:", String(decoding: got.bytes.prefix(got.count), as: UTF8.self), terminator: "")
}

try run()
