import Foundation
import L3AFHost
import L3AFModel
import Logging
import Synchronization

/// How l3afd joins the fleet (`fleet` in its JSON configuration, `[fleet]` in an l3afd.cfg).
public struct FleetConfiguration: Codable, Sendable, Equatable {
    /// etcd's client URLs (`http://host:port`, `https://host:port`).
    public var endpoints: [String]
    public var prefix: String = FleetLayout.defaultPrefix
    /// The groups this host belongs to, in the order their documents are folded (a later group wins).
    public var groups: [String] = []
    public var tls: FleetTLS?
    /// Seconds the status lease lives without a renewal: how long a dead host stays in the live list.
    public var leaseSeconds: Int = 10
    /// Seconds between attempts after a change failed to apply (a fetch that failed, an interface that is missing).
    public var retrySeconds: Double = 30
    /// The fleet's interface names → this host's (`uplink` → `ens5`); a name not listed is this host's own.
    public var interfaces: [String: String] = [:]

    public init(endpoints: [String]) { self.endpoints = endpoints }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case endpoints, prefix, groups, tls, interfaces
        case leaseSeconds = "lease_seconds"
        case retrySeconds = "retry_seconds"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        endpoints = try c.decode([String].self, forKey: .endpoints)
        prefix = try c.decodeIfPresent(String.self, forKey: .prefix) ?? FleetLayout.defaultPrefix
        groups = try c.decodeIfPresent([String].self, forKey: .groups) ?? []
        tls = try c.decodeIfPresent(FleetTLS.self, forKey: .tls)
        leaseSeconds = try c.decodeIfPresent(Int.self, forKey: .leaseSeconds) ?? 10
        retrySeconds = try c.decodeIfPresent(Double.self, forKey: .retrySeconds) ?? 30
        interfaces = try c.decodeIfPresent([String: String].self, forKey: .interfaces) ?? [:]
    }

    /// Everything checked before the daemon starts: endpoints, prefix, names, bounds.
    public func validate() throws(FleetError) {
        guard !endpoints.isEmpty else { throw FleetError(.badConfiguration, "fleet.endpoints is empty", hint: "list etcd's client URLs, e.g. http://127.0.0.1:2379") }
        for endpoint in endpoints { _ = try EtcdClient.parse(endpoint) }
        _ = try FleetLayout(prefix: prefix)
        for group in groups { _ = try FleetName(group, what: "group") }
        guard (2...3600).contains(leaseSeconds) else { throw FleetError(.badConfiguration, "fleet lease_seconds is \(leaseSeconds); it must be 2 to 3600") }
        guard retrySeconds.isFinite, (0.1...86_400).contains(retrySeconds) else { throw FleetError(.badConfiguration, "fleet retry_seconds is \(retrySeconds); it must be 0.1 to 86400") }
        for (fleet, local) in interfaces where fleet.isEmpty || local.isEmpty || local.count > 15 || local.contains("/") {
            throw FleetError(.badConfiguration, "fleet interfaces: '\(fleet)' → '\(local)' is not a pair of interface names")
        }
    }
}

/// What the agent needs of the host: apply a folded desired state (one revision, its cause naming the etcd
/// revision), and say what runs. ``HostFleetBackend`` is the real host; the fleet bench gives a host whose chains are
/// fakes.
public protocol FleetHost: Sendable {
    /// Applies `effective` as the whole host's configuration; with a watch, a change that breaks a health rule is
    /// rolled back, and the rollback's cause is returned.
    func apply(_ effective: FleetEffective, cause: String) async throws -> (revision: Int?, rolledBack: String?)
    /// Version per `iface/hook/name` in the fleet's interface names, and the host's revision.
    func running() async -> (versions: [String: String], revision: Int?)
}

/// The real host: the host owner's declarative apply (`mode: .host`), interfaces renamed from the fleet's names.
public struct HostFleetBackend: FleetHost {
    public let host: HostManager
    public let hostName: String
    /// Fleet name → this host's.
    public let interfaces: [String: String]

    public init(host: HostManager, hostName: String, interfaces: [String: String]) {
        self.host = host
        self.hostName = hostName
        self.interfaces = interfaces
    }

    public func apply(_ effective: FleetEffective, cause: String) async throws -> (revision: Int?, rolledBack: String?) {
        let payloads = effective.payloads.map { payload in
            var local = payload
            local.iface = interfaces[payload.iface] ?? payload.iface
            local.hostName = hostName
            return local
        }
        let outcome = try await host.apply(payloads, mode: .host, hostName: hostName, cause: cause, watch: effective.watchSeconds)
        return (outcome.rolledBack?.number ?? outcome.revision?.number, outcome.rolledBack?.cause)
    }

    public func running() async -> (versions: [String: String], revision: Int?) {
        let fleetName = Dictionary(interfaces.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        guard let current = try? await host.observe({ try $0.database.current() }) else { return ([:], nil) }
        var versions: [String: String] = [:]
        for placed in current.snapshot.programs {
            let iface = fleetName[placed.interface] ?? placed.interface
            versions["\(iface)/\(placed.hook.rawValue)/\(placed.package)"] = placed.version.rawValue
        }
        for probe in current.snapshot.probes ?? [] {
            versions["\(fleetName[probe.interface] ?? probe.interface)/probes/\(probe.package)"] = probe.version.rawValue
        }
        return (versions, current.number)
    }
}

/// What the agent says of itself, for l3afd's status and metrics.
public struct FleetAgentReport: Sendable, Codable, Equatable {
    /// Always true here; an l3afd without a fleet answers `{"joined": false}`.
    public var joined = true
    public var connected: Bool
    public var state: FleetStatus.State
    /// The etcd revision it has read up to.
    public var revision: Int64
    /// The etcd revision of the desired state it applied last.
    public var appliedRevision: Int64
    public var lastError: String?
    /// Seconds since etcd was last reachable, while it isn't (the host keeps running what it applied: fail static).
    public var disconnectedSeconds: Double?
    /// Changes applied since the start.
    public var changes: Int

    enum CodingKeys: String, CodingKey {
        case joined, connected, state, revision, changes
        case appliedRevision = "applied_revision"
        case lastError = "last_error"
        case disconnectedSeconds = "disconnected_seconds"
    }
}

/// l3afd's member of the fleet. It reads its groups' and its own documents at one revision, folds them and applies
/// the result through the host owner; then it watches those keys from the next revision and applies each change.
/// After a disconnect it resumes the watch from the last revision it saw (a revision etcd compacted away means
/// reading everything again). Its status goes under a lease it keeps alive. Without etcd it keeps running what it
/// applied last (fail static), says so in its report, and catches up when etcd is back.
public actor FleetAgent {
    public let configuration: FleetConfiguration
    public let layout: FleetLayout
    public let name: FleetName
    let groups: [FleetName]
    let host: any FleetHost
    let logger: Logger
    let makeClient: @Sendable () throws -> EtcdClient
    /// Whether the client is this agent's own (closed when it stops) rather than one it was lent.
    let ownsClient: Bool

    private var client: EtcdClient?
    /// The documents read, by key, with the revision each was written at.
    private var documents: [String: (FleetDesired, Int64)] = [:]
    /// Keys whose document could not be read, and why.
    private var unreadable: [String: String] = [:]
    private var revision: Int64 = 0
    private var appliedRevision: Int64 = 0
    private var appliedFingerprint: String?
    /// A desired state whose change was rolled back: not applied again until it changes.
    private var rejectedFingerprint: String?
    private var state: FleetStatus.State = .applying
    private var lastError: String?
    private var rollout: FleetStatus.RolloutReport?
    private var lease: Int64 = 0
    private var connected = false
    private var disconnectedSince: Date?
    private var needsFullRead = true
    private var reconciling = false
    private var dirty = false
    private var lastAttempt = Date.distantPast
    private var changes = 0
    /// The documents the desired state was last folded from (`@group@rev`, `host@rev`), for the status.
    private var sources: [String] = []
    private var lastPublished: [UInt8] = []
    /// The last status write failed: the next round writes it again.
    private var statusUnwritten = false

    public init(configuration: FleetConfiguration, hostName: String, host: any FleetHost, logger: Logger,
                client: (@Sendable () throws -> EtcdClient)? = nil) throws(FleetError) {
        try configuration.validate()
        self.configuration = configuration
        layout = try FleetLayout(prefix: configuration.prefix)
        name = try FleetName(hostName, what: "host name")
        groups = try configuration.groups.map { group throws(FleetError) in try FleetName(group, what: "group") }
        self.host = host
        self.logger = logger
        makeClient = client ?? { try EtcdClient(endpoints: configuration.endpoints, tls: configuration.tls) }
        ownsClient = client == nil
    }

    public func report() -> FleetAgentReport {
        FleetAgentReport(connected: connected, state: state, revision: revision, appliedRevision: appliedRevision, lastError: lastError,
                         disconnectedSeconds: disconnectedSince.map { Date().timeIntervalSince($0) }, changes: changes)
    }

    var targets: [EtcdClient.Target] { groups.map { .key(layout.group($0)) } + [.key(layout.host(name))] }

    /// Runs until cancelled.
    public func run() async {
        var backoff = 0.2
        while !Task.isCancelled {
            do {
                let client = try currentClient()
                if needsFullRead { try await fullRead(client) }
                // A lease renewed (or granted) is etcd answering: connected from here.
                try await keepLease(client)
                markConnected()
                backoff = 0.2
                triggerReconcile()
                try await follow(client)
            } catch let error as FleetError where error.kind == .compacted {
                logger.notice("fleet: \(error.description); reading the desired state again")
                needsFullRead = true
            } catch {
                if Task.isCancelled { break }
                markDisconnected(error)
                try? await Task.sleep(for: .milliseconds(Int(backoff * 1000)))
                backoff = min(backoff * 2, 5)
            }
        }
        // A host that stops on purpose leaves the live list at once (from a task of its own: this one is cancelled,
        // and a call from a cancelled task is cancelled too).
        if lease != 0, let client {
            let lease = lease
            await Task.detached { try? await client.revoke(lease) }.value
        }
        if ownsClient { client?.close() }
    }

    func currentClient() throws -> EtcdClient {
        if let client { return client }
        let made = try makeClient()
        client = made
        return made
    }

    func markConnected() {
        guard !connected else { return }
        if let since = disconnectedSince {
            logger.notice("fleet: etcd is back after \(Int(Date().timeIntervalSince(since))) s; catching up from revision \(revision)")
        } else {
            logger.notice("fleet: joined as \(name) (groups: \(groups.map(\.rawValue).joined(separator: ", "))) at etcd revision \(revision)")
        }
        connected = true
        disconnectedSince = nil
    }

    func markDisconnected(_ error: any Error) {
        if connected || disconnectedSince == nil {
            logger.warning("fleet: etcd is out of reach (\(error)); running what was applied last (fail static)")
            disconnectedSince = disconnectedSince ?? Date()
        }
        connected = false
    }

    /// Every document of this host and its groups, at one revision.
    func fullRead(_ client: EtcdClient) async throws {
        let (kvs, at) = try await client.read(targets)
        documents.removeAll()
        unreadable.removeAll()
        for kv in kvs { take(kv) }
        revision = at
        needsFullRead = false
    }

    func take(_ kv: EtcdClient.KeyValue) {
        do {
            documents[kv.key] = (try FleetDesired.decode(kv.value, key: kv.key), kv.modRevision)
            unreadable[kv.key] = nil
        } catch {
            // A document that can't be read is not applied, and the rest isn't either: half of a desired state is not it.
            documents[kv.key] = nil
            unreadable[kv.key] = error.description
        }
    }

    /// Watches from the revision after the last one seen; each batch is applied before the next is read. Alongside:
    /// the lease kept alive, and a failed change tried again.
    func follow(_ client: EtcdClient) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await client.watch(self.targets, from: self.revision + 1) { events, at in
                    await self.receive(events, at: at)
                }
            }
            group.addTask {
                // One keep-alive stream; a lease that expired anyway (etcd was away longer than its TTL) is granted
                // anew and the status written under it. Renewals etcd leaves unanswered for a whole lease (it has
                // expired there by then) end the stream: a silent partition is seen.
                let seconds = self.configuration.leaseSeconds
                while !Task.isCancelled {
                    do {
                        try await client.keepAlive(await self.lease, every: .milliseconds(max(300, seconds * 1000 / 3)),
                                                   answerWithin: .seconds(seconds))
                    } catch let error as FleetError where error.kind == .notFound {
                        try await self.keepLease(client)
                    }
                }
            }
            group.addTask {
                // A status write that failed (etcd slow or away) is written again.
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(max(1, self.configuration.leaseSeconds / 3)))
                    if await self.statusUnwritten { await self.publish() }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(Int(min(self.configuration.retrySeconds, 5) * 1000)))
                    await self.retryIfDue()
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// Takes a batch of changes and returns at once: the watch goes on reading (and the lease stays renewed) while a
    /// change is applied and watched.
    func receive(_ events: [EtcdClient.Event], at: Int64) {
        for event in events {
            if event.deleted {
                documents[event.kv.key] = nil
                unreadable[event.kv.key] = nil
            } else {
                take(event.kv)
            }
        }
        revision = max(revision, at)
        if !events.isEmpty { triggerReconcile() }
    }

    func retryIfDue() {
        guard state == .failed, Date().timeIntervalSince(lastAttempt) >= configuration.retrySeconds else { return }
        appliedFingerprint = nil
        triggerReconcile()
    }

    /// Starts applying the folded desired state in a task of its own, or, when one runs, has it look again when done.
    /// An etcd disconnect doesn't cancel it: a change under way finishes.
    func triggerReconcile() {
        if reconciling { dirty = true; return }
        reconciling = true
        Task { await self.reconcileLoop() }
    }

    func reconcileLoop() async {
        repeat {
            dirty = false
            await reconcileOnce()
        } while dirty
        reconciling = false
    }

    func reconcileOnce() async {
        if let (key, why) = unreadable.first {
            let error = "the desired state can't be read: \(why)"
            if error != lastError { logger.error("fleet: \(error) (\(key)); running what was applied last") }
            state = .failed
            lastError = error
            lastAttempt = Date()
            await publish()
            return
        }
        let effective = FleetEffective.fold(groups: groups.compactMap { group in documents[layout.group(group)].map { (group, $0.0, $0.1) } },
                                            host: documents[layout.host(name)])
        sources = effective.sources
        // The desired state's revision: its newest document's.
        let at = documents.values.map(\.1).max() ?? revision
        guard effective.configured else {
            state = .unmanaged
            await publish()
            return
        }
        let fingerprint = effective.fingerprint
        if fingerprint == appliedFingerprint || fingerprint == rejectedFingerprint {
            // Back to what runs (a change undone, documents written again as they were): in sync again; back to what
            // was rolled back: still rolled back.
            if fingerprint == appliedFingerprint {
                state = .inSync
                lastError = nil
            }
            await publish()
            return
        }
        lastAttempt = Date()
        let step = effective.rollout
        state = (effective.watchSeconds ?? 0) > 0 ? .watching : .applying
        if let step { rollout = .init(id: step.id, package: step.package, version: step.version, outcome: "watching") }
        await publish()
        let cause = "fleet: etcd revision \(at) (\(effective.sources.joined(separator: ", ")))" + (step.map { "; rollout \($0.id) of \($0.package)@\($0.version)" } ?? "")
        do {
            let outcome = try await host.apply(effective, cause: cause)
            appliedRevision = at
            if let why = outcome.rolledBack {
                rejectedFingerprint = fingerprint
                appliedFingerprint = nil
                state = .rolledBack
                lastError = why
                if let step { rollout = .init(id: step.id, package: step.package, version: step.version, outcome: "rolled-back: \(why)") }
                logger.warning("fleet: the change of etcd revision \(at) was rolled back: \(why)")
            } else {
                appliedFingerprint = fingerprint
                rejectedFingerprint = nil
                state = .inSync
                lastError = nil
                if let step { rollout = .init(id: step.id, package: step.package, version: step.version, outcome: "healthy") }
                if outcome.revision != nil { changes += 1 }
            }
        } catch {
            state = .failed
            lastError = "\(error)"
            if let step { rollout = .init(id: step.id, package: step.package, version: step.version, outcome: "failed: \(error)") }
            logger.error("fleet: the desired state of etcd revision \(at) could not be applied: \(error); running what was applied last, trying again in \(Int(configuration.retrySeconds)) s")
        }
        await publish()
    }

    /// A lease that lives: renewed, or granted anew (and the status written under it) when it expired.
    func keepLease(_ client: EtcdClient) async throws {
        if lease != 0, try await client.keepAlive(lease) > 0 { return }
        lease = try await client.grantLease(ttl: Int64(configuration.leaseSeconds))
        lastPublished = []
        await publish()
    }

    /// Writes the status when it changed (best effort: without etcd it is written when the lease is next granted).
    func publish() async {
        guard lease != 0, let client else { return }
        let running = await host.running()
        let status = FleetStatus(host: name.rawValue, groups: groups.map(\.rawValue), state: state, revision: appliedRevision, fingerprint: appliedFingerprint,
                                 sources: sources,
                                 versions: running.versions, rollout: rollout, hostRevision: running.revision, lastError: lastError,
                                 version: L3AFBuild.version, updatedAt: "")
        let bytes = fleetJSON(status)
        guard bytes != lastPublished else { return }
        var stamped = status
        stamped.updatedAt = Date().fleetTimestamp
        do {
            try await client.put(layout.status(name), fleetJSON(stamped), lease: lease)
            lastPublished = bytes
            statusUnwritten = false
        } catch {
            statusUnwritten = true
            logger.debug("fleet: status not written: \(error)")
        }
    }
}
