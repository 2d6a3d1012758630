"""NegGrad+: gradient descent on D_r mixed with gradient ascent on D_f (Kurmanji et al. 2023)."""
from unlearn.losses import mixed_loss
from unlearn.methods.base import LossMethod
from unlearn.methods.ugradsl import check_mixed


class NegGradPlus(LossMethod):
    """L = p * CE(B_r) - (1 - p) * CE(B_f): Eq. 10 without label smoothing; an epoch is one pass over D_r
    with an equal-size forget batch cycled from D_f (UGradSL+'s loop)."""

    drive = "retain"
    pair = True

    def __init__(self, *, p: float, **recipe):
        super().__init__(**recipe)
        check_mixed(0.0, p, "neggrad_plus: ")
        self.p = p

    def loss(self, run, forget, retain):
        (xf, yf), (xr, yr) = forget, retain
        loss, f, r = mixed_loss(run.model(xf), yf, 0.0, self.p, run.model(xr), yr)
        run.record(forget_loss=f.detach(), retain_loss=r.detach())
        return loss
