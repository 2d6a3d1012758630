"""Who writes into a run folder, and how its job ended.

A job claims its run folder before it trains anything: it holds an OS file lock on `<run_dir>/status.lock`
(the OS releases it when the job ends, however it ends) and writes `<run_dir>/status`, one line: `running`,
then `finished` or `failed: <why>`. A second job given the same folder is refused at once, and nothing of the
first is touched; the rerun of a job that died may reuse its folder. SIGTERM (SLURM at a time limit or a
preemption, `kill`) is turned into an exception, as Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, so a
stopped job unwinds like a failed one: W&B finished as failed, curves written, cache locks released, status
`failed`.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from unlearn.cache import DiskFullError, atomic_write
from unlearn.locks import file_lock, lock_failure
from unlearn.checks import ConfigError

log = logging.getLogger("unlearn")
STATUS, LOCK = "status", "status.lock"


class Stopped(SystemExit):
    """The job got SIGTERM (or another stop signal): unwinds like an error, exits with 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signame = signal.Signals(signum).name

    def __str__(self) -> str:
        return f"stopped by {self.signame}"


def status(folder: str | Path) -> str | None:
    """The run folder's state: `running`, `finished`, `failed` or `died` (its status says running but no job
    holds the folder: killed with SIGKILL or by the OOM killer); None when no job ever claimed it."""
    folder = Path(folder)
    try:
        text = (folder / STATUS).read_text()
    except FileNotFoundError:
        return None
    state = text.split(maxsplit=1)[0].rstrip(":") if text.strip() else "running"
    if state == "running":
        probe = FileLock(str(folder / LOCK))  # its own descriptor: blocked by this process's claim, too
        try:
            probe.acquire(blocking=False)
        except Timeout:
            return "running"
        probe.release()
        return "died"
    return state


def _write(folder: Path, line: str) -> None:
    data = (line.rstrip() + "\n").encode()
    try:
        atomic_write(folder / STATUS, lambda f: f.write(data))
    except DiskFullError:  # no room for a new file: overwrite the old line in place (its block is allocated)
        with open(folder / STATUS, "r+b") as f:
            f.write(data)
            f.truncate()


class Claim:
    """This job's hold on its run folder (taken on construction; refused with ConfigError while another job,
    in any process on this machine or one sharing the file system's locks, holds it)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock = file_lock(str(self.folder / LOCK), is_singleton=True)  # re-entrant within one process
        try:
            self.lock.acquire(blocking=False)
        except Timeout:
            try:
                holder = (self.folder / STATUS).read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise ConfigError(f"run_dir={str(self.folder)!r} is in use by another job ({holder}); give each job its "
                              f"own run_dir (or leave it null for a fresh Hydra folder)") from None
        except (OSError, NotImplementedError) as e:  # no flock on this file system: said in one line
            raise lock_failure(self.folder / LOCK, e) from None
        if (self.folder / "metrics.json").exists():  # its job finished while this one was being set up
            self.lock.release()
            raise ConfigError(f"run_dir={str(self.folder)!r} already holds the metrics.json of another run; choose "
                              f"an empty run_dir (or leave it null for a fresh Hydra folder)")
        self.held = True
        _write(self.folder, f"running pid {os.getpid()} on {socket.gethostname()} since {_now()}")

    def finish(self, state: str, why: str = "") -> None:
        """Record how the job ended (`finished` or `failed`, with why) and let the folder go."""
        if not self.held:
            return
        try:
            _write(self.folder, f"{state} {_now()}" + (f": {why}" if why else ""))
        finally:
            self._release()

    def abandon(self) -> None:
        """The job was rejected before it wrote anything: remove the claim's files, so nothing is left behind."""
        if not self.held:
            return
        (self.folder / STATUS).unlink(missing_ok=True)
        self._release()
        (self.folder / LOCK).unlink(missing_ok=True)

    def _release(self) -> None:
        self.held = False
        self.lock.release()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def describe(e: BaseException) -> str:
    if isinstance(e, Stopped):
        return str(e)
    if isinstance(e, KeyboardInterrupt):
        return "stopped by SIGINT (Ctrl-C)"
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


@contextmanager
def stopping_on_signals(signums=(signal.SIGTERM,)):
    """SIGTERM raises Stopped in the main thread (once: a second signal during the clean-up is ignored), so
    `finally` blocks run; the previous handlers come back afterwards. Outside the main thread: no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def job(claim: Claim):
    """The body of a job in its claimed folder: status `finished` when it returns, `failed: <why>` when it raises
    or is stopped (SIGTERM, SIGINT), the claim dropped without a trace when the config is rejected."""
    with stopping_on_signals():
        try:
            yield
        except ConfigError:
            claim.abandon()
            raise
        except BaseException as e:
            claim.finish("failed", describe(e))
            if isinstance(e, (Stopped, KeyboardInterrupt)):
                log.error("%s: run folder %s marked failed", describe(e), claim.folder)
            raise
        claim.finish("finished")
