"""W&B for one run, imported only when `wandb.mode` is not disabled (offline needs no network)."""
from __future__ import annotations

import os
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf


def start(cfg: DictConfig, ident: dict, out_dir: Path):
    """A W&B run covering the whole job: named after what varies, grouped by configuration (`config_id`)."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")  # one line per job instead of a banner
    c = cfg.wandb
    name = "-".join(str(x) for x in (ident["dataset"], ident["paradigm"], ident["method"]))
    varying = [o for o in ident["overrides"].split() if not o.startswith(("seed=", "method=", "dataset=",
                                                                            "paradigm=", "experiment="))]
    if varying:
        name += "-" + ",".join(varying)
    name += f"-s{ident['seed']}"
    config = {**OmegaConf.to_container(cfg, resolve=True), "identity": ident, "run_dir": str(out_dir.resolve())}
    tags = list(c.tags or []) + [str(ident[k]) for k in ("table", "dataset", "model", "method") if ident[k] != "-"]
    Path(to_absolute_path(c.dir)).mkdir(parents=True, exist_ok=True)
    run = wandb.init(mode=c.mode, project=c.project, group=c.group or ident["config_id"],
                     job_type=ident["paradigm"], tags=sorted(set(tags)), name=name[:128], config=config,
                     dir=to_absolute_path(c.dir), reinit="finish_previous")
    for prefix in ("original", "retrain", "unlearn"):
        run.define_metric(f"{prefix}/epoch")
        run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/epoch")
    return run
