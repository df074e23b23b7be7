/// Actions and flags of a ``KEvent`` (the `flags` field of `struct kevent`, `EV_*`).
@frozen
public struct Flags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Add the event, or modify it if it exists. The corresponding C constant is `EV_ADD`.
    @inlinable public static var add: Flags { Flags(rawValue: 0x0001) }
    /// Remove the event. The corresponding C constant is `EV_DELETE`.
    @inlinable public static var delete: Flags { Flags(rawValue: 0x0002) }
    /// Allow the event to be returned. The corresponding C constant is `EV_ENABLE`.
    @inlinable public static var enable: Flags { Flags(rawValue: 0x0004) }
    /// Keep the event registered but do not return it. The corresponding C constant is
    /// `EV_DISABLE`.
    @inlinable public static var disable: Flags { Flags(rawValue: 0x0008) }
    /// Return the event once, then delete it. The corresponding C constant is `EV_ONESHOT`.
    @inlinable public static var oneShot: Flags { Flags(rawValue: 0x0010) }
    /// Reset the event's state after it is returned (edge-triggered). The corresponding C
    /// constant is `EV_CLEAR`.
    @inlinable public static var clear: Flags { Flags(rawValue: 0x0020) }
    /// Report every change's outcome as an `.error` entry, with `data` 0 on success. The
    /// corresponding C constant is `EV_RECEIPT`.
    @inlinable public static var receipt: Flags { Flags(rawValue: 0x0040) }
    /// Return the event once, then disable it. The corresponding C constant is `EV_DISPATCH`.
    @inlinable public static var dispatch: Flags { Flags(rawValue: 0x0080) }
    /// Make an existing event a oneshot and fire it now. The corresponding C constant is
    /// `EV_FORCEONESHOT`.
    @inlinable public static var forceOneShot: Flags { Flags(rawValue: 0x0100) }
    /// Modify without replacing `udata`. The corresponding C constant is `EV_KEEPUDATA`.
    @inlinable public static var keepUserData: Flags { Flags(rawValue: 0x0200) }
    /// Filter-specific flag. The corresponding C constant is `EV_FLAG1`.
    @inlinable public static var flag1: Flags { Flags(rawValue: 0x2000) }
    /// Returned: the change failed, `data` holds the errno (or 0 for a receipt). The
    /// corresponding C constant is `EV_ERROR`.
    @inlinable public static var error: Flags { Flags(rawValue: 0x4000) }
    /// Returned: end of file (or of the connection). The corresponding C constant is `EV_EOF`.
    @inlinable public static var endOfFile: Flags { Flags(rawValue: 0x8000) }
    /// Bits reserved for the system, stripped from every change. The corresponding C
    /// constant is `EV_SYSFLAGS`.
    @inlinable public static var systemFlags: Flags { Flags(rawValue: 0xF000) }
}
