"""NegGrad+: gradient descent on D_r mixed with gradient ascent on D_f (Kurmanji et al. 2023)."""
from unlearn.methods.ugradsl_plus import UGradSLPlus


class NegGradPlus(UGradSLPlus):
    """L = p * CE(B_r) - (1 - p) * CE(B_f): the UGradSL+ loop with alpha fixed to 0 (no smoothing),
    whatever the top-level `smooth_rate`; an epoch is one pass over D_r."""

    def __init__(self, p: float = 0.5, **recipe):
        super().__init__(smooth_rate=0.0, p=p, smooth_rate_mode="fixed", **recipe)
