"""Retrain: train from scratch on the retain set with the original recipe (exact-unlearning reference)."""
from unlearn.methods.base import RecipeMethod
from unlearn.train import fit


class Retrain(RecipeMethod):
    """Fresh initialisation (seeded), then the recipe on D_r only. With the original model's recipe the
    task's cached reference Retrain is handed over instead of training it again."""

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
