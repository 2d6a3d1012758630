"""Content-addressed cache: anything expensive is stored as `<kind>-<hash of its key>.pt`, with the key.

One function, `cached`, serves checkpoints, decoded images, token ids, embeddings and reference
metrics. A file is only ever used when its stored key equals the requested one; a file that cannot be
read (truncated, empty, garbage, a directory) or carries another key is moved aside (`*.corrupt`,
`*.stale`) with a warning and recomputed; one that `torch.load(weights_only=True)` refuses is moved
aside as `*.unsafe` and never loaded; one this user may not read (permissions) is reported as unreadable,
never moved. Writes are atomic (`atomic_write`: temp file + rename, the mode the umask gives, "disk full"
named) and parallel jobs compute a key once under a file lock (`unlearn.locks`) that logs while it waits and gives
up after `lock_timeout` seconds; temp files of a killed save are removed under that lock.

Saves announce `save:<file name>` to unlearn.stages (tests/test_faults.py kills runs there).
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from hydra.utils import to_absolute_path

from unlearn import stages
from unlearn.identity import config_hash
from unlearn.locks import locked

log = logging.getLogger("unlearn")
UNSAFE = ("Unsupported global", "Unsupported class")  # torch.load(weights_only=True) refusing an object (torch
# >= 2.4, 2.3); other failures (garbage, truncation, "Unsupported operand") are a corrupt file
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space (or quota) left while writing a result or cache file; the message names the file."""


class UnreadableFileError(PermissionError):
    """A file this user may not read (another user's, mode 0600): reported, never taken for corrupt or moved."""


def umask() -> int:
    """This process's umask, read without changing it (Linux /proc; elsewhere set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def new_file_mode(path: Path) -> int:
    """The mode a file written at `path` gets: that of the file it replaces, else what open() would give
    (0666 minus the umask), so shared files stay as readable and writable as their owner made them."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~umask()


class _Guard:
    """A binary file that remembers the OSError of a failed write: torch.save turns it into a RuntimeError."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self.f, name)


def disk_full(path: Path, e: OSError) -> DiskFullError:
    return DiskFullError(e.errno, f"disk full while writing {path} ({e.strerror or e}); free space in "
                                  f"{path.parent} (or write results elsewhere) and run again", str(path))


def atomic_write(path: str | Path, write: Callable, exclusive: bool = False) -> None:
    """`write(f)` fills a temp file (binary) next to `path`, which then replaces `path` by a rename: readers
    never see a partial file. A symlink at `path` is kept and its target replaced; the file keeps its mode (a
    new one gets the umask's); a full disk raises DiskFullError naming `path`. `exclusive`: refuse, with
    FileExistsError, to replace an existing file (hard-link then unlink: atomic, too)."""
    path = Path(os.path.realpath(path))  # through a symlink to the shared file it points at
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError as e:  # no room even for an empty file (inodes, quota)
        if e.errno in DISK_FULL:
            raise disk_full(path, e) from None
        raise
    os.close(fd)
    try:
        guard = None
        try:
            with open(tmp, "wb") as f:
                guard = _Guard(f)
                write(guard)
                f.flush()
                os.fsync(f.fileno())
        except (OSError, RuntimeError) as e:
            cause = guard.error if guard is not None and guard.error is not None else e
            if isinstance(cause, OSError) and cause.errno in DISK_FULL:
                raise disk_full(path, cause) from None
            raise
        os.chmod(tmp, new_file_mode(path))
        stages.reached(f"save:{path.name}")
        if exclusive:
            _link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _link(tmp: str, path: Path) -> None:
    """Give the finished temp file its name unless that name exists (FileExistsError)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename (a narrow race, never a partial file)
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)


def atomic_save(payload, path: Path) -> None:
    """torch.save through `atomic_write`: readers never see a partial file."""
    atomic_write(path, lambda f: torch.save(payload, f))


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
        if isinstance(e, PermissionError):  # valid, maybe, but not ours to read: never moved aside as corrupt
            raise unreadable(path, e) from None
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


def unreadable(path: Path, e: OSError) -> UnreadableFileError:
    return UnreadableFileError(e.errno, f"cache file {path} is unreadable ({e.strerror or e}): another user's file? "
                                        f"Ask its owner to make it readable (chmod a+r), or use another cache_dir",
                               str(path))


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
