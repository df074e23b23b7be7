import CEpoll
import CKQueue
import CTimerfd
import Glibc

/// The periodic-timer workload shared by TimerScale and the TimerBenchmarks benchmark
/// (docs/BENCHMARK-timers.md).
///
/// Timer `i` is periodic with a period of `periodMilliseconds(i)`: a fixed pseudo-random
/// spread over [60 s, 120 s), so that the engine's heap sees deadlines in no particular
/// order while no timer fires during a measurement (expiry is measured separately, by the
/// lateness probes). Both implementations get the same periods.
public enum TimerParameters {
    /// Changes per kevent() call (KQueue) and timers per timed batch (baseline).
    public static let batch = 1_024
    public static let shortestPeriodMilliseconds: Int64 = 60_000
    public static let periodSpreadMilliseconds: UInt64 = 60_000

    @inline(__always)
    public static func periodMilliseconds(_ i: Int) -> Int64 {
        // splitmix64's finaliser: a fixed, well-mixed value per index.
        var z = UInt64(truncatingIfNeeded: i) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return shortestPeriodMilliseconds + Int64(z % periodSpreadMilliseconds)
    }
}

public struct TimerSetupError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
    public var description: String { "\(call) failed: errno \(errno) (\(String(cString: strerror(errno))))" }
}

@inline(__always)
public func monotonicNanoseconds() -> Int64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Int64(t.tv_sec) &* 1_000_000_000 &+ Int64(t.tv_nsec)
}

/// KQueue through the C ABI: `kqueue()` and `kevent()` of `<sys/event.h>`, resolved from
/// libkqueue.so as in a C program linked with -lkqueue. Timers are EVFILT_TIMER knotes with
/// ident `i`, periodic (no EV_ONESHOT), NOTE_MSECONDS, `data` = the period.
public final class KQueueTimers {
    public let kq: Int32
    /// One changelist for EV_ADD and one for EV_DELETE, `TimerParameters.batch` entries each.
    let addList: UnsafeMutablePointer<kevent>
    let deleteList: UnsafeMutablePointer<kevent>
    private var isClosed = false

    public init() throws {
        kq = kqueue()
        guard kq >= 0 else { throw TimerSetupError(call: "kqueue()", errno: Glibc.errno) }
        addList = .allocate(capacity: TimerParameters.batch)
        addList.initialize(repeating: kevent(), count: TimerParameters.batch)
        deleteList = .allocate(capacity: TimerParameters.batch)
        deleteList.initialize(repeating: kevent(), count: TimerParameters.batch)
    }

    deinit { close() }

    /// Fills the EV_ADD changelist for timers `first ..< first + count` (count <= batch).
    public func prepareAdd(first: Int, count: Int) {
        precondition(count <= TimerParameters.batch)
        for k in 0..<count {
            let i = first + k
            addList[k] = kevent(
                ident: UInt(i), filter: Int16(EVFILT_TIMER), flags: UInt16(EV_ADD), fflags: UInt32(NOTE_MSECONDS),
                data: TimerParameters.periodMilliseconds(i), udata: UnsafeMutableRawPointer(bitPattern: i + 1),
                ext: (0, 0, 0, 0))
        }
    }

    /// Fills the EV_DELETE changelist for timers `first ..< first + count`.
    public func prepareDelete(first: Int, count: Int) {
        precondition(count <= TimerParameters.batch)
        for k in 0..<count {
            deleteList[k] = kevent(
                ident: UInt(first + k), filter: Int16(EVFILT_TIMER), flags: UInt16(EV_DELETE), fflags: 0, data: 0,
                udata: nil, ext: (0, 0, 0, 0))
        }
    }

    /// One kevent() call applying the prepared EV_ADD changes; no event list, so no wait.
    @inline(__always)
    public func submitAdd(count: Int) -> Int32 {
        kevent(kq, addList, Int32(count), nil, 0, nil)
    }

    @inline(__always)
    public func submitDelete(count: Int) -> Int32 {
        kevent(kq, deleteList, Int32(count), nil, 0, nil)
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = Glibc.close(kq)  // through libkqueue's close(): releases the kqueue and its timers
        addList.deallocate()
        deleteList.deallocate()
    }
}

/// The baseline: one timerfd per timer (CLOCK_MONOTONIC, periodic, relative), each registered
/// in one epoll instance (EPOLLIN, the timer index in `data.u64`). Add = timerfd_create +
/// timerfd_settime + epoll_ctl(ADD); delete = epoll_ctl(DEL) + close. close is the raw
/// syscall, so the baseline never passes through libkqueue.so's close() interposer.
public final class TimerfdTimers {
    public let epfd: Int32
    public let capacity: Int
    let descriptors: UnsafeMutablePointer<Int32>
    private var isClosed = false

    public init(capacity: Int) throws {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw TimerSetupError(call: "epoll_create1", errno: Glibc.errno) }
        self.capacity = capacity
        descriptors = .allocate(capacity: capacity)
        descriptors.initialize(repeating: -1, count: capacity)
    }

    deinit { close() }

    /// Adds timers `first ..< first + count`. Returns nil or the failing call.
    public func add(first: Int, count: Int) -> TimerSetupError? {
        var event = epoll_event()
        var spec = itimerspec()
        for i in first..<(first + count) {
            let fd = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
            guard fd >= 0 else { return TimerSetupError(call: "timerfd_create #\(i)", errno: Glibc.errno) }
            descriptors[i] = fd
            let period = TimerParameters.periodMilliseconds(i)
            let interval = timespec(tv_sec: Int(period / 1000), tv_nsec: Int(period % 1000) * 1_000_000)
            spec.it_value = interval
            spec.it_interval = interval
            guard timerfd_settime(fd, 0, &spec, nil) == 0 else {
                return TimerSetupError(call: "timerfd_settime #\(i)", errno: Glibc.errno)
            }
            event.events = UInt32(EPOLLIN.rawValue)
            event.data.u64 = UInt64(i)
            guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 else {
                return TimerSetupError(call: "epoll_ctl(ADD) #\(i)", errno: Glibc.errno)
            }
        }
        return nil
    }

    /// Deletes timers `first ..< first + count`.
    public func delete(first: Int, count: Int) -> TimerSetupError? {
        for i in first..<(first + count) {
            let fd = descriptors[i]
            guard epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil) == 0 else {
                return TimerSetupError(call: "epoll_ctl(DEL) #\(i)", errno: Glibc.errno)
            }
            guard timer_baseline_raw_close(fd) == 0 else {
                return TimerSetupError(call: "close #\(i)", errno: Glibc.errno)
            }
            descriptors[i] = -1
        }
        return nil
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        for i in 0..<capacity where descriptors[i] >= 0 { _ = timer_baseline_raw_close(descriptors[i]) }
        _ = timer_baseline_raw_close(epfd)
        descriptors.deallocate()
    }
}
