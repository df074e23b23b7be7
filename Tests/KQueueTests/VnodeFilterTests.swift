import CKQueueShim
import Glibc
import KQueue
import SystemPackage
import Testing

/// SPEC.md 3, EVFILT_VNODE, through the Swift API (the full matrix is Tests/C/vnode.c).
@Suite("SPEC 3: EVFILT_VNODE")
struct VnodeFilterTests {
    @Test("3.VNODE: a write that grows the file reports WRITE|EXTEND; rename follows the inode")
    func writeAndRename() throws {
        var template = Array("/tmp/kqvnode-swift.XXXXXX".utf8CString)
        let fd = try sys(mkstemp(&template))
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer {
            _ = close(fd)
            unlink(path)
            unlink(path + ".renamed")
        }
        let queue = try KernelQueue()
        try queue.apply([.vnode(FileDescriptor(rawValue: fd), note: [.write, .rename])])
        #expect(try queue.events(maxEvents: 4, timeout: .zero).isEmpty)
        _ = write(fd, "abc", 3)
        let written = try expectEvent(queue, ident: UInt(fd), filter: .vnode)
        #expect(written.map { VnodeNote(rawValue: $0.fflags) } == [.write, .extend])
        #expect(written?.flags.contains(.clear) == true)
        try sys(rename(path, path + ".renamed"))
        let renamed = try expectEvent(queue, ident: UInt(fd), filter: .vnode)
        #expect(renamed.map { VnodeNote(rawValue: $0.fflags) } == [.rename])
        #expect(try queue.events(maxEvents: 4, timeout: .zero).isEmpty)
    }

    @Test("3.VNODE: a socket is not a vnode (EINVAL); a closed descriptor is EBADF")
    func errors() throws {
        let queue = try KernelQueue()
        var pair: [Int32] = [-1, -1]
        try sys(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair))
        defer {
            _ = close(pair[0])
            _ = close(pair[1])
        }
        expectChangeFailure(.invalidArgument) {
            try queue.apply([.vnode(FileDescriptor(rawValue: pair[0]), note: .write)])
        }
        let closed = try sys(dup(pair[0]))
        _ = close(closed)
        expectChangeFailure(.badFileDescriptor) {
            try queue.apply([.vnode(FileDescriptor(rawValue: closed), note: .write)])
        }
    }
}
