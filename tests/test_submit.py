"""A whole table submitted as one job array that returns at once (unlearn/tables/submit.py), and tables whose
jobs write no shared results CSV (results_csv=null): results collected from the run folders."""
import pandas as pd

from unlearn.tables import launch, submit
from unlearn.tables import plan as planning
from unlearn.tables.__main__ import main as tables
from unlearn.tables.preset import load

SHRINK = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled", "method.epochs=1", "threads=1"]


def _jobs(err: str) -> list[str]:
    return [line for line in err.splitlines() if " seed " in line.split(":")[0]]


def test_dry_run_lists_every_block_row_and_seed_in_one_array_with_derived_limits(capsys):
    """table1 at paper scale: one array of 3 blocks x 12 rows x 2 seeds (minus rows a block skips) plus one job per
    reference model; its time limit is the cluster's, its requeues cover ImageNet's references, each job carries
    its block's lock timeout; FF on ImageNet (the paper's ~145 h, not resumable) is said not to fit."""
    assert submit.main(["table1", "--seeds", "0,1", "--dry-run", "--", "hydra/launcher=slurm",
                        "hydra.launcher.partition=gpu"]) == 0
    err = capsys.readouterr().err
    jobs = _jobs(err)
    methods = planning.plan(load("table1", "paper"), [0, 1], [])
    assert len(jobs) == len(methods) + 3 * 2 * 2  # + an original and a Retrain per block and seed
    head = next(line for line in err.splitlines() if "one array of" in line)
    assert f"one array of {len(jobs)}" in head and "timeout_min=720" in head and "slurm_partition=gpu" in head
    requeues = int(head.split("slurm_max_num_timeout=")[1].split(",")[0])
    assert 720 * (requeues + 1) >= 1.5 * 1570.8 / 0.9  # ImageNet's original at the paper's Retrain RTE / 0.9
    locks = {line.split(" / ")[0]: int(line.rsplit("lock_timeout=", 1)[1]) for line in jobs}
    assert locks["ImageNet"] > 86400 > locks["CIFAR-10"]
    assert all(" seed=" in line for line in jobs)
    assert [line for line in err.splitlines() if line.startswith("warning: ImageNet / ff seed")]


def test_a_launcher_that_cannot_submit_is_refused_in_one_line(capsys):
    assert submit.main(["table10", "--scale", "cpu", "--", "hydra/launcher=local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hydra/launcher=JoblibLauncher" in err and "local_submitit" in err


def test_a_table_submitted_as_one_array_runs_without_a_shared_csv_and_prints(tmp_path, monkeypatch, capsys):
    """Submitted through submitit's local executor with results_csv=null: the call returns with the jobs queued;
    once they end, the runner finds every job done from the run folders' metrics.json (nothing left to submit)
    and `tables print` collects them."""
    monkeypatch.chdir(tmp_path)
    extra = [*SHRINK, "results_csv=null", "hydra/launcher=local_submitit", f"cache_dir={tmp_path}/cache"]
    submitted = []
    real = submit.submit

    def keep(*args):
        submitted.extend(real(*args))
        return submitted
    monkeypatch.setattr(submit, "submit", keep)
    args = ["table10", "--scale", "cpu", "--rows", "ga,ft", "--seeds", "0"]
    assert submit.main([*args, "--", *extra]) == 0
    assert len(submitted) == 4  # the original, the Retrain model, GA, FT
    (folder,) = (tmp_path / "results" / "submitted").iterdir()
    listed = pd.read_csv(folder / "jobs.csv")
    assert listed["overrides"].str.startswith("stage=").sum() == 2 and not listed["overrides"].str.contains(
        "results_csv=results").any()
    for job in submitted:
        job.result()  # waits; the local preset's timeout_min stops a hung job
    assert not (tmp_path / "results" / "runs.csv").exists()
    jobs = planning.plan(load("table10", "cpu", ["ga", "ft"]), [0], extra)
    assert launch.done(jobs, launch.results("results/runs.csv", extra)) == [True, True]
    monkeypatch.setattr(submit, "submit", lambda *a: (_ for _ in ()).throw(AssertionError("submitted again")))
    assert submit.main([*args, "--", *extra]) == 0
    assert "nothing to submit" in capsys.readouterr().err
    assert tables(["print", *args, "--", *extra]) == 0
    table = pd.read_csv(tmp_path / "results" / "tables" / "table10_cpu.csv")
    assert set(table[table["column"] == "UA"].set_index("row")["n"]) == {1}


def test_the_runner_leaves_results_csv_null_to_the_jobs(capsys):
    """`-- results_csv=null`: the runner adds no results_csv= of its own (it did, so the null route was unusable
    for tables), and reads the runs from the run folders, Hydra's and any the overrides name."""
    extra = [*SHRINK, "results_csv=null", "hydra.sweep.dir=elsewhere/sweep"]
    where = launch.source("results/runs.csv", extra)
    assert isinstance(where, launch.RunDirs) and "elsewhere/sweep" in where.roots and "results/multirun" in where.roots
    assert launch.csv_override(where) == [] and launch.csv_override(launch.source("r.csv", SHRINK)) == ["results_csv=r.csv"]
    assert not launch.without_csv(["results_csv=null", "results_csv=x.csv"])  # the last one wins, as in Hydra
    jobs = planning.plan(load("table10", "cpu", ["ga"]), [0], [*extra, *launch.csv_override(where)])
    assert jobs[0].cfg.results_csv is None
    assert tables(["run", "table10", "--rows", "ga", "--seeds", "0", "--dry-run", "--", *extra]) == 0
    assert "results_csv=" not in capsys.readouterr().err.replace("results_csv=null", "")
