import Foundation
import Hummingbird
import L3AFFleet
import L3AFHost
import L3AFModel
import L3AFRuntime
import L3AFSystem
import NIOCore

/// Every route the daemon serves, for the OpenAPI check and the docs: (method, path with `{parameters}`).
public let daemonRoutes: [(method: String, path: String)] = [
    ("GET", "/l3af/configs/v1"), ("GET", "/l3af/configs/v1/{iface}"), ("POST", "/l3af/configs/v1/add"),
    ("POST", "/l3af/configs/v1/update"), ("POST", "/l3af/configs/v1/delete"), ("PUT", "/l3af/configs/v1/restart"),
    ("GET", "/metrics"), ("GET", "/healthz"), ("GET", "/l3af/v1/fleet"),
] + HostRequest.all.map { ($0.method, $0.path) }

/// l3afd's REST API (wire-compatible) and this project's own routes, over one `HostManager`.
struct DaemonRoutes: Sendable {
    let host: HostManager
    let metrics: DaemonMetrics
    let hostName: String
    /// l3afd's config store, rewritten after each change as l3afd does, so tools that read it (and l3afd, if the host
    /// goes back to it) find the configuration.
    var configStore: String?
    /// Writes of the config store, one at a time, each of the configuration as it is then.
    let storeWrites = StoreWrites()
    /// l3afd's graceful restart.
    let upgrade: SelfUpgrade
    /// The fleet member, when this host joined a fleet.
    var fleet: FleetAgent?

    func register(on router: Router<DaemonContext>, metricsHere: Bool) {
        // l3afd's routes.
        router.get("/l3af/configs/v1") { _, _ in try json(await configs(interface: nil)) }
        // As l3afd: one object; an interface with nothing on it is 200 with its four hook lists null.
        router.get("/l3af/configs/v1/{iface}") { _, context in
            let iface = try context.parameters.require("iface")
            return try json(try await configs(interface: iface).first ?? L3afBPFPrograms(hostName: hostName, iface: iface))
        }
        // l3afd's changes are our apply operation, checked against this daemon's host name.
        // `?dry_run=true` on any write: the plan of the change, nothing changed.
        router.post("/l3af/configs/v1/add") { request, _ in
            try await perform(HostRequest.Apply(mode: "add", payloads: try await body([L3afBPFPrograms].self, request), hostName: hostName), dryRun: try dryRun(request))
        }
        router.post("/l3af/configs/v1/update") { request, _ in
            try await perform(HostRequest.Apply(mode: "host", payloads: try await body([L3afBPFPrograms].self, request), hostName: hostName), dryRun: try dryRun(request))
        }
        router.post("/l3af/configs/v1/delete") { request, _ in
            try await perform(HostRequest.Apply(mode: "delete", names: try await body([L3afBPFProgramNames].self, request), hostName: hostName), dryRun: try dryRun(request))
        }
        // l3afd's graceful restart: answered once the new build is fetched, verified and runs; the handover follows.
        router.put("/l3af/configs/v1/restart") { request, _ in
            let prepared = try await upgrade.request(try await body(RestartRequest.self, request))
            return try json(["status": "handing over", "version": prepared.version, "executable": prepared.executable])
        }

        // Ours: the CLI's operations, each one type decoded here and sent by `l3af --host`.
        for operation in HostRequest.all { register(operation, on: router) }
        router.get("/healthz") { _, _ in try json(HealthReply(status: "ok", pid: getpid())) }
        router.get("/l3af/v1/fleet") { _, _ in
            guard let fleet else { return try json(["joined": false]) }
            return try json(await fleet.report())
        }
        if metricsHere { Self.registerMetrics(on: router, metrics) }
    }

    /// `operation` performed on the host, its reply as JSON; a change is sampled at once, and a failed one counts
    /// against its programs in l3afd's failure counters.
    func perform<Operation: HostOperation>(_ operation: Operation, dryRun: Bool = false) async throws -> Response {
        if dryRun { return try json(try await LocalHost(host: host).plan(operation)) }
        do {
            let reply = try await operation.perform(on: host)
            if Operation.method == "POST" {
                await metrics.sample(host)
                await writeConfigStore()
            }
            return try json(reply)
        } catch {
            await failed(operation.programs)
            throw error
        }
    }

    /// Whether the request asks for a plan only (`?dry_run=true`).
    func dryRun(_ request: Request) throws(HostError) -> Bool {
        guard let value = request.uri.queryParameters["dry_run"].map(String.init) else { return false }
        switch value.lowercased() {
        case "true", "1", "": return true
        case "false", "0": return false
        default: throw HostError(.badInput, "dry_run: '\(value.prefix(40))' is not true or false", hint: "write ?dry_run=true")
        }
    }

    /// `operation`'s route: its JSON body (or, for a `GET`, its query) decoded as the operation and performed.
    func register<Operation: HostOperation>(_ operation: Operation.Type, on router: Router<DaemonContext>) {
        if Operation.method == "GET" {
            router.get(RouterPath(Operation.path)) { request, _ in
                var query: [String: String] = [:]
                for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
                return try await perform(try Operation(query: query))
            }
        } else {
            router.post(RouterPath(Operation.path)) { request, _ in try await perform(try await body(Operation.self, request), dryRun: try dryRun(request)) }
        }
    }

    /// l3afd's chain debug view, `GET /bpfs/{iface}`: every program running on the interface, each hook's root first,
    /// in chain order, with l3afd's field names (`Program`, `FilePath`, `MapNamePath`, `PrevMapNamePath`, `ProgID`).
    func registerChainDebug<Context: RequestContext>(on router: Router<Context>, pinRoot: String) {
        let engine = ChainEngine(pinRoot: pinRoot, roots: [:])
        router.get("/bpfs/{iface}") { _, context in
            let iface = try context.parameters.require("iface")
            let snapshot = try await host.observe { try $0.snapshot() }
            let kernel = try await host.observe { try $0.kernelChains(snapshot) }
            var details: [ChainDebugEntry] = []
            for hook in Hook.allCases {
                let key = ChainKey(interface: iface, hook: hook)
                guard let running = kernel[key], !running.isEmpty else { continue }
                var previous = ""
                if let root = snapshot.roots[hook.rawValue] {
                    var program = BPFProgram(name: root.package.rawValue, seqID: 0)
                    program.version = root.version.rawValue
                    program.mapName = root.program.nextMap
                    program.objectFile = root.program.objectFile
                    program.entryFunctionName = root.program.entryFunction
                    program.progType = hook.programType
                    program.adminStatus = "enabled"
                    previous = (try? engine.mapFolder(iface, hook, root.package.rawValue, root.version.rawValue)).map { "\($0)/\(root.program.nextMap)" } ?? ""
                    details.append(ChainDebugEntry(program: program, filePath: (root.objectPath as NSString).deletingLastPathComponent, mapNamePath: previous,
                                                   prevMapNamePath: "", progID: host.chains.rootProgramID(on: key) ?? 0))
                }
                for entry in running {
                    guard let placed = snapshot.program(named: entry.package, on: key) else { continue }
                    let path = (try? engine.mapFolder(iface, hook, entry.package, entry.version)).map { "\($0)/\(placed.program.nextMap)" } ?? ""
                    details.append(ChainDebugEntry(program: Self.program(placed), filePath: (placed.objectPath as NSString).deletingLastPathComponent,
                                                   mapNamePath: path, prevMapNamePath: previous, progID: entry.programID))
                    previous = path
                }
            }
            return try json(details)
        }
    }

    static func registerMetrics<Context: RequestContext>(on router: Router<Context>, _ metrics: DaemonMetrics) {
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metrics.text())))
        }
    }

    /// Writes the configuration to l3afd's config store, when one is configured. The change is made and recorded
    /// already, so a store that can't be written is reported on stderr, not as the change's failure.
    func writeConfigStore() async {
        guard let configStore else { return }
        do {
            try await storeWrites.run {
                let bytes = try DocumentDecoder.encode(try await configs(interface: nil))
                try await OffPool.run { try AtomicFile.write(Array(bytes), to: configStore, mode: 0o644) }
            }
        } catch {
            FileHandle.standardError.write(Data("l3afd: could not write l3afd's config store \(configStore): \(error)\n".utf8))
        }
    }

    /// Counts a failed change of `programs`: an update failure for one that was configured, a deploy failure otherwise.
    func failed(_ programs: [(package: String, interface: String, hook: Hook)]) async {
        guard !programs.isEmpty else { return }
        let snapshot = (try? await host.observe { try $0.snapshot() }) ?? HostSnapshot()
        metrics.failed(programs, configured: { package, interface, hook in
            snapshot.program(named: package, on: ChainKey(interface: interface, hook: hook)) != nil
        }, ipv4: { snapshot.ipv4Addresses?[$0] ?? "" })
    }

    /// The host's configuration as l3afd answers `GET /l3af/configs/v1`: one `L3afBPFPrograms` per interface, from the
    /// last revision (read off the pool; never waits for a writer).
    func configs(interface: String?) async throws -> [L3afBPFPrograms] {
        let snapshot = try await host.observe { try $0.snapshot() }
        var byInterface: [String: L3afBPFPrograms] = [:]
        for placed in snapshot.sorted where interface == nil || placed.interface == interface {
            var payload = byInterface[placed.interface]
                ?? L3afBPFPrograms(hostName: hostName, iface: placed.interface, ipv4Address: snapshot.ipv4Addresses?[placed.interface] ?? "")
            payload.bpfPrograms[placed.hook].append(Self.program(placed))
            byInterface[placed.interface] = payload
        }
        // Host-wide probes (from `l3af install`) belong to no interface's payload.
        for probe in snapshot.probes ?? [] where !probe.hostWide && (interface == nil || probe.interface == interface) {
            var payload = byInterface[probe.interface]
                ?? L3afBPFPrograms(hostName: hostName, iface: probe.interface, ipv4Address: snapshot.ipv4Addresses?[probe.interface] ?? "")
            payload.bpfPrograms.probes.append(probe.payload)
            byInterface[probe.interface] = payload
        }
        return byInterface.keys.sorted().map { byInterface[$0]! }
    }

    /// A placed program as an l3afd `BPFProgram`: the entry it came from when it came from a payload, else one made
    /// from what was installed.
    static func program(_ placed: PlacedProgram) -> BPFProgram {
        if var entry = placed.payload {
            entry.seqID = placed.seqID
            return entry
        }
        var entry = BPFProgram(name: placed.package.rawValue, seqID: placed.seqID)
        entry.version = placed.version.rawValue
        entry.artifact = "l3af_\(placed.package).tar.gz"
        entry.mapName = placed.program.nextMap
        entry.adminStatus = placed.enabled ? "enabled" : "disabled"
        entry.progType = placed.hook.programType
        entry.startArgs = placed.parameters.mapValues { .string($0) }
        entry.mapArgs = placed.mapArguments
        entry.monitorMaps = placed.program.monitorMaps
        entry.objectFile = placed.program.objectFile
        entry.entryFunctionName = placed.program.entryFunction
        entry.ebpfPackageRepoURL = placed.source ?? ""
        return entry
    }
}

/// Runs its bodies one at a time, in the order they arrive: two changes finishing together can't write the config
/// store in the wrong order, since each reads the configuration inside its turn.
actor StoreWrites {
    private var last: Task<Void, Never>?

    func run(_ body: @escaping @Sendable () async throws -> Void) async throws {
        let previous = last
        let task = Task<Void, any Error> {
            await previous?.value
            try await body()
        }
        last = Task { _ = try? await task.value }
        try await task.value
    }
}

/// One program of l3afd's chain debug view, with l3afd's field names.
struct ChainDebugEntry: Encodable {
    let program: BPFProgram
    let filePath: String
    let mapNamePath: String
    let prevMapNamePath: String
    let progID: UInt32
    let restartCount = 0

    enum CodingKeys: String, CodingKey {
        case program = "Program", filePath = "FilePath", mapNamePath = "MapNamePath", prevMapNamePath = "PrevMapNamePath", progID = "ProgID",
             restartCount = "RestartCount"
    }
}

/// The request's JSON body decoded strictly, with the field's path in the error.
/// `GET /healthz`: serving, and which process serves (a graceful restart changes it).
struct HealthReply: Encodable {
    var status: String
    var pid: Int32
}

func body<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
    var request = request
    let buffer = try await request.collectBody(upTo: 4 << 20)
    return try DocumentDecoder.decode(T.self, from: Array(buffer: buffer), document: "request body")
}

func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try DocumentDecoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
