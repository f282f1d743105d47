"""scripts/lab's command line: pretrain (or reuse) the base, run each claim, write lab.json,
report.html and one SVG per claim (charts/<id>.svg)."""
import argparse
import json
import os
import sys
import time

import base
from base import children_cpu
import recipes
import report
import rules
from charts import claim_chart
from experiment import Experiment
from sftdist import SFTDist, read_json, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(argv):
    p = argparse.ArgumentParser(prog="scripts/lab", description="Reproduce the seed papers' claims (recipes/lab/).")
    p.add_argument("--quick", action="store_true", help="every claim at reduced size (same as --size quick)")
    p.add_argument("--size", choices=recipes.SIZES, help="tiny (smoke test), quick or full (default full)")
    p.add_argument("--only", help="comma-separated claim ids")
    p.add_argument("--out", default="lab-out", help="output directory (default lab-out); the base model is cached here")
    p.add_argument("-n", dest="ranks", type=int, default=2, help="MPI ranks per sft-dist run (default 2)")
    p.add_argument("--check", metavar="DIR", help="open DIR/report.html in headless Chromium and check it")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--markdown", metavar="DIR", help="print DIR/lab.json's summary table in Markdown")
    p.add_argument("--reverdict", metavar="DIR", help="decide DIR/lab.json's verdicts again from its numbers and "
                   "written rules; rewrite lab.json, report.html and the charts")
    a = p.parse_args(argv)
    if a.quick and a.size and a.size != "quick":
        p.error("--quick and --size disagree")
    a.size = "quick" if a.quick else (a.size or "full")
    if a.ranks < 1:
        p.error("-n must be at least 1")
    return a


def main(argv):
    a = parse(argv)
    if a.check:
        from check import check
        return check(a.check)
    if a.markdown:
        path = os.path.join(a.markdown, "lab.json")
        if not os.path.isfile(path):
            raise SystemExit(f"lab: --markdown: {path} does not exist (give the --out of a finished lab run)")
        with open(path, encoding="utf-8") as f:
            print(report.markdown_summary(json.load(f)))
        return 0
    if a.reverdict:
        return reverdict(a.reverdict)
    claims = recipes.load_claims(ROOT, a.size, a.only)
    if a.list:
        for c in claims:
            print(f"{c['id']}: {c['claim']}")
        return 0
    lab = recipes.load_lab(ROOT, a.size)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    start = time.time()

    def log(msg):
        print(f"[lab {time.time() - start:6.0f}s] {msg}", file=sys.stderr, flush=True)

    sft = SFTDist(ROOT, out, a.ranks, log)
    bases = base.pretrain(lab, sft)
    results = []
    for c in claims:
        log(f"claim {c['id']}")
        t, cpu = time.time(), children_cpu()
        r = Experiment(c, lab, sft, bases, out, log).run()
        r["seconds"], r["cpu_s"] = add_cost(os.path.join(out, "runs", c["id"]), time.time() - t, children_cpu() - cpu)
        results.append(r)
        log(f"claim {c['id']}: {r['verdict']} ({r['seconds']:.0f} s, {r['cpu_s']:.0f} CPU s)")
    doc = {"size": a.size, "ranks": a.ranks, "seeds": lab["seeds"], "wall_s": time.time() - start,
           "cpu_s": children_cpu(), "base": bases, "claims": results}
    write_outputs(out, doc)
    log(f"wrote {out}/lab.json and {out}/report.html")
    return 0


def add_cost(claim_dir, seconds, cpu_s):
    """A claim's cost over every invocation in this output directory (runs/<id>/lab-cost.json): a
    cached claim costs almost nothing when run again, so its report keeps what its runs took."""
    path = os.path.join(claim_dir, "lab-cost.json")
    cost = read_json(path) if os.path.exists(path) else {"seconds": 0.0, "cpu_s": 0.0}
    cost = {"seconds": cost["seconds"] + seconds, "cpu_s": cost["cpu_s"] + cpu_s}
    os.makedirs(claim_dir, exist_ok=True)
    write_json(path, cost)
    return cost["seconds"], cost["cpu_s"]


def write_outputs(out, doc):
    write_json(os.path.join(out, "lab.json"), doc)
    os.makedirs(os.path.join(out, "charts"), exist_ok=True)
    for r in doc["claims"]:
        with open(os.path.join(out, "charts", r["id"] + ".svg"), "w", encoding="utf-8") as f:
            f.write(claim_chart(r))
    with open(os.path.join(out, "report.html"), "w", encoding="utf-8") as f:
        f.write(report.render(doc))
    print(json.dumps({c["id"]: c["verdict"] for c in doc["claims"]}))


def reverdict(out):
    """Every verdict again from lab.json's per-seed numbers and each claim's written rule."""
    if not os.path.exists(os.path.join(out, "lab.json")):
        raise SystemExit(f"lab: --reverdict: {os.path.join(out, 'lab.json')} does not exist (give the --out of a finished lab run)")
    with open(os.path.join(out, "lab.json"), encoding="utf-8") as f:
        doc = json.load(f)
    for c in doc["claims"]:
        values = {k: n["values"] for k, n in c["numbers"].items()}
        c["verdict"], c["parts"] = rules.verdict(c["rule_spec"], values)
        c["numbers"] = {k: rules.summary(v) for k, v in values.items()}
        c["rule"] = rules.describe(c["rule_spec"])
    write_outputs(out, doc)
    return 0
