// How flags, notes and events print: option sets Swift-style (`[.add, .clear]`), `fflags`
// by their C names (`NOTE_DELETE|NOTE_WRITE`), as a FreeBSD programmer reads them in
// `<sys/event.h>`. Bits without a name print in hexadecimal; nothing prints as `[]` or `0`.

/// The names of the bits set in `rawValue`, in the order of `names`, then the unnamed rest
/// in hexadecimal.
private func bitNames(_ rawValue: UInt32, _ names: KeyValuePairs<UInt32, String>) -> [String] {
    var rest = rawValue
    var parts: [String] = []
    for (bit, name) in names where rawValue & bit == bit && bit != 0 {
        parts.append(name)
        rest &= ~bit
    }
    if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
    return parts
}

/// C names joined with `|`, or `0`.
private func noteDescription(_ rawValue: UInt32, _ names: KeyValuePairs<UInt32, String>) -> String {
    let parts = bitNames(rawValue, names)
    return parts.isEmpty ? "0" : parts.joined(separator: "|")
}

extension Flags: CustomStringConvertible {
    /// Swift names in an array literal: `[.add, .clear]`.
    public var description: String {
        let names: KeyValuePairs<UInt32, String> = [
            0x0001: ".add", 0x0002: ".delete", 0x0004: ".enable", 0x0008: ".disable", 0x0010: ".oneShot",
            0x0020: ".clear", 0x0040: ".receipt", 0x0080: ".dispatch", 0x0100: ".forceOneShot",
            0x0200: ".keepUserData", 0x2000: ".flag1", 0x4000: ".error", 0x8000: ".endOfFile",
        ]
        return "[" + bitNames(UInt32(rawValue), names).joined(separator: ", ") + "]"
    }
}

extension DescriptorNote: CustomStringConvertible {
    /// `NOTE_LOWAT`, `NOTE_FILE_POLL`.
    public var description: String {
        noteDescription(rawValue, [0x1: "NOTE_LOWAT", 0x2: "NOTE_FILE_POLL"])
    }
}

extension TimerNote: CustomStringConvertible {
    /// `NOTE_SECONDS` ... `NOTE_NSECONDS`, `NOTE_ABSTIME`.
    public var description: String {
        noteDescription(
            rawValue,
            [
                0x1: "NOTE_SECONDS", 0x2: "NOTE_MSECONDS", 0x4: "NOTE_USECONDS", 0x8: "NOTE_NSECONDS",
                0x10: "NOTE_ABSTIME",
            ])
    }
}

extension ProcessNote: CustomStringConvertible {
    /// `NOTE_EXIT|NOTE_FORK`, ...
    public var description: String {
        noteDescription(
            rawValue,
            [
                0x8000_0000: "NOTE_EXIT", 0x4000_0000: "NOTE_FORK", 0x2000_0000: "NOTE_EXEC", 0x1: "NOTE_TRACK",
                0x2: "NOTE_TRACKERR", 0x4: "NOTE_CHILD", 0x8: "NOTE_EXIT_UNKNOWN",
            ])
    }
}

extension VnodeNote: CustomStringConvertible {
    /// `NOTE_DELETE|NOTE_WRITE`, ...
    public var description: String {
        noteDescription(
            rawValue,
            [
                0x1: "NOTE_DELETE", 0x2: "NOTE_WRITE", 0x4: "NOTE_EXTEND", 0x8: "NOTE_ATTRIB", 0x10: "NOTE_LINK",
                0x20: "NOTE_RENAME", 0x40: "NOTE_REVOKE", 0x80: "NOTE_OPEN", 0x100: "NOTE_CLOSE",
                0x200: "NOTE_CLOSE_WRITE", 0x400: "NOTE_READ",
            ])
    }
}

extension FileSystemNote: CustomStringConvertible {
    /// `VQ_MOUNT|VQ_UNMOUNT`, ...
    public var description: String {
        noteDescription(
            rawValue,
            [
                0x1: "VQ_NOTRESP", 0x2: "VQ_NEEDAUTH", 0x4: "VQ_LOWDISK", 0x8: "VQ_MOUNT", 0x10: "VQ_UNMOUNT",
                0x20: "VQ_DEAD", 0x40: "VQ_ASSIST", 0x80: "VQ_NOTRESPLOCK",
            ])
    }
}

extension UserNote: CustomStringConvertible {
    /// The control operation, `NOTE_TRIGGER` and the 24-bit value: `NOTE_FFOR|NOTE_TRIGGER|0x4`;
    /// `NOTE_FFNOP` when all are zero.
    public var description: String {
        var parts: [String] = []
        switch rawValue & 0xC000_0000 {
        case 0x4000_0000: parts.append("NOTE_FFAND")
        case 0x8000_0000: parts.append("NOTE_FFOR")
        case 0xC000_0000: parts.append("NOTE_FFCOPY")
        default: break
        }
        if rawValue & UserNote.trigger.rawValue != 0 { parts.append("NOTE_TRIGGER") }
        let rest = rawValue & ~(0xC000_0000 | UserNote.trigger.rawValue)
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return parts.isEmpty ? "NOTE_FFNOP" : parts.joined(separator: "|")
    }
}

extension KEvent: CustomStringConvertible {
    /// Every field by name: `KEvent(filter: .vnode, ident: 3, flags: [.add, .clear],
    /// fflags: NOTE_DELETE|NOTE_WRITE, data: 0, udata: nil)`. `fflags` are named by the
    /// filter's notes (a read or write event's end-of-file error adds its errno's C name); an
    /// `.error` entry's `data` adds its errno's C name (`2 (ENOENT)`); `ext` shows when not
    /// all zero.
    public var description: String {
        var text = "KEvent(filter: \(filter), ident: \(ident), flags: \(flags), fflags: \(fflagsDescription)"
        text += ", data: \(data)"
        if flags.contains(.error) && data != 0 {
            text += " (\(Errno(rawValue: Int32(truncatingIfNeeded: data)).cName))"
        }
        text += ", udata: " + (udata.map { "0x" + String(UInt(bitPattern: $0), radix: 16) } ?? "nil")
        if ext != (0, 0, 0, 0) { text += ", ext: \(ext)" }
        return text + ")"
    }

    /// `fflags` by the names of this event's filter.
    var fflagsDescription: String {
        switch filter {
        case .read, .write:
            if flags.contains(.endOfFile) && fflags != 0 {
                return "\(fflags) (\(Errno(rawValue: Int32(truncatingIfNeeded: fflags)).cName))"
            }
            return DescriptorNote(rawValue: fflags).description
        case .user: return UserNote(rawValue: fflags).description
        case .timer: return TimerNote(rawValue: fflags).description
        case .vnode: return VnodeNote(rawValue: fflags).description
        case .process, .processDescriptor: return ProcessNote(rawValue: fflags).description
        case .fileSystem: return FileSystemNote(rawValue: fflags).description
        default: return fflags == 0 ? "0" : "0x" + String(fflags, radix: 16)
        }
    }
}
