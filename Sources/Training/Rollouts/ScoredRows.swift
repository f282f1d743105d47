import Foundation

/// The scores of pre-generated, pre-scored samples (`scored_data`: rejection sampling, offline
/// GRPO): per JSONL line of `--data`, besides the prompt and completion the loader reads,
/// `reward` (a finite number), `group` (a string or an integer: the rows answering one prompt)
/// and `advantage` (a finite number). A row's advantage is its `advantage` as given, else the
/// z-score of its reward in its group by TRL's `scale_rewards` rules (`GroupAdvantages`):
/// A = r − mean_g, divided by (std + 1e-4) with the Bessel std of the group (`group`) or of
/// every reward of the file (`batch`), not divided (`none`); a group whose rewards are all
/// equal gets exactly 0. Groups are formed over the whole file as written, before the held-out
/// split. Refused, naming file:line: a reward or advantage that is not a finite number, a row
/// with neither, a reward without a group (and no advantage), a group of one reward when the
/// std scales (its std is undefined).
public struct ScoredRow: Equatable, Sendable {
    public var reward: Double?
    public var group: String?
    public var advantage: Double?
    public init(reward: Double? = nil, group: String? = nil, advantage: Double? = nil) {
        self.reward = reward; self.group = group; self.advantage = advantage
    }
}

public enum ScoredRows {
    /// What training uses per line: the advantage, the reward when given, and a group index
    /// (−1 without a group) numbered by first appearance.
    public struct Score: Equatable, Sendable {
        public var advantage: Float
        public var reward: Float?
        public var group: Int
    }

    /// The score fields of every line of `path`. A line that is not a JSON object is the
    /// loader's to refuse (or, with `skipBadLines`, to skip); a bad score field is an error here.
    public static func read(path: String, skipBadLines: Bool = false) throws -> [Int: ScoredRow] {
        typealias Fields = Result<ScoredRow, JSONLReader.LineProblem>
        let (values, _) = try JSONLReader.lines(path: path, skipBadLines: skipBadLines) { line -> Result<Fields, JSONLReader.LineProblem> in
            JSONLReader.jsonObject(line).map(parse)
        }
        var rows: [Int: ScoredRow] = [:]
        for (fields, line) in values {
            switch fields {
            case .success(let row): rows[line] = row
            case .failure(let p): throw DataError(path: path, line: line, p.reason)
            }
        }
        return rows
    }

    static func parse(_ fields: [String: Any]) -> Result<ScoredRow, JSONLReader.LineProblem> {
        var row = ScoredRow()
        for key in ["reward", "advantage"] {
            guard let v = fields[key] else { continue }
            guard let n = number(v), n.doubleValue.isFinite else {
                return .failure(JSONLReader.LineProblem("\(key) must be a finite number (got \(describe(v)))"))
            }
            // Training is float32: 1e39 became inf (advantage: a non-finite loss at step 2;
            // reward: "reward": null in the metrics, exit 0).
            guard Float(n.doubleValue).isFinite else {
                return .failure(JSONLReader.LineProblem("\(key) \(describe(v)) is beyond float32 (|x| ≤ 3.4e38), which training computes in"))
            }
            if key == "reward" { row.reward = n.doubleValue } else { row.advantage = n.doubleValue }
        }
        if let g = fields["group"] {
            if let s = g as? String { row.group = s }
            else if let n = number(g), n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 1e15 {
                row.group = String(n.int64Value)
            } else {
                return .failure(JSONLReader.LineProblem("group must be a string or an integer (got \(describe(g)))"))
            }
        }
        return .success(row)
    }

    /// A JSON number; booleans, which JSONSerialization also gives as NSNumber (Objective-C
    /// type "c", on Linux too), are not.
    static func number(_ v: Any) -> NSNumber? {
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        return n
    }

    static func describe(_ v: Any) -> String {
        if v is NSNull { return "null" }
        if let s = v as? String { return "the string \"\(RecipeError.quote(s))\"" }   // "(got 1)" hid the quotes
        // JSON's true and false arrive as NSNumber: say them as written, not as 1 and 0.
        if let b = v as? NSNumber, String(cString: b.objCType) == "c" { return b.boolValue ? "true" : "false" }
        if v is [Any] { return "a list" }
        if v is [String: Any] { return "an object" }
        return RecipeError.quote("\(v)")
    }

    /// Every line's score, keyed by line; `path` names the file in errors.
    public static func scores(_ rows: [Int: ScoredRow], scaling: RewardScaling, path: String) throws -> [Int: Score] {
        let lines = rows.keys.sorted()
        var groupIndex: [String: Int] = [:], members: [[Int]] = []
        for l in lines {
            let row = rows[l]!
            if row.advantage == nil {
                guard row.reward != nil else {
                    throw DataError(path: path, line: l, "a scored row needs advantage, or reward and group (it has neither advantage nor reward)")
                }
                guard row.group != nil else {
                    throw DataError(path: path, line: l, "reward without group: give group (the rows sampled for one prompt) or advantage")
                }
            }
            if let g = row.group, row.reward != nil {
                if groupIndex[g] == nil { groupIndex[g] = members.count; members.append([]) }
                members[groupIndex[g]!].append(l)
            }
        }
        let all = lines.compactMap { rows[$0]!.reward }
        let batchStd = GroupAdvantages.besselStd(all[...])
        var advantage: [Int: Double] = [:]
        for group in members {
            let r = group.map { rows[$0]!.reward! }
            let needs = group.filter { rows[$0]!.advantage == nil }
            if needs.isEmpty { continue }
            if scaling != .none && r.count < 2 {
                throw DataError(path: path, line: needs[0], "group \(RecipeError.quote(rows[needs[0]]!.group!)) has one reward: its std (scale_rewards \(scaling.rawValue)) is undefined; give the group more rows, or advantage, or scale_rewards none")
            }
            if r.allSatisfy({ $0 == r[0] }) { for l in group { advantage[l] = 0 }; continue }
            let mean = r.reduce(0, +) / Double(r.count)
            let denominator: Double
            switch scaling {
            case .group: denominator = GroupAdvantages.besselStd(r[...]) + GroupAdvantages.epsilon
            case .batch: denominator = batchStd + GroupAdvantages.epsilon
            case .none: denominator = 1
            }
            for (l, x) in zip(group, r) { advantage[l] = (x - mean) / denominator }
        }
        var out: [Int: Score] = [:]
        for l in lines {
            let row = rows[l]!
            out[l] = Score(advantage: Float(row.advantage ?? advantage[l]!), reward: row.reward.map(Float.init),
                           group: row.group.flatMap { groupIndex[$0] } ?? -1)
        }
        return out
    }
}
