import Foundation
import XCTest
@testable import Models

/// The model directory's replacement (`ReplaceableOutput.replace`): the new directory takes
/// the old one's place whole, and what a killed save left beside it is cleaned up — the old
/// copy moved aside (where the file system cannot exchange) is put back when the model is
/// missing, never deleted as a leftover.
final class ReplaceableOutputTests: XCTestCase {
    func dir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("replaceable-\(getpid())/\(name)").path
        try? FileManager.default.removeItem(atPath: d)
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func write(_ files: [String: String], in d: String) throws {
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: d + "/" + name, atomically: false, encoding: .utf8) }
    }

    func contents(_ d: String) -> [String: String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []
        return Dictionary(uniqueKeysWithValues: names.map { ($0, (try? String(contentsOfFile: d + "/" + $0, encoding: .utf8)) ?? "?") })
    }

    func testReplaceSwapsTheWholeDirectory() throws {
        let base = dir("swap")
        try write(["config.json": "old", "tokenizer.json": "old"], in: base + "/model")
        try ReplaceableOutput.replace(base + "/model", what: "model") { tmp in try self.write(["config.json": "new"], in: tmp) }
        XCTAssertEqual(contents(base + "/model"), ["config.json": "new"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: base), ["model"])
    }

    /// A dead save's leftovers (pid 2³⁰ is no live process here): with the model missing, the
    /// old copy moved aside is put back; with the model there, both leftovers are removed.
    func testLeftoversOfAKilledSave() throws {
        let base = dir("leftovers")
        let dead = 1 << 30
        try write(["config.json": "old"], in: base + "/model.tmp-\(dead)-old")
        try write(["config.json": "new, half-written"], in: base + "/model.tmp-\(dead)")
        ReplaceableOutput.removeStaleTemporaries(base + "/model")
        XCTAssertEqual(contents(base + "/model"), ["config.json": "old"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: base), ["model"])
        try write(["config.json": "older"], in: base + "/model.tmp-\(dead)-old")
        ReplaceableOutput.removeStaleTemporaries(base + "/model")
        XCTAssertEqual(contents(base + "/model"), ["config.json": "old"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: base), ["model"])
    }
}
