"""The loss landscape of a trained model around its weights (arXiv Fig. 6 shows the Retrain model's, to argue
that a converged model is locally convex), by filter-normalised random directions (Li et al. 2018,
"Visualizing the loss landscape of neural nets").

Each direction draws N(0, 1) per weight of every conv and linear layer and rescales each filter (output unit)
to the norm of the same filter of the model; biases and batch-norm parameters get no direction and the
running statistics stay (Li et al.'s `ignore_biasbn`), so BN layers evaluate in eval mode with the model's own
statistics. The loss is the mean cross-entropy on fixed samples of D_r (the Retrain model's training set) and
of the evaluation set, at θ + a·d1 + b·d2 over a square grid.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def directions(model: nn.Module, seed: int) -> list[dict[str, torch.Tensor]]:
    """Two filter-normalised random directions (name -> tensor, parameters with >= 2 dims only)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        d = {}
        for name, p in model.named_parameters():
            if p.dim() < 2:
                continue
            r = torch.randn(p.shape, generator=gen).to(p.device, p.dtype)
            norms_p = p.detach().flatten(1).norm(dim=1).view(-1, *([1] * (p.dim() - 1)))
            norms_r = r.flatten(1).norm(dim=1).view(-1, *([1] * (p.dim() - 1)))
            d[name] = r * norms_p / norms_r.clamp_min(1e-12)
        out.append(d)
    return out


@torch.no_grad()
def mean_loss(model: nn.Module, data, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(y), batch_size):
        total += F.cross_entropy(model(data.prepare(x[i:i + batch_size])).float(), y[i:i + batch_size],
                                 reduction="sum").item()
    return total / len(y)


@torch.no_grad()
def surface(model: nn.Module, data, sets: dict[str, tuple[torch.Tensor, torch.Tensor]], points: int, span: float,
            seed: int, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """`{"coords": [points], "<set>": [points, points] losses}` on the grid a, b in [-span, span]; the model's
    weights are restored afterwards."""
    if points < 3 or points % 2 == 0:
        raise ValueError(f"landscape points={points!r} is invalid; allowed: an odd integer >= 3 (the grid's "
                         f"centre is the model itself)")
    d1, d2 = directions(model, seed)
    params = dict(model.named_parameters())
    base = {n: params[n].detach().clone() for n in d1}
    coords = np.linspace(-span, span, points)
    out = {"coords": coords, **{name: np.zeros((points, points)) for name in sets}}
    try:
        for i, a in enumerate(coords):
            for j, b in enumerate(coords):
                for n in d1:
                    params[n].copy_(base[n] + float(a) * d1[n] + float(b) * d2[n])
                for name, (x, y) in sets.items():
                    out[name][i, j] = mean_loss(model, data, x, y, batch_size)
    finally:
        for n in d1:
            params[n].copy_(base[n])
    return out
