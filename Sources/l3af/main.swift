import L3AFCLISupport
import L3AFCLI
#if canImport(Glibc)
import Glibc
#endif

// Cache, state, logs and the repo are not for other users to read: files this process creates get no "other" bits.
umask(0o027)
await CommandRunner.main(L3AFCommand.self)
