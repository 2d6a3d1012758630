"""IU: influence unlearning (Koh & Liang 2017; Izzo et al. 2021) with a WoodFisher inverse-Hessian estimate
(Singh & Alistarh 2020): one step theta + scale * H^-1 v, with v as in Jia et al. 2023's public code."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from unlearn.checks import finite, integer, require
from unlearn.methods.base import Method
from unlearn.methods.grads import add_flat_, grad_rows_within, mean_grad, stream_grads

SOLVERS = ("woodfisher", "public")


def woodfisher_solve(grads: Tensor, v: Tensor, damping: float) -> Tensor:
    """H^-1 v for H = damping * I + (1/n) sum_k g_k g_k^T, the rows g_k of `grads` held in memory."""
    return woodfisher_stream(lambda lo, hi: iter([grads[lo:hi]]), len(grads), len(grads), v, damping)


def woodfisher_stream(rows: Callable[[int, int], Iterable[Tensor]], n: int, panel: int, v: Tensor,
                      damping: float) -> Tensor:
    """H^-1 v for H = damping * I + (1/n) sum_k g_k g_k^T, by n rank-one Sherman-Morrison updates.

    Step k: H_k^-1 = H_{k-1}^-1 - a_k a_k^T / (n + g_k . a_k) with a_k = H_{k-1}^-1 g_k. Every a_k lies in
    the span of g_1..g_k, so the recursion runs on coefficients over the n x n Gram matrix (O(n^2 d + n^3)
    time) and a d x d matrix is never formed. `rows(lo, hi)` yields g_lo..g_{hi-1} in chunks (recomputed on
    each call): the Gram matrix is filled one panel of `panel` rows at a time against the earlier rows
    streamed past it, so at most one panel plus the caller's chunks are in memory (n = panel: one pass).
    """
    gram = torch.empty(n, n, dtype=torch.float64, device=v.device)  # g_i . g_j
    gv = torch.empty(n, dtype=torch.float64, device=v.device)  # g_i . v
    # one panel: the former single matmul, bit for bit; panels: dot products of small blocks (down to one row,
    # a matrix-vector product summing d terms in order) lose float32 digits, so they are summed in float64 by slices
    dots = (lambda a, b: (a @ b.T).double()) if panel >= n else _dots
    panel_rows = None
    for lo in range(0, n, panel):
        hi = min(lo + panel, n)
        panel_rows = None  # free the previous panel before its successor is computed
        panel_rows = _gather(rows(lo, hi), hi - lo)
        gram[lo:hi, lo:hi] = dots(panel_rows, panel_rows)
        gv[lo:hi] = dots(panel_rows, v.unsqueeze(0)).squeeze(1)
        pos = 0
        for g in rows(0, lo):
            gram[lo:hi, pos:pos + len(g)] = dots(panel_rows, g)
            gram[pos:pos + len(g), lo:hi] = gram[lo:hi, pos:pos + len(g)].T
            pos += len(g)
            del g
    coef = torch.zeros(n, n, dtype=torch.float64, device=v.device)  # row k: a_k = coef[k] @ grads
    denom = torch.empty(n, dtype=torch.float64, device=v.device)
    for k in range(n):
        dots = coef[:k] @ gram[:, k]  # a_j . g_k for j < k
        coef[k] = -(dots / denom[:k]) @ coef[:k]
        coef[k, k] += 1.0 / damping
        denom[k] = n + coef[k] @ gram[:, k]
    av = coef @ gv  # a_k . v
    w = (coef.T @ (av / denom)).to(v.dtype)  # H^-1 v = v / damping - sum_k a_k (a_k . v) / denom_k
    last = (n - 1) // panel * panel  # the panel still in memory
    out = v / damping - panel_rows.T @ w[last:]
    pos = 0
    for g in rows(0, last):
        out -= g.T @ w[pos:pos + len(g)]
        pos += len(g)
        del g
    return out


def _dots(a: Tensor, b: Tensor, piece: int = 1 << 16) -> Tensor:
    """a @ b.T in float64, summed over slices of `piece` columns (float32 products within a slice)."""
    out = torch.zeros(len(a), len(b), dtype=torch.float64, device=a.device)
    for s in range(0, a.shape[1], piece):
        out += (a[:, s:s + piece] @ b[:, s:s + piece].T).double()
    return out


def _gather(chunks: Iterable[Tensor], n: int) -> Tensor:
    """The chunks' rows in one [n, d] tensor, filled as they come (no second copy of the whole panel)."""
    out, pos = None, 0
    for g in chunks:
        if out is None:
            out = g.new_empty(n, g.shape[1])
        out[pos:pos + len(g)] = g
        pos += len(g)
        del g
    return out


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
    n = num_samples (the code's N = 1000 and its 1002 samples), `damping` unused. Per-sample gradients stream
    in chunks; at most `max_grad_mb` MiB of them are held at once (`plan`).
    """

    def __init__(self, *, solver: str, num_samples: int, damping: float, scale: float, chunk: int,
                 max_grad_mb: float):
        checks = [("solver", solver in SOLVERS, f"one of {SOLVERS}"),
                  ("num_samples", integer(num_samples, 1), "an integer >= 1"),
                  ("damping", finite(damping) and damping > 0, "a finite number > 0"),
                  ("scale", finite(scale) and scale > 0, "a finite number > 0"),
                  ("chunk", integer(chunk, 1), "an integer >= 1"),
                  ("max_grad_mb", finite(max_grad_mb) and max_grad_mb > 0, "a finite number of MiB > 0")]
        require(checks, locals(), "iu: ")
        self.solver, self.num_samples, self.damping, self.scale, self.chunk = solver, num_samples, damping, scale, chunk
        self.max_grad_mb = max_grad_mb

    def plan(self, model: nn.Module) -> tuple[int, int]:
        """(chunk, panel): samples per vmap call and rows of the WoodFisher panel, so that the gradients alive
        at once (a panel, or public's held chunk, plus the chunk being computed and its flat copy) fit."""
        rows = grad_rows_within(model, self.max_grad_mb, 4, "iu: max_grad_mb")
        if self.solver == "public":
            return min(self.chunk, rows // 3), 0
        chunk = min(self.chunk, rows // 4)
        return chunk, (rows - 2 * chunk) // chunk * chunk  # whole chunks: a panel is chunked like the stream

    def direction(self, model: nn.Module, task) -> Tensor:
        """The flat update H^-1 v (before `scale`)."""
        data, split = task.data, task.split
        chunk, panel = self.plan(model)  # before any gradient: a bound too small fails at once
        nf, nr = len(split.forget), len(split.retain)
        v = nf / (nf + nr) * (mean_grad(model, data, split.forget) - mean_grad(model, data, split.retain))
        if self.solver == "public":  # the first retain samples in index order (the code's shuffle=False loader)
            pick = split.retain[:self.num_samples + 2]
            return public_recursion(stream_grads(model, data, pick, chunk), v, float(self.num_samples))
        g = torch.Generator().manual_seed(task.seed)
        pick = split.retain[torch.randperm(nr, generator=g)[:self.num_samples].to(split.retain.device)]
        rows = lambda lo, hi: stream_grads(model, data, pick[lo:hi], chunk)  # noqa: E731
        return woodfisher_stream(rows, len(pick), panel, v, self.damping)

    def unlearn(self, model, task):
        model.eval()  # BatchNorm uses running statistics, as at test time
        add_flat_(model, self.scale * self.direction(model, task))
        return model
