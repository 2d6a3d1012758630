"""UGradSL: gradient-mixed unlearning with negative label smoothing on the forget set (Di et al.)."""
import torch.nn.functional as F

from unlearn.losses import gls_cross_entropy
from unlearn.methods.base import LossMethod


class UGradSL(LossMethod):
    """L = p * CE(B_r) - (1 - p) * CE_GLS(B_f, alpha)  (Eq. 10); an epoch is one pass over D_f.

    Each forget batch is paired with an equal-size retain batch. `use_retain=False` drops the
    retain term (the "without D_r" ablation: pure GA with GLS); `smooth_rate=0` removes NLS.
    """

    drive = "forget"
    pair = True

    def __init__(self, smooth_rate: float = -0.5, p: float = 0.5, use_retain: bool = True, **recipe):
        super().__init__(**recipe)
        if smooth_rate > 1:
            raise ValueError(f"smooth_rate={smooth_rate} must be <= 1 (negative = NLS, 0 = CE, (0, 1] = PLS)")
        if not 0 <= p <= 1:
            raise ValueError(f"p={p} must be in [0, 1] (weight of the gradient-descent term)")
        self.smooth_rate, self.p, self.use_retain = smooth_rate, p, use_retain
        self.pair = use_retain

    def loss(self, model, forget, retain):
        xf, yf = forget
        ascent = gls_cross_entropy(model(xf), yf, self.smooth_rate)
        if not self.use_retain:
            return -ascent
        xr, yr = retain
        return self.p * F.cross_entropy(model(xr), yr) - (1 - self.p) * ascent
