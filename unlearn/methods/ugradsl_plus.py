"""UGradSL+: the UGradSL loss driven by the retain set (FT-based, Algorithm 1 of the paper)."""
from unlearn.methods.ugradsl import UGradSL


class UGradSLPlus(UGradSL):
    """Same loss as UGradSL, including `smooth_rate_mode=adaptive` (alpha_i = alpha * (1 - c_i / n_Br));
    an epoch is one pass over D_r, cycling D_f for the paired forget batch."""

    drive = "retain"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.use_retain:
            raise ValueError("ugradsl_plus: use_retain=false is meaningless (UGradSL+ iterates over D_r)")
        self.pair = True
