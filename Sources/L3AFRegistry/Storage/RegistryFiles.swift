import L3AFSystem

/// The registry's view of ``L3AFSystem/AtomicFile``: the same atomic writes, failures as a 500-class
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

/// The writer lock (``L3AFSystem/FileLock``, waited for), failing as a ``RegistryError``.
struct RegistryLock: Sendable {
    let path: String


    func withLock<T>(_ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        let lock: FileLock
        do { lock = try FileLock(path: path, wait: .forever) } catch {
            throw RegistryError(.internalFailure, "storage-failed", "taking the writer lock \(path): \(error)")
        }
        defer { withExtendedLifetime(lock) {} }
        return try body()
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
