import Foundation
import L3AFFleet
import L3AFHost
import L3AFHostTesting
import L3AFModel
import Logging
import Synchronization

// bench/fleet's in-process half: N fleet agents (the real watch, fold, decide, apply and report logic) against a real
// etcd, each over a host whose chains are fakes: the host owner over FakeChains and FakePackages (its own state.db)
// up to --stateful hosts, an in-memory host past that (state.db files would pass the file limit). It times, for two
// changes of a group's desired state (an install, then a version change), how long until every agent's status in etcd
// reports it, with etcd's request rate and the bytes each agent read; and, as the floor, how long etcd takes to tell
// N bare watchers of one write.
// Usage: l3af-bench-fleet ENDPOINT N [--stateful K] [--connections C] [--lease S]

/// One line to standard output, written at once (a pipe or file would otherwise hold it until exit).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
let arguments = CommandLine.arguments
guard arguments.count >= 3, let count = Int(arguments[2]), count > 0 else {
    FileHandle.standardError.write(Data("usage: l3af-bench-fleet ENDPOINT N [--stateful K] [--connections C] [--lease S]\n".utf8))
    exit(2)
}
let endpoint = arguments[1]
func option(_ name: String, _ fallback: Int) -> Int {
    guard let at = arguments.firstIndex(of: name), at + 1 < arguments.count, let value = Int(arguments[at + 1]) else { return fallback }
    return value
}
let stateful = min(count, option("--stateful", 2000))
let connections = max(1, option("--connections", 16))
let lease = option("--lease", 10)

/// A host that applies in memory: what the agent asked for is what runs.
final class MemoryHost: FleetHost {
    private let state = Mutex<([String: String], Int)>(([:], 0))
    func apply(_ effective: FleetEffective, cause: String) async throws -> (revision: Int?, rolledBack: String?) {
        let versions = effective.versions
        return (state.withLock { $0 = (versions, $0.1 + 1); return $0.1 }, nil)
    }
    func running() async -> (versions: [String: String], revision: Int?) { state.withLock { ($0.0, $0.1) } }
}

var logger = Logger(label: "bench-fleet")
logger.logLevel = ProcessInfo.processInfo.environment["BENCH_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
let clients = try (0..<connections).map { _ in try EtcdClient(endpoints: [endpoint], timeout: .seconds(30)) }
let layout = try FleetLayout()
let store = FleetStore(client: try EtcdClient(endpoints: [endpoint], timeout: .seconds(30)), layout: layout, actor: "bench")
_ = try await store.client.delete(prefix: layout.prefix + "/")

/// etcd's gRPC messages received so far, calls and stream messages (a renewal on a keep-alive stream, a watch
/// request) alike (its /metrics, on the client port).
func etcdRequests() -> Double {
    let curl = Process()
    curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    curl.arguments = ["-s", "--max-time", "10", endpoint + "/metrics"]
    let pipe = Pipe()
    curl.standardOutput = pipe
    guard (try? curl.run()) != nil else { return .nan }
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    curl.waitUntilExit()
    return text.split(separator: "\n").filter { $0.hasPrefix("grpc_server_msg_received_total{") }.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

// The agents.
let setup = ContinuousClock.now
var fakes: [FakeHost] = []
var agents: [FleetAgent] = []
for i in 0..<count {
    var configuration = FleetConfiguration(endpoints: [endpoint])
    configuration.groups = ["edge"]
    configuration.leaseSeconds = lease
    let name = String(format: "sim-%05d", i)
    let host: any FleetHost
    if i < stateful {
        let fake = try FakeHost { $0.hostName = name }
        try fake.packages.publish("ratelimiting", "1.0.0")
        try fake.packages.publish("ratelimiting", "1.0.1")
        fake.chains.state.withLock { _ = $0.interfaces.insert("uplink") }
        fakes.append(fake)
        host = HostFleetBackend(host: fake.host, hostName: name, interfaces: [:])
    } else {
        host = MemoryHost()
    }
    let client = clients[i % connections]
    agents.append(try FleetAgent(configuration: configuration, hostName: name, host: host, logger: logger, client: { client }))
}
let tasks = agents.map { agent in Task { await agent.run() } }

/// Waits until `count` statuses under the prefix satisfy `done`; the seconds it took.
func waitForStatuses(_ done: @escaping @Sendable (FleetStatus) -> Bool, from start: ContinuousClock.Instant, limit: Double = 600) async throws -> Double {
    final class Seen: Sendable { let hosts = Mutex<Set<String>>([]) }
    let box = Seen()
    let (kvs, at) = try await store.client.read([.prefix(layout.statuses)])
    for kv in kvs { if let status = try? DocumentDecoder.decode(FleetStatus.self, from: kv.value, document: kv.key), done(status) { _ = box.hosts.withLock { $0.insert(status.host) } } }
    if box.hosts.withLock({ $0.count }) >= count { return seconds(since: start) }
    let watcher = try EtcdClient(endpoints: [endpoint], timeout: .seconds(30))
    defer { watcher.close() }
    return try await withThrowingTaskGroup(of: Double.self) { group in
        group.addTask {
            struct Done: Error {}
            do {
                try await watcher.watch([.prefix(layout.statuses)], from: at + 1) { events, _ in
                    let total = box.hosts.withLock { set in
                        for event in events where !event.deleted {
                            if let status = try? DocumentDecoder.decode(FleetStatus.self, from: event.kv.value, document: event.kv.key), done(status) { set.insert(status.host) }
                        }
                        return set.count
                    }
                    if total >= count { throw Done() }
                }
            } catch is Done {}
            return seconds(since: start)
        }
        group.addTask {
            try await Task.sleep(for: .seconds(limit))
            throw FleetError(.unavailable, "only \(box.hosts.withLock { $0.count }) of \(count) hosts reported within \(Int(limit)) s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

let joined = try await waitForStatuses({ $0.state == .unmanaged }, from: setup)
say(String(format: "fleet: %d agents (%d over the host owner with fake chains, %d in memory), %d etcd connections, lease %d s; all live in %.1f s",
             count, stateful, count - stateful, connections, lease, joined))

func bytes() -> Int { clients.map(\.bytesReceived).reduce(0, +) }

var results: [(String, Double, Double, Double)] = []
for (label, version) in [("install", "=1.0.0"), ("upgrade", "=1.0.1")] {
    try await Task.sleep(for: .seconds(1))
    let requestsBefore = etcdRequests(), bytesBefore = bytes()
    let start = ContinuousClock.now
    let written = try await store.modify(.group(try FleetName("edge", what: "group")), cause: "bench \(label)") { desired in
        var program = BPFProgram(name: "ratelimiting", seqID: 1)
        program.version = version
        program.adminStatus = "enabled"
        desired.programs = [L3afBPFPrograms(hostName: "", iface: "uplink", bpfPrograms: HookLists(xdpIngress: [program]))]
    }
    let took = try await waitForStatuses({ $0.revision >= written && $0.state == .inSync && $0.versions["uplink/xdp_ingress/ratelimiting"].map { "=" + $0 == version || $0 == version } == true }, from: start)
    let requests = etcdRequests() - requestsBefore
    let perHost = Double(bytes() - bytesBefore) / Double(count)
    results.append((label, took, requests / took, perHost))
    say(String(format: "fleet %@: all %d hosts report it in %.2f s; etcd received %.0f messages/s meanwhile; each host read %.0f bytes",
                 label, count, took, requests / took, perHost))
}

// Steady state: the requests etcd handles per second with nothing changing (lease renewals).
let idleBefore = etcdRequests()
try await Task.sleep(for: .seconds(5))
let idle = (etcdRequests() - idleBefore) / 5
say(String(format: "fleet idle: etcd receives %.0f messages/s (%.2f per host per second: lease renewals)", idle, idle / Double(count)))

for task in tasks { task.cancel() }
for task in tasks { await task.value }

// The floor: N bare watchers (no fold, no apply, no status) on the same connections, told of one write.
let floorKey = layout.prefix + "/bench-floor"
let seen = Atomic<Int>(0)
let (done, finish) = AsyncStream<Void>.makeStream()
let (_, now) = try await store.client.get(floorKey)
var watchers: [Task<Void, Never>] = []
for i in 0..<count {
    let client = clients[i % connections]
    watchers.append(Task {
        try? await client.watch([.key(floorKey)], from: now + 1) { events, _ in
            if !events.isEmpty, seen.add(1, ordering: .relaxed).newValue == count { finish.yield() }
        }
    })
}
try await Task.sleep(for: .seconds(2))
let floorStart = ContinuousClock.now
try await store.client.put(floorKey, Array("x".utf8))
for await _ in done { break }
let floor = seconds(since: floorStart)
for watcher in watchers { watcher.cancel() }
say(String(format: "floor: etcd tells %d bare watchers of one write in %.2f s; the upgrade took %.1fx that", count, floor, results[1].1 / floor))
for fake in fakes { fake.remove() }
exit(0)
