"""Result files and caches shared between jobs and users: a run folder has one writer, another program's file is
never rewritten, a shared file keeps its link and mode, a new one honours the umask, another user's unreadable
file is "unreadable" (never "corrupt"), every result is written whole or not at all ("disk full" named), and a
stopped job (SIGTERM, Ctrl-C) leaves its curves, a failed status, a failed W&B run and no lock behind."""
import builtins
import errno
import io
import os
import signal
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests import faults
from tests.conftest import HANG_GUARD, ROOT
from tests.test_faults import ENV, RUN, launch, row
from unlearn import cache
from unlearn.results_csv import ForeignCSVError, append_row, read_runs
from unlearn.validate import ConfigError, check_results_csv


@contextmanager
def hang_guard(seconds: int = 60):
    """Fail instead of blocking forever (an open() of a FIFO): SIGALRM interrupts the blocked call."""
    def alarm(signum, frame):
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- one job per run folder ---------------------------------------------------------------------------------------

HOLD = ("import sys; from unlearn.rundir import Claim; c = Claim(sys.argv[1]); print('held', flush=True); "
        "sys.stdin.read()")


def test_a_second_job_in_a_claimed_run_folder_is_refused_at_once_and_touches_nothing(tmp_path):
    """Two jobs given one run_dir: the second is refused before any work, naming the holder, and writes nothing
    there; once the first has ended, the folder is usable and says how its job ended."""
    from unlearn.rundir import Claim, status
    folder, work = tmp_path / "shared-run", tmp_path / "work"
    work.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, env=ENV, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert status(folder) == "running"
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        args = [*RUN, f"run_dir={folder}", f"cache_dir={work}/cache", f"results_csv={work}/runs.csv"]
        out = launch(work, args)
        assert out.returncode == 2, out.stderr[-3000:]
        assert f"run_dir='{folder}' is in use by another job (running pid {holder.pid} on " in out.stderr
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing of the first job touched
        assert not (work / "runs.csv").exists() and not list((work / "cache").glob("*.pt"))  # no work was done
    finally:
        holder.communicate("", timeout=HANG_GUARD)
    assert status(folder) == "died"  # its status says running, but nobody holds the folder
    Claim(folder).finish("finished")  # free again: the rerun of a dead job may use it
    assert status(folder) == "finished"


def test_a_claim_in_one_process_blocks_other_descriptors_and_a_finished_folder_is_refused(tmp_path):
    from unlearn.rundir import Claim, status
    claim = Claim(tmp_path / "run")
    assert status(tmp_path / "run") == "running"  # probed through its own descriptor: the claim blocks it
    claim.finish("finished")
    assert status(tmp_path / "run") == "finished"
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds the metrics.json of another run"):
        Claim(tmp_path / "run")
    assert (tmp_path / "run" / "status").read_text().startswith("finished ")


# --- the results CSV: another program's file, a FIFO, a row without its line end ----------------------------------

JSON_FILES = {"one line": '{"a": 1, "b": [1, 2]}', "lines": '{\n  "a": 1,\n  "b": 2\n}', "prose": "hello world"}


@pytest.mark.parametrize("text", JSON_FILES.values(), ids=JSON_FILES.keys())
def test_a_file_that_is_no_results_csv_is_refused_and_left_as_it_was(tmp_path, text):
    path = tmp_path / "results.json"
    path.write_text(text)  # no final newline
    with pytest.raises(ConfigError, match="is not a results CSV|has another header"):
        check_results_csv(path)
    for new in (row(0), {"a": 1}):  # a run's row and any other row
        with pytest.raises(ForeignCSVError):
            append_row(path, new)
    assert path.read_text() == text and not (tmp_path / "results.json.torn").exists()


def test_a_whole_last_row_without_its_line_end_is_kept(tmp_path):
    path = tmp_path / "runs.csv"
    append_row(path, row(0))
    append_row(path, row(1))
    path.write_bytes(path.read_bytes().removesuffix(b"\r\n"))  # an editor saved it without the final line end
    runs, problems = read_runs(path)
    assert not problems and runs["seed"].tolist() == [0, 1]
    check_results_csv(path)
    append_row(path, row(2))
    runs, problems = read_runs(path)
    assert not problems and runs["seed"].tolist() == [0, 1, 2] and not (tmp_path / "runs.csv.torn").exists()
    append_row(path, row(3, note="a, b"))  # widened: a quoted last field
    path.write_bytes(path.read_bytes()[:-5])  # cut inside the quotes: the field count alone would look whole
    append_row(path, row(4, note="c"))
    runs, problems = read_runs(path)
    assert not problems and runs["seed"].tolist() == [0, 1, 2, 4]
    assert (tmp_path / "runs.csv.torn").read_bytes().startswith(b"-,synthetic,cnn,random,ga,,,3,")


def test_a_fifo_as_results_csv_is_refused_without_being_opened(tmp_path, tiny_cfg):
    from unlearn.workspace import Workspace
    fifo = tmp_path / "runs.fifo"
    os.mkfifo(fifo)
    with hang_guard():
        with pytest.raises(ConfigError, match=r"is a FIFO \(named pipe\); allowed: a regular file"):
            check_results_csv(fifo)
        with pytest.raises(ForeignCSVError, match="is a FIFO"):
            append_row(fifo, row(0))
        with pytest.raises(ConfigError, match="is a FIFO"):
            Workspace(tiny_cfg(f"results_csv={fifo}"))
    with pytest.raises(ConfigError, match="is a device"):
        check_results_csv(Path("/dev/null"))


# --- shared files: links, modes, the umask, files other users cannot read ----------------------------------------

def test_widening_a_shared_csv_writes_through_its_symlink_and_keeps_its_mode(tmp_path):
    shared, mine = tmp_path / "shared", tmp_path / "me"
    shared.mkdir(), mine.mkdir()
    target, link = shared / "runs.csv", mine / "runs.csv"
    append_row(target, row(0))
    target.chmod(0o666)  # the lab's file: everyone appends
    link.symlink_to(target)
    append_row(link, row(1, new_column="x"))  # widens the header: a rewrite through a temp file and a rename
    append_row(link, row(2))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert mode(target) == 0o666
    runs, problems = read_runs(target)
    assert not problems and runs["seed"].tolist() == [0, 1, 2] and "new_column" in runs
    assert not list(mine.glob("runs.csv.*")) and not list(shared.glob("*.tmp"))  # one lock, at the target


def test_new_result_and_cache_files_honour_the_umask(tmp_path):
    from unlearn.results import write_json, write_predictions
    with umask(0o002):  # a group-shared cache and results folder
        cache.cached("thing", {"k": 1}, tmp_path / "cache", lambda: {"v": torch.ones(2)})
        write_json(tmp_path / "run" / "metrics.json", {"a": 1}, exclusive=True)
        write_predictions(tmp_path / "run" / "predictions.npz", {"p": torch.zeros(3)})
        append_row(tmp_path / "runs.csv", row(0))
        append_row(tmp_path / "runs.csv", row(1, new_column="x"))  # widened: keeps the mode it was created with
    files = [*(tmp_path / "cache").glob("thing-*.pt"), tmp_path / "run" / "metrics.json",
             tmp_path / "run" / "predictions.npz", tmp_path / "runs.csv"]
    assert len(files) == 4 and {f.name: mode(f) for f in files} == {f.name: 0o664 for f in files}
    locks = [*(tmp_path / "cache").glob("thing-*.pt.lock"), tmp_path / "runs.csv.lock"]
    assert [mode(f) for f in locks] == [0o666, 0o666]  # no data in them; every user sharing the file must lock it
    with umask(0o077):  # a private setup stays private
        cache.cached("thing", {"k": 2}, tmp_path / "private", lambda: {"v": 1})
    assert [mode(f) for f in (tmp_path / "private").glob("thing-*.pt")] == [0o600]


def test_a_cache_file_this_user_cannot_read_is_reported_unreadable_and_left_in_place(tmp_path, monkeypatch):
    """Another user's file (mode 0600): reading it fails with a permission error, which says nothing about its
    content. As root every file is readable, so the refusal is simulated at torch.load."""
    cache.cached("thing", {"k": 1}, tmp_path, lambda: {"v": 1})
    (path,) = tmp_path.glob("thing-*.pt")

    def refused(f, *a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(f))

    monkeypatch.setattr(cache.torch, "load", refused)
    with pytest.raises(cache.UnreadableFileError, match=rf"cache file {path} is unreadable \(Permission denied\)"):
        cache.cached("thing", {"k": 1}, tmp_path, lambda: pytest.fail("recomputed over another user's file"))
    assert [p.name for p in tmp_path.glob("thing-*") if not p.name.endswith(".lock")] == [path.name]  # no *.corrupt


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-0000 file")
def test_a_mode_0000_cache_file_is_unreadable_not_corrupt(tmp_path):
    cache.cached("thing", {"k": 1}, tmp_path, lambda: {"v": 1})
    (path,) = tmp_path.glob("thing-*.pt")
    path.chmod(0)
    with pytest.raises(cache.UnreadableFileError, match="is unreadable"):
        cache.cached("thing", {"k": 1}, tmp_path, lambda: {"v": 2})
    assert not list(tmp_path.glob("*.corrupt"))


# --- 16-bit images --------------------------------------------------------------------------------------------------

def test_16_bit_pngs_are_scaled_by_range_not_clipped(tmp_path):
    from unlearn.data.imagefolder import load_imagefolder
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0 .. 65535
    for part in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / part / c).mkdir(parents=True)
            Image.fromarray(ramp).save(tmp_path / part / c / "ramp.png")
    with Image.open(tmp_path / "train" / "a" / "ramp.png") as im:
        assert im.mode.startswith("I")  # what PIL makes of a 16-bit grey PNG
    data = load_imagefolder(str(tmp_path), num_workers=0, cache_dir=None)
    x = data.x_train[0]
    assert x.dtype == torch.uint8 and torch.equal(x[0].flatten(), torch.arange(256, dtype=torch.uint8))
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])


def test_an_image_of_an_unsupported_depth_is_refused_by_name(tmp_path):
    from unlearn.data.store import UnreadableImageError, load_image
    path = tmp_path / "float.tif"
    Image.fromarray(np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)).save(path)
    with pytest.raises(UnreadableImageError, match=rf"image file {path} .*32-bit float"):
        load_image(path)


# --- a full disk --------------------------------------------------------------------------------------------------

@pytest.fixture
def full_disk(monkeypatch):
    """Writes below a folder fail as on a full disk: half the bytes land, then OSError(ENOSPC)."""
    real_open = builtins.open

    class Full(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def writable(self):
            return True

        def seekable(self):
            return self.f.seekable()

        def seek(self, *a):
            return self.f.seek(*a)

        def tell(self):
            return self.f.tell()

        def write(self, data):
            self.f.write(bytes(data)[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.f.close()
            super().close()

    def fill(folder: Path):
        def fake_open(file, mode="r", *a, **kw):
            if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax") \
                    and Path(file).resolve().is_relative_to(folder.resolve()):
                full = Full(real_open(file, mode if "b" in mode else mode + "b"))
                return full if "b" in mode else io.TextIOWrapper(full, encoding="utf-8")
            return real_open(file, mode, *a, **kw)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
    return fill


def test_a_full_disk_never_leaves_a_torn_metrics_json(tmp_path, full_disk):
    from unlearn.results import write_json
    path = tmp_path / "run" / "metrics.json"
    path.parent.mkdir()
    full_disk(tmp_path)
    with pytest.raises(cache.DiskFullError, match=rf"disk full while writing {path} \(No space left on device\)"):
        write_json(path, {"metrics": {"UA": 1.0}}, exclusive=True)
    assert list(path.parent.iterdir()) == []  # neither a torn metrics.json nor a temp file


def test_a_full_disk_while_saving_a_checkpoint_says_disk_full_with_the_path(tmp_path, full_disk):
    full_disk(tmp_path / "cache")
    with pytest.raises(cache.DiskFullError, match=r"disk full while writing .*/cache/thing-\w+\.pt"):
        cache.cached("thing", {"k": 1}, tmp_path / "cache", lambda: {"w": torch.randn(64, 64)})
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]  # no temp file, no torn checkpoint


def test_a_full_disk_at_the_end_of_a_run_marks_it_failed_and_leaves_no_torn_file(tiny_cfg, full_disk):
    from unlearn.rundir import status
    from unlearn.workspace import Workspace
    ws = Workspace(tiny_cfg())
    full_disk(ws.out_dir)
    with pytest.raises(cache.DiskFullError, match="disk full while writing"):
        ws.run()
    assert status(ws.out_dir) == "failed" and "DiskFullError" in (ws.out_dir / "status").read_text()
    assert not list(ws.out_dir.glob("*.tmp")) and not (ws.out_dir / "metrics.json").exists()


# --- stopped jobs ---------------------------------------------------------------------------------------------------

def _check_stopped(work: Path, folder: Path, signame: str) -> None:
    """What a job stopped by `signame` while Retrain trains leaves: a failed status naming the signal, the curves
    trained so far, Retrain's resume file, no lock, no temp file, no result, and a W&B run finished as failed."""
    from tests.test_wandb import offline_run
    assert (folder / "status").read_text().startswith("failed ") and f"stopped by {signame}" in \
        (folder / "status").read_text()
    curves = pd.read_csv(folder / "curves.csv")
    assert set(curves["phase"]) == {"original", "retrain"} and curves[curves["phase"] == "retrain"]["epoch"].max() == 2
    assert not list(work.rglob("*.lock.owner")) and not list(work.rglob("*.tmp"))
    assert list((work / "cache").glob("retrain-*.resume.pt"))  # the rerun resumes
    assert not (work / "runs.csv").exists() and not (folder / "metrics.json").exists()
    (wandb_run,) = (work / "wandb").glob("offline-run-*")
    run = offline_run(wandb_run)
    assert run["exit_code"] == 1 and run["config"]["dataset"] == "synthetic" and run["config"]["config_id"]
    assert {"original/loss", "retrain/loss"} <= {k for h in run["history"] for k in h}
    assert "stopped by" in run["summary"]["failure"] or "KeyboardInterrupt" in run["summary"]["failure"]


def test_a_job_stopped_by_sigterm_leaves_its_curves_a_failed_status_a_failed_wandb_run_and_no_lock(tmp_path):
    """SIGTERM (SLURM's time limit or preemption) while Retrain trains, with W&B offline, delivered to `run.py` as
    a user starts it: it exits 128 + 15 without a traceback and leaves what `_check_stopped` lists; W&B prints
    nothing on the console (`wandb.silent` by default; no WANDB_* variable of the user's shell is needed)."""
    work, folder = tmp_path / "work", tmp_path / "run"
    work.mkdir()
    env = {k: v for k, v in ENV.items() if not k.startswith("WANDB_")}
    out = subprocess.run([sys.executable, str(ROOT / "run.py"), *RUN, f"run_dir={folder}", f"cache_dir={work}/cache",
                          f"results_csv={work}/runs.csv", "wandb.mode=offline", f"wandb.dir={work}",
                          "wandb.project=unit"], cwd=work, capture_output=True, text=True, timeout=HANG_GUARD,
                         env={**env, **faults.at("retrain/2", "SIGTERM")})
    assert out.returncode == 143 and "Traceback" not in out.stderr, out.stderr[-3000:]
    banners = [line for line in (out.stdout + out.stderr).splitlines() if line.lower().startswith("wandb")]
    assert not banners, banners
    _check_stopped(work, folder, "SIGTERM")


def test_a_job_stopped_by_ctrl_c_leaves_the_same_and_stays_a_keyboard_interrupt(tmp_path, tiny_cfg, monkeypatch):
    """Ctrl-C is Python's KeyboardInterrupt, raised where the job is (here at the same stage, in this process; the
    signal's delivery is Python's): the job leaves what SIGTERM's does and re-raises it (notebooks expect it)."""
    from tests.test_wandb import offline_runs
    from unlearn import stages
    from unlearn.workspace import Workspace

    def ctrl_c(stage: str) -> None:
        if stage == "retrain/2":
            raise KeyboardInterrupt

    work, folder = tmp_path / "work", tmp_path / "run"
    work.mkdir()
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(stages, "_watchers", [ctrl_c])
    cfg = tiny_cfg(*RUN[RUN.index("threads=1"):], f"run_dir={folder}", f"cache_dir={work}/cache",
                   f"results_csv={work}/runs.csv", "wandb.mode=offline", f"wandb.dir={work}", "wandb.project=unit")
    with pytest.raises(KeyboardInterrupt):
        Workspace(cfg).run()
    offline_runs(work)  # wandb.teardown(): every run file closed
    _check_stopped(work, folder, "SIGINT")


# --- W&B tags -------------------------------------------------------------------------------------------------------

def test_a_string_of_wandb_tags_is_one_tag(tiny_cfg):
    from unlearn.wandb_log import run_tags
    ident = {"table": "-", "dataset": "synthetic", "model": "cnn", "method": "ga"}
    tags = run_tags(tiny_cfg("wandb.tags=abc"), ident)
    assert "abc" in tags and "a" not in tags
    assert {"x", "y"} <= set(run_tags(tiny_cfg("wandb.tags=[x,y]"), ident))
    from omegaconf import OmegaConf
    from unlearn.validate import check_recording
    cfg = OmegaConf.create({"eval": {"every_epoch": False}, "wandb": {"silent": True, "log_models": False}})
    cfg.wandb.tags = {"a": 1}  # a mapping, from a YAML file
    with pytest.raises(ConfigError, match=r"wandb.tags=.*allowed: null, one tag"):
        check_recording(cfg)


SETUP_STOP = """
import os, signal, sys
from pathlib import Path
from tests.conftest import TINY, compose_cfg
from unlearn import locks, workspace

def stopped_in_a_cached_step(*args):  # SIGTERM while setup holds a cache lock (decoding a data set, say)
    with locks.locked(Path(sys.argv[1]) / "images.pt"):
        os.kill(os.getpid(), signal.SIGTERM)

workspace.check_split = stopped_in_a_cached_step
workspace.Workspace(compose_cfg(TINY, Path(sys.argv[1])))
"""


def test_sigterm_while_the_job_sets_up_releases_its_cache_lock(tmp_path):
    out = subprocess.run([sys.executable, "-c", SETUP_STOP, str(tmp_path)], cwd=ROOT, env=ENV, capture_output=True,
                         text=True, timeout=HANG_GUARD)
    assert out.returncode == 143, out.stderr[-3000:]
    assert (tmp_path / "images.pt.lock").exists() and not (tmp_path / "images.pt.lock.owner").exists()


def test_a_full_disk_while_appending_a_row_names_the_csv_and_leaves_no_partial_row(tmp_path, full_disk):
    path = tmp_path / "runs.csv"
    append_row(path, row(0))
    before = path.read_bytes()
    full_disk(tmp_path)
    with pytest.raises(cache.DiskFullError, match=rf"disk full while writing {path} "):
        append_row(path, row(1))
    assert path.read_bytes() == before
