import Foundation

/// Built-in architectures, addressed by name from `--model`. The vocabulary comes from
/// the tokenizer, so the same preset serves the byte tokenizer and a BPE one.
public enum ModelPresets {
    public static let names = ["default", "tiny", "small", "gpt2-mini"]

    /// The preset a `--model` value names, nil for a model directory. A name that is both (a
    /// model copied to `./tiny`, with its config.json) is refused: the preset silently won, a
    /// random model where the user meant the directory; `./tiny` names the directory. Any
    /// other directory of that name (a run's `--out tiny`) is not a model and not ambiguous.
    public static func named(_ spec: String, vocabSize: Int) throws -> GPT2Config? {
        guard let config = gpt2(spec, vocabSize: vocabSize) else { return nil }
        try refuseAmbiguous(spec)
        return config
    }

    /// Throws where `spec` is a preset's name and also a model directory here (`named`); a
    /// look at the file system only, so `train --dry-run` checks it too.
    public static func refuseAmbiguous(_ spec: String) throws {
        if names.contains(spec) && FileManager.default.fileExists(atPath: spec + "/config.json") {
            throw ModelError("--model \(spec): names both the preset \(spec) and the directory ./\(spec); give ./\(spec) for the model directory, or run elsewhere for the preset")
        }
    }

    /// Whether `spec` can only mean a preset: a preset's name with no directory of that name
    /// (commands that read saved models only say so instead of "no such directory").
    public static func isOnlyPreset(_ spec: String) -> Bool {
        var isDir: ObjCBool = false
        return names.contains(spec) && !(FileManager.default.fileExists(atPath: spec, isDirectory: &isDir) && isDir.boolValue)
    }

    public static func gpt2(_ name: String, vocabSize: Int) -> GPT2Config? {
        switch name {
        // The embedded default: ~1.3 M parameters, trains in a couple of minutes on 2 cores.
        case "default": return GPT2Config(vocabSize: vocabSize, contextLength: 64, embedDim: 160, layers: 4, heads: 5)
        // For tests: seconds per hundred steps.
        case "tiny": return GPT2Config(vocabSize: vocabSize, contextLength: 64, embedDim: 32, layers: 2, heads: 2)
        case "small": return GPT2Config(vocabSize: vocabSize, contextLength: 128, embedDim: 256, layers: 6, heads: 8)
        // The benchmark configuration (13.9 M parameters with an 8192-token vocabulary).
        case "gpt2-mini": return GPT2Config(vocabSize: vocabSize, contextLength: 256, embedDim: 384, layers: 6, heads: 6)
        default: return nil
        }
    }
}
