import ArgumentParser
import L3AFCLISupport
import L3AFModel

/// `l3afd`: the node daemon serving l3afd's REST API.
public struct L3AFDCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "l3afd",
        abstract: "The l3af node daemon: l3afd's REST API, wire-compatible, driving the same runtime as l3af.",
        version: L3AFBuild.version
    )

    public init() {}
}
