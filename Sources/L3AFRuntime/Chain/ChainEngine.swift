import CLinux
import Foundation
import L3AFBPF
import L3AFModel

/// Programs on an interface, chained per hook behind a root program, changed one atomic prog-array update at a
/// time. Stateless between calls: every operation reads the chain back from the kernel and the pins under
/// `<pinRoot>/<interface>/<hook>/`, so a new process adopts what an earlier one left. Callers serialize
/// operations on one host (the lifecycle layer holds a lock).
///
/// Pins: `root/` and `<package>/<version>/`, each holding `prog`, `next` (its next map, the link a chain walk
/// follows) and every named map of its object under `maps/`; the root's also holds the XDP `link`, a member's a
/// `seq_<n>` folder recording its seq_id and a `params_<digest>` folder recording its parameters. bpffs refuses names with a dot,
/// so the version folder writes `1.2.0` as `1_2_0` (SemVer never uses `_`), and libbpf's internal maps
/// (`.rodata`, `.bss`) are not pinned. A member being staged lives in `<package>/staging-<version>-<random>/`
/// until its flip is done.
///
/// Reads (`chain`, `map`, `rootProgramID`, `leftovers`) never change a pin: any process may read at any time, even
/// while a writer stages. What an interrupted change left (a staging folder the chain runs, pins no walk reaches) is
/// cleaned by `repair` and by the changing operations, which run under the host lock.
public struct ChainEngine: Sendable {
    /// The kernel's tail-call limit is 33 per packet; the root's call into the chain is one of them.
    public static let maximumLength = 32

    public let pinRoot: String
    /// The root program of each hook (`xdp-root`, `tc-root`).
    public let roots: [Hook: ChainMember]
    /// l3afd's `BpfMapDefaultPath`: every member's maps are pinned again where l3afd pins them,
    /// `<mapRoot>/<interface>/<package>/<version_>/<map>` (TC: under `<mapRoot>/tc/globals/`), and maps its object
    /// declares `LIBBPF_PIN_BY_NAME` are pinned (or found) there, so programs and tools written for l3afd find them.
    /// By default the pin root's parent (`/sys/fs/bpf` for `/sys/fs/bpf/l3af`). Only with ``l3afdMapPins``.
    public let mapRoot: String
    /// Whether maps are pinned again where l3afd pins them (an L3AF deployment: l3afd.cfg). Off, nothing is pinned
    /// outside the pin root, maps declared `LIBBPF_PIN_BY_NAME` included, and a chain step costs no extra reads.
    public let l3afdMapPins: Bool
    /// `false` (l3afd's `bpf-chaining-enabled: false`): `apply` runs at most one program per hook, attached directly
    /// (XDP through a pinned link swapped with `bpf_link_update`, TC through l3af's filter, replaced), with no root.
    public let chaining: Bool
    /// Told each step a change makes (``ChainStep``), as it is made.
    public var journal: (@Sendable (ChainStep) -> Void)?

    public init(pinRoot: String = "/sys/fs/bpf/l3af", roots: [Hook: ChainMember], mapRoot: String? = nil, chaining: Bool = true,
                l3afdMapPins: Bool = false) {
        BPFLog.routeByDefault()
        self.pinRoot = pinRoot
        self.roots = roots
        self.l3afdMapPins = l3afdMapPins
        self.mapRoot = mapRoot ?? Self.defaultMapRoot(pinRoot: pinRoot)
        self.chaining = chaining
    }

    // MARK: Reading the chain

    /// The chain on `hook` of `interface`, first to last, as the kernel runs it. Changes nothing.
    public func chain(interface: String, hook: Hook) throws(ChainError) -> [ChainEntry] {
        try settledRead(interface, hook).members.map(\.entry)
    }

    /// Every hook of every interface with pins under the pin root.
    public func pinnedHooks() -> [(interface: String, hook: Hook)] {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: pinRoot)) ?? []).sorted().flatMap { interface in
            Hook.allCases.filter { fm.fileExists(atPath: hookFolder(interface, $0)) }.map { (interface, $0) }
        }
    }

    /// What an interrupted change left under `hook` of `interface`, which `repair` would clean. Changes nothing.
    public func leftovers(interface: String, hook: Hook) throws(ChainError) -> Leftovers {
        try settledRead(interface, hook).leftovers
    }

    /// The id of the root program attached to `hook` of `interface`, or `nil` when there is no chain.
    public func rootProgramID(interface: String, hook: Hook) throws(ChainError) -> UInt32? {
        let folder = "\(hookFolder(interface, hook))/root"
        guard let root = try? BPFDescriptor.pinned(at: "\(folder)/prog") else { return nil }
        return try kernel { () throws(BPFError) in try root.programID() }
    }

    /// Access to `map` of the member `package` (its pinned copy), for parameters and metrics.
    /// Changes nothing; a member renamed by a writer between the walk and the open is read again.
    public func map(_ map: String, of package: String, interface: String, hook: Hook) throws(ChainError) -> BPFMapAccess {
        guard let access = try maps([map], of: package, interface: interface, hook: hook)[map] else {
            throw ChainError(.kernel, "\(package) has no pinned map \(map)")
        }
        return try access.get()
    }

    /// Access to each of `names` among the maps of the member `package`, with one walk of the chain (a map that can't be
    /// opened is its error; a member a writer renamed between the walk and the opens is walked again).
    public func maps(_ names: [String], of package: String, interface: String, hook: Hook) throws(ChainError) -> [String: Result<BPFMapAccess, ChainError>] {
        var attempt = 0
        while true {
            let state = try settledRead(interface, hook)
            guard let member = state.members.first(where: { $0.entry.package == package }) else {
                throw ChainError(.notInChain, "\(package) is not in the \(hook) chain of \(interface)")
            }
            var found: [String: Result<BPFMapAccess, ChainError>] = [:]
            for name in names {
                found[name] = Result { () throws(ChainError) in
                    try kernel { () throws(BPFError) in BPFMapAccess(try BPFDescriptor.pinned(at: "\(member.folder)/maps/\(name)"), name: name) }
                }
            }
            attempt += 1
            let failed = found.values.contains { if case .failure = $0 { true } else { false } }
            if !failed || attempt >= Self.readAttempts || FileManager.default.fileExists(atPath: member.folder) { return found }
        }
    }

    // MARK: Repairing (writers only)

    /// Finishes or clears what an interrupted change left under `hook` of `interface`: a staging folder the chain
    /// runs is renamed into place, pins no walk reaches are removed. For a writer holding the host lock; returns
    /// what it cleaned.
    @discardableResult
    public func repair(interface: String, hook: Hook) throws(ChainError) -> Leftovers {
        var state = try settledRead(interface, hook)
        let leftovers = state.leftovers
        clean(&state, interface, hook)
        return leftovers
    }

    // MARK: Changing the chain

    /// Adds `member` at its seq_id (after every member with a lower or equal one).
    public func insert(_ member: ChainMember, interface: String, hook: Hook) throws(ChainError) {
        let before = l3afdMapPins ? mapPinsBefore(interface, hook) : []
        defer { if l3afdMapPins { syncMapPins(interface, hook, before: before) } }
        try check(member, hook)
        var state = try readForChange(interface, hook)
        try requireChained(state, interface, hook)
        if state.members.contains(where: { $0.entry.package == member.package }) {
            throw ChainError(.alreadyInChain, "\(member.package) is already in the \(hook) chain of \(interface)", hint: "replace it with another version instead")
        }
        guard state.members.count < Self.maximumLength else {
            throw ChainError(.tooLong, "the \(hook) chain of \(interface) already has \(Self.maximumLength) programs, the most a packet can pass through",
                             hint: "the kernel allows 33 tail calls per packet, one of them the root's; remove a program first")
        }
        let position = state.members.firstIndex { $0.entry.seqID > member.seqID } ?? state.members.count
        let staged = try stage(member, interface, hook, reuse: [:], successor: state.program(at: position))
        do throws(ChainError) { try ensureRoot(&state, interface, hook) } catch {
            abandon(staged)
            throw error
        }
        try flip(predecessor: state.predecessor(of: position)!, to: staged.loaded.program, abandoning: staged)
        try finish(staged)
        note(.insert, interface, hook, ["\(member.package)@\(member.version)"], flips: state.predecessorName(of: position),
             written: [memberFolder(interface, hook, member.package, member.version)])
    }

    /// Takes `package` out of the chain; the root goes when the last program does, unless `keepingRoot` (others are
    /// about to join).
    public func remove(package: String, interface: String, hook: Hook, keepingRoot: Bool = false) throws(ChainError) {
        let before = l3afdMapPins ? mapPinsBefore(interface, hook) : []
        defer { if l3afdMapPins { syncMapPins(interface, hook, before: before) } }
        let state = try readForChange(interface, hook)
        try requireChained(state, interface, hook)
        guard let position = state.members.firstIndex(where: { $0.entry.package == package }) else {
            throw ChainError(.notInChain, "\(package) is not in the \(hook) chain of \(interface)")
        }
        let predecessor = state.predecessor(of: position)!, successor = state.program(at: position + 1)
        try kernel { () throws(BPFError) in
            if let successor { try predecessor.setProgram(successor) } else { try predecessor.clearProgram() }
        }
        removePins(state.members[position].folder, pruneParent: true)
        removeInlet(interface, hook, package)
        let gone = state.members[position].entry
        note(.remove, interface, hook, ["\(gone.package)@\(gone.version)"], flips: state.predecessorName(of: position),
             removed: [memberFolder(interface, hook, gone.package, gone.version)])
        if state.members.count == 1, !keepingRoot { try removeRoot(interface, hook) }
    }

    /// Swaps the member `package` for `member` (another version, or the same with new parameters), in one flip.
    /// State maps the new manifest lists are carried over from the old program when both have them.
    /// A member whose program its user program loads has its user program started anew.
    public func replace(package: String, with member: ChainMember, interface: String, hook: Hook) throws(ChainError) {
        try replace(package: package, with: member, interface: interface, hook: hook, adopting: false)
    }

    /// Joins the program the user program of `member` put into its inlet since it joined (it was restarted) in place of
    /// the one the chain runs, in one flip; nothing is started or loaded. Returns whether there was one to join.
    public func adopt(_ member: ChainMember, interface: String, hook: Hook) throws(ChainError) -> Bool {
        guard member.selfLoad != nil else { return false }
        guard let entry = try entries(interface, hook).first(where: { $0.package == member.package }), entry.version == member.version else {
            throw ChainError(.notInChain, "\(member.package)@\(member.version) is not in the \(hook) chain of \(interface)")
        }
        guard let id = Self.inletProgramID(inletPath(interface, hook, member.package, member.version)), id != entry.programID else { return false }
        try replace(package: member.package, with: member, interface: interface, hook: hook, adopting: true)
        return true
    }

    private func replace(package: String, with member: ChainMember, interface: String, hook: Hook, adopting: Bool) throws(ChainError) {
        let before = l3afdMapPins ? mapPinsBefore(interface, hook) : []
        defer { if l3afdMapPins { syncMapPins(interface, hook, before: before) } }
        try check(member, hook)
        let state = try readForChange(interface, hook)
        try requireChained(state, interface, hook)
        guard let position = state.members.firstIndex(where: { $0.entry.package == package }) else {
            throw ChainError(.notInChain, "\(package) is not in the \(hook) chain of \(interface)")
        }
        let old = state.members[position]
        var reuse: [String: BPFDescriptor] = [:]
        for name in member.program.stateMaps {
            if let descriptor = try? BPFDescriptor.pinned(at: "\(old.folder)/maps/\(name)") { reuse[name] = descriptor }
        }
        let staged = try stage(member, interface, hook, reuse: reuse, successor: state.program(at: position + 1), seqID: old.entry.seqID, adopting: adopting)
        try flip(predecessor: state.predecessor(of: position)!, to: staged.loaded.program, abandoning: staged)
        removePins(old.folder, pruneParent: old.entry.package != member.package)
        if old.entry.version != member.version || old.entry.package != member.package { unlink(inletPath(interface, hook, old.entry.package, old.entry.version)) }
        try finish(staged)
        let sameFolder = old.entry.package == member.package && old.entry.version == member.version
        note(adopting ? .adopt : .replace, interface, hook, ["\(old.entry.package)@\(old.entry.version)", "\(member.package)@\(member.version)"],
             flips: state.predecessorName(of: position), written: [memberFolder(interface, hook, member.package, member.version)],
             removed: sameFolder ? [] : [memberFolder(interface, hook, old.entry.package, old.entry.version)])
    }

    /// Makes the chain exactly `desired` (ordered by seq_id): members not wanted are removed, new ones inserted,
    /// ones whose version, parameters or object changed replaced. Each step is one flip; the chain is valid
    /// after every step.
    public func apply(_ desired: [ChainMember], interface: String, hook: Hook) throws(ChainError) {
        let before = l3afdMapPins ? mapPinsBefore(interface, hook) : []
        defer { if l3afdMapPins { syncMapPins(interface, hook, before: before) } }
        // A hook run the other way (the setting changed) is taken down first: for a moment nothing runs there.
        guard chaining else { return try applyAlone(desired, interface: interface, hook: hook) }
        // A program left alone when chaining was off is taken down first: for a moment nothing runs there.
        let start = try settledRead(interface, hook)
        if start.alone {
            for member in desired { try check(member, hook) }
            try takeDown(interface, hook)
            note(.detach, interface, hook, start.members.map { "\($0.entry.package)@\($0.entry.version)" }, removed: [hookFolder(interface, hook)])
        }
        let wanted = desired.sorted { $0.seqID < $1.seqID }
        let names = Set(wanted.map(\.package))
        // The root stays while programs are wanted: a hook emptied and filled in one apply never loses it.
        for entry in try entries(interface, hook) where !names.contains(entry.package) {
            try remove(package: entry.package, interface: interface, hook: hook, keepingRoot: !wanted.isEmpty)
        }
        let order = try entries(interface, hook).map(\.package)
        // Members out of order are staged again from the first that is; those before it may still change version.
        if order != wanted.map(\.package).filter({ order.contains($0) }) {
            try reorder(wanted, interface: interface, hook: hook)
        }
        for member in wanted {
            let current = try entries(interface, hook)
            if let entry = current.first(where: { $0.package == member.package }) {
                let order = current.map(\.package)
                let others = wanted.filter { order.contains($0.package) }.map(\.package)
                let inPlace = order == others || entry.seqID == member.seqID
                if entry.version != member.version || entry.parametersDigest != member.parametersDigest || !inPlace {
                    if inPlace {
                        try replace(package: member.package, with: member, interface: interface, hook: hook)
                    } else {
                        try remove(package: member.package, interface: interface, hook: hook)
                        try insert(member, interface: interface, hook: hook)
                    }
                }
            } else {
                try insert(member, interface: interface, hook: hook)
            }
        }
    }

    /// Makes the chain exactly `wanted` (sorted by seq_id) when its members must change order, in one flip: from the
    /// first position where the chain and `wanted` differ, every member is staged again in the new order, last first,
    /// each linked to the one after it; then that position's predecessor flips to the new suffix. A member staged
    /// again keeps its maps (all of them at the same version; its state maps at another), so counters and windows
    /// carry on. What the new suffix replaced is unpinned afterwards.
    public func reorder(_ wanted: [ChainMember], interface: String, hook: Hook) throws(ChainError) {
        let before = l3afdMapPins ? mapPinsBefore(interface, hook) : []
        defer { if l3afdMapPins { syncMapPins(interface, hook, before: before) } }
        for member in wanted { try check(member, hook) }
        guard wanted.count <= Self.maximumLength else {
            throw Self.tooMany(wanted.count, interface, hook)
        }
        var state = try readForChange(interface, hook)
        try requireChained(state, interface, hook)
        let start = zip(state.members.map(\.entry.package), wanted.map(\.package)).prefix { $0 == $1 }.count
        var staged: [Staged] = []
        var successor: BPFDescriptor? = nil
        do throws(ChainError) {
            for member in wanted[start...].reversed() {
                var reuse: [String: BPFDescriptor] = [:]
                if let old = state.members.first(where: { $0.entry.package == member.package }) {
                    let names = old.entry.version == member.version
                        ? ((try? FileManager.default.contentsOfDirectory(atPath: "\(old.folder)/maps")) ?? []).filter { $0 != member.program.nextMap }
                        : member.program.stateMaps
                    for name in names {
                        if let descriptor = try? BPFDescriptor.pinned(at: "\(old.folder)/maps/\(name)") { reuse[name] = descriptor }
                    }
                }
                let next = try stage(member, interface, hook, reuse: reuse, successor: successor)
                staged.append(next)
                successor = next.loaded.program
            }
        } catch {
            for item in staged { abandon(item) }
            throw error
        }
        do throws(ChainError) { try ensureRoot(&state, interface, hook) } catch {
            for item in staged { abandon(item) }
            throw error
        }
        if let first = successor {
            do throws(ChainError) { try flip(predecessor: state.predecessor(of: start)!, to: first) } catch {
                for item in staged { abandon(item) }
                throw error
            }
        } else if let predecessor = state.predecessor(of: start) {
            try kernel { () throws(BPFError) in try predecessor.clearProgram() }
        }
        for old in state.members[start...] { removePins(old.folder, pruneParent: true) }
        for item in staged { try finish(item) }
        let written = wanted[start...].map { memberFolder(interface, hook, $0.package, $0.version) }
        note(.reorder, interface, hook, wanted[start...].map { "\($0.package)@\($0.version)" }, flips: state.predecessorName(of: start), written: written,
             removed: state.members[start...].map { memberFolder(interface, hook, $0.entry.package, $0.entry.version) }.filter { !written.contains($0) })
        if wanted.isEmpty { try removeRoot(interface, hook) }
    }

    /// `apply` without chaining: `desired` is at most one program, attached to the hook directly; a new program or
    /// version replaces the old one in one step.
    private func applyAlone(_ desired: [ChainMember], interface: String, hook: Hook) throws(ChainError) {
        guard desired.count <= 1 else {
            throw Self.oneAlone(desired, interface, hook)
        }
        let state = try readForChange(interface, hook)
        // A chain left from when chaining was on goes once the new program is staged: for a moment nothing runs there.
        let current = state.alone ? state.members.first : nil
        let specs = state.members.map { "\($0.entry.package)@\($0.entry.version)" }
        guard let member = desired.first else {
            if !state.members.isEmpty {
                try takeDown(interface, hook)
                note(.detach, interface, hook, specs, removed: [hookFolder(interface, hook)])
            }
            return
        }
        try check(member, hook)
        if member.selfLoad != nil {
            throw Self.needsChain(member)
        }
        if let current, current.entry.package == member.package, current.entry.version == member.version,
           current.entry.parametersDigest == member.parametersDigest, current.entry.seqID == member.seqID {
            return
        }
        var reuse: [String: BPFDescriptor] = [:]
        if let current, current.entry.package == member.package {
            for name in member.program.stateMaps {
                if let descriptor = try? BPFDescriptor.pinned(at: "\(current.folder)/maps/\(name)") { reuse[name] = descriptor }
            }
        }
        let staged = try stage(member, interface, hook, reuse: reuse, successor: nil)
        let base = hookFolder(interface, hook)
        if state.rootNext != nil {
            try takeDown(interface, hook, keeping: staged.folder)
            note(.detachRoot, interface, hook, specs, removed: [hookFolder(interface, hook)])
        }
        do throws(ChainError) {
            try kernel { () throws(BPFError) in
                if hook == .xdpIngress {
                    if current != nil, FileManager.default.fileExists(atPath: "\(base)/link") {
                        try BPFAttachment.updateXDP(linkPin: "\(base)/link", to: staged.loaded.program)
                    } else {
                        try BPFAttachment.attachXDP(staged.loaded.program, interface: interface).pin(at: "\(base)/link")
                    }
                } else {
                    try BPFAttachment.attachTC(staged.loaded.program, interface: interface, hook: hook)
                }
            }
        } catch {
            removePins(staged.folder, pruneParent: true)
            throw ChainError(error.kind, error.description, hint: "the hook was not changed")
        }
        if let current { removePins(current.folder, pruneParent: current.entry.package != member.package) }
        try finish(staged)
        let spec = "\(member.package)@\(member.version)", written = [memberFolder(interface, hook, member.package, member.version)]
        if let current {
            let same = current.entry.package == member.package && current.entry.version == member.version
            note(.attach, interface, hook, ["\(current.entry.package)@\(current.entry.version)", spec], written: written,
                 removed: same ? [] : [memberFolder(interface, hook, current.entry.package, current.entry.version)])
        } else {
            note(.attach, interface, hook, [spec], written: written)
        }
    }

    /// Refuses a chain step on a hook whose program runs alone (chaining off): only `apply` changes such a hook.
    private func requireChained(_ state: State, _ interface: String, _ hook: Hook) throws(ChainError) {
        guard state.alone else { return }
        throw ChainError(.inconsistent, "\(hook) of \(interface) runs \(state.members.first?.entry.package ?? "a program") alone, without a root (chaining off)",
                         hint: "change it with apply, which takes it down first when chaining is on")
    }

    /// Takes everything off `hook` of `interface`, chained or alone: detached first (the kernel frees an unpinned link
    /// later, from a work queue), then unpinned, all but the staging folder `keeping`.
    private func takeDown(_ interface: String, _ hook: Hook, keeping: String? = nil) throws(ChainError) {
        let base = hookFolder(interface, hook)
        if hook == .xdpIngress {
            try? BPFAttachment.detachLink(pin: "\(base)/link")
            try? BPFAttachment.detachLink(pin: "\(base)/root/link")
        } else {
            try? BPFAttachment.detachTC(interface: interface, hook: hook)
        }
        let fm = FileManager.default
        for child in (try? fm.contentsOfDirectory(atPath: base)) ?? [] {
            let path = "\(base)/\(child)"
            guard let keeping, keeping.hasPrefix(path + "/") else { try? fm.removeItem(atPath: path); continue }
            for item in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where "\(path)/\(item)" != keeping { try? fm.removeItem(atPath: "\(path)/\(item)") }
        }
        if keeping == nil { removePins(base, pruneParent: true) }
        removeInlet(interface, hook, nil)
    }

    // MARK: Steps

    private struct Member {
        let entry: ChainEntry
        let folder: String
        let program: BPFDescriptor
        let next: BPFMapAccess
    }

    /// What an interrupted change left under a hook.
    public struct Leftovers: Sendable, Equatable {
        /// Folders no walk reaches: staged members that never joined, a version a change left behind, half-made
        /// folders without a program.
        public var strays: [String] = []
        /// Staging folders the chain runs: a change cut between its flip and its rename.
        public var unfinished: [String] = []

        public var isEmpty: Bool { strays.isEmpty && unfinished.isEmpty }
    }

    private struct State {
        var members: [Member]
        var rootNext: BPFMapAccess?
        var leftovers = Leftovers()
        /// A program attached alone, without a root (chaining off).
        var alone = false

        /// The prog array whose slot 0 leads to position `position`: the root's, or the previous member's.
        func predecessor(of position: Int) -> BPFMapAccess? { position == 0 ? rootNext : members[position - 1].next }

        /// Whose slot 0 leads to `position`: `root`, or the package before.
        func predecessorName(of position: Int) -> String { position == 0 ? "root" : members[position - 1].entry.package }

        /// The program at `position`, or `nil` past the end.
        func program(at position: Int) -> BPFDescriptor? { position < members.count ? members[position].program : nil }
    }

    private struct Staged {
        let loaded: LoadedProgram
        let next: BPFMapAccess
        let folder: String
        let package: String
        let version: String
        let hookFolder: String
        /// The user program started to load it, stopped again when the change fails, and its inlet (emptied then;
        /// removed when made for it).
        var startedUserProgram: SelfLoad? = nil
        var inlet: (access: BPFMapAccess, made: Bool, interface: String, hook: Hook)? = nil
    }

    private static let stagingPrefix = "staging-"

    private func hookFolder(_ interface: String, _ hook: Hook) -> String { "\(pinRoot)/\(interface)/\(hook.rawValue)" }

    func check(_ member: ChainMember, _ hook: Hook) throws(ChainError) {
        guard member.program.hook == hook else {
            throw ChainError(.wrongHook, "\(member.package)@\(member.version) runs on \(member.program.hook), not \(hook)")
        }
    }

    // The refusals `apply` and `plan` share, worded once.

    static func tooMany(_ count: Int, _ interface: String, _ hook: Hook) -> ChainError {
        ChainError(.tooLong, "\(count) programs on the \(hook) chain of \(interface) are more than the \(maximumLength) a packet can pass through")
    }

    static func oneAlone(_ desired: [ChainMember], _ interface: String, _ hook: Hook) -> ChainError {
        ChainError(.tooLong, "bpf-chaining-enabled is false, so \(hook) of \(interface) runs one program, not \(desired.count) (\(desired.map(\.package).joined(separator: ", ")))",
                   hint: "keep one program per hook, or set bpf-chaining-enabled: true to chain them behind a root")
    }

    static func needsChain(_ member: ChainMember) -> ChainError {
        ChainError(.load, "\(member.package)@\(member.version) is loaded by its user program, which needs a chain to put itself into (--map-name)",
                   hint: "set bpf-chaining-enabled: true, or give the payload its object_file so l3afd loads it")
    }

    static func noRoot(_ hook: Hook) -> ChainError { ChainError(.kernel, "no root program is configured for \(hook)") }

    private func kernel<T>(_ body: () throws(BPFError) -> T) throws(ChainError) -> T {
        do { return try body() } catch {
            if error.errno == ENODEV { throw ChainError(.unknownInterface, error.description, hint: "check the interface name with `ip link`") }
            throw ChainError(.kernel, error.description)
        }
    }

    /// Loads `member`, writes its parameters, pins it under a staging folder and points its next map at
    /// `successor`: everything but the flip, so the chain is not touched yet.
    private func stage(
        _ member: ChainMember, _ interface: String, _ hook: Hook, reuse: [String: BPFDescriptor], successor: BPFDescriptor?, seqID: Int? = nil,
        adopting: Bool = false
    ) throws(ChainError) -> Staged {
        _ = try kernel { () throws(BPFError) in try BPFAttachment.interfaceIndex(interface) }
        if let selfLoad = member.selfLoad {
            return try stageSelfLoaded(member, selfLoad, interface, hook, successor: successor, seqID: seqID, adopting: adopting)
        }
        let writes = try member.parameterWrites()
        let loaded: LoadedProgram
        let mapFolder = l3afdMapPins ? try mapFolder(interface, hook, member.package, member.version) : nil
        let newMapFolder = mapFolder.map { !FileManager.default.fileExists(atPath: $0) } ?? false
        if l3afdMapPins { _ = try self.mapFolder(interface, hook, member.package, member.version, create: true) }
        do {
            loaded = try BPFLoader.load(objectAt: member.objectPath, entry: member.program.entryFunction, hook: hook, reuse: reuse,
                                        pinFolder: mapFolder, neverPinned: [member.program.nextMap])
        } catch {
            if newMapFolder, let mapFolder { removeMapFolder(mapFolder) }
            throw ChainError(.load, "\(member.package)@\(member.version) did not load: \(error.description)",
                             hint: "the chain was not changed")
        }
        let folder = "\(hookFolder(interface, hook))/\(member.package)/\(Self.stagingPrefix)\(PinName.of(member.version))-\(UInt32.random(in: 0...UInt32.max))"
        do throws(ChainError) {
            try kernel { () throws(BPFError) in for write in writes { try write.apply(to: loaded) } }
            let next = try pin(loaded, nextMap: member.program.nextMap, in: folder,
                               markers: ["seq_\(seqID ?? member.seqID)", "params_\(member.parametersDigest)"])
            if let successor { try kernel { () throws(BPFError) in try next.setProgram(successor) } }
            return Staged(loaded: loaded, next: next, folder: folder, package: member.package, version: member.version,
                          hookFolder: hookFolder(interface, hook))
        } catch {
            removePins(folder, pruneParent: true)
            if newMapFolder, let mapFolder { removeMapFolder(mapFolder) }
            throw ChainError(error.kind, error.description, hint: "the chain was not changed")
        }
    }

    /// Pins `loaded` in `folder` (created, with the `marker` folder when given): `prog`, `next`, and every named map
    /// under `maps/` (libbpf's internal `.rodata`/`.bss` maps have dotted names, which bpffs refuses). Returns the next map.
    private func pin(_ loaded: LoadedProgram, nextMap: String, in folder: String, markers: [String] = []) throws(ChainError) -> BPFMapAccess {
        do {
            try FileManager.default.createDirectory(atPath: "\(folder)/maps", withIntermediateDirectories: true)
            for marker in markers { try FileManager.default.createDirectory(atPath: "\(folder)/\(marker)", withIntermediateDirectories: true) }
        } catch {
            throw ChainError(.kernel, "creating \(folder): \(error)", hint: "is a bpf file system mounted at \(pinRoot)? (mount -t bpf bpf /sys/fs/bpf)")
        }
        return try kernel { () throws(BPFError) -> BPFMapAccess in
            try loaded.program.pin(at: "\(folder)/prog")
            for (name, map) in loaded.maps where !name.contains(".") { try map.descriptor.pin(at: "\(folder)/maps/\(name)") }
            let next = try loaded.map(nextMap)
            try next.descriptor.pin(at: "\(folder)/next")
            return next
        }
    }

    /// The one step a packet can observe: `predecessor`'s slot 0 now names `program`.
    private func flip(predecessor: BPFMapAccess, to program: BPFDescriptor, abandoning staged: Staged? = nil) throws(ChainError) {
        do throws(ChainError) { try kernel { () throws(BPFError) in try predecessor.setProgram(program) } } catch {
            if let staged { abandon(staged) }
            throw error
        }
    }

    /// Undoes a staged member that will not join: its pins go, and a user program started to load it is stopped.
    private func abandon(_ staged: Staged) {
        removePins(staged.folder, pruneParent: true)
        staged.startedUserProgram?.abandon()
        if let inlet = staged.inlet {
            _ = try? inlet.access.clearProgram()
            if inlet.made { removeInlet(inlet.interface, inlet.hook, staged.package) }
        }
    }

    // MARK: Programs their user programs load

    /// Where the inlet of `package`@`version` on `hook` of `interface` is pinned: the path its user program gets as
    /// `--map-name`. One per version, so the user program of the version a change replaces can't put its program where
    /// the new one's is taken from.
    public static func inletPath(pinRoot: String, interface: String, hook: Hook, package: String, version: String) -> String {
        "\(pinRoot)/inlets/\(interface)/\(hook.rawValue)/\(PinName.of(package))/\(PinName.of(version))"
    }

    private func inletPath(_ interface: String, _ hook: Hook, _ package: String, _ version: String) -> String {
        Self.inletPath(pinRoot: pinRoot, interface: interface, hook: hook, package: package, version: version)
    }

    /// The id of the program in slot 0 of the inlet pinned at `path`, `nil` when there is none (or no inlet).
    public static func inletProgramID(_ path: String) -> UInt32? {
        guard let inlet = try? BPFDescriptor.pinned(at: path) else { return nil }
        return (try? BPFMapAccess(inlet, name: "inlet").programID()) ?? nil
    }

    /// Removes the inlets of `package` (every inlet of the hook when `nil`), and the folders left empty.
    private func removeInlet(_ interface: String, _ hook: Hook, _ package: String?) {
        let folder = "\(pinRoot)/inlets/\(interface)/\(hook.rawValue)"
        try? FileManager.default.removeItem(atPath: package.map { "\(folder)/\(PinName.of($0))" } ?? folder)
        var parent = package == nil ? (folder as NSString).deletingLastPathComponent : folder
        while parent.count > pinRoot.count, (try? FileManager.default.contentsOfDirectory(atPath: parent))?.isEmpty == true {
            rmdir(parent)
            parent = (parent as NSString).deletingLastPathComponent
        }
    }

    /// The inlet of `package`@`version`, made (an empty one-slot prog array, pinned) when there is none; and whether it
    /// was made here.
    private func inlet(_ interface: String, _ hook: Hook, _ package: String, _ version: String) throws(ChainError) -> (BPFMapAccess, made: Bool) {
        let path = inletPath(interface, hook, package, version)
        if let existing = try? BPFDescriptor.pinned(at: path) { return (BPFMapAccess(existing, name: "inlet"), false) }
        do { try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true) } catch {
            throw ChainError(.kernel, "creating the folder of \(path): \(error)", hint: "is a bpf file system mounted at \(pinRoot)?")
        }
        return try kernel { () throws(BPFError) -> (BPFMapAccess, made: Bool) in
            let map = try BPFDescriptor.programArray(name: "l3af_inlet")
            try map.pin(at: path)
            return (BPFMapAccess(map, name: "inlet"), true)
        }
    }

    /// `stage` for a member its user program loads: the user program is started with the inlet as `--map-name` (unless
    /// `adopting`: it already ran, and put a new program there), its program taken from the inlet once it is there
    /// (within ``SelfLoad/timeoutSeconds``, while the user program runs), checked (the hook's program type, a prog array
    /// named `map_name` among its maps), given its `map_args`, pinned and linked to `successor`.
    private func stageSelfLoaded(
        _ member: ChainMember, _ selfLoad: SelfLoad, _ interface: String, _ hook: Hook, successor: BPFDescriptor?, seqID: Int?, adopting: Bool
    ) throws(ChainError) -> Staged {
        let writes = try member.parameterWrites()
        let path = inletPath(interface, hook, member.package, member.version)
        let (inlet, made) = try inlet(interface, hook, member.package, member.version)
        let what = "\(member.package)@\(member.version)"
        var running: (@Sendable () -> Bool)?
        // What a change that fails leaves: its user program stopped, its inlet empty (or gone, when made for it).
        func undo() {
            guard !adopting else { return }
            selfLoad.abandon()
            _ = try? inlet.clearProgram()
            if made { removeInlet(interface, hook, member.package) }
        }
        if !adopting {
            _ = try? inlet.clearProgram()
            do { running = try selfLoad.start() } catch {
                undo()
                throw ChainError(.load, "\(what): its user program (cmd_start) did not start: \(error)", hint: "the chain was not changed")
            }
        }
        func failed(_ description: String, hint: String) -> ChainError {
            undo()
            return ChainError(.load, "\(what): \(description)", hint: hint + "; the chain was not changed")
        }
        let deadline = Date().addingTimeInterval(SelfLoad.timeoutSeconds)
        var found: UInt32?
        while true {
            found = (try? inlet.programID()) ?? nil
            if found != nil || adopting { break }
            if let running, !running() {
                found = (try? inlet.programID()) ?? nil
                if found != nil { break }
                throw failed("its user program (cmd_start) exited without putting a program into --map-name=\(path)",
                             hint: "it must load its object and write its program's fd into slot 0 of the prog array pinned at --map-name; see its log")
            }
            guard Date() < deadline else {
                throw failed("its user program (cmd_start) put no program into --map-name=\(path) within \(Int(SelfLoad.timeoutSeconds)) s",
                             hint: "it must load its object and write its program's fd into slot 0 of the prog array pinned at --map-name; see its log")
            }
            usleep(20_000)
        }
        guard let id = found else { throw failed("its inlet \(path) holds no program", hint: "restart its user program") }
        let names = [member.program.nextMap] + member.program.monitorMaps.map(\.name) + member.mapArguments.map(\.name)
        let adopted: (program: LoadedProgram, type: UInt32)
        do { adopted = try LoadedProgram.adopt(programID: id, names: names) } catch {
            throw failed("the program its user program loaded (id \(id)) can't be read: \(error.description)", hint: "check it with `bpftool prog show id \(id)`")
        }
        guard BPFDescriptor.programType(adopted.type, runsOn: hook) else {
            throw failed("its user program put a program of type \(adopted.type) (id \(id)) into --map-name, which \(hook) can't run",
                         hint: hook == .xdpIngress ? "load it as an XDP program" : "load it as a TC classifier")
        }
        guard let next = adopted.program.maps[member.program.nextMap], next.info.isProgramArray else {
            throw failed("the program its user program loaded (id \(id)) uses no prog array named '\(member.program.nextMap)' to call the next program",
                         hint: "map_name must name that prog array; the program uses: \(adopted.program.maps.keys.sorted().joined(separator: ", "))")
        }
        let folder = "\(hookFolder(interface, hook))/\(member.package)/\(Self.stagingPrefix)\(PinName.of(member.version))-\(UInt32.random(in: 0...UInt32.max))"
        do throws(ChainError) {
            try kernel { () throws(BPFError) in for write in writes { try write.apply(to: adopted.program) } }
            let next = try pin(adopted.program, nextMap: member.program.nextMap, in: folder,
                               markers: ["seq_\(seqID ?? member.seqID)", "params_\(member.parametersDigest)", Self.selfLoadedMarker])
            if let successor { try kernel { () throws(BPFError) in try next.setProgram(successor) } } else { _ = try? next.clearProgram() }
            return Staged(loaded: adopted.program, next: next, folder: folder, package: member.package, version: member.version,
                          hookFolder: hookFolder(interface, hook), startedUserProgram: adopting ? nil : selfLoad,
                          inlet: adopting ? nil : (inlet, made, interface, hook))
        } catch {
            removePins(folder, pruneParent: true)
            undo()
            throw ChainError(error.kind, error.description, hint: "the chain was not changed")
        }
    }

    /// The folder that marks a member its user program loaded: l3afd's map pins are its user program's to make.
    static let selfLoadedMarker = "self_loaded"

    /// The pin root's parent when that is (or will be made) on bpffs (`/sys/fs/bpf` for `/sys/fs/bpf/l3af`), else the
    /// pin root itself (a pin root at a bpffs mount point).
    static func defaultMapRoot(pinRoot: String) -> String {
        let parent = (pinRoot as NSString).deletingLastPathComponent
        var existing = parent
        while existing.count > 1, !FileManager.default.fileExists(atPath: existing) { existing = (existing as NSString).deletingLastPathComponent }
        return l3af_is_bpffs(existing) == 1 ? parent : pinRoot
    }

    /// The folder of l3afd's map pins for `package`@`version` on `hook` of `interface` (made when `create`). A build of a
    /// moving version (`latest-<digest>`) pins where l3afd pins `latest`.
    public func mapFolder(_ interface: String, _ hook: Hook, _ package: String, _ version: String, create: Bool = false) throws(ChainError) -> String {
        let shown = MovingVersion.requested(version) ?? version
        let folder = "\(mapRoot)\(hook == .xdpIngress ? "" : "/tc/globals")/\(interface)/\(package)/\(PinName.of(shown))"
        if create {
            do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
                throw ChainError(.kernel, "creating \(folder): \(error)", hint: "is a bpf file system mounted at \(mapRoot)? (mount -t bpf bpf /sys/fs/bpf)")
            }
        }
        return folder
    }

    /// The members (package, version, program id) whose l3afd map pins exist before a change.
    private func mapPinsBefore(_ interface: String, _ hook: Hook) -> [(package: String, version: String, programID: UInt32)] {
        var members = ((try? settledRead(interface, hook))?.members ?? []).map { ($0.entry.package, $0.entry.version, $0.entry.programID) }
        if let root = roots[hook], let id = try? rootProgramID(interface: interface, hook: hook) { members.append((root.package, root.version, id)) }
        return members
    }

    /// Brings l3afd's map pins in line with the chain after a change: each member's maps pinned in its folder (a pin
    /// replaced by rename, so a reader never finds it missing), and the folders of members that left removed.
    /// Best effort: the chain is already changed, and the chain's own pins are what the engine reads.
    private func syncMapPins(_ interface: String, _ hook: Hook, before: [(package: String, version: String, programID: UInt32)]) {
        // A chain that can't be read is left as it is: its pins may be all that holds its maps.
        guard let state = try? settledRead(interface, hook) else { return }
        let members = state.members
        let fm = FileManager.default
        var kept = Set<String>()
        // A member running the same program as before the change has the same maps: its pins are already right.
        let unchanged = Set(before.map { "\($0.package)@\($0.version)#\($0.programID)" })
        var pinned = members.map { (package: $0.entry.package, version: $0.entry.version, folder: $0.folder,
                                    same: unchanged.contains("\($0.entry.package)@\($0.entry.version)#\($0.entry.programID)")) }
        if state.rootNext != nil, let root = roots[hook], let id = try? rootProgramID(interface: interface, hook: hook) {
            pinned.append((root.package, root.version, "\(hookFolder(interface, hook))/root", same: unchanged.contains("\(root.package)@\(root.version)#\(id)")))
        }
        for member in pinned {
            guard let folder = try? mapFolder(interface, hook, member.package, member.version) else { continue }
            kept.insert(folder)
            if member.same, fm.fileExists(atPath: folder) { continue }
            // A program its user program loaded has its maps pinned there by that program, as l3afd leaves it to.
            if fm.fileExists(atPath: "\(member.folder)/\(Self.selfLoadedMarker)") { continue }
            guard (try? mapFolder(interface, hook, member.package, member.version, create: true)) != nil else { continue }
            for name in (try? fm.contentsOfDirectory(atPath: "\(member.folder)/maps")) ?? [] {
                guard let map = try? BPFDescriptor.pinned(at: "\(member.folder)/maps/\(name)") else { continue }
                let temporary = "\(folder)/l3af-pinning-\(UInt32.random(in: 0...UInt32.max))"
                guard (try? map.pin(at: temporary)) != nil else { continue }
                if rename(temporary, "\(folder)/\(name)") != 0 { unlink(temporary) }
            }
        }
        // TC ingress and egress share l3afd's folders (`tc/globals/<iface>/<name>/<version_>`): what the other
        // direction still runs stays, its root's included.
        if hook != .xdpIngress {
            let other: Hook = hook == .tcIngress ? .tcEgress : .tcIngress
            if let running = (try? settledRead(interface, other))?.members {
                for member in running { if let folder = try? mapFolder(interface, other, member.entry.package, member.entry.version) { kept.insert(folder) } }
                if !running.isEmpty, let root = roots[other], let folder = try? mapFolder(interface, other, root.package, root.version) { kept.insert(folder) }
            } else {
                return
            }
        }
        var gone = before.compactMap { try? mapFolder(interface, hook, $0.package, $0.version) }
        if members.isEmpty, let root = roots[hook], let folder = try? mapFolder(interface, hook, root.package, root.version) { gone.append(folder) }
        for folder in gone where !kept.contains(folder) { removeMapFolder(folder) }
    }

    /// Removes a folder of l3afd map pins, and its parents that are left empty, up to (not including) the map root
    /// and `tc/globals`.
    private func removeMapFolder(_ folder: String) {
        let fm = FileManager.default
        try? fm.removeItem(atPath: folder)
        var parent = (folder as NSString).deletingLastPathComponent
        while parent.count > mapRoot.count, parent != "\(mapRoot)/tc/globals", parent != "\(mapRoot)/tc",
              (try? fm.contentsOfDirectory(atPath: parent))?.isEmpty == true {
            rmdir(parent)
            parent = (parent as NSString).deletingLastPathComponent
        }
    }

    /// Renames the staging folder of a member that joined the chain to `<package>/<version>`.
    private func finish(_ staged: Staged) throws(ChainError) {
        let target = "\(staged.hookFolder)/\(staged.package)/\(PinName.of(staged.version))"
        removePins(target, pruneParent: false)
        guard rename(staged.folder, target) == 0 else {
            throw ChainError(.kernel, "renaming \(staged.folder) to \(target): \(String(cString: strerror(errno)))")
        }
    }

    private func removePins(_ folder: String, pruneParent: Bool) {
        try? FileManager.default.removeItem(atPath: folder)
        if pruneParent {
            let parent = (folder as NSString).deletingLastPathComponent
            if (try? FileManager.default.contentsOfDirectory(atPath: parent))?.isEmpty == true { rmdir(parent) }
        }
    }

    /// Loads, pins and attaches the root when the hook has no chain yet, recording its next map in `state`.
    private func ensureRoot(_ state: inout State, _ interface: String, _ hook: Hook) throws(ChainError) {
        if state.rootNext != nil { return }
        guard let root = roots[hook] else { throw Self.noRoot(hook) }
        let folder = "\(hookFolder(interface, hook))/root"
        removePins(folder, pruneParent: false)
        let loaded: LoadedProgram
        let mapFolder = l3afdMapPins ? try mapFolder(interface, hook, root.package, root.version, create: true) : nil
        do {
            loaded = try BPFLoader.load(objectAt: root.objectPath, entry: root.program.entryFunction, hook: hook, pinFolder: mapFolder,
                                        neverPinned: [root.program.nextMap])
        } catch {
            throw ChainError(.load, "the root program \(root.package)@\(root.version) did not load: \(error.description)")
        }
        let next = try pin(loaded, nextMap: root.program.nextMap, in: folder)
        try kernel { () throws(BPFError) in
            if hook == .xdpIngress {
                try BPFAttachment.attachXDP(loaded.program, interface: interface).pin(at: "\(folder)/link")
            } else {
                try BPFAttachment.attachTC(loaded.program, interface: interface, hook: hook)
            }
        }
        state.rootNext = next
        note(.attachRoot, interface, hook, ["\(root.package)@\(root.version)"], written: [folder])
    }

    /// Called once the last member is gone: the hook holds only its root, which ``takeDown`` detaches and unpins.
    private func removeRoot(_ interface: String, _ hook: Hook) throws(ChainError) {
        try takeDown(interface, hook)
        note(.detachRoot, interface, hook, [], removed: [hookFolder(interface, hook)])
    }

    /// How often a read that caught a writer mid-change (a program id no listed pin holds yet) is taken again.
    static let readAttempts = 8

    /// `read`, again while it meets a chain a writer is changing under it: a walk that finds a program id no pin
    /// listed a moment earlier holds is most often a writer's flip between the listing and the walk. A chain that
    /// stays inconsistent is reported.
    private func settledRead(_ interface: String, _ hook: Hook) throws(ChainError) -> State {
        var attempt = 0
        while true {
            do { return try read(interface, hook) } catch {
                attempt += 1
                guard error.kind == .inconsistent, attempt < Self.readAttempts else { throw error }
                usleep(UInt32(1000 * attempt))
            }
        }
    }

    /// The chain's entries for a writer (after `readForChange`).
    private func entries(_ interface: String, _ hook: Hook) throws(ChainError) -> [ChainEntry] {
        try readForChange(interface, hook).members.map(\.entry)
    }

    /// The state a change starts from, with what an interrupted change left finished or cleared: a staging folder
    /// the chain runs is renamed into place (whatever held the target is stale, since a package is in a chain once),
    /// and pins no walk reaches are removed. Only for writers, under the host lock.
    private func readForChange(_ interface: String, _ hook: Hook) throws(ChainError) -> State {
        var state = try settledRead(interface, hook)
        clean(&state, interface, hook)
        return state
    }

    /// Finishes or clears `state`'s leftovers on bpffs and updates the members' folders to match.
    private func clean(_ state: inout State, _ interface: String, _ hook: Hook) {
        let base = hookFolder(interface, hook)
        for folder in state.leftovers.unfinished {
            guard let index = state.members.firstIndex(where: { $0.folder == folder }) else { continue }
            let member = state.members[index]
            let target = "\(base)/\(member.entry.package)/\(PinName.of(member.entry.version))"
            removePins(target, pruneParent: false)
            if rename(folder, target) == 0 {
                state.members[index] = Member(entry: member.entry, folder: target, program: member.program, next: member.next)
            }
        }
        for folder in state.leftovers.strays where !state.members.contains(where: { $0.folder == folder }) {
            removePins(folder, pruneParent: true)
        }
        state.leftovers = Leftovers()
    }

    /// Reads the chain without changing anything: walks from the root's slot 0 through each program's next map,
    /// matching program ids to pinned members (staging folders included). Reports, without touching them, the pins
    /// no walk reached and the staging folders the chain runs; refuses pins that don't form a chain.
    private func read(_ interface: String, _ hook: Hook) throws(ChainError) -> State {
        let base = hookFolder(interface, hook)
        let fm = FileManager.default
        let rootNext = try? BPFDescriptor.pinned(at: "\(base)/root/next")
        // Without a root, a program attached alone (chaining off): l3af's XDP link or TC filter names it.
        let aloneID: UInt32? = rootNext != nil ? nil
            : hook == .xdpIngress ? BPFAttachment.linkProgramID(pin: "\(base)/link")
            : fm.fileExists(atPath: base) ? (try? BPFAttachment.tcProgramID(interface: interface, hook: hook)) ?? nil : nil
        guard rootNext != nil || aloneID != nil else { return State(members: [], rootNext: nil) }
        var leftovers = Leftovers()
        var pinned: [UInt32: (folder: String, package: String, version: String, seq: Int, digest: String, program: BPFDescriptor)] = [:]
        for package in ((try? fm.contentsOfDirectory(atPath: base)) ?? []).sorted() where package != "root" && package != "link" {
            for item in ((try? fm.contentsOfDirectory(atPath: "\(base)/\(package)")) ?? []).sorted() {
                let folder = "\(base)/\(package)/\(item)"
                guard let program = try? BPFDescriptor.pinned(at: "\(folder)/prog"), let id = try? program.programID() else {
                    // Half made (a writer is staging it, or one died doing so): a writer's repair clears it.
                    leftovers.strays.append(folder)
                    continue
                }
                var version = item
                if item.hasPrefix(Self.stagingPrefix) {
                    version = String(item.dropFirst(Self.stagingPrefix.count).split(separator: "-").dropLast().joined(separator: "-"))
                }
                version = version.replacingOccurrences(of: "_", with: ".")
                let items = (try? fm.contentsOfDirectory(atPath: folder)) ?? []
                let seq = items.compactMap { $0.hasPrefix("seq_") ? Int($0.dropFirst(4)) : nil }.first ?? 0
                let digest = items.first { $0.hasPrefix("params_") }.map { String($0.dropFirst(7)) } ?? ""
                pinned[id] = (folder, package, version, seq, digest, program)
            }
        }
        if let aloneID {
            guard let found = pinned[aloneID], let nextPin = try? BPFDescriptor.pinned(at: "\(found.folder)/next") else {
                throw ChainError(.inconsistent, "\(hook) of \(interface) runs program id \(aloneID), which no pin under \(base) holds",
                                 hint: "inspect with `bpftool prog show id \(aloneID)`; remove \(base) to start over")
            }
            if (found.folder as NSString).lastPathComponent.hasPrefix(Self.stagingPrefix) { leftovers.unfinished.append(found.folder) }
            leftovers.strays += pinned.filter { $0.key != aloneID }.map(\.value.folder).sorted()
            let member = Member(entry: ChainEntry(package: found.package, version: found.version, seqID: found.seq, programID: aloneID, parametersDigest: found.digest),
                                folder: found.folder, program: found.program, next: BPFMapAccess(nextPin, name: "\(found.package)/next"))
            return State(members: [member], rootNext: nil, leftovers: leftovers, alone: true)
        }
        guard let rootNext else { return State(members: [], rootNext: nil) }
        var members: [Member] = []
        var next = BPFMapAccess(rootNext, name: "root/next")
        var seen = Set<UInt32>()
        while let id = try kernel({ () throws(BPFError) in try next.programID() }) {
            guard let found = pinned[id] else {
                throw ChainError(.inconsistent, "the \(hook) chain of \(interface) runs program id \(id), which no pin under \(base) holds",
                                 hint: "inspect with `bpftool prog show id \(id)`; remove \(base) to start over")
            }
            guard !seen.contains(id) else {
                throw ChainError(.inconsistent, "the \(hook) chain of \(interface) loops back to \(found.package)@\(found.version) (program id \(id))",
                                 hint: "a packet would stop after the tail-call limit; remove \(base) to start over")
            }
            seen.insert(id)
            guard let nextPin = try? BPFDescriptor.pinned(at: "\(found.folder)/next") else {
                throw ChainError(.inconsistent, "\(found.folder) has no next map pinned", hint: "remove \(base) to start over")
            }
            let nextMap = BPFMapAccess(nextPin, name: "\(found.package)/next")
            if (found.folder as NSString).lastPathComponent.hasPrefix(Self.stagingPrefix) { leftovers.unfinished.append(found.folder) }
            members.append(Member(entry: ChainEntry(package: found.package, version: found.version, seqID: found.seq, programID: id, parametersDigest: found.digest),
                                  folder: found.folder, program: found.program, next: nextMap))
            next = nextMap
        }
        leftovers.strays += pinned.filter { !seen.contains($0.key) }.map(\.value.folder).sorted()
        return State(members: members, rootNext: BPFMapAccess(rootNext, name: "root/next"), leftovers: leftovers)
    }
}
