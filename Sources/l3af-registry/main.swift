import L3AFCLISupport
import L3AFRegistryCLI

await CommandRunner.main(RegistryCommand.self)
