import Foundation
import L3AFClient
import L3AFTestSupport
import Synchronization
import Testing

/// The host's one owner under load, for real: `l3afd` changing a chain in a loop while status, `/metrics` and its own
/// sampler read without pause, and `l3afd` answering reads while another process holds the host lock. Its timings are
/// measured on a quiet machine: `scripts/test` runs this suite on its own, after the others.
@Suite(.serialized, .enabled(if: bpfUnavailable == nil, "\(bpfUnavailable ?? "")"))
struct HostOwnerTests {
    /// What the readers and the test share.
    final class Shared: Sendable {
        let writing = Atomic<Bool>(true)
        let reads = Atomic<Int>(0)
        let problems = Mutex<[String]>([])
    }


    /// Chain [counter-a, ratelimiting, counter-b] on the port, UDP from the sender without pause. The writer installs,
    /// replaces (pin to another version) and removes ratelimiting through the API in a loop for a bounded time, while
    /// two readers hammer `GET /l3af/v1/status` and `/metrics` and the sampler runs every 0.1 s: no read fails or sees an
    /// inconsistent chain, no pin is lost (no staging folder left, the kernel runs the last revision), counter-a and
    /// counter-b count the same packets, and l3afd's counters count every start, stop and update the writer made.
    @Test func readersNeverDisturbTheWriter() async throws {
        let host = try HostHarness(ratelimiting: ["1.0.0", "1.1.0"])
        defer { host.remove() }
        try host.publishRenamed("packet-counter", as: "counter-a", version: "1.0.0")
        try host.publishRenamed("packet-counter", as: "counter-b", version: "1.0.0")
        let daemon = try DaemonHarness(host: host, extra: ["--sample-interval", "0.1"])
        defer { daemon.stop() }
        for (name, seq) in [("counter-a", 10), ("counter-b", 30)] {
            let reply = try await daemon.request("POST", "/l3af/v1/install", #"{"spec": "\#(name)", "iface": "\#(host.port)", "hook": "xdp_ingress", "seq_id": \#(seq)}"#)
            #expect(reply.status == 200, "\(reply.text)")
        }
        let traffic = try RunningProcess("/usr/sbin/ip", ["netns", "exec", host.network.sender, "python3", "-c", """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            while True:
                s.sendto(b'x' * 32, ('\(host.network.receiverAddress)', 9)); time.sleep(0.0005)
            """])
        let shared = Shared(), url = daemon.url
        let readers = (0..<2).map { index in
            Task { [shared] in
                while shared.writing.load(ordering: .relaxed) {
                    let (path, isStatus) = index == 0 ? ("/l3af/v1/status", true) : ("/metrics", false)
                    do {
                        let reply = try await DaemonHarness.request(url, "GET", path)
                        if reply.status != 200 || reply.text.contains("inconsistent") || (isStatus && reply.text.contains("DISAGREES")) {
                            shared.problems.withLock { $0.append("\(path): \(reply.status) \(reply.text.prefix(300))") }
                        }
                        if isStatus, let status = try JSONSerialization.jsonObject(with: Data(reply.text.utf8)) as? [String: Any],
                           let difference = status["difference"] as? String {
                            shared.problems.withLock { $0.append("status: \(difference)") }
                        }
                        shared.reads.add(1, ordering: .relaxed)
                    } catch {
                        shared.problems.withLock { $0.append("\(path): \(error)") }
                    }
                }
            }
        }
        var installs = 0, removes = 0, updates = 0
        let deadline = Date().addingTimeInterval(Double(ProcessInfo.processInfo.environment["L3AF_HAMMER_SECONDS"] ?? "") ?? 12)
        while Date() < deadline {
            for (body, path) in [
                (#"{"spec": "ratelimiting@=1.0.0", "iface": "\#(host.port)", "hook": "xdp_ingress", "seq_id": 20}"#, "/l3af/v1/install"),
                (#"{"package": "ratelimiting", "version": "1.1.0"}"#, "/l3af/v1/pin"),
                (#"{"package": "ratelimiting", "version": "1.0.0"}"#, "/l3af/v1/pin"),
                (#"{"package": "ratelimiting", "iface": "\#(host.port)"}"#, "/l3af/v1/remove"),
            ] {
                let reply = try await daemon.request("POST", path, body)
                #expect(reply.status == 200, "\(path): \(reply.text)")
            }
            installs += 1; updates += 2; removes += 1
        }
        shared.writing.store(false, ordering: .relaxed)
        for reader in readers { await reader.value }
        _ = traffic.stop(signal: SIGKILL)
        #expect(shared.problems.withLock { $0 }.isEmpty, "\(shared.problems.withLock { Array($0.prefix(5)) })")
        #expect(shared.reads.load(ordering: .relaxed) > installs * 4, "readers ran: \(shared.reads.load(ordering: .relaxed)) reads over \(installs) rounds")

        let staging = FileManager.default.enumerator(atPath: host.pinRoot)?.compactMap { $0 as? String }.filter { $0.contains("staging-") } ?? []
        #expect(staging.isEmpty, "no staging folder left: \(staging)")
        let status = try host.status()
        #expect(status["difference"] == nil && status["changing"] == nil, "\(status)")
        let chain = try host.chain()
        #expect(chain.map(\.spec) == ["counter-a@1.0.0", "counter-b@1.0.0"])
        let a = chain.first?.counters["xdp_counter_map[17]"] ?? 0, b = chain.last?.counters["xdp_counter_map[17]"] ?? 0
        #expect(a > 100 && a == b, "counter A saw \(a) UDP packets, counter B \(b)")

        print("hammer: \(installs) rounds of install, 2 replaces and remove (\(installs * 4) changes) while \(shared.reads.load(ordering: .relaxed)) status and /metrics reads ran; counter A \(a), counter B \(b)")
        try await Task.sleep(for: .milliseconds(300))
        let metrics = try await daemon.metrics()
        func count(_ name: String) -> Int {
            metrics.split(separator: "\n").filter { $0.hasPrefix(name + "{") && $0.contains("ebpf_program=\"ratelimiting\"") }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
        }
        #expect((count("l3afd_BPFStartCount"), count("l3afd_BPFStopCount"), count("l3afd_BPFUpdateCount")) == (installs, removes, updates),
                "metrics count every change though the sampler saw few of them")
    }

    /// Another process holds the host lock (flock(1), as a stuck `l3af` would) while 50 requests arrive at once:
    /// `/metrics` and `GET /l3af/configs/v1` answer within 100 ms (reads never wait for a writer), status answers and
    /// says nothing is in flight, and the writes wait for the lock and then answer 409 naming the holder.
    @Test func readsAnswerWhileAnotherProcessHoldsTheLock() async throws {
        let host = try HostHarness()
        defer { host.remove() }
        let daemon = try DaemonHarness(host: host, extra: ["--lock-timeout", "2"])
        defer { daemon.stop() }
        let added = try await daemon.request("POST", "/l3af/configs/v1/add", DaemonTests.payload(host.port, counter: true))
        #expect(added.status == 200, "\(added.text)")
        let holder = try RunningProcess("/usr/bin/flock", ["-o", "\(host.state)/lock", "-c", "echo held; sleep 8"])
        _ = try holder.waitForLine(containing: "held")
        defer { _ = holder.stop(signal: SIGKILL) }

        // Each request on a thread of its own, timed there: the figure is the daemon's answer time, not how long this
        // test process took to get back to it.
        let started = Date(), url = daemon.url, port = host.port
        let results = Mutex<[(String, Int, Double, String)]>([])
        let threads = (0..<50).map { i in
            Thread {
                let (method, path, body): (String, String, String?) = switch i % 5 {
                case 0, 1: ("GET", "/metrics", nil)
                case 2, 3: ("GET", "/l3af/configs/v1", nil)
                default: ("POST", "/l3af/v1/remove", #"{"package": "packet-counter", "iface": "\#(port)"}"#)
                }
                let sent = Date()
                let response = try? HTTPClient().perform(DaemonHarness.httpRequest(url, method, path, body))
                let text = response.map { String(decoding: $0.body, as: UTF8.self) } ?? "no answer"
                results.withLock { $0.append(("\(method) \(path)", response?.status ?? 0, Date().timeIntervalSince(sent), text)) }
            }
        }
        for thread in threads { thread.start() }
        while results.withLock({ $0.count }) < 50, Date().timeIntervalSince(started) < 30 { try await Task.sleep(for: .milliseconds(20)) }
        let all = results.withLock { $0 }
        #expect(all.count == 50)
        let results_ = all
        let reads = results_.filter { $0.0.hasPrefix("GET") }, writes = results_.filter { $0.0.hasPrefix("POST") }
        let slowest = reads.map(\.2).max() ?? 0
        #expect(reads.count == 40 && reads.allSatisfy { $0.1 == 200 }, "\(reads.filter { $0.1 != 200 }.map { "\($0.0) \($0.1) \($0.3)" })")
        #expect(slowest < 0.1, "the slowest read took \(Int(slowest * 1000)) ms")
        #expect(writes.count == 10 && writes.allSatisfy { $0.1 == 409 && $0.3.contains("is changing this host") }, "\(writes.map { "\($0.1) \($0.3.prefix(200))" })")
        #expect(writes.allSatisfy { $0.2 >= 1.9 }, "writes waited for the lock")
        print("50 requests with the host lock held elsewhere: slowest read \(Int(slowest * 1000)) ms, writes answered 409 after \(String(format: "%.1f", writes.map(\.2).min() ?? 0))–\(String(format: "%.1f", writes.map(\.2).max() ?? 0)) s; all done in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        let status = try await daemon.json("/l3af/v1/status") as? [String: Any]
        #expect(status?["changing"] == nil && status?["difference"] == nil)

        _ = holder.stop(signal: SIGKILL)
        let removed = try await daemon.request("POST", "/l3af/v1/remove", #"{"package": "packet-counter", "iface": "\#(host.port)"}"#)
        #expect(removed.status == 200, "once the lock is free the write goes through: \(removed.text)")
    }
}
