"""Synthetic data sets, generated from a seed: reproducible, tiny, no downloads."""

from __future__ import annotations

import math

import torch


def blobs(n: int, classes: int, generator: torch.Generator, spread: float = 1.0,
          label_noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D points around `classes` centres on a circle; a fraction `label_noise` gets a random label."""
    y = torch.randint(0, classes, (n,), generator=generator)
    angles = y.float() * (2 * math.pi / classes)
    centres = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) * 2.0
    x = centres + spread * torch.randn(n, 2, generator=generator)
    if label_noise > 0:
        flip = torch.rand(n, generator=generator) < label_noise
        y = torch.where(flip, torch.randint(0, classes, (n,), generator=generator), y)
    return x, y


def linear_regression(n_train: int, n_val: int, features: int, generator: torch.Generator):
    """Train and validation sets of y = X w + noise (one w), features of different scales: the largest
    scale sets the step size past which gradient descent blows up."""
    scales = torch.linspace(0.5, 4.0, features)
    w = torch.randn(features, 1, generator=generator)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, features, generator=generator) * scales
        return x, x @ w + 0.1 * torch.randn(n, 1, generator=generator)

    return draw(n_train), draw(n_val)


def batches(x: torch.Tensor, y: torch.Tensor, size: int, generator: torch.Generator):
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), size):
        idx = order[start:start + size]
        yield x[idx], y[idx]
