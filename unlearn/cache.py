"""Content-addressed cache: anything expensive is stored as `<kind>-<hash of its key>.pt`, with the key.

One function, `cached`, serves checkpoints, decoded images, token ids, embeddings and reference
metrics. A file is only ever used when its stored key equals the requested one; a file that cannot be
read (truncated, empty, garbage, a directory) or carries another key is moved aside (`*.corrupt`,
`*.stale`) with a warning and recomputed; one that `torch.load(weights_only=True)` refuses is moved
aside as `*.unsafe` and never loaded. Writes are atomic (temp file + rename) and parallel jobs compute a
key once under a file lock that logs while it waits and gives up after `lock_timeout` seconds; temp files
of a killed save are removed under that lock.

`fault` is the one fault-injection point of the package (tests/test_faults.py kills runs at named stages).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import signal
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock, Timeout
from hydra.utils import to_absolute_path

from unlearn.identity import config_hash

log = logging.getLogger("unlearn")
LOCK_TIMEOUT = 24 * 3600.0  # seconds a job waits for another job's lock before giving up (set by the runner)
LOCK_LOG_EVERY = 30.0  # seconds between "still waiting" messages
UNSAFE = ("Unsupported global", "Unsupported class")  # torch.load(weights_only=True) refusing an object (torch
# >= 2.4, 2.3); other failures (garbage, truncation, "Unsupported operand") are a corrupt file
FAULT = os.environ.get("UNLEARN_FAULT")  # fault injection (tests only): a stage pattern, see `fault`


def fault(stage: str) -> None:
    """Fault-injection point: SIGKILL this process when $UNLEARN_FAULT (an fnmatch pattern) matches `stage`.

    Stages: `<phase>/<epoch>` after a training curve point (original/2, retrain/1, unlearn/1), `save:<file
    name>` between writing a cache or resume file's temp file and renaming it, `csv` right after a results
    row is appended. Unset (always, outside tests/test_faults.py), it costs one comparison.
    """
    if FAULT is not None and fnmatch.fnmatchcase(stage, FAULT):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_save(payload, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        fault(f"save:{path.name}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def locked(path: Path, timeout: float | None = None, what: str = ""):
    """Hold `<path>.lock`; while another process holds it, log who and since when every 30 s; give up
    with a clear error after `timeout` seconds (default LOCK_TIMEOUT)."""
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    lock, owner = FileLock(str(path) + ".lock"), Path(str(path) + ".lock.owner")
    start = time.monotonic()
    while True:
        try:
            lock.acquire(timeout=max(0.0, min(LOCK_LOG_EVERY, timeout - (time.monotonic() - start))))
            break
        except Timeout:
            waited = time.monotonic() - start
            holder = owner.read_text().strip() if owner.exists() else "unknown"
            if waited >= timeout:
                raise TimeoutError(f"gave up after {waited:.1f} s waiting for the lock on {path} ({what}), held by "
                                   f"{holder}: that job is still running (the OS releases the lock of a process "
                                   f"that ends). Wait for it, or raise lock_timeout to wait longer") from None
            log.info("waiting %.0f s for %s (%s), held by %s", waited, path.name, what, holder)
    try:
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()} since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _move_aside(path: Path, why: str, suffix: str) -> None:
    dest = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}.{suffix}")
    os.replace(path, dest)
    log.warning("cache file %s %s; moved it to %s and recomputing", path, why, dest.name)


def _read(path: Path, wanted: str):
    """The payload at `path` if it is a readable file with key `wanted`, else None (the file moved aside)."""
    if path.is_dir():
        _move_aside(path, "is a directory", "corrupt")
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is handled the same way, by its kind
        if any(refusal in str(e) for refusal in UNSAFE):
            log.error("cache file %s holds objects that torch.load(weights_only=True) refuses: unsafe, never loaded",
                      path)
            _move_aside(path, "is unsafe", "unsafe")
        else:
            _move_aside(path, f"cannot be read ({type(e).__name__}: {' '.join(str(e).split())[:120]})", "corrupt")
        return None
    if not isinstance(payload, dict) or payload.get("key") != wanted:
        _move_aside(path, "was written for another key", "stale")
        return None
    return payload


def cached(kind: str, key: dict, cache_dir: str | Path | None, compute: Callable[[], dict],
           lock_timeout: float | None = None) -> dict:
    """`compute()` (a dict of tensors / plain values) stored as `<cache_dir>/<kind>-<hash>.pt`, or loaded from it.

    `cache_dir=None` disables caching.
    """
    if cache_dir is None:
        return compute()
    path = Path(to_absolute_path(str(cache_dir))) / f"{kind}-{config_hash(key)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    wanted = json.dumps(key, sort_keys=True, default=str)
    with locked(path, lock_timeout, kind):
        for tmp in path.parent.glob(f"{path.stem}.*.tmp"):  # left by a killed save of this file or its resume
            log.warning("removing %s, left by a killed save", tmp)  # state: every save of them runs under this lock
            tmp.unlink(missing_ok=True)
        if path.exists() and (payload := _read(path, wanted)) is not None:
            log.info("%s: loaded from cache %s", kind, path)
            return payload["value"]
        log.info("%s: not cached, computing (%s)", kind, path.name)
        value = compute()
        atomic_save({"key": wanted, "value": value}, path)
        return value


def weights_digest(state: dict) -> str:
    """Hash of a state dict's names, shapes, dtypes and bytes: identifies a model's content."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
