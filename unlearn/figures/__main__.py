"""Run a figure's sweep and draw it, or draw it from saved results alone.

    python -m unlearn.figures run fig3 --scale cpu --seeds 0,1,2 [-- extra Hydra overrides]
    python -m unlearn.figures draw fig3 --scale cpu --seeds 0,1,2
    python -m unlearn.figures list

`run` launches only the jobs whose result is not yet in the results CSV from this code (as the table runner
does), then draws. `draw` reads the results CSV, the run dirs' predictions.npz and (landscape) the cached
Retrain checkpoint. Figures go to results/figures/<fig>.png and .pdf, with the rows they plot in <fig>.csv;
with W&B on (--wandb offline|online, default $WANDB_MODE, else disabled) each image is logged to a
`figures` run of the project.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.utils import to_absolute_path
from omegaconf import open_dict

from unlearn.cache import atomic_write, cached
from unlearn.cli import check_results_arg, one_line_errors, parse_seeds, refuse
from unlearn.figures import draw, landscape
from unlearn.figures import sweep as sweeps

DRAW = {"fig1": draw.fig1, "fig3": draw.fig3, "fig4": draw.fig4, "figloss": draw.figloss,
        "figforget": draw.figforget, "figgrid": draw.figgrid}
SPECIAL = {"figlandscape"}  # drawn from a checkpoint, not from runs


def landscape_grid(plan, spec) -> tuple[dict[str, np.ndarray], str]:
    """The loss surface of the first job's Retrain model (trained if not cached), itself cached by its weights."""
    from unlearn.metrics import shadow_members
    from unlearn.workspace import Workspace

    opt = {"points": 21, "span": 1.0, "samples": 1000, "seed": 0, **spec.options}
    job = plan.iloc[0]
    cfg = job["cfg"].copy()
    with open_dict(cfg):
        cfg.run_dir = tempfile.mkdtemp(prefix="landscape-")  # nothing is recorded there
        cfg.wandb.mode = "disabled"
        cfg.results_csv = None
    ws = Workspace(cfg)
    model, info = ws.refs.retrain()
    d, s = ws.data, ws.split
    n = int(opt["samples"])
    retain = shadow_members(s.retain, n, int(opt["seed"]))
    test = s.test[:n]
    key = {"weights": info["digest"], "split": s.fingerprint(), **{k: opt[k] for k in ("points", "span", "samples",
                                                                                         "seed")}}

    def compute():
        grid = landscape.surface(model, d, {"retain": (d.x_train[retain], d.y_train[retain]),
                                            "test": (d.x_test[test], d.y_test[test])},
                                 int(opt["points"]), float(opt["span"]), int(opt["seed"]), cfg.eval.batch_size)
        return {k: torch.as_tensor(v) for k, v in grid.items()}

    grid = {k: v.numpy() for k, v in cached("landscape", key, to_absolute_path(cfg.cache_dir), compute).items()}
    note = (f"{job['block']} [{job['table']}], seed {job['seed']}, {len(retain)} D_r / {len(test)} test samples, "
            f"{opt['points']}x{opt['points']} grid")
    return grid, note


def relative_paths(frame: pd.DataFrame, start: Path | None = None) -> pd.DataFrame:
    """The frame with every absolute path (run_dir, a data root given absolute) made relative to `start` (the
    working folder): a committed figure CSV names no folder of the machine that drew it."""
    start = Path.cwd() if start is None else start
    rel = lambda v: os.path.relpath(v, start) if isinstance(v, str) and os.path.isabs(v) else v  # noqa: E731
    return frame.assign(**{c: frame[c].map(rel) for c in frame.columns
                          if not pd.api.types.is_numeric_dtype(frame[c])})


def save(fig, name: str, out: Path, frame=None) -> list[Path]:
    """<out>/<name>.png, .pdf and (with `frame`) .csv, each written whole or not at all (`atomic_write`)."""
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    atomic_write(paths[0], lambda f: fig.savefig(f, format="png", dpi=130, bbox_inches="tight"))
    atomic_write(paths[1], lambda f: fig.savefig(f, format="pdf", bbox_inches="tight"))
    if frame is not None:
        text = relative_paths(frame.drop(columns=["cfg", "overrides"], errors="ignore")).to_csv(index=False)
        atomic_write(out / f"{name}.csv", lambda f: f.write(text.encode("utf-8")))
        paths.append(out / f"{name}.csv")
    return paths


def log_wandb(mode: str, name: str, png: Path, spec) -> None:
    if mode == "disabled":
        return
    import wandb
    run = wandb.init(mode=mode, project=os.environ.get("WANDB_PROJECT", "unlearn"), job_type="figures", name=name,
                     dir=to_absolute_path("results"), reinit="finish_previous", config={"figure": name},
                     settings=wandb.Settings(silent=True))
    try:
        run.log({f"figures/{name}": wandb.Image(str(png), caption=spec.title)})
    finally:
        run.finish()


def make(name: str, args) -> int:
    spec = sweeps.load_spec(name)
    seeds = parse_seeds(args.seeds)
    results = Path(args.results)
    plan = sweeps.jobs(spec, args.scale, seeds if name not in SPECIAL else seeds[:1],
                       [*args.overrides, f"results_csv={results}"])
    if args.command == "run" and name not in SPECIAL:
        code = sweeps.run(plan, results, rerun=args.rerun, dry_run=args.dry_run)
        if code or args.dry_run:
            return code
    if name in SPECIAL and args.dry_run:  # its only work is the surface itself (and Retrain if not cached)
        job = plan.iloc[0]
        print(f"{name}: would compute the loss surface of {job['block']} [{job['table']}] Retrain, seed "
              f"{job['seed']} (cached afterwards)", file=sys.stderr)
        return 0
    if name in SPECIAL:
        grid, note = landscape_grid(plan, spec)
        fig, frame = draw.figlandscape(grid, spec, note), None
    else:
        frame = sweeps.attach(plan, sweeps.read(results))
        missing = len(plan.drop_duplicates(["config_id", "seed"])) - len(frame.drop_duplicates(["config_id", "seed"]))
        if missing:
            print(f"{name}: {missing} of {len(plan)} jobs have no result yet (drawn without them)", file=sys.stderr)
        fig, frame = DRAW[name](frame, spec), frame
    paths = save(fig, name, Path(args.out), frame)
    log_wandb(args.wandb, name, paths[0], spec)
    print(f"{name}: {', '.join(str(p) for p in paths)}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("run", "draw", "list"))
    ap.add_argument("figures", nargs="*", help=f"any of {sweeps.available()}")
    ap.add_argument("--scale", default="cpu", choices=("cpu", "paper"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--results", default="results/runs.csv")
    ap.add_argument("--out", default="results/figures")
    ap.add_argument("--wandb", default=os.environ.get("WANDB_MODE", "disabled"),
                    choices=("disabled", "offline", "online"))
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.overrides = extra
    if args.command == "list":
        for name in sweeps.available():
            print(f"{name}: {sweeps.load_spec(name).title}")
        return 0
    try:
        parse_seeds(args.seeds)
    except ValueError as e:
        refuse(str(e))
    check_results_arg(args.results, "--results", args.command == "draw" and not set(args.figures) <= SPECIAL)
    unknown = [f for f in args.figures if f not in sweeps.available()]
    if unknown or not args.figures:
        print(f"error: figures {unknown or '(none given)'}; allowed: {sweeps.available()}", file=sys.stderr)
        return 2
    for name in args.figures:
        try:
            code = make(name, args)
        except ValueError as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            return 2
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors(main))
