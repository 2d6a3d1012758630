"""The two reference models of a run, the original and Retrain, and their metrics, cached by content.

The original model is keyed by (data set, label set, model, training recipe, seed, environment), Retrain
by (original key, split, recipe, seed, environment), and their metrics on a split by the checkpoint's
content digest, so a deleted and retrained checkpoint, or one from another machine, never inherits stale
metrics. The environment (torch version, device type, CPU thread count) is part of the model keys because
training results differ with it.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from unlearn.cache import cached, weights_digest
from unlearn.identity import NOT_IDENTITY, config_hash
from unlearn.train import Recipe, fit

log = logging.getLogger("unlearn")


def environment(device: torch.device) -> dict:
    """What besides the config changes trained weights: torch version, device type, CPU threads."""
    env = {"torch": torch.__version__, "device": device.type}
    if device.type == "cpu":
        env["threads"] = torch.get_num_threads()
    return env


class References:
    """Load-or-train the original and Retrain models of one (config, split, seed); memoised per run."""

    def __init__(self, cfg: DictConfig, data, split, device: torch.device, recipe: Recipe,
                 build_model: Callable[[], nn.Module], cache_dir: str, labels: str, log_curve=None):
        self.cfg, self.data, self.split, self.device, self.recipe = cfg, data, split, device, recipe
        self.build_model, self.cache_dir, self.labels = build_model, cache_dir, labels
        self.log_curve = log_curve
        self._models: dict[str, tuple[nn.Module, dict]] = {}

    def original_key(self) -> dict:
        dataset = {k: v for k, v in OmegaConf.to_container(self.cfg.dataset, resolve=True).items()
                   if k not in NOT_IDENTITY["dataset"]}
        holdout = self.cfg.eval.validation_fraction if self.cfg.eval.split == "validation" else None
        return {"dataset": dataset, "labels": self.labels, "holdout": holdout,
                "model": OmegaConf.to_container(self.cfg.model, resolve=True), "train": self.recipe.to_dict(),
                "seed": self.cfg.seed, "env": environment(self.device)}

    def retrain_key(self) -> dict:
        return {"original": config_hash(self.original_key()), "split": self.split.fingerprint(),
                "train": self.recipe.to_dict(), "seed": self.cfg.seed, "env": environment(self.device)}

    def _model(self, name: str, key: dict, idx) -> tuple[nn.Module, dict]:
        if name not in self._models:
            def train():
                model, start = self.build_model().to(self.device), time.perf_counter()
                fit(model, self.data, idx, self.recipe, self.cfg.seed, desc=name, log=self.log_curve)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                info = {"train_seconds": time.perf_counter() - start, "digest": weights_digest(state),
                        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
                return {"state_dict": state, "info": info}

            stored = cached(name, key, self.cache_dir, train)
            model = self.build_model()
            try:
                model.load_state_dict(stored["state_dict"])
            except RuntimeError as e:
                raise ValueError(f"the cached {name} model does not fit the configured model: {e}") from e
            self._models[name] = (model.to(self.device).eval(), dict(stored["info"]))
        return self._models[name]

    def original(self) -> tuple[nn.Module, dict]:
        """The model trained on all of D_tr, and its info (`train_seconds`, `digest`)."""
        return self._model("original", self.original_key(), torch.arange(len(self.data.y_train), device=self.device))

    def retrain(self) -> tuple[nn.Module, dict]:
        """The model trained from scratch on D_r with the same recipe: the exact-unlearning reference."""
        return self._model("retrain", self.retrain_key(), self.split.retain)

    def metrics(self, name: str, evaluate: Callable[[nn.Module], dict]) -> dict[str, float]:
        """`evaluate(model)` of a reference model on this split, computed once per model content and split."""
        model, info = self.original() if name == "original" else self.retrain()
        key = {"weights": info["digest"], "split": self.split.fingerprint(),
               "eval": OmegaConf.to_container(self.cfg.eval, resolve=True), "seed": self.cfg.seed}
        return dict(cached(f"metrics-{name}", key, self.cache_dir, lambda: evaluate(model)))
