import CEpoll
import CKQueue
import CTimerfd
import Glibc

/// Expiry lateness (issue: "100 one-shot 500-microsecond timers"). A round registers
/// `timers` one-shot timers of `delay` at once, then waits until all have been delivered.
/// For each delivered timer, lateness = (CLOCK_MONOTONIC read right after the wait call
/// returned) - (CLOCK_MONOTONIC read right before the registering call + delay). The
/// intended deadline therefore counts from the start of registration: the time the
/// registration itself takes is part of the lateness (it is reported on its own too).
public protocol LatenessProbe: AnyObject {
    var name: String { get }
    /// One round. Appends one lateness sample (ns) per timer and returns the duration of
    /// the registration (ns). Crashes if a timer is missing, duplicated or wrong.
    func runRound(into samples: inout [Int64]) -> Int64
    func close()
}

public enum LatenessParameters {
    public static let timers = 100
    public static let delayMicroseconds = 500
}

/// KQueue through the C ABI: one kevent() call with 100 changes EV_ADD | EV_ONESHOT,
/// EVFILT_TIMER, NOTE_USECONDS, data 500; then kevent(kq, NULL, 0, events, 100, NULL)
/// until the 100 events are in.
public final class KQueueLatenessProbe: LatenessProbe {
    public let name = "KQueue"
    let kq: Int32
    let changes: UnsafeMutablePointer<kevent>
    let events: UnsafeMutablePointer<kevent>
    var seen: [Bool]
    private var isClosed = false

    public init() throws {
        kq = kqueue()
        guard kq >= 0 else { throw TimerSetupError(call: "kqueue()", errno: Glibc.errno) }
        let n = LatenessParameters.timers
        changes = .allocate(capacity: n)
        events = .allocate(capacity: n)
        events.initialize(repeating: kevent(), count: n)
        for i in 0..<n {
            (changes + i).initialize(
                to: kevent(
                    ident: UInt(i), filter: Int16(EVFILT_TIMER), flags: UInt16(EV_ADD | EV_ONESHOT),
                    fflags: UInt32(NOTE_USECONDS), data: Int64(LatenessParameters.delayMicroseconds),
                    udata: UnsafeMutableRawPointer(bitPattern: i + 1), ext: (0, 0, 0, 0)))
        }
        seen = [Bool](repeating: false, count: n)
    }

    deinit { close() }

    public func runRound(into samples: inout [Int64]) -> Int64 {
        let n = LatenessParameters.timers
        for i in 0..<n { seen[i] = false }
        let start = monotonicNanoseconds()
        let rc = kevent(kq, changes, Int32(n), nil, 0, nil)
        let registered = monotonicNanoseconds()
        precondition(rc == 0, "kevent(register) returned \(rc), errno \(Glibc.errno)")
        let deadline = start + Int64(LatenessParameters.delayMicroseconds) * 1_000
        var delivered = 0
        while delivered < n {
            let got = kevent(kq, nil, 0, events, Int32(n), nil)
            let now = monotonicNanoseconds()
            if got < 0 {
                precondition(Glibc.errno == EINTR, "kevent(wait) failed: errno \(Glibc.errno)")
                continue
            }
            for k in 0..<Int(got) {
                let event = events[k]
                let i = Int(event.ident)
                precondition(event.filter == Int16(EVFILT_TIMER) && i < n && !seen[i], "unexpected event \(event)")
                precondition(event.data == 1 && Int(bitPattern: event.udata) == i + 1, "timer \(i): data \(event.data)")
                seen[i] = true
                samples.append(now - deadline)
            }
            delivered += Int(got)
        }
        return registered - start
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = Glibc.close(kq)
        changes.deallocate()
        events.deallocate()
    }
}

/// The baseline: 100 timerfds made once and registered in one epoll instance (EPOLLIN,
/// level-triggered); a round arms each with timerfd_settime(relative 500 µs, no interval),
/// then epoll_wait(epfd, events, 100, -1) until all 100 were delivered, reading each
/// timerfd's expiry count (which must be 1).
public final class TimerfdLatenessProbe: LatenessProbe {
    public let name = "timerfd+epoll"
    let epfd: Int32
    var descriptors: [Int32] = []
    let events: UnsafeMutablePointer<epoll_event>
    var seen: [Bool]
    private var isClosed = false

    public init() throws {
        let n = LatenessParameters.timers
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw TimerSetupError(call: "epoll_create1", errno: Glibc.errno) }
        events = .allocate(capacity: n)
        events.initialize(repeating: epoll_event(), count: n)
        seen = [Bool](repeating: false, count: n)
        for i in 0..<n {
            let fd = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
            guard fd >= 0 else { throw TimerSetupError(call: "timerfd_create", errno: Glibc.errno) }
            descriptors.append(fd)
            var event = epoll_event()
            event.events = UInt32(EPOLLIN.rawValue)
            event.data.u64 = UInt64(i)
            guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 else {
                throw TimerSetupError(call: "epoll_ctl(ADD)", errno: Glibc.errno)
            }
        }
    }

    deinit { close() }

    public func runRound(into samples: inout [Int64]) -> Int64 {
        let n = LatenessParameters.timers
        for i in 0..<n { seen[i] = false }
        var spec = itimerspec()
        spec.it_value = timespec(tv_sec: 0, tv_nsec: LatenessParameters.delayMicroseconds * 1_000)
        let start = monotonicNanoseconds()
        for fd in descriptors {
            let rc = timerfd_settime(fd, 0, &spec, nil)
            precondition(rc == 0, "timerfd_settime failed: errno \(Glibc.errno)")
        }
        let registered = monotonicNanoseconds()
        let deadline = start + Int64(LatenessParameters.delayMicroseconds) * 1_000
        var delivered = 0
        while delivered < n {
            let got = epoll_wait(epfd, events, Int32(n), -1)
            let now = monotonicNanoseconds()
            if got < 0 {
                precondition(Glibc.errno == EINTR, "epoll_wait failed: errno \(Glibc.errno)")
                continue
            }
            for k in 0..<Int(got) {
                let i = Int(events[k].data.u64)
                precondition(i < n && !seen[i], "unexpected timerfd event \(i)")
                var count: UInt64 = 0
                let r = read(descriptors[i], &count, 8)
                precondition(r == 8 && count == 1, "timerfd \(i): read \(r), count \(count)")
                seen[i] = true
                samples.append(now - deadline)
            }
            delivered += Int(got)
        }
        return registered - start
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        for fd in descriptors { _ = timer_baseline_raw_close(fd) }
        _ = timer_baseline_raw_close(epfd)
        events.deallocate()
    }
}
