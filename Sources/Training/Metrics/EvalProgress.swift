import Foundation

/// `eval`'s progress on stderr (rank 0): generation can take minutes (4,000 prompts × 8
/// samples took 41 s on the built-in model) and printed nothing until the table. A line at
/// most every `interval` seconds, the first after `interval` (a short eval stays silent):
/// `eval: greedy answers 1024/4000, 0:12 elapsed, ETA 0:35`, the ETA that of the phase.
public final class EvalProgress {
    let started = Date()
    let interval: Double
    let label: String
    let show: (String) -> Void
    var lastShown: Date? = nil
    /// The phase being reported and when its first update came (its rate is measured from there).
    var phase: (name: String, since: Date)? = nil

    /// `label` opens each line ("eval"; token-clean's scoring pass names its objective).
    public init(interval: Double = 5, label: String = "eval", show: @escaping (String) -> Void) {
        self.interval = interval
        self.label = label
        self.show = show
    }

    public func update(_ name: String, done: Int, total: Int) {
        let now = Date()
        if phase?.name != name { phase = (name, now) }
        guard total > 0, now.timeIntervalSince(lastShown ?? started) >= interval else { return }
        lastShown = now
        let fraction = Double(done) / Double(total), inPhase = now.timeIntervalSince(phase!.since)
        let eta = fraction > 0 && inPhase > 0 ? ProgressLine.clock(inPhase * (1 - fraction) / fraction) : "?"
        show("\(label): \(name) \(done)/\(total), \(ProgressLine.clock(now.timeIntervalSince(started))) elapsed, ETA \(eta)")
    }
}
