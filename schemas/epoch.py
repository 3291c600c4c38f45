"""`epoch`: the metrics of one finished epoch.

Version 1 is the legacy flat shape some trainers still send; version 2 keys metrics by name.
`upcast_epoch_v1_v2` turns a raw v1 dict into a raw v2 dict; stored events are never rewritten.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.envelope import Envelope, MetricName

# Legacy v1 field -> v2 metric name.
V1_METRIC_NAMES: dict[str, str] = {
    "loss": "train/loss",
    "val_loss": "val/loss",
    "acc": "train/accuracy",
    "val_acc": "val/accuracy",
    "lr": "learning_rate",
}

CORE_METRICS: tuple[str, ...] = (
    "train/loss",
    "val/loss",
    "train/accuracy",
    "val/accuracy",
    "val/perplexity",
    "learning_rate",
    "gradient_norm",
    "epoch_duration",
)


class EpochV1(Envelope):
    type: Literal["epoch"] = "epoch"
    version: Literal[1] = 1
    epoch: int = Field(ge=0)
    loss: float | None = None
    val_loss: float | None = None
    acc: float | None = None
    val_acc: float | None = None
    lr: float | None = None
    samples: int | None = Field(default=None, ge=0)


class EpochV2(Envelope):
    type: Literal["epoch"] = "epoch"
    version: Literal[2] = 2
    epoch: int = Field(ge=0)
    metrics: dict[MetricName, float] = Field(default_factory=dict, max_length=512)
    samples: int | None = Field(default=None, ge=0, description="Samples seen in this epoch.")
    warnings: list[str] = Field(
        default_factory=list, description="What the producer noticed (e.g. an all-zero accumulated series)."
    )


def upcast_epoch_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Legacy flat metrics become named metrics; absent (None) ones are dropped."""
    out = {k: v for k, v in raw.items() if k not in V1_METRIC_NAMES}
    out["version"] = 2
    out["metrics"] = {new: raw[old] for old, new in V1_METRIC_NAMES.items() if raw.get(old) is not None}
    return out


Epoch = EpochV2
