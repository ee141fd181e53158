import ArgumentParser
import Foundation
import L3AFModel

/// `--json` for machine-readable output.
public struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of text.")
    public var json = false

    public init() {}

    /// Prints `value` as JSON when asked to, else `text`.
    public func emit(_ value: some Encodable, text: @autoclosure () -> String) throws {
        if json {
            FileHandle.standardOutput.write(try DocumentDecoder.encode(value) + Data("\n".utf8))
        } else {
            print(text())
        }
    }
}

