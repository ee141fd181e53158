import Foundation
import Hummingbird
import L3AFHost
import L3AFModel
import NIOCore

/// Every route the daemon serves, for the OpenAPI check and the docs: (method, path with `{parameters}`).
public let daemonRoutes: [(method: String, path: String)] = [
    ("GET", "/l3af/configs/v1"), ("GET", "/l3af/configs/v1/{iface}"), ("POST", "/l3af/configs/v1/add"),
    ("POST", "/l3af/configs/v1/update"), ("POST", "/l3af/configs/v1/delete"),
    ("GET", "/metrics"), ("GET", "/healthz"),
] + HostRequest.all.map { ($0.method, $0.path) }

/// l3afd's REST API (wire-compatible) and this project's own routes, over one `HostManager`.
struct DaemonRoutes: Sendable {
    let host: HostManager
    let metrics: DaemonMetrics
    let hostName: String

    func register(on router: Router<DaemonContext>, metricsHere: Bool) {
        // l3afd's routes.
        router.get("/l3af/configs/v1") { _, _ in try json(await configs(interface: nil)) }
        // As l3afd: one object; an interface with nothing on it is 200 with its four hook lists null.
        router.get("/l3af/configs/v1/{iface}") { _, context in
            let iface = try context.parameters.require("iface")
            return try json(try await configs(interface: iface).first ?? L3afBPFPrograms(hostName: hostName, iface: iface))
        }
        // l3afd's changes are our apply operation, checked against this daemon's host name.
        router.post("/l3af/configs/v1/add") { request, _ in
            try await perform(HostRequest.Apply(mode: "add", payloads: try await body([L3afBPFPrograms].self, request), hostName: hostName))
        }
        router.post("/l3af/configs/v1/update") { request, _ in
            try await perform(HostRequest.Apply(mode: "host", payloads: try await body([L3afBPFPrograms].self, request), hostName: hostName))
        }
        router.post("/l3af/configs/v1/delete") { request, _ in
            try await perform(HostRequest.Apply(mode: "delete", names: try await body([L3afBPFProgramNames].self, request), hostName: hostName))
        }

        // Ours: the CLI's operations, each one type decoded here and sent by `l3af --host`.
        for operation in HostRequest.all { register(operation, on: router) }
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        if metricsHere { Self.registerMetrics(on: router, metrics) }
    }

    /// `operation` performed on the host, its reply as JSON; a change is sampled at once, and a failed one counts
    /// against its programs in l3afd's failure counters.
    func perform<Operation: HostOperation>(_ operation: Operation) async throws -> Response {
        do {
            let reply = try await operation.perform(on: host)
            if Operation.method == "POST" { await metrics.sample(host) }
            return try json(reply)
        } catch {
            await failed(operation.programs)
            throw error
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
            router.post(RouterPath(Operation.path)) { request, _ in try await perform(try await body(Operation.self, request)) }
        }
    }

    static func registerMetrics<Context: RequestContext>(on router: Router<Context>, _ metrics: DaemonMetrics) {
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metrics.text())))
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

/// The request's JSON body decoded strictly, with the field's path in the error.
func body<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
    var request = request
    let buffer = try await request.collectBody(upTo: 4 << 20)
    return try DocumentDecoder.decode(T.self, from: Array(buffer: buffer), document: "request body")
}

func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try DocumentDecoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
