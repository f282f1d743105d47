import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct MakeData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-data",
        abstract: "Write the built-in task dataset (arithmetic and string tasks with verifiable answers) as JSONL.",
        discussion: """
        Without task options the rows are the embedded default dataset ({prompt, completion}). \
        With any, each row also records kind, digits, variant and template (and corrupted with \
        --noise), fields that training ignores.
        """)

    @Option(help: "Output JSONL path (- for standard output).") var out: String
    @Option(Settings.exampleCount) var count = 4000
    @Option(Settings.seed.named("seed", help: "Seed of the generated rows.")) var seed: UInt64 = 1234
    @Option(Settings.taskKinds) var kinds: String?
    @Option(Settings.taskDigits) var digits: String?
    @Option(Settings.taskVariant) var variant = "standard"
    @Option(Settings.templateVariant) var templateVariant = "standard"
    @Option(Settings.noise) var noise: Double = 0
    @Option(Settings.noiseKind, default: "completion") var noiseKind: String?
    @Flag(help: "Prompts only, no completion (unlabelled prompts for self-training).") var unlabelled = false

    func validate() throws {
        try Settings.exampleCount.check(count)
        _ = try options()
    }

    func options() throws -> TaskOptions {
        let options = try TaskOptions.parse(kinds: kinds, digits: digits, variant: variant, template: templateVariant,
                              noise: noise, noiseKind: noiseKind ?? "completion", unlabelled: unlabelled)
        // After the value's own check: an unknown kind is named as such first.
        if noise == 0, noiseKind != nil {
            throw RecipeError("--noise-kind chooses how --noise corrupts rows; without --noise (a share above 0) it has no effect")
        }
        return options
    }

    func run() throws {
        Runtime.singleProcess()
        let options = try options()
        try TaskGenerator.writeJSONL(TaskGenerator.rows(count: count, seed: seed, options: options),
                                     options: options, to: out)
    }
}
