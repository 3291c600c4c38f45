"""What the trend judgement costs, and how often noise fools it.

    python bench/trends.py [--runs 7] [--folds 2000] [--plateaus 300] [--json out.json]

1. Cost (microseconds, median of `--runs` runs, each the mean over `--folds` calls; process CPU time,
   so a busy shared machine inflates it less than wall time would):
   - for two runs (`history`: `improving`, the common case, and `hovering`, the worst one), fold one
     epoch of 8 metrics into its state (200 epochs already folded), as the read model does per drained
     epoch; and per epoch when folding 100 at once (a rebuild; one state copy included);
   - `verdict_fields` (what the read model computes when a run is read), `verdict` (the same as a
     `TrendFlags`), and `verdict_fields` with decoding the stored JSON first (orjson + `from_dict`);
   - baseline: copying the state (the floor of any fold that returns a new state) and validating one
     `TrendFlags` from a dict (the floor of any verdict).
2. Noise: `--plateaus` seeded random noisy plateaus (uniform or Gaussian noise, 1-10% of the level, 20-100
   epochs, training loss still falling): the share of runs flagged `is_overfitting` at any epoch from the
   15th on (each would be a wrong alarm), and the share of those epochs flagged `is_plateaued`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from schemas.read_models import TrendFlags  # noqa: E402
from schemas.trend_rules import EpochRow, TrendConfig  # noqa: E402
from schemas.trend_state import TrendState, fold, verdict, verdict_fields  # noqa: E402

NAMES = ("train/loss", "val/loss", "train/accuracy", "val/accuracy", "learning_rate", "gradient_norm",
         "epoch_duration", "val/perplexity")


def history(n: int, seed: int = 0, kind: str = "hovering") -> list[EpochRow]:
    """8 metrics per epoch. `improving`: losses falling steadily with 0.1% noise (the cheap tests settle
    every judgement); `hovering`: losses near zero under additive noise, the worst case (the noise
    estimates behind overfitting and divergence are needed at every epoch)."""
    r = random.Random(seed)
    rows = []
    for e in range(n):
        if kind == "improving":
            train = 2 / math.sqrt(e + 1) * (1 + 0.001 * r.random())
            val = 2.2 / math.sqrt(e + 1) * (1 + 0.001 * r.random())
        else:
            train, val = 1 / (e + 1) + r.random() * 0.01, 1.1 / (e + 1) + r.random() * 0.01
        rows.append(EpochRow(e, {"train/loss": train, "val/loss": val, "train/accuracy": 0.5 + e * 1e-5,
                                 "val/accuracy": 0.5 + e * 1e-5 + r.random() * 0.01, "learning_rate": 1e-3,
                                 "gradient_norm": r.random(), "epoch_duration": 1 + r.random(),
                                 "val/perplexity": 2 + r.random()}))
    return rows


def per_call_us(fn, calls: int, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.process_time()
        for _ in range(calls):
            fn()
        samples.append((time.process_time() - started) / calls * 1e6)
    return statistics.median(samples)


def costs(calls: int, runs: int, kind: str) -> dict[str, float]:
    config = TrendConfig()
    rows = history(200 + calls * runs + 1, kind=kind)
    state = fold(None, rows[:200], config)
    fresh = iter(rows[200:])  # folding is in place: every call folds the next epoch, as a drain does
    batch = rows[200:300]
    out = {f"{kind}_fold_one_epoch_us": per_call_us(lambda: fold(state, [next(fresh)], config), calls, runs),
           f"{kind}_fold_per_epoch_in_batches_of_100_us": per_call_us(lambda: fold(state.copy(), batch, config),
                                                                      max(calls // 100, 5), runs) / 100}
    blob = orjson.dumps(state.to_dict())
    flags = verdict(state, config, "running").model_dump()
    out.update({
        f"{kind}_verdict_fields_us": per_call_us(lambda: verdict_fields(state, config, "running"), calls, runs),
        f"{kind}_verdict_us": per_call_us(lambda: verdict(state, config, "running"), calls, runs),
        f"{kind}_verdict_from_stored_json_us": per_call_us(
            lambda: verdict_fields(TrendState.from_dict(orjson.loads(blob)), config, "stale"), calls, runs),
        f"{kind}_stored_state_bytes": len(blob),
    })
    if kind == "improving":
        out["baseline_copy_state_us"] = per_call_us(state.copy, calls, runs)
        out["baseline_validate_trendflags_us"] = per_call_us(lambda: TrendFlags(**flags), calls, runs)
    return out


def noise(plateaus: int, seed: int = 1) -> dict[str, float]:
    config = TrendConfig()
    r = random.Random(seed)
    ever_overfit, plateau_epochs, judged = 0, 0, 0
    for _ in range(plateaus):
        n, a, floor, uniform = r.randint(20, 100), r.uniform(0.01, 0.1), r.uniform(0.2, 2.0), r.random() < 0.5
        state, alarmed = None, False
        for e in range(n):
            jitter = r.uniform(-a, a) if uniform else r.gauss(0, a / 2)
            row = EpochRow(e, {"val/loss": floor + math.exp(-e / 2) + jitter,
                               "train/loss": 0.4 * floor + floor * math.exp(-e / 25)})
            state = fold(state, [row], config)
            if e >= 15:
                flags = verdict(state, config)
                alarmed |= flags.is_overfitting
                plateau_epochs += flags.is_plateaued
                judged += 1
        ever_overfit += alarmed
    return {"noisy_plateaus": plateaus, "runs_ever_flagged_overfitting": ever_overfit / plateaus,
            "epochs_flagged_plateau": plateau_epochs / judged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--folds", type=int, default=2000)
    parser.add_argument("--plateaus", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              "load_average_1m": os.getloadavg()[0], **costs(args.folds, args.runs, "improving"),
              **costs(args.folds, args.runs, "hovering"), **noise(args.plateaus)}
    for key, value in result.items():
        print(f"{key:40s} {value:.3f}" if isinstance(value, float) else f"{key:40s} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
