import ArgumentParser

/// `kq`: shows KQueue working on real things.
@main
struct KQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kq",
        abstract: "FreeBSD's kqueue on Linux: demos and tools built on the KQueue library.",
        subcommands: [
            Demo.self, Telnet.self, Bench.self, Watch.self, Trace.self, Info.self, EchoServerCommand.self,
            HTTPHelloCommand.self,
        ],
        defaultSubcommand: Demo.self)
}
