"""One claim's experiment: its data sets, every arm at every seed, the measures, the verdict.

An arm fine-tunes the strong or weak base on one of the claim's data sets with the claim's and
the arm's flags (an arm without "data" is the base model itself, measured as it is). "model"
names the run's model folder to measure ("model-merged" for LoRA with merge_lora); "from": ARM
starts from that earlier arm's model at the same seed instead of a base (a second stage); a
flag's string may name an earlier arm's model at the same seed as {model[ARM]} (token-clean's
--ref-model: the base tuned on a clean subset by an earlier arm); an
arm with "merge": [ARM, ...] and "weights" is `sft-dist merge` of those arms' models at the
same seed (WiSE-FT). A measure is read from `sft-dist eval` on a data set ({"eval": set, "key":
"eval_accuracy"}, optionally "minus" another key), from the training metrics ({"train":
"kl_ref", "window": [0.8, 1]}: the mean over that share of the steps; "reduce": "sum" sums every
step instead), is the share of the rows that trained with a true field in the data set
({"selected": "corrupted", "data": set}, from the selection's `selected_examples`), or is the
sampled-answer entropy ({"entropy": set})."""
import json
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
            if arm.get("merge"):
                runs[arm["name"]] = [self.merge_arm(arm, runs, i) for i in range(len(self.seeds))]
            else:
                runs[arm["name"]] = [self.run_arm(arm, runs, i) for i in range(len(self.seeds))]
            for mname, m in self.c["measures"].items():
                if ("train" in m or "selected" in m) and not arm.get("data"):
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

    def start(self, arm, runs, i):
        """(model directory, seed-independent name) an arm fine-tunes: a base, or with "from" the
        model of an arm listed before it at the same seed (a second stage)."""
        if arm.get("from"):
            arms = {a["name"]: a for a in self.c["arms"]}
            src = arm["from"]
            return self.model(arms[src], runs[src][i]), os.path.dirname(runs[src][i])
        return self.base_dir(arm), self.base_dir(arm)

    def run_arm(self, arm, runs, i):
        seed = self.seeds[i]
        if not arm.get("data"):
            run_dir = os.path.join(self.dir, f"{arm['name']}-{self.sft.key([self.base_dir(arm)])}", f"seed-{seed}")
            os.makedirs(run_dir, exist_ok=True)
            return run_dir
        train = self.c.get("train", {})
        config = os.path.join(self.sft.root, train.get("config", self.lab["finetune_config"]))
        steps = arm.get("steps", train.get("steps"))
        flags = dict(train.get("flags", {}))
        flags.update(arm.get("flags", {}))
        model, start_name = self.start(arm, runs, i)
        arms = {a["name"]: a for a in self.c["arms"]}
        earlier = {name: self.model(arms[name], dirs[i]) for name, dirs in runs.items()}
        subst = {"strong": self.bases["strong"], "weak": self.bases["weak"], "base": model, "data": self.paths, "model": earlier}
        common = ["--config", config, "--model", start_name, "--data", self.paths[arm["data"]],
                  "--heldout", self.paths[train.get("heldout", arm["data"])], "--steps", str(steps)]
        # The folder is named by the settings with seed-independent names (the start's, an earlier
        # arm's run folder); the run itself starts from, and reads, this seed's models.
        named = dict(subst, model={name: os.path.dirname(dirs[i]) for name, dirs in runs.items()})
        run_dir = os.path.join(self.dir, f"{arm['name']}-{self.sft.key(common + flag_args(flags, named))}", f"seed-{seed}")
        common += flag_args(flags, subst)
        common[common.index("--model") + 1] = model
        self.sft.train(run_dir, common + ["--seed", str(seed)])
        return run_dir

    def merge_arm(self, arm, runs, i):
        """The weighted average of other arms' models at the i-th seed (arms listed earlier)."""
        arms = {a["name"]: a for a in self.c["arms"]}
        models = [self.model(arms[name], runs[name][i]) for name in arm["merge"]]
        sources = [os.path.dirname(runs[name][i]) for name in arm["merge"]]
        run_dir = os.path.join(self.dir, f"{arm['name']}-{self.sft.key([sources, arm['weights']])}", f"seed-{self.seeds[i]}")
        os.makedirs(run_dir, exist_ok=True)
        self.sft.merge(os.path.join(run_dir, "model"), models, arm["weights"])
        return run_dir

    def model(self, arm, run_dir):
        if arm.get("merge"):
            return os.path.join(run_dir, "model")
        return os.path.join(run_dir, arm.get("model", "model")) if arm.get("data") else self.base_dir(arm)

    def measure(self, m, name, arm, run_dir, seed):
        if "selected" in m:
            return self.selected_share(run_dir, m["selected"], self.paths[m["data"]])
        if "train" in m:
            rows = [r for r in training_rows(run_dir) if m["train"] in r]
            if not rows:
                raise SystemExit(f"lab: {run_dir}/metrics.jsonl has no {m['train']!r}")
            if m.get("reduce") == "sum":
                return float(sum(r[m["train"]] for r in rows))
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
        where = run_dir if arm.get("data") or arm.get("merge") or m.get("samples") else os.path.dirname(run_dir)
        r = self.sft.eval(os.path.join(where, f"eval-{name}-{digest(m)}.json"), model, self.paths[m["eval"]],
                          m["examples"], m.get("samples", 0), m.get("pass_k"), seed)
        value = r[m["key"]]
        if "minus" in m:
            value -= r[m["minus"]]
        return value

    @staticmethod
    def selected_share(run_dir, field, data):
        """Share of the trained rows (every step's `selected_examples`: 0-based rows of the training
        file, a row once per time it trained) whose `field` is true in the data set."""
        with open(data, encoding="utf-8") as f:
            flags = [bool(json.loads(line).get(field)) for line in f if line.strip()]
        chosen = [int(i) for r in training_rows(run_dir) for i in str(r.get("selected_examples", "")).split(",") if i]
        if not chosen:
            raise SystemExit(f"lab: {run_dir}/metrics.jsonl has no selected_examples (no --selection?)")
        return sum(flags[i] for i in chosen) / len(chosen)

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
