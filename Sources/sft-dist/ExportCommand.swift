import ArgumentParser
import Distributed
import Foundation
import Models

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model directory in the Hugging Face layout that transformers loads as it is.",
        discussion: """
        Reads any model directory sft-dist loads (its own, or a Hugging Face gpt2 / llama / qwen2 / qwen3 / \
        mistral checkpoint, single-file or sharded, float32, float16 or bfloat16) and writes \
        config.json, model.safetensors (float32) and the tokenizer files to --out. A model trained \
        with the byte tokenizer gets an equivalent tokenizer.json and a ChatML chat template.
        """)

    @Option(help: "Model directory to export.") var model: String
    @Option(help: "Output directory: new, or a model directory to replace atomically (anything else is refused).") var out: String

    func run() throws {
        Runtime.singleProcess()
        try ReplaceableOutput.check(out, inputs: [model], byCommand: true)
        print(try ModelDirectory.export(from: model, to: out))
    }
}
