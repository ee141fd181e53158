import Foundation
import HTTPTypes
import Hummingbird
import L3AFModel
import NIOCore

/// The one place a server (`l3af-registry`, `l3afd`) turns errors into responses: a status and
/// `{"error": {"code", "message", "hint"}}`. An error that knows its status (``HTTPStatusError``) is answered with it
/// (and its `Retry-After`); any other project error is the caller's (400); a route or method that doesn't exist is
/// Hummingbird's 404/405; anything else is a 500 and is logged, as is every 5xx.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Names the server in a 500's message.
    public let server: String

    public init(server: String) { self.server = server }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPStatusError {
            if error.httpStatus >= 500 {
                context.logger.error("request failed", metadata: ["code": "\(error.code)", "error": "\(error.description)"])
            }
            var response = Self.response(status: .init(code: error.httpStatus), code: error.code, message: error.description, hint: error.hint)
            if let seconds = error.retryAfterSeconds { response.headers[.retryAfter] = String(seconds) }
            return response
        } catch let error as any L3AFError {
            return Self.response(status: .badRequest, code: error.code, message: error.description, hint: error.hint)
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound ? "no such route: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return Self.response(status: error.status, code: "http-\(error.status.code)", message: message, hint: nil)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return Self.response(status: .internalServerError, code: "internal", message: "\(server) failed: \(error)", hint: nil)
        }
    }

    /// An error answer: `status` with `{"error": {"code", "message", "hint"}}`.
    public static func response(status: HTTPResponse.Status, code: String, message: String, hint: String?) -> Response {
        let data = (try? DocumentDecoder.encode(APIErrorBody(code: code, message: message, hint: hint))) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
