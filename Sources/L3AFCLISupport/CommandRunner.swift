import ArgumentParser
import Foundation
import L3AFModel

/// The one place that runs a root command, prints `error:` / `hint:` for failures and sets the exit
/// code: 0 on success, 1 for an error the user can act on, ArgumentParser's codes for usage errors.
public enum CommandRunner {
    /// Parses `arguments` (the process's by default), runs the command, and exits.
    public static func main<Root: AsyncParsableCommand>(_ root: Root.Type, arguments: [String]? = nil) async -> Never {
        let json = arguments.map { OutputOptions.requested(in: $0) } ?? OutputOptions.requested()
        do {
            var command = try root.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            finish(0)
        } catch let error as any L3AFError {
            report(error, json: json)
            finish(1)
        } catch {
            let code = root.exitCode(for: error)
            // A command that printed its own report and set the status (`check`, a dry run with problems) ends so.
            if error is ExitCode { finish(code.rawValue) }
            // Help and the version print and exit 0; without --json, ArgumentParser reports usage errors itself.
            guard json, code != .success else { root.exit(withError: error) }
            let usage = code == .validationFailure
            report(CLIError(usage ? "usage" : "failed", root.message(for: error),
                            hint: usage ? "see \(root.configuration.commandName ?? "the command") --help" : nil), json: true)
            finish(code.rawValue)
        }
    }

    /// Flushes standard output and ends the process without running exit handlers: the command's files are
    /// written and synced by then, and the handlers (libcurl's and OpenSSL's cleanup, the loader's finalizers)
    /// would only cost a short-lived process a few milliseconds.
    static func finish(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    /// Writes an error and its hint to standard error; with `--json`, as `{"error": {"code", "message", "hint"}}` on
    /// standard output (where the caller reads the JSON a success prints), the same body the servers answer with.
    public static func report(_ error: any L3AFError, json: Bool = false) {
        if json {
            var fields: [String: JSONValue] = ["code": .string(error.code), "message": .string(error.description)]
            if let hint = error.hint { fields["hint"] = .string(hint) }
            FileHandle.standardOutput.write(Data((JSONValue.object(["error": .object(fields)]).description + "\n").utf8))
            return
        }
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
