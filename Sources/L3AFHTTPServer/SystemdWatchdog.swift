import L3AFSystem
import ServiceLifecycle
import Synchronization

/// Keeps systemd's watchdog fed while the server runs (`WATCHDOG=1` every half `WatchdogSec=`, from the concurrency
/// pool, so a pool that stops running tasks stops the pings and systemd restarts the service), and says `STOPPING=1`
/// when a graceful stop begins. Runs alongside the servers in their service group; does nothing without systemd.
public struct SystemdWatchdog: Service {
    let interval: Duration?
    let notify: @Sendable (String) -> Void
    /// Whether a graceful stop is the service stopping (STOPPING=1) rather than l3afd handing over to a new process,
    /// which becomes the main process (MAINPID=) and goes on: systemd would stop the unit, new process included.
    let stopIsFinal: @Sendable () -> Bool

    public init(interval: Duration? = SystemdNotify.watchdogInterval(), stopIsFinal: @escaping @Sendable () -> Bool = { true },
                notify: @escaping @Sendable (String) -> Void = { SystemdNotify.send($0) }) {
        self.interval = interval
        self.stopIsFinal = stopIsFinal
        self.notify = notify
    }

    public func run() async throws {
        // Set once a stop begins, under the lock the pings take too: no ping follows STOPPING=1.
        let stopping = Mutex(false)
        await withGracefulShutdownHandler {
            guard let interval else {
                try? await gracefulShutdown()
                return
            }
            // A graceful stop cancels the sleep, so the stop doesn't wait out an interval.
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    stopping.withLock { if !$0 { notify("WATCHDOG=1") } }
                    try? await Task.sleep(for: interval)
                }
            }
        } onGracefulShutdown: {
            stopping.withLock { stopping in
                stopping = true
                if stopIsFinal() { notify("STOPPING=1") }
            }
        }
    }
}
