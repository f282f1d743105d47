import Foundation

/// A dependency-free line chart of a run's metrics, written next to metrics.jsonl as
/// `loss.svg` so a run can be looked at in any browser without a Python plotting stack.
/// The first panel: the training objective's loss per step, the held-out NLL and exact match at
/// each evaluation, and the named held-out sets (`--eval-data`); a second panel, when the run
/// logs them, the method's own signals (rewards of rollouts, DPO's preference accuracy and
/// margin, self-training's label precision) — the loss of GRPO or DPO alone says little.
public enum SVGPlot {
    public struct Series {
        public var name: String, color: String, points: [(Double, Double)], dots: Bool, dashed: Bool
        /// How many times the colours have come round before this series (an 8th named set is
        /// round 1): each round draws its lines in another dash pattern, so no two series look alike.
        public var round = 0
        /// Whether isolated spikes of this series may be drawn at the top of a cut axis
        /// (`clipTop`): the train loss only — a held-out set that rises is what it is there to show.
        public var clippable = false
        public init(name: String, color: String, points: [(Double, Double)], dots: Bool = false, dashed: Bool = false, round: Int = 0,
                    clippable: Bool = false) {
            self.name = name; self.color = color; self.points = points; self.dots = dots; self.dashed = dashed; self.round = round
            self.clippable = clippable
        }

        /// The stroke-dasharray attribute ("" for a solid line).
        var dashAttribute: String {
            let patterns = dashed ? ["5,3", "5,3,1,3", "9,3,2,3,2,3", "2,5"] : ["", "1.5,2.5", "8,3,2,3", "12,4"]
            let d = patterns[round % patterns.count]
            return d.isEmpty ? "" : " stroke-dasharray=\"\(d)\""
        }
    }

    /// One chart: series on a left axis (fitted to them) and on a right axis of 0–100 %.
    public struct Panel {
        public var left: [Series], right: [Series], leftTitle: String, rightTitle: String
        /// Steps marked by a vertical line across the plot (steps that `nan_policy: skip` skipped).
        public var marks: [Double] = []
        /// Evaluations whose loss was not finite (written as null), marked by a cross on the top
        /// edge: their points cannot be drawn, and the held-out curve simply stopped.
        public var failedEvaluations: [Double] = []
        public init(left: [Series], right: [Series] = [], leftTitle: String, rightTitle: String = "exact match") {
            self.left = left; self.right = right; self.leftTitle = leftTitle; self.rightTitle = rightTitle
        }
        var isEmpty: Bool { (left + right).allSatisfy { $0.points.isEmpty } && marks.isEmpty && failedEvaluations.isEmpty }
    }

    /// Method metrics drawn in the second panel when the run logs them: (key, legend, share).
    /// A share is drawn on the 0–100 % axis.
    static let methodMetrics: [(key: String, name: String, share: Bool)] = [
        ("reward", "reward (mean over rollouts)", false), ("accuracy", "rollouts solved", true),
        ("rewards/margins", "DPO margin (chosen − rejected)", false), ("rewards/accuracies", "DPO preference accuracy", true),
        ("pseudo_label_precision", "pseudo-label precision", true),
        // superhf's rounds: the mean reward of its samples and of the completions it keeps.
        ("superhf_reward_mean", "SuperHF reward (mean over samples)", false), ("superhf_best_reward", "SuperHF reward (kept completions)", false),
    ]

    /// Whether named set `name` is a pair set under dpo in these metrics rows: it logs its DPO
    /// loss as eval_NAME_loss, with eval_NAME_rewards/*, not an NLL.
    static func isPairSet(_ name: String, in rows: [[String: Double]]) -> Bool {
        rows.contains { $0["eval_\(name)_rewards/margins"] != nil } || isRewardSet(name, in: rows)
    }

    /// Whether named set `name` is a pair set of a reward model (`--objective reward`): its
    /// eval_NAME_accuracy is the share of pairs ranked right, not exact match.
    static func isRewardSet(_ name: String, in rows: [[String: Double]]) -> Bool {
        rows.contains { $0["eval_\(name)_margin"] != nil }
    }

    /// A reward model's own figures in the second panel (`--objective reward`), in place of
    /// `methodMetrics`, where `accuracy` is the rollouts solved.
    static let rewardModelMetrics: [(key: String, name: String, share: Bool)] = [
        ("margin", "reward margin (chosen − rejected)", false), ("accuracy", "pair accuracy", true),
    ]

    /// The method metrics an evaluation also logs, as eval_KEY: dpo's, on the held-out pairs,
    /// grpo's reward, on rollouts of the held-out prompts, and a reward model's margin (not
    /// `accuracy`: eval_accuracy is the held-out exact match, or a reward model's pair accuracy
    /// drawn beside the held-out loss).
    static let heldOutTwins: Set = ["rewards/margins", "rewards/accuracies", "reward", "margin"]

    /// What eval_loss is in these rows: the objective's loss where the evaluation ran it (the
    /// preference objectives' pairs, which log eval_rewards/*; grpo's rollouts, which log
    /// eval_reward; gkd's divergence from the teacher), the held-out NLL otherwise.
    static func heldOutLossName(_ records: [[String: Double]], objective: String) -> String {
        ["dpo", "gkd", "reward"].contains(objective) || records.contains(where: { $0["eval_reward"] != nil || $0["eval_rewards/margins"] != nil })
            ? "held-out loss (\(objective))" : "held-out NLL"
    }

    /// The standard chart from metrics records (see MetricsLog.read); `sets` are the named
    /// held-out sets, each with its loss and exact match; `objective` names the train loss.
    public static func lossChart(records: [[String: Double]], title: String, sets: [String] = [], objective: String = "nll") -> String {
        let train = points(records, "loss"), eval = points(records, "eval_loss"), em = points(records, "eval_accuracy")
        let trainName = objective == "nll" ? "train loss" : "train loss (\(objective))"
        var left = [Series(name: trainName, color: "#1f77b4", points: train, clippable: true),
                    Series(name: heldOutLossName(records, objective: objective), color: "#d62728", points: eval, dots: true)]
        let rewardModel = objective == "reward"   // eval_accuracy: the pairs ranked right
        var right = em.isEmpty ? [] : [Series(name: rewardModel ? "held-out pair accuracy" : "held-out exact match", color: "#2ca02c",
                                              points: em, dots: true, dashed: true)]
        // Sets the rows hold besides this run's (evaluated before a resume that named others)
        // are drawn too: left out, their series vanished from the plot without a word.
        let logged = Set(records.flatMap(\.keys).compactMap(setName(ofLossKey:)).filter { !$0.isEmpty })
        for (i, name) in (sets + logged.subtracting(sets).sorted()).enumerated() {
            let color = setColors[i % setColors.count], round = i / setColors.count
            left.append(Series(name: "\(name) " + (isPairSet(name, in: records) ? "loss (\(objective))" : "NLL"), color: color, points: points(records, "eval_\(name)_loss"), dots: true, round: round))
            let acc = points(records, "eval_\(name)_accuracy")
            if !acc.isEmpty {
                let what = isRewardSet(name, in: records) ? "pair accuracy" : "exact match"
                right.append(Series(name: "\(name) \(what)", color: color, points: acc, dots: true, dashed: true, round: round))
            }
        }
        var method = Panel(left: [], right: [], leftTitle: "value", rightTitle: "share")
        for (i, m) in (rewardModel ? rewardModelMetrics : methodMetrics).enumerated() {
            let p = points(records, m.key)
            guard !p.isEmpty else { continue }
            let s = Series(name: m.name, color: methodColors[i % methodColors.count], points: p, dashed: m.share)
            if m.share { method.right.append(s) } else { method.left.append(s) }
            // Its held-out value (dpo evaluates the pairs: eval_rewards/*), red as the held-out loss above.
            guard heldOutTwins.contains(m.key) else { continue }
            let held = points(records, "eval_" + m.key)
            guard !held.isEmpty else { continue }
            let h = Series(name: "held-out " + m.name, color: "#d62728", points: held, dots: true, dashed: m.share)
            if m.share { method.right.append(h) } else { method.left.append(h) }
        }
        // Held-out NLL is in nats per token; another objective's train loss need not be (GRPO's,
        // DPO's can be negative), nor dpo's held-out loss.
        var losses = Panel(left: left, right: right, leftTitle: objective == "nll" ? "loss (nats per token)" : "loss",
                           rightTitle: rewardModel ? "pair accuracy" : "exact match")
        // A skipped step has no finite loss, so the curve would join its neighbours over it unseen.
        losses.marks = records.compactMap { r in r["skipped"] == 1 ? r["step"] : nil }
        losses.failedEvaluations = records.compactMap { r in
            r.contains { setName(ofLossKey: $0.key) != nil && !$0.value.isFinite } ? r["step"] : nil
        }
        let panels = [losses] + (method.isEmpty ? [] : [method])
        return render(title: title, panels: panels)
    }

    /// The set an evaluation's loss key is of: "" for `eval_loss` (the held-out set), NAME for
    /// `eval_NAME_loss`; nil for any other key.
    static func setName(ofLossKey key: String) -> String? {
        guard key.hasPrefix("eval_"), key.hasSuffix("_loss"), key.count >= "eval_loss".count else { return nil }
        return key == "eval_loss" ? "" : String(key.dropFirst("eval_".count).dropLast("_loss".count))
    }

    /// Colours of the named sets' series (the main ones use blue, red and green).
    static let setColors = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                            "#393b79", "#637939", "#843c39", "#7b4173", "#e6550d"]
    /// A cross of two short strokes centred on (x, y).
    static func cross(_ x: Double, _ y: Double, color: String) -> String {
        "<path d=\"M\(x - 4),\(y - 4) L\(x + 4),\(y + 4) M\(x - 4),\(y + 4) L\(x + 4),\(y - 4)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
    }
    /// Failed evaluations' crosses: the held-out NLL's red.
    static let failedColor = "#d62728"
    /// Skipped steps' lines: grey, apart from every series' colour.
    static let markColor = "#888888"
    /// The method panel's colours: none of the first panel's main three (GRPO's solved share
    /// was held-out exact match's green, DPO's preference accuracy held-out NLL's red), one per
    /// method metric.
    static let methodColors = ["#ff7f0e", "#17becf", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f"]

    /// (step, value) of every record that has a finite `key`.
    static func points(_ records: [[String: Double]], _ key: String) -> [(Double, Double)] {
        records.compactMap { r -> (Double, Double)? in
            guard let s = r["step"], let v = r[key], v.isFinite else { return nil }; return (s, v)
        }
    }

    /// Round tick values covering lo…hi: about `count` steps of 1, 2 or 5 × 10ⁿ.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5, integers: Bool = false) -> [Double] {
        let span = max(hi - lo, 1e-12)
        let raw = span / Double(count), mag = pow(10, floor(log10(raw)))
        var step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        if integers { step = max(1, step.rounded(.up)) }
        let first = (lo / step).rounded(.up) * step
        return stride(from: first, through: hi + step * 1e-9, by: step).map { $0 }
    }

    /// A tick label: few digits, whatever the magnitude (1e+18 rather than 19 digits), but as
    /// many as the ticks' `step` needs to tell neighbours apart (a loss flat to 1e-8 had two
    /// ticks both labelled 5.5099).
    static func label(_ v: Double, step: Double? = nil) -> String {
        if v == 0 { return "0" }
        guard let step, step > 0 else {
            return abs(v) >= 1e5 || abs(v) < 1e-3 ? String(format: "%.2g", v) : String(format: "%g", (v * 1e4).rounded() / 1e4)
        }
        if abs(v) >= 1e5 || abs(v) < 1e-3 {
            let digits = min(15, max(2, Int(ceil(log10(abs(v) / step) - 1e-9)) + 1))
            return String(format: "%.\(digits)g", v)
        }
        let decimals = min(15, max(0, Int(ceil(-log10(step) - 1e-9))))
        return String(format: "%.\(decimals)f", v)
    }

    public static func render(title: String, panels: [Panel]) -> String {
        let w = 760.0, panelHeight = 300.0, top = 40.0
        let all = panels.flatMap { $0.left + $0.right }.flatMap(\.points).map(\.0) + panels.flatMap(\.marks) + panels.flatMap(\.failedEvaluations)
        let x0 = all.min() ?? 0, x1 = max(all.max() ?? 1, x0 + 1)
        let titleText = title.count > 90 ? String(title.prefix(42)) + " … " + String(title.suffix(45)) : title
        var y = top
        var body = "<text x=\"\(w / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">\(escape(titleText))</text>\n"
        for panel in panels where !panel.isEmpty {
            let (svg, height) = draw(panel, top: y, width: w, plotHeight: panelHeight, x0: x0, x1: x1)
            body += svg
            y += height
        }
        // viewBox: embedded at another size (an <img width=…>) the plot scales instead of being cut.
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(y + 10))\" viewBox=\"0 0 \(Int(w)) \(Int(y + 10))\" font-family=\"sans-serif\" font-size=\"12\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body + "</svg>\n"
    }

    /// One panel below `top`: its legend band, then the plot; returns the SVG and the height used.
    static func draw(_ p: Panel, top: Double, width w: Double, plotHeight: Double, x0: Double, x1: Double) -> (String, Double) {
        let ml = 70.0, mr = p.right.isEmpty ? 20.0 : 70.0, mb = 46.0
        var s = ""
        // Legend above the plot, never over the curves; rows wrap. `marker` draws the entry's
        // sign at (x, y), the entry's top left corner.
        var lx = ml, ly = top + 4
        func entry(_ name: String, marker: (Double, Double) -> String) {
            let width = Double(name.count) * 7 + 36
            if lx > ml && lx + width > w - mr { lx = ml; ly += 16 }
            s += marker(lx, ly) + "<text x=\"\(lx + 27)\" y=\"\(ly + 10)\">\(escape(name))</text>\n"
            lx += width
        }
        for (series, name) in Array(zip(p.left, legendNames(p.left))) + Array(zip(p.right, legendNames(p.right))) where !series.points.isEmpty {
            entry(name) { x, y in
                "<line x1=\"\(x)\" y1=\"\(y + 6)\" x2=\"\(x + 22)\" y2=\"\(y + 6)\" stroke=\"\(series.color)\" stroke-width=\"2\"\(series.dashAttribute)/>"
            }
        }
        if !p.marks.isEmpty {
            entry("skipped step\(p.marks.count == 1 ? "" : "s") (non-finite, nan_policy: skip)") { x, y in
                "<line x1=\"\(x + 11)\" y1=\"\(y)\" x2=\"\(x + 11)\" y2=\"\(y + 12)\" stroke=\"\(markColor)\" stroke-width=\"2\"/>"
            }
        }
        if !p.failedEvaluations.isEmpty {
            let n = p.failedEvaluations.count
            entry("\(n) evaluation\(n == 1 ? "" : "s") with a non-finite loss") { x, y in cross(x + 11, y + 6, color: failedColor) }
        }
        let values = p.left.flatMap(\.points).map(\.1)
        let clip = clipTop(p.left)
        if let clip {
            let above = p.left.filter(\.clippable).flatMap(\.points).map(\.1).filter { $0 > clip }
            entry("\(above.count) value\(above.count == 1 ? "" : "s") above \(label(clip)) drawn at the top (largest \(label(above.max()!)))") { x, y in
                "<path d=\"M\(x + 6),\(y + 10) L\(x + 11),\(y + 2) L\(x + 16),\(y + 10) Z\" fill=\"\(markColor)\"/>"
            }
        }
        let mt = ly + 26, bottom = mt + plotHeight
        var y0 = values.min() ?? 0, y1 = clip ?? values.max() ?? 1
        // A flat series (a reward that stays 0) gets a readable band around its value.
        let pad = y1 > y0 ? max((y1 - y0) * 0.06, abs(y1) * 1e-6) : max(abs(y0) * 0.1, 0.5)
        y0 -= pad; y1 += pad
        func px(_ x: Double) -> Double { ml + (x - x0) / (x1 - x0) * (w - ml - mr) }
        func py(_ v: Double, _ lo: Double, _ hi: Double) -> Double { bottom - (v - lo) / (hi - lo) * plotHeight }
        let yTicks = ticks(y0, y1), yStep = yTicks.count > 1 ? yTicks[1] - yTicks[0] : nil
        // Without left-axis values the gridlines are the percentage axis' (they were an unlabelled
        // −0.5…1.5 scale's, so 5 % sat on a line that read as 0 %).
        let leftDrawn = !values.isEmpty
        for yy in leftDrawn ? yTicks.map({ py($0, y0, y1) }) : (0...5).map({ py(Double($0) / 5, 0, 1) }) {
            s += "<line x1=\"\(ml)\" y1=\"\(yy)\" x2=\"\(w - mr)\" y2=\"\(yy)\" stroke=\"#eee\"/>"
        }
        if leftDrawn {
            for t in yTicks { s += "<text x=\"\(ml - 6)\" y=\"\(py(t, y0, y1) + 4)\" text-anchor=\"end\">\(label(t, step: yStep))</text>\n" }
        }
        for t in ticks(x0, x1, integers: true) {
            s += "<line x1=\"\(px(t))\" y1=\"\(bottom)\" x2=\"\(px(t))\" y2=\"\(bottom + 4)\" stroke=\"black\"/>"
            s += "<text x=\"\(px(t))\" y=\"\(bottom + 18)\" text-anchor=\"middle\">\(Int(t))</text>\n"
        }
        if !p.right.isEmpty {
            for i in 0...5 {
                s += "<text x=\"\(w - mr + 6)\" y=\"\(py(Double(i) / 5, 0, 1) + 4)\" fill=\"#555\">\(i * 20)%</text>\n"
            }
            s += "<text transform=\"translate(\(w - 14),\(mt + plotHeight / 2)) rotate(90)\" text-anchor=\"middle\" fill=\"#555\">\(escape(p.rightTitle))</text>\n"
        }
        if leftDrawn {
            s += "<text transform=\"translate(16,\(mt + plotHeight / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(p.leftTitle))</text>\n"
        }
        s += "<text x=\"\((ml + w - mr) / 2)\" y=\"\(bottom + 36)\" text-anchor=\"middle\">step</text>\n"
        s += "<line x1=\"\(ml)\" y1=\"\(bottom)\" x2=\"\(w - mr)\" y2=\"\(bottom)\" stroke=\"black\"/>"
        s += "<line x1=\"\(ml)\" y1=\"\(mt)\" x2=\"\(ml)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        func curve(_ series: Series, _ lo: Double, _ hi: Double, clippedAt top: Double? = nil) {
            guard !series.points.isEmpty else { return }
            let pts = series.points.map { "\(px($0.0)),\(py(min($0.1, top ?? $0.1), lo, hi))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(series.color)\" stroke-width=\"1.6\"\(series.dashAttribute) points=\"\(pts)\"/>\n"
            if series.dots || series.points.count == 1 {
                for q in series.points { s += "<circle cx=\"\(px(q.0))\" cy=\"\(py(min(q.1, top ?? q.1), lo, hi))\" r=\"3.5\" fill=\"\(series.color)\"/>" }
            }
            if let top {
                for q in series.points where q.1 > top {
                    let x = px(q.0), y = py(top, lo, hi)
                    s += "<path d=\"M\(x - 5),\(y + 8) L\(x),\(y) L\(x + 5),\(y + 8) Z\" fill=\"\(markColor)\"/>"
                }
            }
        }
        for m in p.failedEvaluations { s += cross(px(m), mt + 6, color: failedColor) }
        for m in p.marks {
            s += "<line x1=\"\(px(m))\" y1=\"\(mt)\" x2=\"\(px(m))\" y2=\"\(bottom)\" stroke=\"\(markColor)\" stroke-width=\"1.5\" opacity=\"0.6\"/>\n"
        }
        for series in p.left { curve(series, y0, y1, clippedAt: clip) }
        for series in p.right { curve(series, 0, 1) }
        return (s, bottom + mb - top)
    }

    /// The series' legend names, "(= NAME)" added to one whose every point is an earlier
    /// series' on the same axis: it is drawn over that one (several sets at 0 % exact match),
    /// whose line would otherwise be nowhere to be seen without a word.
    static func legendNames(_ series: [Series]) -> [String] {
        series.indices.map { i in
            let s = series[i]
            let twin = series[..<i].first { t in
                !t.points.isEmpty && t.points.count == s.points.count && zip(t.points, s.points).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
            }
            return twin.map { "\(s.name) (= \($0.name))" } ?? s.name
        }
    }

    /// Where a panel's left axis stops when isolated spikes of the train loss would flatten the
    /// rest (a loss of 13 at one step put a curve of 5.5 → 0.3 in the axis' bottom fifth). Judged
    /// after the first tenth of the steps, whose fall from the initial loss is the curve's: when
    /// the largest later value is beyond their 95th percentile by 1.5 × the span below it, the
    /// axis stops at that percentile + a quarter of the span — or higher, at the first tenth's
    /// largest value or any other series' (a held-out set that rises is never cut) — provided
    /// every value above it is a lone spike, both neighbours below: a rise that lasts (a run
    /// diverging late) keeps the whole range, as does a run whose values are mostly huge.
    static func clipTop(_ series: [Series]) -> Double? {
        let points = series.filter(\.clippable).flatMap(\.points).sorted { $0.0 < $1.0 }
        guard let first = points.first?.0, let last = points.last?.0, last > first else { return nil }
        let cut = first + 0.1 * (last - first)
        let later = points.filter { $0.0 > cut }.map(\.1).sorted()
        guard later.count >= 10 else { return nil }
        let q = later[Int(0.95 * Double(later.count - 1))], span = q - later[0]
        let others = series.filter { !$0.clippable }.flatMap(\.points).map(\.1)
        let top = ([q + 0.25 * span] + points.filter { $0.0 <= cut }.map(\.1) + others).max()!
        guard span > 0, let largest = later.last, largest > q + 1.5 * span, largest > top else { return nil }
        for s in series where s.clippable {
            for (i, p) in s.points.enumerated() where p.1 > top {
                if i > 0 && s.points[i - 1].1 > top { return nil }
                if i + 1 < s.points.count && s.points[i + 1].1 > top { return nil }
            }
        }
        return top
    }

    /// Text content as XML 1.0 takes it: `&`, `<` and `>` escaped (a model path holding `]]>`
    /// made the file unreadable), and characters XML forbids (control characters other than
    /// tab and line breaks, U+FFFE, U+FFFF) shown as U+FFFD.
    static func escape(_ t: String) -> String {
        var out = ""
        for c in t.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\t", "\n", "\r": out.unicodeScalars.append(c)
            case _ where c.value < 0x20 || c.value == 0xFFFE || c.value == 0xFFFF: out += "\u{FFFD}"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
