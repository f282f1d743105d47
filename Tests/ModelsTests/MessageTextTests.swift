import XCTest
@testable import Models

/// Values quoted in messages read as the user wrote them: a shell command's single quotes
/// stay single quotes (Swift's debugDescription wrote them \'), control characters and
/// backslashes are escaped, and long values are cut with their size.
final class MessageTextTests: XCTestCase {
    func testQuotedKeepsSingleQuotesAndEscapesTheRest() {
        XCTAssertEqual(MessageText.quoted("sh -c 'exit 3'"), #""sh -c 'exit 3'""#)
        XCTAssertEqual(MessageText.quoted("a\\'b\n\"c\""), #""a\\'b\n\"c\"""#)
        XCTAssertEqual(MessageText.quoted(String(repeating: "x", count: 10), max: 4), #""xxxx"… (10 bytes)"#)
    }
}
