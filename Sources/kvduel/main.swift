import ArgumentParser

struct KVDuel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvduel",
        abstract: "A live duel of KV-cache reuse: a cached engine against a baseline, same model, same threads.",
        subcommands: [Generate.self, Tokenize.self, Logits.self, Bench.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks.", subcommands: [BenchEngine.self], defaultSubcommand: BenchEngine.self)
}

KVDuel.main()
