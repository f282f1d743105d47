import XCTest
@testable import Distributed

final class WireCodecTests: XCTestCase {
    /// Every kind of field comes back as written, nil and "" stay different, and a reader
    /// consumes exactly what the writer wrote.
    func testValuesRoundTrip() {
        var w = WireWriter()
        w.put(Int64(-5)); w.put(UInt8(200)); w.put(Float(-0.0)); w.put(Double.pi); w.put(true)
        w.put([Int32(1), -2, 3]); w.put([Float.infinity, 1.5]); w.put(nil as String?); w.put("" as String?)
        w.put("héllo" as String?); w.put(WireList(["a", "", "b c"]))
        var r = WireReader(w.bytes)
        XCTAssertEqual(r.get(Int64.self), -5)
        XCTAssertEqual(r.get(UInt8.self), 200)
        XCTAssertEqual(r.get(Float.self).bitPattern, Float(-0.0).bitPattern)
        XCTAssertEqual(r.get(Double.self), .pi)
        XCTAssertTrue(r.get(Bool.self))
        XCTAssertEqual(r.getArray(Int32.self), [1, -2, 3])
        XCTAssertEqual(r.getFloats(), [.infinity, 1.5])
        XCTAssertNil(r.getString())
        XCTAssertEqual(r.getString(), "")
        XCTAssertEqual(r.getString(), "héllo")
        XCTAssertEqual(r.get(WireList<String>.self).items, ["a", "", "b c"])
        XCTAssertTrue(r.isAtEnd)
    }
}
