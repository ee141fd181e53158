import Foundation
import L3AFBPF
import L3AFModel

/// A tracing program attached on its own (l3afd's `probes`), as a change wants it: which package and version, the
/// interface whose payload carried it, its object and entry function.
public struct ProbeMember: Hashable, Sendable {
    public var interface: String
    public var package: String
    public var version: String
    public var objectPath: String
    public var entryFunction: String

    public init(interface: String, package: String, version: String, objectPath: String, entryFunction: String) {
        self.interface = interface
        self.package = package
        self.version = version
        self.objectPath = objectPath
        self.entryFunction = entryFunction
    }

    /// The interface segment of a probe that belongs to no interface (installed with `l3af install`, not carried by
    /// a payload): 16 characters, so no interface (15 at most) can have its name.
    public static let hostWide = "host-wide-probes"

    /// `<interface>/<package>/<version_>/<entry function>`, under `<pinRoot>/probes/`.
    public var folderName: String {
        "\(interface.isEmpty ? Self.hostWide : interface)/\(package)/\(version.replacingOccurrences(of: ".", with: "_"))/\(entryFunction)"
    }
}

/// The probes a host runs, pinned under `<pinRoot>/probes/<interface>/<package>/<version_>/<entry function>/` (`link`,
/// and the maps under `maps/`), so a new process finds them. Stateless like ``ChainEngine``; changed only under the
/// host lock.
public struct ProbeEngine: Sendable {
    public let pinRoot: String

    public init(pinRoot: String) { self.pinRoot = pinRoot }

    var base: String { "\(pinRoot)/probes" }

    /// Every probe folder (``ProbeMember/folderName``) under the base, staging ones included; with a smaller `depth`,
    /// the folders that hold them (`depth` 1: interfaces).
    private func folders(depth: Int = 4) -> [String] {
        var paths = [""]
        for _ in 0..<depth {
            paths = paths.flatMap { path in
                ((try? FileManager.default.contentsOfDirectory(atPath: "\(base)/\(path)")) ?? []).sorted().map { path.isEmpty ? $0 : "\(path)/\($0)" }
            }
        }
        return paths
    }

    /// What runs: folders with a link, and the id of the program each link runs.
    public func running() -> [String: UInt32] {
        var found: [String: UInt32] = [:]
        // A staging folder is where an entry function's folder would be (`<iface>/<package>/<version_>/staging-N`).
        for folder in folders() where !(folder.split(separator: "/").last?.hasPrefix("staging-") ?? false) {
            if let id = BPFAttachment.linkProgramID(pin: "\(base)/\(folder)/link") { found[folder] = id }
        }
        return found
    }

    /// Entry `index` of the probe's map `map`, summed over CPUs.
    public func counter(_ map: String, index: Int, of member: ProbeMember) throws(ChainError) -> UInt64 {
        do {
            return try BPFMapAccess(try BPFDescriptor.pinned(at: "\(base)/\(member.folderName)/maps/\(map)"), name: map).counter(key: index)
        } catch {
            throw ChainError(.kernel, "the map \(map) of the probe \(member.package)@\(member.version): \(error.description)")
        }
    }

    /// Makes the probes exactly `desired`: new ones attached first (staged, then renamed into place), then the ones no
    /// longer wanted detached and unpinned, along with anything half made.
    public func apply(_ desired: [ProbeMember]) throws(ChainError) {
        let fm = FileManager.default
        let running = running()
        let wanted = Set(desired.map(\.folderName))
        for member in desired where running[member.folderName] == nil {
            let target = "\(base)/\(member.folderName)"
            let staging = "\((target as NSString).deletingLastPathComponent)/staging-\(UInt32.random(in: 0...UInt32.max))"
            do { try fm.createDirectory(atPath: staging, withIntermediateDirectories: true) } catch {
                throw ChainError(.kernel, "creating \(staging): \(error)", hint: "is a bpf file system mounted at \(pinRoot)?")
            }
            do {
                _ = try BPFProbe.attach(objectAt: member.objectPath, entry: member.entryFunction, folder: staging)
            } catch {
                detach(staging)
                throw ChainError(.load, "the probe \(member.package)@\(member.version) (\(member.entryFunction)) did not attach: \(error.description)",
                                 hint: "nothing was changed")
            }
            try? fm.removeItem(atPath: target)
            guard rename(staging, target) == 0 else {
                detach(staging)
                throw ChainError(.kernel, "renaming \(staging) to \(target): \(String(cString: strerror(errno)))")
            }
        }
        // What is no longer wanted, and half-made folders (a change cut short): detached; then empty parents removed.
        for folder in folders() where !wanted.contains(folder) { detach("\(base)/\(folder)") }
        for depth in [3, 2, 1] {
            for parent in folders(depth: depth) where (try? fm.contentsOfDirectory(atPath: "\(base)/\(parent)"))?.isEmpty == true { rmdir("\(base)/\(parent)") }
        }
    }

    /// Detaches the link in `folder` now (not when the kernel gets to freeing it) and removes the folder.
    private func detach(_ folder: String) {
        try? BPFAttachment.detachLink(pin: "\(folder)/link")
        try? FileManager.default.removeItem(atPath: folder)
    }
}
