import L3AFCLI

await CommandRunner.main(RegistryCommand.self)
