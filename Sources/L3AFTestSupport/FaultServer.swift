import Foundation
import Glibc
import Synchronization

/// A small HTTP/1.1 server on loopback that tests control: it serves files from a folder (a registry's
/// tree) and, per path, plays scripted faults. It honours `Range: bytes=N-` and records every request.
public final class FaultServer: Sendable {
    /// What to do for one request to a path; a path's script is consumed in order, then files are served.
    public enum Fault: Sendable {
        /// Answer this status with a short body and optional `Retry-After`.
        case status(Int, retryAfter: String? = nil)
        /// Send the headers and this many bytes of the file, then reset the connection.
        case resetAfter(bytes: Int)
        /// Send the headers and this many bytes, then send nothing more (until the client gives up).
        case stallAfter(bytes: Int)
        /// Send a body with no length that never ends (until the client hangs up).
        case endless
        /// Serve these bytes instead of the file.
        case body([UInt8])
        /// Answer 302 with this `Location`.
        case redirect(String)
    }

    /// One request as received.
    public struct Request: Sendable {
        public let path: String
        public let headers: [String: String]
    }

    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }
    let root: String
    let listener: Int32
    private let scripts = Mutex<[String: [Fault]]>([:])
    private let overrides = Mutex<[String: [UInt8]]>([:])
    private let log = Mutex<[Request]>([])
    private let stopped = Mutex(false)

    /// Starts serving `root` on a free loopback port.
    public init(root: String) throws {
        self.root = root
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listener, 64) == 0 else { throw FixtureError("fault server: bind/listen failed: errno \(errno)") }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        port = Int(UInt16(bigEndian: actual.sin_port))
        let server = self
        Thread.detachNewThread { server.acceptLoop() }
    }

    /// Plays `faults` for the next requests to `path` (e.g. `/xdp-root/1.0.0/any/l3af_xdp-root.tar.gz`).
    public func script(_ path: String, _ faults: [Fault]) { scripts.withLock { $0[path, default: []] += faults } }

    /// Serves `bytes` for `path` from now on, instead of the file.
    public func override(_ path: String, with bytes: [UInt8]) { overrides.withLock { $0[path] = bytes } }

    /// The requests received so far, optionally only those for `path`.
    public func requests(for path: String? = nil) -> [Request] {
        log.withLock { $0.filter { path == nil || $0.path == path } }
    }

    public func stop() {
        stopped.withLock { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { stop() }

    private func acceptLoop() {
        while !stopped.withLock({ $0 }) {
            let client = accept(listener, nil, nil)
            if client < 0 { if stopped.withLock({ $0 }) { return }; continue }
            let server = self
            Thread.detachNewThread { server.handle(client) }
        }
    }

    private func handle(_ fd: Int32) {
        defer { close(fd) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.containsHeaderEnd {
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { return }
            received += buffer[0..<n]
        }
        let head = String(decoding: received, as: UTF8.self).components(separatedBy: "\r\n\r\n")[0]
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        let path = String(parts[1])
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        log.withLock { $0.append(Request(path: path, headers: headers)) }
        let fault: Fault? = scripts.withLock { scripts in
            guard var list = scripts[path], !list.isEmpty else { return nil }
            let first = list.removeFirst()
            scripts[path] = list
            return first
        }
        let body = overrides.withLock { $0[path] } ?? FileManager.default.contents(atPath: root + path).map { Array($0) }
        switch fault {
        case .status(let status, let retryAfter)?:
            let text = Array("{\"error\":{\"code\":\"fault\",\"message\":\"scripted \(status)\"}}".utf8)
            send(fd, "HTTP/1.1 \(status) Scripted\r\nContent-Length: \(text.count)\r\n" + (retryAfter.map { "Retry-After: \($0)\r\n" } ?? "") + "Connection: close\r\n\r\n", text)
        case .redirect(let location)?:
            send(fd, "HTTP/1.1 302 Found\r\nLocation: \(location)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", [])
        case .resetAfter(let count)?:
            guard let body else { return notFound(fd) }
            send(fd, "HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n", Array(body.prefix(count)))
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        case .stallAfter(let count)?:
            guard let body else { return notFound(fd) }
            send(fd, "HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n", Array(body.prefix(count)))
            while !stopped.withLock({ $0 }) {
                var probe = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&probe, 1, 200) > 0 { var byte: UInt8 = 0; if read(fd, &byte, 1) <= 0 { return } }
            }
        case .endless?:
            send(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", [])
            let chunk = [UInt8](repeating: 0x5a, count: 64 << 10)
            while !stopped.withLock({ $0 }), Glibc.send(fd, chunk, chunk.count, Int32(MSG_NOSIGNAL)) > 0 {}
        case .body(let bytes)?:
            send(fd, "HTTP/1.1 200 OK\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n", bytes)
        case nil:
            guard let body else { return notFound(fd) }
            if let range = headers["range"], range.hasPrefix("bytes="), range.hasSuffix("-"), let start = Int(range.dropFirst(6).dropLast()), start < body.count {
                send(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: \(body.count - start)\r\nContent-Range: bytes \(start)-\(body.count - 1)/\(body.count)\r\nConnection: close\r\n\r\n", Array(body[start...]))
            } else {
                send(fd, "HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n", body)
            }
        }
    }

    private func notFound(_ fd: Int32) {
        let text = Array("{\"error\":{\"code\":\"not-found\",\"message\":\"no such file\"}}".utf8)
        send(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: \(text.count)\r\nConnection: close\r\n\r\n", text)
    }

    private func send(_ fd: Int32, _ head: String, _ body: [UInt8]) {
        let bytes = Array(head.utf8) + body
        var offset = 0
        while offset < bytes.count {
            // MSG_NOSIGNAL: a client that hung up must not kill the test process with SIGPIPE.
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            offset += n
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate var containsHeaderEnd: Bool {
        guard count >= 4 else { return false }
        for i in 0...(count - 4) where self[i] == 13 && self[i + 1] == 10 && self[i + 2] == 13 && self[i + 3] == 10 { return true }
        return false
    }
}
