"""Verdict rules: written in each claim's recipe before the run, applied here to the numbers.

A rule is a list of parts. Each part compares two numbers of the claim ("arm.measure"), paired
by seed: d_s = a_s - b_s for every seed s, mean d and its standard error SE = sd(d) / sqrt(n).

  expect "greater"                 holds when mean d > z*SE and mean d > 0,
                                   is contradicted when mean d < -z*SE and mean d < 0.
  expect "not_less" (margin m)     holds when mean d - z*SE > -m (a is not worse than b by m),
                                   is contradicted when mean d + z*SE < -m.

Otherwise the part is undecided. The claim is "reproduced" when every part holds, "not
reproduced" when any part is contradicted, else "inconclusive". z is 2 unless the rule says.
"""
import math

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


def mean(xs):
    return sum(xs) / len(xs)


def std(xs):
    """Sample standard deviation (n - 1); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def summary(xs):
    return {"values": xs, "mean": mean(xs), "std": std(xs), "n": len(xs)}


def part_status(part, diffs, z):
    d = mean(diffs)
    se = std(diffs) / math.sqrt(len(diffs))
    expect = part["expect"]
    if expect == "greater":
        if d > z * se and d > 0:
            status = "holds"
        elif d < -z * se and d < 0:
            status = "contradicted"
        else:
            status = "undecided"
    elif expect == "not_less":
        margin = float(part.get("margin", 0))
        if d - z * se > -margin:
            status = "holds"
        elif d + z * se < -margin:
            status = "contradicted"
        else:
            status = "undecided"
    else:
        raise ValueError(f"rule part expects 'greater' or 'not_less', got {expect!r}")
    return {"a": part["a"], "b": part["b"], "expect": expect, "margin": part.get("margin"),
            "diffs": diffs, "mean_diff": d, "se": se, "status": status}


def verdict(rule, values):
    """values: "arm.measure" -> list of per-seed numbers (same seed order for every key)."""
    z = float(rule.get("z", 2))
    parts = []
    for part in rule["parts"]:
        a, b = values[part["a"]], values[part["b"]]
        if len(a) != len(b) or len(a) < 2:
            raise ValueError(f"rule part {part['a']} vs {part['b']}: need the same >= 2 seeds, got {len(a)} and {len(b)}")
        parts.append(part_status(part, [x - y for x, y in zip(a, b)], z))
    statuses = [p["status"] for p in parts]
    if all(s == "holds" for s in statuses):
        v = REPRODUCED
    elif any(s == "contradicted" for s in statuses):
        v = NOT_REPRODUCED
    else:
        v = INCONCLUSIVE
    return v, parts


def describe(rule):
    """The rule in words, as it is written in the recipe (shown in lab.json and the report)."""
    z = rule.get("z", 2)
    words = []
    for p in rule["parts"]:
        if p["expect"] == "greater":
            words.append(f"{p['a']} > {p['b']}")
        else:
            words.append(f"{p['a']} >= {p['b']} - {p.get('margin', 0)}")
    return (f"paired by seed; reproduced if every part holds by more than {z} standard errors of the "
            f"per-seed difference ({'; '.join(words)}); not reproduced if any part is contradicted by "
            f"more than {z} SE; otherwise inconclusive")
