// Examples/Contexts/main.swift: a Swift object per registration, and a failed change by name.
import KQueue

/// One input with its name: the context of its registration.
final class Channel: Sendable {
    let name: String
    let input: FileDescriptor

    init(name: String, input: FileDescriptor) {
        self.name = name
        self.input = input
    }
}

// The queue keeps each context in a table it owns, never in udata itself.
let queue = try ContextQueue<Channel>()
for name in ["alpha", "beta"] {
    let pipe = try FileDescriptor.pipe()
    try queue.register(.read(pipe.readEnd), context: Channel(name: name, input: pipe.readEnd))
    try pipe.writeEnd.writeAll("ping from \(name)".utf8)
    try pipe.writeEnd.close()  // the reader sees the data, then end of file
}

// A change that fails names itself: filter, ident, flags, errno.
do {
    try queue.apply([.user(42, note: .trigger)])
} catch {
    // change 0 (.user ident 42, flags [], fflags NOTE_TRIGGER, data 0) failed: ENOENT (No such file or directory)
    print(error)
}

var open = 2
while open > 0 {
    let events: [ContextEvent<Channel>]
    do {
        events = try queue.events(timeout: .seconds(10))
    } catch Errno.interrupted {
        continue
    } catch {
        print("kevent failed:", error)
        break
    }
    for item in events {
        guard let channel = item.context else { continue }
        var bytes = [UInt8](repeating: 0, count: Int(item.event.data))
        let count = try bytes.withUnsafeMutableBytes { try channel.input.read(into: $0) }
        print("\(channel.name):", String(decoding: bytes.prefix(count), as: UTF8.self))
        if item.event.flags.contains(.endOfFile) {
            try queue.close(channel.input)  // closes it and releases its context
            open -= 1
        }
    }
}
print("contexts held:", queue.contextCount)
