import Foundation
import XCTest
import TestSupport
import TensorCore
@testable import Training

/// Issue 18, data files: the reader streams (a line limit and a file limit apply as bytes
/// arrive), refuses what is not a regular file, and names the file and line.
final class HostileDataTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("sft-dist-hostile-data")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    func readError(_ path: String, skip: Bool = false, maxFileBytes: Int = JSONLReader.defaultMaxFileBytes) -> String {
        final class Box: @unchecked Sendable { var text = "hung" }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { _ = try JSONLReader.read(path: path, skipBadLines: skip, maxFileBytes: maxFileBytes); box.text = "loaded" } catch { box.text = "\(error)" }
            done.signal()
        }
        if done.wait(timeout: .now() + 30) == .timedOut { XCTFail("\(path): still reading after 30 s") }
        return box.text
    }

    func testDevicesAndFIFOsAreRefused() {
        XCTAssertEqual(readError("/dev/zero"), "/dev/zero: not a regular file (a character device)")
        XCTAssertEqual(readError(tmp), tmp + ": not a regular file (a directory)")
        let fifo = tmp + "/data.jsonl"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        XCTAssertEqual(readError(fifo), fifo + ": not a regular file (a FIFO)")
    }

    /// A 4 GiB sparse file of NUL bytes is one endless line: reading stops at the line limit
    /// (strict) or skips it without holding it (skip mode) — the old reader held the whole
    /// file in memory before looking at the first line.
    func testOneEndlessLineIsNotHeldInMemory() throws {
        let path = tmp + "/sparse.jsonl"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(#"{"prompt": "a", "completion": "b"}"#.utf8 + [0x0A])))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 1 << 32)
        try handle.close()
        let start = Date()
        XCTAssertEqual(readError(path), path + ":2: line longer than \(JSONLReader.defaultMaxLineBytes) bytes")
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the line limit must apply while reading")
        XCTAssertEqual(readError(path, maxFileBytes: 1 << 20), path + ": is 4.0 GiB, more than the 1.0 MiB allowed for a JSONL file")
    }

    /// Feeding the splitter in arbitrary chunks gives the lines of one whole feed.
    func testLinesDoNotDependOnHowTheBytesArrive() {
        var rng = SplitMix64(seed: 0x5_1_1_7)
        let alphabet: [UInt8] = [0x0A, 0x0D, 0x20, 0x61, 0x7B, 0xEF, 0xBB, 0xBF, 0x09]
        for _ in 0..<2000 {
            var bytes = (0..<Int.random(in: 0...60, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            if Bool.random(using: &rng) { bytes = [0xEF, 0xBB, 0xBF] + bytes }
            let maxLine = Int.random(in: 1...8, using: &rng)
            func lines(_ chunks: [ArraySlice<UInt8>]) -> [String] {
                var s = LineSplitter(maxLineBytes: maxLine), out: [String] = []
                let emit = { (n: Int, l: LineSplitter.Line) in
                    switch l { case .text(let t): out.append("\(n):\(Array(t))"); case .tooLong: out.append("\(n):long") }
                }
                for c in chunks { s.feed(c, emit) }
                s.finish(emit)
                return out
            }
            var chunks: [ArraySlice<UInt8>] = [], at = 0
            while at < bytes.count {
                let n = Int.random(in: 1...4, using: &rng)
                chunks.append(bytes[at..<min(bytes.count, at + n)])
                at += n
            }
            XCTAssertEqual(lines(chunks), lines([bytes[...]]), "\(bytes) max \(maxLine)")
        }
    }
}
