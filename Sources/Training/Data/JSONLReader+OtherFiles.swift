import Foundation

/// Files that are not JSON Lines, named as what they are, with how to convert them: their first
/// line failed as "invalid UTF-8" or "invalid JSON (Unexpected end of file…)".
extension JSONLReader {
    /// A Parquet file (datasets' own format), which begins with the magic bytes PAR1; nil otherwise.
    static func otherFileKind(_ line: ArraySlice<UInt8>) -> LineProblem? {
        guard line.starts(with: Array("PAR1".utf8)) else { return nil }
        return LineProblem("a Parquet file (it begins with PAR1), not JSON Lines; convert it, e.g. datasets.load_dataset(\"parquet\", data_files=FILE)[\"train\"].to_json(OUT, lines=True)")
    }

    /// A JSON array file (what load_dataset("json") also reads: Alpaca's) is one array, not one
    /// object per line.
    static let jsonArrayFile = LineProblem("a JSON array, not JSON Lines: this reader takes one JSON object per line; convert the file, e.g. jq -c '.[]' FILE > OUT.jsonl")

    /// Whether the line's first non-blank byte opens an array.
    static func opensArray(_ line: ArraySlice<UInt8>) -> Bool {
        line.first(where: { ![0x20, 0x09, 0x0D].contains($0) }) == UInt8(ascii: "[")
    }
}
