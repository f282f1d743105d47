import Foundation

/// A model directory's weights, as Hugging Face lays them out: one `model.safetensors`, or shards
/// named by `model.safetensors.index.json`, whose `weight_map` maps each tensor name to its shard
/// file (transformers `SAFE_WEIGHTS_NAME` / `SAFE_WEIGHTS_INDEX_NAME`; like transformers, a single
/// `model.safetensors` wins if both exist).
///
/// Each shard is opened (mapped and validated) once, up front, so a broken shard fails loading
/// before any weight is copied, and the index is cross-checked against the shards: every name it
/// lists must exist in the shard it points to, and every tensor of a shard must be listed there.
public final class SafeTensorsCheckpoint: @unchecked Sendable {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// What was opened: the single file's path, or the sharded checkpoint's directory.
    public let source: String
    /// The opened files, in shard-name order (one element for a single-file checkpoint).
    public let files: [SafeTensorsFile]
    /// All tensor names, sorted, so iteration order does not depend on how the model was sharded.
    public let names: [String]
    private let fileForName: [String: SafeTensorsFile]

    /// Opens `directory/model.safetensors`, or else the shards listed by
    /// `directory/model.safetensors.index.json`.
    public convenience init(directory: String) throws {
        let single = (directory as NSString).appendingPathComponent(Self.singleFileName)
        let index = (directory as NSString).appendingPathComponent(Self.indexFileName)
        let fm = FileManager.default
        if fm.fileExists(atPath: single) {
            try self.init(file: single)
        } else if fm.fileExists(atPath: index) {
            try self.init(index: index, directory: directory)
        } else {
            var isDir: ObjCBool = false
            let problem = fm.fileExists(atPath: directory, isDirectory: &isDir)
                ? (isDir.boolValue ? "directory has neither \(Self.singleFileName) nor \(Self.indexFileName)" + Self.pickleHint(directory) : "not a directory")
                : "directory does not exist"
            throw SafeTensorsError(.io, file: directory, problem)
        }
    }

    /// What a directory of PyTorch pickles (`pytorch_model.bin`, its shards' index) holds and how
    /// to convert it; "" when it holds none.
    static func pickleHint(_ directory: String) -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        guard let bin = names.sorted().first(where: { $0 == "pytorch_model.bin" || $0 == "pytorch_model.bin.index.json" || ($0.hasPrefix("pytorch_model-") && $0.hasSuffix(".bin")) }) else { return "" }
        return " (it holds \(bin), PyTorch's pickle format, which sft-dist does not read: convert it with transformers, AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(OUT), which writes safetensors)"
    }

    /// Opens a single `.safetensors` file as a checkpoint.
    public init(file: String) throws {
        let f = try SafeTensorsFile(path: file)
        source = file
        files = [f]
        names = f.names.sorted()
        fileForName = Dictionary(uniqueKeysWithValues: f.names.map { ($0, f) })
    }

    private init(index: String, directory: String) throws {
        let weightMap = try Self.readWeightMap(index)
        var shards: [String: SafeTensorsFile] = [:]
        for shard in Set(weightMap.values).sorted() {
            shards[shard] = try SafeTensorsFile(path: (directory as NSString).appendingPathComponent(shard))
        }
        var fileForName: [String: SafeTensorsFile] = [:]
        for (name, shard) in weightMap {
            let f = shards[shard]!
            guard f.contains(name) else {
                throw SafeTensorsError(.invalidIndex, file: index, "weight_map puts \"\(name)\" in \(shard), which has no such tensor")
            }
            fileForName[name] = f
        }
        // The other way round too: a shard's tensor the map does not list (or puts in another
        // shard) would be skipped silently, where one model.safetensors refuses a tensor that
        // is not a parameter.
        for (shard, f) in shards {
            for name in f.names.sorted() where weightMap[name] != shard {
                let elsewhere = weightMap[name].map { "puts it in \($0)" } ?? "does not list it"
                throw SafeTensorsError(.invalidIndex, file: (directory as NSString).appendingPathComponent(shard),
                                       "holds tensor \"\(name)\", and \(Self.indexFileName)'s weight_map \(elsewhere)")
            }
        }
        self.source = directory
        self.files = shards.keys.sorted().map { shards[$0]! }
        self.names = fileForName.keys.sorted()
        self.fileForName = fileForName
    }

    /// Parses the index with the same strict JSON parser as headers (duplicate names in
    /// `weight_map` are an error, not a silent last-wins).
    private static func readWeightMap(_ index: String) throws -> [String: String] {
        func invalid(_ problem: String) -> SafeTensorsError { SafeTensorsError(.invalidIndex, file: index, problem) }
        let data: Data
        do {
            data = try InputFile.read(index, limit: JSONObjectFile.defaultLimit, what: "a shard index")
        } catch let p as InputFile.Problem {
            throw SafeTensorsError(.io, file: index, p.problem)
        }
        let root: SafeTensorsJSON.Value = try data.withUnsafeBytes { raw in
            if let bad = SafeTensorsHeader.firstInvalidUTF8Offset(raw) {
                throw invalid("not valid UTF-8 (invalid byte sequence at byte \(bad))")
            }
            do {
                return try SafeTensorsJSON.Parser.parse(raw)
            } catch SafeTensorsJSON.Failure.syntax(let what, let offset) {
                throw invalid("not valid JSON: \(what) at byte \(offset)")
            } catch SafeTensorsJSON.Failure.duplicateKey(let key, let path) {
                throw SafeTensorsError(.duplicateKey, file: index, "duplicate key \"\(key)\"" + (path.isEmpty ? "" : " in \"\(path.joined(separator: "."))\""))
            } catch SafeTensorsJSON.Failure.tooDeep(let offset) {
                throw invalid("JSON nests deeper than \(SafeTensorsJSON.Parser.maxDepth) levels at byte \(offset)")
            }
        }
        guard case .object(let top) = root else { throw invalid("not a JSON object") }
        guard let mapValue = top.first(where: { $0.key == "weight_map" })?.value else { throw invalid("missing \"weight_map\"") }
        guard case .object(let pairs) = mapValue else { throw invalid("\"weight_map\" must be an object mapping tensor names to shard files") }
        var map: [String: String] = [:]
        for (name, v) in pairs {
            guard case .string(let shard) = v else {
                throw invalid("weight_map entry for \"\(name)\" must be a file name string, got \(v.brief)")
            }
            // Shards live next to the index; refusing paths keeps a crafted index from reading
            // arbitrary files.
            guard !shard.isEmpty, shard != ".", shard != "..", !shard.contains("/") else {
                throw invalid("weight_map entry for \"\(name)\" is \"\(shard)\", not a file name in the checkpoint directory")
            }
            map[name] = shard
        }
        return map
    }

    public func info(_ name: String) -> SafeTensorInfo? { fileForName[name]?.tensors[name] }

    /// The file holding `name` (for raw access to non-float tensors via `withRawBytes`).
    public func file(for name: String) -> SafeTensorsFile? { fileForName[name] }

    public func read(_ name: String, into dst: UnsafeMutablePointer<Float>, count: Int) throws {
        try shard(name).read(name, into: dst, count: count)
    }

    public func floats(_ name: String) throws -> [Float] {
        try shard(name).floats(name)
    }

    private func shard(_ name: String) throws -> SafeTensorsFile {
        guard let f = fileForName[name] else {
            throw SafeTensorsError(.missingTensor, file: source, "no tensor named \"\(name)\" (checkpoint has \(names.count) tensors)")
        }
        return f
    }
}
