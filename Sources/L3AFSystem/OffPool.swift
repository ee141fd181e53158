import Foundation

/// Blocking work (a lock wait, an unpack, libarchive, libbpf, a libcurl transfer) run on a thread of its own and
/// awaited, so it never holds one of the cooperative pool's few threads. Its error type is the body's.
public enum OffPool {
    public static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: Result { () throws(E) in try body() }) }
        }
        return try result.get()
    }
}
