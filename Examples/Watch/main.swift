// Examples/Watch/main.swift: a file's changes, a signal and a process's exit, by name.
// Usage: WatchExample [PID]: with a PID, also waits for that process to exit.
import KQueue

let queue = try KernelQueue()
let file = try FileDescriptor.open(
    "/tmp/kqueue-watch-example.txt", .writeOnly, options: [.create, .truncate, .closeOnExec],
    permissions: .ownerReadWrite)
defer { try? file.close() }
try queue.apply([.vnode(file, note: [.write, .extend, .attrib])])  // EVFILT_VNODE, EV_CLEAR

// kqueue only observes a signal: without this, SIGHUP would end the process.
try Signal.hangup.ignore()
try queue.apply([.signal(.hangup)])  // EVFILT_SIGNAL

var expected = 2
if let argument = CommandLine.arguments.dropFirst().first, let pid = Int32(argument) {
    try queue.apply([.process(ProcessID(rawValue: pid), note: .exit)])  // EVFILT_PROC
    expected += 1
}

try file.writeAll("hello\n".utf8)
try ProcessID.current.send(.hangup)

var seen: Set<Filter> = []
while seen.count < expected {
    let events: [KEvent]
    do {
        events = try queue.events(timeout: .seconds(10))
    } catch Errno.interrupted {
        continue
    } catch {
        print("kevent failed:", error)
        break
    }
    if events.isEmpty {
        print("timed out")
        break
    }
    for event in events {
        if let note = event.vnodeNote {
            print("file changed:", note)  // NOTE_WRITE|NOTE_EXTEND
        } else if let signal = event.signal {
            print("signal:", signal, "delivered", event.data, "time(s)")  // SIGHUP
        } else if let process = event.processID, let status = event.processExitStatus {
            print("process", process, status)  // exited with code 3
        }
        seen.insert(event.filter)
    }
}
