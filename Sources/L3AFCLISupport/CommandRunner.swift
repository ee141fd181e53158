import ArgumentParser
import Foundation
import L3AFModel

/// The one place that runs a root command, prints `error:` / `hint:` for failures and sets the exit
/// code: 0 on success, 1 for an error the user can act on, ArgumentParser's codes for usage errors.
public enum CommandRunner {
    /// Parses `arguments` (the process's by default), runs the command, and exits.
    public static func main<Root: AsyncParsableCommand>(_ root: Root.Type, arguments: [String]? = nil) async -> Never {
        do {
            var command = try root.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            finish(0)
        } catch let error as any L3AFError {
            report(error)
            finish(1)
        } catch {
            root.exit(withError: error)
        }
    }

    /// Flushes standard output and ends the process without running exit handlers: the command's files are
    /// written and synced by then, and the handlers (libcurl's and OpenSSL's cleanup, the loader's finalizers)
    /// would only cost a short-lived process a few milliseconds.
    static func finish(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    /// Writes an error and its hint to standard error.
    static func report(_ error: any L3AFError) {
        var text = "error: \(error.description)\n"
        if let hint = error.hint { text += "hint: \(hint)\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }
}

/// An error in the CLI's own work (a file that can't be read, an option that doesn't fit).
public struct CLIError: L3AFError {
    public let code: String
    public let description: String
    public let hint: String?

    public init(_ code: String, _ description: String, hint: String? = nil) {
        self.code = code
        self.description = description
        self.hint = hint
    }
}

/// Reads a file, or standard input for `-`.
public func readInput(_ path: String) throws -> Data {
    if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError("unreadable-file", "can't read '\(path)'", hint: "check that the file exists and is readable")
    }
    return data
}
