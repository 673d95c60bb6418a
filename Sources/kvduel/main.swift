import DuelCore
import TerminalUI
import ArgumentParser

struct KVDuel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvduel",
        abstract: "A live duel of KV-cache reuse: a cached engine against a baseline, same model, same threads.",
        subcommands: [Chat.self, Replay.self, Export.self, Report.self, Generate.self, Tokenize.self, Logits.self, Bench.self, Keys.self],
        defaultSubcommand: Chat.self)
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: a scenario through both engines (default), or the engine alone.",
        subcommands: [BenchScenario.self, BenchEngine.self, BenchCake.self, BenchRender.self], defaultSubcommand: BenchScenario.self)
}

struct BenchRender: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "render", abstract: "Frame time of a full screen with long transcripts.")
    @Option(help: "Columns.") var cols = 160
    @Option(help: "Rows.") var rows = 45
    @Option(help: "Turns in each transcript.") var turns = 300
    func run() { print(benchmarkRender(cols: cols, rows: rows, turns: turns).summary) }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the duel's keys as a Markdown table (the README's table).")
    func run() { print(Keymap.markdownTable(), terminator: "") }
}

KVDuel.main()
