import CLinux
import Foundation
import L3AFHost
import L3AFRuntime
import L3AFSystem
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the user programs of legacy packages (`cmd_start`) while their eBPF programs are in a chain: each as a child
/// process started with its argv (no shell) and no signal blocked, its `cpu` and `memory` limits set, its output in
/// `<state>/user-programs/<package>.log`. A daemon program (`user_program_daemon`) that exits is restarted, at most
/// `maximumRestarts` times; a one-shot program runs once per revision that places it. Programs that leave the
/// configuration are stopped with their `cmd_stop`, then SIGTERM; every child gets SIGTERM when l3afd stops (the eBPF
/// programs stay attached).
///
/// A program that loads its own eBPF program (`--map-name`) is started by the chain change that needs it, through
/// ``start(_:)``, beside the instance already running (if any): the change waits for its program and flips it in. When
/// the change settles, a recorded revision that wants exactly that program makes it the supervised one (the old instance
/// gets SIGTERM); otherwise it is stopped and nothing else changed. When such a program is restarted (it died, or l3afd
/// started again), the program it puts into its inlet is joined to the chain (``HostManager/adoptUserProgram(of:)``),
/// retried while the host is locked; a program the chain refuses is logged and left out.
final class UserProgramSupervisor: Service, Sendable, UserProgramRunner {
    /// l3afd's `max-ebpf-restart-count` default.
    static let defaultRestarts = 3
    /// How long `cmd_status` or `cmd_update` may run before it is sent SIGTERM.
    static let commandTimeoutSeconds = 10.0
    /// How long a program gets to exit after its `cmd_stop` before it is sent SIGTERM.
    static let stopGraceSeconds = 5.0
    /// A user program's log is rotated past this size: `<package>.log` and `<package>.log.1`, 2 × 10 MiB at most.
    static let maximumLogBytes = 10 << 20

    private struct Child {
        var process: Process
        var starts: Int
        var program: UserProgram
        /// When its `cmd_status` was last asked.
        var checked = Date()
    }

    /// A program a chain change started (``start(_:)``), until the change settles.
    private struct Started {
        let process: Process
        let program: UserProgram
    }

    /// A restarted program that loads itself, until the program it puts into its inlet is joined.
    private struct Watch {
        let placed: PlacedProgram
        /// What the inlet held before the restart.
        let before: UInt32?
        let since = Date()
        var nextTry = Date()
    }

    /// How long a restarted program has to put its program into its inlet before it is reported.
    static let watchSeconds = 60.0
    /// How long a program stopped with SIGTERM gets before SIGKILL.
    static let killGraceSeconds = 2.0

    private let hostCell = Mutex<HostManager?>(nil)
    private var host: HostManager { hostCell.withLock { $0! } }
    private let logger: Logger
    /// l3af's state folder: logs go to `<state>/user-programs/`.
    private let state: String
    private let interval: Double
    private let maximumRestarts: Int
    private let statusInterval: Double
    private let children = Mutex<[String: Child]>([:])
    /// Started by the change in flight; and started by a settled change, for `reconcile` to take over. Locked after
    /// `children` when both are.
    private let started = Mutex<(inFlight: [String: Started], settled: [String: Started])>(([:], [:]))
    private let watches = Mutex<[String: Watch]>([:])
    /// Whether a join runs; by key, the program id a join refused (not tried again).
    private let joining = Mutex<(running: Bool, refused: [String: UInt32])>((false, [:]))
    /// One-shot programs already run, by key and revision.
    private let ranOnce = Mutex<Set<String>>([])
    /// The last revision `reconcile` saw: a program that left the configuration in a revision between two looks (disabled
    /// and enabled again quickly) is stopped and started anew, as if each revision had been seen.
    private let lastSeen = Mutex<Int?>(nil)

    init(state: String, logger: Logger, interval: Double = 0.5, maximumRestarts: Int = UserProgramSupervisor.defaultRestarts,
         statusInterval: Double = 30) {
        self.state = state
        self.logger = logger
        self.interval = interval
        self.maximumRestarts = maximumRestarts
        self.statusInterval = statusInterval
    }

    /// The host whose revisions say what runs; set once, before any change.
    func attach(_ host: HostManager) { hostCell.withLock { $0 = host } }

    // MARK: Programs a chain change starts

    struct StartFailed: Error, CustomStringConvertible {
        let description: String
    }

    func start(_ placed: PlacedProgram) throws -> @Sendable () -> Bool {
        guard let program = placed.userProgram else { throw StartFailed(description: "\(placed.spec) has no user program") }
        let key = Self.key(placed)
        if let earlier = started.withLock({ $0.inFlight.removeValue(forKey: key) }) { Self.terminate(earlier.process) }
        let process = try launch(placed, program)
        started.withLock { $0.inFlight[key] = Started(process: process, program: program) }
        return { process.isRunning }
    }

    func abandon(_ placed: PlacedProgram) {
        let key = Self.key(placed)
        guard let item = started.withLock({ $0.inFlight.removeValue(forKey: key) }) else { return }
        Self.terminate(item.process)
        logger.notice("stopped the user program of \(key): the change that started it failed")
    }

    func settle(committed: Bool) {
        let inFlight = started.withLock { Self.take(&$0.inFlight) }
        guard !inFlight.isEmpty else { return }
        let wanted = committed ? ((try? host.database.current())?.snapshot.programs ?? []) : []
        for (key, item) in inFlight {
            if wanted.contains(where: { $0.enabled && Self.key($0) == key && $0.userProgram == item.program }) {
                started.withLock { $0.settled[key] = item }
            } else {
                Self.terminate(item.process)
                logger.notice("stopped the user program of \(key): the change that started it \(committed ? "no longer wants it" : "failed")")
            }
        }
    }

    /// Empties `items`, returning what it held.
    private static func take(_ items: inout [String: Started]) -> [String: Started] {
        defer { items = [:] }
        return items
    }

    /// SIGTERM now, SIGKILL after ``killGraceSeconds`` if it still runs; doesn't wait.
    static func terminate(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + killGraceSeconds) { if process.isRunning { kill(pid, SIGKILL) } }
    }

    /// Watches a program that loads itself, started again, for the program it puts into its inlet.
    private func watch(_ placed: PlacedProgram, inletHad before: UInt32?) {
        watches.withLock { $0[Self.key(placed)] = Watch(placed: placed, before: before) }
    }

    /// Joins, one at a time, what watched programs put into their inlets; a host busy with a change is tried again.
    private func joinWatched() {
        let now = Date()
        for (key, item) in watches.withLock({ $0 }) {
            guard let id = inletProgram(item.placed), id != item.before else {
                if now.timeIntervalSince(item.since) > Self.watchSeconds {
                    watches.withLock { _ = $0.removeValue(forKey: key) }
                    logger.error("the restarted user program of \(key) put no program into its --map-name within \(Int(Self.watchSeconds)) s; the chain runs the one before")
                }
                continue
            }
            if joining.withLock({ $0.refused[key] == id }) {
                watches.withLock { _ = $0.removeValue(forKey: key) }
                continue
            }
            guard now >= item.nextTry else { continue }
            // One join at a time: this one starts unless another runs.
            let starts = joining.withLock { state in
                defer { state.running = true }
                return !state.running
            }
            guard starts else { continue }
            let host = host, logger = logger
            Task.detached {
                var retry = false
                do {
                    if try await host.adoptUserProgram(of: item.placed) {
                        logger.notice("joined the program the restarted user program of \(key) loaded (id \(id)) to its chain")
                    }
                } catch let error as HostError where error.kind == .locked {
                    retry = true
                } catch {
                    logger.error("the chain refused the program the restarted user program of \(key) loaded (id \(id)); it runs the one before: \(error)")
                    self.joining.withLock { $0.refused[key] = id }
                }
                self.watches.withLock { watches in
                    if retry { watches[key]?.nextTry = Date().addingTimeInterval(2) } else if watches[key]?.since == item.since { watches[key] = nil }
                }
                self.joining.withLock { $0.running = false }
            }
            return
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                // The database read and process starts block: off the cooperative pool.
                _ = try? await self.host.observe { _ in
                    self.reconcile()
                    self.joinWatched()
                }
                try? await Task.sleep(for: .milliseconds(Int(self.interval * 1000)))
            }
        }
        stopAll()
    }

    static func key(_ placed: PlacedProgram) -> String { "\(placed.interface)/\(placed.hook.rawValue)/\(placed.package)@\(placed.version)" }

    /// Starts what should run and isn't, restarts what died (within bounds), stops what is no longer wanted.
    func reconcile() {
        guard let current = try? host.database.current() else { return }
        let wanted = current.snapshot.programs.filter { $0.enabled && $0.userProgram != nil }
        let wantedKeys = Set(wanted.map(Self.key))
        // Keys some revision since the last look left out: their programs start anew.
        var leftBetween = Set<String>()
        if let seen = lastSeen.withLock({ $0 }), seen < current.number - 1 {
            for revision in (try? host.database.revisions(after: seen)) ?? [] where revision.number < current.number {
                let present = Set(revision.snapshot.programs.filter { $0.enabled && $0.userProgram != nil }.map(Self.key))
                leftBetween.formUnion(wantedKeys.subtracting(present))
            }
        }
        lastSeen.withLock { $0 = current.number }
        children.withLock { children in
            // Programs a settled change started take over from the instance they replace (SIGTERM only: its cmd_stop
            // could stop the new instance too).
            let settled = started.withLock { Self.take(&$0.settled) }
            for (key, item) in settled {
                if let old = children[key], old.process !== item.process { Self.terminate(old.process) }
                children[key] = Child(process: item.process, starts: 1, program: item.program)
            }
            for (key, var child) in children {
                let now = wanted.first(where: { Self.key($0) == key })?.userProgram
                if let now, !leftBetween.contains(key), now != child.program, child.program.updated(now.update) == now {
                    // Only the update args changed: `cmd_update` tells the running program, as l3afd does.
                    child.program = now
                    children[key] = child
                    if let update = now.update { run(update, for: key, what: "cmd_update") }
                    continue
                }
                guard now == nil || leftBetween.contains(key) || now != child.program else { continue }
                stop(child, key)
                children[key] = nil
                logger.notice("stopped the user program of \(key)")
            }
            for placed in wanted {
                let key = Self.key(placed), program = placed.userProgram!
                // A change in flight is starting it.
                if started.withLock({ $0.inFlight[key] != nil }) { continue }
                if !program.daemon {
                    let once = "\(key)#\(current.number)"
                    if children[key] == nil, !ranOnce.withLock({ $0.contains(once) }) {
                        let inletHad = inletProgram(placed)
                        if let process = start(placed, program) {
                            children[key] = Child(process: process, starts: 1, program: program)
                            if program.loadsItself { watch(placed, inletHad: inletHad) }
                        }
                        ranOnce.withLock { _ = $0.insert(once) }
                    }
                    continue
                }
                if var child = children[key], child.process.isRunning, let status = program.status, Date().timeIntervalSince(child.checked) >= statusInterval {
                    // Asked every status interval; one that doesn't answer RUNNING is stopped, and restarted below.
                    child.checked = Date()
                    children[key] = child
                    let answer = run(status, for: key, what: "cmd_status")
                    if answer.trimmingCharacters(in: .whitespacesAndNewlines).uppercased() != "RUNNING" {
                        logger.warning("the user program of \(key) is not healthy: cmd_status answered '\(answer.prefix(200))'; stopping it")
                        child.process.terminate()
                        child.process.waitUntilExit()
                    }
                }
                if var child = children[key] {
                    // `starts` counts every start; a program given up on is marked past the limit.
                    guard !child.process.isRunning, child.starts <= maximumRestarts + 1 else { continue }
                    if child.starts == maximumRestarts + 1 {
                        child.starts += 1
                        children[key] = child
                        logger.error("the user program of \(key) exited again after \(maximumRestarts) restarts; not restarting it")
                        continue
                    }
                    logger.warning("the user program of \(key) exited (status \(child.process.terminationStatus)); restart \(child.starts) of \(maximumRestarts)")
                    let inletHad = inletProgram(placed)
                    if let process = start(placed, program) {
                        child.process = process
                        if program.loadsItself { watch(placed, inletHad: inletHad) }
                    }
                    child.starts += 1
                    children[key] = child
                } else if case let inletHad = inletProgram(placed), let process = start(placed, program) {
                    children[key] = Child(process: process, starts: 1, program: program)
                    // One that loads itself, started again (l3afd restarted): the program it loads joins the chain.
                    if program.loadsItself { watch(placed, inletHad: inletHad) }
                    // As l3afd: update args, when the payload has them, are given once the program runs.
                    if let update = program.update, placed.payload?.updateArgs.isEmpty == false {
                        run(update, for: key, what: "cmd_update")
                    }
                }
            }
        }
    }

    /// Stops a user program as l3afd does: its `cmd_stop` when it has one (then SIGTERM if it is still running after
    /// ``stopGraceSeconds``), else SIGTERM.
    private func stop(_ child: Child, _ key: String) {
        guard child.process.isRunning else { return }
        if let stop = child.program.stop {
            let command = Self.process(stop.path, stop.arguments)
            do {
                try Self.spawn(command)
                command.waitUntilExit()
            } catch {
                logger.error("can't run the cmd_stop of \(key): \(error)")
            }
            let deadline = Date().addingTimeInterval(Self.stopGraceSeconds)
            while child.process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        }
        if child.process.isRunning { child.process.terminate() }
    }

    /// The program in the inlet of `placed` when it loads itself.
    private func inletProgram(_ placed: PlacedProgram) -> UInt32? {
        guard placed.userProgram?.loadsItself == true else { return nil }
        return ChainEngine.inletProgramID(ChainEngine.inletPath(pinRoot: host.options.pinRoot, interface: placed.interface, hook: placed.hook,
                                                                package: placed.package.rawValue, version: placed.version.rawValue))
    }

    private func start(_ placed: PlacedProgram, _ program: UserProgram) -> Process? {
        do { return try launch(placed, program) } catch {
            logger.error("\(error)")
            return nil
        }
    }

    /// Starts the user program of `placed`: its rules file written, its output to its rotated log, its limits set.
    private func launch(_ placed: PlacedProgram, _ program: UserProgram) throws -> Process {
        let folder = "\(state)/user-programs"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if let rules = program.rules {
            do {
                try FileManager.default.createDirectory(atPath: (rules.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try AtomicFile.write(Array(rules.content.utf8), to: rules.path, mode: 0o644)
            } catch {
                throw StartFailed(description: "can't write the rules file \(rules.path) of \(Self.key(placed)): \(error)")
            }
        }
        let logPath = "\(folder)/\(placed.package).log"
        let process = Self.process(program.path, program.arguments)
        // Output goes through a pipe to a log that rotates at `maximumLogBytes` (one older file kept), so a chatty or
        // hostile user program can't fill the disk.
        let pipe = Pipe()
        let log = RotatingLog(path: logPath, limit: Self.maximumLogBytes)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { log.write(data) }
        }
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try Self.spawn(process)
            // As l3afd: the limits are set on the running process (prlimit), `cpu` in seconds and `memory` in bytes.
            for (limit, isCPU) in [(program.cpuSeconds, true), (program.memoryBytes, false)] {
                guard let limit else { continue }
                if l3af_set_limit(process.processIdentifier, isCPU ? 1 : 0, UInt64(limit)) != 0 {
                    logger.error("can't limit the \(isCPU ? "cpu" : "memory") of \(Self.key(placed)) to \(limit): \(String(cString: strerror(errno)))")
                }
            }
            logger.notice("started the user program of \(Self.key(placed)): \(program.path) \(program.arguments.joined(separator: " "))")
            return process
        } catch {
            throw StartFailed(description: "can't start the user program of \(Self.key(placed)): \(error)")
        }
    }

    /// Runs `command` (`cmd_status`, `cmd_update`) from its folder, waits for it, and returns what it printed (at most
    /// 64 KiB).
    @discardableResult
    private func run(_ command: UserProgram.Command, for key: String, what: String) -> String {
        let process = Self.process(command.path, command.arguments)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try Self.spawn(process) } catch {
            logger.error("can't run the \(what) of \(key): \(error)")
            return ""
        }
        // One that hangs is stopped: the supervisor waits for it.
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.commandTimeoutSeconds) { if process.isRunning { process.terminate() } }
        let output = (try? pipe.fileHandleForReading.read(upToCount: 64 << 10)) ?? Data()
        process.waitUntilExit()
        if process.terminationStatus != 0 { logger.warning("the \(what) of \(key) exited with status \(process.terminationStatus)") }
        return String(decoding: output ?? Data(), as: UTF8.self)
    }

    /// A program of an artifact with its argv (no shell), run from the artifact's folder, reading nothing.
    static func process(_ path: String, _ arguments: [String]) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: (path as NSString).deletingLastPathComponent)
        process.standardInput = FileHandle.nullDevice
        return process
    }

    /// Starts `process` with no signal blocked: a child inherits the spawning thread's mask across exec, and l3afd's
    /// threads block SIGTERM and friends for its own handling, so without this `cmd_stop` and SIGTERM couldn't stop it.
    static func spawn(_ process: Process) throws {
        let saved = l3af_unblock_signals()
        defer { l3af_restore_signals(saved) }
        try process.run()
    }

    /// When l3afd stops: every child gets SIGTERM, not its `cmd_stop`, which could undo what it set up for the eBPF
    /// programs that stay attached.
    func stopAll() {
        children.withLock { children in
            for (_, child) in children where child.process.isRunning { child.process.terminate() }
            children.removeAll()
        }
    }
}

/// An append-only log file that, past `limit` bytes, is renamed to `<path>.1` (replacing the older one) and started
/// anew. Written from one pipe reader at a time.
final class RotatingLog: @unchecked Sendable {  // state touched only under `lock`
    let path: String
    let limit: Int
    private let lock = NSLock()
    private var handle: FileHandle?
    private var size = 0

    init(path: String, limit: Int) {
        self.path = path
        self.limit = limit
    }

    func write(_ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        if handle == nil { open() }
        if size + data.count > limit {
            try? handle?.close()
            _ = rename(path, path + ".1")
            open()
        }
        handle?.write(data)
        size += data.count
    }

    private func open() {
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o640]) }
        handle = FileHandle(forWritingAtPath: path)
        size = Int(handle?.seekToEndOfFile() ?? 0)
    }
}
