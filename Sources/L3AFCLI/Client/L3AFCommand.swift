import ArgumentParser
import L3AFCLISupport
import L3AFModel

/// `l3af`: the package manager and node tool.
public struct L3AFCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "l3af",
        abstract: "Publish, install and run versioned eBPF packages, chained on network interfaces.",
        discussion: """
            Packages are resolved from a signed registry, verified, unpacked into /var/l3afd/repo and \
            run with libbpf behind a root program, one atomic step at a time.

            Every command takes --log-format text|json (or $L3AF_LOG_FORMAT) for the messages it logs to \
            standard error (libbpf's, at $L3AF_LIBBPF_LOG's level, warning by default).
            """,
        version: L3AFBuild.version,
        subcommands: [
            ValidateCommand.self, LoginCommand.self, LogoutCommand.self, PublishCommand.self, YankCommand.self, UnyankCommand.self, DistTagCommand.self,
            DeprecateCommand.self, OwnerCommand.self, SearchCommand.self, InfoCommand.self, AuditCommand.self,
            FetchCommand.self, ListCommand.self, VerifyCommand.self, PackCommand.self,
            InstallCommand.self, StatusCommand.self, UpgradeCommand.self, PinCommand.self, UnpinCommand.self, HistoryCommand.self,
            RollbackCommand.self, RemoveCommand.self, RestoreCommand.self, ApplyCommand.self, CheckCommand.self, DiffCommand.self,
            FleetCommand.self,
        ]
    )

    public init() {}
}
