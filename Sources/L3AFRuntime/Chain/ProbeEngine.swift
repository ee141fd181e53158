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

    var folderName: String { "\(interface)/\(package)/\(version.replacingOccurrences(of: ".", with: "_"))" }
}

/// The probes a host runs, pinned under `<pinRoot>/probes/<interface>/<package>/<version_>/` (`link`, and the maps under
/// `maps/`), so a new process finds them. Stateless like ``ChainEngine``; changed only under the host lock.
public struct ProbeEngine: Sendable {
    public let pinRoot: String

    public init(pinRoot: String) { self.pinRoot = pinRoot }

    var base: String { "\(pinRoot)/probes" }

    /// What runs: `interface/package/version_` folders with a link, and the id of the program each link runs.
    public func running() -> [String: UInt32] {
        let fm = FileManager.default
        var found: [String: UInt32] = [:]
        for interface in (try? fm.contentsOfDirectory(atPath: base)) ?? [] {
            for package in (try? fm.contentsOfDirectory(atPath: "\(base)/\(interface)")) ?? [] {
                for version in (try? fm.contentsOfDirectory(atPath: "\(base)/\(interface)/\(package)")) ?? [] where !version.hasPrefix("staging-") {
                    let folder = "\(interface)/\(package)/\(version)"
                    if let id = BPFAttachment.linkProgramID(pin: "\(base)/\(folder)/link") { found[folder] = id }
                }
            }
        }
        return found
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
                throw ChainError(.load, "the probe \(member.package)@\(member.version) did not attach: \(error.description)", hint: "nothing was changed")
            }
            try? fm.removeItem(atPath: target)
            guard rename(staging, target) == 0 else {
                detach(staging)
                throw ChainError(.kernel, "renaming \(staging) to \(target): \(String(cString: strerror(errno)))")
            }
        }
        for folder in running.keys where !wanted.contains(folder) { detach("\(base)/\(folder)") }
        // Half-made folders (a change cut short) and empty parents.
        for interface in (try? fm.contentsOfDirectory(atPath: base)) ?? [] {
            for package in (try? fm.contentsOfDirectory(atPath: "\(base)/\(interface)")) ?? [] {
                let path = "\(base)/\(interface)/\(package)"
                for version in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where !wanted.contains("\(interface)/\(package)/\(version)") {
                    detach("\(path)/\(version)")
                }
                if (try? fm.contentsOfDirectory(atPath: path))?.isEmpty == true { rmdir(path) }
            }
            if (try? fm.contentsOfDirectory(atPath: "\(base)/\(interface)"))?.isEmpty == true { rmdir("\(base)/\(interface)") }
        }
    }

    /// Detaches the link in `folder` now (not when the kernel gets to freeing it) and removes the folder.
    private func detach(_ folder: String) {
        try? BPFAttachment.detachLink(pin: "\(folder)/link")
        try? FileManager.default.removeItem(atPath: folder)
    }
}
