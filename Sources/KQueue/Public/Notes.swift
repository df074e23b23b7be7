/// `fflags` of ``Filter/read`` and ``Filter/write`` events.
@frozen
public struct DescriptorNote: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `data` holds a low-water mark. The corresponding C constant is `NOTE_LOWAT`.
    public static let lowWater = DescriptorNote(rawValue: 0x0001)
    /// Regular files: always ready, like poll(2). The corresponding C constant is
    /// `NOTE_FILE_POLL`.
    public static let filePoll = DescriptorNote(rawValue: 0x0002)
}

/// `fflags` of ``Filter/user`` events: a control operation in the top bits, a 24-bit value
/// in the low bits, and ``trigger``.
@frozen
public struct UserNote: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Keep the stored value. The corresponding C constant is `NOTE_FFNOP`.
    public static let noOperation = UserNote(rawValue: 0)
    /// Trigger the event. The corresponding C constant is `NOTE_TRIGGER`.
    public static let trigger = UserNote(rawValue: 0x0100_0000)
    /// Mask of the 24-bit value. The corresponding C constant is `NOTE_FFLAGSMASK`.
    public static let valueMask: UInt32 = 0x00FF_FFFF

    /// AND `value` into the stored value. The corresponding C constant is `NOTE_FFAND`.
    public static func and(_ value: UInt32) -> UserNote { UserNote(rawValue: 0x4000_0000 | (value & valueMask)) }
    /// OR `value` into the stored value. The corresponding C constant is `NOTE_FFOR`.
    public static func or(_ value: UInt32) -> UserNote { UserNote(rawValue: 0x8000_0000 | (value & valueMask)) }
    /// Replace the stored value. The corresponding C constant is `NOTE_FFCOPY`.
    public static func copy(_ value: UInt32) -> UserNote { UserNote(rawValue: 0xC000_0000 | (value & valueMask)) }

    /// This note with ``trigger`` added.
    public var triggering: UserNote { UserNote(rawValue: rawValue | UserNote.trigger.rawValue) }
}
