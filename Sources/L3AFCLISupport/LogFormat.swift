import ArgumentParser
import Foundation
import L3AFModel
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How the servers write their logs to standard error: `text`, swift-log's lines, or `json`, one JSON object per line
/// with `time` (RFC 3339, UTC, milliseconds), `level`, `label`, `message`, `source` and the entry's fields (integers as
/// numbers, the rest as text; a field never replaces one of those). Under systemd, where `$JOURNAL_STREAM` names standard error, each JSON line starts
/// with its syslog priority (`<6>`), which journald takes as the entry's priority and strips, so `journalctl -p
/// warning` works and `journalctl -o cat` gives the JSON back.
public enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json

    /// Makes every Logger this process creates from now on write in this format. Call once, before the first Logger.
    public func bootstrap() {
        switch self {
        case .text: LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        case .json:
            let journal = Self.standardErrorIsJournal()
            LoggingSystem.bootstrap { JSONLogHandler(label: $0, journalPriorities: journal) }
        }
    }

    /// The log format a command line asks for, and the command line without it, for a tool whose subcommands don't
    /// each declare the option (`l3af`): `--log-format FORMAT` or `--log-format=FORMAT` before any `--`, else
    /// `$L3AF_LOG_FORMAT`, else `text`. A format that isn't one of these is a usage error naming the ones that are.
    public static func take(from arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (LogFormat, [String]) {
        var format = environment["L3AF_LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0 }
        var rest: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" { rest += arguments[index...]; break }
            if argument == "--log-format" {
                guard index + 1 < arguments.endIndex else { throw CLIError("usage", "--log-format needs a value", hint: Self.hint) }
                format = arguments[index + 1]
                index += 2
                continue
            }
            if argument.hasPrefix("--log-format=") {
                format = String(argument.dropFirst("--log-format=".count))
            } else {
                rest.append(argument)
            }
            index += 1
        }
        guard let format else { return (.text, rest) }
        guard let parsed = LogFormat(rawValue: format) else {
            throw CLIError("usage", "the log format '\(format)' is not one l3af writes", hint: Self.hint)
        }
        return (parsed, rest)
    }

    static let hint = "use --log-format text or --log-format json (or set L3AF_LOG_FORMAT)"

    /// Whether standard error is the journal stream systemd gave this process (`$JOURNAL_STREAM` is its `dev:inode`).
    static func standardErrorIsJournal(_ variable: String? = ProcessInfo.processInfo.environment["JOURNAL_STREAM"]) -> Bool {
        guard let parts = variable?.split(separator: ":"), parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}

/// One JSON object per log entry, on one line (``LogFormat/json``).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let journalPriorities: Bool
    let write: @Sendable (String) -> Void

    public init(label: String, journalPriorities: Bool = false, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.journalPriorities = journalPriorities
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        write(Self.line(time: Date(), level: level, label: label, message: "\(message)", source: source,
                        fields: metadata.merging(explicit ?? [:]) { $1 }, journalPriority: journalPriorities))
    }

    /// The line for one entry, newline included.
    static func line(time: Date, level: Logger.Level, label: String, message: String, source: String, fields: Logger.Metadata,
                     journalPriority: Bool) -> String {
        var object: [String: JSONValue] = fields.mapValues(Self.value)
        object["time"] = .string(Self.timestamp(time))
        object["level"] = .string(level.rawValue)
        object["label"] = .string(label)
        object["message"] = .string(message)
        object["source"] = .string(source)
        return (journalPriority ? "<\(Self.syslogPriority(level))>" : "") + JSONValue.object(object).description + "\n"
    }

    static func value(_ metadata: Logger.Metadata.Value) -> JSONValue {
        switch metadata {
        case .string(let text): .string(text)
        case .stringConvertible(let value as any BinaryInteger): Int64(exactly: value).map(JSONValue.integer) ?? .string(value.description)
        case .stringConvertible(let value): .string(value.description)
        case .array(let values): .array(values.map(value))
        case .dictionary(let fields): .object(fields.mapValues(value))
        }
    }

    /// syslog(3)'s priority of a level, as journald reads it.
    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// `2026-12-05T11:54:24.123Z`.
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let fraction = String(1000 + milliseconds % 1000).dropFirst()
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }

    /// Writes to standard error in one write(2), so lines from several threads never interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 { if errno == EINTR { continue } else { return } }
            offset += written
        }
    }
}
