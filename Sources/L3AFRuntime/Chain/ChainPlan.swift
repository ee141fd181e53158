import Foundation
import L3AFModel

/// One step of a chain change, as the engine makes it and as a plan foretells it: what flips, and which pin folders
/// are written and removed.
public struct ChainStep: Hashable, Sendable, Codable, CustomStringConvertible {
    public enum Action: String, Hashable, Sendable, Codable {
        /// The root program is loaded, pinned and attached (the hook had no chain).
        case attachRoot = "attach-root"
        /// A program joins: its predecessor's slot 0 flips to it.
        case insert
        /// A program leaves: its predecessor's slot 0 flips to its successor.
        case remove
        /// A program is swapped for another version (or parameters) in one flip.
        case replace
        /// The program a restarted user program loaded takes its place in one flip.
        case adopt
        /// From a position on, the chain is staged again in a new order and joined in one flip.
        case reorder
        /// The root program goes (the last program left).
        case detachRoot = "detach-root"
        /// A program attached alone (chaining off), or swapped there in one step.
        case attach
        /// What runs on the hook is taken off at once.
        case detach
    }

    public var action: Action
    public var interface: String
    public var hook: Hook
    /// `package@version`: for `replace` and `adopt` the old then the new, for `reorder` the new order from its position.
    public var programs: [String]
    /// Whose slot 0 flips: `root`, or the package before.
    public var flips: String?
    public var pinsWritten: [String]
    public var pinsRemoved: [String]

    enum CodingKeys: String, CodingKey {
        case action, interface, hook, programs, flips, pinsWritten = "pins_written", pinsRemoved = "pins_removed"
    }

    public var description: String {
        let what = action == .replace || action == .adopt ? programs.joined(separator: " → ") : programs.joined(separator: ", ")
        var text = "\(interface) \(hook): \(action.rawValue) \(what)"
        if let flips { text += " (one flip: \(flips)'s slot 0)" }
        return text
    }
}

extension ChainEngine {
    /// The steps `apply(desired, …)` would make on `hook` of `interface`, read from the kernel and the pins and changing
    /// nothing: the same decisions, made on a copy.
    public func plan(_ desired: [ChainMember], interface: String, hook: Hook) throws(ChainError) -> [ChainStep] {
        let state = try planningState(interface, hook)
        var planner = Planner(engine: self, interface: interface, hook: hook, members: state.members, hasRoot: state.hasRoot)
        // What apply would refuse, refused alike.
        for member in desired { try check(member, hook) }
        if !desired.isEmpty, chaining, roots[hook] == nil, !state.hasRoot { throw Self.noRoot(hook) }
        guard chaining else {
            guard desired.count <= 1 else { throw Self.oneAlone(desired, interface, hook) }
            if let member = desired.first, member.selfLoad != nil { throw Self.needsChain(member) }
            return planner.alone(desired, current: state.alone ? state.members.first : nil)
        }
        guard desired.count <= Self.maximumLength else { throw Self.tooMany(desired.count, interface, hook) }
        if state.alone {
            planner.note(.detach, state.members.map(\.spec), removed: [planner.hookFolder])
            planner.members = []
            planner.hasRoot = false
        }
        let wanted = desired.sorted { $0.seqID < $1.seqID }
        let names = Set(wanted.map(\.package))
        for member in planner.members where !names.contains(member.package) { planner.remove(member.package, keepingRoot: !wanted.isEmpty) }
        let order = planner.members.map(\.package)
        if order != wanted.map(\.package).filter({ order.contains($0) }) { planner.reorder(wanted) }
        for member in wanted {
            if let index = planner.members.firstIndex(where: { $0.package == member.package }) {
                let entry = planner.members[index], current = planner.members.map(\.package)
                let others = wanted.filter { current.contains($0.package) }.map(\.package)
                let inPlace = current == others || entry.seqID == member.seqID
                if entry.version != member.version || entry.digest != member.parametersDigest || !inPlace {
                    if inPlace {
                        planner.replace(at: index, with: member)
                    } else {
                        planner.remove(member.package)
                        planner.insert(member)
                    }
                }
            } else {
                planner.insert(member)
            }
        }
        return planner.steps
    }

    /// What `plan` starts from: the members (package, version, seq_id, parameters digest), whether a root runs, and
    /// whether a program runs alone.
    private func planningState(_ interface: String, _ hook: Hook) throws(ChainError) -> (members: [Planner.Member], hasRoot: Bool, alone: Bool) {
        let entries = try chain(interface: interface, hook: hook)
        let base = "\(pinRoot)/\(interface)/\(hook.rawValue)"
        let hasRoot = FileManager.default.fileExists(atPath: "\(base)/root/next")
        let members = entries.map { Planner.Member(package: $0.package, version: $0.version, seqID: $0.seqID, digest: $0.parametersDigest) }
        return (members, hasRoot, !hasRoot && !members.isEmpty)
    }

    /// The pin folder of `package`@`version` on `hook` of `interface`.
    func memberFolder(_ interface: String, _ hook: Hook, _ package: String, _ version: String) -> String {
        "\(pinRoot)/\(interface)/\(hook.rawValue)/\(package)/\(PinName.of(version))"
    }

    /// Records a step the engine made, for whoever watches (``journal``).
    func note(_ action: ChainStep.Action, _ interface: String, _ hook: Hook, _ programs: [String], flips: String? = nil,
              written: [String] = [], removed: [String] = []) {
        journal?(ChainStep(action: action, interface: interface, hook: hook, programs: programs, flips: flips, pinsWritten: written, pinsRemoved: removed))
    }

    /// The steps of one plan, made on a copy of the chain.
    struct Planner {
        struct Member {
            let package: String
            let version: String
            let seqID: Int
            let digest: String
            var spec: String { "\(package)@\(version)" }
        }

        let engine: ChainEngine
        let interface: String
        let hook: Hook
        var members: [Member]
        var hasRoot: Bool
        var steps: [ChainStep] = []

        var hookFolder: String { "\(engine.pinRoot)/\(interface)/\(hook.rawValue)" }
        func folder(_ package: String, _ version: String) -> String { engine.memberFolder(interface, hook, package, version) }
        func predecessor(_ position: Int) -> String { position == 0 ? "root" : members[position - 1].package }

        mutating func note(_ action: ChainStep.Action, _ programs: [String], flips: String? = nil, written: [String] = [], removed: [String] = []) {
            steps.append(ChainStep(action: action, interface: interface, hook: hook, programs: programs, flips: flips, pinsWritten: written, pinsRemoved: removed))
        }

        mutating func ensureRoot() {
            guard !hasRoot else { return }
            let root = engine.roots[hook].map { "\($0.package)@\($0.version)" } ?? "root"
            note(.attachRoot, [root], written: ["\(hookFolder)/root"])
            hasRoot = true
        }

        mutating func insert(_ member: ChainMember) {
            let position = members.firstIndex { $0.seqID > member.seqID } ?? members.count
            ensureRoot()
            note(.insert, ["\(member.package)@\(member.version)"], flips: predecessor(position), written: [folder(member.package, member.version)])
            members.insert(Member(package: member.package, version: member.version, seqID: member.seqID, digest: member.parametersDigest), at: position)
        }

        mutating func remove(_ package: String, keepingRoot: Bool = false) {
            guard let position = members.firstIndex(where: { $0.package == package }) else { return }
            let member = members[position]
            note(.remove, [member.spec], flips: predecessor(position), removed: [folder(member.package, member.version)])
            members.remove(at: position)
            if members.isEmpty, !keepingRoot {
                note(.detachRoot, [], removed: [hookFolder])
                hasRoot = false
            }
        }

        mutating func replace(at position: Int, with member: ChainMember) {
            let old = members[position]
            note(.replace, [old.spec, "\(member.package)@\(member.version)"], flips: predecessor(position), written: [folder(member.package, member.version)],
                 removed: old.version == member.version ? [] : [folder(old.package, old.version)])
            members[position] = Member(package: member.package, version: member.version, seqID: old.seqID, digest: member.parametersDigest)
        }

        mutating func reorder(_ wanted: [ChainMember]) {
            let start = zip(members.map(\.package), wanted.map(\.package)).prefix { $0 == $1 }.count
            ensureRoot()
            let written = wanted[start...].map { folder($0.package, $0.version) }
            let removed = members[start...].map { folder($0.package, $0.version) }.filter { !written.contains($0) }
            note(.reorder, wanted[start...].map { "\($0.package)@\($0.version)" }, flips: predecessor(start), written: written, removed: removed)
            members = Array(members[..<start]) + wanted[start...].map { Member(package: $0.package, version: $0.version, seqID: $0.seqID, digest: $0.parametersDigest) }
            if wanted.isEmpty {
                note(.detachRoot, [], removed: [hookFolder])
                hasRoot = false
            }
        }

        /// `applyAlone`'s steps: at most one program, attached directly.
        mutating func alone(_ desired: [ChainMember], current: Member?) -> [ChainStep] {
            guard desired.count <= 1 else { return steps }
            guard let member = desired.first else {
                if !members.isEmpty { note(.detach, members.map(\.spec), removed: [hookFolder]) }
                return steps
            }
            if let current, current.package == member.package, current.version == member.version, current.digest == member.parametersDigest,
               current.seqID == member.seqID {
                return steps
            }
            if hasRoot { note(.detachRoot, members.map(\.spec), removed: [hookFolder]) }
            let spec = "\(member.package)@\(member.version)"
            if let current {
                note(.attach, [current.spec, spec], written: [folder(member.package, member.version)],
                     removed: current.package == member.package && current.version == member.version ? [] : [folder(current.package, current.version)])
            } else {
                note(.attach, [spec], written: [folder(member.package, member.version)])
            }
            return steps
        }
    }
}
