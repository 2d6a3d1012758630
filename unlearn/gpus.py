"""One GPU per local parallel job: `hydra/launcher=local` on a node with several GPUs runs its jobs side by side in
worker processes, and without this every one of them would compute on `cuda:0`.

Each job claims a free GPU slot by taking a lock file `gpu-<index>.lock` (the OS frees it when the job's process
ends) and makes that GPU its default device, so `device=auto` / `device=cuda` mean `cuda:<index>` for the whole job.
A job that finds every slot taken (more jobs than GPUs) waits for one. Jobs under SLURM or Ray get their GPUs from
the scheduler and are left alone, as is a single-GPU machine.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from filelock import FileLock, Timeout

log = logging.getLogger("unlearn")
_held: FileLock | None = None  # the slot of the job running in this process (a worker runs its jobs one by one)


def slot_dir() -> Path:
    """Where the slots of this machine live: per user, beside nothing else (not on a shared file system)."""
    return Path(os.environ.get("UNLEARN_GPU_SLOTS", f"/tmp/unlearn-gpu-slots-{os.getuid()}"))


def claim(device: str, poll: float = 5.0, folder: Path | None = None) -> int | None:
    """Make a free GPU this process's default CUDA device; returns its index, or None when nothing is to share."""
    global _held
    if device not in ("auto", "cuda") or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return None
    release()
    folder = folder or slot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    n, waited = torch.cuda.device_count(), 0.0
    while True:
        for index in range(n):
            lock = FileLock(str(folder / f"gpu-{index}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            _held = lock
            torch.cuda.set_device(index)
            log.info("local parallel job on GPU %d of %d (slot %s)", index, n, lock.lock_file)
            return index
        if waited == 0:
            log.info("all %d GPUs are taken by other local jobs: waiting for one", n)
        time.sleep(poll)
        waited += poll


def release() -> None:
    """Free this process's slot (the next job of a reused worker claims again)."""
    global _held
    if _held is not None:
        _held.release()
        _held = None


def local_launcher(launcher) -> bool:
    """The joblib launcher (hydra/launcher=local): jobs share one node's GPUs."""
    return launcher is not None and str(launcher.get("_target_", "")).endswith("JoblibLauncher")
