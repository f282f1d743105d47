import ArgumentParser
import Distributed
import Foundation
import Models
import TensorCore
import Training

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate completions: greedy (temperature 0) or sampled, for one prompt or a JSONL of prompts.")

    @Option(help: "Model directory or preset.") var model: String
    @Option(help: "One prompt (raw text).") var prompt: String?
    @Option(help: "JSONL with a \"prompt\" field per line.") var prompts: String?
    @Option(name: .customLong("max-new-tokens"), help: "Tokens to generate.") var maxNewTokens = 32
    @Option(help: "Sampling temperature; 0 = greedy.") var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Sample from the k most likely tokens (0 = all).") var topK = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.") var topP: Float = 1
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Flag(help: "One JSON object per prompt ({prompt, text, ids}).") var json = false
    @Option(help: "OpenBLAS threads per rank.") var threads: Int?

    func validate() throws {
        if (prompt == nil) == (prompts == nil) { throw ValidationError("give exactly one of --prompt or --prompts") }
        if temperature < 0 { throw ValidationError("--temperature must be ≥ 0") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be ≥ 1") }
    }

    func run() throws {
        let comm = Runtime.start(threads: threads)
        let (m, tok) = Fatal.collective { try RunSetup.loadModel(model, seed: 0) }
        let texts: [String] = Fatal.collective {
            if let prompt { return [prompt] }
            return try JSONLReader.read(path: prompts!).records.map { r in
                switch r.record {
                case .promptCompletion(let p, _): return p
                case .messages(let msgs): return msgs.map { "<|im_start|>\($0.role.rawValue)\n\($0.content)<|im_end|>\n" }.joined() + "<|im_start|>assistant\n"
                }
            }
        }
        var stop: Set<Int32> = [tok.eosId]
        if let end = tok.specialTokenId("<|im_end|>") { stop.insert(end) }
        let options = SamplingOptions(maxNewTokens: maxNewTokens, temperature: temperature, topK: topK, topP: topP, stopIds: stop)
        var lines: [String] = []
        for i in stride(from: comm.rank, to: texts.count, by: comm.size) {
            // Seeded per prompt, so the output does not depend on which rank ran it.
            var rng = RNG(seed: seed, stream: UInt64(i))
            let ids = tok.encode(texts[i])
            let out = Generator.generate(m, prompt: ids, options: options, rng: &rng)
            let text = tok.decode(out.ids)
            lines.append(json ? MetricsLog.json([("prompt", texts[i]), ("text", text)]).dropLast() + ", \"ids\": [\(out.ids.map(String.init).joined(separator: ", "))]}"
                              : texts[i] + text)
        }
        let gathered = comm.gather(Array(lines.joined(separator: "\u{1E}").utf8), root: 0)
        if comm.isCoordinator {
            let perRank = gathered.map { String(decoding: $0, as: UTF8.self).split(separator: "\u{1E}", omittingEmptySubsequences: false).map(String.init) }
            for i in 0..<texts.count { print(perRank[i % comm.size][i / comm.size]) }
        }
        Runtime.finish()
    }
}
