import Foundation
import Synchronization

/// Runs programs for tests: this package's built executables or system tools.
public enum Executable {
    /// What a finished run printed and its exit status.
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// The folder SwiftPM built the executables into (beside the test bundle).
    public static let productsFolder: URL = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var folder = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while folder.pathExtension == "xctest" { folder = folder.deletingLastPathComponent() }
        return folder
    }()

    /// The path of one of this package's executables, or of `name` when it is a path already.
    public static func path(_ name: String) -> String {
        name.hasPrefix("/") ? name : productsFolder.appending(path: name).path
    }

    /// Runs `name` to completion.
    public static func run(
        _ name: String, _ arguments: [String], stdin: String? = nil, environment: [String: String]? = nil, workingDirectory: String? = nil
    ) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path(name))
        process.arguments = arguments
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Read both pipes at once so neither fills while the other is read.
        let errData = Mutex(Data())
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { let d = err.fileHandleForReading.readDataToEndOfFile(); errData.withLock { $0 = d } }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self))
    }
}

/// A long-running child (a server) that tests start, read from, and stop or kill.
public final class RunningProcess: Sendable {
    private let process: Process
    private let output: Mutex<String>
    public let log: URL

    /// Starts `name` with its standard output and error going to a log file, and `environment` added to this one's.
    public init(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        log = FileManager.default.temporaryDirectory.appending(path: "l3af-proc-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Executable.path(name))
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        self.output = Mutex("")
    }

    /// Everything it printed so far.
    public var printed: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` for a line containing `marker`, and returns that line.
    public func waitForLine(containing marker: String, seconds: Double = 20) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let line = printed.split(separator: "\n").first(where: { $0.contains(marker) }) { return String(line) }
            guard process.isRunning else { throw FixtureError("process exited (\(process.terminationStatus)) before printing '\(marker)':\n\(printed)") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw FixtureError("no '\(marker)' within \(seconds)s:\n\(printed)")
    }

    public var isRunning: Bool { process.isRunning }

    /// Waits for the process to end by itself; returns its status.
    @discardableResult
    public func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
    public var processIdentifier: Int32 { process.processIdentifier }

    /// Sends `signal` and waits for the process to end; returns its status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: log)
    }
}
