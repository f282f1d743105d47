import Foundation
import XCTest
@testable import Training

/// Bad scored rows are refused naming file:line and what is wrong (`ScoredRows`); the rows a
/// scored file may hold are read line by line as the loader numbers them.
final class ScoredRowsTests: XCTestCase {
    func write(_ lines: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scored-\(getpid())-\(UUID().uuidString).jsonl").path
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func refused(_ lines: [String], _ scaling: RewardScaling = .group, line: Int, _ message: String,
                 file: StaticString = #filePath, at: UInt = #line) throws {
        let path = try write(lines)
        XCTAssertThrowsError(try ScoredRows.scores(try ScoredRows.read(path: path), scaling: scaling, path: path), file: file, line: at) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(path):\(line): "), "\(e)", file: file, line: at)
            XCTAssertTrue("\(e)".contains(message), "\(e)", file: file, line: at)
        }
    }

    let ok = #"{"prompt": "p", "completion": " c", "reward": 1, "group": "q1"}"#
    let ok2 = #"{"prompt": "p", "completion": " d", "reward": 0, "group": "q1"}"#

    func testBadRowsNameTheLine() throws {
        try refused([ok, ok2, #"{"prompt": "p", "completion": " c"}"#], line: 3, "neither advantage nor reward")
        try refused([ok, #"{"prompt": "p", "completion": " c", "reward": 1}"#, ok2], line: 2, "reward without group")
        try refused([ok, ok2, #"{"prompt": "p", "completion": " c", "reward": "1", "group": "q1"}"#], line: 3, "reward must be a finite number (got the string \"1\")")
        try refused([ok, #"{"prompt": "p", "completion": " c", "reward": true, "group": "q1"}"#], line: 2, "reward must be a finite number (got true)")
        try refused([ok, #"{"prompt": "p", "completion": " c", "reward": 1, "group": false}"#], line: 2, "group must be a string or an integer (got false)")
        try refused([ok, ok2, #"{"prompt": "p", "completion": " c", "reward": 1e999, "group": "q1"}"#], line: 3, "not representable")
        try refused([ok, #"{"prompt": "p", "completion": " c", "advantage": null}"#], line: 2, "advantage must be a finite number")
        try refused([ok, #"{"prompt": "p", "completion": " c", "reward": 1, "group": [1]}"#], line: 2, "group must be a string or an integer (got a list)")
        try refused([ok, ok2, "", #"{"prompt": "p", "completion": " c", "reward": 0.5, "group": "lonely"}"#], line: 4, "group lonely has one reward")
        try refused([ok, ok2, #"{"prompt": "p", "completion": " c", "reward": 0.5, "group": 3}"#], .batch, line: 3, "has one reward")
    }

    func testAcceptedRows() throws {
        // A one-row group is fine without std scaling (A = 0); a given advantage needs no group.
        let path = try write([ok, ok2, #"{"prompt": "p", "completion": " c", "reward": 0.5, "group": 3}"#,
                              #"{"prompt": "p", "completion": " c", "advantage": -1.5}"#])
        let s = try ScoredRows.scores(try ScoredRows.read(path: path), scaling: .none, path: path)
        XCTAssertEqual(s.keys.sorted(), [1, 2, 3, 4])
        XCTAssertEqual(s[1]?.advantage, 0.5); XCTAssertEqual(s[2]?.advantage, -0.5); XCTAssertEqual(s[3]?.advantage, 0)
        XCTAssertEqual(s[4]?.advantage, -1.5); XCTAssertEqual(s[4]?.group, -1); XCTAssertNil(s[4]?.reward)
        XCTAssertEqual(s[1]?.group, s[2]?.group); XCTAssertNotEqual(s[1]?.group, s[3]?.group)
        XCTAssertEqual(ScoredDataProducer.line(of: "\(path):12", in: path), 12)
        XCTAssertNil(ScoredDataProducer.line(of: "other.jsonl:12", in: path))
    }
}
