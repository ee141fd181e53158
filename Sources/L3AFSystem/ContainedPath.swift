import Foundation
import Glibc
import L3AFModel

/// A path proven to stay inside a folder after every link is resolved: `realpath(3)` of both, then a prefix check
/// on whole components. Names from outside are checked as ``FileName`` / ``RelativePath`` at the edge; this is the
/// second check, on the file system itself, just before the path is used.
public enum ContainedPath {
    /// The resolved path of `relative` under `folder`, or an error naming `field` when it leaves the folder or
    /// does not exist.
    public static func resolve(_ relative: RelativePath, in folder: String, field: String) throws(PathNameError) -> String {
        guard let base = realPath(folder) else {
            throw PathNameError(field: field, value: relative.rawValue, problem: "its folder \(folder) does not exist", rule: RelativePath.rule)
        }
        guard let resolved = realPath("\(base)/\(relative.rawValue)") else {
            throw PathNameError(field: field, value: relative.rawValue, problem: "there is no such file in \(folder)", rule: RelativePath.rule)
        }
        guard resolved.hasPrefix(base + "/") else {
            throw PathNameError(field: field, value: relative.rawValue, problem: "it resolves to \(resolved), outside \(folder)", rule: RelativePath.rule)
        }
        return resolved
    }

    /// `realpath(3)`, or `nil` when the path doesn't exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
