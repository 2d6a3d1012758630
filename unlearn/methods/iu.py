"""IU: influence unlearning (Koh & Liang 2017; Izzo et al. 2021) with a WoodFisher inverse-Hessian estimate
(Singh & Alistarh 2020): one step theta + scale * H^-1 v, with v as in Jia et al. 2023's public code."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from unlearn.checks import finite, integer, require
from unlearn.methods.base import Method
from unlearn.methods.grads import add_flat_, mean_grad, per_sample_grads

SOLVERS = ("woodfisher", "public")


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


def public_recursion(grads: Iterable[Tensor], v: Tensor, n: float) -> Tensor:
    """The recursion of Jia et al.'s public code (Unlearn-Sparse unlearn/Wfisher.py:63-84), restated.

    With g_1, g_2, ... the per-sample gradients (rows of the chunks in `grads`): k = v, c = 1, then for
    j >= 2: s = c (g_1 . g_j); k <- k - c (g_j . k) / (n + s) g_1; c <- c n / (n + s). Every correction is
    along g_1, and g_1 g_1^T itself is never applied: this is not H^-1 v for any H built from the g_j (on
    two samples it is (I + g_1 g_2^T / n)^-1 v), and for |g|^2 << n it returns ~v, one gradient step.
    """
    k, c, first = v.clone(), 1.0, None
    for chunk in grads:
        for g in chunk:
            if first is None:
                first = g.clone()
                continue
            s = c * float(first @ g)
            k -= (c * float(g @ k) / (n + s)) * first
            c *= n / (n + s)
    return k


class IU(Method):
    """theta <- theta + scale * H^-1 (1/n) (sum_{D_f} grad - n_f * mean_{D_r} grad), one shot.

    v is Jia et al.'s (Wfisher.py:158-181; eval mode, here without augmentation): the D_r term accounts for
    the re-weighting of the remaining samples when D_f leaves the empirical risk. `solver=woodfisher`:
    H = damping * I + (1/m) sum g g^T over `num_samples` random retain samples, solved exactly.
    `solver=public`: `public_recursion` over the first num_samples + 2 retain samples, normaliser
    n = num_samples (the code's N = 1000 and its 1002 samples), `damping` unused.
    """

    def __init__(self, *, solver: str, num_samples: int, damping: float, scale: float, chunk: int):
        checks = [("solver", solver in SOLVERS, f"one of {SOLVERS}"),
                  ("num_samples", integer(num_samples, 1), "an integer >= 1"),
                  ("damping", finite(damping) and damping > 0, "a finite number > 0"),
                  ("scale", finite(scale) and scale > 0, "a finite number > 0"),
                  ("chunk", integer(chunk, 1), "an integer >= 1")]
        require(checks, locals(), "iu: ")
        self.solver, self.num_samples, self.damping, self.scale, self.chunk = solver, num_samples, damping, scale, chunk

    def direction(self, model: nn.Module, task) -> Tensor:
        """The flat update H^-1 v (before `scale`)."""
        data, split = task.data, task.split
        nf, nr = len(split.forget), len(split.retain)
        v = nf / (nf + nr) * (mean_grad(model, data, split.forget) - mean_grad(model, data, split.retain))
        if self.solver == "public":  # the first retain samples in index order (the code's shuffle=False loader)
            pick = split.retain[:self.num_samples + 2]
            x, y = data.prepare(data.x_train[pick]), data.y_train[pick]
            return public_recursion(per_sample_grads(model, x, y, self.chunk), v, float(self.num_samples))
        g = torch.Generator().manual_seed(task.seed)
        pick = split.retain[torch.randperm(nr, generator=g)[:self.num_samples].to(split.retain.device)]
        x, y = data.prepare(data.x_train[pick]), data.y_train[pick]
        grads = torch.cat(list(per_sample_grads(model, x, y, self.chunk)))
        return woodfisher_solve(grads, v, self.damping)

    def unlearn(self, model, task):
        model.eval()  # BatchNorm uses running statistics, as at test time
        add_flat_(model, self.scale * self.direction(model, task))
        return model
