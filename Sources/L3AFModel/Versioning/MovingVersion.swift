/// A version of a plain repository whose bytes may change (`latest`), and how each of its builds is named once
/// installed: `<version>-<first 12 hex of its sha256>`. One place for the convention: the installer names builds with
/// it, the chain engine and the metrics read the version asked for back from it.
public enum MovingVersion {
    public static let names: Set<String> = ["latest"]

    public static func isMoving(_ version: String) -> Bool { names.contains(version) }

    /// The installed name of the build of `version` whose sha256 is `digestHex`.
    public static func build(_ version: String, digestHex: String) -> String { "\(version)-\(digestHex.prefix(12))" }

    /// The version asked for, when `installed` names a build of a moving version; `nil` otherwise.
    public static func requested(_ installed: String) -> String? {
        guard let dash = installed.lastIndex(of: "-") else { return nil }
        let digest = installed[installed.index(after: dash)...], version = String(installed[..<dash])
        return digest.count == 12 && digest.allSatisfy(\.isHexDigit) && isMoving(version) ? version : nil
    }
}

/// A version (or object file name) as l3afd writes it in pin paths and `--version`: dots become underscores, since
/// bpffs names have none (`1.2.0` is `1_2_0`).
public enum PinName {
    public static func of(_ text: String) -> String { text.replacingOccurrences(of: ".", with: "_") }
}
