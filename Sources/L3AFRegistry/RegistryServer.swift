import Foundation
import Hummingbird
import L3AFModel
import Logging
import NIOCore
import ServiceLifecycle

/// Runs the registry's HTTP server until SIGTERM or SIGINT, then shuts down gracefully.
public enum RegistryServer {
    /// Serves `store` on `host:port` (port 0 picks a free one). `onListening` gets the bound port once
    /// the server accepts connections.
    public static func run(
        store: RegistryStore, host: String, port: Int, maximumUploadBytes: Int = 64 << 20,
        refreshIntervalSeconds: Int = 60, logRequests: Bool = true, logger: Logger,
        onListening: @escaping @Sendable (Int) -> Void
    ) async throws {
        let router = Router()
        if logRequests { router.add(middleware: LogRequestsMiddleware(.info)) }
        router.add(middleware: ErrorMiddleware())
        RegistryRoutes(store: store, maximumUploadBytes: maximumUploadBytes).register(on: router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "l3af-registry/\(L3AFBuild.version)"),
            services: [IndexRefresher(store: store, intervalSeconds: refreshIntervalSeconds, logger: logger)],
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
            logger: logger)
        try await app.runService()
    }
}

/// Re-signs the index before it expires, checking every interval.
struct IndexRefresher: Service {
    let store: RegistryStore
    let intervalSeconds: Int
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await store.refreshIndexIfNeeded()
                } catch {
                    logger.error("re-signing the index failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(intervalSeconds))
            }
        }
    }
}
