import ArgumentParser
import Foundation

@main
struct SFTDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft-dist",
        abstract: "Data-parallel supervised fine-tuning of language models over MPI.",
        discussion: """
        Run under mpirun for data parallelism (mpirun -n 4 sft-dist train ...), or as a plain \
        process for one rank. With no arguments, trains the embedded default: a small GPT on \
        built-in arithmetic and string tasks, evaluated before and after.
        """,
        subcommands: [Train.self, Eval.self, Score.self, Generate.self, Tokenize.self, MakeData.self, Export.self, Bench.self],
        defaultSubcommand: Train.self)

    /// Argument errors print on rank 0 only: under mpirun every rank parses the same flags.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if Runtime.launcherRank == 0 {
                exit(withError: error)
            }
            Foundation.exit(Self.exitCode(for: error).rawValue)
        }
    }
}
