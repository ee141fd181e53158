internal import CBPF
import Foundation
import Logging
import Synchronization

/// libbpf's own log, routed into swift-log under the label `libbpf` instead of straight to standard error.
/// libbpf's warnings arrive at `info` (what they say about a failed load is in the error l3af raises, with the
/// verifier's log), its info at `debug` and its debug at `trace`. The level comes from `$L3AF_LIBBPF_LOG`
/// (`trace` … `critical`; default `warning`, so a failed load prints only l3af's error).
public enum BPFLog {
    private static let logger = Mutex<Logger?>(nil)

    /// Routes libbpf's log to `logger` from now on.
    public static func route(to newLogger: Logger) {
        logger.withLock { $0 = newLogger }
        l3af_bpf_set_log_sink { level, message in
            guard let message else { return }
            BPFLog.log(level: level, String(cString: message))
        }
    }

    /// Routes libbpf's log to a `libbpf` logger at `$L3AF_LIBBPF_LOG`'s level, unless it was routed already.
    public static func routeByDefault() {
        if logger.withLock({ $0 != nil }) { return }
        var fallback = Logger(label: "libbpf")
        fallback.logLevel = ProcessInfo.processInfo.environment["L3AF_LIBBPF_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        route(to: fallback)
    }

    private static func log(level: Int32, _ message: String) {
        guard let current = logger.withLock({ $0 }) else { return }
        var text = Substring(message.hasSuffix("\n") ? String(message.dropLast()) : message)
        if text.hasPrefix("libbpf: ") { text = text.dropFirst(8) }
        switch UInt32(level) {
        case LIBBPF_WARN.rawValue: current.info("\(text)")
        case LIBBPF_INFO.rawValue: current.debug("\(text)")
        default: current.trace("\(text)")
        }
    }
}
