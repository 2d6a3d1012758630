"""What a figure reads: blocks and rows of paper-table presets, optionally crossed with a grid of overrides.

A figure spec (`conf/figures/<fig>.yaml`) lists `sweeps`, each naming a table preset, some of its
blocks and rows, and an optional `grid` ({key: [values]}; the rows are crossed with every combination). Jobs
are composed by the table planner (unlearn/tables/plan.py), so a figure that reads table 8's runs finds them by
`config_id` whoever ran them, and `run` launches only the (config_id, seed) pairs the results CSV does not yet
hold from this code (same git commit), as `python -m unlearn.tables run` does.
"""
from __future__ import annotations

import itertools
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml

from unlearn.paths import SPECS
from unlearn.report import latest_per_job
from unlearn.results_csv import read_runs
from unlearn.tables import launch
from unlearn.tables import plan as planning
from unlearn.tables.preset import load
from unlearn.tables.select import LABELS

NAMES = {**LABELS, "retrain": "Retrain"}  # printed names of rows a preset lists by method id alone


@dataclass
class Sweep:
    table: str  # the table preset whose blocks and rows it reads
    blocks: list[str]
    rows: list[str] | None  # None = every row of the table
    grid: dict[str, list] = field(default_factory=dict)  # override key -> values, crossed with the rows
    label: str | None = None  # the `table` column of runs this sweep adds (default: the figure's name)


@dataclass
class Spec:
    name: str
    title: str
    sweeps: list[Sweep]
    source: str  # the spec file's leading comment (what the paper shows, what we changed)
    options: dict = field(default_factory=dict)  # drawing options of the figure


def available() -> list[str]:
    return sorted(p.stem for p in SPECS.glob("*.yaml"))


def load_spec(name: str) -> Spec:
    path = SPECS / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"figure={name!r} has no spec; allowed: {available()}")
    text = path.read_text()
    raw = yaml.safe_load(text)
    sweeps = []
    for s in raw.get("sweeps", []):
        unknown = set(s) - {"table", "blocks", "rows", "grid", "label"}
        if unknown:
            raise ValueError(f"{path}: sweep keys {sorted(unknown)} unknown; allowed: table, blocks, rows, grid, label")
        grid = s.get("grid") or {}
        if not all(isinstance(v, list) and v for v in grid.values()):
            raise ValueError(f"{path}: every grid entry must be a non-empty list of values, got {grid}")
        sweeps.append(Sweep(table=s["table"], blocks=list(s["blocks"]), rows=s.get("rows"), grid=grid,
                            label=s.get("label")))
    source = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    return Spec(name=name, title=raw["title"], sweeps=sweeps, source=source, options=raw.get("options") or {})


def _value(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def jobs(spec: Spec, scale: str, seeds: list[int], extra: list[str] = ()) -> pd.DataFrame:
    """Every job of the figure: one row per (sweep, block, table row, grid point, seed) with its `config_id`,
    overrides and the grid values as columns."""
    out = []
    for n, sweep in enumerate(spec.sweeps):
        preset = load(sweep.table, scale, sweep.rows)
        names = [b.name for b in preset.blocks]
        unknown = [b for b in sweep.blocks if b not in names]
        if unknown:
            raise ValueError(f"figure {spec.name}: blocks {unknown} are not in {sweep.table}; allowed: {names}")
        preset.blocks = [b for b in preset.blocks if b.name in sweep.blocks]
        keys = list(sweep.grid)
        points = [dict(zip(keys, combo)) for combo in itertools.product(*(sweep.grid[k] for k in keys))] or [{}]
        rows = []
        for row in preset.rows:
            for point in points:
                ov = [f"{k}={_value(v)}" for k, v in point.items()]
                rid = row.id + "".join(f"@{k}={_value(v)}" for k, v in point.items())
                rows.append((replace(row, id=rid, overrides=[*row.overrides, *ov]), row, point))
        preset.rows = [r for r, _, _ in rows]
        preset.table = sweep.label or (sweep.table if not sweep.grid else spec.name)
        by_id = {r.id: (orig, point) for r, orig, point in rows}
        for job in planning.plan(preset, seeds, list(extra)):
            orig, point = by_id[job.row.id]
            label = orig.label if orig.label != orig.id else NAMES.get(orig.method, orig.label)
            out.append({"sweep": n, "table": sweep.table, "block": job.block.name, "row": orig.id,
                        "method": orig.method, "label": label, "job_row": job.row.id, "seed": job.seed,
                        "config_id": job.config_id, "overrides": job.overrides, "cfg": job.cfg, "threads": job.threads,
                        "scale": scale, **point})
    return pd.DataFrame(out)


def read(results: Path) -> pd.DataFrame:
    if not results.exists():
        return pd.DataFrame()
    runs, problems = read_runs(results)
    for p in problems:
        print(f"{results}: {p}", file=sys.stderr)
    return runs


def run(plan: pd.DataFrame, results: Path, rerun: bool = False, dry_run: bool = False) -> int:
    """Launch the figure's missing jobs: one multirun per (table label, block, job row), seeds together."""
    runs = read(results)
    plan = plan.drop_duplicates(["config_id", "seed"])
    jobs = [planning.Job(None, None, int(r.seed), r.overrides, r.config_id, r.cfg, r.threads)
            for r in plan.itertuples(index=False)]
    finished = [False] * len(jobs) if rerun else launch.done(jobs, runs)  # same config, seed, code and setup
    todo = plan[[not f for f in finished]]
    print(f"{len(plan)} jobs, {len(plan) - len(todo)} already done by this code, {len(todo)} to run",
          file=sys.stderr)
    start = time.time()
    for (_, _, _), group in todo.groupby(["table", "block", "job_row"], sort=False):
        cmd = [sys.executable, "-m", "unlearn.app", "-m", *group["overrides"].iloc[0],
               "seed=" + ",".join(str(s) for s in group["seed"])]
        print(f"[{time.time() - start:7.0f} s] {' '.join(cmd[3:])}", file=sys.stderr)
        if dry_run:
            continue
        if subprocess.run(cmd).returncode != 0:
            print("error: a job failed; fix it and rerun (finished jobs are kept)", file=sys.stderr)
            return 1
    print(f"ran {0 if dry_run else len(todo)} jobs in {(time.time() - start) / 60:.1f} min", file=sys.stderr)
    return 0


def attach(plan: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The plan's jobs with their results (the latest run of each (config_id, seed), whichever table ran it);
    jobs without a result are dropped."""
    if not len(runs):
        return plan.iloc[:0].assign(run_dir=pd.Series(dtype=str))
    latest = latest_per_job(runs)
    latest = latest.drop(columns=[c for c in latest.columns if c in plan.columns and c not in ("config_id", "seed")])
    return plan.merge(latest, on=["config_id", "seed"], how="inner").copy()  # one block, not fragments
