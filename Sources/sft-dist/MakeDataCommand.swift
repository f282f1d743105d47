import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct MakeData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-data",
        abstract: "Write the built-in task dataset (arithmetic and string tasks with verifiable answers) as JSONL.")

    @Option(help: "Output JSONL path.") var out: String
    @Option(Settings.exampleCount) var count = 4000
    @Option(Settings.seed) var seed: UInt64 = 1234

    func validate() throws {
        try Settings.exampleCount.check(count)
    }

    func run() throws {
        do {
            try TaskGenerator.writeJSONL(TaskGenerator.generate(count: count, seed: seed), to: out)
        } catch {
            printError("sft-dist: error: \(error)"); throw ExitCode(error is OutputError ? Fatal.Code.output : Fatal.Code.input)
        }
    }
}
