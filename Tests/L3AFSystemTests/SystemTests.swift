import Foundation
import L3AFModel
import L3AFSystem
import Synchronization
import Testing

@Suite struct FileLockTests {
    let folder = NSTemporaryDirectory() + "l3af-system-\(UUID().uuidString)"

    /// A lock another process holds, by flock(1), until its stdin closes. Returns once flock(1) holds it.
    func holdInAnotherProcess(_ path: String) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        process.arguments = [path, "-c", "read line"]
        let input = Pipe()
        process.standardInput = input
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            do { _ = try FileLock(path: path, wait: .never) } catch is FileLock.Held { return (process, input) }
            usleep(5_000)
        }
        throw StorageError("flock(1) never took \(path)", errno: ETIMEDOUT)
    }

    @Test func neverWaitsAndNamesTheHolder() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = "\(folder)/a/lock"
        let first = try FileLock(path: path, wait: .never)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(getpid())\n")
        let refused = #expect(throws: FileLock.Held.self) { _ = try FileLock(path: path, wait: .never) }
        #expect(refused?.pid == String(getpid()))
        withExtendedLifetime(first) {}
    }

    @Test func waitsUpToItsDeadlineForAnotherProcessThenTakesItWhenFree() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = "\(folder)/lock"
        let (holder, input) = try holdInAnotherProcess(path)
        let told = Flag()
        let started = Date()
        #expect(throws: FileLock.Held.self) { _ = try FileLock(path: path, wait: .seconds(0.3, notify: { _ in told.set() })) }
        #expect(Date().timeIntervalSince(started) >= 0.3 && told.value)
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()
        let lock = try FileLock(path: path, wait: .seconds(5, notify: { _ in }))
        withExtendedLifetime(lock) {}
    }

    @Test func atomicWritesReplaceWholeAndContainedPathsStayInside() throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try AtomicFile.write(Array("one".utf8), to: "\(folder)/f")
        try AtomicFile.write(Array("two".utf8), to: "\(folder)/f", mode: 0o600)
        #expect(AtomicFile.read("\(folder)/f") == Array("two".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["f"], "no temporary file left")
        try FileManager.default.createSymbolicLink(atPath: "\(folder)/out", withDestinationPath: "/etc/passwd")
        #expect(throws: PathNameError.self) { _ = try ContainedPath.resolve(try RelativePath("out", field: "f"), in: folder, field: "f") }
        #expect(try ContainedPath.resolve(try RelativePath("f", field: "f"), in: folder, field: "f").hasSuffix("/f"))
    }

    @Test func blockingWorkRunsOffThePool() async throws {
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<8 { group.addTask { await OffPool.run { usleep(100_000); return i } } }
            return try await group.reduce(0, +)
        }
        #expect(results == 28)
    }
}

/// A flag set from a `@Sendable` callback.
final class Flag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var value: Bool { flag.load(ordering: .relaxed) }
}
