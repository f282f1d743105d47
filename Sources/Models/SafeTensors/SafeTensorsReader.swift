import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types of the safetensors format, spelled as in the header (huggingface/safetensors
/// `safetensors/src/tensor.rs`, `enum Dtype`). Every name the format defines is accepted when
/// validating a file, so a checkpoint with, say, an I64 buffer still opens; only F32, F16 and BF16
/// convert to Float.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ
    case I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64

    /// Size of one element in bits (`Dtype::bitsize`); sub-byte types exist (F4, F6_*).
    public var bitSize: Int {
        switch self {
        case .F4: return 4
        case .F6_E2M3, .F6_E3M2: return 6
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3, .F8_E8M0, .F8_E4M3FNUZ, .F8_E5M2FNUZ: return 8
        case .I16, .U16, .F16, .BF16: return 16
        case .I32, .U32, .F32: return 32
        case .C64, .F64, .I64, .U64: return 64
        }
    }

    /// Whether `SafeTensorsFile.read`/`floats` can convert this dtype to Float.
    public var isConvertibleToFloat: Bool { self == .F32 || self == .F16 || self == .BF16 }
}

/// Half-precision bit patterns to Float, exactly (every F16 and BF16 value is a Float value).
extension SafeTensorsDType {
    /// bfloat16 is the top half of an IEEE binary32, so widening is a shift.
    @inline(__always)
    public static func floatFromBF16(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// IEEE 754 binary16 → binary32 by bit manipulation, so it does not depend on `Float16`
    /// availability (absent on macOS x86_64): normals rebias the exponent (15 → 127), subnormals are
    /// `mantissa · 2⁻²⁴` (exact in Float), infinities and NaNs keep sign and payload.
    @inline(__always)
    public static func floatFromF16(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        switch exponent {
        case 0:
            let magnitude = Float(mantissa) * 0x1p-24  // 0 or subnormal, exact
            return Float(bitPattern: sign | magnitude.bitPattern)
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
    }
}

/// One validated header entry. Only the reader creates these, so `count` and `byteRange` are
/// always consistent with `shape` and `dtype`.
public struct SafeTensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: SafeTensorsDType
    /// Row-major dimensions; `[]` is a rank-0 scalar (one element).
    public let shape: [Int]
    /// Byte range of the data, relative to the start of the data buffer (= `data_offsets`).
    public let byteRange: Range<Int>
    /// Number of elements (product of `shape`; 1 for a scalar, 0 for an empty tensor).
    public let count: Int
}

/// A read-only `mmap` of a whole file. Why mmap: checkpoints are hundreds of MB; mapping lets us
/// copy (or convert) each tensor once, straight into its destination, with no second in-memory
/// copy of the file. Unmaps on deinit, so every error path after mapping releases it.
final class SafeTensorsMapping: @unchecked Sendable {
    let base: UnsafeRawPointer
    let length: Int

    init(path: String) throws {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever;
        // it is refused below as not a regular file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SafeTensorsError(.io, file: path, "cannot open: \(SafeTensorsError.errnoMessage())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafeTensorsError(.io, file: path, "cannot stat: \(SafeTensorsError.errnoMessage())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError(.io, file: path, "not a regular file (a FIFO, device or directory)")
        }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw SafeTensorsError(.tooShort, file: path, "file is \(size) bytes, shorter than the 8-byte header length prefix")
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw SafeTensorsError(.io, file: path, "cannot mmap \(size) bytes: \(SafeTensorsError.errnoMessage())")
        }
        base = UnsafeRawPointer(p)
        length = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: length) }
}

/// One `.safetensors` file, memory-mapped and fully validated on open (huggingface/safetensors
/// README: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer).
///
/// After `init` succeeds every tensor's byte range is known to lie inside the mapping, so reads
/// cannot go out of bounds. The mapping is `MAP_PRIVATE` and read-only; as with any mmap, another
/// process truncating the file while it is open would fault on access — checkpoints are written
/// atomically (see `SafeTensorsWriter`), so a file is replaced, never truncated in place.
/// Immutable after init, hence safe to share between threads.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    /// `__metadata__` (empty if absent).
    public let metadata: [String: String]
    public let tensors: [String: SafeTensorInfo]
    /// Tensor names in data order (= the order a writer laid them out; empty tensors in header order).
    public let names: [String]
    /// File offset of the data buffer (8 + N).
    public let dataOffset: Int

    private let mapping: SafeTensorsMapping

    public init(path: String) throws {
        let mapping = try SafeTensorsMapping(path: path)
        let bytes = mapping.bytes
        let fileSize = bytes.count
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(SafeTensorsHeader.maxHeaderLength) else {
            throw SafeTensorsError(.headerLength, file: path, "header length \(declared) exceeds the format's limit of \(SafeTensorsHeader.maxHeaderLength) bytes (corrupt length prefix?)")
        }
        let headerLength = Int(declared)
        guard 8 + headerLength <= fileSize else {
            throw SafeTensorsError(.headerLength, file: path, "header length \(headerLength) runs past the end of the file (file is \(fileSize) bytes, header would end at \(8 + headerLength))")
        }
        let header = try SafeTensorsHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)]), file: path)
        let (needed, overflow) = (8 + headerLength).addingReportingOverflow(header.bufferLength)
        if overflow || needed > fileSize {
            let need = overflow ? "more than \(Int.max) bytes" : "\(needed)"
            throw SafeTensorsError(.fileLength, file: path, "file is \(fileSize) bytes but header and data need \(need) (truncated?)")
        }
        if needed < fileSize {
            throw SafeTensorsError(.fileLength, file: path, "file is \(fileSize) bytes but header and data need only \(needed) (\(fileSize - needed) trailing bytes)")
        }
        self.path = path
        self.metadata = header.metadata
        self.names = header.tensors.map(\.name)
        self.tensors = Dictionary(header.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.dataOffset = 8 + headerLength
        self.mapping = mapping
    }

    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// Info for `name`, or a `.missingTensor` error naming this file.
    private func lookup(_ name: String) throws -> SafeTensorInfo {
        guard let info = tensors[name] else {
            throw SafeTensorsError(.missingTensor, file: path, "no tensor named \"\(name)\" (file has \(tensors.count) tensors)")
        }
        return info
    }

    /// The tensor's raw little-endian bytes, for dtypes that do not convert to Float (e.g. I64).
    /// The buffer is only valid inside `body`.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try lookup(name)
        let start = mapping.bytes.baseAddress! + dataOffset + info.byteRange.lowerBound
        return try withExtendedLifetime(mapping) {
            try body(UnsafeRawBufferPointer(start: start, count: info.byteRange.count))
        }
    }

    /// All elements of an F32/F16/BF16 tensor as Float, in row-major order.
    public func floats(_ name: String) throws -> [Float] {
        let info = try lookup(name)
        try checkConvertible(info)
        return try [Float](unsafeUninitializedCapacity: info.count) { buffer, initialized in
            if let dst = buffer.baseAddress { try read(name, into: dst, count: info.count) }
            initialized = info.count
        }
    }

    /// Converts an F32/F16/BF16 tensor into `dst`, which must hold exactly the tensor's element
    /// count (a mismatch is an error, not a partial copy: it almost always means a wrong config).
    public func read(_ name: String, into dst: UnsafeMutablePointer<Float>, count: Int) throws {
        let info = try lookup(name)
        guard count == info.count else {
            throw SafeTensorsError(.countMismatch, file: path, "tensor \"\(name)\" has \(info.count) elements (shape \(SafeTensorsHeader.formatShape(info.shape)), \(info.dtype.rawValue)) but the destination holds \(count)")
        }
        try checkConvertible(info)
        guard count > 0 else { return }
        let src = mapping.bytes.baseAddress! + dataOffset + info.byteRange.lowerBound
        withExtendedLifetime(mapping) {
            switch info.dtype {
            case .F32:
                #if _endian(little)
                // The data may be unaligned (a header not padded to 8), so copy bytes, not Floats.
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
                #else
                for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                #endif
            case .F16:
                for i in 0..<count { dst[i] = SafeTensorsDType.floatFromF16(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .BF16:
                for i in 0..<count { dst[i] = SafeTensorsDType.floatFromBF16(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            default:
                break  // excluded by checkConvertible
            }
        }
    }

    private func checkConvertible(_ info: SafeTensorInfo) throws {
        guard info.dtype.isConvertibleToFloat else {
            throw SafeTensorsError(.unsupportedDType, file: path, "tensor \"\(info.name)\" is \(info.dtype.rawValue); only F32, F16 and BF16 convert to Float")
        }
    }
}
