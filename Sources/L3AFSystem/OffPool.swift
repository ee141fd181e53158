import Foundation

/// Blocking work (a lock wait, an unpack, libarchive, libbpf) run on a thread of its own and awaited, so it never
/// holds one of the cooperative pool's few threads.
public enum OffPool {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }
}
