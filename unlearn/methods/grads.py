"""Gradient helpers shared by the one-shot methods (IU, FF): per-sample and mean gradients as flat vectors,
streamed in chunks under a memory bound, and flat in-place parameter updates."""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vjp, vmap

from unlearn.text import fixed_shapes, trim

MIB = 2 ** 20


def trainable(model: nn.Module) -> dict[str, Tensor]:
    return {k: p for k, p in model.named_parameters() if p.requires_grad}


def grad_rows_within(model: nn.Module, max_mb: float, need: int, key: str) -> int:
    """How many flat gradients of `model` fit in `max_mb` MiB; `key` (the config key) is named if fewer than `need`."""
    params = trainable(model).values()
    row = sum(p.numel() for p in params) * next(iter(params)).element_size()
    rows = int(max_mb * MIB // row)
    if rows < need:
        raise ValueError(f"{key}={max_mb} MiB holds {rows} per-sample gradients of this model ({row / MIB:.1f} MiB "
                         f"each); at least {need} are needed: set it >= {need * row / MIB:.0f}")
    return rows


def _unpadded(model: nn.Module, x: Tensor) -> Tensor:
    """Token ids without the padding columns the whole chunk shares (text models keep the length under vmap)."""
    pad = getattr(model, "pad_id", None)
    return x if pad is None or x.is_floating_point() else trim(x, pad)[0]


def per_sample_grads(model: nn.Module, x: Tensor, y: Tensor, chunk: int = 32) -> Iterator[Tensor]:
    """Yield flat per-sample gradients of cross-entropy, [b, d] per chunk of `chunk` samples (eval mode).

    At most two chunks of gradients are alive while one is computed (the vmap output and its flat copy),
    plus the one the caller still holds.
    """
    params = {k: p.detach() for k, p in trainable(model).items()}
    buffers = dict(model.named_buffers())

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    g = vmap(grad(loss), in_dims=(None, 0, 0))
    for i in range(0, len(x), chunk):
        with fixed_shapes():
            out = g(params, _unpadded(model, x[i:i + chunk]), y[i:i + chunk])
        yield torch.cat([out.pop(k).flatten(1) for k in params], 1)  # no local keeps it once the caller drops it


def stream_grads(model: nn.Module, data, idx: Tensor, chunk: int) -> Iterator[Tensor]:
    """Per-sample gradients of training samples `idx` (in order), inputs prepared `chunk` samples at a time."""
    for b in idx.split(chunk):
        yield from per_sample_grads(model, data.prepare(data.x_train[b]), data.y_train[b], chunk)


def class_weighted_sq_grads(model: nn.Module, x: Tensor, rows: int, total: Tensor | None = None) -> Tensor:
    """Flat sum_i sum_c p(c | x_i) g_ic^2 over the samples x, g_ic the gradient of CE(x_i, c) (eval mode).

    One forward per sample serves all its classes (a vjp pulled back along each class's logit gradient);
    (sample, class) pairs go through vmap `rows` at a time, and are squared and summed in place, so about
    rows + 2 gradients are alive at once. Added in place to `total` when given.
    """
    params = {k: p.detach() for k, p in trainable(model).items()}
    buffers = dict(model.named_buffers())
    ce = vmap(grad(lambda z, c: F.cross_entropy(z, c)), in_dims=(None, 0))  # d CE(z, c) / dz for each class c

    def one(xi, classes):
        out, pull = vjp(lambda p: functional_call(model, (p, buffers), (xi.unsqueeze(0),)).squeeze(0), params)
        weight = F.softmax(out.detach().float(), -1)[classes]  # p(c | x_i), the expectation over the model's labels
        return vmap(pull)(ce(out.detach(), classes))[0], weight

    with torch.no_grad():
        num_classes = model(_unpadded(model, x[:1])).shape[1]
    k = min(num_classes, rows)
    s = max(1, rows // k)
    if total is None:
        total = torch.zeros(sum(p.numel() for p in params.values()), dtype=next(iter(params.values())).dtype,
                            device=x.device)
    for lo in range(0, num_classes, k):
        classes = torch.arange(lo, min(lo + k, num_classes), device=x.device)
        for i in range(0, len(x), s):
            with fixed_shapes():
                grads, weight = vmap(one, in_dims=(0, None))(_unpadded(model, x[i:i + s]), classes)
            weight, pos = weight.flatten(), 0
            for name in params:
                g = grads.pop(name)  # [s, k, *shape]
                n = g[0, 0].numel()
                total[pos:pos + n] += weight.to(g.dtype) @ g.pow_(2).reshape(len(weight), n)  # a copy if strided
                pos += n
                del g
    return total


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
