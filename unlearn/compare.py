"""Compare methods on your data in one command: tune where no values exist yet, run every method with seeds, print
the Retrain-relative table with the paper tables' cell printer (no paper column).

    unlearn compare dataset=imagefolder dataset.root=/data/x paradigm=classwise --methods ugradsl,ga,ft
        [--seeds 0,1,2] [--trials 12] [--minutes 30] [--no-tune] [--out results/compare] [-- hydra/launcher=local]

Tuning is `unlearn tune` for each method without values for this setting (docs/own-data.md); then one multirun
runs the jobs whose result is not yet in the results CSV (`--results`), as the table runner does; the table goes to
`<out>/<setting>.{md,csv}` and to the screen.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from unlearn import tune, tuned
from unlearn.identity import config_id
from unlearn.cli import override_key, split_argv

COLUMNS = ["UA", "MIA", "RA", "TA", "H", "RTE", "avg_gap", "sum"]


def build_preset(overrides: list[str], methods: list[str], dataset: str, paradigm: str):
    from unlearn.tables.preset import Block, Preset, Row
    rows = [Row(id=m, method=m, label=m) for m in ["retrain", *[m for m in methods if m != "retrain"]]]
    block = Block(name=f"{dataset} ({paradigm})", overrides=list(overrides), paper_block="")
    return Preset(table="compare", title=f"methods on {dataset}, {paradigm} forgetting", scale="cpu", rows=rows,
                  blocks=[block], columns=COLUMNS, source="unlearn compare")


def tuned_jobs(preset, seeds: list[int], extra: list[str], tuned_dir: str):
    """The table's jobs with the values `unlearn tune` stored applied, as the app applies them, so their
    config_id is the one the runs record."""
    from unlearn.tables.plan import plan
    jobs = plan(preset, seeds, [*extra, f"tuned_dir={tuned_dir}"])
    for job in jobs:
        tuned.apply_tuned(job.cfg, job.overrides)
        job.config_id = config_id(job.cfg)
    return jobs


def render(df: pd.DataFrame, preset, regime: str) -> str:
    from unlearn.tables.printer import HEADER, cell
    lines = [f"### {preset.title}", "", "Mean ± std over seeds; bold: the best unlearning method per column "
             "(highest; lowest for RTE and Avg. Gap, both to Retrain).", "", f"{regime}", "",
             "| method | " + " | ".join(HEADER[c] + (" (min)" if c == "RTE" else "") for c in preset.columns) + " |",
             "|" + "---|" * (len(preset.columns) + 1)]
    for _, rg in df.groupby("row", sort=False):
        cells = {r["column"]: cell({**r, "paper": float("nan")}) for _, r in rg.iterrows()}
        lines.append(f"| {rg['label'].iloc[0]} | " + " | ".join(cells[c] for c in preset.columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="unlearn compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="the setting: dataset=..., model=..., paradigm=...")
    ap.add_argument("--methods", default="ugradsl,ugradsl_plus,ga,ft,rl,scrub", help="comma-separated methods")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--trials", type=int, default=12, help="trials per method to tune (where no values exist)")
    ap.add_argument("--minutes", type=float, default=None, help="time budget per method's tuning")
    ap.add_argument("--no-tune", action="store_true", help="run with the values found, tuning none")
    ap.add_argument("--results", default="results/runs.csv", help="results CSV (finished jobs are not rerun)")
    ap.add_argument("--out", default="results/compare", help="folder of the printed table")
    own, extra = split_argv(argv)
    args = ap.parse_args(own)
    methods = [m for m in args.methods.split(",") if m]
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        print(f"error: --seeds={args.seeds!r}; allowed: integers, comma-separated", file=sys.stderr)
        return 2
    bad = [o for o in args.overrides if "=" not in o or override_key(o) in ("method", "seed", "table")]
    known = {p.stem for p in (tune.CONF / "method").glob("*.yaml")}
    if bad or not methods or set(methods) - known:
        print(f"error: overrides {bad} / methods {sorted(set(methods) - known) or methods}; allowed: key=value "
              f"overrides other than method, seed and table, and --methods from {sorted(known)}", file=sys.stderr)
        return 2
    try:
        cfg = tune.compose([*args.overrides, f"method={methods[0]}"])
    except Exception as e:  # an unknown group or key: Hydra's message, one line
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    tuned_dir = str(cfg.tuned_dir)
    if not args.no_tune:
        for method in methods:
            mcfg = tune.compose([*args.overrides, f"method={method}"])
            searchable = (tune.SEARCH / f"{method}.yaml").exists() and method != "retrain"
            if searchable and not tuned.tuned_file(mcfg).is_file():
                budget = ["--trials", str(args.trials)] + (["--minutes", str(args.minutes)] if args.minutes else [])
                if tune.main([*args.overrides, f"method={method}", *budget]) != 0:
                    print(f"error: tuning {method} failed (above)", file=sys.stderr)
                    return 1
    preset = build_preset(args.overrides, methods, cfg.dataset.name, cfg.paradigm.name)
    labels = [f"results_csv={args.results}"]
    jobs = tuned_jobs(preset, seeds, [*labels, *extra], tuned_dir)
    from unlearn.results_csv import read_runs
    csv = Path(args.results)
    runs, _ = read_runs(csv) if csv.exists() else (pd.DataFrame(), [])
    from unlearn.tables.launch import done, launch, say
    todo = [j for j, finished in zip(jobs, done(jobs, runs)) if not finished]  # the table runner's rule: same
    # config_id and seed, from the same code on the same setup
    print(f"compare: {len(jobs)} jobs, {len(todo)} to run", file=sys.stderr)
    if todo:
        todo_methods = sorted({j.row.method for j in todo}, key=[r.method for r in preset.rows].index)
        todo_seeds = sorted({j.seed for j in todo})
        cmd = [sys.executable, "-m", "unlearn.app", "-m", f"method={','.join(todo_methods)}",
               f"seed={','.join(map(str, todo_seeds))}", *args.overrides, *labels, "table=compare", "scale=cpu",
               f"tuned_dir={tuned_dir}", *extra]
        if launch({"compare": cmd}, say).failed:  # signals reach the sweep's jobs, as in the table runner
            print("error: some jobs failed (above); the table shows what finished", file=sys.stderr)
        runs, _ = read_runs(csv)
    from unlearn.tables.printer import frame, regime
    df = frame(preset, jobs, runs)
    text = render(df, preset, regime(jobs, runs, preset.blocks[0].name))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / tuned.setting_key(cfg)
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    df.drop(columns=[c for c in df.columns if c.startswith("paper") or c == "delta"]).to_csv(
        stem.with_suffix(".csv"), index=False)
    print(text)
    print(f"written to {stem}.md and .csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
