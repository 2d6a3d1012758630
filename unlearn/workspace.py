"""One experiment, top to bottom: check the config, build data and split, get the reference models, unlearn,
evaluate, record."""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from unlearn import estimate, locks, progress, stages
from unlearn.checks import finite
from unlearn.groups import build
from unlearn.methods.base import Task
from unlearn.metrics import (accuracy, evaluate, outputs, predict_probs, prediction_labels, predictions, regime_note,
                             score)
from unlearn.references import References, Spec, Store
from unlearn.results import Recorder
from unlearn.rundir import Claim, job, stopping_on_signals
from unlearn.steps import CompileClock, apply_fast, emulated_bf16
from unlearn.train import Recipe
from unlearn.validate import (ConfigError, check_budget, check_config, check_lock, check_outputs, check_split,
                              check_task)

log = logging.getLogger("unlearn")


def seed_everything(seed: int) -> None:
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available on this machine; use device=auto or device=cpu")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


class Workspace:
    """Everything is validated in `__init__`, before any training or any file is written, in the phases that
    unlearn.validate.PHASES lists; `__init__` claims the run folder (`unlearn.rundir`) before the last one."""

    def __init__(self, cfg: DictConfig):
        try:
            # SIGTERM while data decodes into the cache: its lock is released; locks wait at most lock_timeout
            with stopping_on_signals(), locks.lock_wait(_lock_timeout(cfg)):
                self._setup(cfg)
        except ConfigError:
            raise
        except ValueError as e:  # a constructor or loader rejected a value
            raise ConfigError(str(e)) from e

    def _setup(self, cfg: DictConfig, fitting: bool = True) -> None:
        self.cfg = cfg
        check_config(cfg)
        self.out_dir = Path(cfg.run_dir or (HydraConfig.get().runtime.output_dir if HydraConfig.initialized()
                                            else "."))
        check_outputs(cfg, self.out_dir)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        progress.configure(cfg)  # progress keys; warns on more threads than cores
        self.device = resolve_device(cfg.device)
        if note := apply_fast(cfg, self.device):  # before anything reads precision, channels_last, cudnn
            log.info(note)
        if slow := emulated_bf16(cfg, self.device):
            log.warning(slow)
        seed_everything(cfg.seed)
        self.method = build(cfg.method)
        self.recipe = Recipe(**cfg.train)
        self.paradigm = build(cfg.paradigm)
        data = build(cfg.dataset)
        if self.paradigm.labels == "coarse":
            data = data.to_coarse()
        if cfg.eval.split == "validation":
            data = data.holdout(cfg.eval.validation_fraction)
        self.split = self.paradigm.split(data, cfg.seed).to(self.device)
        check_split(cfg, self.split)
        self.data = data.to(self.device)
        self.recorder = Recorder(cfg, self.out_dir, self.split.info)
        self.refs = References(Spec.of(cfg, self.recipe, self.paradigm.labels), Store.of(cfg), self.data, self.split,
                               self.device, self.new_model, self.curve)
        self.refs.replay_curve = self.recorder.curve  # a cached model's curve: recorded, no stage reached
        self.task = Task(self.data, self.split, self.device, cfg.seed, self.new_model, self.refs.retrain,
                         self.recipe, self.curve, compute=self.refs.compute)
        self.probe_seconds = 0.0  # time spent in `probe`, kept out of the method's RTE
        if cfg.eval.every_epoch:
            self.task.probe = self.probe
        check_task(self.method, self.task, cfg.model.name, self.sizing())
        self.budget = check_budget(self, apply=fitting)  # budget.minutes: does the run fit?
        if self.budget is not None and self.budget.applied:
            return self._setup(cfg, fitting=False)  # once more with the recipe that fits, written into cfg
        self.claim = Claim(self.out_dir)  # before any training: a second job given this run_dir is refused now
        check_lock(cfg, self.claim)
        log.info("data %s: %d train / %d test, %d classes; D_f %d, D_r %d; model %s %s; regime %s; device %s, "
                 "%d threads", data.name, len(data.y_train), len(data.y_test), data.num_classes,
                 len(self.split.forget), len(self.split.retain), cfg.model.name, self.sizing(),
                 OmegaConf.select(cfg, "regime.name", default="-"), self.device, torch.get_num_threads())
        estimate.announce(self, self.budget and self.budget.estimate)  # images x epochs per phase and minutes
        if self.budget is not None:  # a warning when the run as configured does not fit
            log.log(logging.WARNING if self.budget.warn else logging.INFO, self.budget.line())

    def sizing(self) -> str:
        keys = [k for k in ("width", "depth", "hidden", "dim", "patch_size") if k in self.cfg.model]
        return ", ".join(f"{k}={self.cfg.model[k]}" for k in keys)

    def curve(self, metrics: dict, step: int) -> None:
        """A training curve point (original, retrain, unlearn) to the recorder, then the stage `<phase>/<epoch>`
        (unlearn.stages: where the fault tests kill a run)."""
        self.recorder.curve(metrics, step)
        for key, epoch in metrics.items():
            if key.endswith("/epoch"):
                stages.reached(f"{key.removesuffix('/epoch')}/{epoch}")

    def new_model(self):
        torch.manual_seed(self.cfg.seed)
        return build(self.cfg.model, num_classes=self.data.num_classes, input_shape=list(self.data.input_shape))

    def probe(self, model) -> dict[str, float]:
        """UA and RA of the model being unlearned (eval.every_epoch): one eval-mode accuracy pass over D_f and
        D_r, no MIA; its time is subtracted from the method's RTE."""
        start = time.perf_counter()
        d, s, bs = self.data, self.split, self.cfg.eval.batch_size
        out = {"UA": 100.0 - accuracy(predict_probs(model, d, d.x_train[s.forget], bs), d.y_train[s.forget]),
               "RA": accuracy(predict_probs(model, d, d.x_train[s.retain], bs), d.y_train[s.retain])}
        self.probe_seconds += time.perf_counter() - start
        return out

    def unlearn(self, original) -> tuple[torch.nn.Module, float]:
        """Run the method on the original model; returns the unlearned model and its RTE in seconds (without
        the time of per-epoch probes and of torch.compile's compilations, kept in `compile_seconds`)."""
        start, self.probe_seconds = time.perf_counter(), 0.0
        with CompileClock(self.task.compute.compile) as clock:  # torch.compile's compilations: not the method's time
            model = self.method(original, self.task)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        seconds = time.perf_counter() - start - self.probe_seconds - clock.seconds
        self.compile_seconds = clock.seconds
        if self.probe_seconds:
            log.info("per-epoch UA/RA probes took %.2f s (not counted in RTE)", self.probe_seconds)
        if clock.count:
            log.info("torch.compile: %d compilation(s), %.1f s (not counted in RTE; column compile_s)", clock.count,
                     clock.seconds)
        return model, self.method.runtime(seconds, self.task)

    def evaluate(self, model, probs=None) -> dict[str, float]:
        return evaluate(model, self.data, self.split, self.cfg.seed, self.cfg.eval.batch_size,
                        self.cfg.eval.mia_shadow_size, probs=probs, mia_solver=self.cfg.eval.mia_solver)

    def predict(self, model, probs=None) -> dict:
        """Per-sample predictions on D_f and the evaluation set (metrics.predictions), for predictions.npz."""
        probs = outputs(model, self.data, self.split, self.cfg.eval.batch_size) if probs is None else probs
        return predictions(probs, self.data, self.split)

    def run(self) -> dict[str, float]:
        """The whole pipeline; returns every metric of the unlearned model plus `original/` and `retrain/` copies."""
        with job(self.claim), self.recorder, locks.lock_wait(self.cfg.lock_timeout):  # status finished / failed
            # (SIGTERM too) in the run folder; the results CSV's lock waits at most lock_timeout
            original, original_info = self.refs.original()  # trained once per (data, model, recipe, seed)
            _, retrain_info = self.refs.retrain()  # the exact-unlearning reference, cached per split
            unlearned, seconds = self.unlearn(original)
            probs = outputs(unlearned, self.data, self.split, self.cfg.eval.batch_size)  # one pass for both below
            metrics = score({"original": (self.refs.metrics("original", self.evaluate), original_info["train_seconds"]),
                             "retrain": (self.refs.metrics("retrain", self.evaluate), retrain_info["train_seconds"]),
                             "unlearned": (self.evaluate(unlearned, probs), seconds)})
            if self.cfg.compile:  # its own column: the compile seconds left out of RTE_s
                metrics["compile_s"] = self.compile_seconds
            preds = {**prediction_labels(self.data, self.split),
                     **{f"{name}_{k}": v for name in ("original", "retrain")
                        for k, v in self.refs.predictions(name, self.predict).items()},
                     **{f"unlearned_{k}": v for k, v in self.predict(unlearned, probs).items()}}
            self.recorder.finish(metrics, model=unlearned, predictions=preds)
        if note := regime_note(metrics, self.cfg.min_train_acc):
            log.warning(note)
        return metrics


def _lock_timeout(cfg: DictConfig) -> float | None:
    """cfg.lock_timeout if valid, else None (the default): check_config refuses a bad one before any lock is taken."""
    value = OmegaConf.select(cfg, "lock_timeout", default=None, throw_on_resolution_failure=False)
    return value if finite(value) and value > 0 else None


def run_experiment(cfg: DictConfig) -> dict[str, float]:
    """The whole pipeline of `run.py`, callable from tests and notebooks."""
    return Workspace(cfg).run()
