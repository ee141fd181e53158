import L3AFCLISupport
import L3AFCLI

await CommandRunner.main(L3AFDCommand.self)
