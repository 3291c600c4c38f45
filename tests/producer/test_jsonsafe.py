"""Configs become JSON whatever they hold, and never stop a run from starting."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import torch
from pydantic import BaseModel

from producer.jsonsafe import json_safe
from producer.testing import recording_run


class Optim(enum.Enum):
    ADAM = "adam"


@dataclasses.dataclass
class Data:
    path: Path
    batch: int = 32


class Model(BaseModel):
    width: int = 4


class Unprintable:
    def __repr__(self):
        raise RuntimeError("no repr for you")


def test_common_config_values_become_plain_json():
    config = {
        "lr": torch.tensor(3e-4, dtype=torch.float64),
        "steps": torch.tensor(7),
        "mask": torch.tensor([True, False]),
        "weights": torch.ones(2, 2),
        "big": torch.zeros(1000),
        "dir": Path("/data/cifar"),
        "optim": Optim.ADAM,
        "when": datetime(2024, 5, 1, tzinfo=UTC),
        "budget": timedelta(minutes=2),
        "data": Data(Path("/d")),
        "model": Model(),
        "layers": (1, 2, {3}),
        "huge": 2**80,
        "blob": b"\xffab",
        1: "int key",
        "obj": Unprintable(),
        "nan": float("nan"),
    }
    safe = json_safe(config)
    assert safe["lr"] == 3e-4 and type(safe["lr"]) is float
    assert safe["steps"] == 7 and type(safe["steps"]) is int
    assert safe["mask"] == [True, False]
    assert safe["weights"] == [[1.0, 1.0], [1.0, 1.0]]
    assert safe["big"] == "<Tensor shape=(1000,) dtype=torch.float32>"
    assert safe["dir"] == "/data/cifar"
    assert safe["optim"] == "adam"
    assert safe["when"] == "2024-05-01T00:00:00+00:00"
    assert safe["budget"] == 120.0
    assert safe["data"] == {"path": "/d", "batch": 32}
    assert safe["model"] == {"width": 4}
    assert safe["layers"] == [1, 2, [3]]
    assert safe["huge"] == str(2**80)
    assert safe["blob"] == "\ufffdab"
    assert safe["1"] == "int key"
    assert safe["obj"] == "<Unprintable>"
    assert math.isnan(safe["nan"])
    json.dumps(safe)  # plain JSON (NaN aside, which the codec sends as "NaN")


def test_deep_or_cyclic_configs_are_cut_not_fatal():
    cyclic: dict = {}
    cyclic["self"] = cyclic
    safe = json_safe(cyclic)
    depth = 0
    while isinstance(safe, dict):
        safe, depth = safe["self"], depth + 1
    assert isinstance(safe, str) and depth <= 40


def test_run_started_carries_the_safe_config_and_versions():
    with recording_run(config={"lr": torch.tensor(0.1), "dir": Path("/x")}, tags=("a", 1)) as run:
        pass
    started = run.publisher.started
    assert started.config == {"lr": torch.tensor(0.1).item(), "dir": "/x"}
    assert started.tags == ["a", "1"]
    assert started.torch_version == torch.__version__
    assert started.python_version and started.heartbeat_s == run.settings.system_interval_s
