// bench/chain's in-process half: builds l3af chains with ChainEngine on an interface and times them with
// BPF_PROG_TEST_RUN and a clock. Run by bench/chain (inside the bench's network namespace), which prints the table.
//
// usage: l3af-bench-chain OBJECTS_FOLDER INTERFACE PIN_ROOT REPEAT ROUNDS
// prints lines `key value…` (nanoseconds per packet, milliseconds per change).
import Dispatch
import Foundation
import L3AFBPF
import L3AFModel
import L3AFRuntime
import Synchronization

let arguments = CommandLine.arguments
guard arguments.count == 6, let repeatCount = Int(arguments[4]), let rounds = Int(arguments[5]) else {
    FileHandle.standardError.write(Data("usage: l3af-bench-chain OBJECTS INTERFACE PIN_ROOT REPEAT ROUNDS\n".utf8))
    exit(2)
}
let objects = arguments[1], interface = arguments[2], pinRoot = arguments[3]

func member(_ name: String, object: String, version: String = "1.0.0", seq: Int) -> ChainMember {
    let program = Manifest.Program(hook: .xdpIngress, objectFile: (object as NSString).lastPathComponent, entryFunction: "pass", nextMap: "pass_next")
    return ChainMember(package: name, version: version, program: program, objectPath: "\(objects)/\(object)", seqID: seq)
}
let root = ChainMember(
    package: "xdp-root", version: "1.0.0",
    program: Manifest.Program(hook: .xdpIngress, objectFile: "xdp_root.bpf.o", entryFunction: "xdp_root", nextMap: "xdp_root_array"),
    objectPath: "\(objects)/xdp_root.bpf.o")
let engine = ChainEngine(pinRoot: pinRoot, roots: [.xdpIngress: root])

/// A 64-byte IPv4/UDP frame.
let packet: [UInt8] = {
    var frame = [UInt8](repeating: 0, count: 64)
    frame[12] = 0x08; frame[14] = 0x45; frame[23] = 17
    return frame
}()

@Sendable func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
func milliseconds(_ ns: UInt64) -> Double { Double(ns) / 1e6 }
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
func percentile(_ values: [Double], _ p: Double) -> Double { values.sorted()[min(values.count - 1, Int(Double(values.count) * p))] }
func show(_ key: String, _ values: Double...) { print(key, values.map { String(format: "%.4f", $0) }.joined(separator: " ")) }

func rootProgram() throws -> BPFDescriptor { try BPFDescriptor.pinned(at: "\(pinRoot)/\(interface)/xdp_ingress/root/prog") }

/// Mean time per packet over `repeatCount` runs, the median of 5 such measurements.
func perPacket(_ program: BPFDescriptor) throws -> Double {
    var samples: [Double] = []
    for _ in 0..<5 { samples.append(Double(try BPFTestRun.run(program, packet: packet, repeat: repeatCount).nanosecondsPerRun)) }
    return median(samples)
}

/// What the watcher thread last saw: the tag in the packet and when it changed.
final class Watch: Sendable {
    let tag = Atomic<UInt8>(0)
    let at = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
}

do {
    // (1) Per-packet cost: the root plus 1, 4 and 10 pass-through members, and the pass program alone.
    let alone = try BPFLoader.load(objectAt: "\(objects)/xdp_pass_alone.bpf.o", entry: "xdp_pass_alone")
    show("cost_alone", try perPacket(alone.program))
    var length = 0
    for target in [1, 4, 10] {
        while length < target {
            try engine.insert(member("pass-\(length)", object: "pass.bpf.o", seq: length), interface: interface, hook: .xdpIngress)
            length += 1
        }
        show("cost_chain_\(target)", try perPacket(try rootProgram()))
    }
    print("root_id", try engine.rootProgramID(interface: interface, hook: .xdpIngress) ?? 0)

    // (2) Insert and remove one program in a 10-program chain (9 + 1), in the middle: load, verify, link, flip.
    try engine.remove(package: "pass-9", interface: interface, hook: .xdpIngress)
    var inserts: [Double] = [], removes: [Double] = []
    for _ in 0..<rounds {
        var start = now()
        try engine.insert(member("extra", object: "pass.bpf.o", seq: 4), interface: interface, hook: .xdpIngress)
        inserts.append(milliseconds(now() - start))
        start = now()
        try engine.remove(package: "extra", interface: interface, hook: .xdpIngress)
        removes.append(milliseconds(now() - start))
    }
    show("insert_ms", median(inserts), percentile(inserts, 0.9))
    show("remove_ms", median(removes), percentile(removes, 0.9))

    // (3) Replace one program of a 10-program chain between two versions, and when traffic sees the new one:
    // a thread test-runs the root in a loop and notes when the tag the program writes into the packet changes.
    try engine.insert(member("tagged", object: "tag1.bpf.o", version: "1.0.0", seq: 4), interface: interface, hook: .xdpIngress)
    let runner = try rootProgram()
    let watch = Watch()
    let frame = packet
    let watcher = Thread {
        while !watch.stop.load(ordering: .relaxed) {
            guard let result = try? BPFTestRun.run(runner, packet: frame) else { continue }
            let tag = result.packet[63]
            if tag != watch.tag.load(ordering: .relaxed) {
                watch.at.store(now(), ordering: .relaxed)
                watch.tag.store(tag, ordering: .releasing)
            }
        }
    }
    watcher.start()
    while watch.tag.load(ordering: .acquiring) != 1 { usleep(100) }
    var replaces: [Double] = [], visible: [Double] = []
    for round in 0..<rounds {
        let (version, object, tag): (String, String, UInt8) = round % 2 == 0 ? ("2.0.0", "tag2.bpf.o", 2) : ("1.0.0", "tag1.bpf.o", 1)
        let start = now()
        try engine.replace(package: "tagged", with: member("tagged", object: object, version: version, seq: 4), interface: interface, hook: .xdpIngress)
        replaces.append(milliseconds(now() - start))
        while watch.tag.load(ordering: .acquiring) != tag { usleep(20) }
        visible.append(milliseconds(watch.at.load(ordering: .relaxed) - start))
    }
    watch.stop.store(true, ordering: .relaxed)
    show("replace_ms", median(replaces), percentile(replaces, 0.9))
    show("visible_ms", median(visible), percentile(visible, 0.9), visible.max()!)

    for entry in try engine.chain(interface: interface, hook: .xdpIngress) {
        try engine.remove(package: entry.package, interface: interface, hook: .xdpIngress)
    }
} catch {
    FileHandle.standardError.write(Data("l3af-bench-chain: \(error)\n".utf8))
    exit(1)
}
