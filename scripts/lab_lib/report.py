"""report.html: one self-contained page (inline CSS and SVG, no script, no network)."""
from html import escape

from charts import claim_chart

STYLE = """body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.reproduced{color:#1a7f37;font-weight:bold}.not-reproduced{color:#cf222e;font-weight:bold}
.inconclusive{color:#9a6700;font-weight:bold}section{border-top:2px solid #eee;margin-top:2em}
code{background:#f4f4f4;padding:0 3px}"""


def verdict_span(v):
    return f'<span class="{v.replace(" ", "-")}">{escape(v)}</span>'


def summary_table(lab):
    rows = ["<table><tr><th>claim</th><th>paper</th><th>verdict</th></tr>"]
    for c in lab["claims"]:
        rows.append(f'<tr><td><a href="#{escape(c["id"])}">{escape(c["id"])}</a></td>'
                    f'<td>{escape(c["paper"])}</td><td>{verdict_span(c["verdict"])}</td></tr>')
    return "".join(rows) + "</table>"


def numbers_table(c):
    rows = ["<table><tr><th>arm.measure</th><th>mean ± std</th><th>per seed</th></tr>"]
    for key, n in c["numbers"].items():
        rows.append(f"<tr><td><code>{escape(key)}</code></td><td>{n['mean']:.4f} ± {n['std']:.4f}</td>"
                    f"<td>{', '.join(f'{v:.4f}' for v in n['values'])}</td></tr>")
    rows.append("</table><table><tr><th>rule part</th><th>mean difference</th><th>SE</th><th>status</th></tr>")
    for p in c["parts"]:
        op = ">" if p["expect"] == "greater" else f"≥ (margin {p['margin']})"
        rows.append(f"<tr><td><code>{escape(p['a'])}</code> {op} <code>{escape(p['b'])}</code></td>"
                    f"<td>{p['mean_diff']:+.4f}</td><td>{p['se']:.4f}</td><td>{escape(p['status'])}</td></tr>")
    return "".join(rows) + "</table>"


def cost(c):
    """"; 120 s wall, 30 CPU s" when the run recorded them (older lab.json files did not)."""
    if "cpu_s" not in c:
        return ""
    return f"; {c.get('seconds', 0):.0f} s wall, {c['cpu_s']:.0f} CPU s"


def claim_section(c):
    return (f'<section id="{escape(c["id"])}"><h2>{escape(c["id"])}: {verdict_span(c["verdict"])}</h2>'
            f'<p><b>Paper:</b> {escape(c["paper"])}</p><p><b>Claim:</b> {escape(c["claim"])}</p>'
            f'<p><b>Experiment:</b> {escape(c["experiment"])} (recipe <code>{escape(c["recipe"])}</code>, '
            f'seeds {", ".join(str(s) for s in c["seeds"])}{cost(c)})</p>'
            f'{claim_chart(c)}<p><b>Rule (written before the run):</b> {escape(c["rule"])}</p>'
            f'{numbers_table(c)}</section>')


def render(lab):
    base = lab["base"]
    # The invocation's own time, and the claims' runs summed over the invocations that made
    # them (a fully cached re-run said "wall time 0 s" alone).
    runs = ""
    if lab["claims"] and all("cpu_s" in c for c in lab["claims"]):
        runs = (f"; the claims' runs took {sum(c.get('seconds', 0) for c in lab['claims']):.0f} s wall, "
                f"{sum(c['cpu_s'] for c in lab['claims']):.0f} CPU s in all")
    head = (f"<p>Size <code>{escape(lab['size'])}</code>, {lab['ranks']} rank(s) per run; this invocation: wall time "
            f"{lab['wall_s']:.0f} s ({lab.get('cpu_s', 0):.0f} CPU s){runs}. Base model: pretrained {base['steps']} steps on a broad built-in mix "
            f"(strong = final, weak = step {base['weak_step']} of the same run). Numbers are mean ± std over seeds.</p>")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>sft-dist lab</title>'
            f'<style>{STYLE}</style></head><body><h1>sft-dist lab</h1>{head}{summary_table(lab)}'
            + "".join(claim_section(c) for c in lab["claims"]) + "</body></html>")


def markdown_summary(lab):
    """The report's summary table in Markdown (for the README), with each rule part's numbers."""
    cpu = all("cpu_s" in c for c in lab["claims"])
    spent = ""
    if cpu:
        spent = (f" The claims' runs took {sum(c['cpu_s'] for c in lab['claims']) / 60:.1f} CPU min"
                 + (f", the base model {lab['base']['cpu_s'] / 60:.1f}" if "cpu_s" in lab["base"] else "") + ".")
    lines = [f"Size `{lab['size']}`, {lab['ranks']} ranks per run, seeds {', '.join(str(s) for s in lab['seeds'])}; "
             f"this invocation: wall time {lab['wall_s'] / 60:.1f} min"
             + (f", {lab['cpu_s'] / 60:.1f} CPU min." if "cpu_s" in lab else ".") + spent, "",
             "| claim | paper | rule parts: mean ± std (a − b: mean ± SE, status) | verdict |" + (" CPU min |" if cpu else ""),
             "|---|---|---|---|" + ("---|" if cpu else "")]
    for c in lab["claims"]:
        parts = []
        for p in c["parts"]:
            a, b = c["numbers"][p["a"]], c["numbers"][p["b"]]
            op = ">" if p["expect"] == "greater" else f"≥ (−{p['margin']})"
            parts.append(f"`{p['a']}` {a['mean']:.3f} ± {a['std']:.3f} {op} `{p['b']}` {b['mean']:.3f} ± {b['std']:.3f} "
                         f"({p['mean_diff']:+.3f} ± {p['se']:.3f}, {p['status']})")
        lines.append(f"| {c['id']} | {c['paper']} | {'<br>'.join(parts)} | **{c['verdict']}** |"
                     + (f" {c['cpu_s'] / 60:.1f} |" if cpu else ""))
    return "\n".join(lines)
