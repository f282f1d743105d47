/// A data problem reported to the user as one line, `path:LINE: what is wrong`
/// (or `path: what is wrong` for whole-file problems), so it can be printed as is and
/// an editor can jump to the line.
public struct DataError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    /// Set by `Dataset` when fitting to max_length left no example: the longest one's tokens,
    /// so a caller that knows the model's context can name the --max-length that fits.
    public var longestUnfitted: Int?

    public init(_ description: String) { self.description = description }

    /// After `longestUnfitted`: the `--max-length` that changes something, not the one in force
    /// (`maxLength` as given, `context` the model's, which caps it). train, eval, score and select.
    public mutating func addMaxLengthHint(maxLength: Int, context: Int) {
        guard let longest = longestUnfitted else { return }
        description += maxLength > context ? "; \(context) tokens is the model's context, which caps --max-length \(maxLength)"
            : longest <= context ? "; --max-length \(longest) keeps them whole"
            : maxLength < context ? "; --max-length \(context), the model's context, keeps the most" : ""
    }

    /// `path:line: reason`
    public init(path: String, line: Int, _ reason: String) {
        self.description = "\(path):\(line): \(reason)"
    }

    /// `path: reason`
    public init(path: String, _ reason: String) {
        self.description = "\(path): \(reason)"
    }
}
