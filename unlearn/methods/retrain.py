"""Retrain: train from scratch on the retain set with the original recipe (exact-unlearning reference)."""
from unlearn.methods.base import Method
from unlearn.train import fit


class Retrain(Method):
    """Fresh initialisation (seeded), then the original model's training recipe on D_r only."""

    def __call__(self, model, task):
        return self.unlearn(None, task)

    def unlearn(self, model, task):
        if task.build_model is None:
            raise ValueError("retrain needs task.build_model to create a freshly initialised model")
        fresh = task.build_model().to(task.device)
        return fit(fresh, task.data, task.split.retain, self.recipe, task.seed, desc="retrain")
