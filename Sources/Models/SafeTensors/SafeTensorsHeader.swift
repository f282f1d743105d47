import Foundation

/// The validated JSON header of a safetensors file.
///
/// Performs the checks of `read_metadata` / `Metadata::validate` in huggingface/safetensors
/// (`safetensors/src/tensor.rs`) plus the stricter entry checks serde's derived deserializer does
/// (integer shapes and offsets, known dtypes). We are deliberately stricter than the Python
/// package (safetensors 0.8.0 `deserialize`, checked by experiment) in three ways, because each
/// hides a corrupt or hand-edited file: duplicate keys (it keeps one of them), unknown keys inside an
/// entry (serde ignores them), and whitespace before the opening `{`. The one check that needs the
/// file length (8 + N + buffer end == file size) is left to the caller, which knows it.
struct SafeTensorsHeader {
    /// Upper bound on N, as `MAX_HEADER_SIZE` in the reference implementation: a corrupt or hostile
    /// length prefix must not make us parse (or allocate for) gigabytes of "header".
    static let maxHeaderLength = 100_000_000

    var metadata: [String: String]
    /// Tensors ordered by data offset (ties, i.e. empty tensors, in header order).
    var tensors: [SafeTensorInfo]
    /// End of the last tensor's data: the byte length the data buffer must have.
    var bufferLength: Int

    /// Validates the N header bytes (everything between the length prefix and the data buffer).
    static func parse(_ header: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsHeader {
        func error(_ kind: SafeTensorsError.Kind, _ problem: String) -> SafeTensorsError {
            SafeTensorsError(kind, file: file, problem)
        }
        if let bad = firstInvalidUTF8Offset(header) {
            throw error(.headerEncoding, "header is not valid UTF-8 (invalid byte sequence at header byte \(bad))")
        }
        guard let first = header.first else {
            throw error(.headerSyntax, "header is empty (length prefix is 0); it must be a JSON object")
        }
        guard first == UInt8(ascii: "{") else {
            let shown = (0x21...0x7E).contains(first) ? "'\(Character(Unicode.Scalar(first)))'" : String(format: "byte 0x%02X", first)
            throw error(.headerSyntax, "header does not start with '{' (found \(shown)); it must be a JSON object")
        }

        let root: SafeTensorsJSON.Value
        do {
            root = try SafeTensorsJSON.Parser.parse(header)
        } catch SafeTensorsJSON.Failure.syntax(let what, let offset) {
            throw error(.headerSyntax, "header is not valid JSON: \(what) at header byte \(offset)")
        } catch SafeTensorsJSON.Failure.duplicateKey(let key, let path) {
            let place = path.isEmpty ? "the header" : path[0] == "__metadata__" ? "__metadata__" : "tensor \"\(path[0])\""
            throw error(.duplicateKey, "duplicate key \"\(key)\" in \(place)")
        } catch SafeTensorsJSON.Failure.tooDeep(let offset) {
            throw error(.headerSyntax, "header JSON nests deeper than \(SafeTensorsJSON.Parser.maxDepth) levels at header byte \(offset)")
        }
        guard case .object(let members) = root else {
            throw error(.headerSyntax, "header is not a JSON object")
        }

        var metadata: [String: String] = [:]
        var tensors: [SafeTensorInfo] = []
        tensors.reserveCapacity(members.count)
        for (key, value) in members {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, error)
            } else {
                tensors.append(try parseEntry(name: key, value, error))
            }
        }

        // Contiguity, as `validate` in tensor.rs: sorted by (begin, end), each tensor must start
        // exactly where the previous one ended, starting at 0. Holes would hide unaccounted bytes;
        // overlaps would alias two tensors' data.
        let order = tensors.indices.sorted { a, b in
            let ra = tensors[a].byteRange, rb = tensors[b].byteRange
            return (ra.lowerBound, ra.upperBound, a) < (rb.lowerBound, rb.upperBound, b)
        }
        var end = 0
        var previous: String?
        for i in order {
            let t = tensors[i]
            let r = t.byteRange
            if r.lowerBound > end {
                let after = previous.map { "tensor \"\($0)\"" } ?? "the start of the data buffer"
                throw error(.invalidOffsets, "tensor \"\(t.name)\": data_offsets [\(r.lowerBound), \(r.upperBound)] leave a hole of \(r.lowerBound - end) bytes after \(after) (which ends at \(end))")
            }
            if r.lowerBound < end {
                throw error(.invalidOffsets, "tensor \"\(t.name)\": data_offsets [\(r.lowerBound), \(r.upperBound)] overlap tensor \"\(previous ?? "")\" (which ends at \(end))")
            }
            end = r.upperBound
            previous = t.name
        }
        return SafeTensorsHeader(metadata: metadata, tensors: order.map { tensors[$0] }, bufferLength: end)
    }

    /// `null` is read as no metadata, as the reference deserializer (`Option<HashMap>`) does.
    private static func parseMetadata(_ value: SafeTensorsJSON.Value, _ error: (SafeTensorsError.Kind, String) -> SafeTensorsError) throws -> [String: String] {
        if case .null = value { return [:] }
        guard case .object(let pairs) = value else {
            throw error(.invalidMetadata, "__metadata__ must be an object mapping strings to strings, got \(value.brief)")
        }
        var out: [String: String] = [:]
        for (k, v) in pairs {
            guard case .string(let s) = v else {
                throw error(.invalidMetadata, "__metadata__ value for \"\(k)\" must be a string, got \(v.brief)")
            }
            out[k] = s
        }
        return out
    }

    private static func parseEntry(name: String, _ value: SafeTensorsJSON.Value, _ error: (SafeTensorsError.Kind, String) -> SafeTensorsError) throws -> SafeTensorInfo {
        let label = "tensor \"\(name)\""
        guard case .object(let fields) = value else {
            throw error(.invalidEntry, "\(label): entry must be an object with dtype, shape and data_offsets, got \(value.brief)")
        }
        var dtypeValue: SafeTensorsJSON.Value?, shapeValue: SafeTensorsJSON.Value?, offsetsValue: SafeTensorsJSON.Value?
        for (k, v) in fields {
            switch k {
            case "dtype": dtypeValue = v
            case "shape": shapeValue = v
            case "data_offsets": offsetsValue = v
            default: throw error(.invalidEntry, "\(label): unexpected key \"\(k)\" (an entry has exactly dtype, shape and data_offsets)")
            }
        }
        guard let dtypeValue else { throw error(.invalidEntry, "\(label): missing \"dtype\"") }
        guard let shapeValue else { throw error(.invalidEntry, "\(label): missing \"shape\"") }
        guard let offsetsValue else { throw error(.invalidEntry, "\(label): missing \"data_offsets\"") }

        guard case .string(let dtypeName) = dtypeValue else {
            throw error(.invalidEntry, "\(label): dtype must be a string, got \(dtypeValue.brief)")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw error(.unknownDType, "\(label): unknown dtype \(dtypeValue.brief)")
        }

        guard case .array(let dims) = shapeValue else {
            throw error(.invalidEntry, "\(label): shape must be a list of non-negative integers, got \(shapeValue.brief)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for d in dims {
            guard let n = d.nonNegativeInt else {
                throw error(.invalidEntry, "\(label): shape must be a list of non-negative integers, got \(shapeValue.brief)")
            }
            shape.append(n)
        }

        guard case .array(let offs) = offsetsValue, offs.count == 2,
              let begin = offs[0].nonNegativeInt, let end = offs[1].nonNegativeInt, begin <= end else {
            throw error(.invalidEntry, "\(label): data_offsets must be [begin, end] with 0 <= begin <= end, got \(offsetsValue.brief)")
        }

        // Overflow-safe size: a hostile shape like [2^40, 2^40] must be an error, not a trap.
        var count = 1
        for n in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow else { throw error(.sizeMismatch, "\(label): shape \(SafeTensorsHeader.formatShape(shape)) has too many elements") }
            count = p
        }
        let (bits, overflow) = count.multipliedReportingOverflow(by: dtype.bitSize)
        guard !overflow else { throw error(.sizeMismatch, "\(label): shape \(SafeTensorsHeader.formatShape(shape)) of \(dtype.rawValue) is too large") }
        guard bits % 8 == 0 else {
            throw error(.sizeMismatch, "\(label): shape \(SafeTensorsHeader.formatShape(shape)) of \(dtype.rawValue) is \(bits) bits, not a whole number of bytes")
        }
        guard bits / 8 == end - begin else {
            throw error(.sizeMismatch, "\(label): shape \(SafeTensorsHeader.formatShape(shape)) of \(dtype.rawValue) needs \(bits / 8) bytes but data_offsets span \(end - begin)")
        }
        return SafeTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end, count: count)
    }

    /// Offset of the first byte of an invalid UTF-8 sequence, or nil if the bytes are valid UTF-8.
    static func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded): offset += encoded.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// `[2, 3]`, as shapes appear in error messages.
    static func formatShape(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }
}
