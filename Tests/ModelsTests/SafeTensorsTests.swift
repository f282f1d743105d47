import Foundation
import XCTest
import TensorCore
@testable import Models

/// Reader, writer and checkpoint tests against the format of huggingface/safetensors. Fixtures in
/// Fixtures/safetensors/ were written by the reference implementation
/// (scripts/make-safetensors-fixtures.py); corrupted files are built byte by byte here.
final class SafeTensorsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/safetensors").path

    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "safetensors-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: helpers

    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    @discardableResult
    func put(_ bytes: [UInt8], _ name: String = "x.safetensors") -> String {
        let p = path(name)
        XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data(bytes)), p)
        return p
    }

    /// Length prefix (the real header length unless `declared`) + header + data.
    func raw(_ header: String, data: [UInt8] = [], declared: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        return withUnsafeBytes(of: (declared ?? UInt64(h.count)).littleEndian) { Array($0) } + h + data
    }

    func assertError(_ kind: SafeTensorsError.Kind, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected a \(kind) error containing \(fragments)", file: file, line: line)
        } catch let e as SafeTensorsError {
            XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
            for f in fragments { XCTAssertTrue(e.description.contains(f), "\"\(e)\" lacks \"\(f)\"", file: file, line: line) }
            XCTAssertFalse(e.description.contains("\n"), file: file, line: line)
        } catch {
            XCTFail("expected SafeTensorsError, got \(error)", file: file, line: line)
        }
    }

    func assertRejects(_ bytes: [UInt8], _ kind: SafeTensorsError.Kind, _ fragments: String..., file: StaticString = #filePath, line: UInt = #line) {
        let p = put(bytes)
        assertError(kind, [p + ": "] + fragments, file: file, line: line) { _ = try SafeTensorsFile(path: p) }
    }

    func write(_ name: String, _ tensors: [(String, [Int], [Float])], metadata: [String: String] = [:]) throws -> String {
        let p = path(name)
        try withBuffers(tensors.map(\.2)) { buffers in
            try SafeTensorsWriter.write(path: p, tensors: zip(tensors, buffers).map { ($0.0, $0.1, $1) }, metadata: metadata)
        }
        return p
    }

    func withBuffers<R>(_ arrays: [[Float]], _ acc: [UnsafeBufferPointer<Float>] = [], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
        guard let first = arrays.first else { return try body(acc) }
        return try first.withUnsafeBufferPointer { try withBuffers(Array(arrays.dropFirst()), acc + [$0], body) }
    }

    func assertBitsEqual(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) where !(x.isNaN && y.isNaN && x.sign == y.sign) {
            XCTAssertEqual(x.bitPattern, y.bitPattern, "\(x) vs \(y)", file: file, line: line)
        }
    }

    // MARK: round trips and reference files

    func testRoundTripIsExact() throws {
        let w: [Float] = [1, -0.0, .infinity, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, .nan]
        let meta = ["step": "12", "note": "quote \" backslash \\ newline \n tab \t ünï ☃", "": "empty key"]
        let p = try write("rt.safetensors", [("h.0.w", [2, 3], w), ("scalar", [], [42.5]), ("empty", [0, 4], []), ("b", [5], [1, 2, 3, 4, 5])], metadata: meta)
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(f.names, ["h.0.w", "scalar", "empty", "b"])
        XCTAssertEqual(f.metadata, meta)
        XCTAssertEqual(f.dataOffset % 8, 0, "header padded to a multiple of 8")
        XCTAssertEqual(f.tensors["h.0.w"], SafeTensorInfo(name: "h.0.w", dtype: .F32, shape: [2, 3], byteRange: 0..<24, count: 6))
        XCTAssertEqual(f.tensors["scalar"]?.shape, [])
        XCTAssertEqual(f.tensors["scalar"]?.count, 1)
        XCTAssertEqual(f.tensors["empty"]?.count, 0)
        assertBitsEqual(try f.floats("h.0.w"), w)
        XCTAssertEqual(try f.floats("scalar"), [42.5])
        XCTAssertEqual(try f.floats("empty"), [])
        var dst = [Float](repeating: 0, count: 5)
        try dst.withUnsafeMutableBufferPointer { try f.read("b", into: $0.baseAddress!, count: 5) }
        XCTAssertEqual(dst, [1, 2, 3, 4, 5])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: p))
        XCTAssertTrue(bytes.dropFirst(8).starts(with: Array("{\"__metadata__\":{".utf8)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["rt.safetensors"], "no temp file left")
    }

    func testWriterMatchesReferenceImplementationByteForByte() throws {
        let p = try write("ref.safetensors", [("a", [2, 2], [1.5, -2, 0.25, 1e-3]), ("b", [], [-7]), ("c", [3], [3, 4, 5]), ("d", [2, 0], [])], metadata: ["format": "pt"])
        let ours = try Data(contentsOf: URL(fileURLWithPath: p))
        let reference = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/f32-reference.safetensors"))
        XCTAssertEqual(ours, reference)
    }

    func testReadsReferenceF16BF16File() throws {
        let f = try SafeTensorsFile(path: Self.fixtures + "/mixed.safetensors")
        XCTAssertEqual(f.metadata["format"], "pt")
        XCTAssertEqual(f.names, ["ids", "empty", "f32", "scalar", "bf16", "f16"])  // Rust writer: by alignment, then name
        XCTAssertEqual(f.tensors["f16"]?.dtype, .F16)
        XCTAssertEqual(f.tensors["f16"]?.shape, [2, 6])
        assertBitsEqual(try f.floats("f16"), [0, -0.0, 1, -2, 65504, 0x1p-14, 0x1p-24, 1023 * 0x1p-24, .infinity, -.infinity, .nan, 0.333251953125])
        assertBitsEqual(try f.floats("bf16"), [1, -2.5, .infinity, 0x1p-133, .nan, 3.140625])
        XCTAssertEqual(try f.floats("f32"), [-1, -0.5, 0, 0.5, 1, 1.5])
        XCTAssertEqual(try f.floats("scalar"), [42.5])
        XCTAssertEqual(try f.floats("empty"), [])
        let ids = try f.withRawBytes("ids") { raw in (0..<3).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) } }
        XCTAssertEqual(ids, [1, -2, 3])
        assertError(.unsupportedDType, ["tensor \"ids\" is I64; only F32, F16 and BF16 convert to Float"]) { _ = try f.floats("ids") }
        assertError(.missingTensor, ["no tensor named \"nope\""]) { _ = try f.floats("nope") }
        var two: [Float] = [0, 0]
        assertError(.countMismatch, ["tensor \"f32\" has 6 elements (shape [2, 3], F32) but the destination holds 2"]) {
            try two.withUnsafeMutableBufferPointer { try f.read("f32", into: $0.baseAddress!, count: 2) }
        }
    }

    func testF16ConversionMatchesHardwareForAllBitPatterns() {
        #if !(os(macOS) && arch(x86_64))
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let got = SafeTensorsDType.floatFromF16(bits)
            if expected.isNaN {
                XCTAssertTrue(got.isNaN && got.sign == expected.sign, "0x\(String(bits, radix: 16))")
            } else if got.bitPattern != expected.bitPattern {
                XCTFail("0x\(String(bits, radix: 16)): \(got) != \(expected)")
                return
            }
        }
        #endif
        XCTAssertEqual(SafeTensorsDType.floatFromBF16(0x3F80), 1)
        XCTAssertEqual(SafeTensorsDType.floatFromBF16(0xBF80), -1)
        XCTAssertEqual(SafeTensorsDType.floatFromBF16(0x7F7F), 0x1.FEp127)
    }

    // MARK: checkpoints

    func testShardedCheckpointFromReferenceFiles() throws {
        let c = try SafeTensorsCheckpoint(directory: Self.fixtures + "/sharded")
        XCTAssertEqual(c.files.count, 2)
        XCTAssertEqual(c.names, ["a.bias", "a.weight", "b.weight"])
        XCTAssertEqual(try c.floats("a.weight"), [1, 2, 3, 4])
        XCTAssertEqual(try c.floats("a.bias"), [0.5, -0.5])
        XCTAssertEqual(c.info("b.weight")?.dtype, .BF16)
        XCTAssertNil(c.info("nope"))
        var dst: [Float] = [0, 0, 0]
        try dst.withUnsafeMutableBufferPointer { try c.read("b.weight", into: $0.baseAddress!, count: 3) }
        XCTAssertEqual(dst, [1, 2, 3])
        assertError(.missingTensor, ["sharded: no tensor named \"nope\""]) { _ = try c.floats("nope") }
    }

    func testCheckpointDirectoryLayouts() throws {
        assertError(.io, ["directory has neither model.safetensors nor model.safetensors.index.json"]) { _ = try SafeTensorsCheckpoint(directory: dir) }
        assertError(.io, ["directory does not exist"]) { _ = try SafeTensorsCheckpoint(directory: dir + "/missing") }
        try FileManager.default.createDirectory(atPath: path("sub"), withIntermediateDirectories: false)
        _ = try write("sub/model.safetensors", [("w", [2], [1, 2])])
        let single = try SafeTensorsCheckpoint(directory: path("sub"))
        XCTAssertEqual(single.names, ["w"])
        XCTAssertEqual(try single.floats("w"), [1, 2])
        XCTAssertEqual(try SafeTensorsCheckpoint(file: path("sub/model.safetensors")).names, ["w"])

        _ = try write("s1.safetensors", [("w", [1], [3])])
        func index(_ json: String) throws -> String {
            let p = path(SafeTensorsCheckpoint.indexFileName)
            try json.write(toFile: p, atomically: true, encoding: .utf8)
            return p
        }
        var p = try index(#"{"metadata": {"total_size": 4}, "weight_map": {"w": "s1.safetensors"}}"#)
        XCTAssertEqual(try SafeTensorsCheckpoint(directory: dir).floats("w"), [3])
        XCTAssertEqual(try SafeTensorsCheckpoint(directory: dir).source, dir)
        let bad: [(String, SafeTensorsError.Kind, String)] = [
            (#"{"weight_map": {"w": "s1.safetensors", "v": "s1.safetensors"}}"#, .invalidIndex, #"weight_map puts "v" in s1.safetensors, which has no such tensor"#),
            (#"{"weight_map": {"w": "../s1.safetensors"}}"#, .invalidIndex, #"weight_map entry for "w" is "../s1.safetensors", not a file name in the checkpoint directory"#),
            (#"{"weight_map": {"w": "s1.safetensors", "w": "s1.safetensors"}}"#, .duplicateKey, #"duplicate key "w" in "weight_map""#),
            (#"{"weight_map": {"w": 1}}"#, .invalidIndex, #"weight_map entry for "w" must be a file name string, got 1"#),
            (#"{"weights": {}}"#, .invalidIndex, #"missing "weight_map""#),
            (#"{"weight_map": "#, .invalidIndex, "not valid JSON: expected a value, found end of text at byte 15"),
        ]
        for (json, kind, message) in bad {
            p = try index(json)
            assertError(kind, [p + ": " + message]) { _ = try SafeTensorsCheckpoint(directory: dir) }
        }
        // A shard's tensor the map does not list, or puts in another shard, was skipped silently.
        _ = try write("s3.safetensors", [("w", [1], [5]), ("extra", [1], [6])])
        for (json, message) in [(#"{"weight_map": {"w": "s3.safetensors"}}"#, #"holds tensor "extra", and model.safetensors.index.json's weight_map does not list it"#),
                                (#"{"weight_map": {"w": "s1.safetensors", "extra": "s3.safetensors"}}"#, #"holds tensor "w", and model.safetensors.index.json's weight_map puts it in s1.safetensors"#)] {
            _ = try index(json)
            assertError(.invalidIndex, [path("s3.safetensors") + ": " + message]) { _ = try SafeTensorsCheckpoint(directory: dir) }
        }
        _ = try index(#"{"weight_map": {"w": "s2.safetensors"}}"#)
        assertError(.io, [path("s2.safetensors") + ": cannot open: No such file or directory"]) { _ = try SafeTensorsCheckpoint(directory: dir) }
    }

    // MARK: validation — one corrupted file per class of problem

    let entry = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    let eight: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]

    func testRejectsUnreadableAndShortFiles() throws {
        assertError(.io, [path("missing.safetensors") + ": cannot open: No such file or directory"]) { _ = try SafeTensorsFile(path: path("missing.safetensors")) }
        assertError(.io, [dir + ": not a regular file"]) { _ = try SafeTensorsFile(path: dir) }
        assertRejects([], .tooShort, "file is 0 bytes, shorter than the 8-byte header length prefix")
        assertRejects([1, 2, 3], .tooShort, "file is 3 bytes")
    }

    func testRejectsBadHeaderLength() {
        assertRejects(raw("{}", declared: 100_000_001), .headerLength, "header length 100000001 exceeds the format's limit of 100000000 bytes")
        assertRejects(raw("{}", declared: .max), .headerLength, "header length 18446744073709551615 exceeds")
        assertRejects(raw("{\"a\":\(entry)}", data: eight, declared: 200), .headerLength, "header length 200 runs past the end of the file (file is 70 bytes, header would end at 208)")
    }

    func testRejectsHeadersThatAreNotJSONObjects() {
        assertRejects(Array(raw("{\"a\":\(entry)}", data: eight).enumerated().map { $0.offset == 10 ? 0xFF : $0.element }), .headerEncoding, "header is not valid UTF-8 (invalid byte sequence at header byte 2)")
        assertRejects(raw(""), .headerSyntax, "header is empty")
        assertRejects(raw("[1, 2]"), .headerSyntax, "header does not start with '{' (found '[')")
        assertRejects(raw(" {}"), .headerSyntax, "header does not start with '{' (found byte 0x20)")
        assertRejects(raw("{\"a\":"), .headerSyntax, "header is not valid JSON: expected a value, found end of text at header byte 5")
        assertRejects(raw("{} x"), .headerSyntax, "header is not valid JSON: unexpected characters after the JSON value at header byte 3")
        assertRejects(raw("{\"a\":" + String(repeating: "[", count: 100)), .headerSyntax, "header JSON nests deeper than 32 levels")
        assertRejects(raw("{\"a\\ud800\":1}"), .headerSyntax, "lone leading surrogate")
    }

    func testRejectsMalformedEntries() {
        func rejects(_ e: String, _ kind: SafeTensorsError.Kind, _ message: String, line: UInt = #line) {
            assertRejects(raw("{\"t\":\(e)}", data: eight), kind, "tensor \"t\": " + message, line: line)
        }
        rejects("[1]", .invalidEntry, "entry must be an object with dtype, shape and data_offsets, got [1]")
        rejects(#"{"dtype":"F32","shape":[2]}"#, .invalidEntry, #"missing "data_offsets""#)
        rejects(#"{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}"#, .invalidEntry, #"unexpected key "extra""#)
        rejects(#"{"dtype":"F33","shape":[2],"data_offsets":[0,8]}"#, .unknownDType, #"unknown dtype "F33""#)
        rejects(#"{"dtype":32,"shape":[2],"data_offsets":[0,8]}"#, .invalidEntry, "dtype must be a string, got 32")
        for shape in ["[-1]", "[1.5]", "[\"2\"]", "2", "[2e0]", "[99999999999999999999]", "null"] {
            rejects(#"{"dtype":"F32","shape":\#(shape),"data_offsets":[0,8]}"#, .invalidEntry, "shape must be a list of non-negative integers, got")
        }
        for offsets in ["[0]", "[0,8,16]", "[8,0]", "[-1,8]", "\"0,8\"", "[0,8.0]"] {
            rejects(#"{"dtype":"F32","shape":[2],"data_offsets":\#(offsets)}"#, .invalidEntry, "data_offsets must be [begin, end] with 0 <= begin <= end, got")
        }
        assertRejects(raw(#"{"__metadata__":[1]}"#), .invalidMetadata, "__metadata__ must be an object mapping strings to strings, got [1]")
        XCTAssertEqual(try SafeTensorsFile(path: put(raw(#"{"__metadata__":null}"#))).metadata, [:], "null = absent, as the reference reads it")
        assertRejects(raw(#"{"__metadata__":{"k":1}}"#), .invalidMetadata, #"__metadata__ value for "k" must be a string, got 1"#)
    }

    func testRejectsDuplicateKeys() {
        assertRejects(raw("{\"a\":\(entry),\"a\":\(entry)}", data: eight), .duplicateKey, #"duplicate key "a" in the header"#)
        assertRejects(raw(#"{"__metadata__":{"k":"1","k":"2"}}"#), .duplicateKey, #"duplicate key "k" in __metadata__"#)
        assertRejects(raw(#"{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight), .duplicateKey, #"duplicate key "dtype" in tensor "a""#)
    }

    func testRejectsSizeMismatch() {
        assertRejects(raw(#"{"h.0.w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, data: .init(repeating: 0, count: 20)), .sizeMismatch, #"tensor "h.0.w": shape [2, 3] of F32 needs 24 bytes but data_offsets span 20"#)
        assertRejects(raw(#"{"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}"#), .sizeMismatch, "shape [4294967296, 4294967296, 4] has too many elements")
        assertRejects(raw(#"{"t":{"dtype":"F64","shape":[1152921504606846976],"data_offsets":[0,0]}}"#), .sizeMismatch, "of F64 is too large")
        assertRejects(raw(#"{"t":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#, data: [0]), .sizeMismatch, "shape [3] of F4 is 12 bits, not a whole number of bytes")
    }

    func testRejectsHolesAndOverlaps() {
        let e = { (b: Int, n: Int) in #"{"dtype":"F32","shape":[\#(n)],"data_offsets":[\#(b),\#(b + 4 * n)]}"# }
        assertRejects(raw("{\"a\":\(e(0, 2)),\"b\":\(e(12, 2))}", data: .init(repeating: 0, count: 20)), .invalidOffsets, #"tensor "b": data_offsets [12, 20] leave a hole of 4 bytes after tensor "a" (which ends at 8)"#)
        assertRejects(raw("{\"a\":\(e(4, 2))}", data: .init(repeating: 0, count: 12)), .invalidOffsets, "leave a hole of 4 bytes after the start of the data buffer")
        assertRejects(raw("{\"b\":\(e(4, 2)),\"a\":\(e(0, 2))}", data: .init(repeating: 0, count: 12)), .invalidOffsets, #"tensor "b": data_offsets [4, 12] overlap tensor "a" (which ends at 8)"#)
    }

    func testRejectsTrailingAndMissingData() {
        let header = "{\"a\":\(entry)}"
        let good = raw(header, data: eight)
        assertRejects(good + [1, 2, 3], .fileLength, "file is \(good.count + 3) bytes but header and data need only \(good.count) (3 trailing bytes)")
        assertRejects(Array(good.dropLast(4)), .fileLength, "file is \(good.count - 4) bytes but header and data need \(good.count) (truncated?)")
        XCTAssertNoThrow(try SafeTensorsFile(path: put(good)))
        XCTAssertNoThrow(try SafeTensorsFile(path: put(raw(header + "   ", data: eight))), "trailing spaces are the format's padding")
    }

    // MARK: writer

    func testWriterRejectsBadInputAndLeavesNothing() throws {
        let cases: [([(String, [Int], [Float])], String)] = [
            ([("a", [2], [1]), ], #"tensor "a": shape [2] has 2 elements but the data has 1"#),
            ([("a", [-1], [])], #"tensor "a": shape [-1] has a negative dimension"#),
            ([("a", [1], [1]), ("a", [1], [2])], #"tensor "a" is given twice"#),
            ([("__metadata__", [1], [1])], #""__metadata__" is reserved"#),
            ([("", [1], [1])], "tensor name is empty"),
        ]
        for (tensors, message) in cases {
            assertError(.invalidArgument, [path("w.safetensors") + ": " + message]) { _ = try write("w.safetensors", tensors) }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    func testAtomicWriteLeavesNoTempOrPartialFile() throws {
        // Missing directory: the temp file cannot even be created.
        let missing = path("no-such-dir/m.safetensors")
        assertError(.io, [missing + ": cannot create temporary file " + missing + ".tmp-"]) { _ = try write("no-such-dir/m.safetensors", [("a", [1], [1])]) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("no-such-dir")))
        // Rename fails after the data was written (the target is a directory): the temp must go.
        try FileManager.default.createDirectory(atPath: path("taken.safetensors"), withIntermediateDirectories: false)
        assertError(.io, ["cannot rename"]) { _ = try write("taken.safetensors", [("a", [1], [1])]) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["taken.safetensors"])
        // Overwriting replaces the old file whole.
        _ = try write("m.safetensors", [("a", [3], [1, 2, 3])])
        let p = try write("m.safetensors", [("b", [1], [9])], metadata: ["v": "2"])
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(f.names, ["b"])
        XCTAssertEqual(f.metadata, ["v": "2"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["m.safetensors", "taken.safetensors"])
    }

    // MARK: fuzz

    /// Seeded mutations of valid files: every case must load or throw SafeTensorsError, never
    /// trap. 2000 cases by default; more with SFT_DIST_FUZZ_CASES (seed: SFT_DIST_FUZZ_SEED).
    func testFuzzedFilesLoadOrThrowButNeverCrash() throws {
        let env = ProcessInfo.processInfo.environment
        let cases = env["SFT_DIST_FUZZ_CASES"].flatMap { Int($0) } ?? 2000
        var rng = SplitMix64(seed: env["SFT_DIST_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5AFE_7E45)
        let ours = try Data(contentsOf: URL(fileURLWithPath: write("base.safetensors", [("h.0.w", [2, 3], [1, 2, 3, 4, 5, 6]), ("s", [], [7]), ("e", [0], []), ("b", [2], [8, 9])], metadata: ["k": "v"])))
        let reference = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/mixed.safetensors"))
        let bases = [[UInt8](ours), [UInt8](reference)]
        let interesting = Array(#"{}[]":,0123456789-.eE \u"#.utf8) + [0x00, 0xFF, 0xC3, 0x80]
        var loaded = 0, rejected = 0
        for i in 0..<cases {
            var b = bases[i % bases.count]
            let headerEnd = min(b.count, 8 + Int(b[0]) + Int(b[1]) << 8)
            func setLength(_ n: UInt64) { withUnsafeBytes(of: n.littleEndian) { for j in 0..<8 { b[j] = $0[j] } } }
            for _ in 0...Int.random(in: 0...2, using: &rng) {  // 1–3 stacked mutations
                switch Int.random(in: 0..<7, using: &rng) {
                case 0:  // bit flips anywhere, or only in the data (values change, file stays valid)
                    let lower = Bool.random(using: &rng) ? 0 : headerEnd
                    guard b.count > lower else { break }
                    for _ in 0..<Int.random(in: 1...8, using: &rng) { b[Int.random(in: lower..<b.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng) }
                case 1:  // truncation
                    guard !b.isEmpty else { break }
                    b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
                case 2:  // header byte edits
                    for _ in 0..<Int.random(in: 1...4, using: &rng) where headerEnd > 8 && b.count >= headerEnd {
                        b[Int.random(in: 8..<headerEnd, using: &rng)] = Bool.random(using: &rng) ? interesting.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
                    }
                case 3:  // length-prefix edits
                    guard b.count >= 8 else { break }
                    let n = UInt64(headerEnd - 8)
                    setLength([n &+ UInt64.random(in: 1...16, using: &rng), n &- UInt64.random(in: 1...16, using: &rng), UInt64.random(in: 0...UInt64(b.count * 2), using: &rng),
                               .max, 1 << 63, 100_000_001, 100_000_000, 0, UInt64.random(in: 0...(.max), using: &rng)].randomElement(using: &rng)!)
                case 4:  // insert or delete header bytes, keeping the length prefix consistent
                    guard headerEnd > 9, b.count >= headerEnd else { break }
                    let at = Int.random(in: 9..<headerEnd, using: &rng)
                    if Bool.random(using: &rng) { b.insert(interesting.randomElement(using: &rng)!, at: at); setLength(UInt64(headerEnd - 7)) } else { b.remove(at: at); setLength(UInt64(headerEnd - 9)) }
                case 5:  // replace a number in the header with an extreme one
                    guard b.count >= headerEnd, let at = (8..<headerEnd).filter({ (48...57).contains(b[$0]) }).randomElement(using: &rng) else { break }
                    let numbers = ["18446744073709551616", "9223372036854775807", "-1", "0", "4611686018427387904", "1e3", "2.0"]
                    b.replaceSubrange(at...at, with: Array(numbers.randomElement(using: &rng)!.utf8))
                default:  // trailing garbage
                    b += (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            }
            let p = put(b, "fuzz.safetensors")
            do {
                let f = try SafeTensorsFile(path: p)
                for name in f.names {
                    guard let info = f.tensors[name] else { continue }
                    if info.dtype.isConvertibleToFloat { XCTAssertEqual(try f.floats(name).count, info.count) }
                    _ = try f.withRawBytes(name) { $0.reduce(0, &+) }
                }
                loaded += 1
            } catch is SafeTensorsError {
                rejected += 1
            } catch {
                XCTFail("case \(i): unexpected error type \(error)")
            }
        }
        XCTAssertEqual(loaded + rejected, cases)
        if cases >= 500 { XCTAssertGreaterThan(loaded, 0); XCTAssertGreaterThan(rejected, cases / 2) }
    }
}
