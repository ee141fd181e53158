import L3AFCLISupport
import L3AFDaemon

await CommandRunner.main(L3AFDCommand.self)
