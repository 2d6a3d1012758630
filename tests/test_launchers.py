"""From one laptop to a cluster: the launcher presets end to end (joblib, submitit's local executor), the SLURM
and Ray presets' submission parameters without a cluster, the reference-model stage, run dirs as results, and
a tiny Optuna study."""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF, HANG_GUARD, ROOT, TINY
from unlearn.app import OBJECTIVES, check_run_keys, share_cores, warm_references
from unlearn.cpus import cores, launcher_threads
from unlearn.validate import ConfigError
from unlearn.workspace import Workspace, run_experiment

ENV = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def sweep(args, tmp_path, timeout=HANG_GUARD, threads="1"):
    """`run.py -m ...` writing only under tmp_path (no shared CSV), torch's default thread count `threads`;
    returns the sweep folder."""
    out = subprocess.run([sys.executable, "run.py", "-m", *TINY, *args, f"cache_dir={tmp_path}/cache",
                          "results_csv=null", f"hydra.sweep.dir={tmp_path}/sweep"], cwd=ROOT,
                         env={**ENV, "OMP_NUM_THREADS": threads},
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / "sweep", out


def results(sweep_dir):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(sweep_dir).glob("*/metrics.json"))}


def hydra_cfg(overrides):
    """The composed config with its `hydra` node, as a launcher sees it."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[o for o in TINY if o != "method.epochs=1"] + list(overrides),
                       return_hydra_config=True)


# --- parallel local jobs --------------------------------------------------------------------------------------------

def test_joblib_launcher_runs_a_sweep_in_parallel_jobs(tmp_path, monkeypatch):
    sweep_dir, out = sweep(["hydra/launcher=local", "method=ga,ugradsl"], tmp_path, threads="3")
    runs = results(sweep_dir)
    assert sorted(r["method"] for r in runs.values()) == ["ga", "ugradsl"]
    assert len({r["run_dir"] for r in runs.values()}) == 2
    share = max(1, cores() // 2)  # threads=null: each of the 2 jobs takes its share of the cores, not torch's 3
    assert [r["threads"] for r in runs.values()] == [share, share]
    for run_dir in {r["run_dir"] for r in runs.values()}:  # set by the runner (joblib's loky would cap it anyway)
        assert f"{share} torch threads per job" in "".join(f.read_text() for f in Path(run_dir).glob("*.log"))
    assert len(list((tmp_path / "cache").glob("original-" + "?" * 16 + ".pt"))) == 1  # trained once, shared
    assert not (tmp_path / "runs.csv").exists()
    # the old script's command line, run in this process (its imports are this process's; a process costs ~5 s)
    monkeypatch.setattr(sys, "argv", ["scripts/collect.py", "--from-runs", str(sweep_dir), "--long",
                                      str(tmp_path / "long.csv")])
    runpy.run_path(str(ROOT / "scripts" / "collect.py"), run_name="__main__")
    long = pd.read_csv(tmp_path / "long.csv")
    ga = next(r for r in runs.values() if r["method"] == "ga")
    got = long[(long.method == "ga") & (long.metric == "avg_gap")].value
    assert got.tolist() == [pytest.approx(ga["metrics"]["avg_gap"])]


@pytest.mark.slow  # a second multi-process sweep; joblib's test covers parallel local jobs by default
def test_submitit_local_executor_runs_a_sweep(tmp_path):
    sweep_dir, _ = sweep(["hydra/launcher=local_submitit", "seed=0,1"], tmp_path, threads="3")
    runs = results(sweep_dir)
    assert sorted(r["seed"] for r in runs.values()) == [0, 1]
    assert [r["threads"] for r in runs.values()] == [1, 1]  # cpus_per_task of the preset
    assert list((sweep_dir / ".submitit").iterdir())  # jobs went through submitit's pickles and folders


# --- launcher threads ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("launcher, n_cores, want", [
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}, 8, 4),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 3}, 8, 2),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}, 8, 1),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 4}, 2, 1),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "cpus_per_task": 8}, 64, 8),
    ({"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", "ray": {"remote": {"num_cpus": 2}}},
     8, 2),
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8, None),
    (None, 8, None),
])
def test_parallel_launchers_keep_jobs_times_threads_within_the_cores(launcher, n_cores, want):
    assert launcher_threads(OmegaConf.create(launcher) if launcher else None, n_cores) == want


def test_an_explicit_threads_value_wins(tiny_cfg):
    cfg = tiny_cfg("threads=3")
    share_cores(cfg, OmegaConf.create({"_target_": "x.JoblibLauncher", "n_jobs": 64}))
    assert cfg.threads == 3


# --- cluster presets without a cluster ----------------------------------------------------------------------------

def test_slurm_preset_writes_the_expected_sbatch_array(tmp_path, monkeypatch):
    """The SLURM preset, instantiated as Hydra would, submits one array whose sbatch file carries its keys."""
    submitit = pytest.importorskip("submitit")  # in unlearn[dev]; absent from a ray-only environment
    cfg = hydra_cfg(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=lab",
                     "hydra.launcher.array_parallelism=2", f"hydra.sweep.dir={tmp_path}/sweep"])
    assert cfg.hydra.launcher.max_num_timeout == 3 and cfg.hydra.launcher.additional_parameters.requeue is True
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    sbatch = {}

    def submit(self, command):
        sbatch["text"] = self._make_submission_file_text(command, "uid")
        raise RuntimeError("no cluster here")
    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "_submit_command", submit)
    (tmp_path / "bin").mkdir()  # submitit looks for srun before anything else; nothing ever runs it here
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(RuntimeError, match="no cluster here"):
        launcher.launch([["seed=0"], ["seed=1"], ["seed=2"]], initial_job_idx=0)
    lines = set(sbatch["text"].splitlines())
    for flag in ("--partition=gpu", "--account=lab", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB",
                 "--time=720", "--array=0-2%2", "--requeue", "--signal=USR2@120", "--ntasks-per-node=1"):
        assert f"#SBATCH {flag}" in lines, (flag, sbatch["text"])
    assert launcher_threads(cfg.hydra.launcher, 2) == 8


def test_ray_preset_composes_with_its_submission_parameters():
    cfg = hydra_cfg(["hydra/launcher=ray_local", "hydra.launcher.ray.init.num_cpus=4"])
    ray = cfg.hydra.launcher.ray
    assert cfg.hydra.launcher._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert ray.init.address is None and ray.init.num_cpus == 4 and ray.remote.num_cpus == 1
    assert launcher_threads(cfg.hydra.launcher, 4) == 1  # 4 jobs at once, one torch thread each
    try:
        from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
    except ImportError:
        return  # the plugin lives in the `ray` extra (a separate environment, README "Scaling out")
    launcher = instantiate(cfg.hydra.launcher)
    assert isinstance(launcher, RayLauncher) and launcher.ray_cfg.remote.num_cpus == 1


@pytest.mark.slow
def test_ray_launcher_runs_a_sweep_on_a_local_cluster(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher.ray_launcher")
    sweep_dir, _ = sweep(["hydra/launcher=ray_local", "seed=0,1"], tmp_path, timeout=HANG_GUARD)
    assert sorted(r["seed"] for r in results(sweep_dir).values()) == [0, 1]


# --- reference models first; results without a shared CSV -----------------------------------------------------------

def test_stage_references_trains_and_evaluates_both_references_and_stops(tiny_cfg, tmp_path, caplog):
    cfg = tiny_cfg("stage=references")
    metrics = warm_references(cfg)
    cache = tmp_path / "cache"
    for kind in ("original", "retrain", "metrics-original", "metrics-retrain", "predictions-original"):
        assert len(list(cache.glob(f"{kind}-" + "?" * 16 + ".pt"))) == 1, kind
    assert metrics["original"]["RA"] > 50 and 0 <= metrics["retrain"]["UA"] <= 100
    assert not (tmp_path / "runs.csv").exists() and not list(tmp_path.glob("run*/metrics.json"))
    caplog.clear()
    with caplog.at_level("INFO", logger="unlearn"):
        run_experiment(tiny_cfg())  # the method job afterwards trains nothing
    for kind in ("original", "retrain", "metrics-original", "metrics-retrain"):
        assert f"{kind}: loaded from cache" in caplog.text
    assert "not cached" not in caplog.text


def test_results_csv_null_writes_only_the_run_dir(tiny_cfg, tmp_path):
    cfg = tiny_cfg("results_csv=null")
    run_experiment(cfg)
    assert not list(tmp_path.glob("*.csv")) and (Path(cfg.run_dir) / "metrics.json").exists()


@pytest.mark.parametrize("override, match", [("stage=train", "stage='train'"), ("objective=accuracy", "objective=")])
def test_bad_stage_or_objective_is_rejected_before_work(override, match, tiny_cfg):
    with pytest.raises(ConfigError, match=match):
        check_run_keys(tiny_cfg(override))


def test_every_objective_is_a_metric_of_a_run(tiny_cfg):
    metrics = Workspace(tiny_cfg()).run()
    assert set(OBJECTIVES) <= set(metrics)


# --- hyperparameter search -------------------------------------------------------------------------------------------

def test_every_method_has_a_search_preset_that_composes():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override as distribution
    methods = {p.stem for p in (CONF / "method").glob("*.yaml")} - {"retrain"}  # Retrain has nothing to tune
    assert {p.stem for p in (CONF / "hparams_search").glob("*.yaml")} == methods
    for name in sorted(methods):
        cfg = hydra_cfg([f"hparams_search={name}"])
        assert cfg.method.name == name and cfg.hydra.sweeper.direction == "minimize"
        for key, space in cfg.hydra.sweeper.params.items():
            default = OmegaConf.select(cfg, key)
            assert default is not None, (name, key)  # searches a key that exists
            if isinstance(default, int) and not isinstance(default, bool):  # integer keys get integer proposals
                dist = distribution(OverridesParser.create().parse_override(f"{key}={space}"))
                integers = type(dist).__name__.startswith("Int") or (  # or a choice among integers
                    type(dist).__name__ == "CategoricalDistribution" and all(type(c) is int for c in dist.choices))
                assert integers, (name, key, dist)


@pytest.mark.slow  # three sequential trials in a subprocess; test_selection's tiny study runs by default
def test_a_tiny_optuna_study_minimises_the_returned_objective(tmp_path):
    optuna = pytest.importorskip("optuna")
    db = tmp_path / "study.db"
    sweep_dir, _ = sweep(["hparams_search=ga", "hydra.sweeper.n_trials=3", "objective=UA",
                          "hydra.sweeper.direction=maximize", f"hydra.sweeper.storage=sqlite:///{db}",
                          "hydra.sweeper.study_name=tiny"], tmp_path)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(trials) == 3 and study.direction.name == "MAXIMIZE"
    runs = list(results(sweep_dir).values())
    for t in trials:  # the value Optuna received is the run's `objective` (UA here), for the lr it proposed
        (run,) = [r for r in runs if r["method.lr"] == pytest.approx(t.params["method.lr"])]
        assert t.value == run["metrics"]["UA"]
    assert study.best_value == max(r["metrics"]["UA"] for r in runs)
