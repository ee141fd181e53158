import Hummingbird
import L3AFSystem
import Logging

/// The request log of a server (`l3afd`, `l3af-registry`): one entry per request, after its answer, with `method`,
/// `route` (the route's pattern, e.g. `/api/v1/packages/{name}/{version}`, or `-` when none matched), `path`,
/// `status`, `duration_us` (microseconds) and `actor` (who the authentication found, `-` when anonymous). Outermost, so it sees
/// the status an error became.
public struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    let level: Logger.Level

    public init(logger: Logger, level: Logger.Level = .info) {
        self.logger = logger
        self.level = level
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let actor = RequestActor()
        do {
            let response = try await RequestActor.$current.withValue(actor) { try await next(request, context) }
            record(request, context, status: Int(response.status.code), actor: actor, since: start)
            return response
        } catch {
            record(request, context, status: Int((error as? any HTTPResponseError)?.status.code ?? 500), actor: actor, since: start)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, status: Int, actor: RequestActor, since start: ContinuousClock.Instant) {
        guard logger.logLevel <= level else { return }
        let elapsed = ContinuousClock.now - start
        let microseconds = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        logger.log(level: level, "\(request.method) \(request.uri.path) \(status)", metadata: [
            "method": "\(request.method)",
            "route": "\(context.endpointPath ?? "-")",
            "path": "\(request.uri.path)",
            "status": .stringConvertible(status),
            "duration_us": .stringConvertible(microseconds),
            "actor": "\(actor.name ?? "-")",
        ])
    }
}
