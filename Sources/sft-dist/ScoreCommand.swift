import ArgumentParser
import Distributed
import Foundation
import Models
import TensorCore
import Training

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-example token ids and the log-probability of every completion token, as JSONL.",
        discussion: "Work is sharded over ranks; rank 0 writes the lines in input order. A reward model (--objective reward's OUT/model, transformers' *ForSequenceClassification with one label) gives each row's \"reward\" instead: its score at the last token that is not config.json's pad_token_id.")

    @Option(help: "Model directory or preset.") var model: String
    @Option(help: "A LoRA adapter directory (peft format) to apply to --model, its base.") var adapter: String?
    @Option(help: "JSONL to score.") var data: String
    @Option(help: "Output JSONL (default: standard output).") var out: String?
    @Option(Settings.maxLength) var maxLength = 1024
    @Option(name: .customLong("chat-template"), help: "auto (the model's own), chatml, llama3 or plain.") var chatTemplate = "auto"
    @Option(name: .customLong("dataset-text-field"), help: "The field of plain-text rows (TRL's dataset_text_field); their every token is scored.") var datasetTextField = JSONLReader.defaultTextField
    @Flag(inversion: .prefixedNo, help: "Score the completion of {prompt, completion} rows only (--no-completion-only-loss: every token), as train's flag.")
    var completionOnlyLoss = true
    @Flag(inversion: .prefixedNo, help: "Score the assistant turns of {messages} rows only (--no-assistant-only-loss: every token), as train's flag.")
    var assistantOnlyLoss = true
    @Option(Settings.threads) var threads: Int?
    @Option(Settings.watchdog) var watchdog = 300.0

    func validate() throws {
        try Settings.maxLength.check(maxLength)
        try Settings.threads.check(threads)
        try Settings.watchdog.check(watchdog)
    }

    func run() throws {
        let comm = Runtime.start(threads: threads, watchdog: watchdog)
        SameInputs.check(settings: [("max-length", "\(maxLength)"), ("chat-template", chatTemplate), ("adapter", adapter == nil ? "no" : "yes"),
                                    ("completion-only-loss", "\(completionOnlyLoss)"), ("assistant-only-loss", "\(assistantOnlyLoss)"),
                                    ("dataset-text-field", datasetTextField)])
        Runtime.checkOutputFile(out, inputs: [("--data", data)], model: model, adapter: adapter)
        let holdsReward = adapter == nil && ModelDirectory.holdsRewardModel(model)
        let (m, tok) = Fatal.collective { holdsReward ? try RunSetup.loadModel(model, seed: 0, use: .inference, kind: .rewardModel)
                                          : try AdapterDirectory.loadModel(model, adapter: adapter, rewardModels: true) }
        Runtime.noteAdapter(model: model, adapter: adapter, loaded: m, comm: comm)
        // A reward model's adapter (peft's task_type SEQ_CLS) on its causal base is a reward model too.
        let reward = m.scoresSequences
        SameInputs.check(Runtime.modelLabel(model, adapter: adapter), model: m, tokenizer: tok)
        Runtime.noteSlidingWindow(m, maxLength: maxLength, comm: comm)
        let set = Fatal.collective {
            try EvaluatedData.load(data, tokenizer: tok, maxLength: maxLength, context: m.maxSequenceLength,
                                   template: try ChatTemplate.resolve(chatTemplate, tokenizer: tok, label: "--chat-template").template,
                                   lossScope: LossScope(completionOnly: completionOnlyLoss, assistantOnly: assistantOnlyLoss),
                                   textField: datasetTextField)
        }
        Runtime.checkLoaded(set, from: data, comm: comm, chatTemplate: chatTemplate, tokenizer: tok, completionOnlyLoss: completionOnlyLoss,
                            assistantOnlyLoss: assistantOnlyLoss, textField: datasetTextField)
        var lines: [String] = []
        var nonFinite: String? = nil   // this rank's first, for one line (JSON has no NaN)
        let tape = Tape(recording: false)
        let rewardPad = reward ? ModelDirectory.rewardPadId(m) : nil
        for i in comm.shard.indices(of: set.count) {
            let e = set[i]
            if reward { lines.append(rewardLine(m, pad: rewardPad, e, index: i, nonFinite: &nonFinite)); continue }
            let logits = m.forward(tape, inputs: Array(e.ids.dropLast()), batch: 1, seqLen: e.ids.count - 1)
            let V = logits.columns
            var lp = [Float](repeating: 0, count: V)
            var scores: [String] = []
            var total = 0.0
            for t in 0..<(e.ids.count - 1) where e.lossMask[t + 1] != 0 {
                lp.withUnsafeMutableBufferPointer {
                    SoftmaxKernels.logSoftmax(out: $0.baseAddress!, logits: logits.data + t * V, rows: 1, vocab: V)
                }
                let v = lp[Int(e.ids[t + 1])]
                if !v.isFinite && nonFinite == nil {
                    nonFinite = "\(e.source): the model's log-probability of completion token \(scores.count + 1) is \(v): its weights give non-finite values (a run that diverged?); nothing written"
                }
                total += Double(v)
                scores.append(String(format: "%.6f", v))
            }
            lines.append("{\"index\": \(i), \"source\": \(MetricsLog.value(e.source)), \"ids\": [\(e.ids.map(String.init).joined(separator: ", "))], \"completion_logprobs\": [\(scores.joined(separator: ", "))], \"sum_logprob\": \(String(format: "%.6f", total))}")
        }
        Fatal.agree(nonFinite)
        // Rank r holds examples r, r+size, …: interleave back into input order.
        let gathered = comm.gather(Array(lines.joined(separator: "\n").utf8), root: 0)
        if comm.isCoordinator {
            let perRank = gathered.map { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }
            var ordered: [String] = []
            for i in 0..<set.count { ordered.append(perRank[i % comm.size][i / comm.size]) }
            let text = ordered.joined(separator: "\n") + "\n"
            if let out {
                Fatal.agree(writeAtomically(text, to: out), code: Fatal.Code.output)
            } else {
                print(text, terminator: "")
                Fatal.agree(nil)
            }
        } else {
            Fatal.agree(nil)
        }
        Runtime.finish()
    }

    /// A reward model's line: the whole sequence's `reward`, the score at its last token that
    /// is not config.json's pad_token_id, as transformers' *ForSequenceClassification reads it.
    func rewardLine(_ m: LanguageModel, pad: Int32?, _ e: Example, index i: Int, nonFinite: inout String?) -> String {
        let r = RewardModelScorer.rewards([e.ids][...], model: m, pad: pad)[0]
        if !r.isFinite && nonFinite == nil { nonFinite = "\(e.source): the reward model's score is \(r): its weights give non-finite values (a run that diverged?); nothing written" }
        return "{\"index\": \(i), \"source\": \(MetricsLog.value(e.source)), \"ids\": [\(e.ids.map(String.init).joined(separator: ", "))], \"reward\": \(String(format: "%.7g", r))}"
    }
}
