"""FF: Fisher forgetting (Golatkar et al. 2020, "Eternal Sunshine of the Spotless Net")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.checks import finite, integer, require
from unlearn.methods.base import Method
from unlearn.methods.grads import add_flat_, per_sample_grads

HEADS = ("zero", "suppress", "keep")


def forgotten_classes(task) -> Tensor:
    """Classes with training samples in D_f and none in D_r (class-wise forgetting)."""
    y, k = task.data.y_train, task.data.num_classes
    in_f = torch.bincount(y[task.split.forget], minlength=k) > 0
    in_r = torch.bincount(y[task.split.retain], minlength=k) > 0
    return torch.nonzero(in_f & ~in_r).flatten()


def diagonal_fisher(model: nn.Module, x: Tensor, chunk: int = 32) -> Tensor:
    """Flat diag of the Fisher (1/n) sum_i sum_c p(c | x_i) g_ic^2, expectation over the model's own labels.

    As in Golatkar et al.'s code (the true Fisher, not the empirical one): one per-sample gradient per class.
    """
    total = None
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        with torch.no_grad():
            probs = F.softmax(model(xb).float(), -1)
        for c in range(probs.shape[1]):
            yc = torch.full((len(xb),), c, dtype=torch.long, device=xb.device)
            (g,) = per_sample_grads(model, xb, yc, chunk)
            part = (probs[:, c:c + 1] * g.pow(2)).sum(0)
            total = part if total is None else total + part
    return total / len(x)


class FF(Method):
    """w <- w + min(alpha * F^-power, max_std) * N(0, I) per weight, F the diagonal Fisher on D_r.

    power = 1/4 is the paper's S(w) = w + (lambda sigma_h^2)^(1/4) F^(-1/4) n; the public code uses
    std = sqrt(alpha / F), i.e. power = 1/2. For class-wise forgetting the output rows of the fully
    forgotten classes of `model.fc` are zeroed (Golatkar's code) or suppressed with a large negative bias.
    """

    def __init__(self, *, alpha: float, power: float, max_std: float, eps: float, num_samples: int | None,
                 head: str, chunk: int):
        checks = [("alpha", finite(alpha) and alpha > 0, "a finite number > 0"),
                  ("power", finite(power) and power > 0, "a finite number > 0"),
                  ("max_std", finite(max_std) and max_std > 0, "a finite number > 0"),
                  ("eps", finite(eps) and eps > 0, "a finite number > 0"),
                  ("num_samples", num_samples is None or integer(num_samples, 1), "null (all of D_r) or an integer >= 1"),
                  ("head", head in HEADS, f"one of {HEADS}"),
                  ("chunk", integer(chunk, 1), "an integer >= 1")]
        require(checks, locals(), "ff: ")
        self.alpha, self.power, self.max_std, self.eps = alpha, power, max_std, eps
        self.num_samples, self.head, self.chunk = num_samples, head, chunk

    def noise_std(self, fisher: Tensor) -> Tensor:
        """Per-weight noise std: large where the retain data barely constrains the weight."""
        return (self.alpha * (fisher + self.eps).pow(-self.power)).clamp(max=self.max_std)

    def fisher(self, model: nn.Module, task) -> Tensor:
        data, retain = task.data, task.split.retain
        if self.num_samples is not None and self.num_samples < len(retain):
            g = torch.Generator().manual_seed(task.seed)
            retain = retain[torch.randperm(len(retain), generator=g)[:self.num_samples].to(retain.device)]
        return diagonal_fisher(model, data.prepare(data.x_train[retain]), self.chunk)

    def unlearn(self, model, task):
        model.eval()
        std = self.noise_std(self.fisher(model, task))
        g = torch.Generator(device=std.device).manual_seed(task.seed)
        add_flat_(model, std * torch.randn(std.shape, generator=g, device=std.device))
        with torch.no_grad():
            gone = forgotten_classes(task)
            if self.head != "keep" and len(gone):
                model.fc.weight[gone] = 0
                if model.fc.bias is not None:
                    model.fc.bias[gone] = 0 if self.head == "zero" else -1e4
        return model
