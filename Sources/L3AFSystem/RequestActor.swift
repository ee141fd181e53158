import Synchronization

/// Who made the request being served, as the server's authentication found it (a token's owner, a Unix socket's uid,
/// a certificate's name): the request log binds one per request (``current``) and the code that authenticates the
/// caller names them in it. Outside a request there is none, and naming does nothing.
public final class RequestActor: Sendable {
    @TaskLocal public static var current: RequestActor?

    private let value = Mutex<String?>(nil)

    public init() {}

    /// Names the caller of the current request, if one is being served.
    public static func name(_ actor: String) { current?.value.withLock { $0 = actor } }

    /// The caller named so far, or nil when the request was anonymous.
    public var name: String? { value.withLock { $0 } }
}
