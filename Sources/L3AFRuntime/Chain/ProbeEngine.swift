import Foundation
import L3AFBPF
import L3AFModel

/// A tracing program attached on its own (l3afd's `probes`), as a change wants it: which package and version, the
/// interface whose payload carried it, its object and entry function. The probes of one object are loaded together,
/// so they share its maps (a kprobe and its kretprobe counting into one map).
public struct ProbeMember: Hashable, Sendable {
    public var interface: String
    public var package: String
    public var version: String
    public var objectPath: String
    public var entryFunction: String
    /// Every tracing program of the object is attached, not only the entry function: a payload's probe, as l3afd loads
    /// one. A manifest names each of its probes.
    public var everyProgram: Bool

    public init(interface: String, package: String, version: String, objectPath: String, entryFunction: String, everyProgram: Bool = false) {
        self.interface = interface
        self.package = package
        self.version = version
        self.objectPath = objectPath
        self.entryFunction = entryFunction
        self.everyProgram = everyProgram
    }

    /// The interface segment of a probe that belongs to no interface (installed with `l3af install`, not carried by
    /// a payload): 16 characters, so no interface (15 at most) can have its name.
    public static let hostWide = "host-wide-probes"

    /// `<interface>/<package>/<version_>/<object_>`, under `<pinRoot>/probes/`: one load of the object, its maps under
    /// `maps/` (bpffs names have no dots: `1.0.0` is `1_0_0`, `counter.bpf.o` is `counter_bpf_o`).
    public var objectFolder: String {
        "\(interface.isEmpty ? Self.hostWide : interface)/\(package)/\(PinName.of(version))/\(PinName.of((objectPath as NSString).lastPathComponent))"
    }

    /// `<object folder>/<entry function>`: where its link is pinned (`link`).
    public var folderName: String { "\(objectFolder)/\(entryFunction)" }
}

/// The probes a host runs, pinned under `<pinRoot>/probes/<interface>/<package>/<version_>/<object_>/` (a folder per
/// attached function holding its `link`, and the object's maps under `maps/`), so a new process finds them.
/// Stateless like ``ChainEngine``; changed only under the host lock.
public struct ProbeEngine: Sendable {
    public let pinRoot: String

    public init(pinRoot: String) { self.pinRoot = pinRoot }

    var base: String { "\(pinRoot)/probes" }

    /// The folders `depth` levels under the base (4: the object folders).
    private func folders(depth: Int) -> [String] {
        var paths = [""]
        for _ in 0..<depth {
            paths = paths.flatMap { path in
                ((try? FileManager.default.contentsOfDirectory(atPath: "\(base)/\(path)")) ?? []).sorted().map { path.isEmpty ? $0 : "\(path)/\($0)" }
            }
        }
        return paths
    }

    /// What runs: ``ProbeMember/folderName``s with a link, and the id of the program each link runs.
    public func running() -> [String: UInt32] {
        var found: [String: UInt32] = [:]
        for object in folders(depth: 4) where !Self.isStaging(object) {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "\(base)/\(object)")) ?? [] where entry != "maps" {
                if let id = BPFAttachment.linkProgramID(pin: "\(base)/\(object)/\(entry)/link") { found["\(object)/\(entry)"] = id }
            }
        }
        return found
    }

    /// A staging folder is where an object folder would be (`<iface>/<package>/<version_>/staging-N`).
    private static func isStaging(_ folder: String) -> Bool { folder.split(separator: "/").last?.hasPrefix("staging-") ?? false }

    /// Entry `index` of the probe's map `map` (its object's), summed over CPUs.
    public func counter(_ map: String, index: Int, of member: ProbeMember) throws(ChainError) -> UInt64 {
        do {
            return try BPFMapAccess(try BPFDescriptor.pinned(at: "\(base)/\(member.objectFolder)/maps/\(map)"), name: map).counter(key: index)
        } catch {
            throw ChainError(.kernel, "the map \(map) of the probe \(member.package)@\(member.version): \(error.description)")
        }
    }

    /// Makes the probes exactly `desired`: each object with a wanted function not attached is loaded once more with all
    /// its wanted functions (staged, then renamed into place); then objects no longer wanted are detached and
    /// unpinned, along with anything half made.
    public func apply(_ desired: [ProbeMember]) throws(ChainError) {
        let fm = FileManager.default
        let running = running()
        let objects = Dictionary(grouping: desired, by: \.objectFolder)
        for (object, members) in objects.sorted(by: { $0.key < $1.key }) where members.contains(where: { running[$0.folderName] == nil }) {
            let target = "\(base)/\(object)"
            let staging = "\((target as NSString).deletingLastPathComponent)/staging-\(UInt32.random(in: 0...UInt32.max))"
            do { try fm.createDirectory(atPath: staging, withIntermediateDirectories: true) } catch {
                throw ChainError(.kernel, "creating \(staging): \(error)", hint: "is a bpf file system mounted at \(pinRoot)?")
            }
            let first = members[0]
            do {
                try BPFProbe.attach(objectAt: first.objectPath, entries: Array(Set(members.map(\.entryFunction))).sorted(),
                                        everyProbe: members.contains(where: \.everyProgram), folder: staging)
            } catch {
                detach(staging)
                throw ChainError(.load, "the probes of \(first.package)@\(first.version) (\((first.objectPath as NSString).lastPathComponent)) did not attach: \(error.description)",
                                 hint: "nothing was changed")
            }
            // What an earlier load left here (a function missing after a crash) goes: one load, one set of maps.
            if fm.fileExists(atPath: target) { detach(target) }
            guard rename(staging, target) == 0 else {
                detach(staging)
                throw ChainError(.kernel, "renaming \(staging) to \(target): \(String(cString: strerror(errno)))")
            }
        }
        // Objects no longer wanted, and half-made folders (a change cut short): detached; then empty parents removed.
        for object in folders(depth: 4) where objects[object] == nil { detach("\(base)/\(object)") }
        for depth in [3, 2, 1] {
            // rmdir(2) leaves a folder that isn't empty.
            for parent in folders(depth: depth) { rmdir("\(base)/\(parent)") }
        }
    }

    /// Detaches every link in an object's `folder` now (not when the kernel gets to freeing them) and removes it.
    private func detach(_ folder: String) {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where entry != "maps" {
            try? BPFAttachment.detachLink(pin: "\(folder)/\(entry)/link")
        }
        try? FileManager.default.removeItem(atPath: folder)
    }
}
