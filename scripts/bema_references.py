"""Independent references for sft-dist's --bema (run through scripts/make-bema-references).

TRL 1.16's own `BEMACallback` runs on a two-tensor module whose weights are set, before each
`on_step_end`, to a fixed random sequence θ_1 … θ_T (θ_0 at `on_train_begin`), with
`state.global_step` = t as the Trainer sets it. After every step the callback's running model —
what it saves as `output_dir/bema` — is recorded, so the schedule (β_t, α_t, lag, multiplier,
the floor on β), the burn-in reset at `update_after` and the update interval are TRL's code.
The reference-model cases run TRL's experimental `bema_for_ref_model.BEMACallback` with
`update_ref_model=True` beside a reference module of other weights, and record the reference
after every step (the average copied into it every `ref_model_update_freq` steps).

Writes Tests/TrainingTests/Fixtures/bema-reference.json.
"""
import os
import types

import torch
from trl import BEMACallback
from trl.experimental.bema_for_ref_model import BEMACallback as BEMAForRefModelCallback

from reference_fixtures import fixture_path, write_fixture

OUT = os.environ.get("BEMA_FIXTURE_OUT") or fixture_path("bema-reference.json")
STEPS = 9
SHAPES = {"a": (3, 2), "b": (5,)}


class Tiny(torch.nn.Module):
    """`type(model)(model.config)` is how the callback copies the model."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.a = torch.nn.Parameter(torch.zeros(*SHAPES["a"]))
        self.b = torch.nn.Parameter(torch.zeros(*SHAPES["b"]))


CASES = [
    ("freq 2", dict(update_freq=2)),
    ("burn-in 3, freq 2", dict(update_after=3, update_freq=2)),
    ("floor 0.3, multiplier 2, lag 1", dict(update_freq=1, min_ema_multiplier=0.3, multiplier=2.0, lag=1)),
    ("no decay, no bias decay", dict(update_freq=1, ema_power=0.0, bias_power=0.0)),
    ("bias power 8, burn-in 1, freq 3", dict(update_freq=3, update_after=1, bias_power=8.0)),
    ("powers 1.5 and 0.7, lag 0, multiplier 3", dict(update_freq=2, ema_power=1.5, bias_power=0.7, lag=0, multiplier=3.0)),
]

REF_CASES = [
    ("ref every 3 from 2, average every 2", dict(update_freq=2, ref_model_update_freq=3, ref_model_update_after=2)),
    ("ref every 2, average every 3, burn-in 1", dict(update_freq=3, update_after=1, ref_model_update_freq=2)),
]


def run_callback(cb, weights, ref=None):
    """The callback over θ_1 … θ_T; after each step its running model (and the reference)."""
    model = Tiny(types.SimpleNamespace())
    with torch.no_grad():
        for k in SHAPES:
            getattr(model, k).copy_(weights[0][k])
    state = types.SimpleNamespace(global_step=0, is_world_process_zero=True)
    extra = {} if ref is None else {"ref_model": ref}
    cb.on_train_begin(None, state, None, model=model, **extra)
    averages, references = [], []
    for t in range(1, STEPS + 1):
        with torch.no_grad():
            for k in SHAPES:
                getattr(model, k).copy_(weights[t][k])
        state.global_step = t
        cb.on_step_end(None, state, None, model=model, **extra)
        averages.append({k: getattr(cb.running_model, k).detach().flatten().tolist() for k in SHAPES})
        if ref is not None:
            references.append({k: getattr(ref, k).detach().flatten().tolist() for k in SHAPES})
    return averages, references


def main():
    g = torch.Generator().manual_seed(7)
    weights = [{k: torch.randn(*s, generator=g) for k, s in SHAPES.items()} for _ in range(STEPS + 1)]
    cases = []
    defaults = {"update_freq": 400, "ema_power": 0.5, "bias_power": 0.2, "lag": 10, "update_after": 0,
                "multiplier": 1.0, "min_ema_multiplier": 0.0}
    for name, kwargs in CASES:
        averages, _ = run_callback(BEMACallback(**kwargs), weights)
        cases.append({"name": name, "args": {**defaults, **kwargs}, "averages": averages})
    # The reference starts from weights of its own (a --ref-model), θ_0 halved.
    ref_start = {k: 0.5 * weights[0][k] for k in SHAPES}
    ref_cases = []
    for name, kwargs in REF_CASES:
        ref = Tiny(types.SimpleNamespace())
        with torch.no_grad():
            for k in SHAPES:
                getattr(ref, k).copy_(ref_start[k])
        averages, references = run_callback(BEMAForRefModelCallback(update_ref_model=True, **kwargs), weights, ref)
        args = {**defaults, "ref_model_update_freq": 400, "ref_model_update_after": 0, **kwargs}
        ref_cases.append({"name": name, "args": args, "averages": averages, "references": references})
    out = {"shapes": {k: list(s) for k, s in SHAPES.items()},
           "weights": [{k: w[k].flatten().tolist() for k in SHAPES} for w in weights], "cases": cases,
           "reference_start": {k: v.flatten().tolist() for k, v in ref_start.items()}, "reference_cases": ref_cases}
    write_fixture(OUT, out, f"{len(cases)} schedules, {len(ref_cases)} with a reference model, over {STEPS} steps")


if __name__ == "__main__":
    main()
