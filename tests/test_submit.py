"""A whole table submitted as job arrays that return at once (unlearn/tables/submit.py): one per kind, time band
and set of reference arrays needed, method arrays after those reference arrays on SLURM; and tables whose jobs
write no shared results CSV (results_csv=null): results collected from the run folders."""
import pandas as pd
import pytest

from unlearn.tables import launch, limits, submit
from unlearn.tables import plan as planning
from unlearn.tables.__main__ import main as tables
from unlearn.tables.preset import load

SHRINK = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled", "method.epochs=1", "threads=1"]


def _jobs(err: str) -> list[str]:
    return [line for line in err.splitlines() if " seed " in line.split(":")[0]]


def _arrays(err: str) -> list[dict]:
    """The dry run's or the submission's array lines, parsed."""
    out = []
    for line in err.splitlines():
        if line.startswith("array "):
            head, rest = line.split(": ", 1)
            out.append({"n": int(rest.split()[0]), "references": " reference models of " in rest,
                        "timeout_min": int(rest.split("timeout_min=")[1].split(",")[0]),
                        "requeues": int(rest.split("requeues=")[1].split(",")[0]), "line": rest})
    return out


class _Job:  # what submit() returns per job: SLURM's id <array>_<task>
    def __init__(self, job_id: str):
        self.job_id = job_id


def _fake_submit(calls: list):
    """A submit() that records each array (entries, init, update) and returns fake SLURM jobs: no cluster."""
    def fake(entries, init, update, cwd):
        calls.append((entries, init, update))
        return [_Job(f"{1000 + len(calls)}_{k}") for k in range(len(entries))]
    return fake


def test_dry_run_lists_every_block_row_and_seed_in_arrays_by_derived_limits(capsys):
    """table1 at paper scale: 3 blocks x 12 rows x 2 seeds (minus rows a block skips) plus one job per reference
    model, in arrays by kind and time band: reference arrays first; CIFAR-10's method jobs get their own short
    time limit, not ImageNet's 720 min; ImageNet's reference array requeues enough for its training; every method
    array waits for the reference arrays of its blocks (CIFAR-10's not for ImageNet's); each job carries its
    block's lock timeout; FF on ImageNet (the paper's ~145 h, not resumable) is said not to fit."""
    assert submit.main(["table1", "--seeds", "0,1", "--dry-run", "--", "hydra/launcher=slurm",
                        "hydra.launcher.partition=gpu"]) == 0
    err = capsys.readouterr().err
    jobs = _jobs(err)
    preset = load("table1", "paper")  # its jobs, counted as the planner makes them (tests/test_tables.py pins that)
    methods = 2 * sum(len(preset.rows) - len(b.skip_rows) for b in preset.blocks if b.overrides is not None)
    assert len(jobs) == methods + 3 * 2 * 2  # + an original and a Retrain per block and seed
    arrays = _arrays(err)
    head = next(line for line in err.splitlines() if " to submit in " in line)
    assert f"{len(jobs)} to submit in {len(arrays)} arrays" in head and "slurm_partition=gpu" in head
    assert sum(a["n"] for a in arrays) == len(jobs)
    kinds = [a["references"] for a in arrays]
    assert kinds == sorted(kinds, reverse=True) and kinds.count(True) >= 2  # reference arrays first
    def blocks(a):  # the blocks an array's line names
        return set(a["line"].split(" of ", 1)[1].split(", timeout_min")[0].split(", "))

    def after(a):  # the arrays it depends on
        return set(a["line"].split("depends on arrays ")[1].split(" (")[0].split(", ")) if "depends on" in a["line"] \
            else set()
    for a in arrays:  # a method array waits for exactly the reference arrays that hold its blocks' models
        if not a["references"]:
            assert after(a) == {str(i) for i, r in enumerate(arrays, 1) if r["references"] and blocks(r) & blocks(a)}
            assert after(a), a["line"]
    cifar = [a for a in arrays if not a["references"] and "CIFAR-10" in blocks(a)]
    imagenet_refs = {str(i) for i, r in enumerate(arrays, 1) if r["references"] and blocks(r) == {"ImageNet"}}
    assert cifar and imagenet_refs and all(not after(a) & imagenet_refs for a in cifar)
    assert all(a["timeout_min"] in submit.BANDS for a in arrays)  # jobs minutes apart share an array
    bands = [(a["references"], a["timeout_min"], tuple(sorted(after(a)))) for a in arrays]
    assert len(set(bands)) == len(bands) == 4, bands  # not an array per job's exact limit (14; docs/scaling-out.md)
    assert all("no dependency" in a["line"] for a in arrays if a["references"])
    imagenet = [a for a in arrays if a["line"].split(" of ")[1].startswith("ImageNet")]
    assert all(a["timeout_min"] <= 720 / 4 and "ImageNet" not in a["line"] for a in cifar)
    assert all(a["timeout_min"] == 720 for a in imagenet)
    (ref,) = [a for a in imagenet if a["references"]]
    assert 720 * (ref["requeues"] + 1) >= 1.5 * 1570.8 / 0.9  # ImageNet's original at the paper's Retrain RTE / 0.9
    locks = {line.split(" / ")[0]: int(line.rsplit("lock_timeout=", 1)[1]) for line in jobs}
    assert locks["ImageNet"] > 86400 > locks["CIFAR-10"]
    assert all(" seed=" in line for line in jobs)
    assert [line for line in err.splitlines() if line.startswith("warning: ImageNet / ff seed")]


def test_a_jobs_band_is_the_first_at_or_above_its_limit_and_never_above_the_launchers():
    def job(minutes):
        return submit.Entry("x", ["method=ga"], limits.Limits(minutes, 0, 60))
    assert [submit.band(job(t), 720) for t in (60, 61, 119, 120, 500, 720)] == [60, 120, 120, 120, 720, 720]
    assert submit.band(job(150), 200) == 200  # the launcher's limit (e.g. hydra.launcher.timeout_min=200) caps it
    assert submit.band(job(5000), 10**9) == 5000 and submit.band(submit.Entry("x", [], None), 720) is None


def test_on_slurm_method_arrays_start_after_their_blocks_reference_arrays(tmp_path, monkeypatch, capsys):
    """Submitted (to a fake submit()): the reference arrays go first, each method array's update parameters carry
    `dependency=afterany:<the ids of the reference arrays holding its blocks>`, and jobs.csv says which array holds
    which job."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(planning, "missing_data", lambda cfg, download=True: None)  # no data, and none fetched
    calls = []
    monkeypatch.setattr(submit, "submit", _fake_submit(calls))
    assert submit.main(["table1", "--rows", "retrain,ft,ga", "--seeds", "0", "--", "hydra/launcher=slurm",
                        "hydra.launcher.partition=gpu"]) == 0
    refs = [c for c in calls if c[0][0].argv[0].startswith("stage=")]
    assert refs and calls[:len(refs)] == refs  # reference arrays first
    assert all(e.argv[0].startswith("stage=") == (c in refs) for c in calls for e in c[0])  # kinds never mixed
    for entries, init, update in calls:
        extra = update["slurm_additional_parameters"]
        assert extra["requeue"] is True  # the preset's own sbatch --requeue
        mine = {e.block for e in entries}
        ids = [str(1001 + k) for k, (es, _, _) in enumerate(refs) if mine & {e.block for e in es}]
        assert extra.get("dependency") == (None if entries[0].argv[0].startswith("stage=") else
                                           "afterany:" + ":".join(ids))
        assert entries[0].argv[0].startswith("stage=") or ids
        longest = max(e.limits.timeout_min for e in entries)  # the array's band: the first at or above its longest
        assert update["timeout_min"] == min(b for b in submit.BANDS if b >= longest)
        assert max(e.limits.max_num_timeout for e in entries) == init["slurm_max_num_timeout"]
    timeout = {e.label.split(" / ")[0]: u["timeout_min"] for es, _, u in calls[len(refs):] for e in es}
    assert timeout["CIFAR-10"] < timeout["ImageNet"] / 4
    (folder,) = (tmp_path / "results" / "submitted").iterdir()
    listed = pd.read_csv(folder / "jobs.csv")
    assert list(listed["array"].unique()) == list(range(1, len(calls) + 1))
    assert (listed["job_id"].str.split("_").str[0].astype(int) == 1000 + listed["array"]).all()
    assert f"in {len(calls)} arrays" in capsys.readouterr().err


def test_the_users_additional_parameters_survive_beside_the_dependency(tmp_path, monkeypatch):
    """A preset's additional_parameters the user extended (mail_type) or that hold a dependency of theirs are
    merged with the arrays' dependency, never overwritten (both dependencies must hold)."""
    calls = []
    monkeypatch.setattr(submit, "submit", _fake_submit(calls))
    monkeypatch.chdir(tmp_path)  # the submission folder and jobs.csv
    extra = [*SHRINK, "hydra/launcher=slurm", "+hydra.launcher.additional_parameters.mail_type=END",
             "+hydra.launcher.additional_parameters.dependency=afterok:77"]
    assert submit.main(["table10", "--scale", "cpu", "--rows", "ga", "--seeds", "0", "--", *extra]) == 0
    assert len(calls) == 2  # at CPU scale no derived limits: one reference array, one method array
    (_, _, ref), (_, _, method) = calls
    assert ref["slurm_additional_parameters"] == {"requeue": True, "mail_type": "END", "dependency": "afterok:77"}
    assert method["slurm_additional_parameters"] == {"requeue": True, "mail_type": "END",
                                                     "dependency": "afterok:77,afterany:1001"}


def test_the_local_executor_has_no_dependency_and_its_method_jobs_wait_on_locks(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(submit, "submit", _fake_submit(calls))
    monkeypatch.chdir(tmp_path)  # the submission folder and jobs.csv
    extra = [*SHRINK, "hydra/launcher=local_submitit"]
    assert submit.main(["table10", "--scale", "cpu", "--rows", "ga,ft", "--seeds", "0", "--", *extra]) == 0
    assert [len(c[0]) for c in calls] == [2, 2]  # the original and the Retrain model; GA and FT
    assert not any("dependency" in str(update) for _, _, update in calls)
    assert "waits on the reference jobs' locks" in capsys.readouterr().err


def test_variant_arxiv_reaches_the_ugradsl_rows_and_a_bad_one_is_refused_in_one_line(capsys):
    args = ["table10", "--scale", "cpu", "--rows", "ga,ugradsl", "--seeds", "0", "--dry-run"]
    assert submit.main([*args, "--variant", "arxiv", "--", *SHRINK, "hydra/launcher=local_submitit"]) == 0
    jobs = {line.split(":")[0]: line for line in _jobs(capsys.readouterr().err)}
    assert "method.smooth_rate_mode=adaptive" in jobs["CIFAR-10 / ugradsl seed 0"]
    assert "smooth_rate_mode" not in jobs["CIFAR-10 / ga seed 0"]
    assert submit.main([*args, "--variant", "icml", "--", "hydra/launcher=local_submitit"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'icml'" in err and "iclr" in err and "arxiv" in err


def test_a_launcher_that_cannot_submit_is_refused_in_one_line(capsys):
    assert submit.main(["table10", "--scale", "cpu", "--", "hydra/launcher=local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hydra/launcher=JoblibLauncher" in err and "local_submitit" in err


@pytest.mark.slow  # three submitit jobs end to end; by default the dry run tests the arrays, their order and limits
def test_a_table_submitted_as_arrays_runs_without_a_shared_csv_and_prints(tmp_path, monkeypatch, capsys):
    """Submitted through submitit's local executor with results_csv=null: the call returns with the jobs queued;
    once they end, the runner finds every job done from the run folders' metrics.json (nothing left to submit)
    and `tables print` collects them."""
    monkeypatch.chdir(tmp_path)
    extra = [*SHRINK, "results_csv=null", "hydra/launcher=local_submitit", f"cache_dir={tmp_path}/cache"]
    submitted = []
    real = submit.submit

    def keep(*args):
        jobs = real(*args)  # once per array: the reference models', then the method jobs'
        submitted.extend(jobs)
        return jobs
    monkeypatch.setattr(submit, "submit", keep)
    args = ["table10", "--scale", "cpu", "--rows", "ga", "--seeds", "0"]
    assert submit.main([*args, "--", *extra]) == 0
    assert len(submitted) == 3  # the original, the Retrain model, GA
    (folder,) = (tmp_path / "results" / "submitted").iterdir()
    listed = pd.read_csv(folder / "jobs.csv")
    assert listed.groupby("array")["overrides"].apply(lambda o: o.str.startswith("stage=").sum()).tolist() == [2, 0]
    assert listed["overrides"].str.startswith("stage=").sum() == 2 and not listed["overrides"].str.contains(
        "results_csv=results").any()
    for job in submitted:
        job.result()  # waits; the local preset's timeout_min stops a hung job
    assert not (tmp_path / "results" / "runs.csv").exists()
    jobs = planning.plan(load("table10", "cpu", ["ga"]), [0], extra)
    assert launch.done(jobs, launch.results("results/runs.csv", extra)) == [True]
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
    assert launch.csv_override(where) == []
    assert launch.csv_override(launch.source("r.csv", SHRINK)) == ["results_csv=r.csv"]
    assert not launch.without_csv(["results_csv=null", "results_csv=x.csv"])  # the last one wins, as in Hydra
    jobs = planning.plan(load("table10", "cpu", ["ga"]), [0], [*extra, *launch.csv_override(where)])
    assert jobs[0].cfg.results_csv is None
    assert tables(["run", "table10", "--rows", "ga", "--seeds", "0", "--dry-run", "--", *extra]) == 0
    assert "results_csv=" not in capsys.readouterr().err.replace("results_csv=null", "")
