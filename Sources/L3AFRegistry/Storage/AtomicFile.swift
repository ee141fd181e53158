import L3AFArchive

/// The registry's view of ``L3AFArchive/AtomicFile``: the same atomic writes, failures as a 500-class
/// ``RegistryError``.
enum RegistryFiles {
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(RegistryError) {
        try Result { () throws(StorageError) in try AtomicFile.write(bytes, to: path, mode: mode) }.mapError(RegistryError.init).get()
    }

    static func symlink(_ target: String, at path: String) throws(RegistryError) {
        try Result { () throws(StorageError) in try AtomicFile.symlink(target, at: path) }.mapError(RegistryError.init).get()
    }

    static func makeFolders(_ path: String) throws(RegistryError) {
        try Result { () throws(StorageError) in try AtomicFile.makeFolders(path) }.mapError(RegistryError.init).get()
    }

    static func read(_ path: String) -> [UInt8]? { AtomicFile.read(path) }

    static var temporaryPrefix: String { AtomicFile.temporaryPrefix }
}

/// The writer lock, failing as a ``RegistryError``.
final class RegistryLock: Sendable {
    let lock: FileLock

    init(path: String) throws(RegistryError) {
        lock = try Result { () throws(StorageError) in try FileLock(path: path) }.mapError(RegistryError.init).get()
    }

    func withLock<T>(_ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        let outcome: Result<Result<T, RegistryError>, StorageError> = Result { () throws(StorageError) in
            try lock.withLock { () throws(StorageError) in Result { () throws(RegistryError) in try body() } }
        }
        switch outcome {
        case .success(let inner): return try inner.get()
        case .failure(let error): throw RegistryError(error)
        }
    }
}

extension RegistryError {
    init(_ storage: StorageError) {
        self.init(.internalFailure, "storage-failed", storage.description)
    }
}

#if canImport(Glibc)
import Glibc
#endif
