import Foundation
import Models

/// `metrics.jsonl`: one JSON object per line, keys in a fixed order (step first), flushed
/// after every line so a crashed or killed run keeps everything up to its last step.
/// Only the coordinator writes it.
public final class MetricsLog {
    public let path: String
    private let handle: FileHandle?

    public init(path: String?, append: Bool = false) throws {
        self.path = path ?? ""
        guard let path else { handle = nil; return }
        if !append || !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw MetricsError("\(path): cannot create metrics file")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw MetricsError("\(path): cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
    }

    deinit { try? handle?.close() }

    public func write(_ fields: [(String, Any)]) {
        guard let handle else { return }
        handle.write(Data((MetricsLog.json(fields) + "\n").utf8))
    }

    public static func json(_ fields: [(String, Any)]) -> String {
        "{" + fields.map { "\"\($0.0)\": \(value($0.1))" }.joined(separator: ", ") + "}"
    }

    /// One JSON value (numbers, booleans, strings; non-finite numbers become null).
    public static func value(_ v: Any) -> String {
        switch v {
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let f as Float: return f.isFinite ? "\(f)" : "null"
        case let i as Int: return "\(i)"
        case let b as Bool: return b ? "true" : "false"
        case let s as String: return JSONText.quote(s)
        default: return "null"
        }
    }

    /// Reads back a metrics file: each line's numeric fields.
    public static func read(path: String) throws -> [[String: Double]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw MetricsError("\(path): cannot read metrics")
        }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return obj.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }
}

/// metrics.jsonl could not be created, written or read (exit code 6 when training).
public struct MetricsError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
