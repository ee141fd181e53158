import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import L3AFModel
import Synchronization

/// An etcd v3 client over gRPC (the code generated from etcd's protos, `scripts/gen-etcd-grpc`): the reads, the
/// compare-and-swap writes, leases and watches the fleet needs, nothing else. One HTTP/2 connection; with several
/// endpoints it takes the first that answers and moves on when it fails.
public final class EtcdClient: Sendable {
    /// A key and its value, with the revisions etcd keeps of it.
    public struct KeyValue: Sendable, Equatable {
        public var key: String
        public var value: [UInt8]
        /// The store's revision when the key was last written (what a compare-and-swap compares).
        public var modRevision: Int64
        public var createRevision: Int64
        /// How many times it was written since it was created.
        public var version: Int64
        public var lease: Int64

        init(_ kv: Mvccpb_KeyValue) {
            key = String(decoding: kv.key, as: UTF8.self)
            value = Array(kv.value)
            modRevision = kv.modRevision
            createRevision = kv.createRevision
            version = kv.version
            lease = kv.lease
        }

        public init(key: String, value: [UInt8], modRevision: Int64, createRevision: Int64 = 0, version: Int64 = 1, lease: Int64 = 0) {
            self.key = key
            self.value = value
            self.modRevision = modRevision
            self.createRevision = createRevision
            self.version = version
            self.lease = lease
        }
    }

    /// One change a watch reports: a key written (with its new value) or deleted.
    public struct Event: Sendable, Equatable {
        public var deleted: Bool
        public var kv: KeyValue
    }

    /// What a watch follows: one key, or every key under a prefix.
    public enum Target: Sendable, Hashable {
        case key(String)
        case prefix(String)
    }

    /// A compare-and-swap's outcome: written at a revision, or refused because the key is no longer at the revision
    /// the caller read (what it is now, `nil` when it is gone).
    public enum Swap: Sendable, Equatable {
        case written(revision: Int64)
        case conflict(current: KeyValue?)
    }

    public let endpoints: [String]
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let runner: Task<Void, Never>
    let timeout: Duration
    private let received = Atomic<Int>(0)
    private let requests = Atomic<Int>(0)

    /// Bytes of the messages etcd sent this client, and the requests (calls and stream messages) it sent.
    public var bytesReceived: Int { received.load(ordering: .relaxed) }
    public var requestsSent: Int { requests.load(ordering: .relaxed) }

    /// `endpoints`: `http://host:port`, `https://host:port` (TLS: `tls` must be given) or `host:port`.
    public init(endpoints: [String], tls: FleetTLS? = nil, timeout: Duration = .seconds(5)) throws(FleetError) {
        let parsed = try endpoints.map { endpoint throws(FleetError) in try Self.parse(endpoint) }
        guard let first = parsed.first else { throw FleetError(.badConfiguration, "no etcd endpoint given", hint: "e.g. --etcd http://127.0.0.1:2379") }
        let secure = parsed.contains { $0.secure }
        if secure, tls == nil { throw FleetError(.badConfiguration, "https etcd endpoints need the CA that signed etcd's certificate", hint: "give the fleet TLS ca (and cert and key for client certificates)") }
        // Several endpoints are tried in order (the first that answers, the next when it fails): as IP addresses; a
        // name is resolved, and each address it has is tried the same way, so several names can't be given.
        let target: any ResolvableTarget
        if parsed.allSatisfy({ Self.isIPv4($0.host) }) {
            target = .ipv4(pairs: parsed.map { (host: $0.host, port: $0.port) })
        } else if parsed.count == 1 {
            target = .dns(host: first.host, port: first.port)
        } else {
            throw FleetError(.badConfiguration, "several etcd endpoints are given by name (\(endpoints.joined(separator: ", ")))",
                             hint: "give the members' IP addresses, or one name that resolves to every member")
        }
        var security = HTTP2ClientTransport.Posix.TransportSecurity.plaintext
        if let tls, secure || tls.certificate != nil {
            security = Self.security(tls)
        }
        let transport: HTTP2ClientTransport.Posix
        do {
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.backoff.initial = .milliseconds(100)
            config.backoff.max = .seconds(2)
            config.connection.maxIdleTime = nil
            // A silent partition is noticed within 15 s (etcd refuses pings more often than every 5 s, and without a call).
            config.connection.keepalive = .init(time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: false)
            transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: security, config: config)
        } catch {
            throw FleetError(.badConfiguration, "can't set up the etcd client for \(endpoints.joined(separator: ",")): \(error)")
        }
        self.endpoints = endpoints
        self.timeout = timeout
        let client = GRPCClient(transport: transport)
        self.client = client
        runner = Task { try? await client.runConnections() }
    }

    deinit { close() }

    /// Ends the connection; calls under way fail.
    public func close() {
        client.beginGracefulShutdown()
        runner.cancel()
    }

    static func security(_ tls: FleetTLS) -> HTTP2ClientTransport.Posix.TransportSecurity {
        let roots: TLSConfig.TrustRootsSource = tls.ca.map { .certificates([.file(path: $0, format: .pem)]) } ?? .systemDefault
        if let certificate = tls.certificate, let key = tls.key {
            return .mTLS(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem)) { config in
                config.trustRoots = roots
            }
        }
        return .tls { config in config.trustRoots = roots }
    }

    static func isIPv4(_ host: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1
    }

    /// `http://host:port`, `https://host:port` or `host:port`, checked.
    static func parse(_ endpoint: String) throws(FleetError) -> (host: String, port: Int, secure: Bool) {
        var text = Substring(endpoint.trimmingCharacters(in: .whitespaces))
        var secure = false
        if text.hasPrefix("https://") { secure = true; text = text.dropFirst(8) } else if text.hasPrefix("http://") { text = text.dropFirst(7) }
        if text.hasSuffix("/") { text = text.dropLast() }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw FleetError(.badConfiguration, "the etcd endpoint '\(endpoint)' is not http://host:port", hint: "e.g. http://127.0.0.1:2379")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:".contains($0) }) else {
            throw FleetError(.badConfiguration, "the etcd endpoint '\(endpoint)' has no host name", hint: "e.g. http://127.0.0.1:2379")
        }
        return (host, port, secure)
    }

    var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.maxResponseMessageBytes = Self.maximumReply
        return options
    }

    /// The largest reply taken (a read of every status of a large fleet): 64 MiB.
    static let maximumReply = 64 << 20

    /// Runs one call, counting it, and turns gRPC's errors into ``FleetError/Kind/unavailable`` ones naming etcd.
    func call<T: SwiftProtobuf.Message>(_ what: String, _ body: () async throws -> T) async throws(FleetError) -> T {
        requests.add(1, ordering: .relaxed)
        do {
            let reply = try await body()
            received.add(reply.serializedBytesCount, ordering: .relaxed)
            return reply
        } catch let error as RPCError {
            if error.message.contains("compacted") {
                throw FleetError(.compacted, "etcd no longer has that revision: \(error.message)", hint: "etcd compacted its history")
            }
            switch error.code {
            case .permissionDenied, .unauthenticated:
                throw FleetError(.badConfiguration, "etcd refused \(what): \(error.message)", hint: "check the client certificate and etcd's authentication")
            case .resourceExhausted, .invalidArgument, .outOfRange:
                throw FleetError(.badInput, "etcd refused \(what): \(error.message)", hint: "a value over etcd's request limit (1.5 MiB by default) is refused; split it")
            default:
                throw FleetError(.unavailable, "etcd (\(endpoints.joined(separator: ","))) did not answer \(what): \(error.code): \(error.message)",
                                 hint: "check that etcd runs and the endpoints and TLS settings are right")
            }
        } catch {
            throw FleetError(.unavailable, "etcd (\(endpoints.joined(separator: ","))) did not answer \(what): \(error)")
        }
    }

    static func data(_ text: String) -> Data { Data(text.utf8) }

    /// The end of the range of every key starting with `prefix`: the prefix with its last byte incremented.
    static func rangeEnd(ofPrefix prefix: String) -> Data {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xff { bytes[bytes.count - 1] = last + 1; return Data(bytes) }
            bytes.removeLast()
        }
        return Data([0])
    }

    static func rangeRequest(_ target: Target, revision: Int64 = 0) -> Etcdserverpb_RangeRequest {
        var request = Etcdserverpb_RangeRequest()
        switch target {
        case .key(let key): request.key = data(key)
        case .prefix(let prefix):
            request.key = data(prefix)
            request.rangeEnd = rangeEnd(ofPrefix: prefix)
        }
        request.revision = revision
        return request
    }

    /// The key (`nil` when absent) and the store's revision, now or at an earlier `revision`.
    public func get(_ key: String, revision: Int64 = 0) async throws(FleetError) -> (KeyValue?, revision: Int64) {
        let kv = Etcdserverpb_KV.Client(wrapping: client)
        let request = Self.rangeRequest(.key(key), revision: revision)
        let reply = try await call("a read of \(key)") { try await kv.range(request, options: options) }
        return (reply.kvs.first.map(KeyValue.init), reply.header.revision)
    }

    /// Several keys and prefixes read at one revision (one transaction of reads), and that revision.
    public func read(_ targets: [Target]) async throws(FleetError) -> ([KeyValue], revision: Int64) {
        var txn = Etcdserverpb_TxnRequest()
        txn.success = targets.map { target in
            var op = Etcdserverpb_RequestOp()
            op.requestRange = Self.rangeRequest(target)
            return op
        }
        let kv = Etcdserverpb_KV.Client(wrapping: client)
        let reply = try await call("a read of \(targets.count) range(s)") { try await kv.txn(txn, options: options) }
        return (reply.responses.flatMap { $0.responseRange.kvs.map(KeyValue.init) }, reply.header.revision)
    }

    /// Writes `value` (attached to `lease`, 0 for none) unconditionally; the revision it made.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) async throws(FleetError) -> Int64 {
        var request = Etcdserverpb_PutRequest()
        request.key = Self.data(key)
        request.value = Data(value)
        request.lease = lease
        let kv = Etcdserverpb_KV.Client(wrapping: client)
        return try await call("a write of \(key)") { try await kv.put(request, options: options) }.header.revision
    }

    /// Writes `value` only if the key is still at `modRevision` (0: only if it doesn't exist), in one transaction;
    /// `nil` deletes it under the same condition.
    public func swap(_ key: String, _ value: [UInt8]?, ifAt modRevision: Int64) async throws(FleetError) -> Swap {
        var compare = Etcdserverpb_Compare()
        compare.key = Self.data(key)
        compare.target = .mod
        compare.result = .equal
        compare.modRevision = modRevision
        var op = Etcdserverpb_RequestOp()
        if let value {
            var put = Etcdserverpb_PutRequest()
            put.key = Self.data(key)
            put.value = Data(value)
            op.requestPut = put
        } else {
            var delete = Etcdserverpb_DeleteRangeRequest()
            delete.key = Self.data(key)
            op.requestDeleteRange = delete
        }
        var failure = Etcdserverpb_RequestOp()
        failure.requestRange = Self.rangeRequest(.key(key))
        var txn = Etcdserverpb_TxnRequest()
        txn.compare = [compare]
        txn.success = [op]
        txn.failure = [failure]
        let kv = Etcdserverpb_KV.Client(wrapping: client)
        let reply = try await call("a conditional write of \(key)") { try await kv.txn(txn, options: options) }
        if reply.succeeded { return .written(revision: reply.header.revision) }
        return .conflict(current: reply.responses.first?.responseRange.kvs.first.map(KeyValue.init))
    }

    /// Deletes every key under `prefix`; how many.
    @discardableResult
    public func delete(prefix: String) async throws(FleetError) -> Int64 {
        var request = Etcdserverpb_DeleteRangeRequest()
        request.key = Self.data(prefix)
        request.rangeEnd = Self.rangeEnd(ofPrefix: prefix)
        let kv = Etcdserverpb_KV.Client(wrapping: client)
        return try await call("a delete under \(prefix)") { try await kv.deleteRange(request, options: options) }.deleted
    }

    /// A lease of `ttl` seconds: keys written with it disappear when it is not kept alive.
    public func grantLease(ttl: Int64) async throws(FleetError) -> Int64 {
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttl
        let lease = Etcdserverpb_Lease.Client(wrapping: client)
        let reply = try await call("a lease grant") { try await lease.leaseGrant(request, options: options) }
        guard reply.error.isEmpty else { throw FleetError(.unavailable, "etcd refused a lease: \(reply.error)") }
        return reply.id
    }

    /// Keeps `id` alive once; the seconds it has left (0: it had expired, and its keys are gone).
    public func keepAlive(_ id: Int64) async throws(FleetError) -> Int64 {
        var message = Etcdserverpb_LeaseKeepAliveRequest()
        message.id = id
        let request = message
        let lease = Etcdserverpb_Lease.Client(wrapping: client)
        let streaming = StreamingClientRequest<Etcdserverpb_LeaseKeepAliveRequest> { writer in try await writer.write(request) }
        return try await call("a lease keep-alive") {
            try await lease.leaseKeepAlive(request: streaming, options: options) { response in
                for try await reply in response.messages { return reply }
                return Etcdserverpb_LeaseKeepAliveResponse()
            }
        }.ttl
    }

    /// Keeps `id` alive on one stream, renewing it every `interval` (as etcd's own client does: no new stream per
    /// renewal), until cancelled or the stream fails. Throws ``FleetError/Kind/notFound`` when the lease has expired
    /// (its keys are gone: grant a new one).
    public func keepAlive(_ id: Int64, every interval: Duration, answerWithin deadline: Duration) async throws {
        var message = Etcdserverpb_LeaseKeepAliveRequest()
        message.id = id
        let request = message
        let lease = Etcdserverpb_Lease.Client(wrapping: client)
        // Nanoseconds (of the continuous clock, since `start`) of the last answer: a stream etcd stopped answering is a
        // lease about to expire there, so the caller hears of it before it does.
        let answers = AnswerClock()
        let limit = deadline.components.seconds * 1_000_000_000 + deadline.components.attoseconds / 1_000_000_000
        let streaming = StreamingClientRequest<Etcdserverpb_LeaseKeepAliveRequest> { [self] writer in
            while !Task.isCancelled {
                if answers.silence > limit {
                    throw FleetError(.unavailable, "etcd did not answer lease renewals for \(deadline)")
                }
                try await writer.write(request)
                requests.add(1, ordering: .relaxed)
                try await Task.sleep(for: interval)
            }
        }
        var options = CallOptions.defaults
        options.timeout = nil
        do {
            try await lease.leaseKeepAlive(request: streaming, options: options) { [self] response in
                for try await reply in response.messages {
                    received.add(reply.serializedBytesCount, ordering: .relaxed)
                    if reply.ttl <= 0 { throw FleetError(.notFound, "the lease \(id) expired") }
                    answers.answered()
                }
            }
        } catch let error as FleetError {
            throw error
        } catch {
            throw FleetError(.unavailable, "the lease keep-alive stream to etcd (\(endpoints.joined(separator: ","))) ended: \(error)")
        }
        throw FleetError(.unavailable, "etcd ended the lease keep-alive stream")
    }

    /// Ends a lease now: its keys are deleted at once.
    public func revoke(_ id: Int64) async throws(FleetError) {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = id
        let lease = Etcdserverpb_Lease.Client(wrapping: client)
        _ = try await call("a lease revoke") { try await lease.leaseRevoke(request, options: options) }
    }

    /// Follows `targets` from `revision` (every change after the reads made at `revision - 1`) on one watch stream,
    /// calling `onEvents` with each batch and the revision every target is known to be seen up to (resume from the
    /// one after it: the targets catch up separately, so it is the lowest of theirs), until cancelled or the stream
    /// fails. Throws ``FleetError/Kind/compacted`` when etcd no longer has `revision` (read everything again), and
    /// what `onEvents` throws as it is (how a caller ends the watch).
    public func watch(_ targets: [Target], from revision: Int64,
                      onEvents: @escaping @Sendable ([Event], Int64) async throws -> Void) async throws {
        let watch = Etcdserverpb_Watch.Client(wrapping: client)
        let creates = targets.map { target in
            var create = Etcdserverpb_WatchCreateRequest()
            let range = Self.rangeRequest(target)
            create.key = range.key
            create.rangeEnd = range.rangeEnd
            create.startRevision = revision
            create.progressNotify = true
            var request = Etcdserverpb_WatchRequest()
            request.createRequest = create
            return request
        }
        requests.add(creates.count, ordering: .relaxed)
        // The request stream stays open while the answers come: etcd ends a watch whose client stops sending.
        let (done, finish) = AsyncStream<Void>.makeStream()
        let streaming = StreamingClientRequest<Etcdserverpb_WatchRequest> { writer in
            for create in creates { try await writer.write(create) }
            for await _ in done {}
        }
        var options = CallOptions.defaults
        options.timeout = nil
        options.maxResponseMessageBytes = Self.maximumReply
        do {
            try await watch.watch(request: streaming, options: options) { [self] response in
                defer { finish.finish() }
                // Per watch (in the order they were created): the revision it has delivered everything up to.
                var positions: [Int64: Int64] = [:]
                var created = 0
                for try await reply in response.messages {
                    self.received.add(reply.serializedBytesCount, ordering: .relaxed)
                    if reply.compactRevision > 0 {
                        throw FleetError(.compacted, "etcd compacted its history past revision \(revision) (now from \(reply.compactRevision))")
                    }
                    if reply.canceled {
                        throw FleetError(.unavailable, "etcd ended the watch: \(reply.cancelReason.isEmpty ? "no reason given" : reply.cancelReason)")
                    }
                    if reply.created {
                        created += 1
                        positions[reply.watchID] = revision - 1
                        continue
                    }
                    let events = reply.events.map { Event(deleted: $0.type == .delete, kv: KeyValue($0.kv)) }
                    // Events: delivered up to the last one's revision; none (a progress notice of a synced watch): up
                    // to the store's revision.
                    let reached = reply.events.map(\.kv.modRevision).max() ?? reply.header.revision
                    positions[reply.watchID] = max(positions[reply.watchID] ?? revision - 1, reached)
                    let seen = created < targets.count ? revision - 1 : (positions.values.min() ?? revision - 1)
                    do { try await onEvents(events, seen) } catch { throw CallerError(error: error) }
                }
            }
            finish.finish()
        } catch let error as FleetError {
            finish.finish()
            throw error
        } catch let error as CallerError {
            finish.finish()
            throw error.error
        } catch {
            finish.finish()
            if Task.isCancelled { throw FleetError(.unavailable, "the watch was stopped") }
            throw FleetError(.unavailable, "the watch on etcd (\(endpoints.joined(separator: ","))) ended: \(error)")
        }
        throw FleetError(.unavailable, "etcd ended the watch stream")
    }
}

/// When a stream was last answered, in nanoseconds since it began.
final class AnswerClock: Sendable {
    let start = ContinuousClock.now
    let last = Atomic<Int64>(0)

    var now: Int64 {
        let elapsed = ContinuousClock.now - start
        return elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    }

    func answered() { last.store(now, ordering: .relaxed) }
    /// Nanoseconds since the last answer (or the start).
    var silence: Int64 { now - last.load(ordering: .relaxed) }
}

/// An error `onEvents` threw, carried through gRPC's handler unchanged.
struct CallerError: Error {
    let error: any Error
}

import SwiftProtobuf

extension SwiftProtobuf.Message {
    /// The encoded size, for the bytes-read figure (0 when it can't be encoded, which can't happen for a decoded one).
    var serializedBytesCount: Int { ((try? serializedBytes() as [UInt8]) ?? []).count }
}

/// TLS to etcd: the CA that signed its certificate, and a client certificate and key when etcd asks for one.
public struct FleetTLS: Codable, Sendable, Equatable {
    public var ca: String?
    public var certificate: String?
    public var key: String?

    public init(ca: String?, certificate: String? = nil, key: String? = nil) {
        self.ca = ca
        self.certificate = certificate
        self.key = key
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case ca
        case certificate = "cert"
        case key
    }
}
