"""UGradSL without D_r (paper Table 6, "UGradSL w/o gradient-mixed"): gradient ascent on D_f with GLS."""
from unlearn.losses import mixed_loss
from unlearn.methods.base import LossMethod
from unlearn.methods.ugradsl import check_mixed


class UGradSLNoRetain(LossMethod):
    """L = -(1 - p) * CE_GLS(B_f, alpha): Eq. 10 with the retain term removed and nothing else changed, so
    its ascent step equals mixed UGradSL's at any p; one epoch = one pass over D_f."""

    drive = "forget"

    def __init__(self, *, smooth_rate: float, p: float, **recipe):
        super().__init__(**recipe)
        check_mixed(smooth_rate, p, "ugradsl_no_retain: ")
        self.smooth_rate, self.p = smooth_rate, p

    def loss(self, run, forget, retain):
        xf, yf = forget
        loss, f, _ = mixed_loss(run.model(xf), yf, self.smooth_rate, self.p)
        run.record(forget_loss=f.detach())
        return loss
