"""IU: influence unlearning with a WoodFisher inverse-Hessian estimate (Koh & Liang 2017; Izzo et al. 2021;
Singh & Alistarh 2020), in the form of Jia et al. 2023's public code."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from unlearn.checks import finite, integer, require
from unlearn.methods.base import Method
from unlearn.methods.grads import add_flat_, mean_grad, per_sample_grads


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

    def __init__(self, *, num_samples: int, damping: float, scale: float, chunk: int):
        checks = [("num_samples", integer(num_samples, 1), "an integer >= 1"),
                  ("damping", finite(damping) and damping > 0, "a finite number > 0"),
                  ("scale", finite(scale) and scale > 0, "a finite number > 0"),
                  ("chunk", integer(chunk, 1), "an integer >= 1")]
        require(checks, locals(), "iu: ")
        self.num_samples, self.damping, self.scale, self.chunk = num_samples, damping, scale, chunk

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
