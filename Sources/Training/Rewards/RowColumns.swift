import Foundation
import Models

/// The other fields of the rows a scorer judges answers to — everything but the prompt and the
/// answer (`prompt`, `completion`, `messages`) — as TRL hands a dataset's extra columns to its
/// reward functions (`**kwargs`: a `solution`, a `task` naming the verifier that applies, …).
/// An external scorer (`ExternalScorer`) gets them as the `"columns"` object of each line. Read
/// again from the rows' files, by their `file:line`, only when such a scorer is in use: the
/// training data need not carry them in memory otherwise.
public enum RowColumns {
    /// The fields every row format reads itself; `text` too, a language-modeling row's.
    static let read: Set<String> = ["prompt", "completion", "messages"]

    /// `source` ("path:line") → the row's other fields as a JSON object's text (sorted keys), for
    /// the rows among `sources` that have any. A source that names no readable file (the built-in
    /// tasks') has none. Bad lines are passed over: the reader that made the rows judged them.
    public static func of(_ sources: [String]) -> [String: String] {
        var lines: [String: Set<Int>] = [:]
        for s in sources {
            guard let colon = s.lastIndex(of: ":"), let line = Int(s[s.index(after: colon)...]) else { continue }
            lines[String(s[..<colon]), default: []].insert(line)
        }
        var out: [String: String] = [:]
        for (path, wanted) in lines where FileManager.default.isReadableFile(atPath: path) {
            guard let rows = try? JSONLReader.lines(path: path, skipBadLines: true, parse: { JSONLReader.jsonObject($0) }) else { continue }
            for (fields, line) in rows.values where wanted.contains(line) {
                let other = fields.filter { !read.contains($0.key) }
                guard !other.isEmpty, JSONSerialization.isValidJSONObject(other),
                      let data = try? JSONSerialization.data(withJSONObject: other, options: [.sortedKeys]) else { continue }
                out["\(path):\(line)"] = String(decoding: data, as: UTF8.self)
            }
        }
        return out
    }
}
