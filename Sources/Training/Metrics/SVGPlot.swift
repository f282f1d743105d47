import Foundation

/// A dependency-free line chart of a run's metrics (train loss per step, held-out loss and
/// exact match at each evaluation), written next to metrics.jsonl as `loss.svg` so a run can
/// be looked at in any browser without a Python plotting stack.
public enum SVGPlot {
    public struct Series {
        public var name: String, color: String, points: [(Double, Double)], dots: Bool, dashed: Bool
        public init(name: String, color: String, points: [(Double, Double)], dots: Bool = false, dashed: Bool = false) {
            self.name = name; self.color = color; self.points = points; self.dots = dots; self.dashed = dashed
        }
    }

    /// Builds the standard chart from metrics records (see MetricsLog.read); `sets` are the
    /// named held-out sets (`--eval-data`), each with its loss and exact match.
    public static func lossChart(records: [[String: Double]], title: String, sets: [String] = []) -> String {
        let train = points(records, "loss"), eval = points(records, "eval_loss"), em = points(records, "eval_accuracy")
        var left = [Series(name: "train loss", color: "#1f77b4", points: train),
                    Series(name: "held-out loss", color: "#d62728", points: eval, dots: true)]
        var right = em.isEmpty ? [] : [Series(name: "held-out accuracy", color: "#2ca02c", points: em, dots: true)]
        for (i, name) in sets.enumerated() {
            let color = setColors[i % setColors.count]
            left.append(Series(name: "\(name) loss", color: color, points: points(records, "eval_\(name)_loss"), dots: true))
            let acc = points(records, "eval_\(name)_accuracy")
            if !acc.isEmpty { right.append(Series(name: "\(name) accuracy", color: color, points: acc, dots: true, dashed: true)) }
        }
        return render(title: title, left: left, right: right)
    }

    /// Colours of the named sets' series (the main ones use blue, red and green).
    static let setColors = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]

    /// (step, value) of every record that has `key`.
    static func points(_ records: [[String: Double]], _ key: String) -> [(Double, Double)] {
        records.compactMap { r -> (Double, Double)? in
            guard let s = r["step"], let v = r[key] else { return nil }; return (s, v)
        }
    }

    public static func render(title: String, left: [Series], right: [Series]) -> String {
        let w = 760.0, h = 420.0, ml = 60.0, mr = right.isEmpty ? 20.0 : 60.0, mt = 40.0, mb = 50.0
        let all = left.flatMap(\.points)
        let xs = all.map(\.0) + right.flatMap(\.points).map(\.0)
        let x0 = xs.min() ?? 0, x1 = max(xs.max() ?? 1, x0 + 1)
        let y0 = min(all.map(\.1).min() ?? 0, 0), y1 = max(all.map(\.1).max() ?? 1, y0 + 1e-9)
        func px(_ x: Double) -> Double { ml + (x - x0) / (x1 - x0) * (w - ml - mr) }
        func py(_ y: Double, _ lo: Double, _ hi: Double) -> Double { h - mb - (y - lo) / (hi - lo) * (h - mt - mb) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(w / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        for i in 0...5 {  // grid and left axis
            let y = y0 + (y1 - y0) * Double(i) / 5
            let yy = py(y, y0, y1)
            s += "<line x1=\"\(ml)\" y1=\"\(yy)\" x2=\"\(w - mr)\" y2=\"\(yy)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(ml - 6)\" y=\"\(yy + 4)\" text-anchor=\"end\">\(String(format: "%.2f", y))</text>\n"
            let x = x0 + (x1 - x0) * Double(i) / 5
            s += "<text x=\"\(px(x))\" y=\"\(h - mb + 18)\" text-anchor=\"middle\">\(Int(x))</text>\n"
            if !right.isEmpty {
                s += "<text x=\"\(w - mr + 6)\" y=\"\(yy + 4)\" fill=\"#2ca02c\">\(String(format: "%.0f%%", Double(i) * 20))</text>\n"
            }
        }
        s += "<text x=\"\((ml + w - mr) / 2)\" y=\"\(h - 12)\" text-anchor=\"middle\">step</text>\n"
        s += "<line x1=\"\(ml)\" y1=\"\(h - mb)\" x2=\"\(w - mr)\" y2=\"\(h - mb)\" stroke=\"black\"/>"
        s += "<line x1=\"\(ml)\" y1=\"\(mt)\" x2=\"\(ml)\" y2=\"\(h - mb)\" stroke=\"black\"/>\n"
        var legend = 0.0, legendRow = 0.0
        func draw(_ series: Series, _ lo: Double, _ hi: Double) {
            guard !series.points.isEmpty else { return }
            let pts = series.points.map { "\(px($0.0)),\(py($0.1, lo, hi))" }.joined(separator: " ")
            let dash = series.dashed ? " stroke-dasharray=\"5,3\"" : ""
            s += "<polyline fill=\"none\" stroke=\"\(series.color)\" stroke-width=\"1.6\"\(dash) points=\"\(pts)\"/>\n"
            if series.dots {
                for p in series.points { s += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1, lo, hi))\" r=\"3.5\" fill=\"\(series.color)\"/>" }
            }
            let width = Double(series.name.count) * 7 + 40
            if legend > 0 && ml + 12 + legend + width > w - mr { legend = 0; legendRow += 16 }  // wrap: many named sets
            s += "<rect x=\"\(ml + 12 + legend)\" y=\"\(mt + 4 + legendRow)\" width=\"14\" height=\"4\" fill=\"\(series.color)\"/>"
            s += "<text x=\"\(ml + 30 + legend)\" y=\"\(mt + 10 + legendRow)\">\(escape(series.name))</text>\n"
            legend += width
        }
        for series in left { draw(series, y0, y1) }
        for series in right { draw(series, 0, 1) }
        return s + "</svg>\n"
    }

    static func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}
