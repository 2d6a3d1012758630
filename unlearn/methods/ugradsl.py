"""UGradSL: gradient-mixed unlearning with negative label smoothing on the forget set (Di et al.)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.losses import gls_cross_entropy
from unlearn.methods.base import LossMethod

MODES = ("fixed", "adaptive")
DISTANCES = ("feature_cosine", "input_l2")


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


class UGradSL(LossMethod):
    """L = p * CE(B_r) - (1 - p) * CE_GLS(B_f, alpha)  (Eq. 10); an epoch is one pass over D_f.

    Each forget batch is paired with an equal-size retain batch. `use_retain=False` drops the
    retain term (the "without D_r" ablation: pure GA with GLS); `smooth_rate=0` removes NLS.
    `smooth_rate_mode=adaptive` (arXiv Sec. 10) gives each forget sample its own rate
    alpha_i = alpha * (1 - c_i / n_Br), c_i = number of retain samples of the paired batch B_r within
    distance `delta` of it (see `adaptive_smooth_rate`).
    """

    drive = "forget"
    pair = True

    def __init__(self, smooth_rate: float = -0.5, p: float = 0.5, use_retain: bool = True,
                 smooth_rate_mode: str = "fixed", distance: str = "feature_cosine", delta: float = 0.1,
                 **recipe):
        super().__init__(**recipe)
        if smooth_rate > 1:
            raise ValueError(f"smooth_rate={smooth_rate} must be <= 1 (negative = NLS, 0 = CE, (0, 1] = PLS)")
        if not 0 <= p <= 1:
            raise ValueError(f"p={p} must be in [0, 1] (weight of the gradient-descent term)")
        if smooth_rate_mode not in MODES:
            raise ValueError(f"smooth_rate_mode={smooth_rate_mode!r}; allowed: {MODES}")
        if distance not in DISTANCES:
            raise ValueError(f"distance={distance!r}; allowed: {DISTANCES}")
        if not delta > 0:
            raise ValueError(f"delta={delta} must be > 0 (distance threshold of the adaptive smooth rate)")
        if smooth_rate_mode == "adaptive" and not use_retain:
            raise ValueError("smooth_rate_mode='adaptive' needs use_retain=true: the rate counts retain neighbours")
        self.smooth_rate, self.p, self.use_retain = smooth_rate, p, use_retain
        self.smooth_rate_mode, self.distance, self.delta = smooth_rate_mode, distance, delta
        self.pair = use_retain

    def forget_alpha(self, model: nn.Module, xf: Tensor, xr: Tensor | None) -> float | Tensor:
        if self.smooth_rate_mode == "fixed" or self.smooth_rate == 0:
            return self.smooth_rate
        return adaptive_smooth_rate(self.smooth_rate, pair_distances(model, xf, xr, self.distance), self.delta)

    def loss(self, model, forget, retain):
        xf, yf = forget
        xr = retain[0] if retain is not None else None
        ascent = gls_cross_entropy(model(xf), yf, self.forget_alpha(model, xf, xr))
        if not self.use_retain:
            return -ascent
        xr, yr = retain
        return self.p * F.cross_entropy(model(xr), yr) - (1 - self.p) * ascent
