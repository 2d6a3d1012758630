"""Faults a long sweep meets: a run killed at every stage, corrupt cache files of every kind, torn results
CSVs, two sweeps started together, a lock held by another job. After each, nothing partial is used, no
result is lost or counted twice, and the results equal those of a run that met no fault.

Kills are injected deterministically at the stages of `unlearn.stages`, by the suite's watcher (tests/faults.py)."""
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from tests import faults
from tests.conftest import HANG_GUARD, ROOT, TINY, compose_cfg
from unlearn import cache, locks, results_csv, stages
from unlearn.data.imagefolder import load_imagefolder
from unlearn.identity import config_hash, dirname
from unlearn.references import environment
from unlearn.report import dedup, metric_columns
from unlearn.results_csv import ForeignCSVError, append_row, read_runs
from unlearn.validate import ConfigError, check_results_csv
from unlearn.workspace import Workspace, run_experiment

ENV = {k: v for k, v in os.environ.items() if k not in faults.at("-")}
ENV.update({"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
RUN = [*(o for o in TINY if o != "method.epochs=1"), "threads=1", "checkpoint_every=1", "method.epochs=2"]
# synthetic: the original model and Retrain train 4 epochs, checkpointed after each
FINISHED = "?" * 16 + ".pt"  # <kind>-<16 hex>.pt: a finished cache file, not a resume file (<kind>-<hash>.resume.pt)


def launch(cwd: Path, args: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    """`run.py args` started from `cwd` (Hydra's run folders land under cwd/results), killed at `fault`."""
    env = ENV if fault is None else {**ENV, **faults.at(fault)}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=HANG_GUARD)


def same_results(a: pd.Series, b: pd.Series) -> list[str]:
    """Metric columns on which two result rows differ; run times (RTE) always differ and are left out."""
    cols = [c for c in metric_columns(pd.DataFrame([a, b])) if "RTE" not in c]
    assert len(cols) > 20, cols
    return [c for c in cols if a[c] != b[c]]


# --- kills --------------------------------------------------------------------------------------------------------

def test_a_run_killed_at_every_stage_ends_as_an_uninterrupted_one(tmp_path, tiny_cfg):
    """One run, SIGKILLed in training of the original model, in Retrain, while saving Retrain's checkpoint, while
    unlearning and right after its CSV row, then run to the end: every rerun resumes from what is whole, the
    killed save's temp file is removed and never read, and after dedup the CSV holds one row equal to an
    uninterrupted run's."""
    work = tmp_path / "work"
    work.mkdir()
    args = [*RUN, f"cache_dir={work}/cache", f"results_csv={work}/runs.csv"]
    store, rows = work / "cache", work / "runs.csv"

    def kill(stage: str) -> str:
        out = launch(work, args, fault=stage)
        assert out.returncode == -signal.SIGKILL, f"{stage}: exit {out.returncode}\n{out.stderr[-3000:]}"
        return out.stdout + out.stderr

    def cached(pattern: str) -> list[Path]:
        return sorted(store.glob(pattern))

    kill("original/2")  # after epoch 2 of 4; the resume state holds epoch 1
    assert not cached("original-" + FINISHED) and len(cached("original-*.resume.pt")) == 1 and not rows.exists()

    log = kill("retrain/2")
    assert "original: resuming from epoch 1" in log
    assert cached("original-" + FINISHED) and not cached("original-*.resume.pt")
    assert not cached("retrain-" + FINISHED) and cached("retrain-*.resume.pt")

    kill("save:retrain-" + FINISHED)  # Retrain trained; killed between writing its temp file and the rename
    (tmp,) = cached("retrain-*.pt.*.tmp")
    assert not cached("retrain-" + FINISHED)

    log = kill("unlearn/1")
    assert f"removing {tmp}, left by a killed save" in log and not tmp.exists()
    assert cached("retrain-" + FINISHED) and not cached("*.resume.pt") and not rows.exists()

    kill("csv")  # right after the row is appended, before the job ends
    assert len(read_runs(rows)[0]) == 1

    out = launch(work, args)
    assert out.returncode == 0, out.stderr[-3000:]
    runs, problems = read_runs(rows)
    assert not problems and len(runs) == 2  # the killed job's row and its rerun's
    assert not cached("*.tmp") and not cached("*.corrupt") and len(cached("*-" + FINISHED)) == 6
    assert not same_results(runs.iloc[0], runs.iloc[1])
    deduped = dedup(runs)
    assert len(deduped) == 1 and deduped["timestamp"][0] == runs["timestamp"].max()  # the rerun's row is kept

    run_experiment(tiny_cfg("threads=1", "checkpoint_every=1", "method.epochs=2"))  # never interrupted
    whole = pd.read_csv(tmp_path / "runs.csv").iloc[0]
    assert whole["config_id"] == deduped["config_id"][0]
    assert not same_results(deduped.iloc[0], whole)


# --- corrupt cache files ------------------------------------------------------------------------------------------

class Payload:
    """Unpickling this would create `path`: torch.load(weights_only=True) must refuse it, and nothing may retry."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def corrupt(path: Path, way: str, marker: Path) -> str:
    """Damage the cache file at `path` in one `way`; returns the suffix it must be moved aside with."""
    if way == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif way == "empty":
        path.write_bytes(b"")
    elif way == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 40)
    elif way == "directory":
        path.unlink()
        (path / "inside").mkdir(parents=True)
    elif way == "pickle":
        key = torch.load(path, weights_only=True)["key"]  # the right key: only the payload is refused
        torch.save({"key": key, "value": Payload(marker)}, path)
        return "unsafe"
    elif way == "other key":
        torch.save({"key": "another key", "value": {}}, path)
        return "stale"
    return "corrupt"


WAYS = ["truncated", "empty", "garbage", "directory", "pickle", "other key"]


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A cache holding the original model and its metrics, and what they are."""
    root = tmp_path_factory.mktemp("warm")
    ws = Workspace(compose_cfg(TINY, root))
    digest = ws.refs.original()[1]["digest"]
    return root / "cache", digest, ws.refs.metrics("original", ws.evaluate)


def check_moved_aside(store: Path, path: Path, suffix: str, log: str, marker: Path) -> None:
    assert f"cache file {path} " in log and "moved it to" in log, log
    assert len(list(store.glob(f"{path.name}.*.{suffix}"))) == 1, sorted(p.name for p in store.iterdir())
    assert path.is_file() and not marker.exists()
    if suffix == "unsafe":
        assert "refuses: unsafe, never loaded" in log


@pytest.mark.parametrize("kind", ["checkpoint", "metrics"])
@pytest.mark.parametrize("way", WAYS)
def test_a_corrupt_reference_file_is_moved_aside_and_recomputed(kind, way, warm, tmp_path, caplog):
    store = tmp_path / "cache"
    shutil.copytree(warm[0], store)
    (path,) = store.glob(("original-" if kind == "checkpoint" else "metrics-original-") + FINISHED)
    suffix = corrupt(path, way, tmp_path / "pwned")
    ws = Workspace(compose_cfg(TINY, tmp_path))
    with caplog.at_level("INFO", logger="unlearn"):
        digest = ws.refs.original()[1]["digest"]
        metrics = ws.refs.metrics("original", ws.evaluate)
    assert (digest, metrics) == warm[1:]
    check_moved_aside(store, path, suffix, caplog.text, tmp_path / "pwned")


def write_images(root: Path) -> None:
    g = torch.Generator().manual_seed(0)
    for part, n in (("train", 4), ("test", 2)):
        for c in ("a", "b"):
            (root / part / c).mkdir(parents=True)
            for i in range(n):
                pixels = torch.randint(0, 256, (8, 8, 3), generator=g, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(root / part / c / f"{i}.png")


@pytest.mark.parametrize("way", WAYS)
def test_a_corrupt_decoded_data_file_is_moved_aside_and_recomputed(way, tmp_path, caplog):
    write_images(tmp_path / "images")
    store = tmp_path / "cache"
    load = lambda: load_imagefolder(str(tmp_path / "images"), cache_dir=str(store), num_workers=0)  # noqa: E731
    first = load()
    (path,) = store.glob("images-" + FINISHED)
    suffix = corrupt(path, way, tmp_path / "pwned")
    with caplog.at_level("INFO", logger="unlearn"):
        again = load()
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.x_test, first.x_test)
    check_moved_aside(store, path, suffix, caplog.text, tmp_path / "pwned")


def test_temp_files_of_a_killed_save_are_removed_under_the_lock(tmp_path, caplog):
    key = {"what": "x"}
    name = f"thing-{config_hash(key)}"
    left = [tmp_path / f"{name}.pt.abc123.tmp", tmp_path / f"{name}.resume.pt.def456.tmp"]
    other = tmp_path / f"thing-{config_hash({'what': 'y'})}.pt.ghi789.tmp"  # another key's save, maybe running
    for p in (*left, other):
        p.write_bytes(b"partial")
    with caplog.at_level("WARNING", logger="unlearn"):
        assert cache.cached("thing", key, tmp_path, lambda: {"v": 1}) == {"v": 1}
    assert not any(p.exists() for p in left) and other.exists()
    assert all(f"removing {p}" in caplog.text for p in left)


def test_a_held_lock_is_reported_and_given_up_on(tmp_path, monkeypatch, caplog):
    """Another job holds the lock of the same key: the waiter logs who holds it (every LOCK_LOG_EVERY seconds)
    and raises TimeoutError after lock_timeout, naming the holder; nothing is computed."""
    monkeypatch.setattr(locks, "LOCK_LOG_EVERY", 0.1)
    key = {"what": "x"}
    path = tmp_path / f"thing-{config_hash(key)}.pt"
    with locks.locked(path, what="the other job"), caplog.at_level("INFO", logger="unlearn"):
        with pytest.raises(TimeoutError, match=rf"after \d\.\d s waiting for the lock on {re.escape(str(path))} "
                                               rf"\(thing\), held by pid {os.getpid()} on "):
            cache.cached("thing", key, tmp_path, lambda: pytest.fail("computed without the lock"), lock_timeout=0.5)
    assert f"held by pid {os.getpid()} on " in caplog.text and "waiting" in caplog.text
    assert not path.exists()


def test_lock_timeout_reaches_every_lock_of_the_job_and_no_other(tiny_cfg, monkeypatch):
    """lock_timeout=12.5: every lock the job takes without its own timeout (data, reference models, metrics, the
    results CSV) waits at most 12.5 s, and the process default is back once the job is over."""
    seen = []
    real = locks.locked

    def spy(path, timeout=None, what=""):
        seen.append((Path(path).name, locks.lock_timeout() if timeout is None else timeout))
        return real(path, timeout, what)

    for module in (cache, results_csv, locks):  # the cache, the results CSV, check_lockable
        monkeypatch.setattr(module, "locked", spy)
    ws = Workspace(tiny_cfg("lock_timeout=12.5"))
    ws.run()
    waits = {name: t for name, t in seen if t != 0.0}  # 0.0: check_lockable's try at once
    assert {n.split("-")[0] for n in waits} >= {"original", "retrain", "metrics", "runs.csv"}, waits
    assert set(waits.values()) == {12.5}, waits
    assert locks.lock_timeout() == locks.LOCK_TIMEOUT


def test_a_stage_watcher_is_loaded_from_its_file_and_a_bad_one_is_named(tmp_path):
    """unlearn.stages runs the watcher $UNLEARN_WATCH names; a name that is no Python file is refused in one line."""
    (tmp_path / "w.py").write_text("SEEN = []\ndef note(stage):\n    SEEN.append(stage)\n")
    (watch,) = stages.load(f"{tmp_path}/w.py:note")
    watch("csv")
    assert watch.__globals__["SEEN"] == ["csv"] and stages.load(None) == [] and stages.load("") == []
    with pytest.raises(ValueError, match=r"^UNLEARN_WATCH='nope:kill' is invalid; allowed: path/to/file.py:function"):
        stages.load("nope:kill")


# --- reference metrics follow the checkpoint's content ---------------------------------------------------------

def test_reference_metrics_follow_the_checkpoint_not_its_name(tiny_cfg, monkeypatch, caplog):
    """A deleted checkpoint retrained to other weights under the same key (another machine, torch or thread
    count) gets its metrics recomputed: they describe the model that is loaded, never the deleted one."""
    import unlearn.references as references

    first = Workspace(tiny_cfg())
    model, info = first.refs.original()
    stale = first.refs.metrics("original", first.evaluate)
    (ckpt,) = Path(first.cfg.cache_dir).glob("original-" + FINISHED)
    ckpt.unlink()
    fit = references.fit

    def other_weights(model, data, idx, recipe, seed, **kw):
        return fit(model, data, idx, recipe, seed + 1, **kw)

    monkeypatch.setattr(references, "fit", other_weights)
    again = Workspace(tiny_cfg())
    with caplog.at_level("INFO", logger="unlearn"):
        model, new_info = again.refs.original()
        metrics = again.refs.metrics("original", again.evaluate)
    assert new_info["digest"] != info["digest"] and "metrics-original: not cached, computing" in caplog.text
    assert metrics == again.evaluate(model) and metrics != stale


def test_reference_metrics_are_keyed_by_the_environment(tiny_cfg):
    ws = Workspace(tiny_cfg())
    key = ws.refs._eval_key("original")[1]
    assert key["env"] == environment(ws.device) and key["env"]["threads"] == torch.get_num_threads()
    assert ws.refs.original_key()["env"] == key["env"]


def test_a_cache_shared_by_machines_with_other_cpu_instruction_sets_keeps_their_models_apart(tiny_cfg, monkeypatch):
    """The same CPU run trains other weights under AVX2 and AVX-512 (README, "Two commands")."""
    from unlearn import references
    ws = Workspace(tiny_cfg())
    here = references.cpu_capability()
    assert here == torch.backends.cpu.get_cpu_capability() and ws.refs.original_key()["env"]["cpu_capability"] == here
    keys = {}
    for isa in ("AVX2", "AVX512"):
        monkeypatch.setattr(references, "cpu_capability", lambda isa=isa: isa)
        keys[isa] = (config_hash(ws.refs.original_key()), config_hash(ws.refs.retrain_key()),
                     config_hash(ws.refs._eval_key("original")[1]))
    assert all(a != b for a, b in zip(keys["AVX2"], keys["AVX512"]))


# --- the results CSV ----------------------------------------------------------------------------------------------

def row(seed: int, **extra) -> dict:
    return {"table": "-", "dataset": "synthetic", "model": "cnn", "paradigm": "random", "method": "ga",
            "smooth_rate": "", "p": "", "seed": seed, "config_id": "abc", "timestamp": f"2026-01-01T00:00:0{seed}", "UA": 1.5 + seed, **extra}


def test_a_cut_last_line_is_reported_set_aside_and_never_glued_to(tmp_path, capsys, monkeypatch):
    path = tmp_path / "runs.csv"
    append_row(path, row(0))
    append_row(path, row(1))
    path.write_bytes(path.read_bytes()[:-9])  # a crash in the middle of the last row
    runs, problems = read_runs(path)
    assert len(runs) == 1 and problems and problems[0].startswith("torn last line dropped")
    check_results_csv(path)  # a torn line does not stop the next run
    monkeypatch.setattr(sys, "argv", ["collect.py", str(path)])
    collect = _collect()
    collect.main()
    captured = capsys.readouterr()
    assert "torn last line dropped" in captured.err and "ga" in captured.out
    append_row(path, row(2))
    runs, problems = read_runs(path)
    assert not problems and runs["seed"].tolist() == [0, 2]
    assert (tmp_path / "runs.csv.torn").read_text().startswith("-,synthetic,cnn,random,ga,,,1,abc,")


def _collect():
    import importlib.util
    spec = importlib.util.spec_from_file_location("collect", ROOT / "scripts" / "collect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cut_header_is_set_aside(tmp_path, capsys, monkeypatch):
    path = tmp_path / "runs.csv"
    path.write_text("table,dataset,mod")  # the first write of the file was cut
    check_results_csv(path)
    assert read_runs(path)[1] == ["torn header dropped: 'table,dataset,mod'"]
    monkeypatch.setattr(sys, "argv", ["collect.py", str(path)])
    with pytest.raises(SystemExit) as e:
        _collect().main()
    assert e.value.code == 2 and "no complete rows" in capsys.readouterr().err
    append_row(path, row(0))
    runs, problems = read_runs(path)
    assert not problems and list(runs.columns) == list(row(0)) and len(runs) == 1
    assert (tmp_path / "runs.csv.torn").read_text() == "table,dataset,mod\n"


def test_a_foreign_csv_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("name,score\nalice,007\n")
    with pytest.raises(ConfigError, match="has another header"):
        check_results_csv(path)
    with pytest.raises(ForeignCSVError, match="has another header"):
        append_row(path, row(0))
    assert path.read_text() == "name,score\nalice,007\n"


def test_widening_keeps_old_values_as_they_were_written(tmp_path):
    path = tmp_path / "runs.csv"
    header = ["table", "dataset", "model", "paradigm", "method", "seed", "config_id", "lr"]
    path.write_text(",".join(header) + "\n-,d,m,p,ga,0,abc,0.10\n-,d,m,p,ga,1,abc,007\n-,d,m,p,ga,torn\n")
    new = {**row(2), "lr": 1e-3, "new": "x"}
    append_row(path, new)
    lines = path.read_text().splitlines()
    wider = header + [k for k in new if k not in header]
    pad = "," * (len(wider) - len(header))
    assert lines[0] == ",".join(wider)
    assert lines[1:4] == ["-,d,m,p,ga,0,abc,0.10" + pad, "-,d,m,p,ga,1,abc,007" + pad, "-,d,m,p,ga,torn"]
    runs, problems = read_runs(path)
    assert len(runs) == 3 and problems == [f"line 4: 6 fields instead of {len(wider)}, dropped"]


def test_a_metrics_file_is_never_overwritten(tmp_path):
    from unlearn.results import write_json
    write_json(tmp_path / "metrics.json", {"run": 1}, exclusive=True)
    with pytest.raises(FileExistsError):
        write_json(tmp_path / "metrics.json", {"run": 2}, exclusive=True)


# --- run folders --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", ["wandb.group=../../..", "dataset.root=/etc/passwd,table=a/b",
                                       "x=" + "../" * 100, "table=..", "a=b\\c:d*e?f|g<h>"])
def test_override_values_never_name_a_path(overrides):
    name = dirname(overrides)
    assert "/" not in name and "\\" not in name and ".." not in name and name not in ("", ".")
    assert len(name) <= 120


def test_two_sweeps_started_together_keep_every_row_in_their_own_folders(tmp_path):
    """Two identical sweeps started at once from one folder share the cache and the CSV: each job has its own
    folder below the output root (override values that look like paths included), no row is lost, and the
    shared reference models are trained once."""
    launch_dir, escape = tmp_path / "launch", Path("/tmp") / f"{tmp_path.name}-escape"
    launch_dir.mkdir()
    args = ["-m", *RUN, "method=ga,ft", "cache_dir=cache", "results_csv=runs.csv", "table=a/b",
            f"wandb.group={'../' * 12}tmp/{escape.name}"]
    procs = [subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=launch_dir, env=ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=HANG_GUARD)
        assert p.returncode == 0, err[-3000:]
    assert not escape.exists() and [p.name for p in tmp_path.iterdir()] == ["launch"]
    sweeps = sorted((launch_dir / "results" / "multirun").iterdir())
    assert len(sweeps) == 2
    metrics = sorted(launch_dir.rglob("metrics.json"))
    assert len(metrics) == 4 and all(m.parent.parent in sweeps for m in metrics)
    runs, problems = read_runs(launch_dir / "runs.csv")
    assert not problems and len(runs) == 4 and runs["run_dir"].nunique() == 4
    assert sorted(runs["method"]) == ["ft", "ft", "ga", "ga"] and (runs["table"] == "a/b").all()
    assert len(list((launch_dir / "cache").glob("original-" + FINISHED))) == 1
    assert len(list((launch_dir / "cache").glob("retrain-" + FINISHED))) == 1
