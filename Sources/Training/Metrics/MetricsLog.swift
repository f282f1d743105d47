import Distributed
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
        // open(2), not FileManager: its failure says why (a directory in the way, no permission).
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0o644)
        guard fd >= 0 else {
            throw OutputError("\(path): cannot create the metrics file (\(String(cString: strerror(errno))))")
        }
        let h = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        if append { _ = try? h.seekToEnd() }
        handle = h
    }

    deinit { try? handle?.close() }

    public func write(_ fields: [(String, Any)]) {
        guard let handle else { return }
        // FileHandle.write(_:) traps on a failed write (a full disk); this one throws. A line
        // written in part is cut off again, so the file ends with the last whole line (a torn
        // `{"step": 63, "loss": 2.75` was left behind).
        let end = lseek(handle.fileDescriptor, 0, SEEK_END)
        do { try handle.write(contentsOf: Data((MetricsLog.json(fields) + "\n").utf8)) } catch {
            if end >= 0 { _ = ftruncate(handle.fileDescriptor, end) }
            Fatal.fail("\(path): cannot write metrics (\(MessageText.reason(error, for: path)))", code: Fatal.Code.output)
        }
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

    /// Reads back a metrics file: each line's numeric fields; a null (a non-finite value as
    /// written) is left out, or read as NaN with `nullsAsNaN` (the plot marks such evaluations).
    public static func read(path: String, nullsAsNaN: Bool = false) throws -> [[String: Double]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw MetricsError("\(path): cannot read metrics")
        }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            var record = obj.compactMapValues { nullsAsNaN && $0 is NSNull ? Double.nan : ($0 as? NSNumber)?.doubleValue }
            for (old, new) in renamedKeys where record[new] == nil {
                if let v = record.removeValue(forKey: old) { record[new] = v }
            }
            return record
        }
    }

    /// Keys that rows written by earlier versions used, read under today's names, so a run
    /// resumed across a rename plots and tabulates whole: (old, new). Both renames took TRL's
    /// names (transformers logs `learning_rate`, TRL's GRPOTrainer `reward`).
    static let renamedKeys = [("lr", "learning_rate"), ("reward_mean", "reward")]
}

/// metrics.jsonl could not be created, written or read (exit code 6 when training).
public struct MetricsError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
