import Foundation
import Hummingbird
import L3AFModel
import Prometheus

/// The registry's metrics, Prometheus text at `GET /metrics`:
/// - `l3af_registry_requests_total{route, method, status}`: requests answered, by route pattern (`-` when none matched);
/// - `l3af_registry_response_bytes_total{route}`: body bytes sent (artifacts, documents, the index);
/// - `l3af_registry_publishes_total`: versions published (a re-upload of the same bytes is not one);
/// - `l3af_registry_index_version`, `l3af_registry_index_signed_timestamp_seconds` (the last successful signing:
///   a publish or a re-sign), `l3af_registry_index_expires_timestamp_seconds` and
///   `l3af_registry_index_expires_in_seconds` (at the scrape; clients refuse the index at 0);
/// - `l3af_registry_index_resign_failures_total`: re-signs that failed (the index then ages toward expiry).
/// `deploy/prometheus/l3af-registry-rules.yml` alerts on them.
public final class RegistryMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let publishes: Counter
    private let resignFailures: Counter
    private let version: Gauge
    private let signed: Gauge
    private let expires: Gauge
    private let expiresIn: Gauge

    public init() {
        publishes = registry.makeCounter(name: "l3af_registry_publishes_total")
        resignFailures = registry.makeCounter(name: "l3af_registry_index_resign_failures_total")
        version = registry.makeGauge(name: "l3af_registry_index_version")
        signed = registry.makeGauge(name: "l3af_registry_index_signed_timestamp_seconds")
        expires = registry.makeGauge(name: "l3af_registry_index_expires_timestamp_seconds")
        expiresIn = registry.makeGauge(name: "l3af_registry_index_expires_in_seconds")
    }

    func request(route: String, method: String, status: Int, bytes: Int?) {
        registry.makeCounter(name: "l3af_registry_requests_total", labels: [("route", route), ("method", method), ("status", String(status))]).increment()
        if let bytes, bytes > 0 { registry.makeCounter(name: "l3af_registry_response_bytes_total", labels: [("route", route)]).increment(by: Int64(bytes)) }
    }

    func published() { publishes.increment() }

    func resignFailed() { resignFailures.increment() }

    /// The text `/metrics` serves, with the index's figures as of `now`.
    func text(index: RegistryIndex, now: Timestamp) -> [UInt8] {
        version.set(Int64(clamping: index.version))
        signed.set(index.issued.secondsSince1970)
        expires.set(index.expires.secondsSince1970)
        expiresIn.set(index.expires.secondsSince1970 - now.secondsSince1970)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}

/// Counts every answer into ``RegistryMetrics``: its route, method, status and body size.
struct RegistryMetricsMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let metrics: RegistryMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.request(route: context.endpointPath ?? "-", method: "\(request.method)", status: Int(response.status.code), bytes: response.body.contentLength)
            return response
        } catch {
            metrics.request(route: context.endpointPath ?? "-", method: "\(request.method)", status: Int((error as? any HTTPResponseError)?.status.code ?? 500), bytes: nil)
            throw error
        }
    }
}
