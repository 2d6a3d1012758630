"""File locks shared by the cache, the results CSV and run folders: `locked` holds `<path>.lock`, logs who holds it
while it waits and gives up after the job's `lock_timeout` (`lock_wait`); a lock that cannot be taken at all (a file
system without flock, a folder in its place) is a one-line LockError naming the path, found before any work by
`check_lockable`."""
from __future__ import annotations

import errno
import inspect
import logging
import os
import socket
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger("unlearn")
LOCK_TIMEOUT = 24 * 3600.0  # seconds a job waits for another job's lock before giving up, unless `lock_wait` says
_LOCK_WAIT: ContextVar[float] = ContextVar("lock_wait", default=LOCK_TIMEOUT)  # the job's lock_timeout (lock_wait)
LOCK_LOG_EVERY = 30.0  # seconds between "still waiting" messages
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # a file system without flock (Lustre mounted without
# -o flock, some NFS setups)


class LockError(OSError):
    """A lock that cannot be taken at all (not one that is busy): its file system has no flock, or a folder sits
    where its lock file goes; the message names the path and what to do."""


@contextmanager
def lock_wait(seconds: float | None):
    """Inside, a lock taken without its own timeout waits at most `seconds` (None: LOCK_TIMEOUT); a job sets its
    `lock_timeout` this way for its set-up and its run, and the value is restored on leaving."""
    token = _LOCK_WAIT.set(LOCK_TIMEOUT if seconds is None else float(seconds))
    try:
        yield
    finally:
        _LOCK_WAIT.reset(token)


def lock_timeout() -> float:
    """Seconds a lock taken here without its own timeout waits (`lock_wait`)."""
    return _LOCK_WAIT.get()


def file_lock(path: str, **options) -> FileLock:
    """A FileLock that fails on a file system without flock instead of falling back to a lock file's existence
    (filelock >= 4.2 does so by default): such a lock outlives a killed holder and would block every later job."""
    if "fallback_to_soft" in inspect.signature(FileLock).parameters:
        options["fallback_to_soft"] = False
    return FileLock(path, **options)


def lock_failure(path: str | Path, e: BaseException) -> BaseException:
    """The error to raise when taking the lock `path` failed with `e`: a one-line LockError when its file system
    has no flock (older filelock says so with NotImplementedError) or a folder is in the way, else `e` itself."""
    cause = e.__cause__ if isinstance(e, NotImplementedError) else e
    if isinstance(e, IsADirectoryError):
        return LockError(e.errno, f"lock file {path} is a folder, not a file; remove it (rmdir {path}) and run again")
    if isinstance(cause, OSError) and cause.errno in NO_FLOCK:
        return LockError(cause.errno, f"cannot lock {path}: its file system does not support flock "
                                      f"({cause.strerror or cause}; e.g. Lustre mounted without -o flock); use "
                                      f"results_csv=null (then unlearn collect --from-runs) and a cache_dir and run "
                                      f"folders on a local disk, or mount it with flock")
    return e


def check_lockable(path: Path) -> None:
    """Take and release `<path>.lock` at once (a busy lock counts as lockable): a file system without flock is a
    LockError now, before any work, not when the lock is first needed."""
    try:
        with locked(path, timeout=0.0):
            pass
    except TimeoutError:
        pass


@contextmanager
def locked(path: Path, timeout: float | None = None, what: str = ""):
    """Hold `<path>.lock`; while another process holds it, log who and since when every 30 s; give up
    with a clear error after `timeout` seconds (default: `lock_timeout()`)."""
    timeout = lock_timeout() if timeout is None else timeout
    # mode 0666 (no umask): a lock file holds no data, and every user sharing the cache or CSV must open it to lock
    lock, owner = file_lock(str(path) + ".lock", mode=0o666), Path(str(path) + ".lock.owner")
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
        except (OSError, NotImplementedError) as e:  # not busy: this lock cannot be taken at all
            error = lock_failure(str(path) + ".lock", e)
            if error is e:
                raise
            raise error from None
    try:
        try:
            owner.write_text(f"pid {os.getpid()} on {socket.gethostname()} since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        except OSError:  # only says who holds the lock: a full disk must not fail the job here
            owner.unlink(missing_ok=True)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
