"""Inline SVG charts (no script, no network): bars with ± std whiskers and a dot per seed, or
training curves. Every chart carries class="lab-chart" and draws at least one mark element
(rect or polyline with class="mark"), which `scripts/lab --check` looks for."""
from html import escape

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 300, 60, 20, 30, 70


def nice_max(v):
    if v <= 0:
        return 1.0
    # The smallest 1, 2, 2.5 or 5 × 10^n at or above v (by magnitude first: looping over the
    # multipliers outside gave 10 for 1.1 and 100 for 11, the curves in the axis' bottom tenth).
    for exp in range(-4, 7):
        for step in (1, 2, 2.5, 5):
            top = step * 10 ** exp
            if top >= v:
                return top
    return v


def step_ticks(xmax):
    """Whole steps from 0 to xmax, 1, 2 or 5 × 10^n apart, about four intervals (they were
    xmax/4 apart: 1.5, 4.5, 12.5 and 37.5 steps)."""
    raw = max(xmax / 4, 1)
    mag = 10 ** len(str(int(raw))) // 10
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return list(range(0, int(xmax) + 1, step))


def value_ticks(lo, hi):
    """Multiples of the smallest 1, 2, 2.5 or 5 × 10^n that cuts lo..hi into at most six
    intervals (the axis was cut in quarters: 1.25, 3.75 and 6.25 % on axes to 5 and 25 %)."""
    raw = (hi - lo) / 6
    step = next(m * 10 ** e for e in range(-6, 9) for m in (1, 2, 2.5, 5) if m * 10 ** e >= raw)
    k = -int(-lo // step)   # ceil(lo / step)
    ticks = []
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 10))
        k += 1
    return ticks


def axis(lo, hi, label):
    out = []
    for v in value_ticks(lo, hi):
        y = TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / (hi - lo))
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{v:.3g}</text>')
    # A long label in a smaller font, so it fits the 260 px either side of its centre allows
    # (about 0.6 em per character): psft's was cut to "…sampled entropy (nats/toke".
    size = min(12.0, 250 / (0.6 * max(len(label), 1)))
    out.append(f'<text x="14" y="{TOP + (H - TOP - BOTTOM) / 2}" font-size="{size:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + (H - TOP - BOTTOM) / 2})">{escape(label)}</text>')
    return out


def svg(body, title):
    # The title is drawn as well: a chart opened on its own (charts/<claim>.svg) named nothing.
    # A long one (a claim's statement) in a smaller font, cut at 8 px (0.6 em per character).
    shown = title if len(title) <= (W - 20) / (0.6 * 8) else title[:int((W - 20) / (0.6 * 8)) - 1] + "…"
    size = max(8.0, min(12.0, (W - 20) / (0.6 * max(len(shown), 1))))
    return (f'<svg class="lab-chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}" font-family="sans-serif"><title>{escape(title)}</title>'
            f'<rect width="{W}" height="{H}" fill="white"/>'
            f'<text x="{W / 2}" y="16" font-size="{size:.1f}" text-anchor="middle">{escape(shown)}</text>' + "".join(body) + "</svg>")


def bars(title, groups, series, numbers, ylabel):
    """groups: arm names; series: measure names; numbers["arm.measure"] = summary."""
    top = nice_max(max([n["mean"] + n["std"] for n in numbers.values()] + [max(n["values"]) for n in numbers.values()]))
    lo = min(0.0, min(min(n["values"]) for n in numbers.values()))
    scale = lambda v: TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / (top - lo))
    body = axis(lo, top, ylabel)
    gw = (W - LEFT - RIGHT) / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    for gi, g in enumerate(groups):
        x0 = LEFT + gi * gw + gw * 0.1
        body.append(f'<text x="{LEFT + gi * gw + gw / 2:.1f}" y="{H - BOTTOM + 16}" font-size="11" '
                    f'text-anchor="middle">{escape(g)}</text>')
        for si, s in enumerate(series):
            n = numbers.get(f"{g}.{s}")
            if n is None:
                continue
            x = x0 + si * bw
            y, y0 = scale(n["mean"]), scale(max(lo, 0.0))
            body.append(f'<rect class="mark" x="{x:.1f}" y="{min(y, y0):.1f}" width="{bw * 0.9:.1f}" '
                        f'height="{max(abs(y0 - y), 0.5):.1f}" fill="{COLORS[si % len(COLORS)]}">'
                        f'<title>{escape(g)} {escape(s)}: {n["mean"]:.4g} ± {n["std"]:.2g}</title></rect>')
            cx = x + bw * 0.45
            body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{scale(n["mean"] - n["std"]):.1f}" '
                        f'y2="{scale(n["mean"] + n["std"]):.1f}" stroke="black"/>')
            for v in n["values"]:
                body.append(f'<circle cx="{cx:.1f}" cy="{scale(v):.1f}" r="2.5" fill="black" fill-opacity="0.6"/>')
    if len(series) > 1:
        body += legend(series)
    return svg(body, title)


def lines(title, curves, ylabel):
    """curves: name -> [[step, value], ...]."""
    points = [p for c in curves.values() for p in c]
    xmax = max(p[0] for p in points) or 1
    top = nice_max(max(p[1] for p in points))
    lo = min(0.0, min(p[1] for p in points))
    body = axis(lo, top, ylabel)
    body.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - BOTTOM + 30}" font-size="12" text-anchor="middle">step</text>')
    for t in step_ticks(xmax):
        body.append(f'<text x="{LEFT + (W - LEFT - RIGHT) * t / xmax:.1f}" y="{H - BOTTOM + 14}" font-size="11" '
                    f'text-anchor="middle">{t}</text>')
    for i, (name, c) in enumerate(curves.items()):
        pts = " ".join(f"{LEFT + (W - LEFT - RIGHT) * s / xmax:.1f},"
                       f"{TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / (top - lo)):.1f}" for s, v in c)
        body.append(f'<polyline class="mark" points="{pts}" fill="none" stroke="{COLORS[i % len(COLORS)]}" stroke-width="2"/>')
    body += legend(list(curves))
    return svg(body, title)


def legend(names):
    """One row under the plot, each entry as wide as its name (evenly spaced, a long name ran
    into the next), in a smaller font when the row would not fit."""
    size = 11.0
    width = lambda n, f: 16 + 0.62 * f * len(n) + 14
    room = W - LEFT - RIGHT + 10
    total = sum(width(n, size) for n in names)
    if total > room:
        size = max(7.0, size * (room - 30 * len(names)) / (total - 30 * len(names)))
    out, x = [], LEFT
    for i, name in enumerate(names):
        out.append(f'<rect x="{x:.1f}" y="{H - 22}" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>'
                   f'<text x="{x + 16:.1f}" y="{H - 12}" font-size="{size:.1f}">{escape(name)}</text>')
        x += width(name, size)
    return out


def claim_chart(result):
    """The chart a claim's recipe asks for ("bars" over measures, or "lines" of a training metric)."""
    chart = result.get("chart") or {}
    if chart.get("type") == "lines" and result.get("curves"):
        return lines(result["claim"], result["curves"], chart.get("label", chart["train"]))
    measures = chart.get("measures") or sorted({k.rpartition(".")[2] for k in result["numbers"]})
    arms = chart.get("arms") or list(dict.fromkeys(k.rpartition(".")[0] for k in result["numbers"]))
    numbers = {k: v for k, v in result["numbers"].items()
               if k.rpartition(".")[0] in arms and k.rpartition(".")[2] in measures}
    return bars(result["claim"], arms, measures, numbers, chart.get("label", ", ".join(measures)))
