import Foundation
import L3AFDaemon
import L3AFHost
import L3AFHostTesting
import L3AFModel
import Testing

/// l3afd's counters from the host's revisions, on a fake host: every revision between two samples counts.
@Suite struct DaemonMetricsTests {
    func value(_ text: String, _ name: String, _ program: String, label: String = "ebpf_program") -> Int? {
        text.split(separator: "\n").first { $0.hasPrefix(name + "{") && $0.contains("\(label)=\"\(program)\"") }
            .flatMap { $0.split(separator: " ").last.flatMap { Int(Double($0) ?? -1) } }
    }

    @Test func startsStopsAndUpdatesBetweenTwoSamplesAllCount() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        for name in ["a", "b"] { try fake.packages.publish(name, "1.0.0") }
        try fake.packages.publish("b", "1.1.0")
        let metrics = DaemonMetrics(samples: 5)
        func install(_ spec: String) async throws {
            _ = try await fake.host.install(InstallRequest(spec: try PackageSpec(parsing: spec), interface: "eth0"))
        }
        try await install("a")
        await metrics.sample(fake.host)
        // Between two samples: b starts, a stops, a starts again, b is updated twice (pin down, then up).
        try await install("b@=1.0.0")
        _ = try await fake.host.remove(package: "a", interface: "eth0")
        try await install("a")
        _ = try await fake.host.pin(package: "b", version: "1.1.0")
        _ = try await fake.host.pin(package: "b", version: "1.0.0")
        await metrics.sample(fake.host)
        let text = String(decoding: metrics.text(), as: UTF8.self)
        #expect(value(text, "l3afd_BPFStartCount", "a") == 2)
        #expect(value(text, "l3afd_BPFStopCount", "a") == 1)
        #expect(value(text, "l3afd_BPFStartCount", "b") == 1)
        #expect(value(text, "l3afd_BPFUpdateCount", "b") == 2)
        #expect(value(text, "l3afd_BPFRunning", "b") == 1)
    }

    @Test func aHostThatStartsEmptyCountsItsFirstRevisions() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        try fake.packages.publish("a", "1.0.0")
        let metrics = DaemonMetrics(samples: 5)
        await metrics.sample(fake.host)
        _ = try await fake.host.install(InstallRequest(spec: try PackageSpec(parsing: "a"), interface: "eth0"))
        _ = try await fake.host.remove(package: "a", interface: "eth0")
        _ = try await fake.host.install(InstallRequest(spec: try PackageSpec(parsing: "a"), interface: "eth0"))
        await metrics.sample(fake.host)
        let text = String(decoding: metrics.text(), as: UTF8.self)
        #expect(value(text, "l3afd_BPFStartCount", "a") == 2 && value(text, "l3afd_BPFStopCount", "a") == 1, "\(text)")
    }

    @Test func aggregatorsOverTheLastSamples() {
        let history: [(time: Double, value: UInt64)] = [(0, 10), (1, 30), (2, 35), (4, 95)]
        #expect(DaemonMetrics.aggregate(.scalar, history) == 95)
        #expect(DaemonMetrics.aggregate(.avg, history) == 42.5)
        #expect(DaemonMetrics.aggregate(.maxRate, history) == 30)
        #expect(DaemonMetrics.aggregate(.maxRate, [(0, 50), (1, 10)]) == 0, "a counter that went down (a reload) is no rate")
    }

    @Test func failuresFromRequestsAreBounded() {
        let metrics = DaemonMetrics(samples: 2)
        for i in 0..<(DaemonMetrics.maximumFailedSeries + 50) { metrics.failed([(package: "p\(i)", interface: "eth0", hook: .xdpIngress)]) }
        metrics.failed([(package: "../../etc", interface: "eth0", hook: .xdpIngress)])
        let text = String(decoding: metrics.text(), as: UTF8.self)
        let series = text.split(separator: "\n").filter { $0.hasPrefix("l3afd_BPFUpdateFailedCount{") }
        #expect(series.count == DaemonMetrics.maximumFailedSeries + 1)
        #expect(value(text, "l3afd_BPFUpdateFailedCount", "_other", label: "bpf_program") == 51)
        let fresh = DaemonMetrics(samples: 2, hostName: "node-1")
        fresh.failed([(package: "new", interface: "eth0", hook: .tcEgress)], configured: { _, _, _ in false }, ipv4: { _ in "192.0.2.1" })
        let deploy = String(decoding: fresh.text(), as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("l3afd_BPFDeployFailedCount{") }
        #expect(deploy?.contains(#"direction="egress""#) == true && deploy?.contains(#"ipv4_address="192.0.2.1""#) == true, "\(String(describing: deploy))")
    }
}
