"""The CPU cores a process may use, and each job's share of them under a parallel launcher (torch threads that
outnumber the cores spin-wait: small models then run several times slower)."""
from __future__ import annotations

import os


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, which SLURM and containers narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def launcher_threads(launcher, n_cores: int) -> int | None:
    """Torch threads of one job under a parallel launcher, so that jobs x threads <= cores; None = not parallel.

    joblib: cores // n_jobs (n_jobs = -1 is every core, -2 all but one, as joblib counts); submitit (SLURM or
    local): cpus_per_task when set; Ray: the CPUs each task reserves (ray.remote.num_cpus, Ray's default 1).
    """
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    if target.endswith("JoblibLauncher"):
        n = launcher.get("n_jobs") or -1
        jobs = n if n > 0 else max(1, n_cores + 1 + n)
        return max(1, n_cores // jobs)
    if target.endswith(("SlurmLauncher", "LocalLauncher")) and "submitit" in target:
        return launcher.get("cpus_per_task")
    if target.endswith("RayLauncher"):
        remote = launcher.get("ray", {}).get("remote", {}) or {}
        return max(1, int(remote.get("num_cpus", 1)))
    return None
