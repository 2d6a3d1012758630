"""UGradSL+: the UGradSL loss driven by the retain set (FT-based, Algorithm 1 of the paper)."""
from unlearn.methods.ugradsl import UGradSL


class UGradSLPlus(UGradSL):
    """The UGradSL loss (including `smooth_rate_mode=adaptive`); an epoch is one pass over D_r, cycling D_f
    for the paired forget batch. The paper's FT-based variant of its own method."""

    drive = "retain"
