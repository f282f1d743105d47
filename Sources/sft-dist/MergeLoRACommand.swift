import ArgumentParser
import Foundation
import Models
import Training

struct MergeLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-lora",
        abstract: "Merge a LoRA adapter (peft format) into its base model and write full weights in HF format.",
        discussion: """
        W ← W + (α/r)·B·A for every adapted module (transposed for GPT-2's Conv1D), as peft's \
        merge_and_unload; --out is a model directory that transformers and sft-dist load as it is.
        """)

    @Option(help: "Base model directory (for an adapter trained on a preset, that run's OUT/model-base).") var model: String
    @Option(help: "Adapter directory: adapter_config.json and adapter_model.safetensors.") var adapter: String
    @Option(help: "Output directory: new, or a model directory to replace atomically (anything else is refused).") var out: String

    func run() throws {
        Runtime.singleProcess()
        try ReplaceableOutput.check(out, inputs: [model, adapter], byCommand: true)
        Runtime.takeMatrixProductBuffers()
        print(try LoRAMerge.run(base: model, adapter: adapter, out: out))
    }
}
