import Foundation
import L3AFClient
import L3AFTestSupport
import Testing

/// The registry's /metrics, its health check near expiry, and the example alert rules against what it exports.
@Suite struct RegistryObservabilityTests {
    /// The value of one series in Prometheus text, by its name and labels as printed.
    static func value(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func metricsCountRequestsPublishesBytesAndTheIndexClock() async throws {
        let registry = try RegistryHarness(serveArguments: ["--index-ttl", "3600"])
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0)
        #expect(try registry.publish(try Fixtures.xdpRootPackage(version: "1.0.0")).status == 0, "the same bytes again: not a publish")
        _ = try await registry.http("/index.json")
        _ = try await registry.http("/packages/xdp-root.json")
        _ = try await registry.http("/packages/nothing.json")
        let response = try await registry.http("/metrics")
        #expect(response.status == 200)
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(Self.value(text, #"l3af_registry_requests_total{route="/index.json",method="GET",status="200"}"#) ?? 0 >= 1, "\(text)")
        #expect(Self.value(text, #"l3af_registry_requests_total{route="/packages/{file}",method="GET",status="404"}"#) == 1, "\(text)")
        #expect(Self.value(text, #"l3af_registry_requests_total{route="/api/v1/packages/{name}/{version}",method="PUT",status="201"}"#) == 1)
        #expect(Self.value(text, #"l3af_registry_requests_total{route="/api/v1/packages/{name}/{version}",method="PUT",status="200"}"#) == 1)
        #expect(Self.value(text, "l3af_registry_publishes_total") == 1)
        #expect(Self.value(text, #"l3af_registry_response_bytes_total{route="/packages/{file}"}"#) ?? 0 > 100)
        let expiresIn = try #require(Self.value(text, "l3af_registry_index_expires_in_seconds"))
        #expect(expiresIn > 3500 && expiresIn <= 3600)
        let signed = try #require(Self.value(text, "l3af_registry_index_signed_timestamp_seconds"))
        #expect(abs(signed - Date().timeIntervalSince1970) < 60)
        #expect(Self.value(text, "l3af_registry_index_version") ?? 0 >= 1)
        #expect(Self.value(text, "l3af_registry_index_resign_failures_total") == 0)
        // Every series the example alert rules name is one the registry exports.
        let rules = try String(contentsOf: repositoryRoot.appending(path: "deploy/prometheus/l3af-registry-rules.yml"), encoding: .utf8)
        let named = Set(rules.matches(of: /l3af_registry_[a-z_]+/).map { String($0.output) })
        #expect(!named.isEmpty)
        for series in named { #expect(text.contains("\n\(series)") || text.hasPrefix(series) || text.contains("# TYPE \(series) "), "\(series) is not exported") }
    }

    /// The registry serves the schemas editors check manifests with, the same bytes as schemas/; a manifest that
    /// names one with `"$schema"` packs and publishes.
    @Test func theRegistryServesTheSchemas() async throws {
        let registry = try RegistryHarness()
        let folder = repositoryRoot.appending(path: "schemas")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".schema.json") }
        #expect(files.count >= 6)
        for file in files {
            let served = try await registry.http("/schemas/\(file)")
            #expect(served.status == 200 && served.headers["content-type"] == "application/schema+json", "\(file)")
            let onDisk = try String(contentsOf: folder.appending(path: file), encoding: .utf8)
            #expect(String(decoding: served.body, as: UTF8.self).trimmingCharacters(in: .newlines) == onDisk.trimmingCharacters(in: .newlines),
                    "\(file): run scripts/embed-schemas")
        }
        #expect(try await registry.http("/schemas/nothing.json").status == 404)
        let source = try Fixtures.temporaryFolder("schema-ref")
        for name in ["l3af.json", "xdp_root.bpf.c"] {
            try FileManager.default.copyItem(at: repositoryRoot.appending(path: "registry/xdp-root/\(name)"), to: source.appending(path: name))
        }
        let manifest = source.appending(path: "l3af.json")
        let text = try String(contentsOf: manifest, encoding: .utf8)
        try text.replacingOccurrences(of: "{", with: "{\n  \"$schema\": \"\(registry.url)/schemas/manifest.schema.json\",", options: [], range: text.range(of: "{"))
            .write(to: manifest, atomically: true, encoding: .utf8)
        let packed = try Executable.run("l3af", ["pack", source.path, "-o", source.path])
        #expect(packed.status == 0, "\(packed.stderr)")
        let tarball = try #require(try FileManager.default.contentsOfDirectory(atPath: source.path).first { $0.hasSuffix(".tar.gz") })
        #expect(try registry.l3af(["publish", source.appending(path: tarball).path]).status == 0)
    }

    /// /api/v1/health answers 200 while more than a quarter of the index's lifetime is left, then 503 with a reason.
    @Test func healthFailsWhenTheIndexNearsExpiry() async throws {
        // An 8 s lifetime and no re-sign check for a day: the index has 2 s (a quarter) left after 6 s.
        let registry = try RegistryHarness(serveArguments: ["--index-ttl", "8", "--refresh-interval", "86400"])
        let healthy = try await registry.http("/api/v1/health")
        #expect(healthy.status == 200, "\(String(decoding: healthy.body, as: UTF8.self))")
        try await Task.sleep(for: .seconds(7))
        let failing = try await registry.http("/api/v1/health")
        let body = String(decoding: failing.body, as: UTF8.self)
        #expect(failing.status == 503, "\(body)")
        let error = (try JSONSerialization.jsonObject(with: Data(failing.body)) as? [String: Any])?["error"] as? [String: Any]
        #expect(error?["code"] as? String == "index-near-expiry", "\(body)")
        #expect((error?["message"] as? String)?.contains("expires in") == true, "\(body)")
    }
}
