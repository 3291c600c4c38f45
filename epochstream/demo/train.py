"""One demo training: `python -m epochstream.demo.train KIND [--epochs N] [--epoch-delay S]`.

It publishes through the real producer (`start_run`, `EpochAccumulator`), reading its settings from the
EPOCHSTREAM_* environment like any training script would. Its first line of output is
`run_id <id>` so a launcher can follow the run through the API.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

from epochstream.demo import KINDS

# torch warns at import when numpy is absent; the demo never needs numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from epochstream.demo.data import batches, blobs, linear_regression  # noqa: E402

DEFAULT_EPOCHS = {"converge": 16, "overfit": 24, "diverge": 14, "crash": 16}
CRASH_AT = 5  # the epoch at which the `crash` run hits its bug (earlier in a shorter run: mid-run always)


@dataclass
class Setup:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Any
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    batch_size: int
    classify: bool
    lr_growth: float = 1.0  # multiply the learning rate by this after every epoch


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def setup(kind: str, seed: int) -> Setup:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if kind in ("converge", "crash"):
        model = mlp([2, 16, 4])
        return Setup(model, torch.optim.SGD(model.parameters(), lr=2e-2, momentum=0.5), nn.CrossEntropyLoss(),
                     blobs(1500, 4, g, spread=0.8), blobs(500, 4, g, spread=0.8), 64, True)
    if kind == "overfit":
        # Few samples, noisy labels, a wide network and no regularisation: it memorises the noise.
        model = mlp([2, 256, 256, 4])
        return Setup(model, torch.optim.Adam(model.parameters(), lr=5e-4), nn.CrossEntropyLoss(),
                     blobs(96, 4, g, spread=1.2, label_noise=0.3), blobs(500, 4, g, spread=1.2), 16, True)
    if kind == "diverge":
        # A learning-rate "warm-up" that never stops: fine at first, then past 2/λmax the steps explode.
        model = nn.Linear(8, 1)
        train, val = linear_regression(1000, 250, 8, g)
        return Setup(model, torch.optim.SGD(model.parameters(), lr=2e-3), nn.MSELoss(), train, val, 50, False,
                     lr_growth=2.0)
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")


def evaluate(s: Setup, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        out = s.model(x)
        metrics = {"loss": float(s.loss_fn(out, y))}
        if s.classify:
            metrics["accuracy"] = float((out.argmax(dim=1) == y).float().mean())
    return metrics


def train(kind: str, epochs: int, epoch_delay: float = 0.0, seed: int = 0, project: str = "demo",
          name: str | None = None) -> str:
    from producer import EpochAccumulator, start_run

    s = setup(kind, seed)
    config = {"kind": kind, "epochs": epochs, "seed": seed, "optimizer": type(s.optimizer).__name__,
              "lr": s.optimizer.param_groups[0]["lr"], "lr_growth": s.lr_growth, "batch_size": s.batch_size,
              "train_samples": len(s.train[0]), "parameters": sum(p.numel() for p in s.model.parameters())}
    crash_at = min(CRASH_AT, epochs // 2)
    acc = EpochAccumulator()
    with start_run(project=project, name=name or kind, config=config, tags=["demo", kind]) as run:
        print(f"run_id {run.run_id}", flush=True)
        for epoch in range(epochs):
            started = time.perf_counter()
            acc.reset()
            s.model.train()
            grad_norm = 0.0
            x_train, y_train = s.train
            if kind == "crash" and epoch == crash_at:
                # The bug: a "feature engineering" step added mid-run appends a column the model was not
                # built for. The matmul below raises, and the run must show up as failed, traceback and all.
                x_train = torch.cat([x_train, x_train[:, :1] ** 2], dim=1)
            for xb, yb in batches(x_train, y_train, s.batch_size, torch.Generator().manual_seed(seed + epoch)):
                s.optimizer.zero_grad()
                out = s.model(xb)
                loss = s.loss_fn(out, yb)
                loss.backward()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(s.model.parameters(), float("inf")))
                s.optimizer.step()
                acc.add_batch("train/loss", float(loss), len(xb))  # a batch mean, weighted by its size
                if s.classify:
                    acc.add_correct("train/accuracy", int((out.argmax(dim=1) == yb).sum()), len(xb))
            metrics = acc.compute()
            s.model.eval()
            val = evaluate(s, *s.val)
            metrics["val/loss"] = val["loss"]
            if "accuracy" in val:
                metrics["val/accuracy"] = val["accuracy"]
            metrics["learning_rate"] = s.optimizer.param_groups[0]["lr"]
            metrics["gradient_norm"] = grad_norm
            for group in s.optimizer.param_groups:
                group["lr"] *= s.lr_growth
            if epoch_delay:
                time.sleep(epoch_delay)  # pace the demo so its progress can be watched
            metrics["epoch_duration"] = time.perf_counter() - started
            run.log_epoch(epoch, metrics, samples=acc.samples)
        return run.run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m epochstream.demo.train", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--epoch-delay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", default="demo")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("EPOCHSTREAM_DEMO_THREADS", "1")))
    train(args.kind, args.epochs or DEFAULT_EPOCHS[args.kind], args.epoch_delay, args.seed, args.project, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
