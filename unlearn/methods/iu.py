"""IU: influence unlearning with a WoodFisher inverse-Hessian estimate (Koh & Liang 2017; Izzo et al. 2021;
Singh & Alistarh 2020), in the form of Jia et al. 2023's public code."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from unlearn.checks import require
from unlearn.methods.base import Method


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


def woodfisher_solve(grads: Tensor, v: Tensor, damping: float) -> Tensor:
    """H^-1 v for H = damping * I + (1/n) sum_k g_k g_k^T, by n rank-one Sherman-Morrison updates.

    Step k: H_k^-1 = H_{k-1}^-1 - a_k a_k^T / (n + g_k . a_k) with a_k = H_{k-1}^-1 g_k. Every a_k lies in
    the span of g_1..g_k, so the recursion runs on coefficients over the n x n Gram matrix (O(n^2 d + n^3)
    time, O(n d) memory) and a d x d matrix is never formed.
    """
    n = len(grads)
    gram = (grads @ grads.T).double()  # [n, n]: g_i . g_j
    coef = torch.zeros(n, n, dtype=torch.float64, device=grads.device)  # row k: a_k = coef[k] @ grads
    denom = torch.empty(n, dtype=torch.float64, device=grads.device)
    for k in range(n):
        dots = coef[:k] @ gram[:, k]  # a_j . g_k for j < k
        coef[k] = -(dots / denom[:k]) @ coef[:k]
        coef[k, k] += 1.0 / damping
        denom[k] = n + coef[k] @ gram[:, k]
    av = coef @ (grads @ v).double()  # a_k . v
    w = coef.T @ (av / denom)  # H^-1 v = v / damping - sum_k a_k (a_k . v) / denom_k
    return v / damping - grads.T @ w.to(grads.dtype)


class IU(Method):
    """theta <- theta + scale * H^-1 (1/n) (sum_{D_f} grad - n_f * mean_{D_r} grad), one shot (Jia et al. 2023).

    H is the damped empirical Fisher of `num_samples` retain samples (WoodFisher). The D_r term accounts for
    the re-weighting of the remaining samples when D_f leaves the empirical risk.
    """

    def __init__(self, num_samples: int = 256, damping: float = 1.0, scale: float = 0.2, chunk: int = 32):
        checks = [("num_samples", isinstance(num_samples, int) and num_samples >= 1, "an integer >= 1"),
                  ("damping", damping > 0, "> 0"), ("scale", scale > 0, "> 0"),
                  ("chunk", isinstance(chunk, int) and chunk >= 1, "an integer >= 1")]
        require(checks, locals(), "iu: ")
        self.num_samples, self.damping, self.scale, self.chunk = num_samples, damping, scale, chunk
        self.recipe = None  # one-shot update: no optimiser

    def direction(self, model: nn.Module, task) -> Tensor:
        """The flat update H^-1 v (before `scale`)."""
        data, split = task.data, task.split
        nf, nr = len(split.forget), len(split.retain)
        v = nf / (nf + nr) * (mean_grad(model, data, split.forget) - mean_grad(model, data, split.retain))
        g = torch.Generator().manual_seed(task.seed)
        pick = split.retain[torch.randperm(nr, generator=g)[:self.num_samples].to(split.retain.device)]
        x, y = data.prepare(data.x_train[pick]), data.y_train[pick]
        grads = torch.cat(list(per_sample_grads(model, x, y, self.chunk)))
        return woodfisher_solve(grads, v, self.damping)

    def unlearn(self, model, task):
        model.eval()  # BatchNorm uses running statistics, as at test time
        add_flat_(model, self.scale * self.direction(model, task))
        return model
