import Foundation
import L3AFModel

/// The operator's side of the fleet: read and change groups' and hosts' documents (each write one etcd transaction,
/// compare-and-swap on the revision read), list the live hosts, walk a document's history, drive a rollout.
public struct FleetStore: Sendable {
    public let client: EtcdClient
    public let layout: FleetLayout
    /// Who changes things (recorded in each document's `changed_by`).
    public let actor: String

    public init(client: EtcdClient, layout: FleetLayout, actor: String) {
        self.client = client
        self.layout = layout
        self.actor = actor
    }

    /// A target's document (`nil` when it has none) and the revision it was written at (0: never).
    public func read(_ target: FleetTarget) async throws -> (FleetDesired?, Int64) {
        let key = layout.key(target)
        let (kv, _) = try await client.get(key)
        guard let kv else { return (nil, 0) }
        return (try FleetDesired.decode(kv.value, key: key), kv.modRevision)
    }

    /// Writes `desired` for `target` if it is still at `revision` (0: if it has none); the revision written.
    /// Someone else's write in between is refused, naming who and when.
    public func write(_ target: FleetTarget, _ desired: FleetDesired, ifAt revision: Int64, cause: String) async throws -> Int64 {
        let problems = desired.problems()
        if let first = problems.first {
            throw FleetError(.badInput, "the desired state for \(target) is not valid: \(first)", hint: problems.count > 1 ? "and \(problems.count - 1) more problem(s)" : nil)
        }
        var stamped = desired
        stamped.changedBy = actor
        stamped.changedAt = Date().fleetTimestamp
        stamped.cause = cause
        switch try await client.swap(layout.key(target), stamped.encoded(), ifAt: revision) {
        case .written(let at): return at
        case .conflict(let current): throw Self.conflict(target, read: revision, current: current, key: layout.key(target))
        }
    }

    static func conflict(_ target: FleetTarget, read: Int64, current: EtcdClient.KeyValue?, key: String) -> FleetError {
        guard let current else {
            return FleetError(.conflict, "\(target) was removed since it was read at revision \(read)", hint: "read it again (l3af fleet get \(target)) and retry")
        }
        let who = (try? FleetDesired.decode(current.value, key: key)).map { " by \($0.changedBy ?? "someone")\($0.cause.map { " (\($0))" } ?? "")" } ?? ""
        if read == 0 {
            return FleetError(.conflict, "\(target) already has a desired state (written at revision \(current.modRevision)\(who)); nothing was written",
                              hint: "read it (l3af fleet get \(target)) and write on top of its revision")
        }
        return FleetError(.conflict, "\(target) was changed at revision \(current.modRevision)\(who) since it was read at revision \(read); nothing was written",
                          hint: "read it again (l3af fleet get \(target)) and retry on top of that change")
    }

    /// Reads, changes and writes `target`'s document; when someone else wrote it in between, does it again on top of
    /// their change (a few times), so neither change is lost.
    public func modify(_ target: FleetTarget, cause: String, _ change: (inout FleetDesired) throws -> Void) async throws -> Int64 {
        for attempt in 1...5 {
            let (current, revision) = try await read(target)
            var desired = current ?? FleetDesired()
            try change(&desired)
            do { return try await write(target, desired, ifAt: revision, cause: cause) } catch let error as FleetError where error.kind == .conflict && attempt < 5 {
                continue
            }
        }
        throw FleetError(.conflict, "\(target) kept changing while it was being written", hint: "try again")
    }

    /// Every status under the prefix (the live hosts: a dead host's lease took its status away).
    public func statuses() async throws -> [FleetStatus] {
        let (kvs, _) = try await client.read([.prefix(layout.statuses)])
        return kvs.compactMap { try? DocumentDecoder.decode(FleetStatus.self, from: $0.value, document: $0.key) }.sorted { $0.host < $1.host }
    }

    /// Every group's and host's document, by target, with its revision.
    public func documents() async throws -> [FleetTarget: (FleetDesired, Int64)] {
        let (kvs, _) = try await client.read([.prefix(layout.groups), .prefix(layout.hosts)])
        var documents: [FleetTarget: (FleetDesired, Int64)] = [:]
        for kv in kvs {
            guard let target = layout.target(ofKey: kv.key) else { continue }
            documents[target] = (try FleetDesired.decode(kv.value, key: kv.key), kv.modRevision)
        }
        return documents
    }

    /// What `host` (member of `groups`, in that order) should run, from `documents`.
    public static func effective(host: FleetName, groups: [String], documents: [FleetTarget: (FleetDesired, Int64)]) -> FleetEffective {
        let groupDocuments = groups.compactMap { try? FleetName($0, what: "group") }.compactMap { group in documents[.group(group)].map { (group, $0.0, $0.1) } }
        return FleetEffective.fold(groups: groupDocuments, host: documents[.host(host)])
    }

    /// The versions of `target`'s document, newest first, each with the revision it was written at. Stops at
    /// `limit`, at the key's creation, or where etcd compacted its history (`compacted`). A removed document gives
    /// one entry without a document, at the store's revision.
    public func history(_ target: FleetTarget, limit: Int = 20) async throws -> (entries: [(revision: Int64, desired: FleetDesired?)], compacted: Bool) {
        let key = layout.key(target)
        let (now, at) = try await client.get(key)
        guard var cursor = now else { return ([(at, nil)], false) }
        var entries: [(revision: Int64, desired: FleetDesired?)] = []
        while true {
            entries.append((cursor.modRevision, try? FleetDesired.decode(cursor.value, key: key)))
            if entries.count >= limit || cursor.version <= 1 { return (entries, false) }
            let previous: EtcdClient.KeyValue?
            do { (previous, _) = try await client.get(key, revision: cursor.modRevision - 1) } catch {
                guard error.kind == .compacted else { throw error }
                return (entries, true)
            }
            guard let previous else { return (entries, false) }
            cursor = previous
        }
    }

    /// Writes back the version `target` had at `revision` (default: the one before the current), as a new write
    /// compared against the current one.
    public func rollback(_ target: FleetTarget, to revision: Int64?) async throws -> (written: Int64, from: Int64) {
        let key = layout.key(target)
        let (kv, _) = try await client.get(key)
        guard let kv else { throw FleetError(.notFound, "\(target) has no desired state to roll back", hint: "l3af fleet history \(target) shows what it had") }
        let at = revision ?? (kv.modRevision - 1)
        guard at < kv.modRevision, at > 0 else { throw FleetError(.badInput, "revision \(at) is not before \(target)'s current revision \(kv.modRevision)") }
        let old: EtcdClient.KeyValue?
        do { (old, _) = try await client.get(key, revision: at) } catch {
            guard error.kind == .compacted else { throw error }
            throw FleetError(.notFound, "etcd no longer has revision \(at) (compacted)", hint: "l3af fleet history \(target) shows what is left")
        }
        guard let old else { throw FleetError(.notFound, "\(target) had no desired state at revision \(at)", hint: "l3af fleet history \(target) lists its revisions") }
        let desired = try FleetDesired.decode(old.value, key: key)
        let written = try await write(target, desired, ifAt: kv.modRevision, cause: "rollback to the version of revision \(old.modRevision)")
        return (written, old.modRevision)
    }
}
