import Foundation
import GRDB
import L3AFModel

/// The host's state in SQLite (GRDB): every revision (number, time, kind, cause, actor, the whole snapshot), the
/// pins, and the change in flight. Migrations run on open, so a database written by an older l3af is upgraded
/// in place.
///
/// A change is written twice: first as the *pending* revision (the snapshot it is about to make real), then,
/// once the kernel matches it, *committed*. A process killed in between leaves the pending row; the next writer
/// finds it and makes the kernel and the database agree (see `Host.repair`). History shows committed rows only.
public final class HostDatabase: Sendable {
    public let path: String
    private let queue: DatabaseQueue

    public init(path: String) throws(HostError) {
        self.path = path
        do {
            // The state folder holds history and locks: not for other users to read.
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            queue = try DatabaseQueue(path: path, configuration: configuration)
            // A current schema (every open after the first) costs one read, not a write transaction.
            let migrator = Self.migrator
            if try !queue.read({ try migrator.hasCompletedMigrations($0) }) { try migrator.migrate(queue) }
        } catch {
            throw HostError(.storage, "can't open the host database \(path): \(error)",
                            hint: "check the path (--state) and its permissions; a corrupt file can be moved away, `l3af restore` then starts empty")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: revisions, pins") { db in
            try db.create(table: "revision") { t in
                t.primaryKey("number", .integer)
                t.column("time", .double).notNull()
                t.column("kind", .text).notNull()
                t.column("cause", .text).notNull()
                t.column("actor", .text).notNull()
                t.column("snapshot", .text).notNull()
                t.column("status", .text).notNull().defaults(to: "committed")
            }
            try db.create(table: "pin") { t in
                t.column("package", .text).notNull()
                t.column("interface", .text).notNull()  // "" for every interface
                t.column("version", .text).notNull()
                t.primaryKey(["package", "interface"])
            }
        }
        // Release 0.1.0 stored snapshots without a format; every row is read tolerantly, checked, and written back
        // in the current format, so a row this release can't read fails the migration (and the open) here, loudly,
        // instead of later in the middle of a rollback.
        migrator.registerMigration("v2: snapshot format") { db in
            // Idempotent: two processes opening an old database at once may both run it.
            if try !db.columns(in: "revision").contains(where: { $0.name == "format" }) {
                try db.alter(table: "revision") { t in t.add(column: "format", .integer).notNull().defaults(to: 1) }
            }
            for row in try Row.fetchAll(db, sql: "SELECT number, snapshot FROM revision") {
                let number: Int = row["number"]
                let snapshot = try decodeSnapshot(row["snapshot"], revision: number)
                try db.execute(sql: "UPDATE revision SET snapshot = ?, format = ? WHERE number = ?",
                               arguments: [try encodeSnapshot(snapshot), HostSnapshot.currentFormat, number])
            }
        }
        return migrator
    }

    /// `body` in a write transaction; with `reading`, in a read transaction, which never waits for a writer's.
    private func run<T>(reading: Bool = false, _ body: (Database) throws -> T) throws(HostError) -> T {
        do {
            return reading ? try queue.read(body) : try queue.write(body)
        } catch let error as HostError {
            throw error
        } catch {
            throw HostError(.storage, "the host database \(path): \(error)")
        }
    }

    private static func revision(_ row: Row) throws -> Revision {
        let number: Int = row["number"]
        return Revision(number: number, time: Date(timeIntervalSince1970: row["time"]), kind: RevisionKind(rawValue: row["kind"]),
                        cause: row["cause"], actor: row["actor"], snapshot: try decodeSnapshot(row["snapshot"], revision: number))
    }

    /// A stored snapshot, of any format: fields this release doesn't know are ignored.
    static func decodeSnapshot(_ json: String, revision: Int) throws -> HostSnapshot {
        let decoder = JSONDecoder()
        decoder.userInfo[.toleratesUnknownKeys] = true
        do { return try decoder.decode(HostSnapshot.self, from: Data(json.utf8)) } catch let error as DecodingError {
            throw HostError(.storage, "revision \(revision)'s snapshot can't be read: \(DocumentError(document: "snapshot", decodingError: error).description)",
                            hint: "it was written by an l3af this one can't read; keep the database and use the release that wrote it")
        }
    }

    static func encodeSnapshot(_ snapshot: HostSnapshot) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(Stored(snapshot: snapshot)), as: UTF8.self)
    }

    /// A snapshot with its `format` number beside its own fields, in one encoding pass.
    private struct Stored: Encodable {
        let snapshot: HostSnapshot
        private enum Key: String, CodingKey { case format }
        func encode(to encoder: any Encoder) throws {
            try snapshot.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(HostSnapshot.currentFormat, forKey: .format)
        }
    }

    // MARK: Revisions

    /// The last committed revision.
    public func current() throws(HostError) -> Revision? {
        try run(reading: true) { db in try Row.fetchOne(db, sql: "SELECT * FROM revision WHERE status = 'committed' ORDER BY number DESC LIMIT 1").map(Self.revision) }
    }

    public func revision(_ number: Int) throws(HostError) -> Revision? {
        try run(reading: true) { db in try Row.fetchOne(db, sql: "SELECT * FROM revision WHERE status = 'committed' AND number = ?", arguments: [number]).map(Self.revision) }
    }

    /// Committed revisions, newest first.
    public func history(limit: Int = 1000) throws(HostError) -> [Revision] {
        try run(reading: true) { db in try Row.fetchAll(db, sql: "SELECT * FROM revision WHERE status = 'committed' ORDER BY number DESC LIMIT ?", arguments: [limit]).map(Self.revision) }
    }

    /// Committed revisions after `number`, oldest first (what an observer missed since it last looked).
    public func revisions(after number: Int, limit: Int = 1000) throws(HostError) -> [Revision] {
        try run(reading: true) { db in
            try Row.fetchAll(db, sql: "SELECT * FROM revision WHERE status = 'committed' AND number > ? ORDER BY number LIMIT ?", arguments: [number, limit])
                .map(Self.revision)
        }
    }

    /// The numbers of the current and the pending revision, without reading the revisions.
    public func revisionNumbers() throws(HostError) -> (current: Int?, pending: Int?) {
        try run(reading: true) { db in
            let rows = try Row.fetchAll(db, sql: "SELECT status, MAX(number) AS number FROM revision WHERE status IN ('committed', 'pending') GROUP BY status")
            var numbers: (current: Int?, pending: Int?) = (nil, nil)
            for row in rows {
                if row["status"] as String == "committed" { numbers.current = row["number"] } else { numbers.pending = row["number"] }
            }
            return numbers
        }
    }

    /// The change in flight, if a process was stopped in the middle of one.
    public func pending() throws(HostError) -> Revision? {
        try run(reading: true) { db in try Row.fetchOne(db, sql: "SELECT * FROM revision WHERE status = 'pending' ORDER BY number DESC LIMIT 1").map(Self.revision) }
    }

    /// Records `snapshot` as the pending revision (replacing any other pending one) and returns its number.
    public func begin(kind: RevisionKind, cause: String, actor: String, snapshot: HostSnapshot, time: Date = Date()) throws(HostError) -> Int {
        let json: String
        do { json = try Self.encodeSnapshot(snapshot) } catch {
            throw HostError(.storage, "encoding the host snapshot: \(error)")
        }
        return try run { db in
            try db.execute(sql: "DELETE FROM revision WHERE status = 'pending'")
            let next = (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM revision") ?? 0) + 1
            try db.execute(sql: "INSERT INTO revision (number, time, kind, cause, actor, snapshot, status, format) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                           arguments: [next, time.timeIntervalSince1970, kind.rawValue, cause, actor, json, HostSnapshot.currentFormat])
            return next
        }
    }

    /// The pending revision `number` becomes part of history.
    public func commit(_ number: Int) throws(HostError) {
        try run { db in try db.execute(sql: "UPDATE revision SET status = 'committed' WHERE number = ? AND status = 'pending'", arguments: [number]) }
    }

    /// Deletes committed revisions older than the newest `keep`: history is bounded.
    public func prune(keeping keep: Int) throws(HostError) {
        try run { db in
            try db.execute(sql: "DELETE FROM revision WHERE status = 'committed' AND number <= (SELECT MAX(number) FROM revision WHERE status = 'committed') - ?",
                           arguments: [max(keep, 1)])
        }
    }

    /// Drops the pending revision: the change did not happen.
    public func abandon(_ number: Int) throws(HostError) {
        try run { db in try db.execute(sql: "DELETE FROM revision WHERE number = ? AND status = 'pending'", arguments: [number]) }
    }

    // MARK: Pins

    public struct Pin: Sendable, Codable, Hashable {
        public var package: PackageName
        /// `nil`: every interface.
        public var interface: String?
        public var version: PackageVersion

        public init(package: PackageName, interface: String?, version: PackageVersion) {
            self.package = package
            self.interface = interface
            self.version = version
        }
    }

    public func pins() throws(HostError) -> [Pin] {
        try run(reading: true) { db in
            try Row.fetchAll(db, sql: "SELECT * FROM pin ORDER BY package, interface").map { row in
                let interface: String = row["interface"]
                return Pin(package: try PackageName(row["package"] as String), interface: interface.isEmpty ? nil : interface,
                           version: try PackageVersion(row["version"] as String))
            }
        }
    }

    /// The pin that holds `package` on `interface` (its own, else the one for every interface).
    public func pin(for package: PackageName, interface: String) throws(HostError) -> Pin? {
        Self.pin(in: try pins(), for: package, interface: interface)
    }

    /// The pin of `pins` that holds `package` on `interface`.
    public static func pin(in pins: [Pin], for package: PackageName, interface: String) -> Pin? {
        let all = pins.filter { $0.package == package }
        return all.first { $0.interface == interface } ?? all.first { $0.interface == nil }
    }

    public func setPin(_ pin: Pin) throws(HostError) {
        try run { db in
            try db.execute(sql: "INSERT OR REPLACE INTO pin (package, interface, version) VALUES (?, ?, ?)",
                           arguments: [pin.package.rawValue, pin.interface ?? "", pin.version.rawValue])
        }
    }

    /// Removes the pins of `package` (on `interface` only, when given); returns how many there were.
    public func removePins(package: PackageName, interface: String?) throws(HostError) -> Int {
        try run { db in
            if let interface {
                try db.execute(sql: "DELETE FROM pin WHERE package = ? AND interface = ?", arguments: [package.rawValue, interface])
            } else {
                try db.execute(sql: "DELETE FROM pin WHERE package = ?", arguments: [package.rawValue])
            }
            return db.changesCount
        }
    }
}
