"""The two reference models of a run, the original and Retrain, and their metrics, cached by content.

The original model is keyed by (data set, label set, model, training recipe, seed, environment), Retrain
by (original key, split, recipe, seed, environment), and their metrics on a split by the checkpoint's
content digest, so a deleted and retrained checkpoint, or one from another machine, never inherits stale
metrics. The environment (torch version, device type, CPU thread count) is part of the model keys because
training results differ with it, and so are non-default step mechanics (precision, channels_last, compile).

Training checkpoints its state next to the cache file (`<kind>-<hash>.resume.pt`, every `checkpoint_every`
epochs), so a killed or preempted job resumes where it stopped. `original.checkpoint` replaces training of
the original model with weights from outside, keyed by the file's SHA-256.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from torch import nn

from unlearn.cache import cached, weights_digest
from unlearn.external import External
from unlearn.identity import AT_DEFAULT, NOT_IDENTITY, config_hash
from unlearn.metrics import METRICS_VERSION
from unlearn.progress import Diverged, nonfinite
from unlearn.steps import CompileClock, Compute
from unlearn.train import Checkpoints, Recipe, fit

log = logging.getLogger("unlearn")


def environment(device: torch.device) -> dict:
    """What besides the config changes trained weights: torch version, device type, CPU threads and the CPU's
    instruction set (the same run gives other numbers on an AVX2 and an AVX-512 machine), so a cache shared by
    different machines never hands one of them a model it would not have trained."""
    env = {"torch": torch.__version__, "device": device.type}
    if device.type == "cpu":
        env["threads"] = torch.get_num_threads()
        env["cpu_capability"] = cpu_capability()
    return env


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels use here, e.g. AVX2 or AVX512 (ATEN_CPU_CAPABILITY lowers it)."""
    return torch.backends.cpu.get_cpu_capability()


@dataclass(frozen=True)
class Spec:
    """What determines the two reference models and their metrics, read once from the config: the parts of the
    cache keys that are not the data, the split or the environment."""

    dataset: dict  # the data set's config without the keys that do not change its samples (NOT_IDENTITY)
    model: dict  # the model's config
    labels: str  # the label set the paradigm trains on (fine or coarse)
    holdout: float | None  # eval.validation_fraction when the test set is a validation split taken from D_tr
    seed: int
    recipe: Recipe  # how both models train
    compute: Compute  # precision, memory format, compilation of the steps
    eval: dict  # the evaluation settings that change the reference metrics
    checkpoint: str | None  # original.checkpoint: the original model's weights from outside, or None

    @classmethod
    def of(cls, cfg: DictConfig, recipe: Recipe, labels: str) -> "Spec":
        """The spec of a validated run config."""
        return cls(dataset={k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items()
                            if k not in NOT_IDENTITY["dataset"]},
                   model=OmegaConf.to_container(cfg.model, resolve=True), labels=labels,
                   holdout=cfg.eval.validation_fraction if cfg.eval.split == "validation" else None, seed=cfg.seed,
                   recipe=recipe, compute=Compute(precision=cfg.precision, channels_last=cfg.channels_last,
                                                  compile=cfg.compile, cudnn=cfg.cudnn),
                   eval={k: v for k, v in OmegaConf.to_container(cfg.eval, resolve=True).items()
                         if k not in NOT_IDENTITY["eval"] and AT_DEFAULT["eval"].get(k, object()) != v},
                   checkpoint=cfg.original.checkpoint or None)


@dataclass(frozen=True)
class Store:
    """Where the reference models are cached and how their training is kept (config keys cache_dir,
    lock_timeout, checkpoint_every; checked by validate.check_config)."""

    folder: str | None  # the cache folder (absolute); None = no cache, train every time
    lock_timeout: float  # seconds to wait for another job computing the same model
    checkpoint_every: int  # epochs between resume checkpoints; 0 = never

    @classmethod
    def of(cls, cfg: DictConfig) -> "Store":
        return cls(folder=to_absolute_path(cfg.cache_dir), lock_timeout=float(cfg.lock_timeout),
                   checkpoint_every=cfg.checkpoint_every)


class References:
    """Load-or-train the original and Retrain models of one (spec, data, split); memoised per run. `build_model`
    returns a fresh model; `log_curve(metrics, step)` receives the training curves."""

    def __init__(self, spec: Spec, store: Store, data, split, device: torch.device,
                 build_model: Callable[[], nn.Module], log_curve=None):
        self.spec, self.store, self.data, self.split, self.device = spec, store, data, split, device
        self.build_model, self.log_curve = build_model, log_curve
        self.replay_curve = log_curve  # where a cached model's training curve is replayed (no stage hooks)
        self._models: dict[str, tuple[nn.Module, dict]] = {}
        self.external = External(spec.checkpoint, build_model) if spec.checkpoint else None

    @property
    def recipe(self) -> Recipe:
        return self.spec.recipe

    @property
    def compute(self) -> Compute:
        return self.spec.compute

    def original_key(self) -> dict:
        s = self.spec
        key = {"dataset": s.dataset, "labels": s.labels, "holdout": s.holdout, "model": s.model}
        if self.external is not None:  # not trained: the weights are the file's content
            return {**key, "checkpoint": {"sha256": self.external.sha256}}
        return {**key, "train": s.recipe.to_dict(), "seed": s.seed, **self._env()}

    def retrain_key(self) -> dict:
        return {"original": config_hash(self.original_key()), "split": self.split.fingerprint(),
                "train": self.recipe.to_dict(), "seed": self.spec.seed, **self._env()}

    def _env(self) -> dict:
        env = {"env": environment(self.device)}
        compute = {} if self.compute.plain else {  # the plain fp32 loop keeps the keys (and caches) it always had
            "precision": self.compute.precision, "channels_last": self.compute.channels_last,
            "compile": self.compute.compile}
        if self.device.type == "cuda" and self.compute.cudnn != "deterministic":
            compute["cudnn"] = self.compute.cudnn  # benchmarked kernels give other GPU numbers (fast=true)
        if compute:
            env["compute"] = compute
        return env

    def cache_path(self, name: str) -> Path | None:
        """The cache file of reference model `name` (original or retrain); None without a cache."""
        if self.store.folder is None:
            return None
        key = self.original_key() if name == "original" else self.retrain_key()
        return Path(self.store.folder) / f"{name}-{config_hash(key)}.pt"

    def is_cached(self, name: str) -> bool:
        """Whether `name` has a cache file (not checked: the cost estimate's guess that it need not train)."""
        path = self.cache_path(name)
        return path is not None and path.is_file()

    def resume_path(self, name: str, key: dict) -> Path | None:
        """Where training of `name` keeps its resume state: next to its cache file."""
        return None if self.store.folder is None else Path(self.store.folder) / f"{name}-{config_hash(key)}.resume.pt"

    def _model(self, name: str, key: dict, idx) -> tuple[nn.Module, dict]:
        if name not in self._models:
            resume = self.resume_path(name, key)
            checkpoints = Checkpoints(resume, key, self.store.checkpoint_every) if resume is not None else None

            trained, points = [], []

            def keep(metrics: dict, step: int) -> None:  # the curve goes into the cache file with the weights
                points.append(({k: v if isinstance(v, (int, float)) else float(v) for k, v in metrics.items()}, int(step)))
                if self.log_curve is not None:
                    self.log_curve(metrics, step)

            def train():
                trained.append(True)
                if name == "original" and self.external is not None:
                    return self.external.stored()
                model, start = self.build_model().to(self.device), time.perf_counter()
                with CompileClock(self.compute.compile) as clock:  # compilations are not the training's time
                    fit(model, self.data, idx, self.recipe, self.spec.seed, desc=name, log=keep,
                        compute=self.compute, checkpoints=checkpoints)
                    if self.device.type == "cuda":
                        torch.cuda.synchronize()
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                if bad := nonfinite(state):  # fit stops at a non-finite loss; this catches the rest
                    raise Diverged(f"{name}: training ended with non-finite weights ({', '.join(bad[:3])}); "
                                   f"lower train.lr={self.recipe.lr:g}. Nothing was cached")
                info = {"train_seconds": time.perf_counter() - start - clock.seconds, "digest": weights_digest(state),
                        **({"compile_seconds": clock.seconds} if self.compute.compile else {}),
                        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
                return {"state_dict": state, "info": info, "curve": points}

            stored = self._cached(name, key, train)
            if bad := nonfinite(stored["state_dict"]):  # cached by an older version: never reused
                path = self.cache_path(name)
                log.warning("cached %s model %s has non-finite weights (%s); moved it aside and training again",
                            name, path, ", ".join(bad[:3]))
                path.replace(path.with_name(path.name + f".{time.strftime('%Y%m%d-%H%M%S')}.nonfinite"))
                stored = self._cached(name, key, train)
            if not trained and self.replay_curve is not None:  # from the cache: its curve still reaches curves.csv and W&B
                for metrics, step in stored.get("curve", []):
                    self.replay_curve(metrics, step)
            if checkpoints is not None:
                checkpoints.clear()  # the finished model is cached: its resume state is obsolete
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

    def _eval_key(self, name: str) -> tuple[nn.Module, dict]:
        model, info = self.original() if name == "original" else self.retrain()
        return model, {"weights": info["digest"], "split": self.split.fingerprint(),
                       "eval": self.spec.eval, "seed": self.spec.seed,
                       "metrics_version": METRICS_VERSION,  # a change of evaluate's keys recomputes them
                       "env": environment(self.device)}  # float sums (and so MIA decisions) vary with it

    def metrics(self, name: str, evaluate: Callable[[nn.Module], dict]) -> dict[str, float]:
        """`evaluate(model)` of a reference model on this split, computed once per model content and split."""
        model, key = self._eval_key(name)
        return dict(self._cached(f"metrics-{name}", key, lambda: evaluate(model)))

    def predictions(self, name: str, predict: Callable[[nn.Module], dict]) -> dict[str, torch.Tensor]:
        """`predict(model)` (per-sample tensors for predictions.npz) of a reference model, cached like `metrics`."""
        model, key = self._eval_key(name)
        return dict(self._cached(f"predictions-{name}", key, lambda: predict(model)))

    def _cached(self, kind: str, key: dict, compute: Callable[[], dict]) -> dict:
        return cached(kind, key, self.store.folder, compute, lock_timeout=self.store.lock_timeout)
