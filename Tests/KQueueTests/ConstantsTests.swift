import CKQueue
import Foundation
import Testing

@_spi(CABI) @testable import KQueue

/// `<sys/event.h>` (Sources/CKQueue/include/sys/event.h) is the one home of every kqueue value.
/// The public option sets keep literal values (for `@inlinable` use) and the engine's
/// `Internals/Constants.swift` reads them from the header: each of them is checked here,
/// pair by pair, against the header's macro.
@Suite("<sys/event.h>: constants and layout")
struct ConstantsTests {
    /// One Swift constant and the C macro it stands for.
    struct Pair: CustomStringConvertible {
        /// The C macro's name, as `<sys/event.h>` spells it.
        var cName: String
        /// The Swift constant's name, for the failure message.
        var swiftName: String
        /// The Swift value, widened.
        var swiftValue: Int64
        /// The C value converted to the Swift constant's type (as the engine converts it), widened.
        var cValue: Int64
        /// The C value fits the Swift type without losing bits.
        var cValueFits: Bool

        init<S: FixedWidthInteger, C: BinaryInteger>(_ swiftName: String, _ swift: S, _ cName: String, _ c: C) {
            self.cName = cName
            self.swiftName = swiftName
            swiftValue = Int64(swift)
            cValue = Int64(S(truncatingIfNeeded: c))
            cValueFits = S(exactly: c) != nil
        }

        var description: String { "\(swiftName) (\(cName))" }
    }

    /// Every public constant that names its C constant in its doc comment ("The corresponding
    /// C constant is `X`", "C: `X`"). A new one must be added here: `tableCoversDocComments`
    /// fails until it is.
    static let publicPairs: [Pair] = [
        // Flags: EV_*
        Pair("Flags.add", Flags.add.rawValue, "EV_ADD", EV_ADD),
        Pair("Flags.delete", Flags.delete.rawValue, "EV_DELETE", EV_DELETE),
        Pair("Flags.enable", Flags.enable.rawValue, "EV_ENABLE", EV_ENABLE),
        Pair("Flags.disable", Flags.disable.rawValue, "EV_DISABLE", EV_DISABLE),
        Pair("Flags.oneShot", Flags.oneShot.rawValue, "EV_ONESHOT", EV_ONESHOT),
        Pair("Flags.clear", Flags.clear.rawValue, "EV_CLEAR", EV_CLEAR),
        Pair("Flags.receipt", Flags.receipt.rawValue, "EV_RECEIPT", EV_RECEIPT),
        Pair("Flags.dispatch", Flags.dispatch.rawValue, "EV_DISPATCH", EV_DISPATCH),
        Pair("Flags.forceOneShot", Flags.forceOneShot.rawValue, "EV_FORCEONESHOT", EV_FORCEONESHOT),
        Pair("Flags.keepUserData", Flags.keepUserData.rawValue, "EV_KEEPUDATA", EV_KEEPUDATA),
        Pair("Flags.flag1", Flags.flag1.rawValue, "EV_FLAG1", EV_FLAG1),
        Pair("Flags.error", Flags.error.rawValue, "EV_ERROR", EV_ERROR),
        Pair("Flags.endOfFile", Flags.endOfFile.rawValue, "EV_EOF", EV_EOF),
        Pair("Flags.systemFlags", Flags.systemFlags.rawValue, "EV_SYSFLAGS", EV_SYSFLAGS),

        // Filter: EVFILT_*
        Pair("Filter.read", Filter.read.rawValue, "EVFILT_READ", EVFILT_READ),
        Pair("Filter.write", Filter.write.rawValue, "EVFILT_WRITE", EVFILT_WRITE),
        Pair("Filter.aio", Filter.aio.rawValue, "EVFILT_AIO", EVFILT_AIO),
        Pair("Filter.vnode", Filter.vnode.rawValue, "EVFILT_VNODE", EVFILT_VNODE),
        Pair("Filter.process", Filter.process.rawValue, "EVFILT_PROC", EVFILT_PROC),
        Pair("Filter.signal", Filter.signal.rawValue, "EVFILT_SIGNAL", EVFILT_SIGNAL),
        Pair("Filter.timer", Filter.timer.rawValue, "EVFILT_TIMER", EVFILT_TIMER),
        Pair("Filter.processDescriptor", Filter.processDescriptor.rawValue, "EVFILT_PROCDESC", EVFILT_PROCDESC),
        Pair("Filter.fileSystem", Filter.fileSystem.rawValue, "EVFILT_FS", EVFILT_FS),
        Pair("Filter.listIO", Filter.listIO.rawValue, "EVFILT_LIO", EVFILT_LIO),
        Pair("Filter.user", Filter.user.rawValue, "EVFILT_USER", EVFILT_USER),
        Pair("Filter.sendFile", Filter.sendFile.rawValue, "EVFILT_SENDFILE", EVFILT_SENDFILE),
        Pair("Filter.empty", Filter.empty.rawValue, "EVFILT_EMPTY", EVFILT_EMPTY),

        // DescriptorNote: EVFILT_READ / EVFILT_WRITE
        Pair("DescriptorNote.lowWater", DescriptorNote.lowWater.rawValue, "NOTE_LOWAT", NOTE_LOWAT),
        Pair("DescriptorNote.filePoll", DescriptorNote.filePoll.rawValue, "NOTE_FILE_POLL", NOTE_FILE_POLL),

        // UserNote: EVFILT_USER. The control operations are read from their functions with a
        // zero value (the operation's bits alone).
        Pair("UserNote.noOperation", UserNote.noOperation.rawValue, "NOTE_FFNOP", NOTE_FFNOP),
        Pair("UserNote.and(0)", UserNote.and(0).rawValue, "NOTE_FFAND", NOTE_FFAND),
        Pair("UserNote.or(0)", UserNote.or(0).rawValue, "NOTE_FFOR", NOTE_FFOR),
        Pair("UserNote.copy(0)", UserNote.copy(0).rawValue, "NOTE_FFCOPY", NOTE_FFCOPY),
        Pair("UserNote.trigger", UserNote.trigger.rawValue, "NOTE_TRIGGER", NOTE_TRIGGER),
        Pair("UserNote.valueMask", UserNote.valueMask, "NOTE_FFLAGSMASK", NOTE_FFLAGSMASK),

        // TimerNote: EVFILT_TIMER
        Pair("TimerNote.seconds", TimerNote.seconds.rawValue, "NOTE_SECONDS", NOTE_SECONDS),
        Pair("TimerNote.milliseconds", TimerNote.milliseconds.rawValue, "NOTE_MSECONDS", NOTE_MSECONDS),
        Pair("TimerNote.microseconds", TimerNote.microseconds.rawValue, "NOTE_USECONDS", NOTE_USECONDS),
        Pair("TimerNote.nanoseconds", TimerNote.nanoseconds.rawValue, "NOTE_NSECONDS", NOTE_NSECONDS),
        Pair("TimerNote.absoluteTime", TimerNote.absoluteTime.rawValue, "NOTE_ABSTIME", NOTE_ABSTIME),

        // ProcessNote: EVFILT_PROC
        Pair("ProcessNote.exit", ProcessNote.exit.rawValue, "NOTE_EXIT", NOTE_EXIT),
        Pair("ProcessNote.fork", ProcessNote.fork.rawValue, "NOTE_FORK", NOTE_FORK),
        Pair("ProcessNote.exec", ProcessNote.exec.rawValue, "NOTE_EXEC", NOTE_EXEC),
        Pair("ProcessNote.track", ProcessNote.track.rawValue, "NOTE_TRACK", NOTE_TRACK),
        Pair("ProcessNote.trackError", ProcessNote.trackError.rawValue, "NOTE_TRACKERR", NOTE_TRACKERR),
        Pair("ProcessNote.child", ProcessNote.child.rawValue, "NOTE_CHILD", NOTE_CHILD),
        Pair(
            "ProcessNote.exitStatusUnknown", ProcessNote.exitStatusUnknown.rawValue, "NOTE_EXIT_UNKNOWN",
            NOTE_EXIT_UNKNOWN),

        // ProcessDescriptor.Options: pdfork flags (<sys/procdesc.h>)
        Pair("ProcessDescriptor.Options.daemon", ProcessDescriptor.Options.daemon.rawValue, "PD_DAEMON", PD_DAEMON),
        Pair(
            "ProcessDescriptor.Options.closeOnExec", ProcessDescriptor.Options.closeOnExec.rawValue, "PD_CLOEXEC",
            PD_CLOEXEC),

        // VnodeNote: EVFILT_VNODE
        Pair("VnodeNote.delete", VnodeNote.delete.rawValue, "NOTE_DELETE", NOTE_DELETE),
        Pair("VnodeNote.write", VnodeNote.write.rawValue, "NOTE_WRITE", NOTE_WRITE),
        Pair("VnodeNote.extend", VnodeNote.extend.rawValue, "NOTE_EXTEND", NOTE_EXTEND),
        Pair("VnodeNote.attrib", VnodeNote.attrib.rawValue, "NOTE_ATTRIB", NOTE_ATTRIB),
        Pair("VnodeNote.link", VnodeNote.link.rawValue, "NOTE_LINK", NOTE_LINK),
        Pair("VnodeNote.rename", VnodeNote.rename.rawValue, "NOTE_RENAME", NOTE_RENAME),
        Pair("VnodeNote.revoke", VnodeNote.revoke.rawValue, "NOTE_REVOKE", NOTE_REVOKE),
        Pair("VnodeNote.open", VnodeNote.open.rawValue, "NOTE_OPEN", NOTE_OPEN),
        Pair("VnodeNote.close", VnodeNote.close.rawValue, "NOTE_CLOSE", NOTE_CLOSE),
        Pair("VnodeNote.closeWrite", VnodeNote.closeWrite.rawValue, "NOTE_CLOSE_WRITE", NOTE_CLOSE_WRITE),
        Pair("VnodeNote.read", VnodeNote.read.rawValue, "NOTE_READ", NOTE_READ),
        // FileSystemNote: EVFILT_FS
        Pair("FileSystemNote.notResponding", FileSystemNote.notResponding.rawValue, "VQ_NOTRESP", VQ_NOTRESP),
        Pair(
            "FileSystemNote.needsAuthentication", FileSystemNote.needsAuthentication.rawValue, "VQ_NEEDAUTH",
            VQ_NEEDAUTH),
        Pair("FileSystemNote.lowDisk", FileSystemNote.lowDisk.rawValue, "VQ_LOWDISK", VQ_LOWDISK),
        Pair("FileSystemNote.mount", FileSystemNote.mount.rawValue, "VQ_MOUNT", VQ_MOUNT),
        Pair("FileSystemNote.unmount", FileSystemNote.unmount.rawValue, "VQ_UNMOUNT", VQ_UNMOUNT),
        Pair("FileSystemNote.dead", FileSystemNote.dead.rawValue, "VQ_DEAD", VQ_DEAD),
        Pair("FileSystemNote.assist", FileSystemNote.assist.rawValue, "VQ_ASSIST", VQ_ASSIST),
        Pair(
            "FileSystemNote.lockNotResponding", FileSystemNote.lockNotResponding.rawValue, "VQ_NOTRESPLOCK",
            VQ_NOTRESPLOCK),
    ]

    /// The engine's constants (Internals/Constants.swift) and the C ABI's flag mask.
    static let internalPairs: [Pair] = [
        // EV
        Pair("EV.add", EV.add, "EV_ADD", EV_ADD),
        Pair("EV.delete", EV.delete, "EV_DELETE", EV_DELETE),
        Pair("EV.enable", EV.enable, "EV_ENABLE", EV_ENABLE),
        Pair("EV.disable", EV.disable, "EV_DISABLE", EV_DISABLE),
        Pair("EV.oneShot", EV.oneShot, "EV_ONESHOT", EV_ONESHOT),
        Pair("EV.clear", EV.clear, "EV_CLEAR", EV_CLEAR),
        Pair("EV.receipt", EV.receipt, "EV_RECEIPT", EV_RECEIPT),
        Pair("EV.dispatch", EV.dispatch, "EV_DISPATCH", EV_DISPATCH),
        Pair("EV.forceOneShot", EV.forceOneShot, "EV_FORCEONESHOT", EV_FORCEONESHOT),
        Pair("EV.keepUData", EV.keepUData, "EV_KEEPUDATA", EV_KEEPUDATA),
        Pair("EV.systemFlags", EV.systemFlags, "EV_SYSFLAGS", EV_SYSFLAGS),
        Pair("EV.error", EV.error, "EV_ERROR", EV_ERROR),
        Pair("EV.eof", EV.eof, "EV_EOF", EV_EOF),
        Pair(
            "EV.actions", EV.actions, "EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT",
            EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT),

        // FilterID
        Pair("FilterID.read", FilterID.read, "EVFILT_READ", EVFILT_READ),
        Pair("FilterID.write", FilterID.write, "EVFILT_WRITE", EVFILT_WRITE),
        Pair("FilterID.aio", FilterID.aio, "EVFILT_AIO", EVFILT_AIO),
        Pair("FilterID.vnode", FilterID.vnode, "EVFILT_VNODE", EVFILT_VNODE),
        Pair("FilterID.proc", FilterID.proc, "EVFILT_PROC", EVFILT_PROC),
        Pair("FilterID.signal", FilterID.signal, "EVFILT_SIGNAL", EVFILT_SIGNAL),
        Pair("FilterID.timer", FilterID.timer, "EVFILT_TIMER", EVFILT_TIMER),
        Pair("FilterID.procdesc", FilterID.procdesc, "EVFILT_PROCDESC", EVFILT_PROCDESC),
        Pair("FilterID.fs", FilterID.fs, "EVFILT_FS", EVFILT_FS),
        Pair("FilterID.lio", FilterID.lio, "EVFILT_LIO", EVFILT_LIO),
        Pair("FilterID.user", FilterID.user, "EVFILT_USER", EVFILT_USER),
        Pair("FilterID.sendfile", FilterID.sendfile, "EVFILT_SENDFILE", EVFILT_SENDFILE),
        Pair("FilterID.empty", FilterID.empty, "EVFILT_EMPTY", EVFILT_EMPTY),
        Pair("FilterID.systemCount", FilterID.systemCount, "EVFILT_SYSCOUNT", EVFILT_SYSCOUNT),

        // Note: EVFILT_READ, EVFILT_WRITE
        Pair("Note.lowWater", Note.lowWater, "NOTE_LOWAT", NOTE_LOWAT),
        Pair("Note.filePoll", Note.filePoll, "NOTE_FILE_POLL", NOTE_FILE_POLL),
        // Note: EVFILT_FS
        Pair("Note.vqMount", Note.vqMount, "VQ_MOUNT", VQ_MOUNT),
        Pair("Note.vqUnmount", Note.vqUnmount, "VQ_UNMOUNT", VQ_UNMOUNT),
        // Note: EVFILT_USER
        Pair("Note.ffAnd", Note.ffAnd, "NOTE_FFAND", NOTE_FFAND),
        Pair("Note.ffOr", Note.ffOr, "NOTE_FFOR", NOTE_FFOR),
        Pair("Note.ffCopy", Note.ffCopy, "NOTE_FFCOPY", NOTE_FFCOPY),
        Pair("Note.ffControlMask", Note.ffControlMask, "NOTE_FFCTRLMASK", NOTE_FFCTRLMASK),
        Pair("Note.ffFlagsMask", Note.ffFlagsMask, "NOTE_FFLAGSMASK", NOTE_FFLAGSMASK),
        Pair("Note.trigger", Note.trigger, "NOTE_TRIGGER", NOTE_TRIGGER),
        // Note: EVFILT_VNODE
        Pair("Note.delete", Note.delete, "NOTE_DELETE", NOTE_DELETE),
        Pair("Note.write", Note.write, "NOTE_WRITE", NOTE_WRITE),
        Pair("Note.extend", Note.extend, "NOTE_EXTEND", NOTE_EXTEND),
        Pair("Note.attrib", Note.attrib, "NOTE_ATTRIB", NOTE_ATTRIB),
        Pair("Note.link", Note.link, "NOTE_LINK", NOTE_LINK),
        Pair("Note.rename", Note.rename, "NOTE_RENAME", NOTE_RENAME),
        Pair("Note.revoke", Note.revoke, "NOTE_REVOKE", NOTE_REVOKE),
        Pair("Note.open", Note.open, "NOTE_OPEN", NOTE_OPEN),
        Pair("Note.close", Note.close, "NOTE_CLOSE", NOTE_CLOSE),
        Pair("Note.closeWrite", Note.closeWrite, "NOTE_CLOSE_WRITE", NOTE_CLOSE_WRITE),
        Pair("Note.read", Note.read, "NOTE_READ", NOTE_READ),
        // Note: EVFILT_PROC
        Pair("Note.exit", Note.exit, "NOTE_EXIT", NOTE_EXIT),
        Pair("Note.fork", Note.fork, "NOTE_FORK", NOTE_FORK),
        Pair("Note.exec", Note.exec, "NOTE_EXEC", NOTE_EXEC),
        Pair("Note.track", Note.track, "NOTE_TRACK", NOTE_TRACK),
        Pair("Note.trackError", Note.trackError, "NOTE_TRACKERR", NOTE_TRACKERR),
        Pair("Note.child", Note.child, "NOTE_CHILD", NOTE_CHILD),
        Pair("Note.exitUnknown", Note.exitUnknown, "NOTE_EXIT_UNKNOWN", NOTE_EXIT_UNKNOWN),
        // Note: EVFILT_TIMER
        Pair("Note.seconds", Note.seconds, "NOTE_SECONDS", NOTE_SECONDS),
        Pair("Note.milliseconds", Note.milliseconds, "NOTE_MSECONDS", NOTE_MSECONDS),
        Pair("Note.microseconds", Note.microseconds, "NOTE_USECONDS", NOTE_USECONDS),
        Pair("Note.nanoseconds", Note.nanoseconds, "NOTE_NSECONDS", NOTE_NSECONDS),
        Pair("Note.absoluteTime", Note.absoluteTime, "NOTE_ABSTIME", NOTE_ABSTIME),

        // kqueuex(2)'s flags: the only one the C ABI accepts.
        Pair("CABI.knownFlags", CABI.knownFlags, "KQUEUE_CLOEXEC", KQUEUE_CLOEXEC),
    ]

    static func check(_ pairs: [Pair]) {
        for pair in pairs {
            #expect(
                pair.swiftValue == pair.cValue,
                "\(pair.swiftName) is \(hex(pair.swiftValue)) but <sys/event.h>'s \(pair.cName) is \(hex(pair.cValue))")
            #expect(pair.cValueFits, "<sys/event.h>'s \(pair.cName) does not fit the type of \(pair.swiftName)")
        }
    }

    static func hex(_ value: Int64) -> String {
        value < 0 ? "\(value)" : "0x" + String(value, radix: 16)
    }

    @Test("Every public constant has <sys/event.h>'s value")
    func publicConstantsMatchHeader() {
        Self.check(Self.publicPairs)
    }

    @Test("Every engine constant (Internals/Constants.swift) has <sys/event.h>'s value")
    func internalConstantsMatchHeader() {
        Self.check(Self.internalPairs)
    }

    /// Reads Sources/KQueue's doc comments: every C constant they name is in `publicPairs`.
    @Test("Every C constant a public doc comment names is checked against <sys/event.h>")
    func tableCoversDocComments() throws {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let sources = packageRoot.appendingPathComponent("Sources/KQueue")
        let files = try #require(FileManager.default.enumerator(atPath: sources.path)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") }
        var named: Set<String> = []
        for file in files {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            // One doc comment per declaration, its lines joined (a name may follow a line break).
            var comment = ""
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.drop { $0 == " " }
                if trimmed.hasPrefix("///") {
                    comment += " " + trimmed.dropFirst(3)
                    continue
                }
                if trimmed.hasPrefix("public ") || trimmed.hasPrefix("@inlinable public ") {
                    let pattern = /(?:corresponding\s+C\s+constant\s+is|C:)\s+`([A-Z_][A-Z0-9_]*)`/
                    for match in comment.matches(of: pattern) { named.insert(String(match.1)) }
                }
                comment = ""
            }
        }
        let checked = Set(Self.publicPairs.map(\.cName))
        let unchecked = named.subtracting(checked).sorted()
        let undocumented = checked.subtracting(named).sorted()
        #expect(unchecked.isEmpty, "named in a doc comment, not in publicPairs: \(unchecked)")
        #expect(undocumented.isEmpty, "in publicPairs, named in no doc comment: \(undocumented)")
    }

    @Test("struct kevent has FreeBSD's 64-byte layout")
    func keventLayout() {
        #expect(MemoryLayout<kevent>.size == 64)
        #expect(MemoryLayout<kevent>.stride == 64)
        #expect(MemoryLayout<kevent>.offset(of: \.ident) == 0)
        #expect(MemoryLayout<kevent>.offset(of: \.filter) == 8)
        #expect(MemoryLayout<kevent>.offset(of: \.flags) == 10)
        #expect(MemoryLayout<kevent>.offset(of: \.fflags) == 12)
        #expect(MemoryLayout<kevent>.offset(of: \.data) == 16)
        #expect(MemoryLayout<kevent>.offset(of: \.udata) == 24)
        #expect(MemoryLayout<kevent>.offset(of: \.ext) == 32)
        #expect(MemoryLayout<KEvent>.size == MemoryLayout<kevent>.size)
        #expect(MemoryLayout<KEvent>.stride == MemoryLayout<kevent>.stride)
    }
}
