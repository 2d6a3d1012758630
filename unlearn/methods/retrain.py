"""Retrain: train from scratch on the retain set with the original recipe (exact-unlearning reference)."""
from dataclasses import replace

from unlearn.methods.base import RecipeMethod
from unlearn.train import fit


class Retrain(RecipeMethod):
    """Fresh initialisation (seeded), then the recipe on D_r only. With the original model's recipe the
    task's cached reference Retrain is handed over instead of training it again.

    It takes every field of the training recipe (conf/method/retrain.yaml reads each from `train`): a recipe with
    clean epochs, Nesterov momentum or weight averaging (the CIFAR-10 tier's) is the reference's only when all of
    them are carried over; a subset trained another model (RA 92.9 instead of the reference's ~99)."""

    def __init__(self, *, clean_epochs: int, nesterov: bool, label_smoothing: float, lookahead: bool,
                 bias_lr_scale: float, **sgd):
        super().__init__(**sgd)  # the SGD fields, as every recipe method takes them
        self.recipe = replace(self.recipe, clean_epochs=clean_epochs, nesterov=nesterov,
                              label_smoothing=label_smoothing, lookahead=lookahead, bias_lr_scale=bias_lr_scale)

    def reuses_reference(self, task) -> bool:
        return task.retrain is not None and self.recipe == task.train_recipe

    def __call__(self, model, task):
        return self.unlearn(None, task)

    def unlearn(self, model, task):
        if self.reuses_reference(task):
            return task.retrain()[0]
        if task.build_model is None:
            raise ValueError("retrain needs task.build_model to create a freshly initialised model")
        fresh = task.build_model().to(task.device)
        return fit(fresh, task.data, task.split.retain, self.recipe, task.seed, desc="retrain", log=task.log,
                   compute=task.compute, lr_key="method.lr")

    def workload(self, task):
        return None if self.reuses_reference(task) else (len(task.split.retain), self.recipe.epochs)

    def runtime(self, seconds, task):
        return task.retrain()[1]["train_seconds"] if self.reuses_reference(task) else seconds
