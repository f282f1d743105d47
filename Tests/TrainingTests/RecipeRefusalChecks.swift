import XCTest
@testable import Training

/// The recipe tests' shared check: a recipe refused with one short line that starts with the
/// file's name and contains the expected text.
protocol RecipeRefusalChecks {}

extension RecipeRefusalChecks {
    func error(_ yaml: String) -> String? {
        do { _ = try Recipe.parse(yaml: yaml, source: "r.yaml"); return nil } catch { return "\(error)" }
    }

    func assertRefused(_ yaml: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = error(yaml) else { return XCTFail("accepted", file: file, line: line) }
        XCTAssertTrue(e.contains(expected), "expected \"\(expected)\" in: \(e)", file: file, line: line)
        XCTAssertTrue(e.hasPrefix("r.yaml"), e, file: file, line: line)
        XCTAssertLessThan(e.count, 300, e, file: file, line: line)
        XCTAssertFalse(e.contains("\n"), e, file: file, line: line)
    }
}
