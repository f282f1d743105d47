"""Independent references for sft-dist's --bema (run through scripts/make-bema-references).

TRL 1.16's own `BEMACallback` runs on a two-tensor module whose weights are set, before each
`on_step_end`, to a fixed random sequence θ_1 … θ_T (θ_0 at `on_train_begin`), with
`state.global_step` = t as the Trainer sets it. After every step the callback's running model —
what it saves as `output_dir/bema` — is recorded, so the schedule (β_t, α_t, lag, multiplier,
the floor on β), the burn-in reset at `update_after` and the update interval are TRL's code.

Writes Tests/TrainingTests/Fixtures/bema-reference.json.
"""
import types

import torch
from trl import BEMACallback

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("bema-reference.json")
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


def main():
    g = torch.Generator().manual_seed(7)
    weights = [{k: torch.randn(*s, generator=g) for k, s in SHAPES.items()} for _ in range(STEPS + 1)]
    cases = []
    for name, kwargs in CASES:
        model = Tiny(types.SimpleNamespace())
        with torch.no_grad():
            for k in SHAPES:
                getattr(model, k).copy_(weights[0][k])
        cb = BEMACallback(**kwargs)
        state = types.SimpleNamespace(global_step=0, is_world_process_zero=True)
        cb.on_train_begin(None, state, None, model=model)
        averages = []
        for t in range(1, STEPS + 1):
            with torch.no_grad():
                for k in SHAPES:
                    getattr(model, k).copy_(weights[t][k])
            state.global_step = t
            cb.on_step_end(None, state, None, model=model)
            averages.append({k: getattr(cb.running_model, k).detach().flatten().tolist() for k in SHAPES})
        args = {"update_freq": 400, "ema_power": 0.5, "bias_power": 0.2, "lag": 10, "update_after": 0,
                "multiplier": 1.0, "min_ema_multiplier": 0.0, **kwargs}
        cases.append({"name": name, "args": args, "averages": averages})
    out = {"shapes": {k: list(s) for k, s in SHAPES.items()},
           "weights": [{k: w[k].flatten().tolist() for k in SHAPES} for w in weights], "cases": cases}
    write_fixture(OUT, out, f"{len(cases)} schedules over {STEPS} steps")


if __name__ == "__main__":
    main()
