"""What a run writes: training curves, metrics.json, config.yaml, one row of the shared results CSV, W&B.

The shared results CSV itself is written by `unlearn.results_csv`.
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from unlearn.cache import atomic_write
from unlearn.identity import axes, code_digest, compute, config_id, params
from unlearn.metrics import HEADLINE
from unlearn.references import cpu_capability
from unlearn.results_csv import append_row
from unlearn.validate import check_results_csv

log = logging.getLogger("unlearn")
CURVE_COLUMNS = ["phase", "epoch", "step", "metric", "value"]


def git_commit(cwd: str | Path = ".") -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if sha and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version() -> str:
    """The installed unlearn's version (importlib.metadata); "unknown" in a tree that was never installed."""
    try:
        return importlib.metadata.version("unlearn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_json(path: Path, obj, exclusive: bool = False) -> None:
    """Write JSON atomically (temp file + rename: a full disk never leaves a torn file); `exclusive` refuses to
    overwrite (two runs can never share one metrics.json)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    atomic_write(path, lambda f: f.write(text), exclusive=exclusive)


PREDICTIONS_FILE = "predictions.npz"


def write_predictions(path: Path, arrays: dict[str, torch.Tensor]) -> None:
    """Per-sample arrays (metrics.predictions and prediction_labels, per model) as a compressed .npz, their
    dtypes kept (int16 classes, float16 probabilities, float32 losses); written atomically."""
    import numpy as np
    atomic_write(path, lambda f: np.savez_compressed(f, **{k: v.cpu().numpy() for k, v in arrays.items()}))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def table(metrics: dict[str, float]) -> str:
    """The printed original / retrain / unlearned summary of one run."""
    rows = {r: [metrics[(f"{r}/" if r != "unlearned" else "") + k] for k in HEADLINE]
            for r in ("original", "retrain", "unlearned")}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(HEADLINE)).to_string(
        float_format=lambda v: f"{v:.2f}")


def job_overrides() -> list[str]:
    """The command-line overrides of this job (Hydra), empty when composed without Hydra's app."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


class Recorder:
    """Owns everything a run records, from its first curve point to its last row; W&B (when on) spans the job."""

    def __init__(self, cfg: DictConfig, out_dir: Path, drawn: dict | None = None):
        self.cfg, self.out_dir = cfg, out_dir
        self.drawn = drawn or {}  # what the seed drew when the config left it to chance (Split.info)
        self.overrides = job_overrides()
        self.code_digest = code_digest(cfg)  # the code the job started with: the table runners' "already done" test
        self.curves: list[dict] = []  # long format: phase, epoch, step, metric, value
        self.wandb = None
        self.ident: dict | None = None  # the row as written by `finish`

    def identity(self) -> dict:
        """What ran: group choices, the sweep axes as the method used them, every hyperparameter, the environment."""
        c = self.cfg
        device = "cuda" if c.device == "cuda" or (c.device == "auto" and torch.cuda.is_available()) else "cpu"
        return {"table": c.table or "-", "scale": c.get("scale") or "-", "dataset": c.dataset.name, "model": c.model.name,
                "paradigm": c.paradigm.name, "method": c.method.name, **axes(c), "seed": c.seed,
                "config_id": config_id(c), "overrides": " ".join(self.overrides),
                "drawn": json.dumps(self.drawn, sort_keys=True) if self.drawn else "", **params(c), **compute(c),
                "torch": torch.__version__, "device": device, "threads": torch.get_num_threads(),
                "cpu_capability": cpu_capability(),
                "code_digest": self.code_digest, "git_commit": git_commit(Path(__file__).parent),
                "unlearn_version": package_version(),  # an installed copy has no git history
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "run_dir": str(self.out_dir.resolve())}

    def __enter__(self):
        if self.cfg.wandb.mode != "disabled":
            from unlearn.wandb_log import start
            self.wandb = start(self.cfg, self.identity())
        return self

    def __exit__(self, exc_type, exc, tb):
        """The job's `finally`: log the run dir's files to W&B and finish the run, failed (exit code 1) if the
        job raised; a failed job still leaves its curves file for a post-mortem."""
        run, self.wandb, ok = self.wandb, None, exc_type is None
        try:
            if not ok:
                self.write_curves()
                if run is not None:  # why it failed, in the run's summary (the exit code says only that it did)
                    run.summary["failure"] = f"{exc_type.__name__}: {' '.join(str(exc).split())[:300]}"
            if run is not None:
                from unlearn.wandb_log import log_files
                log_files(run, self.out_dir, self.ident or self.identity())
        except BaseException as e:
            if ok:
                ok = False
                raise
            log.warning("while recording a failed job: %s: %s", type(e).__name__, e)  # keep the job's own error
        finally:
            if run is not None:
                run.finish(exit_code=0 if ok else 1)
        return False

    def curve(self, metrics: dict, step: int) -> None:
        """One epoch's point of a training curve (`original/loss`, `unlearn/forget_loss`, ... with the phase's
        `<phase>/epoch`): W&B history and the per-run curves file."""
        for key, value in metrics.items():
            phase, _, name = key.partition("/")
            if name != "epoch":
                self.curves.append({"phase": phase, "epoch": metrics.get(f"{phase}/epoch"), "step": step,
                                    "metric": name, "value": float(value)})
        if self.wandb is not None:
            self.wandb.log(metrics)

    def write_curves(self) -> None:
        """curves.csv in the run dir, long format (`phase,epoch,step,metric,value`); none without curves
        (reference models loaded from the cache and a one-shot method log none)."""
        if self.curves:
            write_text(self.out_dir / "curves.csv",
                       pd.DataFrame(self.curves, columns=CURVE_COLUMNS).to_csv(index=False))

    def finish(self, metrics: dict[str, float], model: torch.nn.Module | None = None,
               predictions: dict[str, torch.Tensor] | None = None) -> dict:
        """curves.csv, predictions.npz, metrics.json and config.yaml in the run dir, one CSV row, the W&B config and
        summary (and with `wandb.log_models` the unlearned weights, unlearned.pt); prints the table."""
        ident = self.ident = self.identity()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if predictions is not None:  # before metrics.json: a run dir with metrics.json has its predictions
            write_predictions(self.out_dir / PREDICTIONS_FILE, predictions)
        extra = {}
        if self.wandb is not None:
            from unlearn.wandb_log import MODEL_FILE, reference, save_model
            extra["wandb"] = reference(self.wandb)
            ident["wandb_run"] = extra["wandb"]["path"]
            if self.cfg.wandb.log_models and model is not None:
                save_model(model, self.cfg, self.out_dir / MODEL_FILE)
        self.write_curves()
        config = OmegaConf.to_container(self.cfg, resolve=True)
        write_json(self.out_dir / "metrics.json", {**ident, **extra, "metrics": metrics, "config": config},
                   exclusive=True)
        write_text(self.out_dir / "config.yaml", OmegaConf.to_yaml(self.cfg, resolve=True))
        if self.cfg.results_csv is not None:  # null: metrics.json is the result (collect.py --from-runs)
            csv_path = Path(to_absolute_path(self.cfg.results_csv))
            check_results_csv(csv_path)  # another job may have replaced it since the start
            append_row(csv_path, {**ident, **metrics})
        if self.wandb is not None:  # the config becomes the row's identity as written (its final timestamp)
            from unlearn.wandb_log import wandb_config
            self.wandb.config.update(wandb_config({k: v for k, v in ident.items() if k != "wandb_run"}),
                                     allow_val_change=True)
            self.wandb.summary.update(metrics)
        print(f"{ident['method']} on {ident['dataset']}, {ident['paradigm']} (overrides: {ident['overrides'] or 'none'}):")
        print(table(metrics))  # labelled above: the tables of parallel jobs interleave in one log
        print(f"({ident['device']}, {ident['threads']} torch threads, {ident['cpu_capability']}, seed {ident['seed']}, "
              f"config_id {ident['config_id']}; CPU results are bit-identical for a fixed seed, thread count and CPU "
              f"instruction set)")
        return ident

