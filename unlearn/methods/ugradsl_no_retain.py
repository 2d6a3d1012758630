"""UGradSL without D_r (paper Table 6, "UGradSL w/o gradient-mixed"): gradient ascent on D_f with GLS."""
from unlearn.methods.ugradsl import UGradSL


class UGradSLNoRetain(UGradSL):
    """L = -CE_GLS(B_f, alpha): the UGradSL loop with the retain term removed; one epoch = one pass
    over D_f. A separate name so result tables tell this ablation row apart from mixed UGradSL."""

    def __init__(self, smooth_rate: float = -0.5, **recipe):
        super().__init__(smooth_rate=smooth_rate, use_retain=False, smooth_rate_mode="fixed", **recipe)
