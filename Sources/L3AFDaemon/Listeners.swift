import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The sockets the daemon listens on, made here rather than by the HTTP server, so that a graceful restart can hand
/// them to the next process: a connection the kernel queued while the processes changed places is accepted by the new
/// one, never reset, and none is refused. Each socket is held twice: once by the server that accepts on it, once here
/// (close-on-exec), so it stays open when the server closes.
final class Listeners: Sendable {
    /// The variable that names the sockets a process hands over: `api=5,metrics=6`.
    static let environment = "L3AFD_LISTENERS"

    /// By role (`api`, `metrics`, `debug`, `socket`): the descriptor this process keeps.
    private let held = Mutex<[String: Int32]>([:])
    /// What a previous process handed over and no role took yet.
    private let inherited: Mutex<[String: Int32]>
    /// The roles that took a socket handed over.
    private let adopted = Mutex<Set<String>>([])

    init() {
        var inherited: [String: Int32] = [:]
        if let text = getenv(Self.environment).map({ String(cString: $0) }) {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=")
                guard parts.count == 2, let fd = Int32(parts[1]), fd > 2, Self.isListening(fd) else { continue }
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                inherited[String(parts[0])] = fd
            }
            // Not for the children this process starts.
            unsetenv(Self.environment)
        }
        self.inherited = Mutex(inherited)
    }

    /// A listening TCP socket for `role` on `host:port`: the one handed over when it listens on that port (any port,
    /// when `port` is 0), else a new one. Returns a descriptor for the server to own.
    func tcp(_ role: String, host: String, port: Int) throws -> Int32 {
        let address: SocketAddress
        do { address = try SocketAddress.makeAddressResolvingHost(host, port: port) } catch {
            throw DaemonError(.badConfiguration, "can't resolve \(host): \(error)", hint: "listen on an IP address or a name this host resolves")
        }
        // Taken over only when bound to the same address (any port, when `port` is 0): a configuration that moved the
        // API (say, from every interface to loopback) gets a new socket, never the old exposure.
        if let fd = adopt(role, matching: { fd in
            Self.bound(fd).map { $0.ipAddress == address.ipAddress && (port == 0 || $0.port == port) } ?? false
        }) {
            return try serve(role, fd)
        }
        let fd = socket(address.protocol == .inet6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Self.failure("socket", "\(host):\(port)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
        guard bound == 0, listen(fd, 256) == 0 else {
            let error = Self.failure(bound == 0 ? "listen" : "bind", "\(host):\(port)")
            close(fd)
            throw error
        }
        return try serve(role, fd)
    }

    /// A listening Unix socket at `path` for `role`, owner-only from the moment it exists (bind(2) takes its mode from
    /// the umask); the one handed over when it is bound to `path`.
    func unix(_ role: String, path: String, prepare: () throws -> Void) throws -> Int32 {
        if let fd = adopt(role, matching: { Self.bound($0)?.pathname == path }) { return try serve(role, fd) }
        try prepare()
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Self.failure("socket", path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw DaemonError(.badConfiguration, "the socket path \(path) is too long", hint: "use a path under 108 bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in buffer.copyBytes(from: bytes) }
        let before = umask(0o077)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        umask(before)
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 256) == 0 else {
            let error = Self.failure("bind", path)
            close(fd)
            throw error
        }
        return try serve(role, fd)
    }

    /// Closes what was handed over and no role took (an option dropped from the configuration).
    func closeUnclaimed() {
        inherited.withLock { inherited in
            for fd in inherited.values { close(fd) }
            inherited.removeAll()
        }
    }

    /// The variable that hands every held socket to this process's next image (exec), with their close-on-exec
    /// flags cleared; `nil` when none is held.
    func keptAcrossExec() -> String? {
        held.withLock { held in
            for fd in held.values { _ = fcntl(fd, F_SETFD, 0) }
            return held.isEmpty ? nil : held.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        }
    }

    /// For a new process that gets the held sockets as descriptors 3, 4, … (``l3af_spawn_keeping``): the descriptors
    /// in that order, and the variable that names them there.
    func forNewProcess() -> (descriptors: [Int32], variable: String?) {
        held.withLock { held in
            let roles = held.sorted { $0.key < $1.key }
            return (roles.map(\.value), roles.isEmpty ? nil : roles.enumerated().map { "\($0.element.key)=\(3 + $0.offset)" }.joined(separator: ","))
        }
    }

    /// Whether `role`'s socket was handed over by another process.
    func inherited(_ role: String) -> Bool { adopted.withLock { $0.contains(role) } }

    private func adopt(_ role: String, matching: (Int32) -> Bool) -> Int32? {
        let fd: Int32? = inherited.withLock { inherited in
            guard let fd = inherited.removeValue(forKey: role) else { return nil }
            if matching(fd) { return fd }
            close(fd)
            return nil
        }
        if fd != nil { adopted.withLock { _ = $0.insert(role) } }
        return fd
    }

    /// Keeps `fd` for `role` and returns a duplicate for the server to own and close.
    private func serve(_ role: String, _ fd: Int32) throws -> Int32 {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard copy >= 0 else {
            close(fd)
            throw Self.failure("dup", role)
        }
        held.withLock { held in
            if let old = held[role] { close(old) }
            held[role] = fd
        }
        return copy
    }

    static func isListening(_ fd: Int32) -> Bool {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0 && value == 1
    }

    /// The address a socket is bound to (getsockname(2)).
    static func bound(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard withUnsafeMutablePointer(to: &storage, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }) == 0 else { return nil }
        let family = Int32(storage.ss_family)
        return withUnsafePointer(to: &storage) { pointer in
            switch family {
            case AF_INET: pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee) }
            case AF_INET6: pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee) }
            case AF_UNIX: pointer.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { SocketAddress($0.pointee) }
            default: nil
            }
        }
    }

    private static func failure(_ call: String, _ what: String) -> DaemonError {
        let code = errno
        return DaemonError(.badConfiguration, "can't listen on \(what): \(call): \(String(cString: strerror(code)))",
                           hint: code == EADDRINUSE ? "another process listens there; stop it or choose another address" : nil)
    }
}

/// Stops a server socket from accepting while it stays open: connections wait in the kernel's queue for whoever
/// accepts next (the new process of a graceful restart).
final class AcceptGate: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = Never

    private let closed = Mutex(false)

    func read(context: ChannelHandlerContext) {
        if !closed.withLock({ $0 }) { context.read() }
    }

    func close() { closed.withLock { $0 = true } }
}

/// An HTTP server on a socket the daemon listens on (``Listeners``): Hummingbird's router and child channel
/// (HTTP/1.1, or TLS around it), a bound on open connections, and a graceful shutdown as Hummingbird's own server does
/// it, 100 ms after it is asked for: the socket closes, requests in flight are answered, then their connections close.
struct ListenerServer<Child: ServerChildChannel>: Service {
    let socket: Int32
    let child: Child
    let maximumConnections: Int
    let gate: AcceptGate
    let logger: Logger
    let onRunning: @Sendable (any Channel) async -> Void

    func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let quiescing = ServerQuiescingHelper(group: group)
        let (gate, logger, maximum) = (self.gate, self.logger, self.maximumConnections)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The gate nearest the socket: the connection limit's own reads (when a connection closes) pass it too.
                    try channel.pipeline.syncOperations.addHandler(gate)
                    try channel.pipeline.syncOperations.addHandler(AvailableConnectionsChannelHandler(delegate: MaximumAvailableConnections(maximum, logger: logger)))
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        let child = self.child
        let server = try await bootstrap.bind(NIOBSDSocket.Handle(socket), serverBackPressureStrategy: nil) { channel in
            child.setup(channel: channel, logger: logger)
        }
        await withGracefulShutdownHandler {
            await onRunning(server.channel)
            await withDiscardingTaskGroup { tasks in
                do {
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound { tasks.addTask { await child.handle(value: connection, logger: logger) } }
                    }
                } catch {
                    logger.error("accepting connections failed: \(error)")
                }
            }
        } onGracefulShutdown: {
            // A moment's grace: connections accepted just before have sent their requests, so the shutdown answers
            // them rather than closing them unread (a reset to their clients). A graceful restart closed the gate
            // already, so nothing new is accepted meanwhile; a plain stop keeps accepting, so less waits in the
            // queue to be reset when the socket closes.
            Task {
                try? await Task.sleep(for: .milliseconds(100))
                quiescing.initiateShutdown(promise: nil)
            }
        }
    }
}

/// Hummingbird's request handling for a router, as `Application` does it: a context per request, errors the router
/// didn't turn into responses answered with a 500, `Date` and `Server` headers.
func responder<Responder: HTTPResponder>(_ responder: Responder, serverName: String, logger: Logger) -> HTTPChannelHandler.Responder
where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    { request, writer, channel in
        let context = Responder.Context(source: .init(channel: channel, logger: logger))
        var response: Response
        do { response = try await responder.respond(to: request, context: context) } catch {
            logger.debug("unhandled error: \(error)")
            response = Response(status: .internalServerError)
        }
        response.headers[.date] = HTTPDate.now
        response.headers[.server] = serverName
        try await writer.write(response: response.head, body: response.body)
    }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate), made at most once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static var now: String {
        var time = time_t(Date().timeIntervalSince1970)
        return cache.withLock { cache in
            if cache.second == Int(time) { return cache.text }
            var parts = tm()
            gmtime_r(&time, &parts)
            var buffer = [CChar](repeating: 0, count: 64)
            let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
            cache = (Int(time), String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            return cache.text
        }
    }
}
