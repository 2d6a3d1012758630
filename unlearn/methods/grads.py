"""Gradient helpers shared by the one-shot methods (IU, FF): per-sample and mean gradients as flat vectors,
and flat in-place parameter updates."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap


def trainable(model: nn.Module) -> dict[str, Tensor]:
    return {k: p for k, p in model.named_parameters() if p.requires_grad}


def per_sample_grads(model: nn.Module, x: Tensor, y: Tensor, chunk: int = 32):
    """Yield flat per-sample gradients of cross-entropy, [b, d] per chunk of `chunk` samples (eval mode)."""
    params = {k: p.detach() for k, p in trainable(model).items()}
    buffers = dict(model.named_buffers())

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    g = vmap(grad(loss), in_dims=(None, 0, 0))
    for i in range(0, len(x), chunk):
        out = g(params, x[i:i + chunk], y[i:i + chunk])
        yield torch.cat([out[k].flatten(1) for k in params], 1)


@torch.no_grad()
def add_flat_(model: nn.Module, vec: Tensor) -> None:
    """Add a flat vector (ordered as `trainable(model)`) to the model's trainable parameters in place."""
    pos = 0
    for p in trainable(model).values():
        p += vec[pos:pos + p.numel()].view_as(p)
        pos += p.numel()


def mean_grad(model: nn.Module, data, idx: Tensor, batch_size: int = 256) -> Tensor:
    """Flat gradient of the mean cross-entropy over training samples `idx` (eval mode, no augmentation)."""
    params = list(trainable(model).values())
    total = [torch.zeros_like(p) for p in params]
    for i in range(0, len(idx), batch_size):
        b = idx[i:i + batch_size]
        loss = F.cross_entropy(model(data.prepare(data.x_train[b])), data.y_train[b], reduction="sum")
        for t, gp in zip(total, torch.autograd.grad(loss, params)):
            t += gp
    return torch.cat([t.flatten() for t in total]) / max(1, len(idx))
