"""l1-sparse: fine-tune on D_r with a decaying l1 penalty on the weights (Jia et al. 2023, "Model
Sparsity Can Simplify Machine Unlearning", the `FT_prune` / l1-sparse MU baseline)."""
import torch
import torch.nn.functional as F

from unlearn.checks import finite
from unlearn.methods.base import LossMethod


class L1Sparse(LossMethod):
    """L = CE(B_r) + gamma_t * ||theta||_1 with gamma_t = l1_coef * (1 - t / E) in epoch t = 0..E-1.

    The coefficient decays linearly towards 0 over the unlearning epochs, per epoch, as in the
    authors' code; the norm covers every trainable parameter (their `l1_regularization`).
    """

    drive = "retain"

    def __init__(self, *, l1_coef: float, **recipe):
        super().__init__(**recipe)
        if not (finite(l1_coef) and l1_coef >= 0):
            raise ValueError(f"l1_coef={l1_coef!r} must be a finite number >= 0 (0 = plain FT)")
        self.l1_coef = float(l1_coef)

    def coef(self, epoch: int) -> float:
        return self.l1_coef * (1 - epoch / self.recipe.epochs)

    def start_epoch(self, run):
        run.state["gamma"] = self.coef(run.epoch)

    def loss(self, run, forget, retain):
        x, y = retain
        l1 = torch.cat([p.flatten() for p in run.model.parameters() if p.requires_grad]).abs().sum()
        return F.cross_entropy(run.model(x), y) + run.state["gamma"] * l1
