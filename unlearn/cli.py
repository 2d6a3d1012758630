"""Command-line behaviour of `run.py`: a rejected config is one line on stderr, exit status 2, no folder left."""
from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from unlearn.data.store import MissingDataError
from unlearn.validate import ConfigError


def _remove_rejected_run_dir() -> None:
    """Delete what Hydra wrote for a job that was rejected before doing anything: `.hydra/`, the job's log, then
    the run folder and its parents up to the launch folder while they are empty; in a sequential sweep rejected
    at its first job, also the sweep folder's `multirun.yaml`."""
    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out, cwd = Path(hc.runtime.output_dir).resolve(), Path(hc.runtime.cwd).resolve()
    shutil.rmtree(out / ".hydra", ignore_errors=True)
    (out / f"{hc.job.name}.log").unlink(missing_ok=True)
    if hc.mode == RunMode.MULTIRUN and str(hc.launcher.get("_target_", "")).endswith("BasicLauncher"):
        sweep = Path(hc.sweep.dir).resolve()
        if sweep.is_dir() and {p.name for p in sweep.iterdir()} <= {"multirun.yaml", out.name}:  # no other job has written here
            (sweep / "multirun.yaml").unlink(missing_ok=True)
    for folder in (out, *out.parents):  # the run folder, then its parents inside the launch folder
        if folder != out and (folder == cwd or cwd not in folder.parents):
            break
        try:
            folder.rmdir()  # only if nothing else is in it
        except OSError:
            break


def rejecting_bad_config(main):
    """Wrap a Hydra task function: ConfigError / MissingDataError end the job with their message and exit 2."""
    @functools.wraps(main)
    def wrapper(cfg):
        try:
            return main(cfg)
        except (ConfigError, MissingDataError) as e:
            _remove_rejected_run_dir()
            text = str(e.args[0] if e.args else e)
            if isinstance(e, ConfigError):  # one line; a missing-data message may list files line by line
                text = " ".join(text.split())
            print(f"error: {text}", file=sys.stderr)
            sys.exit(2)
    return wrapper
