/// How transfers behave on a slow or failing network.
public struct TransferPolicy: Sendable {
    /// Give up connecting after this many seconds.
    public var connectTimeoutSeconds = 10
    /// Abort a transfer slower than this many bytes per second for ``lowSpeedSeconds``: a stall is cut in
    /// bounded time without a blind total timeout that would kill a large, slow-but-alive download.
    public var lowSpeedBytesPerSecond = 1024
    public var lowSpeedSeconds = 30
    /// Attempts per transfer, the first included.
    public var maximumAttempts = 4
    /// Backoff before retry n (from 1): base × 2^(n-1), with ±25 % jitter, at most ``maximumBackoffSeconds``.
    public var backoffBaseSeconds = 0.25
    public var maximumBackoffSeconds = 10.0
    /// A server's `Retry-After` is honoured up to this many seconds.
    public var maximumRetryAfterSeconds = 30.0
    /// Transfers running at once.
    public var parallelTransfers = 8
    /// Protocols curl may use, for requests and redirects.
    public var protocols = "http,https,file"

    public init() {}

    /// The wait before attempt `attempt + 1`, or the server's `Retry-After` when it gave one.
    func delay(afterAttempt attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter, retryAfter.isFinite { return min(max(retryAfter, 0), maximumRetryAfterSeconds) }
        let base = backoffBaseSeconds * Double(1 << min(attempt - 1, 16))
        return min(base * Double.random(in: 0.75...1.25), maximumBackoffSeconds)
    }

    /// HTTP statuses worth retrying: timeouts, rate limits and server errors.
    static func isRetryable(status: Int) -> Bool { status == 408 || status == 429 || (500...599).contains(status) }
}
