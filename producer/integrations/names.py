"""Framework metric names -> ours: one documented rule for every integration. Pure: no I/O, no framework.

The rule, applied to each name in one logged dict:

1. Known aliases: `loss`, `train_loss` -> `train/loss`; `val_loss`, `valid_loss`, `validation_loss`,
   `eval_loss` -> `val/loss`; `lr` -> `learning_rate`; `grad_norm` -> `gradient_norm`.
2. Lightning's `LearningRateMonitor` names: `lr-<optimizer or scheduler name>` -> `learning_rate`,
   `lr-<name>-momentum` -> `momentum`; a parameter group suffix stays: `lr-Adam/pg1` -> `learning_rate/pg1`.
3. Split prefixes: `train_X` / `training_X` -> `train/X`; `val_X`, `valid_X`, `validation_X`, `eval_X` ->
   `val/X` (so Hugging Face's `eval_accuracy` -> `val/accuracy`, Keras' `val_mae` -> `val/mae`); `test_X`
   -> `test/X`. The slash forms (`eval/X`, `valid/X`, ...) are read the same way. In X, `acc` -> `accuracy`
   and `ppl` -> `perplexity`, the names DESIGN.md uses.
4. A name with no split prefix gets the caller's `bare` prefix when it has one (Keras: its unprefixed
   metrics are the training ones, `mae` -> `train/mae`), else stays as it is.
5. What is left is made to fit `schemas.envelope.METRIC_NAME_PATTERN`: characters outside
   `A-Z a-z 0-9 _ . / : -` become `_`, a leading `.`, `/`, `:` or `-` gets a `_` before it, 128 at most.

Nothing a framework logged is merged away: when two names of one dict would map to the same name (say
both `loss` and `train_loss`), neither is renamed; each keeps its own name, only made to fit (rule 5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

ALIASES: dict[str, str] = {
    "loss": "train/loss",
    "train_loss": "train/loss",
    "val_loss": "val/loss",
    "valid_loss": "val/loss",
    "validation_loss": "val/loss",
    "eval_loss": "val/loss",
    "lr": "learning_rate",
    "grad_norm": "gradient_norm",
}
SPLITS: tuple[tuple[str, str], ...] = (
    ("training", "train"), ("train", "train"),
    ("validation", "val"), ("valid", "val"), ("val", "val"), ("eval", "val"),
    ("test", "test"),
)
SHORT: dict[str, str] = {"acc": "accuracy", "ppl": "perplexity"}
_LR_MONITOR = re.compile(r"^lr-(?P<name>[^/]+?)(?P<momentum>-momentum)?(?P<group>/pg\d+)?$")
_SPLIT = re.compile(r"^(?P<split>" + "|".join(s for s, _ in SPLITS) + r")[_/](?P<rest>.+)$")
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_./:-]")
MAX_NAME = 128


def fit_name(name: str) -> str:
    """`name` made to match METRIC_NAME_PATTERN (rule 5)."""
    fitted = _BAD_CHAR.sub("_", name) or "_"
    if fitted[0] in "./:-":
        fitted = "_" + fitted
    return fitted[:MAX_NAME]


def metric_name(name: str, bare: str | None = None) -> str:
    """Our name for one framework metric name (rules 1-5; see the module's docstring)."""
    if name in ALIASES:
        return ALIASES[name]
    lr = _LR_MONITOR.match(name)
    if lr:
        return ("momentum" if lr["momentum"] else "learning_rate") + (lr["group"] or "")
    split = _SPLIT.match(name)
    if split:
        ours = dict(SPLITS)[split["split"]]
        rest = split["rest"]
        return fit_name(f"{ours}/{SHORT.get(rest, rest)}")
    if bare is not None and name not in ("learning_rate", "gradient_norm", "momentum"):
        return fit_name(f"{bare}/{SHORT.get(name, name)}")
    return fit_name(name)


def map_names(names: Iterable[str], bare: str | None = None) -> dict[str, str]:
    """{framework name: our name} for the names of one logged dict; names that would collide keep their own."""
    names = list(names)
    wanted = {name: metric_name(name, bare) for name in names}
    counts: dict[str, int] = {}
    for ours in wanted.values():
        counts[ours] = counts.get(ours, 0) + 1
    out: dict[str, str] = {}
    taken: set[str] = {ours for ours in wanted.values() if counts[ours] == 1}
    for name in names:
        ours = wanted[name]
        if counts[ours] > 1:
            ours = fit_name(name)
            suffix = 2
            while ours in taken:  # two names that only differed in characters rule 5 replaced
                ours = f"{fit_name(name)[:MAX_NAME - 4]}_{suffix}"
                suffix += 1
        taken.add(ours)
        out[name] = ours
    return out


def number(value: Any) -> float | None:
    """A metric value as a float, or None for what is not a number (a string, a list, None).

    Floats, ints, bools, NumPy scalars and 0-d tensors are numbers.
    """
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if value is None or isinstance(value, str | bytes | Mapping | list | tuple):
        return None
    try:
        item = getattr(value, "item", None)  # NumPy scalars, 0-d tensors, without importing either
        return float(item() if item is not None else value)
    except (TypeError, ValueError, RuntimeError):  # a tensor of many elements, an object
        return None


def map_metrics(metrics: Mapping[str, Any], bare: str | None = None,
                skip: Iterable[str] = ()) -> tuple[dict[str, float], list[str]]:
    """(our metrics, names of values that are not numbers) for one logged dict, `skip` names left out."""
    skipped = set(skip)
    values: dict[str, float] = {}
    not_numbers: list[str] = []
    for name, value in metrics.items():
        if name in skipped:
            continue
        as_float = number(value)
        if as_float is None:
            not_numbers.append(str(name))
        else:
            values[str(name)] = as_float
    names = map_names(values, bare)
    return {names[name]: value for name, value in values.items()}, not_numbers
