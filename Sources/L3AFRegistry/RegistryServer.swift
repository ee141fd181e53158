import Foundation
import Hummingbird
import HummingbirdCore
import L3AFHTTPServer
import L3AFModel
import L3AFSystem
import Logging
import NIOCore
import ServiceLifecycle

/// Runs the registry's HTTP server until SIGTERM or SIGINT, then shuts down gracefully.
public enum RegistryServer {
    /// Serves `store` on `host:port` (port 0 picks a free one). `onListening` gets the bound port once
    /// the server accepts connections.
    public static func run(
        store: RegistryStore, host: String, port: Int, maximumUploadBytes: Int = 64 << 20, maximumUploads: Int = 4,
        maximumConnections: Int = 512, idleTimeoutSeconds: Int = 60,
        refreshIntervalSeconds: Int = 60, logRequests: Bool = true, metrics: RegistryMetrics = RegistryMetrics(), logger: Logger,
        onListening: @escaping @Sendable (Int) -> Void
    ) async throws {
        // One server per root: a second would write the same tree and lose updates.
        let serveLock: FileLock
        do { serveLock = try FileLock(path: "\(store.layout.privateFolder)/serve.pid", wait: .never) } catch let held as FileLock.Held {
            throw RegistryError(.conflict, "root-in-use", "another l3af-registry serve (pid \(held.pid)) already serves \(store.layout.root)",
                                hint: "stop it first; one server writes a root (put nginx or a CDN in front to serve reads at scale)")
        }
        defer { withExtendedLifetime(serveLock) {} }
        let router = Router()
        if logRequests { router.add(middleware: RequestLogMiddleware(logger: logger)) }
        router.add(middleware: RegistryMetricsMiddleware(metrics: metrics))
        router.add(middleware: JSONErrorMiddleware(server: "the registry"))
        RegistryRoutes(store: store, maximumUploadBytes: maximumUploadBytes, uploads: UploadSlots(limit: maximumUploads), metrics: metrics).register(on: router)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(idleTimeoutSeconds)))),
            configuration: .init(address: .hostname(host, port: port), serverName: "l3af-registry/\(L3AFBuild.version)",
                                 availableConnectionsDelegate: MaximumAvailableConnections(maximumConnections, logger: logger)),
            services: [IndexRefresher(store: store, intervalSeconds: refreshIntervalSeconds, metrics: metrics, logger: logger), SystemdWatchdog()],
            onServerRunning: { channel in
                onListening(channel.localAddress?.port ?? port)
                SystemdNotify.send("READY=1")
            },
            logger: logger)
        try await app.runService()
    }
}

/// Re-signs the index before it expires, checking every interval.
struct IndexRefresher: Service {
    let store: RegistryStore
    let intervalSeconds: Int
    let metrics: RegistryMetrics
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await store.refreshIndexIfNeeded()
                } catch {
                    metrics.resignFailed()
                    logger.error("re-signing the index failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(intervalSeconds))
            }
        }
    }
}
