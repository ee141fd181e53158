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
            try Self.migrator.migrate(queue)
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
        return migrator
    }

    private func run<T>(_ body: (Database) throws -> T) throws(HostError) -> T {
        do {
            return try queue.write(body)
        } catch {
            throw HostError(.storage, "the host database \(path): \(error)")
        }
    }

    private static func revision(_ row: Row) throws -> Revision {
        let snapshot = try JSONDecoder().decode(HostSnapshot.self, from: Data((row["snapshot"] as String).utf8))
        return Revision(number: row["number"], time: Date(timeIntervalSince1970: row["time"]), kind: row["kind"], cause: row["cause"],
                        actor: row["actor"], snapshot: snapshot)
    }

    // MARK: Revisions

    /// The last committed revision.
    public func current() throws(HostError) -> Revision? {
        try run { db in try Row.fetchOne(db, sql: "SELECT * FROM revision WHERE status = 'committed' ORDER BY number DESC LIMIT 1").map(Self.revision) }
    }

    public func revision(_ number: Int) throws(HostError) -> Revision? {
        try run { db in try Row.fetchOne(db, sql: "SELECT * FROM revision WHERE status = 'committed' AND number = ?", arguments: [number]).map(Self.revision) }
    }

    /// Committed revisions, newest first.
    public func history(limit: Int = 1000) throws(HostError) -> [Revision] {
        try run { db in try Row.fetchAll(db, sql: "SELECT * FROM revision WHERE status = 'committed' ORDER BY number DESC LIMIT ?", arguments: [limit]).map(Self.revision) }
    }

    /// The change in flight, if a process was stopped in the middle of one.
    public func pending() throws(HostError) -> Revision? {
        try run { db in try Row.fetchOne(db, sql: "SELECT * FROM revision WHERE status = 'pending' ORDER BY number DESC LIMIT 1").map(Self.revision) }
    }

    /// Records `snapshot` as the pending revision (replacing any other pending one) and returns its number.
    public func begin(kind: String, cause: String, actor: String, snapshot: HostSnapshot) throws(HostError) -> Int {
        let json: String
        do { json = String(decoding: try JSONEncoder().encode(snapshot), as: UTF8.self) } catch {
            throw HostError(.storage, "encoding the host snapshot: \(error)")
        }
        return try run { db in
            try db.execute(sql: "DELETE FROM revision WHERE status = 'pending'")
            let next = (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM revision") ?? 0) + 1
            try db.execute(sql: "INSERT INTO revision (number, time, kind, cause, actor, snapshot, status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                           arguments: [next, Date().timeIntervalSince1970, kind, cause, actor, json])
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
        public var package: String
        /// `nil`: every interface.
        public var interface: String?
        public var version: String
    }

    public func pins() throws(HostError) -> [Pin] {
        try run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM pin ORDER BY package, interface").map { row in
                let interface: String = row["interface"]
                return Pin(package: row["package"], interface: interface.isEmpty ? nil : interface, version: row["version"])
            }
        }
    }

    /// The pin that holds `package` on `interface` (its own, else the one for every interface).
    public func pin(for package: String, interface: String) throws(HostError) -> Pin? {
        let all = try pins().filter { $0.package == package }
        return all.first { $0.interface == interface } ?? all.first { $0.interface == nil }
    }

    public func setPin(_ pin: Pin) throws(HostError) {
        try run { db in
            try db.execute(sql: "INSERT OR REPLACE INTO pin (package, interface, version) VALUES (?, ?, ?)",
                           arguments: [pin.package, pin.interface ?? "", pin.version])
        }
    }

    /// Removes the pins of `package` (on `interface` only, when given); returns how many there were.
    public func removePins(package: String, interface: String?) throws(HostError) -> Int {
        try run { db in
            if let interface {
                try db.execute(sql: "DELETE FROM pin WHERE package = ? AND interface = ?", arguments: [package, interface])
            } else {
                try db.execute(sql: "DELETE FROM pin WHERE package = ?", arguments: [package])
            }
            return db.changesCount
        }
    }
}
