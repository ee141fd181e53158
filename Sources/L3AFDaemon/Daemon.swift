import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import L3AFFleet
import L3AFHTTPServer
import L3AFHost
import L3AFModel
import L3AFSystem
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The node daemon: l3afd's REST API and ours over the same host state, lock and atomic flips as the CLI, plus
/// `/metrics`. On start it takes the daemon's pid lock (one daemon per state folder), finishes what an interrupted
/// change left, and makes the kernel run the last revision. On SIGTERM or SIGINT it stops serving and exits,
/// leaving every program attached: traffic keeps flowing while it is down.
public enum Daemon {
    /// l3afd's config store (`[l3af-config-store] filename`, the `[]L3afBPFPrograms` l3afd applied last), applied as
    /// the first revision when this host has none yet, so a host moving from l3afd comes up running what it ran. A
    /// store that can't be read or applied stops the start: serving an empty host in its place would drop its programs.
    static func importConfigStore(_ store: String, into host: HostManager, hostName: String, logger: Logger) async throws {
        guard try await host.observe({ try $0.database.current() }) == nil, let bytes = AtomicFile.read(store) else { return }
        // Empty, or `null`: l3afd writes a host with nothing configured as Go's nil slice.
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text != "null" else { return }
        let payloads: [L3afBPFPrograms]
        do { payloads = try DocumentDecoder.decode([L3afBPFPrograms].self, from: bytes, document: store) } catch {
            throw DaemonError(.badConfiguration, "l3afd's config store \(store) can't be imported: \(error.description)",
                              hint: "fix or move the file away (l3afd writes it as a JSON list of L3afBPFPrograms)")
        }
        do {
            let revision = try await host.apply(payloads, mode: .host, hostName: hostName, cause: "import l3afd's config store \(store)")
            logger.notice("imported l3afd's config store \(store) as revision \(revision?.number ?? 0)")
        } catch {
            throw DaemonError(.badConfiguration, "l3afd's config store \(store) can't be applied: \(error)", hint: "fix or move the file away, then start again")
        }
    }

    public static func run(_ configuration: DaemonConfiguration, logger: Logger, onListening: @escaping @Sendable (Int, Int?) -> Void) async throws {
        try configuration.validate()
        for notice in configuration.notices { logger.notice("\(notice)") }
        let token = try configuration.token()
        var pidLock: FileLock? = try PIDLock.take("\(configuration.client.state)/l3afd.pid")
        defer { withExtendedLifetime(pidLock) {} }
        var options = HostOptions(client: configuration.client, pinRoot: configuration.pinRoot, lockTimeout: configuration.lockTimeoutSeconds,
                                  actor: "l3afd", notify: { message in logger.notice("\(message)") })
        options.historyLimit = configuration.historyLimit
        options.hostName = configuration.hostName
        options.plainRepository = configuration.plainRepository
        options.plainRoots = configuration.plainRoots
        options.chaining = configuration.chaining
        options.l3afdMapPins = configuration.l3afdMapPins
        options.userProgramLogDir = configuration.userProgramLogDir
        // The CLI on this state follows the same rules (chaining, roots).
        try HostSettings(options).write(state: options.client.state)
        // Before the host: a restore may start user programs that load their own eBPF program.
        let supervisor = UserProgramSupervisor(state: options.client.state, logger: logger, maximumRestarts: configuration.maximumRestarts,
                                               statusInterval: configuration.statusIntervalSeconds)
        options.userPrograms = supervisor
        let host = try HostManager(options: options)
        supervisor.attach(host)
        // A revision that can't be restored (an interface that is gone) is reported, and the daemon serves anyway, so
        // it can be told what to run instead.
        do {
            if try await host.restore() { logger.notice("the kernel did not run the last revision; restored it") }
        } catch {
            logger.error("could not restore the last revision: \(error)")
        }
        let hostName = configuration.hostName ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        if let store = configuration.configStore { try await importConfigStore(store, into: host, hostName: hostName, logger: logger) }
        let metrics = DaemonMetrics(samples: configuration.samples, hostName: hostName)
        await metrics.sample(host)

        let api = try DaemonConfiguration.address(configuration.listen, option: "listen")
        let policy = AccessPolicy(
            hostNames: Set(([hostName, ProcessInfo.processInfo.hostName] + configuration.allowedHosts).map { $0.lowercased() }.filter { !$0.isEmpty }),
            token: token, sanRules: configuration.tls?.sanMatchRules ?? [])
        let upgrade = SelfUpgrade(settings: configuration.gracefulRestart, client: configuration.client, hostName: hostName, logger: logger)
        var fleet: FleetAgent?
        if let joined = configuration.fleet {
            do {
                fleet = try FleetAgent(configuration: joined, hostName: hostName,
                                       host: HostFleetBackend(host: host, hostName: hostName, interfaces: joined.interfaces), logger: logger)
            } catch {
                throw DaemonError(.badConfiguration, error.description, hint: error.hint ?? "the fleet needs a host name etcd keys can carry: set host_name")
            }
        }
        let routes = DaemonRoutes(host: host, metrics: metrics, hostName: hostName, configStore: configuration.configStore, upgrade: upgrade, fleet: fleet)
        @Sendable func apiRouter() -> Router<DaemonContext> {
            let router = Router(context: DaemonContext.self)
            router.add(middleware: RequestLogMiddleware(logger: logger))
            router.add(middleware: JSONErrorMiddleware(server: "l3afd"))
            router.add(middleware: DaemonGuard(policy: policy))
            routes.register(on: router, metricsHere: configuration.metricsListen == nil)
            return router
        }
        let http1 = HTTP1Channel.Configuration(idleTimeout: .seconds(Int64(configuration.idleTimeoutSeconds)))
        let serverName = "l3afd/\(L3AFBuild.version)"
        // Once every listener is up, the pid goes to `<state>/l3afd.ready`: how a graceful restart's old process knows
        // this one serves.
        let ports = PortsSeen(onListening: { api, metrics in
            try? AtomicFile.write(Array("\(getpid())\n".utf8), to: upgrade.readyFile, durable: false)
            onListening(api, metrics)
            SystemdNotify.send("READY=1")
        }, expected: configuration.metricsListen == nil ? 1 : 2)
        var services: [any Service] = [
            MetricsSampler(host: host, metrics: metrics, interval: configuration.sampleIntervalSeconds, logger: logger),
            supervisor,
        ]
        if let fleet { services.append(FleetService(agent: fleet, metrics: metrics)) }
        // Every socket is opened (or taken over from the process before a graceful restart) here, so a taken address
        // fails the start at once; each server stops accepting through its gate when a restart hands the sockets on.
        let listeners = Listeners()
        var gates: [AcceptGate] = []
        func server<Child: ServerChildChannel>(_ socket: Int32, _ child: Child, onRunning: @escaping @Sendable (any Channel) async -> Void) -> any Service {
            let gate = AcceptGate()
            gates.append(gate)
            return ListenerServer(socket: socket, child: child, maximumConnections: configuration.maximumConnections, gate: gate, logger: logger, onRunning: onRunning)
        }
        func http(_ responder: some HTTPResponder<some InitializableFromSource<ApplicationRequestContextSource>>) -> HTTP1Channel {
            HTTP1Channel(responder: L3AFDaemon.responder(responder, serverName: serverName, logger: logger), configuration: http1)
        }
        let apiSocket = try listeners.tcp("api", host: api.host, port: api.port)
        let apiChild = http(apiRouter().buildResponder())
        let onAPI: @Sendable (any Channel) async -> Void = { channel in ports.api(channel.localAddress?.port ?? api.port) }
        if let tls = configuration.tls {
            services.append(server(apiSocket, try TLSChannel(apiChild, tlsConfiguration: try Self.tls(tls)), onRunning: onAPI))
        } else {
            services.append(server(apiSocket, apiChild, onRunning: onAPI))
        }
        if let socket = configuration.socket {
            let fd = try listeners.unix("socket", path: socket, prepare: { try Self.prepareSocket(socket) })
            services.append(server(fd, http(apiRouter().buildResponder()), onRunning: { _ in logger.notice("serving the API on the Unix socket \(socket) (mode 0600)") }))
        }
        if let metricsListen = configuration.metricsListen {
            let address = try DaemonConfiguration.address(metricsListen, option: "metrics-listen")
            let metricsRouter = Router()
            DaemonRoutes.registerMetrics(on: metricsRouter, metrics)
            services.append(server(try listeners.tcp("metrics", host: address.host, port: address.port), http(metricsRouter.buildResponder()),
                                   onRunning: { channel in ports.metrics(channel.localAddress?.port ?? address.port) }))
        }
        if let debugListen = configuration.chainDebugListen {
            let address = try DaemonConfiguration.address(debugListen, option: "[ebpf-chain-debug] addr")
            let debugRouter = Router()
            routes.registerChainDebug(on: debugRouter, pinRoot: configuration.pinRoot)
            services.append(server(try listeners.tcp("debug", host: address.host, port: address.port), http(debugRouter.buildResponder()),
                                   onRunning: { channel in logger.notice("chain debug view (GET /bpfs/{iface}) on \(address.host):\(channel.localAddress?.port ?? address.port)") }))
        }
        listeners.closeUnclaimed()
        services.append(SystemdWatchdog(stopIsFinal: { upgrade.prepared == nil }))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        upgrade.attach(group, gates: gates)
        try await group.run()
        // A graceful restart stopped the services: the new build takes over the sockets, or this one runs again with them.
        if let prepared = upgrade.prepared {
            pidLock = nil
            if upgrade.handOver(prepared, arguments: Array(CommandLine.arguments.dropFirst()), listeners: listeners) { return }
            SelfUpgrade.runAgain(listeners: listeners)
        }
        // A socket taken over from another process may still be served by it (a graceful restart that is being undone).
        if let socket = configuration.socket, !listeners.inherited("socket") { unlink(socket) }
        logger.notice("stopped; programs stay attached")
    }

    /// Makes the socket's folder (mode 0700 when it is made here) and removes a socket an earlier daemon left: the pid
    /// lock is held, so no other daemon of this state uses it. Anything but a socket at the path is refused.
    static func prepareSocket(_ path: String) throws(DaemonError) {
        let folder = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: folder) {
            guard (try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])) != nil else {
                throw DaemonError(.badConfiguration, "can't create the socket's folder \(folder)")
            }
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw DaemonError(.badConfiguration, "\(path) exists and is not a socket", hint: "remove it or choose another socket path")
            }
            unlink(path)
        }
    }

    /// Server TLS from PEM files; with a client CA, clients must present a certificate that chains to it.
    static func tls(_ tls: DaemonConfiguration.TLS) throws -> TLSConfiguration {
        func load<T>(_ what: String, _ path: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch {
                throw DaemonError(.badConfiguration, "can't load the TLS \(what) \(path): \(error)", hint: "give a PEM file")
            }
        }
        let chain = try load("certificate", tls.certificate) { try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) } }
        let key = try load("key", tls.key) { try NIOSSLPrivateKey(file: tls.key, format: .pem) }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = tls.minimumVersion == "1.3" ? .tlsv13 : .tlsv12
        if let ca = tls.clientCA {
            let roots = try load("client CA", ca) { try NIOSSLCertificate.fromPEMFile(ca) }
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(roots)
        }
        return configuration
    }
}

/// Tells the caller the bound ports once every server listens.
final class PortsSeen: Sendable {
    private let state = Mutex<(api: Int?, metrics: Int?)>((nil, nil))
    let onListening: @Sendable (Int, Int?) -> Void
    let expected: Int

    init(onListening: @escaping @Sendable (Int, Int?) -> Void, expected: Int) {
        self.onListening = onListening
        self.expected = expected
    }

    func api(_ port: Int) { update { $0.api = port } }
    func metrics(_ port: Int) { update { $0.metrics = port } }

    private func update(_ body: (inout (api: Int?, metrics: Int?)) -> Void) {
        let ready = state.withLock { value -> (Int, Int?)? in
            body(&value)
            guard let api = value.api, expected == 1 || value.metrics != nil else { return nil }
            return (api, value.metrics)
        }
        if let ready { onListening(ready.0, ready.1) }
    }
}

/// Samples the monitor maps and revisions every interval.
struct MetricsSampler: Service {
    let host: HostManager
    let metrics: DaemonMetrics
    let interval: Double
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                await metrics.sample(host)
            }
        }
    }
}

/// The fleet member, and its state in `/metrics` every second.
struct FleetService: Service {
    let agent: FleetAgent
    let metrics: DaemonMetrics

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await agent.run() }
                group.addTask {
                    while !Task.isCancelled {
                        metrics.fleet(await agent.report())
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
        }
    }
}

/// One daemon per state folder: a ``FileLock`` on `l3afd.pid`, never waited for, refused with the holder's pid.
enum PIDLock {
    static func take(_ path: String) throws(DaemonError) -> FileLock {
        do { return try FileLock(path: path, wait: .never) } catch let held as FileLock.Held {
            throw DaemonError(.alreadyRunning, "another l3afd (pid \(held.pid)) already runs with this state folder (\(path))",
                              hint: "stop it first, or give this one another --state")
        } catch {
            throw DaemonError(.badConfiguration, "can't open \(path): \(error)", hint: "check --state")
        }
    }
}
