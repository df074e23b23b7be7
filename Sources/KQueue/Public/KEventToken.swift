/// A Swift value that travels in an event's `udata` word by value: no allocation, nothing
/// to release, so it is safe whatever happens to the registration.
///
/// Integers, `FileDescriptor`, ``ProcessID`` and ``Signal`` are tokens; so is any enum or
/// struct that is `RawRepresentable` with an integer raw value, once it declares the
/// conformance:
///
/// ```swift
/// enum Source: UInt8, KEventToken { case input, tick }
/// try queue.apply([.read(input).withToken(Source.input)])
/// for event in try queue.events(timeout: .seconds(1)) {
///     switch event.token(as: Source.self) { ... }
/// }
/// ```
///
/// As on FreeBSD, every change to a registration (a trigger, an enable) replaces its `udata`
/// unless it has ``Flags/keepUserData``: give such changes the token again, or that flag.
///
/// For a value that must be retained (a connection object, a closure), use
/// ``ContextQueue``, which keeps such values in a table the queue owns.
public protocol KEventToken {
    /// The word stored in `udata`.
    var udataWord: UInt { get }
    /// The value `word` stands for, or nil when it stands for none of this type.
    init?(udataWord word: UInt)
}

extension KEventToken where Self: FixedWidthInteger {
    @inlinable public var udataWord: UInt { UInt(truncatingIfNeeded: self) }
    @inlinable public init?(udataWord word: UInt) {
        if Self.isSigned {
            self.init(exactly: Int(bitPattern: word))
        } else {
            self.init(exactly: word)
        }
    }
}

extension KEventToken where Self: RawRepresentable, RawValue: FixedWidthInteger {
    @inlinable public var udataWord: UInt { UInt(truncatingIfNeeded: rawValue) }
    @inlinable public init?(udataWord word: UInt) {
        let raw = RawValue.isSigned ? RawValue(exactly: Int(bitPattern: word)) : RawValue(exactly: word)
        guard let raw else { return nil }
        self.init(rawValue: raw)
    }
}

extension Int: KEventToken {}
extension Int8: KEventToken {}
extension Int16: KEventToken {}
extension Int32: KEventToken {}
extension Int64: KEventToken {}
extension UInt: KEventToken {}
extension UInt8: KEventToken {}
extension UInt16: KEventToken {}
extension UInt32: KEventToken {}
extension UInt64: KEventToken {}
extension FileDescriptor: KEventToken {}
extension ProcessID: KEventToken {}
extension Signal: KEventToken {}

extension KEvent {
    /// This change with `token` in its `udata` (by value: see ``KEventToken``).
    @inlinable
    public func withToken(_ token: some KEventToken) -> KEvent {
        var change = self
        change.udata = UnsafeMutableRawPointer(bitPattern: token.udataWord)
        return change
    }

    /// The `udata` of this event read as a `T` token, or nil when it is no `T`.
    @inlinable
    public func token<T: KEventToken>(as type: T.Type = T.self) -> T? {
        T(udataWord: UInt(bitPattern: udata))
    }
}
