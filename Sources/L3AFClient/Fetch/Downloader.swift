internal import CCurl
import Foundation
import Glibc
import L3AFModel

/// One file to download.
public struct DownloadJob: Sendable {
    public let url: String
    /// Where the verified file ends up (renamed into place only once it verified).
    public let destination: String
    /// Where the bytes accumulate meanwhile; a later run resumes from it.
    public let partial: String
    /// The signed size: more bytes than this are cut off.
    public let size: UInt64
    public let sha256: SHA256Digest

    public init(url: String, destination: String, partial: String, size: UInt64, sha256: SHA256Digest) {
        self.url = url
        self.destination = destination
        self.partial = partial
        self.size = size
        self.sha256 = sha256
    }
}

/// How one download went.
public struct DownloadReport: Sendable {
    public let attempts: Int
    /// Bytes that were already on disk from an earlier, interrupted attempt or run.
    public let resumedFrom: UInt64
}

/// Downloads several files at once through libcurl's multi interface, on one thread of its own:
/// retries with backoff (and `Retry-After`) on timeouts, resets and 408/429/5xx, never on other 4xx;
/// resumes partial files with a range request; cuts a body at the signed size; verifies sha256 and size
/// before renaming the file into place. Reports progress as bytes arrive.
public struct Downloader: Sendable {
    public var policy: TransferPolicy

    public init(policy: TransferPolicy = TransferPolicy()) { self.policy = policy }

    /// Runs every job; the result for each is in the same order.
    public func run(
        _ jobs: [DownloadJob], progress: (@Sendable (_ received: UInt64, _ total: UInt64) -> Void)? = nil
    ) async -> [Result<DownloadReport, FetchError>] {
        await withCheckedContinuation { continuation in
            let policy = self.policy
            Thread.detachNewThread {
                continuation.resume(returning: MultiLoop(jobs: jobs, policy: policy, progress: progress).run())
            }
        }
    }
}

/// Why a file could not be fetched.
public struct FetchError: L3AFError, Equatable {
    public enum Reason: Hashable, Sendable {
        /// An HTTP status not worth retrying, or still failing after every attempt.
        case status(Int, attempts: Int)
        /// No response: connect failure, reset, timeout or stall, after every attempt.
        case transport(String, attempts: Int)
        case tooLarge(limit: UInt64)
        case digestMismatch(expected: SHA256Digest, actual: SHA256Digest, size: UInt64)
        case storage(String)
    }

    public let url: String
    public let reason: Reason

    public var code: String {
        switch reason {
        case .status(let status, _): "http-\(status)"
        case .transport: "transfer-failed"
        case .tooLarge: "response-too-large"
        case .digestMismatch: "digest-mismatch"
        case .storage: "storage-failed"
        }
    }

    public var description: String {
        switch reason {
        case .status(let status, let attempts):
            "\(url) answered HTTP \(status)" + (attempts > 1 ? " (\(attempts) attempts)" : "")
        case .transport(let message, let attempts):
            "fetching \(url) failed after \(attempts) attempt(s): \(message)"
        case .tooLarge(let limit):
            "\(url) sent more than the \(limit) bytes its signed metadata allows; cut off"
        case .digestMismatch(let expected, let actual, let size):
            "\(url) does not match its signed metadata: expected sha256 \(expected), got \(actual) (\(size) bytes)"
        case .storage(let message):
            "saving \(url) failed: \(message)"
        }
    }

    public var hint: String? {
        switch reason {
        case .status(404, _): "the registry does not have it: check the name and version (l3af info NAME)"
        case .status, .transport: "check that the registry is reachable; transient failures were retried"
        case .tooLarge, .digestMismatch: "the artifact was altered or corrupted on its way; nothing was installed"
        case .storage: nil
        }
    }
}

/// The state of one job across its attempts; touched only on the loop's thread.
private final class Transfer {
    let job: DownloadJob
    let index: Int
    var attempt = 0
    var nextStart = 0.0
    var fd: Int32 = -1
    var offset: UInt64 = 0
    var resumedFrom: UInt64 = 0
    var status = 0
    var retryAfter: Double?
    var tooLarge = false
    var restartedFromZero = false
    var handle: UnsafeMutableRawPointer?
    var result: Result<DownloadReport, FetchError>?

    init(job: DownloadJob, index: Int) {
        self.job = job
        self.index = index
    }

    var isHTTP: Bool { job.url.hasPrefix("http") }
}

private final class MultiLoop {
    let policy: TransferPolicy
    let progress: (@Sendable (UInt64, UInt64) -> Void)?
    let transfers: [Transfer]
    let total: UInt64

    init(jobs: [DownloadJob], policy: TransferPolicy, progress: (@Sendable (UInt64, UInt64) -> Void)?) {
        self.policy = policy
        self.progress = progress
        self.transfers = jobs.enumerated().map { Transfer(job: $1, index: $0) }
        self.total = jobs.reduce(0) { $0 + $1.size }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func run() -> [Result<DownloadReport, FetchError>] {
        HTTPClient.initializeCurl()
        guard let multi = curl_multi_init() else {
            return transfers.map { .failure(FetchError(url: $0.job.url, reason: .storage("curl_multi_init failed"))) }
        }
        defer { curl_multi_cleanup(multi) }
        _ = l3af_curl_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, policy.parallelTransfers)
        var active = 0
        var lastReport = 0.0
        while transfers.contains(where: { $0.result == nil }) {
            let clock = Self.now()
            for transfer in transfers where transfer.result == nil && transfer.handle == nil && transfer.nextStart <= clock
                && active < policy.parallelTransfers
            {
                if start(transfer, multi: multi) { active += 1 }
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                      let transfer = transfers.first(where: { $0.handle == easy })
                else { continue }
                let code = message.pointee.data.result
                curl_multi_remove_handle(multi, easy)
                active -= 1
                finish(transfer, code: code)
            }
            if !transfers.contains(where: { $0.result == nil }) { break }
            if let progress, clock - lastReport > 0.1 {
                lastReport = clock
                progress(transfers.reduce(0) { $0 + ($1.result != nil ? $1.job.size : min($1.offset, $1.job.size)) }, total)
            }
            let waiting = transfers.filter { $0.result == nil && $0.handle == nil }.map(\.nextStart).min()
            let timeout = waiting.map { max(0, min(100, Int32(($0 - Self.now()) * 1000))) } ?? 100
            var ready: Int32 = 0
            curl_multi_poll(multi, nil, 0, active > 0 ? timeout : max(timeout, 1), &ready)
        }
        progress?(total, total)
        return transfers.map { $0.result! }
    }

    /// Opens the partial file (resuming from what it holds) and adds an easy handle for the next attempt.
    private func start(_ transfer: Transfer, multi: UnsafeMutableRawPointer) -> Bool {
        transfer.attempt += 1
        transfer.status = 0
        transfer.retryAfter = nil
        transfer.tooLarge = false
        let folder = (transfer.job.partial as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        transfer.fd = open(transfer.job.partial, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard transfer.fd >= 0 else {
            transfer.result = .failure(FetchError(url: transfer.job.url, reason: .storage("can't open \(transfer.job.partial): \(String(cString: strerror(errno)))")))
            return false
        }
        var size = UInt64(lseek(transfer.fd, 0, SEEK_END))
        if size == transfer.job.size {
            // An earlier run got every byte and was stopped before renaming: use it if it verifies.
            close(transfer.fd)
            if let digest = FileDigest.sha256(of: transfer.job.partial), digest.sha256 == transfer.job.sha256 {
                transfer.resumedFrom = size
                verify(transfer)
                return false
            }
            transfer.fd = open(transfer.job.partial, O_WRONLY | O_TRUNC | O_CLOEXEC)
            size = 0
        } else if size > transfer.job.size {
            ftruncate(transfer.fd, 0)
            size = 0
        }
        transfer.offset = size
        if transfer.attempt == 1 { transfer.resumedFrom = size }
        guard let easy = curl_easy_init() else {
            transfer.result = .failure(FetchError(url: transfer.job.url, reason: .storage("curl_easy_init failed")))
            close(transfer.fd)
            return false
        }
        transfer.handle = easy
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        transfer.job.url.withCString { _ = l3af_curl_setopt_pointer(easy, CURLOPT_URL, $0) }
        _ = policy.configure(easy, url: transfer.job.url)
        if size > 0 { _ = l3af_curl_setopt_offset(easy, CURLOPT_RESUME_FROM_LARGE, curl_off_t(size)) }
        _ = l3af_curl_setopt_write(easy, { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            // An error page is not the file: drop it (the status decides on a retry).
            if transfer.isHTTP, !(200..<300).contains(transfer.status) { return length }
            if transfer.offset + UInt64(length) > transfer.job.size {
                transfer.tooLarge = true
                return 0
            }
            var written = 0
            while written < length {
                let n = Glibc.write(transfer.fd, data!.advanced(by: written), length - written)
                if n < 0 { if errno == EINTR { continue }; return 0 }
                written += n
            }
            transfer.offset += UInt64(length)
            return length
        }, context)
        _ = l3af_curl_setopt_header(easy, { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
            if line.hasPrefix("HTTP/") {
                let parts = line.split(separator: " ")
                transfer.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                transfer.retryAfter = nil
                // The server ignored the range and sends everything: start the file over.
                if transfer.status == 200, transfer.offset > 0 {
                    ftruncate(transfer.fd, 0)
                    lseek(transfer.fd, 0, SEEK_SET)
                    transfer.offset = 0
                }
            } else if line.lowercased().hasPrefix("retry-after:") {
                transfer.retryAfter = RetryAfter.delay(String(line.dropFirst(12)), limit: .infinity)  // the policy clamps it
            }
            return size * count
        }, context)
        curl_multi_add_handle(multi, easy)
        return true
    }

    /// Decides what a finished attempt means: done, retry later, or failed.
    private func finish(_ transfer: Transfer, code: CURLcode) {
        let easy = transfer.handle!
        var status = 0
        _ = l3af_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        let message = String(cString: curl_easy_strerror(code))
        curl_easy_cleanup(easy)
        transfer.handle = nil
        // No fsync: the file is verified against its digest before use, here and whenever it is reused.
        close(transfer.fd)
        let url = transfer.job.url
        func retry(_ failure: FetchError) {
            if transfer.attempt >= policy.maximumAttempts {
                transfer.result = .failure(failure)
            } else {
                transfer.nextStart = Self.now() + policy.delay(afterAttempt: transfer.attempt, retryAfter: transfer.retryAfter)
            }
        }
        if transfer.tooLarge {
            unlink(transfer.job.partial)
            transfer.result = .failure(FetchError(url: url, reason: .tooLarge(limit: transfer.job.size)))
            return
        }
        switch code {
        case CURLE_OK where status == 416 && !transfer.restartedFromZero:
            // The partial file doesn't fit what the server has: start over from the first byte, once.
            truncate(transfer.job.partial, 0)
            transfer.restartedFromZero = true
            transfer.attempt -= 1
            transfer.nextStart = Self.now()
        case CURLE_OK:
            if transfer.isHTTP, !(200..<300).contains(status) {
                if TransferPolicy.isRetryable(status: status) {
                    retry(FetchError(url: url, reason: .status(status, attempts: transfer.attempt)))
                } else {
                    transfer.result = .failure(FetchError(url: url, reason: .status(status, attempts: transfer.attempt)))
                }
                return
            }
            verify(transfer)
        case CURLE_RANGE_ERROR, CURLE_BAD_DOWNLOAD_RESUME:
            // The server can't resume: start over from the first byte (the attempt still counts).
            truncate(transfer.job.partial, 0)
            retry(FetchError(url: url, reason: .transport(message, attempts: transfer.attempt)))
        case CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE,
             CURLE_GOT_NOTHING, CURLE_COULDNT_RESOLVE_HOST, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            retry(FetchError(url: url, reason: .transport(message, attempts: transfer.attempt)))
        default:
            transfer.result = .failure(FetchError(url: url, reason: .transport(message, attempts: transfer.attempt)))
        }
    }

    /// Checks the completed partial file against the signed digest and size, then renames it into place.
    private func verify(_ transfer: Transfer) {
        let job = transfer.job
        guard let digest = FileDigest.sha256(of: job.partial) else {
            transfer.result = .failure(FetchError(url: job.url, reason: .storage("can't read \(job.partial)")))
            return
        }
        guard digest.size == job.size, digest.sha256 == job.sha256 else {
            unlink(job.partial)
            transfer.result = .failure(FetchError(url: job.url, reason: .digestMismatch(expected: job.sha256, actual: digest.sha256, size: digest.size)))
            return
        }
        try? FileManager.default.createDirectory(atPath: (job.destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard rename(job.partial, job.destination) == 0 else {
            transfer.result = .failure(FetchError(url: job.url, reason: .storage("can't rename into \(job.destination): \(String(cString: strerror(errno)))")))
            return
        }
        transfer.result = .success(DownloadReport(attempts: transfer.attempt, resumedFrom: transfer.resumedFrom))
    }
}

extension RetryAfter {
    /// `Retry-After` as seconds to wait, from delay-seconds or an HTTP-date, within `0...limit`; `nil` when it is
    /// neither (`nan`, `-1`, `1.5` and garbage are ignored, so the usual backoff applies).
    static func delay(_ value: String, limit: Double) -> Double? {
        if let seconds = seconds(value, limit: Int.max) { return min(Double(seconds), limit) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let interval = formatter.date(from: value.trimmingCharacters(in: .whitespaces))?.timeIntervalSinceNow, interval.isFinite else { return nil }
        return min(max(interval, 0), limit)
    }
}

/// Streams a file through SHA-256.
public enum FileDigest {
    public static func sha256(of path: String) -> (sha256: SHA256Digest, size: UInt64)? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var hasher = SHA256Stream()
        var size: UInt64 = 0
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(chunk)
            size += UInt64(chunk.count)
        }
        return (hasher.finalize(), size)
    }
}
