"""One claim's experiment: its data sets, every arm at every seed, the measures, the verdict.

An arm fine-tunes the strong or weak base on one of the claim's data sets with the claim's and
the arm's flags (an arm without "data" is the base model itself, measured as it is). A measure
is read from `sft-dist eval` on a data set ({"eval": set, "key": "eval_accuracy"}, optionally
"minus" another key), from the training metrics ({"train": "kl_ref", "window": [0.8, 1]}: the
mean over that share of the steps), or is the sampled-answer entropy ({"entropy": set})."""
import os

import rules
from sftdist import digest, flag_args, training_rows


class Experiment:
    def __init__(self, claim, lab, sft, bases, out, log):
        self.c, self.lab, self.sft, self.bases, self.log = claim, lab, sft, bases, log
        self.dir = os.path.join(out, "runs", claim["id"])
        self.seeds = lab["seeds"]
        self.paths = {}

    def run(self):
        self.paths = {name: self.sft.make_data(spec) for name, spec in self.c["data"].items()}
        values, runs = {}, {}
        for arm in self.c["arms"]:
            runs[arm["name"]] = [self.run_arm(arm, seed) for seed in self.seeds]
            for mname, m in self.c["measures"].items():
                if "train" in m and not arm.get("data"):
                    continue
                values[f"{arm['name']}.{mname}"] = [self.measure(m, mname, arm, run_dir, seed)
                                                    for run_dir, seed in zip(runs[arm["name"]], self.seeds)]
        verdict, parts = rules.verdict(self.c["rule"], values)
        result = {k: self.c[k] for k in ("id", "paper", "claim", "experiment", "recipe")}
        result.update({"verdict": verdict, "rule": rules.describe(self.c["rule"]), "rule_spec": self.c["rule"],
                       "seeds": self.seeds, "parts": parts,
                       "numbers": {k: rules.summary(v) for k, v in values.items()},
                       "chart": self.c.get("chart", {}), "curves": self.curves(runs)})
        return result

    def base_dir(self, arm):
        return self.bases[arm.get("base", "strong")]

    def run_arm(self, arm, seed):
        if not arm.get("data"):
            run_dir = os.path.join(self.dir, f"{arm['name']}-{self.sft.key([self.base_dir(arm)])}", f"seed-{seed}")
            os.makedirs(run_dir, exist_ok=True)
            return run_dir
        train = self.c.get("train", {})
        config = os.path.join(self.sft.root, train.get("config", self.lab["finetune_config"]))
        steps = arm.get("steps", train.get("steps"))
        flags = dict(train.get("flags", {}))
        flags.update(arm.get("flags", {}))
        subst = {"strong": self.bases["strong"], "weak": self.bases["weak"], "base": self.base_dir(arm)}
        common = ["--config", config, "--model", self.base_dir(arm), "--data", self.paths[arm["data"]],
                  "--heldout", self.paths[train.get("heldout", arm["data"])], "--steps", str(steps)]
        common += flag_args(flags, subst)
        run_dir = os.path.join(self.dir, f"{arm['name']}-{self.sft.key(common)}", f"seed-{seed}")
        self.sft.train(run_dir, common + ["--seed", str(seed)])
        return run_dir

    def model(self, arm, run_dir):
        return os.path.join(run_dir, "model") if arm.get("data") else self.base_dir(arm)

    def measure(self, m, name, arm, run_dir, seed):
        if "train" in m:
            rows = [r for r in training_rows(run_dir) if m["train"] in r]
            if not rows:
                raise SystemExit(f"lab: {run_dir}/metrics.jsonl has no {m['train']!r}")
            lo, hi = m.get("window", [0.9, 1.0])
            n = len(rows)
            chosen = rows[int(lo * n):max(int(hi * n), int(lo * n) + 1)]
            return sum(r[m["train"]] for r in chosen) / len(chosen)
        model = self.model(arm, run_dir)
        if "entropy" in m:
            r = self.sft.sampled_entropy(os.path.join(run_dir, f"entropy-{name}.json"), model,
                                         self.paths[m["entropy"]], m["examples"], seed)
            return r["sampled_entropy"]
        # A base model's greedy answers do not depend on the seed: evaluated once, in the arm's folder.
        where = run_dir if arm.get("data") or m.get("samples") else os.path.dirname(run_dir)
        r = self.sft.eval(os.path.join(where, f"eval-{name}-{digest(m)}.json"), model, self.paths[m["eval"]],
                          m["examples"], m.get("samples", 0), m.get("pass_k"), seed)
        value = r[m["key"]]
        if "minus" in m:
            value -= r[m["minus"]]
        return value

    def curves(self, runs):
        """For a "lines" chart: the training metric per step, mean over seeds, per arm."""
        chart = self.c.get("chart", {})
        if chart.get("type") != "lines":
            return {}
        key, curves = chart["train"], {}
        for arm in self.c["arms"]:
            if arm["name"] not in chart.get("arms", [a["name"] for a in self.c["arms"]]) or not arm.get("data"):
                continue
            per_seed = [[(r["step"], r[key]) for r in training_rows(d) if key in r] for d in runs[arm["name"]]]
            n = min(len(s) for s in per_seed)
            curves[arm["name"]] = [[per_seed[0][i][0], sum(s[i][1] for s in per_seed) / len(per_seed)] for i in range(n)]
        return curves
