import ArgumentParser
import Foundation
import L3AFModel

/// `--json` for machine-readable output.
public struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of text.")
    public var json = false

    public init() {}

    /// Whether `arguments` (a command line without the program's name) ask for JSON: for what runs before or outside
    /// the parsed command (errors, the host's progress bar).
    public static func requested(in arguments: some Collection<String> = CommandLine.arguments.dropFirst()) -> Bool {
        arguments.prefix { $0 != "--" }.contains("--json")
    }

    /// Prints `value` as JSON when asked to, else `text`.
    public func emit(_ value: some Encodable, text: @autoclosure () -> String) throws {
        if json {
            FileHandle.standardOutput.write(try DocumentDecoder.encode(value) + Data("\n".utf8))
        } else {
            print(text())
        }
    }
}

