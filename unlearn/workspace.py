"""One experiment: check the config, build data and split, load-or-train models, unlearn, evaluate, log."""
from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

from unlearn.cache import cached, cached_tensors, config_hash
from unlearn.methods.base import Task
from unlearn.methods.retrain import Retrain
from unlearn.metrics import HEADLINE, evaluate, summarize
from unlearn.results import append_row, git_commit, log_wandb, write_json
from unlearn.train import Recipe, fit

log = logging.getLogger("unlearn")
DEVICES = ("auto", "cpu", "cuda")
RUNTIME_DATA_KEYS = ("cache_dir", "num_workers", "download")  # where/how data is read, not what it is
WANDB_MODES = ("offline", "online", "disabled")


def seed_everything(seed: int) -> None:
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ValueError(f"device={name!r}; allowed: {DEVICES}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available on this machine; use device=auto or device=cpu")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


def check_top_level(cfg: DictConfig) -> None:
    """Fail on bad sweep axes before anything is built (the method re-checks what it uses)."""
    if not isinstance(cfg.seed, int):
        raise ValueError(f"seed={cfg.seed!r} must be an integer")
    if cfg.smooth_rate > 1:
        raise ValueError(f"smooth_rate={cfg.smooth_rate} must be <= 1 (alpha < 0: NLS, 0: CE, (0, 1]: PLS)")
    if not 0 <= cfg.p <= 1:
        raise ValueError(f"p={cfg.p} must be in [0, 1] (weight of the gradient-descent term)")
    if cfg.wandb.mode not in WANDB_MODES:
        raise ValueError(f"wandb.mode={cfg.wandb.mode!r}; allowed: {WANDB_MODES}")


def build(node: DictConfig, **runtime):
    """Instantiate a group config; its `name` key labels results and is not a constructor argument."""
    spec = OmegaConf.to_container(node, resolve=True)  # resolve ${...} against the root first
    spec.pop("name", None)
    try:
        return instantiate(spec, **runtime)
    except InstantiationException as e:  # surface our own validation errors, named by group
        if isinstance(e.__cause__, ValueError):
            raise ValueError(f"{node._key()}: {e.__cause__}") from None
        raise


class Workspace:
    """Everything is validated in `__init__`, before any training or any file is written."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        check_top_level(cfg)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.method = build(cfg.method)
        self.recipe = Recipe(**cfg.train)
        self.paradigm = build(cfg.paradigm)
        data = build(cfg.dataset)
        if self.paradigm.labels == "coarse":
            data = data.to_coarse()
        self.split = self.paradigm.split(data, cfg.seed).to(self.device)
        self.data = data.to(self.device)
        self.cache_dir = to_absolute_path(cfg.cache_dir)
        self.out_dir = Path(cfg.run_dir or (HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else "."))
        self.task = Task(self.data, self.split, self.device, cfg.seed, self.new_model)
        self.infos: dict[str, dict] = {}
        log.info("data %s: %d train / %d test, %d classes; D_f %d, D_r %d; device %s", data.name,
                 len(data.y_train), len(data.y_test), data.num_classes, len(self.split.forget),
                 len(self.split.retain), self.device)

    def new_model(self):
        torch.manual_seed(self.cfg.seed)
        return build(self.cfg.model, num_classes=self.data.num_classes, input_shape=list(self.data.input_shape))

    def original_key(self) -> dict:
        c = self.cfg
        dataset = {k: v for k, v in OmegaConf.to_container(c.dataset, resolve=True).items()
                   if k not in RUNTIME_DATA_KEYS}
        return {"dataset": dataset, "labels": self.paradigm.labels,
                "model": OmegaConf.to_container(c.model, resolve=True), "train": self.recipe.to_dict(),
                "seed": c.seed}

    def _train(self, idx, desc):
        def run(model):
            start = time.perf_counter()
            model = fit(model.to(self.device), self.data, idx, self.recipe, self.cfg.seed, desc)
            return model, {"train_seconds": time.perf_counter() - start}
        return run

    def original_model(self):
        model, self.infos["original"] = cached("original", self.original_key(), self.cache_dir, self.new_model(),
                                               self._train(torch.arange(len(self.data.y_train), device=self.device),
                                                           "original"), log)
        return model.to(self.device)

    def retrain_model(self):
        key = {"original": config_hash(self.original_key()), "split": self.split.fingerprint(),
               "train": self.recipe.to_dict(), "seed": self.cfg.seed}
        model, self.infos["retrain"] = cached("retrain", key, self.cache_dir, self.new_model(),
                                              self._train(self.split.retain, "retrain"), log)
        return model.to(self.device)

    def unlearn(self, original, retrain):
        """Run the method and time it; Retrain with the reference recipe reuses the cached reference."""
        if isinstance(self.method, Retrain) and self.method.recipe == self.recipe:
            log.info("method retrain: reusing the reference retrain model")
            return retrain, self.infos["retrain"]["train_seconds"]
        start = time.perf_counter()
        model = self.method(original, self.task)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return model, time.perf_counter() - start

    def evaluate(self, original, retrain, unlearned, seconds: float) -> dict[str, float]:
        """Headline and fine metrics of the unlearned model, plus `original/` and `retrain/` copies."""
        ref = self.reference_metrics("retrain", retrain)
        rows = {"original": self.reference_metrics("original", original), "retrain": ref,
                "unlearned": self._evaluate(unlearned)}
        rows["original"]["RTE_s"] = self.infos["original"]["train_seconds"]
        rows["retrain"]["RTE_s"] = self.infos["retrain"]["train_seconds"]
        rows["unlearned"]["RTE_s"] = seconds
        out = {}
        for name, m in rows.items():
            m["RTE_min"] = m["RTE_s"] / 60
            m = summarize(m, ref)
            out.update(m if name == "unlearned" else {f"{name}/{k}": v for k, v in m.items()})
        return out

    def _evaluate(self, model) -> dict[str, float]:
        return evaluate(model, self.data, self.split, self.cfg.seed, self.cfg.eval.batch_size,
                        self.cfg.eval.mia_shadow_size)

    def reference_metrics(self, name: str, model) -> dict[str, float]:
        """Metrics of the cached original/Retrain model on this split, computed once per sweep, not per job."""
        key = {"model": Path(self.infos[name]["path"]).name, "split": self.split.fingerprint(),
               "eval": OmegaConf.to_container(self.cfg.eval, resolve=True), "seed": self.cfg.seed}
        return dict(cached_tensors(f"metrics-{name}", key, self.cache_dir, lambda: self._evaluate(model)))

    def log(self, metrics: dict[str, float]) -> None:
        """metrics.json + config in the run dir, one row in the results CSV, W&B, and a printed table."""
        c = self.cfg
        config = OmegaConf.to_container(c, resolve=True)
        ident = {"table": c.table, "dataset": c.dataset.name, "model": c.model.name, "paradigm": c.paradigm.name,
                 "method": c.method.name, "smooth_rate": c.smooth_rate, "p": c.p, "seed": c.seed,
                 "git_commit": git_commit(Path(__file__).parent),
                 "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "run_dir": str(self.out_dir.resolve())}
        write_json(self.out_dir / "metrics.json", {**ident, "metrics": metrics, "config": config})
        OmegaConf.save(c, self.out_dir / "config.yaml", resolve=True)
        append_row(to_absolute_path(c.results_csv), {**ident, **metrics})
        log_wandb({**OmegaConf.to_container(c.wandb), "dir": to_absolute_path(c.wandb.dir)}, config, metrics,
                  name=f"{c.method.name}-{c.paradigm.name}-s{c.seed}")
        print(table(metrics))


def table(metrics: dict[str, float]) -> str:
    cols = [k for k in HEADLINE]
    rows = {r: [metrics[(f"{r}/" if r != "unlearned" else "") + k] for k in cols]
            for r in ("original", "retrain", "unlearned")}
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).to_string(float_format=lambda v: f"{v:.2f}")


def run_experiment(cfg: DictConfig) -> dict[str, float]:
    """The whole pipeline of `run.py`, callable from tests and notebooks."""
    ws = Workspace(cfg)  # validates everything before any compute
    original = ws.original_model()  # trained once per (data, model, recipe, seed), then cached
    retrain = ws.retrain_model()  # the exact-unlearning reference, cached per split
    unlearned, seconds = ws.unlearn(original, retrain)
    metrics = ws.evaluate(original, retrain, unlearned, seconds)
    ws.log(metrics)
    return metrics
