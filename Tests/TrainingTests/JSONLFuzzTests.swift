import Foundation
import XCTest
import TensorCore
import Models
@testable import Training

/// Seeded mutations of valid JSONL files through the reader and the tokenizing dataset:
/// every case must load or throw a `DataError` naming the file (and the line), never trap,
/// and strict and `skip_bad_lines` reading must agree on which line is bad first.
/// 2000 cases by default; more with SFT_DIST_FUZZ_CASES (seed: SFT_DIST_FUZZ_SEED).
final class JSONLFuzzTests: XCTestCase {
    let tokenizer = ByteTokenizer()

    static let corpus: [String] = [
        #"{"prompt": "add 12 30 =", "completion": " 42"}"# + "\n" + #"{"prompt": "sort 312 =", "completion": " 123"}"# + "\n",
        "\u{FEFF}" + #"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"# + "\r\n\r\n"
            + #"{"prompt": "é ü 日本 🙂", "completion": "ok\n\"quoted\"\t\\", "extra": [1, 2.5e3, null, true, {"k": "v"}]}"# + "\r\n",
        #"{"prompt": "", "completion": "x"}"# + "\n\n   \n" + #"{"messages": [{"role": "user", "content": "\u00e9\ud83d\ude42"}, {"role": "assistant", "content": "y"}, {"role": "user", "content": "z"}, {"role": "assistant", "content": "w"}]}"#,
    ]

    /// Bytes that tend to break JSON, UTF-8 or line handling.
    static let interesting: [[UInt8]] = [
        [0x22], [0x5C], [0x7B], [0x7D], [0x5B], [0x5D], [0x3A], [0x2C], [0x0A], [0x0D], [0x00], [0xFF], [0xFE],
        [0xC3], [0x80], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xEF, 0xBB, 0xBF], [0xE2, 0x82],
        Array(#"\u"#.utf8), Array(#"\ud800"#.utf8), Array("null".utf8), Array("1e999".utf8), Array("-0".utf8),
        Array("[]".utf8), Array("{}".utf8), Array(#""completion""#.utf8), Array(#""messages""#.utf8), Array(#""role""#.utf8),
        Array("\"assistant\"".utf8), Array("true".utf8), Array("18446744073709551616".utf8),
    ]

    func testFuzzedJSONLLoadsOrFailsWithItsLineButNeverCrashes() throws {
        let env = ProcessInfo.processInfo.environment
        let cases = env["SFT_DIST_FUZZ_CASES"].flatMap { Int($0) } ?? 2000
        var rng = SplitMix64(seed: env["SFT_DIST_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x150_11_F0)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-jsonlfuzz-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var loaded = 0, rejected = 0, datasets = 0
        for i in 0..<cases {
            var b = Array(Self.corpus[i % Self.corpus.count].utf8)
            for _ in 0...Int.random(in: 0...3, using: &rng) { mutate(&b, &rng) }
            let maxLine = [48, 200, JSONLReader.defaultMaxLineBytes].randomElement(using: &rng)!
            let lines = b.split(separator: 0x0A, omittingEmptySubsequences: false).count
            let label = "case \(i)"

            // Strict: records, or the first bad line.
            var strictRecords: [SourcedRecord]? = nil, strictBadLine: Int? = nil
            do {
                let r: JSONLReadResult
                if i % 50 == 0 {  // now and then through the file path too
                    let path = dir + "/fuzz.jsonl"
                    try Data(b).write(to: URL(fileURLWithPath: path))
                    r = try JSONLReader.read(path: path, maxLineBytes: maxLine)
                    XCTAssertTrue(r.records.allSatisfy { $0.path == path }, label)
                } else {
                    r = try JSONLReader.parse(b, path: "fuzz.jsonl", maxLineBytes: maxLine)
                }
                XCTAssertTrue(r.skipped.isEmpty, label)
                XCTAssertFalse(r.records.isEmpty, label)
                XCTAssertTrue(r.records.allSatisfy { (1...lines).contains($0.line) }, "\(label): line numbers in range")
                strictRecords = r.records
                loaded += 1
            } catch let e as DataError {
                XCTAssertTrue(e.description.hasPrefix("fuzz.jsonl:") || e.description.hasPrefix(dir + "/fuzz.jsonl:"), "\(label): \(e)")
                strictBadLine = lineNumber(of: e.description)
                if let n = strictBadLine { XCTAssertTrue((1...lines).contains(n), "\(label): line \(n) of \(lines)") }
                rejected += 1
            } catch {
                XCTFail("\(label): unexpected error type \(type(of: error)): \(error)")
            }

            // The same bytes arriving in random pieces (as `read` gets them) parse the same.
            var chunks: [ArraySlice<UInt8>] = [], at = 0
            while at < b.count {
                let n = Int.random(in: 1...64, using: &rng)
                chunks.append(b[at..<min(b.count, at + n)])
                at += n
            }
            do {
                let r = try JSONLReader.parse(chunks: chunks, path: "fuzz.jsonl", maxLineBytes: maxLine)
                XCTAssertEqual(r.records.map(\.record), strictRecords?.map(\.record), "\(label): chunked parse loaded what whole parse did not")
                XCTAssertEqual(r.records.map(\.line), strictRecords?.map(\.line), label)
            } catch let e as DataError {
                XCTAssertEqual(lineNumber(of: e.description), strictBadLine, "\(label): chunked: \(e)")
            }

            // skip_bad_lines must agree: the same records when strict succeeded, and the first
            // skipped line is the line strict reading stopped at.
            do {
                let r = try JSONLReader.parse(b, path: "fuzz.jsonl", skipBadLines: true, maxLineBytes: maxLine)
                if let strict = strictRecords {
                    XCTAssertEqual(r.records.map(\.line), strict.map(\.line), label)
                    XCTAssertTrue(r.skipped.isEmpty, label)
                }
                if let n = strictBadLine { XCTAssertEqual(r.skipped.first?.line, n, label) }
                try checkDataset(r.records, &rng, label: label, built: &datasets)
            } catch let e as DataError {
                XCTAssertNil(strictRecords, "\(label): skip mode failed (\(e)) where strict mode loaded")
                XCTAssertTrue(e.description.hasPrefix("fuzz.jsonl: no examples"), "\(label): \(e)")
            } catch {
                XCTFail("\(label): unexpected error type \(type(of: error)): \(error)")
            }
        }
        XCTAssertEqual(loaded + rejected, cases)
        if cases >= 500 {
            // The mutations must exercise both sides, or the test proves little.
            XCTAssertGreaterThan(loaded, cases / 20, "too few mutated files still load")
            XCTAssertGreaterThan(rejected, cases / 4, "too few mutated files are rejected")
            XCTAssertGreaterThan(datasets, cases / 20)
        }
    }

    /// Tokenizing whatever parsed must give examples that fit and train, or a DataError.
    private func checkDataset(_ records: [SourcedRecord], _ rng: inout SplitMix64, label: String, built: inout Int) throws {
        let maxLength = [2, 5, 16, 64].randomElement(using: &rng)!
        let truncation = Truncation.allCases.randomElement(using: &rng)!
        let template = ChatTemplate.allCases.randomElement(using: &rng)!
        do {
            let d = try Dataset(records: records, path: "fuzz.jsonl", tokenizer: tokenizer, maxLength: maxLength,
                                truncation: truncation, template: template)
            for e in d.examples {
                XCTAssertLessThanOrEqual(e.ids.count, maxLength, label)
                XCTAssertEqual(e.ids.count, e.lossMask.count, label)
                XCTAssertGreaterThan(lossTokenCount(e), 0, label)
                XCTAssertTrue(e.ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabSize }, label)
            }
            built += 1
        } catch let e as DataError {
            XCTAssertTrue(e.description.hasPrefix("fuzz.jsonl"), "\(label): \(e)")
        }
    }

    private func mutate(_ b: inout [UInt8], _ rng: inout SplitMix64) {
        func at(_ extra: Int = 0) -> Int { Int.random(in: 0...max(0, b.count - 1 + extra), using: &rng) }
        switch Int.random(in: 0..<11, using: &rng) {
        case 0:  // bit flips
            guard !b.isEmpty else { return }
            for _ in 0..<Int.random(in: 1...4, using: &rng) { b[at()] ^= 1 << UInt8.random(in: 0..<8, using: &rng) }
        case 1:  // insert an interesting token
            b.insert(contentsOf: Self.interesting.randomElement(using: &rng)!, at: min(at(1), b.count))
        case 2:  // delete a short range
            guard !b.isEmpty else { return }
            let s = at(), n = Int.random(in: 1...8, using: &rng)
            b.removeSubrange(s..<min(b.count, s + n))
        case 3:  // truncate
            b = Array(b.prefix(at()))
        case 4:  // duplicate a range elsewhere (splices lines and fields)
            guard b.count > 2 else { return }
            let s = at(), e = min(b.count, s + Int.random(in: 1...40, using: &rng))
            b.insert(contentsOf: b[s..<e], at: min(at(1), b.count))
        case 5:  // a long run: over-long lines
            b.insert(contentsOf: [UInt8](repeating: 0x61, count: Int.random(in: 50...3000, using: &rng)), at: min(at(1), b.count))
        case 6:  // deep nesting
            let n = Int.random(in: 10...700, using: &rng)
            b.insert(contentsOf: [UInt8](repeating: 0x5B, count: n) + [UInt8](repeating: 0x5D, count: Int.random(in: 0...n, using: &rng)),
                     at: min(at(1), b.count))
        case 7:  // replace a byte with a random one
            guard !b.isEmpty else { return }
            b[at()] = UInt8.random(in: 0...255, using: &rng)
        case 9, 10:  // an edit inside a string value that keeps the JSON valid (odd text, escapes)
            let starts = b.indices.dropLast(2).filter { b[$0] == 0x3A && b[$0 + 1] == 0x20 && b[$0 + 2] == 0x22 }
            guard let s = starts.randomElement(using: &rng) else { return }
            let pieces = [#"\n"#, #"\""#, #"\\"#, #"\u00e9"#, #"\ud83d\ude42"#, #"\u0000"#, "<|endoftext|>", "<|im_start|>", "日本", "🙂", "\u{7F}", " "]
            b.insert(contentsOf: Array(pieces.randomElement(using: &rng)!.utf8), at: s + 3)
        default:  // swap two lines
            var lines = b.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
            guard lines.count > 1 else { return }
            lines.swapAt(Int.random(in: 0..<lines.count, using: &rng), Int.random(in: 0..<lines.count, using: &rng))
            b = Array(lines.joined(separator: [0x0A]))
        }
    }

    /// `path:12: reason` → 12; nil for file-level messages.
    private func lineNumber(of message: String) -> Int? {
        let parts = message.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count >= 2 ? Int(parts[1]) : nil
    }
}
