/// Actions and flags of a ``KEvent`` (the `flags` field of `struct kevent`, `EV_*`).
@frozen
public struct Flags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Add the event, or modify it if it exists. The corresponding C constant is `EV_ADD`.
    public static let add = Flags(rawValue: 0x0001)
    /// Remove the event. The corresponding C constant is `EV_DELETE`.
    public static let delete = Flags(rawValue: 0x0002)
    /// Allow the event to be returned. The corresponding C constant is `EV_ENABLE`.
    public static let enable = Flags(rawValue: 0x0004)
    /// Keep the event registered but do not return it. The corresponding C constant is
    /// `EV_DISABLE`.
    public static let disable = Flags(rawValue: 0x0008)
    /// Return the event once, then delete it. The corresponding C constant is `EV_ONESHOT`.
    public static let oneShot = Flags(rawValue: 0x0010)
    /// Reset the event's state after it is returned (edge-triggered). The corresponding C
    /// constant is `EV_CLEAR`.
    public static let clear = Flags(rawValue: 0x0020)
    /// Report every change's outcome as an `.error` entry, with `data` 0 on success. The
    /// corresponding C constant is `EV_RECEIPT`.
    public static let receipt = Flags(rawValue: 0x0040)
    /// Return the event once, then disable it. The corresponding C constant is `EV_DISPATCH`.
    public static let dispatch = Flags(rawValue: 0x0080)
    /// Make an existing event a oneshot and fire it now. The corresponding C constant is
    /// `EV_FORCEONESHOT`.
    public static let forceOneShot = Flags(rawValue: 0x0100)
    /// Modify without replacing `udata`. The corresponding C constant is `EV_KEEPUDATA`.
    public static let keepUserData = Flags(rawValue: 0x0200)
    /// Filter-specific flag. The corresponding C constant is `EV_FLAG1`.
    public static let flag1 = Flags(rawValue: 0x2000)
    /// Returned: the change failed, `data` holds the errno (or 0 for a receipt). The
    /// corresponding C constant is `EV_ERROR`.
    public static let error = Flags(rawValue: 0x4000)
    /// Returned: end of file (or of the connection). The corresponding C constant is `EV_EOF`.
    public static let endOfFile = Flags(rawValue: 0x8000)
    /// Bits reserved for the system, stripped from every change. The corresponding C
    /// constant is `EV_SYSFLAGS`.
    public static let systemFlags = Flags(rawValue: 0xF000)
}
