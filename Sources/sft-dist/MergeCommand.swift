import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Weighted average of model directories of one config (interpolation, model soup, WiSE-FT).",
        discussion: """
        Writes Σ wᵢ·θᵢ tensor by tensor to --out, with the first model's config and tokenizer. \
        Default weights: 1/k each (a uniform soup). Two models with --weights 0.5,0.5 interpolate \
        halfway (WiSE-FT with α = 0.5 when A is the base and B the fine-tuned model). Models whose \
        config.json fields or tokenizer files differ are refused, naming the field.
        """)

    @Argument(help: "Model directories (two or more).") var models: [String]
    // .unconditional: "-1,2" (an extrapolation) is the value, not an unknown flag.
    @Option(parsing: .unconditional, help: "Comma-separated weights, one per model (default: 1/k each).") var weights: String?
    @Option(help: "Output directory: new, or a model directory to replace atomically (anything else is refused).") var out: String

    func run() throws {
        Runtime.singleProcess()
        try ReplaceableOutput.check(out, inputs: models, byCommand: true)
        print(try ModelMerge.merge(models, weights: try parsedWeights(), to: out))
    }

    func parsedWeights() throws -> [Double]? {
        guard let text = weights else { return nil }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map {
            let item = $0.trimmingCharacters(in: .whitespaces)
            guard let w = Double(item), w.isFinite else {
                throw ModelError("--weights: \"\(item)\" is not a number (expected e.g. 0.5,0.5)")
            }
            return w
        }
    }
}
