// Examples/GettingStarted/main.swift: a pipe, a user event and a timer on one kqueue.
import KQueue

/// What each registration is: a token, carried in the event's udata by value.
enum Source: UInt8, KEventToken {
    case input = 1, wakeUp, tick
}

let queue = try KernelQueue()
let pipe = try FileDescriptor.pipe()
defer {
    try? pipe.readEnd.close()
    try? pipe.writeEnd.close()
}
try queue.apply([
    .read(pipe.readEnd).withToken(Source.input),  // EVFILT_READ, EV_ADD
    .user(1, flags: [.add, .clear]).withToken(Source.wakeUp),  // EVFILT_USER
    .timer(2, every: .milliseconds(20)).withToken(Source.tick),  // EVFILT_TIMER, periodic
])
try pipe.writeEnd.writeAll("hello".utf8)
// NOTE_TRIGGER with a value; every change replaces udata unless it keeps it.
try queue.apply([.user(1, flags: .keepUserData, note: UserNote.copy(7).triggering)])

var ticks: Int64 = 0
while ticks < 3 {
    let events: [KEvent]
    do {
        events = try queue.events(maxEvents: 8, timeout: .seconds(1))
    } catch Errno.interrupted {
        continue  // a signal arrived during the wait: wait again
    } catch {
        print("kevent failed:", error)
        break
    }
    for event in events {
        switch event.token(as: Source.self) {
        case .input:
            print(event)  // KEvent(filter: .read, ident: 8, flags: [], fflags: 0, data: 5, udata: 0x1)
            guard let descriptor = event.descriptor else { break }
            var bytes = [UInt8](repeating: 0, count: Int(event.data))
            let count = try bytes.withUnsafeMutableBytes { try descriptor.read(into: $0) }
            print("read:", String(decoding: bytes.prefix(count), as: UTF8.self))
        case .wakeUp:
            print("user event, value", event.userValue ?? 0)
        case .tick:
            ticks += event.timerExpirations ?? 0
        case nil:
            print("unexpected:", event)
        }
    }
}
print("ticks:", ticks)
