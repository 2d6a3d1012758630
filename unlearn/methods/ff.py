"""FF: Fisher forgetting (Golatkar et al. 2020, "Eternal Sunshine of the Spotless Net")."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad, vmap

from unlearn.checks import finite, integer, require
from unlearn.methods.base import Method
from unlearn.methods.grads import add_flat_, class_weighted_sq_grads, grad_rows_within, trainable

VARIANTS = ("paper", "public")
HEADS = ("keep", "zero", "suppress", "resample")
# Constants of the public noise law (Golatkar's Forgetting.ipynb cell 75 = Jia et al.'s Unlearn-Sparse
# unlearn/fisher.py:79-104): variance caps before alpha, the x10 boost of head and 1-D tensors, and the
# variance a forgotten class's head row is reset to before that boost.
PUBLIC_VAR_CAP, PUBLIC_HEAD_VAR_CAP, PUBLIC_BOOST, PUBLIC_RESET_VAR = 1e3, 1e2, 10.0, 1e-4


def forgotten_classes(task) -> Tensor:
    """Classes with training samples in D_f and none in D_r (class-wise forgetting)."""
    y, k = task.data.y_train, task.data.num_classes
    in_f = torch.bincount(y[task.split.forget], minlength=k) > 0
    in_r = torch.bincount(y[task.split.retain], minlength=k) > 0
    return torch.nonzero(in_f & ~in_r).flatten()


def diagonal_fisher(model: nn.Module, x: Tensor | Iterable[Tensor], chunk: int = 32, rows: int = 1024) -> Tensor:
    """Flat diag of the Fisher (1/n) sum_i sum_c p(c | x_i) g_ic^2, expectation over the model's own labels.

    As in Golatkar et al.'s code (the true Fisher, not the empirical one): one per-sample gradient per class.
    `x` is a tensor (split into chunks of `chunk`) or an iterable of prepared chunks, so D_r can stream;
    `rows` (sample, class) gradients are computed per vmap call (`class_weighted_sq_grads`).
    """
    total, n = None, 0
    for xb in (x.split(chunk) if isinstance(x, Tensor) else x):
        total = class_weighted_sq_grads(model, xb, rows, total)
        n += len(xb)
    return total.div_(n)


def batch_mean_fisher(model: nn.Module, batches: Iterable[Tensor], rows: int = 1024) -> Tensor:
    """Flat (1/#batches) sum_B sum_c mean_{i in B} p(c | x_i) * (grad of mean_{i in B} CE(x_i, c))^2.

    The public code's estimator (Unlearn-Sparse unlearn/fisher.py:51-76). Batches of one input give
    `diagonal_fisher` (Golatkar's batch_size=1, Forgetting.ipynb cell 73); for larger batches it weighs the
    gradient of the whole batch's CE towards class c by the batch-mean p(c), so samples sure of another class
    contribute: it is not a rescaled per-sample Fisher (on a fitted model it is far larger). One backward call
    serves `rows` classes (batched cotangents), so about rows + 2 gradients are alive at once.
    """
    params = list(trainable(model).values())
    ce = vmap(grad(lambda z, c: F.cross_entropy(z, c.expand(len(z)))), in_dims=(None, 0))  # d CE_c / d logits
    total, n = None, 0
    for xb in batches:
        logits = model(xb)
        probs = F.softmax(logits.detach().float(), -1)
        k = logits.shape[1]
        if total is None:
            total = torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype, device=logits.device)
        for lo in range(0, k, rows):
            classes = torch.arange(lo, min(lo + rows, k), device=logits.device)
            grads = torch.autograd.grad(logits, params, ce(logits.detach(), classes), retain_graph=lo + rows < k,
                                        is_grads_batched=True)  # [classes, *shape] per tensor
            weight, pos = probs[:, classes].mean(0), 0
            for g in grads:
                total[pos:pos + g[0].numel()] += weight.to(g.dtype) @ g.pow_(2).reshape(len(classes), -1)
                pos += g[0].numel()
            del grads, g
        n += 1
    return total.div_(n)


def public_variance(fisher: dict[str, Tensor], head: set[str], alpha: float, eps: float) -> dict[str, Tensor]:
    """Per-tensor noise variance of the public code (Unlearn-Sparse unlearn/fisher.py:79-104, Golatkar cell 75):
    alpha * min(1 / (F + eps), cap) (cap 1e2 for the head, 1e3 otherwise), averaged over dim 1 of every
    tensor with ndim > 1 (one value per fc row; per (filter, kh, kw) of a conv), then x10 for the head and
    for every 1-D tensor (BatchNorm, biases). The forgotten head rows are handled by `FF.head` afterwards."""
    out = {}
    for name, f in fisher.items():
        var = (1.0 / (f + eps)).clamp(max=PUBLIC_HEAD_VAR_CAP if name in head else PUBLIC_VAR_CAP) * alpha
        if var.ndim > 1:
            var = var.mean(dim=1, keepdim=True).expand_as(var)
        if name in head or var.ndim == 1:
            var = var * PUBLIC_BOOST
        out[name] = var
    return out


class FF(Method):
    """Gaussian noise on every weight, large where the retain data's Fisher F is small.

    variant=paper: std = min(alpha * (F + eps)^-power, max_std) per weight (power 1/4 is Golatkar et al.'s
    Eq. S(w) = w + (lambda sigma_h^2)^(1/4) F^(-1/4) n, as the UGradSL paper describes FF). variant=public:
    std = sqrt(`public_variance`) with F from `batch_mean_fisher` (Jia et al.'s `fisher_new`). `head` then
    treats the output rows of the fully forgotten classes (Golatkar's and Jia et al.'s code resample them
    from N(0, 1e-3), i.e. mean 0 and variance 1e-4 x 10; neither zeroes them).
    """

    def __init__(self, *, variant: str, alpha: float, power: float, max_std: float, eps: float,
                 num_samples: int | None, fisher_batch: int, head: str, chunk: int, max_grad_mb: float):
        checks = [("variant", variant in VARIANTS, f"one of {VARIANTS}"),
                  ("alpha", finite(alpha) and alpha > 0, "a finite number > 0"),
                  ("power", finite(power) and power > 0, "a finite number > 0"),
                  ("max_std", finite(max_std) and max_std > 0, "a finite number > 0"),
                  ("eps", finite(eps) and eps > 0, "a finite number > 0"),
                  ("num_samples", num_samples is None or integer(num_samples, 1),
                   "null (all of D_r) or an integer >= 1"),
                  ("fisher_batch", integer(fisher_batch, 1), "an integer >= 1"),
                  ("head", head in HEADS, f"one of {HEADS}"),
                  ("chunk", integer(chunk, 1), "an integer >= 1"),
                  ("max_grad_mb", finite(max_grad_mb) and max_grad_mb > 0, "a finite number of MiB > 0")]
        require(checks, locals(), "ff: ")
        self.variant, self.alpha, self.power, self.max_std, self.eps = variant, alpha, power, max_std, eps
        self.num_samples, self.fisher_batch, self.head, self.chunk = num_samples, fisher_batch, head, chunk
        self.max_grad_mb = max_grad_mb

    def noise_std(self, fisher: Tensor) -> Tensor:
        """Per-weight std of variant=paper: large where the retain data barely constrains the weight."""
        return (self.alpha * (fisher + self.eps).pow(-self.power)).clamp(max=self.max_std)

    def fisher(self, model: nn.Module, task) -> Tensor:
        """Flat diagonal Fisher on D_r (ordered as `trainable(model)`), the estimator of `variant`."""
        data, retain = task.data, task.split.retain
        if self.num_samples is not None and self.num_samples < len(retain):
            g = torch.Generator().manual_seed(task.seed)
            retain = retain[torch.randperm(len(retain), generator=g)[:self.num_samples].to(retain.device)]
        rows = grad_rows_within(model, self.max_grad_mb, 3, "ff: max_grad_mb") - 2  # + the sum, a product
        if self.variant == "paper":  # D_r streams `chunk` samples at a time: never all of it in memory
            return diagonal_fisher(model, (data.prepare(data.x_train[b]) for b in retain.split(self.chunk)),
                                   rows=rows)
        # the retain *training* set in a fixed order, with its augmentation (fisher.py:55,108-112)
        g = torch.Generator().manual_seed(task.seed)
        return batch_mean_fisher(model, (data.prepare(data.x_train[b], train=True, generator=g)
                                         for b in retain.split(self.fisher_batch)), rows)

    def std(self, model: nn.Module, fisher: Tensor) -> Tensor:
        """Flat per-weight noise std of `variant` for a flat Fisher."""
        if self.variant == "paper":
            return self.noise_std(fisher)
        params = trainable(model)
        parts, pos = {}, 0
        for name, p in params.items():
            parts[name] = fisher[pos:pos + p.numel()].view_as(p)
            pos += p.numel()
        head = {n for n, p in params.items() if any(p is q for q in model.fc.parameters())}
        var = public_variance(parts, head, self.alpha, self.eps)
        return torch.cat([v.flatten() for v in var.values()]).sqrt()

    def unlearn(self, model, task):
        model.eval()  # BatchNorm running statistics, as the public code (fisher.py:52)
        std = self.std(model, self.fisher(model, task))
        g = torch.Generator(device=std.device).manual_seed(task.seed)
        add_flat_(model, std * torch.randn(std.shape, generator=g, device=std.device))
        gone = forgotten_classes(task)
        if self.head == "keep" or len(gone) == 0:
            return model
        fc = model.fc
        with torch.no_grad():
            if self.head == "resample":  # N(0, 1e-4 * 10): the public code's reset row (fisher.py:92-100)
                scale = (PUBLIC_RESET_VAR * PUBLIC_BOOST) ** 0.5
                fc.weight[gone] = scale * torch.randn(fc.weight[gone].shape, generator=g, device=std.device)
                if fc.bias is not None:
                    fc.bias[gone] = scale * torch.randn(len(gone), generator=g, device=std.device)
            else:
                fc.weight[gone] = 0
                if fc.bias is not None:
                    fc.bias[gone] = 0 if self.head == "zero" else -1e4
        return model
