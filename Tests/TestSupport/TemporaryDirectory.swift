import Foundation

/// A new empty directory under the system's temporary directory, named `prefix-<UUID>`, for a
/// test's files (the test removes it in tearDown).
public func makeTemporaryDirectory(_ prefix: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
