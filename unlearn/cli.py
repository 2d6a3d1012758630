"""Command-line behaviour of `run.py`: a rejected config is one line on stderr, exit status 2, no folder left."""
from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from unlearn.data.store import MissingDataError
from unlearn.validate import ConfigError


def _remove_rejected_run_dir() -> None:
    """Delete what Hydra wrote for a job that was rejected before doing anything: `.hydra/` and its log."""
    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    shutil.rmtree(out / ".hydra", ignore_errors=True)
    (out / f"{hc.job.name}.log").unlink(missing_ok=True)
    try:
        out.rmdir()  # only if nothing else is in it
    except OSError:
        pass


def rejecting_bad_config(main):
    """Wrap a Hydra task function: ConfigError / MissingDataError end the job with their message and exit 2."""
    @functools.wraps(main)
    def wrapper(cfg):
        try:
            return main(cfg)
        except (ConfigError, MissingDataError) as e:
            _remove_rejected_run_dir()
            print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
            sys.exit(2)
    return wrapper
