import Foundation
import Hummingbird
import L3AFHost
import L3AFModel
import NIOCore

/// Every route the daemon serves, for the OpenAPI check and the docs: (method, path with `{parameters}`).
public let daemonRoutes: [(method: String, path: String)] = [
    ("GET", "/l3af/configs/v1"), ("GET", "/l3af/configs/v1/{iface}"), ("POST", "/l3af/configs/v1/add"),
    ("POST", "/l3af/configs/v1/update"), ("POST", "/l3af/configs/v1/delete"),
    ("GET", "/l3af/v1/status"), ("GET", "/l3af/v1/history"), ("POST", "/l3af/v1/install"), ("POST", "/l3af/v1/upgrade"),
    ("POST", "/l3af/v1/remove"), ("POST", "/l3af/v1/rollback"), ("POST", "/l3af/v1/pin"), ("POST", "/l3af/v1/unpin"),
    ("GET", "/metrics"), ("GET", "/healthz"),
]

/// l3afd's REST API (wire-compatible) and this project's own routes, over one `HostManager`.
struct DaemonRoutes: Sendable {
    let host: HostManager
    let metrics: DaemonMetrics
    let hostName: String

    func register(on router: Router<DaemonContext>, metricsHere: Bool) {
        // l3afd's routes.
        router.get("/l3af/configs/v1") { _, _ in try json(configs(interface: nil)) }
        router.get("/l3af/configs/v1/{iface}") { _, context in
            let iface = try context.parameters.require("iface")
            let found = try configs(interface: iface)
            guard !found.isEmpty else {
                throw HostError(.badInput, "no programs are configured on '\(iface)'", hint: "GET /l3af/configs/v1 lists every interface")
            }
            return try json(found)
        }
        router.post("/l3af/configs/v1/add") { request, _ in
            let payloads = try await body([L3afBPFPrograms].self, request)
            return try await change(programs(payloads)) { try await host.apply(payloads, mode: .add, hostName: hostName) }
        }
        router.post("/l3af/configs/v1/update") { request, _ in
            let payloads = try await body([L3afBPFPrograms].self, request)
            return try await change(programs(payloads)) { try await host.apply(payloads, mode: .host, hostName: hostName) }
        }
        router.post("/l3af/configs/v1/delete") { request, _ in
            let payloads = try await body([L3afBPFProgramNames].self, request)
            let names = payloads.flatMap { payload in Hook.allCases.flatMap { hook in payload.bpfPrograms[hook].map { ($0, payload.iface, hook) } } }
            return try await change(names) { try await host.delete(payloads, hostName: hostName) }
        }

        // Ours: the CLI's operations.
        router.get("/l3af/v1/status") { request, _ in
            try await host.withLock {}
            return try json(host.status(interface: request.uri.queryParameters.get("iface")))
        }
        router.get("/l3af/v1/history") { _, _ in try json(host.database.history()) }
        router.post("/l3af/v1/install") { request, _ in
            let ask = try await body(HostRequest.Install.self, request)
            let spec = try HostManager.spec(ask.spec)
            let hook = try ask.hook.map { text throws(HostError) -> Hook in
                guard let hook = Hook(rawValue: text) else { throw HostError(.badInput, "hook: '\(text)' is not xdp_ingress, tc_ingress or tc_egress") }
                return hook
            }
            return try await change([(spec.name.rawValue, ask.iface, hook ?? .xdpIngress)]) {
                try await host.install(InstallRequest(spec: spec, interface: ask.iface, hook: hook, seqID: ask.seqID, parameters: ask.parameters ?? [:]))
            }
        }
        router.post("/l3af/v1/upgrade") { request, _ in
            let ask = try await body(HostRequest.Upgrade.self, request)
            let outcome = try await host.upgrade(package: ask.package, interface: ask.iface, watch: ask.watchSeconds, interval: ask.intervalSeconds ?? 1)
            return try json(outcome)
        }
        router.post("/l3af/v1/remove") { request, _ in
            let ask = try await body(HostRequest.Remove.self, request)
            return try json(try await host.remove(package: ask.package, interface: ask.iface))
        }
        router.post("/l3af/v1/rollback") { request, _ in
            let ask = try await body(HostRequest.Rollback.self, request)
            let target: HostManager.RollbackTarget = if let revision = ask.revision { .revision(revision) } else if let package = ask.package { .package(package) } else { .previous }
            return try json(try await host.rollback(target))
        }
        router.post("/l3af/v1/pin") { request, _ in
            let ask = try await body(HostRequest.Pin.self, request)
            return try json(HostRequest.Changed(revision: try await host.pin(package: ask.package, version: ask.version, interface: ask.iface)))
        }
        router.post("/l3af/v1/unpin") { request, _ in
            let ask = try await body(HostRequest.Unpin.self, request)
            return try json(HostRequest.Unpinned(removed: try await host.unpin(package: ask.package, interface: ask.iface)))
        }
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        if metricsHere { Self.registerMetrics(on: router, metrics) }
    }

    static func registerMetrics<Context: RequestContext>(on router: Router<Context>, _ metrics: DaemonMetrics) {
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metrics.text())))
        }
    }

    /// Runs a change; counts it as failed for `programs` when it throws.
    func change(_ programs: [(String, String, Hook)], _ body: () async throws -> Revision?) async throws -> Response {
        do {
            let revision = try await body()
            metrics.sample(host)
            return try json(HostRequest.Changed(revision: revision))
        } catch {
            metrics.failed(programs.map { (package: $0.0, interface: $0.1, hook: $0.2) })
            throw error
        }
    }

    func programs(_ payloads: [L3afBPFPrograms]) -> [(String, String, Hook)] {
        payloads.flatMap { payload in Hook.allCases.flatMap { hook in payload.bpfPrograms[hook].map { ($0.name, payload.iface, hook) } } }
    }

    /// The host's configuration as l3afd answers `GET /l3af/configs/v1`: one `L3afBPFPrograms` per interface.
    func configs(interface: String?) throws -> [L3afBPFPrograms] {
        let snapshot = try host.snapshot()
        var byInterface: [String: L3afBPFPrograms] = [:]
        for placed in snapshot.sorted where interface == nil || placed.interface == interface {
            var payload = byInterface[placed.interface] ?? L3afBPFPrograms(hostName: hostName, iface: placed.interface)
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
        var entry = BPFProgram(name: placed.package, seqID: placed.seqID)
        entry.version = placed.version
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

/// Every failure as JSON: a request's fault is a 4xx naming the field or the problem, never a 500.
struct DaemonErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as AccessError {
            return respond(error.status, error.code, error.description, error.hint)
        } catch let error as HostError {
            let status: HTTPResponse.Status = switch error.kind {
            case .badInput: .badRequest
            case .locked: .conflict
            case .unhealthy: .conflict
            case .chain: .unprocessableContent
            case .fetch: .badGateway
            case .storage: .internalServerError
            }
            if status == .internalServerError { context.logger.error("request failed", metadata: ["error": "\(error)"]) }
            return respond(status, error.code, error.description, error.hint)
        } catch let error as any L3AFError {
            // Payload decoding, specs, fetch and chain errors: the request asked for something that can't be.
            return respond(.badRequest, error.code, error.description, error.hint)
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound ? "no such route: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return respond(error.status, "http-\(error.status.code)", message, nil)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return respond(.internalServerError, "internal", "l3afd failed: \(error)", nil)
        }
    }

    func respond(_ status: HTTPResponse.Status, _ code: String, _ message: String, _ hint: String?) -> Response {
        let data = (try? DocumentDecoder.encode(APIErrorBody(code: code, message: message, hint: hint))) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
