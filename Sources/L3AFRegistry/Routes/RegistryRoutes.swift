import Foundation
import HTTPTypes
import Hummingbird
import L3AFModel
import Synchronization

/// The registry's HTTP routes: the static tree's reads (with l3afd's artifact URLs, `latest` and any
/// platform for portable packages, ETag and Range), search, and the authenticated publish API.
struct RegistryRoutes: Sendable {
    let store: RegistryStore
    let maximumUploadBytes: Int
    /// Uploads being received or inspected at once; more are refused with 503 and Retry-After.
    let uploads: UploadSlots
    let metrics: RegistryMetrics

    func register(on router: Router<BasicRequestContext>) {
        router.get("/index.json") { request, _ in try serve("index.json", request: request, cacheControl: "no-cache") }
        router.get("/index/:file") { request, context in
            // `<id>-<sha256>.json`: named by its digest, so it never changes and any cache may keep it.
            let file = try context.parameters.require("file")
            let parts = file.split(separator: "-", maxSplits: 1)
            guard file.hasSuffix(".json"), parts.count == 2, RegistryIndex.isShardID(parts[0]),
                  (try? SHA256Digest(hex: String(parts[1].dropLast(5)))) != nil
            else { throw RegistryError(.notFound, "not-found", "no index shard '\(file.prefix(80))'") }
            return try serve("index/\(file)", request: request, cacheControl: "public, max-age=31536000, immutable")
        }
        router.get("/packages/:file") { request, context in
            let file = try context.parameters.require("file")
            guard file.hasSuffix(".json"), let name = try? PackageName(String(file.dropLast(5))) else {
                throw RegistryError(.notFound, "not-found", "no package document '\(file)'")
            }
            guard store.files.document(name) != nil else { throw RegistryStore.noSuchPackage(name) }
            return try serve("packages/\(name).json", request: request, cacheControl: "no-cache")
        }
        router.get("/schemas/:file") { request, context in
            // The schemas of the documents (manifest.schema.json, …), for editors: `"$schema"` in l3af.json names one.
            let file = try context.parameters.require("file")
            guard let text = EmbeddedSchemas.files[file] else {
                throw RegistryError(.notFound, "not-found", "no schema '\(file.prefix(80))'", hint: "the schemas: \(EmbeddedSchemas.files.keys.sorted().joined(separator: ", "))")
            }
            return Response(status: .ok, headers: [.contentType: "application/schema+json", .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/keys/:file") { _, context in
            // Key rotations (`l3af-registry rotate-key`), each signed by the key before it: clients follow them in order.
            let file = try context.parameters.require("file")
            guard file.hasSuffix(".json"), let number = UInt64(file.dropLast(5)), number > 0,
                  let bytes = FileManager.default.contents(atPath: "\(store.layout.tree)/keys/\(number).json")
            else { throw RegistryError(.notFound, "not-found", "no key rotation '\(file.prefix(80))'") }
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-cache"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("/search") { request, _ in try await search(request) }
        router.get("/:name/:version/:platform/:artifact") { request, context in try await artifact(request, context) }

        let api = router.group("api/v1")
        api.get("health") { _, _ in try await health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.text(index: await store.currentIndex(), now: store.now()))))
        }
        api.put("packages/:name/:version") { request, context in try await publish(request, context) }
        api.post("packages/:name/:version/yank") { request, context in try await yank(true, request, context) }
        api.post("packages/:name/:version/unyank") { request, context in try await yank(false, request, context) }
        api.get("packages/:name/dist-tags") { _, context in
            let name = try packageName(context)
            guard let doc = store.files.document(name) else { throw RegistryStore.noSuchPackage(name) }
            return json(RegistryStore.tagTable(doc))
        }
        api.put("packages/:name/dist-tags/:tag") { request, context in
            var request = request
            let body = try await decodeBody(TagBody.self, &request)
            let version = try parse { () throws(VersionParseError) in try SemanticVersion(parsing: body.version) }
            return json(try await store.setTag(try tag(context), name: try packageName(context), version: version, token: bearer(request)))
        }
        api.delete("packages/:name/dist-tags/:tag") { request, context in
            json(try await store.removeTag(try tag(context), name: try packageName(context), token: bearer(request)))
        }
        api.post("packages/:name/deprecate") { request, context in
            var request = request
            let body = try await decodeBody(DeprecateBody.self, &request)
            let range = try parse { () throws(RequirementParseError) in try VersionRequirement(parsing: body.range) }
            let changed = try await store.deprecate(name: try packageName(context), range: range, message: body.message ?? "", token: bearer(request))
            return json(["versions": changed])
        }
        api.put("packages/:name/owners/:owner") { request, context in
            let owner = try context.parameters.require("owner")
            return json(["owners": try await store.addOwner(owner, name: try packageName(context), token: bearer(request))])
        }
    }

    // MARK: Reads

    private func serve(_ path: String, request: Request, cacheControl: String, contentType: String = "application/json") throws -> Response {
        guard let file = store.files.file(path) else { throw RegistryError(.notFound, "not-found", "no file \(path) in the tree") }
        return respond(with: file, request: request, headers: [.contentType: contentType, .cacheControl: cacheControl])
    }

    private func respond(with file: CachedFile, request: Request, headers: HTTPFields) -> Response {
        var headers = headers
        headers[.eTag] = file.etag
        headers[.acceptRanges] = "bytes"
        if let match = request.headers[.ifNoneMatch], match == "*" || match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == file.etag }) {
            return Response(status: .notModified, headers: headers)
        }
        let size = file.bytes.readableBytes
        if let rangeHeader = request.headers[.range] {
            switch ByteRange.parse(rangeHeader, size: size) {
            case .satisfiable(let range):
                headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
                headers[.contentLength] = String(range.count)
                let slice = file.bytes.getSlice(at: range.lowerBound, length: range.count)!
                return Response(status: .partialContent, headers: headers, body: .init(byteBuffer: slice))
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            case .ignored:
                break
            }
        }
        headers[.contentLength] = String(size)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.bytes))
    }

    /// `GET /<name>/<version>/<platform>/<artifact>`, l3afd's layout. The version may be a dist-tag
    /// (`latest`); a portable package answers for any platform.
    private func artifact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try packageName(context)
        let versionText = try context.parameters.require("version")
        let platform = try context.parameters.require("platform")
        let artifact = try context.parameters.require("artifact")
        guard let doc = store.files.document(name) else { throw RegistryStore.noSuchPackage(name) }
        let version: SemanticVersion
        if let exact = try? SemanticVersion(parsing: versionText) {
            version = exact
        } else if let tag = try? DistTag(versionText), let tagged = doc.distTags[tag] {
            version = tagged
        } else {
            throw RegistryError(.notFound, "no-such-version", "\(name) has no version or tag '\(versionText)'",
                                hint: "tags: " + doc.distTags.keys.sorted().map(\.rawValue).joined(separator: ", "))
        }
        guard let entry = doc.entry(for: version) else { throw RegistryStore.noSuchVersion(name, version, in: doc) }
        guard entry.supports(platform: platform) else {
            throw RegistryError(.notFound, "platform-not-built", "\(name)@\(entry.version) is not built for '\(platform)' (built for: \((entry.manifest.platforms ?? []).joined(separator: ", ")))")
        }
        guard artifact == entry.artifact else {
            throw RegistryError(.notFound, "no-such-artifact", "\(name)@\(entry.version) has no artifact '\(artifact)'", hint: "its artifact is \(entry.artifact)")
        }
        let folder = entry.manifest.platforms == nil ? RegistryLayout.portablePlatform : platform
        guard let file = store.files.file(RegistryLayout.artifactPath(name, entry.version, platform: folder)) else {
            throw RegistryError(.notFound, "not-found", "the artifact of \(name)@\(entry.version) is missing from the tree")
        }
        return respond(with: file, request: request, headers: [
            .contentType: "application/gzip", .cacheControl: "public, max-age=31536000, immutable",
        ])
    }

    private func search(_ request: Request) async throws -> Response {
        let query = (request.uri.queryParameters.get("q") ?? "").lowercased()
        let hits = store.files.allDocuments().filter {
            query.isEmpty || $0.name.rawValue.contains(query) || $0.description.lowercased().contains(query)
        }.map { doc in
            SearchResult(name: doc.name.rawValue, description: doc.description, latest: doc.distTags[.latest]?.description,
                      versions: doc.versions.count, deprecated: doc.distTags[.latest].flatMap { doc.entry(for: $0)?.deprecated })
        }
        return json(hits)
    }

    // MARK: Writes

    private func publish(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try packageName(context)
        let versionText = try context.parameters.require("version")
        let version = try parse { () throws(VersionParseError) in try SemanticVersion(parsing: versionText) }
        let tag = try request.uri.queryParameters.get("tag").map { text in try parse { () throws(DistTagError) in try DistTag(text) } }
        let token = bearer(request)
        // Who and what, from the headers alone, before a byte of the body is read.
        try store.authorize(token, for: name)
        if let text = request.headers[.contentLength] {
            guard let length = BoundedInteger.parse(text, in: 0...Int.max) else {
                throw RegistryError(.badRequest, "bad-content-length", "Content-Length '\(text.prefix(40))' is not a byte count")
            }
            if length > maximumUploadBytes { throw Self.tooLarge(maximumUploadBytes) }
        }
        guard uploads.acquire() else {
            throw RegistryError(.unavailable, "too-many-uploads", "this registry is receiving \(uploads.limit) uploads already",
                                hint: "try again in a few seconds", retryAfter: 5)
        }
        defer { uploads.release() }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maximumUploadBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw Self.tooLarge(maximumUploadBytes)
        }
        let result = try await store.publish(name: name, version: version, tarball: Array(buffer: body), tag: tag, token: token)
        if result.created { metrics.published() }
        return json(result, status: result.created ? .created : .ok)
    }

    /// 200 while the signed index has more than a quarter of its lifetime left; 503 once re-signing (due at half)
    /// has failed for a quarter of it, well before clients refuse the index as expired.
    private func health() async throws -> Response {
        let index = await store.currentIndex()
        let left = index.expires.secondsSince1970 - store.now().secondsSince1970
        guard left > store.indexLifetime / 4 else {
            throw RegistryError(.unavailable, "index-near-expiry",
                                "the signed index expires in \(max(left, 0)) s (at \(index.expires)); it should have been re-signed at half its \(store.indexLifetime) s lifetime",
                                hint: "check the registry's log for why re-signing fails (the signing key, the disk)")
        }
        return json(["status": "ok", "index_version": String(index.version), "index_expires_in_seconds": String(left)])
    }

    private func yank(_ yanked: Bool, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let versionText = try context.parameters.require("version")
        let version = try parse { () throws(VersionParseError) in try SemanticVersion(parsing: versionText) }
        let entry = try await store.setYanked(yanked, name: try packageName(context), version: version, token: bearer(request))
        return json(["name": try packageName(context).rawValue, "version": entry.version.description, "yanked": String(entry.yanked)])
    }

    static func tooLarge(_ limit: Int) -> RegistryError {
        RegistryError(.tooLarge, "upload-too-large", "the upload is larger than this registry's limit of \(limit) bytes",
                      hint: "packages hold BPF objects and a manifest; check that you are publishing the right file")
    }

    // MARK: Helpers

    private func packageName(_ context: BasicRequestContext) throws -> PackageName {
        let text = try context.parameters.require("name")
        return try parse { () throws(PackageNameError) in try PackageName(text) }
    }

    private func tag(_ context: BasicRequestContext) throws -> DistTag {
        let text = try context.parameters.require("tag")
        return try parse { () throws(DistTagError) in try DistTag(text) }
    }

    private func bearer(_ request: Request) -> String? {
        guard let value = request.headers[.authorization], value.lowercased().hasPrefix("bearer ") else { return nil }
        return String(value.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    private func decodeBody<T: Decodable>(_ type: T.Type, _ request: inout Request) async throws -> T {
        let body = try await request.collectBody(upTo: 64 << 10)
        do {
            return try DocumentDecoder.decode(T.self, from: Array(buffer: body), document: "request body")
        } catch {
            throw RegistryError.invalid(error)
        }
    }

    private func parse<T, E: L3AFError>(_ body: () throws(E) -> T) throws(RegistryError) -> T {
        do {
            return try body()
        } catch {
            throw RegistryError.invalid(error)
        }
    }
}

struct TagBody: Codable { let version: String }
struct DeprecateBody: Codable {
    let range: String
    let message: String?
}

/// A JSON response.
func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? DocumentDecoder.encode(value)) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// A bound on uploads in flight: each holds up to --max-upload-bytes in memory and a thread while it is inspected.
final class UploadSlots: Sendable {
    let limit: Int
    private let inUse = Mutex(0)

    init(limit: Int) { self.limit = limit }

    func acquire() -> Bool {
        inUse.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }
    func release() { inUse.withLock { $0 -= 1 } }
}
