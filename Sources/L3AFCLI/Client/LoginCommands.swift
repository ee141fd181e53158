import ArgumentParser
import Foundation
import L3AFCLISupport
import L3AFClient
import L3AFModel

/// `l3af login`: keeps a publish token for a registry in the user's config file, so `publish`, `yank`, `dist-tag`,
/// `deprecate` and `owner` need no `--token`.
struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Keep a publish token for a registry in your config file (~/.config/l3af/config.json, mode 0600).",
        discussion: """
            The token is read from standard input (so it stays out of the shell's history and the process list), \
            or from --token-file. Commands that write to that registry then use it when neither --token nor \
            $L3AF_TOKEN is given. `l3af logout` removes it.
            """)

    @Option(help: "The registry's URL (default: $L3AF_REGISTRY, else the config files' registry).") var registry: String?
    @Option(help: "Read the token from this file instead of standard input.") var tokenFile: String?
    @OptionGroup var output: OutputOptions

    struct Reply: Encodable { let registry: String; let file: String }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let url = try registryURL(registry, configured: try ClientConfiguration.load(file: nil, environment: environment).registry)
        let text: String
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw CLIError("unreadable-file", "can't read the token file \(tokenFile)", hint: "check the path")
            }
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = Self.readSecretLine(prompt: "token for \(url): ")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.hasPrefix("l3af_"), token.count <= 256, token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw CLIError("invalid-token", "that is not an l3af publish token (l3af_ followed by letters and digits)",
                           hint: "l3af-registry token add prints one; paste it on standard input")
        }
        let file = try ClientConfiguration.storeToken(token, for: url, environment: environment)
        try output.emit(Reply(registry: ClientConfiguration.registryKey(url), file: file), text: "kept a publish token for \(ClientConfiguration.registryKey(url)) in \(file)")
    }
}

extension LoginCommand {
    /// A line from standard input; on a terminal, after a prompt and without echoing what is typed.
    static func readSecretLine(prompt: String) -> String {
        guard isatty(STDIN_FILENO) != 0 else { return readLine(strippingNewline: true) ?? "" }
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        let haveTerminal = tcgetattr(STDIN_FILENO, &saved) == 0
        if haveTerminal {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        defer {
            if haveTerminal { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved) }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return readLine(strippingNewline: true) ?? ""
    }
}

/// `l3af logout`: forgets the token kept for a registry.
struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Forget the publish token `l3af login` kept for a registry.")

    @Option(help: "The registry's URL (default: $L3AF_REGISTRY, else the config files' registry).") var registry: String?
    @OptionGroup var output: OutputOptions

    struct Reply: Encodable { let registry: String; let removed: Bool }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let config = try ClientConfiguration.load(file: nil, environment: environment)
        let url = try registryURL(registry, configured: config.registry)
        let had = config.token(for: url) != nil
        if had { try ClientConfiguration.storeToken(nil, for: url, environment: environment) }
        try output.emit(Reply(registry: ClientConfiguration.registryKey(url), removed: had),
                        text: had ? "forgot the publish token for \(ClientConfiguration.registryKey(url))" : "no token was kept for \(ClientConfiguration.registryKey(url))")
    }
}
