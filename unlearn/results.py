"""Run outputs: metrics.json, one row per run in a shared CSV (file-locked), and W&B (off the hot path)."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pandas as pd
from filelock import FileLock


def git_commit(cwd: str | Path = ".") -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if sha and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def append_row(path: str | Path, row: dict) -> None:
    """Append `row` to the CSV at `path` under a file lock; widen the header if new columns appear."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if set(row) <= set(header):
                with path.open("a", newline="") as f:
                    csv.DictWriter(f, fieldnames=header).writerow(row)
                return
            frame = pd.concat([pd.read_csv(path), pd.DataFrame([row])], ignore_index=True)
            tmp = path.with_suffix(".tmp")
            frame.to_csv(tmp, index=False)
            tmp.replace(path)
            return
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerow(row)


def log_wandb(wandb_cfg: dict, config: dict, metrics: dict, name: str) -> None:
    """Send config and metrics to W&B; imported only when enabled (offline mode needs no network)."""
    if wandb_cfg["mode"] == "disabled":
        return
    import wandb

    run = wandb.init(mode=wandb_cfg["mode"], project=wandb_cfg["project"], group=wandb_cfg.get("group"),
                     tags=list(wandb_cfg.get("tags") or []), config=config, name=name,
                     dir=wandb_cfg.get("dir"), reinit="finish_previous")
    run.summary.update(metrics)
    run.finish()
