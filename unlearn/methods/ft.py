"""FT: fine-tune the original model on the retain set (Warnecke et al. 2021; Golatkar et al. 2020)."""
import torch.nn.functional as F

from unlearn.methods.base import LossMethod


class FT(LossMethod):
    """Minimise cross-entropy on D_r for a few epochs, relying on catastrophic forgetting of D_f."""

    drive = "retain"

    def loss(self, run, forget, retain):
        x, y = retain
        return F.cross_entropy(run.model(x), y)
