import CLinux
import Foundation
import L3AFClient
import L3AFModel
import L3AFSystem
import Logging
import ServiceLifecycle
import Synchronization

/// What l3afd's `PUT /l3af/configs/v1/restart` takes: the host it is meant for, and the build to run.
struct RestartRequest: Codable, Sendable {
    var hostname: String
    var version: String

    enum CodingKeys: String, CodingKey, CaseIterable { case hostname, version }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostname = try c.decode(String.self, forKey: .hostname)
        version = try c.decode(String.self, forKey: .version)
    }
}

/// A restart that can't be done, with the HTTP status that says whose fault it is.
struct RestartError: HTTPStatusError {
    let httpStatus: Int
    let code: String
    let description: String
    let hint: String?
    var retryAfterSeconds: Int? { httpStatus == 409 ? 5 : nil }

    init(_ status: Int, _ code: String, _ description: String, hint: String? = nil) {
        httpStatus = status
        self.code = code
        self.description = description
        self.hint = hint
    }
}

/// l3afd replacing itself with another build of l3afd (l3afd's graceful restart), as one step that leaves the host on
/// the old build or the new one:
///
/// 1. The request is checked (its host name, a version `vX.Y.Z` within `version-limit`), the build
///    `<restart-artifacts-url>/<version>/l3afd.tar.gz` fetched, trusted on first use like a plain repository's
///    artifact, unpacked under `<basepath>/<version>/l3afd/` with the package unpacker's checks, and run once with
///    `--version`. Anything wrong is the answer, and nothing changed.
/// 2. The answer says the handover began. The listening sockets stop accepting (they stay open: new connections wait
///    in their queues), then the daemon stops as it does on SIGTERM: requests in flight are answered, user programs
///    stop; the eBPF programs stay attached, so no packet misses the chain.
/// 3. `<basepath>/latest/l3afd` (and `l3afd.cfg`, when the build has one) point at the new build, which is started with
///    this process's arguments and its listening sockets (``Listeners``). It adopts the host as any restart does,
///    accepts what waited in the queues, and says it serves by writing its pid to `<state>/l3afd.ready`.
/// 4. If it does within `time-to-restart`, this process exits. If not, it is stopped, the links point back, the new
///    build's folder is removed, and this build runs again in this process (exec of itself) with the same sockets,
///    adopting the host. No connection is refused or reset on the way; one waits at most until a process accepts it.
final class SelfUpgrade: Sendable {
    struct Prepared: Sendable {
        var version: String
        /// `<basepath>/<version>/l3afd/l3afd`.
        var executable: String
    }

    let settings: DaemonConfiguration.GracefulRestart?
    let client: ClientConfiguration
    let hostName: String
    let logger: Logger
    private let state = Mutex<(busy: Bool, prepared: Prepared?, group: ServiceGroup?, gates: [AcceptGate])>((false, nil, nil, []))

    init(settings: DaemonConfiguration.GracefulRestart?, client: ClientConfiguration, hostName: String, logger: Logger) {
        self.settings = settings
        self.client = client
        self.hostName = hostName
        self.logger = logger
    }

    /// The services a handover stops, and the gates that stop their servers accepting.
    func attach(_ group: ServiceGroup, gates: [AcceptGate]) { state.withLock { $0.group = group; $0.gates = gates } }

    /// The build a handover was asked for, once the daemon stopped serving.
    var prepared: Prepared? { state.withLock { $0.prepared } }

    /// The file a new process writes its pid to once it listens.
    var readyFile: String { "\(client.state)/l3afd.ready" }

    /// Step 1, and the start of step 2: on success, the daemon stops serving once this request is answered.
    func request(_ request: RestartRequest) async throws -> Prepared {
        guard let settings else {
            throw RestartError(400, "restart-not-configured", "this l3afd has no graceful restart configured",
                               hint: "set [graceful-restart] restart-artifacts-url in l3afd.cfg (or graceful_restart.artifacts_url in --config)")
        }
        guard request.hostname == hostName else {
            throw RestartError(400, "wrong-host", "this request is for host '\(request.hostname)'; this is '\(hostName)'", hint: "send it to that host")
        }
        guard Self.isVersion(request.version, limit: settings.versionLimit) else {
            throw RestartError(400, "bad-version", "version '\(request.version)' is not vX.Y.Z with each number at most \(settings.versionLimit) (version-limit)",
                               hint: "e.g. v2.1.0")
        }
        let claimed = state.withLock { state in
            if state.busy { return false }
            state.busy = true
            return true
        }
        guard claimed else { throw RestartError(409, "restart-in-progress", "a restart is already in progress", hint: "wait for it to finish") }
        do {
            let prepared = try await prepare(request.version, settings)
            // A stop (SIGTERM) that came while the build was fetched wins: no new process is started.
            guard !Task.isShuttingDownGracefully else {
                throw RestartError(409, "stopping", "l3afd is stopping; the restart was not started", hint: "ask again once it runs")
            }
            let (group, gates) = state.withLock { state in
                state.prepared = prepared
                return (state.group, state.gates)
            }
            logger.notice("restart: \(prepared.executable) runs; handing over once this request is answered")
            // The sockets stop accepting at once: what connects from now on waits in their queues for the new
            // process. The shutdown then answers what was accepted before closing it (``ListenerServer``).
            for gate in gates { gate.close() }
            Task { await group?.triggerGracefulShutdown() }
            return prepared
        } catch {
            state.withLock { $0.busy = false }
            throw error
        }
    }

    /// `vX.Y.Z`, each number at most `limit`, written without leading zeros (l3afd's accepted versions).
    static func isVersion(_ text: String, limit: Int) -> Bool {
        guard text.hasPrefix("v") else { return false }
        let parts = text.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 && parts.allSatisfy { part in Int(part).map { (0...limit).contains($0) && String($0) == part } ?? false }
    }

    private func prepare(_ version: String, _ settings: DaemonConfiguration.GracefulRestart) async throws -> Prepared {
        let folder: String
        do {
            let installer = try PackageInstaller(configuration: client)
            folder = try await installer.fetchDaemonBuild(from: settings.artifactsURL, version: version,
                                                          artifact: DaemonConfiguration.GracefulRestart.artifact, into: settings.basePath)
        } catch let error as FetchError {
            throw RestartError(502, error.code, "can't fetch l3afd \(version): \(error.description)", hint: error.hint)
        } catch let error as any L3AFError {
            throw RestartError(422, error.code, "l3afd \(version) can't be used: \(error.description)", hint: error.hint)
        }
        let executable = "\(folder)/l3afd"
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw RestartError(422, "build-incomplete", "\(settings.artifactsURL)/\(version)/\(DaemonConfiguration.GracefulRestart.artifact) has no executable l3afd/l3afd",
                               hint: "the archive holds the folder l3afd/ with the l3afd binary (and l3afd.cfg, if it brings one)")
        }
        // A build that can't even say its version (another architecture, a missing library) is refused before the
        // daemon stops serving.
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: executable)
        probe.arguments = ["--version"]
        probe.standardInput = FileHandle.nullDevice
        // Its output goes to a file, not a pipe a child of it could hold open.
        let outputPath = "\(client.state)/restart-version-check.out"
        unlink(outputPath)
        guard FileManager.default.createFile(atPath: outputPath, contents: nil, attributes: [.posixPermissions: 0o600]),
              let output = FileHandle(forWritingAtPath: outputPath) else {
            throw RestartError(500, "state-unwritable", "can't write \(outputPath)")
        }
        defer { try? output.close(); unlink(outputPath) }
        probe.standardOutput = output
        probe.standardError = output
        do { try UserProgramSupervisor.spawn(probe) } catch {
            throw RestartError(422, "build-does-not-run", "\(executable) does not start: \(error)")
        }
        let deadline = Date().addingTimeInterval(10)
        while probe.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if probe.isRunning {
            kill(probe.processIdentifier, SIGKILL)
            throw RestartError(422, "build-does-not-run", "\(executable) --version did not finish within 10 s", hint: "publish a build of l3afd for this machine")
        }
        let said = String(decoding: (AtomicFile.read(outputPath) ?? []).prefix(2000), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard probe.terminationReason == .exit, probe.terminationStatus == 0 else {
            throw RestartError(422, "build-does-not-run", "\(executable) --version failed (\(probe.terminationReason == .exit ? "exit \(probe.terminationStatus)" : "signal \(probe.terminationStatus)")): \(said)",
                               hint: "publish a build of l3afd for this machine")
        }
        // `latest/` holds links this process makes; a file an operator put there is never replaced.
        for name in ["l3afd", "l3afd.cfg"] {
            var info = stat()
            let path = "\(settings.basePath)/latest/\(name)"
            if lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFLNK {
                throw RestartError(409, "latest-not-a-link", "\(path) is not a symbolic link, so a restart would replace it",
                                   hint: "move it away (the restart points \(settings.basePath)/latest/\(name) at the build it runs)")
            }
        }
        return Prepared(version: version, executable: executable)
    }

    /// Steps 3 and 4, after the daemon stopped serving and let go of its pid lock: whether the new build serves. It
    /// gets this process's arguments and its listening sockets. When it doesn't serve in time, it is stopped and the
    /// links point back; the caller runs this build again.
    func handOver(_ prepared: Prepared, arguments: [String], listeners: Listeners) -> Bool {
        guard let settings else { return false }
        let latest = "\(settings.basePath)/latest"
        let links = ["l3afd", "l3afd.cfg"]
        let before = links.map { readLink("\(latest)/\($0)") }
        let folder = (prepared.executable as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: latest, withIntermediateDirectories: true)
        // `l3afd.cfg` changes only when the build brings one.
        let pointed = links.filter { $0 == "l3afd" || FileManager.default.fileExists(atPath: "\(folder)/\($0)") }
        for name in pointed { point("\(latest)/\(name)", at: "\(folder)/\(name)") }
        unlink(readyFile)
        let deadline = Date().addingTimeInterval(settings.timeToRestartSeconds)
        var problem = "it did not serve within \(Int(settings.timeToRestartSeconds)) s (time-to-restart)"
        var child: pid_t = 0
        do {
            child = try Self.spawn(prepared.executable, arguments: arguments, listeners: listeners)
            logger.notice("restart: started \(prepared.executable) as pid \(child)")
            while Date() < deadline {
                if let text = try? String(contentsOfFile: readyFile, encoding: .utf8), Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == child {
                    logger.notice("restart: l3afd \(prepared.version) (pid \(child)) serves; this process leaves")
                    // Under systemd, the new process becomes the service's main process, so the unit stays up.
                    SystemdNotify.send("MAINPID=\(child)")
                    return true
                }
                var status: Int32 = 0
                if waitpid(child, &status, WNOHANG) == child {
                    problem = "it exited (\(status & 0x7f == 0 ? "status \((status >> 8) & 0xff)" : "signal \(status & 0x7f)")) before it served"
                    child = 0
                    break
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        } catch {
            problem = "it did not start: \(error)"
        }
        logger.error("restart: l3afd \(prepared.version) failed: \(problem); going back to this build")
        if child > 0 {
            // SIGTERM first, so it stops its user programs; SIGKILL only if it is still there 10 s later. Only a child
            // not yet reaped is signalled, so the pid can't be another process's by then.
            kill(child, SIGTERM)
            var status: Int32 = 0
            var reaped = false
            let stop = Date().addingTimeInterval(10)
            while !reaped, Date() < stop {
                reaped = waitpid(child, &status, WNOHANG) == child
                if !reaped { Thread.sleep(forTimeInterval: 0.05) }
            }
            if !reaped {
                kill(child, SIGKILL)
                waitpid(child, &status, 0)
            }
        }
        for (name, target) in zip(links, before) where pointed.contains(name) {
            if let target { point("\(latest)/\(name)", at: target) } else { unlink("\(latest)/\(name)") }
        }
        // The failed build's folder goes (as l3afd does), unless it is the one this process runs from.
        let versionFolder = (folder as NSString).deletingLastPathComponent
        var running = stat(), candidate = stat()
        let runsFromIt = stat("/proc/self/exe", &running) == 0 && stat(prepared.executable, &candidate) == 0
            && running.st_dev == candidate.st_dev && running.st_ino == candidate.st_ino
        if !runsFromIt { try? FileManager.default.removeItem(atPath: versionFolder) }
        return false
    }

    /// Starts `executable` with `arguments`, the listening sockets (as descriptors 3, 4, …, named in
    /// ``Listeners/environment``) and no other descriptor, this process's environment otherwise, no signal blocked.
    static func spawn(_ executable: String, arguments: [String], listeners: Listeners) throws -> pid_t {
        let (descriptors, variable) = listeners.forNewProcess()
        var environment = ProcessInfo.processInfo.environment
        environment[Listeners.environment] = variable
        // The new process becomes the service's main process: systemd's watchdog is then its to feed.
        environment["WATCHDOG_PID"] = nil
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: Int32 = 0
        let result = l3af_spawn_keeping(executable, argv, envp, descriptors, Int32(descriptors.count), &pid)
        guard result == 0 else { throw RestartError(500, "spawn-failed", "can't start \(executable): \(String(cString: strerror(result)))") }
        return pid
    }

    /// Runs this process's own executable again, with its arguments, its listening sockets and no signal blocked;
    /// returns only if it can't.
    static func runAgain(listeners: Listeners) -> Never {
        if let handed = listeners.keptAcrossExec() { setenv(Listeners.environment, handed, 1) }
        _ = l3af_unblock_signals()
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        FileHandle.standardError.write(Data("l3afd: can't run /proc/self/exe again: \(String(cString: strerror(errno)))\n".utf8))
        exit(1)
    }

    private func readLink(_ path: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: path) }

    /// Makes `path` a symbolic link to `target` in one rename, so it is never missing.
    private func point(_ path: String, at target: String) {
        do { try AtomicFile.symlink(target, at: path) } catch { logger.error("restart: can't point \(path) at \(target): \(error)") }
    }
}
