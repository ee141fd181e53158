import ArgumentParser
import L3AFModel

/// `l3af-registry`: serves and publishes into a signed, static package tree.
public struct RegistryCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "l3af-registry",
        abstract: "The l3af package registry: a signed static tree any web server can serve, and a publish API.",
        version: L3AFBuild.version
    )

    public init() {}
}
