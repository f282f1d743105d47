import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `write(2)`, named apart because `SafeTensorsWriter.write` shadows the global inside the enum.
@inline(__always)
private func posixWrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buf, n)
    #else
    return Darwin.write(fd, buf, n)
    #endif
}

/// Writes F32 safetensors files that the reference implementation (huggingface/safetensors) and
/// our reader accept: 8-byte little-endian header length N, a JSON header with `__metadata__` first
/// (omitted when empty, as the Rust writer does for `None`), padded with spaces so N is a multiple
/// of 8 — the data buffer then starts 8-aligned and every F32 tensor is naturally aligned — then
/// the tensors' bytes, contiguous, in the order given.
public enum SafeTensorsWriter {
    public typealias Tensor = (name: String, shape: [Int], data: UnsafeBufferPointer<Float>)

    /// Writes F32 tensors (in the given order), `__metadata__` first, header padded with spaces to a
    /// multiple of 8.
    ///
    /// Atomic: writes `path.tmp-<pid>`, fsyncs it, renames it over `path`, then fsyncs the
    /// directory so the rename itself is durable. On any error the temporary file is removed, so a
    /// crash or a full disk mid-checkpoint never leaves a half-written file at `path` (an older
    /// checkpoint there stays intact until the rename).
    public static func write(path: String, tensors: [Tensor], metadata: [String: String] = [:]) throws {
        let header = try encodeHeader(file: path, tensors: tensors.map { ($0.name, $0.shape, $0.data.count) }, metadata: metadata)
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw SafeTensorsError(.io, file: path, "cannot create temporary file \(tmp): \(SafeTensorsError.errnoMessage())")
        }
        var fdOpen = true
        var renamed = false
        defer {
            if fdOpen { close(fd) }
            if !renamed { unlink(tmp) }
        }
        try header.withUnsafeBytes { try writeAll(fd, $0, file: path) }
        for t in tensors { try writeFloats(fd, t.data, file: path) }
        guard fsync(fd) == 0 else { throw SafeTensorsError(.io, file: path, "fsync of \(tmp) failed: \(SafeTensorsError.errnoMessage())") }
        fdOpen = false  // close is never retried on Linux, even on EINTR
        guard close(fd) == 0 else { throw SafeTensorsError(.io, file: path, "close of \(tmp) failed: \(SafeTensorsError.errnoMessage())") }
        guard rename(tmp, path) == 0 else {
            throw SafeTensorsError(.io, file: path, "cannot rename \(tmp) over it: \(SafeTensorsError.errnoMessage())")
        }
        renamed = true
        try syncDirectory(containing: path)
    }

    /// Length prefix + padded JSON header for F32 tensors with the given element counts. Internal
    /// so tests can check the exact bytes.
    static func encodeHeader(file: String, tensors: [(name: String, shape: [Int], count: Int)], metadata: [String: String]) throws -> [UInt8] {
        func invalid(_ problem: String) -> SafeTensorsError { SafeTensorsError(.invalidArgument, file: file, problem) }
        var entries: [String] = []
        entries.reserveCapacity(tensors.count + 1)
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { JSONText.quote($0.key) + ":" + JSONText.quote($0.value) }
            entries.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var seen = Set<String>()
        var offset = 0
        for t in tensors {
            guard !t.name.isEmpty else { throw invalid("tensor name is empty") }
            guard t.name != "__metadata__" else { throw invalid("\"__metadata__\" is reserved and cannot name a tensor") }
            guard seen.insert(t.name).inserted else { throw invalid("tensor \"\(t.name)\" is given twice") }
            var elements = 1
            for d in t.shape {
                guard d >= 0 else { throw invalid("tensor \"\(t.name)\": shape \(SafeTensorsHeader.formatShape(t.shape)) has a negative dimension") }
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw invalid("tensor \"\(t.name)\": shape \(SafeTensorsHeader.formatShape(t.shape)) has too many elements") }
                elements = p
            }
            guard elements == t.count else {
                throw invalid("tensor \"\(t.name)\": shape \(SafeTensorsHeader.formatShape(t.shape)) has \(elements) elements but the data has \(t.count)")
            }
            let (bytes, o1) = elements.multipliedReportingOverflow(by: 4)
            let (end, o2) = offset.addingReportingOverflow(bytes)
            guard !o1, !o2 else { throw invalid("tensor \"\(t.name)\": data too large") }
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append(JSONText.quote(t.name) + ":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var json = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        guard json.count <= SafeTensorsHeader.maxHeaderLength else {
            throw invalid("header would be \(json.count) bytes, over the format's limit of \(SafeTensorsHeader.maxHeaderLength)")
        }
        return withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, file: String) throws {
        guard var p = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = posixWrite(fd, p, min(remaining, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError(.io, file: file, "write failed: \(SafeTensorsError.errnoMessage())")
            }
            p += n
            remaining -= n
        }
    }

    private static func writeFloats(_ fd: Int32, _ data: UnsafeBufferPointer<Float>, file: String) throws {
        #if _endian(little)
        try writeAll(fd, UnsafeRawBufferPointer(data), file: file)
        #else
        // The format is little-endian; stage byte-swapped chunks on big-endian hosts.
        var chunk = [UInt32](repeating: 0, count: 1 << 14)
        var i = 0
        while i < data.count {
            let n = min(chunk.count, data.count - i)
            for j in 0..<n { chunk[j] = data[i + j].bitPattern.littleEndian }
            try chunk.withUnsafeBytes { try writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<(n * 4)]), file: file) }
            i += n
        }
        #endif
    }

    /// fsync the parent directory so the rename survives a power loss (rename is atomic but only
    /// durable once the directory entry is flushed).
    private static func syncDirectory(containing path: String) throws {
        var dir = (path as NSString).deletingLastPathComponent
        if dir.isEmpty { dir = "." }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsError(.io, file: path, "cannot open directory \(dir) to fsync: \(SafeTensorsError.errnoMessage())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SafeTensorsError(.io, file: path, "fsync of directory \(dir) failed: \(SafeTensorsError.errnoMessage())") }
    }
}
