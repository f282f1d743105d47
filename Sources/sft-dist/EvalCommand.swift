import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Held-out loss, perplexity, token accuracy and exact match of greedy generations.")

    @Option(help: "Model directory (or a preset, for a baseline).") var model: String
    @Option(help: "JSONL to evaluate on.") var data: String
    @Option(name: .customLong("micro-batch-size"), help: "Examples per forward pass.") var microBatchSize = 8
    @Option(name: .customLong("max-length"), help: "Maximum tokens per example.") var maxLength = 1024
    @Option(name: .customLong("max-new-tokens"), help: "Generation length for exact match.") var maxNewTokens = 16
    @Option(help: "Examples used for generation accuracy (0: none).") var examples = 200
    @Option(name: .customLong("chat-template"), help: "chatml or plain.") var chatTemplate = "chatml"
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "OpenBLAS threads per rank.") var threads: Int?

    func run() throws {
        let comm = Runtime.start(threads: threads)
        let (m, tok) = Fatal.collective { try RunSetup.loadModel(model, seed: 0) }
        let set = Fatal.collective {
            try Dataset(path: data, tokenizer: tok, maxLength: min(maxLength, m.maxSequenceLength),
                        template: ChatTemplate(rawValue: chatTemplate) ?? .chatml)
        }
        let r = Evaluator.evaluate(model: m, tokenizer: tok, examples: set.examples, comm: comm,
                                   microBatch: microBatchSize, generationExamples: examples, maxNewTokens: maxNewTokens)
        if comm.isCoordinator {
            if json {
                print(MetricsLog.json([("examples", set.count)] + r.fields))
            } else {
                print("examples        \(set.count)")
                print(String(format: "loss            %.4f", r.loss))
                print(String(format: "perplexity      %.3f", r.perplexity))
                print(String(format: "token accuracy  %.2f%%", r.tokenAccuracy * 100))
                if let em = r.exactMatch { print(String(format: "exact match     %.2f%% of %d", em * 100, r.generated)) }
            }
        }
        Runtime.finish()
    }
}
