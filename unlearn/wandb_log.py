"""W&B for one run, and the runs frame rebuilt from W&B runs (`unlearn collect --from-wandb`).

`wandb` is imported only when a run logs to it (`wandb.mode` not disabled) or a frame is pulled back.
The W&B config of a run is its results-CSV identity (table, dataset, ..., `config_id`, `git_commit`, `run_dir`,
with the hyperparameter columns `method.lr`, ... nested under `params`) and its summary holds its metrics, so
a run pulled back from W&B is its CSV row.
"""
from __future__ import annotations

import io
import json
import logging
import netrc
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import torch
import yaml
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

PHASES = ("original", "retrain", "unlearn")  # curve prefixes, each charted against its own `<phase>/epoch`
RESULT_FILES = ("metrics.json", "config.yaml", "curves.csv", "predictions.npz")  # logged when present
MODEL_FILE = "unlearned.pt"  # written and logged only with wandb.log_models=true
# override keys that name the run's fixed parts (data set, paradigm, method, seed) or say where/how it runs
NOT_IN_NAME = {"seed", "method", "dataset", "paradigm", "experiment", "table", "results_csv", "cache_dir", "run_dir",
               "device", "threads", "lock_timeout", "eval.every_epoch", "eval.batch_size"}


PROJECT = re.compile(r"[^/\\#?%:]{1,128}")  # what W&B accepts as a project name
REACH_TIMEOUT = 5.0  # seconds to wait for W&B's server before refusing wandb.mode=online


def check_settings(cfg: DictConfig) -> None:
    """Before any work, ValueError naming the key: a project name W&B refuses, and with wandb.mode=online no
    API key (WANDB_API_KEY, or `wandb login`'s netrc entry) or no route to the server (W&B itself would retry
    for minutes, then fall back)."""
    if cfg.wandb.mode == "disabled":
        return
    if not isinstance(cfg.wandb.dir, str) or not cfg.wandb.dir:
        raise ValueError(f"wandb.dir={cfg.wandb.dir!r} is invalid; allowed: a folder (W&B writes <dir>/wandb)")
    project = cfg.wandb.project
    if project is not None and not (isinstance(project, str) and PROJECT.fullmatch(project)):
        raise ValueError(f"wandb.project={project!r} is invalid; allowed: 1 to 128 characters without / \\ # ? % : "
                         f"(the team goes in wandb.entity)")
    if cfg.wandb.mode != "online":
        return
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    host, port = urlparse(url).hostname or url, urlparse(url).port or (80 if url.startswith("http:") else 443)
    if not os.environ.get("WANDB_API_KEY") and not _netrc_login(host):
        raise ValueError(f"wandb.mode=online needs a W&B API key for {host} and none is set (WANDB_API_KEY, or "
                         f"`wandb login`); allowed without one: wandb.mode=offline (then wandb sync) or disabled")
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT).close()
    except OSError as e:
        raise ValueError(f"wandb.mode=online but W&B's server {host}:{port} cannot be reached ({e.strerror or e}); "
                         f"allowed without network: wandb.mode=offline (then wandb sync) or disabled") from None


def _netrc_login(host: str) -> bool:
    path = Path(os.environ.get("NETRC") or Path("~/.netrc").expanduser())
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def run_name(ident: dict) -> str:
    """`<dataset>-<paradigm>-<method>[-<varying overrides>]-s<seed>`, e.g. `digits-classwise-ga-lr=0.01-s0`."""
    overrides = [o.lstrip("+~") for o in ident["overrides"].split()]
    varying = [o.removeprefix("method.") for o in overrides
               if o.partition("=")[0] not in NOT_IN_NAME and not o.startswith(("wandb.", "hydra."))]
    parts = [ident["dataset"], ident["paradigm"], ident["method"], ",".join(varying), f"s{ident['seed']}"]
    return "-".join(str(p) for p in parts if p != "")[:128]


def scale(cfg: DictConfig) -> str | None:
    """`cpu` or `paper`: the `scale` a table preset sets, else from the run's regime (regime/*_paper.yaml are the
    paper's); None when neither says."""
    if OmegaConf.select(cfg, "scale", default=None):
        return str(cfg.scale)
    regime = OmegaConf.select(cfg, "regime.name", default=None)
    return None if regime is None else "paper" if str(regime).endswith("_paper") else "cpu"


def run_tags(cfg: DictConfig, ident: dict) -> list[str]:
    """table, data set, model, method and scale (`scale:cpu`), plus `wandb.tags`."""
    own = cfg.wandb.tags
    own = [] if own is None else list(own) if OmegaConf.is_list(own) else [own]  # a string is one tag, not letters
    tags = [*map(str, own), *(str(ident[k]) for k in ("table", "dataset", "model", "method"))]
    if scale(cfg):
        tags.append(f"scale:{scale(cfg)}")
    return sorted({t for t in tags if t not in ("-", "")})


def wandb_config(ident: dict) -> dict:
    """The CSV identity as a W&B config: `section.key` hyperparameters nested as params[section][key] (W&B
    panels and filters address nested keys, not dotted ones)."""
    config = {k: v for k, v in ident.items() if "." not in k}
    config["params"] = {}
    for k, v in ident.items():
        if "." in k:
            section, key = k.split(".", 1)
            config["params"].setdefault(section, {})[key] = v
    return config


def csv_identity(config: dict) -> dict:
    """The inverse of `wandb_config` (W&B's own `_wandb` keys dropped)."""
    row = {k: v for k, v in config.items() if k != "params" and not k.startswith("_")}
    for section, values in (config.get("params") or {}).items():
        row.update({f"{section}.{k}": v for k, v in values.items()})
    return row


def start(cfg: DictConfig, ident: dict):
    """A W&B run for the whole job: named after what varies, grouped by configuration (`config_id`), one
    job type per paradigm, quiet on the console unless `wandb.silent=false`."""
    import wandb

    c = cfg.wandb
    run = wandb.init(mode=c.mode, entity=c.entity, project=c.project, group=c.group or ident["config_id"],
                     job_type=ident["paradigm"], tags=run_tags(cfg, ident), name=run_name(ident), config=wandb_config(ident),
                     dir=to_absolute_path(c.dir), reinit="finish_previous", settings=wandb.Settings(silent=c.silent))
    try:
        for phase in PHASES:  # curves are history only; the summary holds the run's metrics alone
            run.define_metric(f"{phase}/epoch", summary="none")
            run.define_metric(f"{phase}/*", step_metric=f"{phase}/epoch", summary="none")
    except BaseException:
        run.finish(exit_code=1)
        raise
    logging.getLogger("unlearn").info(recorded_at(run))
    return run


def recorded_at(run) -> str:
    """The console line saying where the run is recorded: its URL online, else the folder `wandb sync` uploads."""
    if run.offline:
        folder = Path(run.dir).parent
        return f"W&B: run recorded offline in {folder} (upload it with: wandb sync {folder})"
    return f"W&B: run recorded at {run.url}"


def reference(run) -> dict:
    """Where the run lives: `path` (entity/project/id; project/id offline), `url` (online only) and the local
    folder to `wandb sync`."""
    return {"id": run.id, "path": "/".join(p for p in (run.entity, run.project, run.id) if p),
            "url": None if run.offline else run.url, "dir": str(Path(run.dir).parent), "mode": run.settings.mode}


def save_model(model: torch.nn.Module, cfg: DictConfig, path: Path) -> None:
    """The unlearned weights with the model config that rebuilds them (written atomically)."""
    from unlearn.cache import atomic_save
    atomic_save({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                 "model": OmegaConf.to_container(cfg.model, resolve=True)}, path)


def log_files(run, out_dir: Path, ident: dict) -> list[str]:
    """Log the run dir's result files (RESULT_FILES present) as one `results` artifact, and MODEL_FILE, if
    present, as a `model` artifact; returns the names logged. Versions accumulate per (config_id, seed)."""
    import wandb

    logged = []
    for kind, files in (("results", RESULT_FILES), ("model", (MODEL_FILE,))):
        present = [out_dir / f for f in files if (out_dir / f).is_file()]
        if not present:
            continue
        art = wandb.Artifact(f"{kind}-{ident['config_id']}-s{ident['seed']}", type=kind,
                             metadata={k: ident[k] for k in ("table", "dataset", "model", "paradigm", "method",
                                                             "seed", "config_id", "git_commit", "run_dir")})
        for f in present:
            art.add_file(str(f), name=f.name)
        run.log_artifact(art)
        logged += [f.name for f in present]
    return logged


def parse_filters(filters: list[str]) -> dict:
    """`["table=table2", "method.lr=0.01"]` -> `{"table": "table2", "method.lr": 0.01}` (values read as YAML)."""
    out = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or not key:
            raise ValueError(f"--filter {f!r}: expected KEY=VALUE with KEY a results column, e.g. table=table2")
        out[key] = yaml.safe_load(value)
    return out


def pull_runs(path: str, filters: list[str] = (), api=None) -> tuple[pd.DataFrame, list[str]]:
    """The results CSV's frame rebuilt from the finished W&B runs of `entity/project` (public API): one row per
    run, its config (the identity columns), its summary (the metrics) and `wandb_run`; unfinished runs are
    skipped and reported. Identity columns (`table=...`) filter on the server, hyperparameters (`method.lr=...`)
    here."""
    if path.count("/") != 1 or not all(path.split("/")):
        raise ValueError(f"--from-wandb {path!r}: expected ENTITY/PROJECT")
    wanted = parse_filters(filters)
    if api is None:
        import wandb
        api = wandb.Api()
    rows, problems = [], []
    server = {f"config.{k}": v for k, v in wanted.items() if "." not in k}
    for run in api.runs(path, filters=server):
        if run.state != "finished":
            problems.append(f"run {run.id} ({run.name}) is {run.state}, skipped")
            continue
        summary = {k: v for k, v in dict(run.summary).items() if not k.startswith("_") and not isinstance(v, dict)}
        rows.append({**csv_identity(run.config), "wandb_run": "/".join(p for p in run.path if p), **summary})
    if not rows:
        return pd.DataFrame(), problems
    buf = io.StringIO()  # through CSV text, so columns get the types read_runs gives the CSV file
    pd.DataFrame(rows).map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v) \
        .to_csv(buf, index=False)
    buf.seek(0)
    runs = pd.read_csv(buf)
    for key, value in wanted.items():
        if key not in runs:
            raise ValueError(f"--filter {key}=...: no such column in the runs of {path}")
        runs = runs[runs[key] == value]
    return runs.reset_index(drop=True), problems
