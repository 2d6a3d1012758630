"""The Hydra application behind `run.py` and the `unlearn` command (unlearn.cli); configs: conf/ (unlearn/paths.py)."""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from unlearn import gpus
from unlearn.cpus import cores, launcher_threads
from unlearn.cli import rejecting_bad_config
from unlearn.metrics import HEADLINE
from unlearn.mia import FEATURES
from unlearn.paths import CONF
from unlearn.rundir import job
from unlearn.validate import ConfigError
from unlearn.workspace import Workspace, run_experiment

log = logging.getLogger("unlearn")
STAGES = ("all", "references", "original", "retrain")  # the last two: one reference model per job
OBJECTIVES = (*HEADLINE, "RTE_s", "forget/loss", "retain/loss", "test/loss", *(f"mia/{k}" for k in FEATURES))


def sqlite_url(path: str) -> str:
    """`${unlearn.sqlite:PATH}`: an SQLite URL of PATH (relative to the launch directory), its folder created,
    for the Optuna study's storage (conf/hydra/sweeper/optuna_study.yaml)."""
    file = Path(path).expanduser().resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


if not OmegaConf.has_resolver("unlearn.sqlite"):
    OmegaConf.register_new_resolver("unlearn.sqlite", sqlite_url)


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
@rejecting_bad_config  # a rejected config prints one line, leaves no run folder behind and exits 2
def main(cfg: DictConfig) -> float | None:
    """Train-or-load the original and Retrain models, unlearn, evaluate, record; returns the unlearned model's
    `objective` (avg_gap by default, lower = closer to Retrain) for sweepers. stage=references stops after
    the reference models."""
    check_run_keys(cfg)
    use_tuned(cfg)
    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else None
    share_cores(cfg, launcher)
    if gpus.local_launcher(launcher):  # hydra/launcher=local on a multi-GPU node: one GPU per job
        gpus.claim(cfg.device)
    if cfg.stage != "all":
        warm_references(cfg, ("original", "retrain") if cfg.stage == "references" else (cfg.stage,))
        return None
    return run_experiment(cfg)[cfg.objective]


def use_tuned(cfg: DictConfig) -> None:
    """Values `unlearn tune` chose for this setting replace the method's defaults (the command line wins); a method
    running paper-scale defaults on a user's data says so and names the command that tunes it."""
    from unlearn.tuned import apply_tuned, untuned_warning
    hc = HydraConfig.get() if HydraConfig.initialized() else None
    task = list(hc.overrides.task) if hc else []
    apply_tuned(cfg, task)
    warning = untuned_warning(cfg, dict(hc.runtime.choices) if hc else {}, task)
    if warning:
        log.warning(warning)


def check_run_keys(cfg: DictConfig) -> None:
    """`stage` and `objective` name something that exists, checked before any work."""
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage={cfg.stage!r} is invalid; allowed: one of {STAGES}")
    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"objective={cfg.objective!r} is invalid; allowed: a metric of the unlearned model, "
                          f"one of {OBJECTIVES}")


def share_cores(cfg: DictConfig, launcher) -> None:
    """threads=null under a parallel launcher: each job takes its share of the cores (oversubscribed small
    models spin-wait badly); an explicit `threads` is kept."""
    if cfg.threads is not None:
        return
    threads = launcher_threads(launcher, cores())
    if threads is not None:
        cfg.threads = int(threads)
        log.info("threads=null under %s: %d torch threads per job (%d cores)",
                 str(launcher.get("_target_")).rsplit(".", 1)[-1], cfg.threads, cores())


def warm_references(cfg: DictConfig, names=("original", "retrain")) -> dict[str, dict]:
    """stage=references (or original / retrain: that model only, so the two train as separate, resumable jobs):
    train (or load) the models `names`, their metrics and predictions into the cache, and write their curves; no
    unlearning, no metrics.json, no results row. Returns the models' metrics."""
    ws = Workspace(cfg)
    with job(ws.claim):  # status finished / failed (SIGTERM too) in the run folder
        try:
            for name in names:
                ws.refs.original() if name == "original" else ws.refs.retrain()
            metrics = {name: ws.refs.metrics(name, ws.evaluate) for name in names}
            for name in names:
                ws.refs.predictions(name, ws.predict)  # the per-sample predictions every predictions.npz holds
        finally:
            ws.recorder.write_curves()  # a stopped job's curves, too
    for name, m in metrics.items():
        log.info("%s: UA %.2f  MIA %.2f  RA %.2f  TA %.2f (cached in %s)", name, m["UA"], m["MIA"], m["RA"], m["TA"],
                 cfg.cache_dir)
    return metrics


if __name__ == "__main__":  # `python -m unlearn.app ...`, as the table and figure runners start their sweeps
    import sys

    from unlearn.cli import check_plugins, override_problem, refuse
    check_plugins(sys.argv[1:])  # a missing launcher / sweeper plugin is named with its extra
    if (problem := override_problem(sys.argv[1:])) is not None:  # before Hydra composes anything
        refuse(problem)
    main()
