import Foundation
import L3AFArchive
import L3AFBPF
@testable import L3AFDaemon
import L3AFModel
import L3AFPackage
import L3AFTestSupport
import Testing

/// Mutation fuzzing of every parser that reads input from outside: tar and zip through libarchive, package inspection
/// (the registry's publish path: archive, manifest, libbpf on the objects), BPF objects alone, l3afd payloads,
/// manifests, and the HTTP header values the servers and the client parse. Each target starts from its corpus in
/// `Tests/Fuzz/corpus/<target>/` and runs mutations (bit flips, byte edits, truncation, splicing, repeats) for
/// `L3AF_FUZZ_SECONDS` seconds (default 2; `scripts/fuzz` runs longer). Errors are the expected outcome; a crash, a
/// trap or a hang is a bug. The input under test is written to `/tmp/l3af-fuzz-<target>.current` first, so a crash
/// leaves it behind to add to the corpus once fixed.
@Suite struct FuzzTests {
    static let seconds = ProcessInfo.processInfo.environment["L3AF_FUZZ_SECONDS"].flatMap(Double.init) ?? 2
    static let corpusRoot = Fixtures.repositoryRoot.appending(path: "Tests/Fuzz/corpus")

    static func corpus(_ target: String) -> [[UInt8]] {
        let folder = corpusRoot.appending(path: target).path
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted().compactMap {
            FileManager.default.contents(atPath: "\(folder)/\($0)").map(Array.init)
        }
    }

    /// Runs `body` on every seed, then on mutations of them until the time is up; returns how many inputs ran.
    @discardableResult
    static func fuzz(_ target: String, seeds: [[UInt8]], _ body: ([UInt8]) -> Void) -> Int {
        #expect(!seeds.isEmpty, "\(target) has a corpus")
        var random = SystemRandomNumberGenerator()
        let current = "/tmp/l3af-fuzz-\(target).current"
        func run(_ input: [UInt8]) {
            FileManager.default.createFile(atPath: current, contents: Data(input))
            body(input)
        }
        for seed in seeds { run(seed) }
        let deadline = Date().addingTimeInterval(seconds)
        var count = seeds.count
        while Date() < deadline {
            var input = seeds.randomElement(using: &random)!
            for _ in 0..<Int.random(in: 1...8, using: &random) { input = mutate(input, seeds: seeds, using: &random) }
            run(input)
            count += 1
        }
        unlink(current)
        print("fuzz \(target): \(count) inputs in \(seconds) s")
        return count
    }

    static func mutate(_ input: [UInt8], seeds: [[UInt8]], using random: inout SystemRandomNumberGenerator) -> [UInt8] {
        var bytes = input
        let interesting: [UInt8] = [0, 0x7f, 0x80, 0xff, UInt8(ascii: "/"), UInt8(ascii: "."), UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "\"")]
        switch Int.random(in: 0..<7, using: &random) {
        case 0 where !bytes.isEmpty:
            let i = Int.random(in: 0..<bytes.count, using: &random)
            bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        case 1 where !bytes.isEmpty:
            bytes[Int.random(in: 0..<bytes.count, using: &random)] = interesting.randomElement(using: &random)!
        case 2:
            bytes.insert(interesting.randomElement(using: &random)!, at: Int.random(in: 0...bytes.count, using: &random))
        case 3 where !bytes.isEmpty:
            bytes.remove(at: Int.random(in: 0..<bytes.count, using: &random))
        case 4:
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
        case 5:
            let other = seeds.randomElement(using: &random)!
            let cut = Int.random(in: 0...bytes.count, using: &random)
            bytes = Array(bytes.prefix(cut)) + other.suffix(Int.random(in: 0...other.count, using: &random))
        default:
            guard !bytes.isEmpty else { break }
            let start = Int.random(in: 0..<bytes.count, using: &random)
            let chunk = bytes[start..<min(bytes.count, start + Int.random(in: 1...64, using: &random))]
            for _ in 0..<Int.random(in: 1...16, using: &random) { bytes.insert(contentsOf: chunk, at: start) }
        }
        return bytes
    }

    /// The corpus holds each tar seed gzip'd and plain, so mutations reach the tar headers, not only gzip's CRC.
    static func tarSeeds() throws -> [[UInt8]] { corpus("tar") }

    @Test func tarArchives() throws {
        Self.fuzz("tar", seeds: try Self.tarSeeds()) { input in _ = try? ArchiveReader.entries(of: input, name: "fuzz") }
    }

    @Test func zipArchives() {
        Self.fuzz("zip", seeds: Self.corpus("zip")) { input in _ = try? ArchiveReader.entries(of: input, name: "fuzz", limits: ArchiveLimits(allowZip: true)) }
    }

    @Test func publishedPackagesAsTheRegistryInspectsThem() throws {
        let seeds = [try Fixtures.xdpRootPackage(version: "1.0.0")] + (try Self.tarSeeds())
        Self.fuzz("package", seeds: seeds) { input in _ = try? PackageInspector.inspect(input, name: "fuzz") }
    }

    @Test func bpfObjects() throws {
        let object = try Fixtures.compileBPF("registry/xdp-root/xdp_root.bpf.c")
        let program = Manifest.Program(hook: .xdpIngress, objectFile: "xdp_root.bpf.o", entryFunction: "xdp_root", nextMap: "xdp_root_next")
        Self.fuzz("elf", seeds: [object]) { input in
            if let opened = try? BPFObjectFile(bytes: input, name: "fuzz.bpf.o") { _ = opened.problems(for: program) }
        }
    }

    /// Inputs the fuzzer found that crashed a library (`Tests/Fuzz/crashes/`): each is refused now, in-process.
    @Test func earlierCrashesAreRefused() throws {
        let folder = Fixtures.repositoryRoot.appending(path: "Tests/Fuzz/crashes").path
        let program = Manifest.Program(hook: .xdpIngress, objectFile: "xdp_root.bpf.o", entryFunction: "xdp_root", nextMap: "xdp_root_next")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted().filter { $0.hasPrefix("elf-") }
        #expect(!names.isEmpty, "the crashes are in the repository")
        for name in names {
            let bytes = Array(try #require(FileManager.default.contents(atPath: "\(folder)/\(name)")))
            #expect(throws: BPFError.self, "\(name)") { _ = try BPFObjectFile(bytes: bytes, name: name).problems(for: program) }
        }
    }

    @Test func l3afdPayloads() {
        Self.fuzz("payload", seeds: Self.corpus("payload")) { input in
            if let payloads = try? DocumentDecoder.decode([L3afBPFPrograms].self, from: input, document: "fuzz") {
                _ = payloads.flatMap { $0.problems() }
            }
            _ = try? DocumentDecoder.decode([L3afBPFProgramNames].self, from: input, document: "fuzz")
        }
    }

    @Test func manifests() {
        Self.fuzz("manifest", seeds: Self.corpus("manifest")) { input in _ = try? DocumentDecoder.decode(Manifest.self, from: input, document: "fuzz") }
    }

    @Test func headerValues() {
        let policy = AccessPolicy(hostNames: ["node-1"], token: "t", sanRules: ["ops-[0-9]+\\.example"])
        Self.fuzz("header", seeds: Self.corpus("header")) { input in
            let text = String(decoding: input, as: UTF8.self)
            _ = ByteRange.parse(text, size: 1000)
            _ = ByteRange.parse(text, size: 0)
            _ = RetryAfter.seconds(text, limit: 30)
            _ = BoundedInteger.parse(text, in: Int.min...Int.max)
            _ = policy.hostProblem(text)
            _ = policy.matchingSAN([text])
        }
    }
}
