"""What a run writes: training curves, metrics.json, config.yaml, one row of the shared results CSV, W&B.

The shared results CSV itself is written by `unlearn.results_csv`.
"""
from __future__ import annotations

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

from unlearn.identity import axes, config_id, params
from unlearn.metrics import HEADLINE
from unlearn.results_csv import append_row
from unlearn.validate import check_results_csv

log = logging.getLogger("unlearn")


def git_commit(cwd: str | Path = ".") -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if sha and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_json(path: Path, obj, exclusive: bool = False) -> None:
    """Write JSON; `exclusive` refuses to overwrite (two runs can never share one metrics.json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x" if exclusive else "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, default=str))


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

    def __init__(self, cfg: DictConfig, out_dir: Path):
        self.cfg, self.out_dir = cfg, out_dir
        self.overrides = job_overrides()
        self.curves: list[dict] = []
        self.wandb = None

    def identity(self) -> dict:
        """What ran: group choices, the sweep axes as the method used them, every hyperparameter, the environment."""
        c = self.cfg
        device = "cuda" if c.device == "cuda" or (c.device == "auto" and torch.cuda.is_available()) else "cpu"
        return {"table": c.table or "-", "dataset": c.dataset.name, "model": c.model.name,
                "paradigm": c.paradigm.name, "method": c.method.name, **axes(c), "seed": c.seed,
                "config_id": config_id(c), "overrides": " ".join(self.overrides), **params(c),
                "torch": torch.__version__, "device": device, "threads": torch.get_num_threads(),
                "git_commit": git_commit(Path(__file__).parent),
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "run_dir": str(self.out_dir.resolve())}

    def __enter__(self):
        if self.cfg.wandb.mode != "disabled":
            from unlearn.wandb_log import start
            self.wandb = start(self.cfg, self.identity(), self.out_dir)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.wandb is not None:
            self.wandb.finish(exit_code=1 if exc_type else 0)
            self.wandb = None
        return False

    def curve(self, metrics: dict, step: int) -> None:
        """One point of a training curve (`original/loss`, `unlearn/forget_loss`, ...)."""
        self.curves.append({"step": step, **metrics})
        if self.wandb is not None:
            self.wandb.log(metrics)

    def finish(self, metrics: dict[str, float]) -> dict:
        """curves.csv, metrics.json and config.yaml in the run dir, one CSV row, the W&B summary; prints the table."""
        ident = self.identity()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.wandb is not None:
            ident["wandb_run"] = f"{self.wandb.project}/{self.wandb.id}"
        if self.curves:
            pd.DataFrame(self.curves).to_csv(self.out_dir / "curves.csv", index=False)
        config = OmegaConf.to_container(self.cfg, resolve=True)
        write_json(self.out_dir / "metrics.json", {**ident, "metrics": metrics, "config": config}, exclusive=True)
        OmegaConf.save(self.cfg, self.out_dir / "config.yaml", resolve=True)
        csv_path = Path(to_absolute_path(self.cfg.results_csv))
        check_results_csv(csv_path)  # another job may have replaced it since the start
        append_row(csv_path, {**ident, **metrics})
        if self.wandb is not None:
            self.wandb.summary.update(metrics)
        print(table(metrics))
        print(f"({ident['device']}, {ident['threads']} torch threads, seed {ident['seed']}, config_id {ident['config_id']}; "
              f"CPU results are bit-identical for a fixed seed and thread count)")
        return ident

