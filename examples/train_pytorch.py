"""A small, real PyTorch training loop that publishes its metrics with epochstream.

It makes its own data (a synthetic classification task, so nothing is downloaded), trains an MLP with
AdamW and a cosine schedule, and validates every epoch. The batch size does not divide the data, so the
last batch is short: EpochAccumulator weighs it right. The 14 lines that use epochstream are marked with
an "epochstream" comment.

    EPOCHSTREAM_REDIS_URL=redis://127.0.0.1:6379/0 python examples/train_pytorch.py --epochs 5

With no broker at all it trains just the same; its events wait in the spool for one.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from producer import EpochAccumulator, start_run  # epochstream


def make_data(samples: int, features: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs around random class centres: learnable, not trivially so."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=generator) * 0.25
    labels = torch.randint(0, classes, (samples,), generator=generator)
    return centres[labels] + torch.randn(samples, features, generator=generator), labels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", default="examples")
    parser.add_argument("--name", default="mlp-blobs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    x, y = make_data(args.samples, args.features, args.classes, args.seed)
    split = int(0.8 * args.samples)
    train = DataLoader(TensorDataset(x[:split], y[:split]), batch_size=args.batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[split:], y[split:]), batch_size=args.batch_size)
    model = nn.Sequential(nn.Linear(args.features, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.classes))
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()

    with start_run(project=args.project, name=args.name, config=vars(args)) as run:  # epochstream
        for epoch in range(args.epochs):
            started = time.perf_counter()  # epochstream
            acc = EpochAccumulator()  # epochstream
            model.train()
            for xb, yb in train:
                optimiser.zero_grad()
                logits = model(xb)
                loss = loss_fn(logits, yb)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
                optimiser.step()
                acc.add_batch("train/loss", loss.item(), len(yb))  # epochstream
                acc.add_batch("gradient_norm", grad_norm.item(), len(yb))  # epochstream
                acc.add_correct("train/accuracy", (logits.argmax(1) == yb).sum().item(), len(yb))  # epochstream
            model.eval()
            with torch.no_grad():
                for xb, yb in val:
                    logits = model(xb)
                    acc.add_batch("val/loss", loss_fn(logits, yb).item(), len(yb))  # epochstream
                    acc.add_correct("val/accuracy", (logits.argmax(1) == yb).sum().item(), len(yb))  # epochstream
            metrics = acc.compute()  # epochstream
            metrics["val/perplexity"] = math.exp(metrics["val/loss"])  # epochstream
            metrics["learning_rate"] = schedule.get_last_lr()[0]  # epochstream
            metrics["epoch_duration"] = time.perf_counter() - started  # epochstream
            run.log_epoch(epoch, metrics, samples=acc.samples)  # epochstream
            schedule.step()
            print(f"epoch {epoch}: train/loss {metrics['train/loss']:.4f}  val/loss {metrics['val/loss']:.4f}  "
                  f"val/accuracy {metrics['val/accuracy']:.3f}", flush=True)
    print(f"run {run.run_id} done", flush=True)


if __name__ == "__main__":
    main()
