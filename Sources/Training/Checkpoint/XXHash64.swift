import Foundation
import Models

/// XXH64 (Yann Collet's xxHash, 64-bit variant, spec: github.com/Cyan4973/xxHash
/// doc/xxhash_spec.md), written out here so checkpoints need no dependency.
///
/// Why not SHA-256: the manifest guards against torn writes and bit rot, not an adversary,
/// and a checkpoint of a large model is gigabytes read on every resume; XXH64 runs at memory
/// speed where a hand-written SHA-256 would not. Streaming, so files are hashed in chunks.
public struct XXHash64 {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var v1: UInt64, v2: UInt64, v3: UInt64, v4: UInt64
    private let seed: UInt64
    private var total: UInt64 = 0
    private var buffer = [UInt8]()   // < 32 bytes carried between updates

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ Self.p1 &+ Self.p2
        v2 = seed &+ Self.p2
        v3 = seed
        v4 = seed &- Self.p1
        buffer.reserveCapacity(32)
    }

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inline(__always) static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }
    @inline(__always) static func load64(_ p: UnsafeRawPointer) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
    }
    @inline(__always) static func load32(_ p: UnsafeRawPointer) -> UInt64 {
        UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        total &+= UInt64(bytes.count)
        var p = base, n = bytes.count
        if !buffer.isEmpty {
            let take = min(32 - buffer.count, n)
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: p, count: take))
            p += take; n -= take
            if buffer.count < 32 { return }
            buffer.withUnsafeBytes { stripe($0.baseAddress!) }
            buffer.removeAll(keepingCapacity: true)
        }
        while n >= 32 { stripe(p); p += 32; n -= 32 }
        if n > 0 { buffer.append(contentsOf: UnsafeRawBufferPointer(start: p, count: n)) }
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) != nil { return }
        Array(bytes).withUnsafeBytes { update($0) }
    }

    @inline(__always) private mutating func stripe(_ p: UnsafeRawPointer) {
        v1 = Self.round(v1, Self.load64(p))
        v2 = Self.round(v2, Self.load64(p + 8))
        v3 = Self.round(v3, Self.load64(p + 16))
        v4 = Self.round(v4, Self.load64(p + 24))
    }

    public func finalize() -> UInt64 {
        var h: UInt64
        if total >= 32 {
            h = Self.rotl(v1, 1) &+ Self.rotl(v2, 7) &+ Self.rotl(v3, 12) &+ Self.rotl(v4, 18)
            h = Self.merge(h, v1); h = Self.merge(h, v2); h = Self.merge(h, v3); h = Self.merge(h, v4)
        } else {
            h = seed &+ Self.p5
        }
        h &+= total
        buffer.withUnsafeBytes { tail in
            var p = tail.baseAddress, n = tail.count
            while n >= 8 {
                h ^= Self.round(0, Self.load64(p!)); h = Self.rotl(h, 27) &* Self.p1 &+ Self.p4
                p! += 8; n -= 8
            }
            if n >= 4 {
                h ^= Self.load32(p!) &* Self.p1; h = Self.rotl(h, 23) &* Self.p2 &+ Self.p3
                p! += 4; n -= 4
            }
            while n > 0 {
                h ^= UInt64(p!.load(as: UInt8.self)) &* Self.p5; h = Self.rotl(h, 11) &* Self.p1
                p! += 1; n -= 1
            }
        }
        h ^= h >> 33; h &*= Self.p2
        h ^= h >> 29; h &*= Self.p3
        h ^= h >> 32
        return h
    }

    /// One-shot hash of a byte collection.
    public static func hash<C: Collection>(_ bytes: C, seed: UInt64 = 0) -> UInt64 where C.Element == UInt8 {
        var h = XXHash64(seed: seed); h.update(bytes); return h.finalize()
    }

    /// Hash of a file's contents, read in 4 MiB chunks; also returns its size.
    public static func hashFile(_ path: String) throws -> (hash: UInt64, size: Int) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CheckpointError("\(path): cannot open for reading")
        }
        defer { try? handle.close() }
        var h = XXHash64(), size = 0
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 4 << 20) ?? Data() } catch {
                throw CheckpointError("\(path): read failed (\(MessageText.reason(error, for: path)))")
            }
            if chunk.isEmpty { break }
            size += chunk.count
            chunk.withUnsafeBytes { h.update($0) }
        }
        return (h.finalize(), size)
    }

    /// "0123456789abcdef": the manifest's spelling.
    public static func hex(_ h: UInt64) -> String { StateValue.hex(h) }
}
