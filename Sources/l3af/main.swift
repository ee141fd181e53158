import L3AFCLISupport
import L3AFCLI
#if canImport(Glibc)
import Glibc
#endif

// Cache, state, logs and the repo are not for other users to read: files this process creates get no "other" bits.
umask(0o027)
// --log-format applies to every subcommand (libbpf's messages are what the client logs), so it is taken here.
let arguments: [String]
do {
    let (format, rest) = try LogFormat.take(from: Array(CommandLine.arguments.dropFirst()))
    format.bootstrap()
    arguments = rest
} catch let error as CLIError {
    CommandRunner.report(error, json: OutputOptions.requested())
    exit(64)
}
await CommandRunner.main(L3AFCommand.self, arguments: arguments)
