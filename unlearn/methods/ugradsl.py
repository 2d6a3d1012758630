"""UGradSL: gradient-mixed unlearning with negative label smoothing on the forget set (Di et al.)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.checks import P, SMOOTH_RATE, finite, require
from unlearn.losses import mixed_loss
from unlearn.methods.base import LossMethod

MODES = ("fixed", "adaptive")
DISTANCES = ("feature_cosine", "input_l2")
TERMS = (None, "retain", "forget")  # `without`: a term of Eq. 10 left out (Table 6's ablation rows), or neither


def pair_distances(model: nn.Module, xf: Tensor, xr: Tensor, distance: str) -> Tensor:
    """[n_f, n_r] distances between forget and retain inputs, without gradients.

    feature_cosine: 1 - cos(features(x_f), features(x_r)) on penultimate activations, computed in eval
    mode (no BN statistics updated, no dropout); input_l2: Euclidean distance of the model inputs.
    """
    with torch.no_grad():
        if distance == "input_l2":
            return torch.cdist(xf.flatten(1).float(), xr.flatten(1).float())
        was_training = model.training
        model.eval()
        ff, fr = model.features(xf).flatten(1), model.features(xr).flatten(1)
        model.train(was_training)
        return 1 - F.normalize(ff.float(), dim=1) @ F.normalize(fr.float(), dim=1).T


def adaptive_smooth_rate(alpha: float, dist: Tensor, delta: float) -> Tensor:
    """Per-forget-sample rate alpha_i = alpha * (1 - c_i / n_r), c_i = #{j : dist[i, j] < delta}.

    An isolated forget sample (c_i = 0) keeps the full alpha; one whose every paired retain sample
    lies within delta (c_i = n_r) gets 0, i.e. no smoothing and no extra push to forget it.
    """
    counts = (dist < delta).sum(1).float()
    return alpha * (1 - counts / dist.shape[1])


def check_mixed(smooth_rate, p, prefix: str) -> None:
    """The two sweep axes of Eq. 10 (rules in unlearn.checks), checked by every method that takes them."""
    SMOOTH_RATE.check(smooth_rate, prefix)
    P.check(p, prefix)


class UGradSL(LossMethod):
    """L = p * CE(B_r) - (1 - p) * CE_GLS(B_f, alpha)  (Eq. 10); an epoch is one pass over D_f.

    Each forget batch is paired with an equal-size retain batch. `smooth_rate_mode=adaptive` (arXiv
    Sec. 10) gives each forget sample its own rate alpha_i = alpha * (1 - c_i / n_Br), c_i = number of
    retain samples of the paired batch B_r within distance `delta` of it (see `adaptive_smooth_rate`).
    `without=retain|forget` leaves that term out and keeps the other's weight, its forward pass skipped: Table 6's
    ablation rows (GA, "w/o D_r", FT) as the same method, loop and budget with one component removed.
    """

    drive = "forget"
    pair = True

    def __init__(self, *, smooth_rate: float, p: float, smooth_rate_mode: str, distance: str, delta: float,
                 without: str | None, **recipe):
        super().__init__(**recipe)
        name = type(self).__name__.lower()
        check_mixed(smooth_rate, p, f"{name}: ")
        require([("smooth_rate_mode", smooth_rate_mode in MODES, f"one of {MODES}"),
                 ("distance", distance in DISTANCES, f"one of {DISTANCES}"),
                 ("delta", finite(delta) and delta > 0, "a finite number > 0 (distance threshold)"),
                 ("without", without in TERMS, "null, retain or forget (a term of Eq. 10 to leave out)")],
                {"smooth_rate_mode": smooth_rate_mode, "distance": distance, "delta": delta, "without": without},
                f"{name}: ")
        self.smooth_rate, self.p, self.without = smooth_rate, p, without
        self.smooth_rate_mode, self.distance, self.delta = smooth_rate_mode, distance, delta

    def forget_alpha(self, model: nn.Module, xf: Tensor, xr: Tensor) -> float | Tensor:
        if self.smooth_rate_mode == "fixed" or self.smooth_rate == 0:
            return self.smooth_rate
        return adaptive_smooth_rate(self.smooth_rate, pair_distances(model, xf, xr, self.distance), self.delta)

    def loss(self, run, forget, retain):
        (xf, yf), (xr, yr) = forget, retain
        if self.without == "forget":  # p * CE(B_r): fine-tuning at the mixed loss's weight
            r = F.cross_entropy(run.model(xr), yr)
            run.record(retain_loss=r.detach())
            return self.p * r
        alpha = self.forget_alpha(run.model, xf, xr)
        if self.without == "retain":  # -(1 - p) * CE_GLS(B_f): the ascent step the mixed loss takes
            loss, f, _ = mixed_loss(run.model(xf), yf, alpha, self.p)
            run.record(forget_loss=f.detach())
            return loss
        loss, f, r = mixed_loss(run.model(xf), yf, alpha, self.p, run.model(xr), yr)
        run.record(forget_loss=f.detach(), retain_loss=r.detach())
        return loss
