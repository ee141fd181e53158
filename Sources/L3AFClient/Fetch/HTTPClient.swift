internal import CCurl
import Foundation
import L3AFModel
import L3AFSystem

/// One HTTP request.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// Header name and value pairs, sent as given.
    public var headers: [(String, String)]
    public var body: [UInt8]?
    /// How to reach and trust the server beyond the URL: a Unix socket, a CA, a client certificate.
    public var endpoint: Endpoint

    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, endpoint: Endpoint = Endpoint()) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.endpoint = endpoint
    }

    /// Where and how to connect, for servers that ask more than a URL (l3afd behind mTLS or on a Unix socket).
    public struct Endpoint: Sendable, Equatable {
        /// Connect to this Unix socket instead of the URL's host (the URL still names the path).
        public var unixSocket: String?
        /// PEM CA bundle the server's certificate must chain to.
        public var caCertificate: String?
        /// PEM client certificate and key, for mTLS.
        public var clientCertificate: String?
        public var clientKey: String?

        public init(unixSocket: String? = nil, caCertificate: String? = nil, clientCertificate: String? = nil, clientKey: String? = nil) {
            self.unixSocket = unixSocket
            self.caCertificate = caCertificate
            self.clientCertificate = clientCertificate
            self.clientKey = clientKey
        }
    }
}

/// One HTTP response. Header names are lowercased; a repeated header keeps its last value.
public struct HTTPResponse: Sendable {
    public let status: Int
    public let headers: [String: String]
    public let body: [UInt8]

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// HTTP over libcurl (easy interface). Each transfer runs on a thread of its own, off Swift's cooperative pool.
public struct HTTPClient: Sendable {
    /// Protocols, connect timeout and low-speed abort, shared with ``Downloader``; retries are the caller's.
    public var policy: TransferPolicy
    /// Cut off a response body larger than this.
    public var maximumResponseBytes: Int = 256 << 20

    public init(policy: TransferPolicy = TransferPolicy()) { self.policy = policy }

    /// Sends `request` and returns the response, whatever its status. Throws only when no response came.
    public func send(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse {
        // A transfer blocks its thread for as long as the server takes: a thread of its own, never one of the
        // cooperative pool's or dispatch's few (one slow server must not stall every other request).
        try await OffPool.run { () throws(TransportError) in try perform(request) }
    }

    /// The blocking transfer, on the calling thread (``send(_:)`` runs it on a thread of its own).
    public func perform(_ request: HTTPRequest) throws(TransportError) -> HTTPResponse {
        Self.initializeCurl()
        guard let handle = curl_easy_init() else { throw TransportError(url: request.url, code: "curl_easy_init", message: "libcurl failed to start") }
        defer { curl_easy_cleanup(handle) }
        let sink = ResponseSink(limit: maximumResponseBytes)
        let context = Unmanaged.passUnretained(sink).toOpaque()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in request.headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        // Without this, curl sends "Expect: 100-continue" for large bodies and waits for the server.
        headerList = curl_slist_append(headerList, "Expect:")

        var setup: [CURLcode] = []
        request.url.withCString { setup.append(l3af_curl_setopt_pointer(handle, CURLOPT_URL, $0)) }
        request.method.withCString { setup.append(l3af_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, $0)) }
        if request.method == "HEAD" { setup.append(l3af_curl_setopt_long(handle, CURLOPT_NOBODY, 1)) }
        setup += policy.configure(handle, url: request.url)
        for (option, value) in [(CURLOPT_UNIX_SOCKET_PATH, request.endpoint.unixSocket), (CURLOPT_CAINFO, request.endpoint.caCertificate),
                                (CURLOPT_SSLCERT, request.endpoint.clientCertificate), (CURLOPT_SSLKEY, request.endpoint.clientKey)] {
            if let value { value.withCString { setup.append(l3af_curl_setopt_pointer(handle, option, $0)) } }
        }
        setup.append(l3af_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headerList))
        setup.append(l3af_curl_setopt_long(handle, CURLOPT_MAXREDIRS, 5))
        setup.append(l3af_curl_setopt_offset(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(maximumResponseBytes)))
        setup.append(l3af_curl_setopt_write(handle, { data, size, count, context in
            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
            return sink.append(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }, context))
        setup.append(l3af_curl_setopt_header(handle, { data, size, count, context in
            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
            sink.header(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }, context))
        if let failed = setup.first(where: { $0 != CURLE_OK }) {
            throw TransportError(url: request.url, code: "setopt", message: String(cString: curl_easy_strerror(failed)))
        }
        let code: CURLcode = (request.body ?? []).withUnsafeBufferPointer { body in
            if request.body != nil {
                _ = l3af_curl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                _ = l3af_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, body.baseAddress ?? UnsafePointer(bitPattern: 1))
            }
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            if sink.overflowed || code == CURLE_FILESIZE_EXCEEDED {
                throw TransportError(url: request.url, code: "response-too-large",
                                     message: "the response is larger than the \(maximumResponseBytes)-byte limit")
            }
            throw TransportError(url: request.url, code: Self.name(of: code), message: String(cString: curl_easy_strerror(code)))
        }
        var status = 0
        _ = l3af_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: sink.headers, body: sink.body)
    }

    /// Runs `curl_global_init` once per process, before any handle is made.
    static func initializeCurl() { _ = l3af_curl_global_init_once() }


    private static func name(of code: CURLcode) -> String {
        switch code {
        case CURLE_COULDNT_CONNECT: "connect-failed"
        case CURLE_COULDNT_RESOLVE_HOST: "resolve-failed"
        case CURLE_OPERATION_TIMEDOUT: "timed-out"
        case CURLE_UNSUPPORTED_PROTOCOL: "protocol-not-allowed"
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE: "connection-reset"
        case CURLE_FILE_COULDNT_READ_FILE: "file-not-found"
        default: "curl-\(code.rawValue)"
        }
    }
}

/// Collects a response; lives for one transfer, reached from curl's callbacks on that transfer's thread.
private final class ResponseSink {
    let limit: Int
    var body: [UInt8] = []
    var headers: [String: String] = [:]
    var overflowed = false

    init(limit: Int) { self.limit = limit }

    func append(_ data: UnsafeRawBufferPointer) -> Bool {
        guard body.count + data.count <= limit else {
            overflowed = true
            return false
        }
        body.append(contentsOf: data)
        return true
    }

    func header(_ data: UnsafeRawBufferPointer) {
        let line = String(decoding: data, as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            headers = [:]  // a new response (after a redirect or 100 Continue) starts over
            body = []
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        headers[name] = value
    }
}

/// A transfer that produced no HTTP response: no connection, a timeout, a reset, a refused protocol.
public struct TransportError: L3AFError, Equatable {
    public let url: String
    public let code: String
    public let message: String

    public var description: String { "request to \(url) failed: \(message)" }
    public var hint: String? {
        switch code {
        case "connect-failed": "check that the registry is running and the URL (--registry) is right"
        case "protocol-not-allowed": "only http, https and file URLs are allowed"
        default: nil
        }
    }
}

extension TransferPolicy {
    /// The protocols a redirect from `url` may lead to: the same scheme or https, never `file` (a repository that
    /// redirects to `file:///etc/shadow` must not get that file fetched and cached), none from `file`.
    static func redirectProtocols(from url: String) -> String? {
        switch urlScheme(of: url) {
        case "https": return "https"
        case "http": return "http,https"
        default: return nil
        }
    }

    /// Sets what every transfer shares on an easy handle: allowed protocols, redirects (same scheme or https,
    /// never `file`), no signals, the connect timeout and the low-speed abort. Returns each `curl_easy_setopt` result.
    func configure(_ handle: UnsafeMutableRawPointer, url: String) -> [CURLcode] {
        var codes = protocols.withCString { [l3af_curl_setopt_pointer(handle, CURLOPT_PROTOCOLS_STR, $0)] }
        if let redirects = Self.redirectProtocols(from: url) {
            codes += redirects.withCString { [l3af_curl_setopt_pointer(handle, CURLOPT_REDIR_PROTOCOLS_STR, $0)] }
            codes.append(l3af_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 1))
        } else {
            codes.append(l3af_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        }
        codes.append(l3af_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        codes.append(l3af_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeoutSeconds))
        codes.append(l3af_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, lowSpeedBytesPerSecond))
        codes.append(l3af_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, lowSpeedSeconds))
        return codes
    }
}
