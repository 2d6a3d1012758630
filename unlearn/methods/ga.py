"""GA: gradient ascent on the forget set (Graves et al. 2021; Thudi et al. 2021)."""
import torch.nn.functional as F

from unlearn.methods.base import LossMethod


class GA(LossMethod):
    """Maximise cross-entropy on D_f; one epoch is one pass over D_f."""

    drive = "forget"

    def loss(self, run, forget, retain):
        x, y = forget
        return -F.cross_entropy(run.model(x), y)
