internal import CBPF
import Glibc

/// `BPF_PROG_TEST_RUN`: runs a loaded program on a packet in the kernel, without an interface.
public enum BPFTestRun {
    /// What a run returned: the program's verdict, the packet as it left, and the mean time per repetition.
    public struct Result: Sendable {
        public let verdict: UInt32
        public let packet: [UInt8]
        public let nanosecondsPerRun: UInt32
    }

    /// Runs `program` on `packet` `repeat` times (`bpf_prog_test_run_opts`).
    public static func run(_ program: BPFDescriptor, packet: [UInt8], repeat count: Int = 1) throws(BPFError) -> Result {
        var output = [UInt8](repeating: 0, count: packet.count + 256)
        var options = bpf_test_run_opts()
        options.sz = optionsSize(\bpf_test_run_opts.duration, UInt32.self)
        options.repeat = Int32(max(count, 1))
        let rc = packet.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { out in
                options.data_in = input.baseAddress
                options.data_size_in = UInt32(input.count)
                options.data_out = out.baseAddress
                options.data_size_out = UInt32(out.count)
                return bpf_prog_test_run_opts(program.fd, &options)
            }
        }
        guard rc == 0 else { throw BPFError(.inspect, errno: errno, context: "bpf_prog_test_run_opts", detail: nil) }
        return Result(verdict: options.retval, packet: Array(output.prefix(Int(options.data_size_out))), nanosecondsPerRun: options.duration)
    }
}
