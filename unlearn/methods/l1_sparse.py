"""l1-sparse: fine-tune on D_r with a decaying l1 penalty on the weights (Jia et al. 2023, "Model
Sparsity Can Simplify Machine Unlearning", the `FT_prune` / l1-sparse MU baseline)."""
import math

import torch
import torch.nn.functional as F

from unlearn.methods.base import LossMethod


class L1Sparse(LossMethod):
    """L = CE(B_r) + gamma_t * ||theta||_1 with gamma_t = l1_coef * (1 - t / E) in epoch t = 0..E-1.

    The coefficient decays linearly towards 0 over the unlearning epochs, per epoch, as in the
    authors' code; the norm covers every trainable parameter (their `l1_regularization`).
    """

    drive = "retain"

    def __init__(self, l1_coef: float = 1e-4, **recipe):
        super().__init__(**recipe)
        if not (isinstance(l1_coef, (int, float)) and l1_coef >= 0 and math.isfinite(l1_coef)):
            raise ValueError(f"l1_coef={l1_coef!r} must be a finite number >= 0 (0 = plain FT)")
        self.l1_coef = float(l1_coef)

    def coef(self, epoch: int) -> float:
        return self.l1_coef * (1 - epoch / self.recipe.epochs)

    def start_epoch(self, epoch, task, generator):
        self._gamma = self.coef(epoch)

    def loss(self, model, forget, retain):
        x, y = retain
        l1 = torch.cat([p.flatten() for p in model.parameters() if p.requires_grad]).abs().sum()
        return F.cross_entropy(model(x), y) + self._gamma * l1
