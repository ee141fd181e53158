import Foundation
import HTTPTypes
import Hummingbird
import L3AFModel
import Logging

/// The one place the server turns errors into responses: a status and
/// `{"error": {"code", "message", "hint"}}`. The caller's mistakes are 4xx; only a failure of the
/// registry itself is a 500, and it is logged.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RegistryError {
            if error.kind == .internalFailure {
                context.logger.error("request failed", metadata: ["code": "\(error.code)", "error": "\(error.description)"])
            }
            var response = Self.response(status: .init(code: error.status), code: error.code, message: error.description, hint: error.hint)
            if let seconds = error.retryAfter { response.headers[.retryAfter] = String(seconds) }
            return response
        } catch let error as any L3AFError {
            return Self.response(status: .badRequest, code: error.code, message: error.description, hint: error.hint)
        } catch let error as HTTPError {
            let message = error.body ?? (error.status == .notFound ? "no such route: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return Self.response(status: error.status, code: "http-\(error.status.code)", message: message, hint: nil)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return Self.response(status: .internalServerError, code: "internal", message: "the registry failed: \(error)", hint: nil)
        }
    }

    static func response(status: HTTPResponse.Status, code: String, message: String, hint: String?) -> Response {
        json(APIErrorBody(code: code, message: message, hint: hint), status: status)
    }
}
