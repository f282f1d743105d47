import Foundation

/// Every problem found while opening, validating, reading or writing a safetensors file
/// (format: huggingface/safetensors, README and `safetensors/src/tensor.rs`).
///
/// Why one error type with a one-line message: checkpoints come from outside (the Hub, other
/// tools, a half-finished copy), so a bad file must never trap the trainer; it must produce an
/// error a person can act on without a debugger — which file, and exactly what is wrong with it.
/// `kind` lets code branch on the class of problem; `description` is for people.
public struct SafeTensorsError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// The file (or index, or directory) cannot be opened, read, written or mapped.
        case io
        /// Fewer than the 8 bytes of the little-endian u64 header-length prefix.
        case tooShort
        /// Header length above `MAX_HEADER_SIZE` (100_000_000), or past the end of the file.
        case headerLength
        /// Header bytes are not valid UTF-8.
        case headerEncoding
        /// Header is not a JSON object (does not start with `{`, bad JSON, trailing garbage).
        case headerSyntax
        /// A key appears twice in one JSON object (serde rejects this; JSONSerialization would not).
        case duplicateKey
        /// `__metadata__` is not an object mapping strings to strings.
        case invalidMetadata
        /// A tensor entry is malformed: not an object, missing/extra keys, bad shape or data_offsets.
        case invalidEntry
        /// `dtype` is not one of the names the format defines.
        case unknownDType
        /// `data_offsets` span a different number of bytes than shape × dtype size.
        case sizeMismatch
        /// Tensor data is not contiguous from 0 in offset order (hole or overlap; `InvalidOffset`).
        case invalidOffsets
        /// 8 + N + buffer end differs from the file length (`MetadataIncompleteBuffer`).
        case fileLength
        /// A requested tensor name is not in the file / checkpoint.
        case missingTensor
        /// The tensor's dtype cannot be converted to Float (only F32, F16 and BF16 can).
        case unsupportedDType
        /// The caller's destination element count differs from the tensor's element count.
        case countMismatch
        /// `model.safetensors.index.json` is malformed or disagrees with its shards.
        case invalidIndex
        /// The writer was given tensors that cannot be written (bad name, shape/data mismatch).
        case invalidArgument
    }

    public let kind: Kind
    /// The path as the caller gave it (file, index or directory).
    public let file: String
    /// The exact problem, without the file name.
    public let problem: String

    public init(_ kind: Kind, file: String, _ problem: String) {
        self.kind = kind
        self.file = file
        self.problem = problem
    }

    /// One line: `<file>: <problem>`.
    public var description: String { "\(file): \(problem)" }
    public var errorDescription: String? { description }
}

extension SafeTensorsError {
    /// The message of the current `errno`, for I/O errors (glibc's messages are static strings).
    static func errnoMessage(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }
}
