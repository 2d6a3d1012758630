""""(R)": a method's hyperparameters selected toward Retrain, written as an "(R)" row of a table.

    python -m unlearn.tables.select ga table13 [--blocks CIFAR-10] [--scale cpu] [--trials 12] [--seed 0]
        [--storage sqlite:///results/optuna.db] [-- extra Hydra overrides]

For every block of the table (or those named) it runs the Optuna study of `hparams_search=<method>` (search space
and its source in conf/hparams_search/<method>.yaml; objective and direction in
conf/hydra/sweeper/optuna_study.yaml: avg_gap to Retrain, minimised) on the block's data with
`eval.split=validation`: TA, the MIA's non-members and so the Avg. Gap come from a stratified 10% of D_tr held
out of training, never from the test set (arXiv A:462: "we use the validation set to select the
hyper-parameters"). The study lives in `--storage` under the name `r-<table>-<block>-<method>-<scale>`, so
several processes started with the same arguments share its trials (parallel workers), and a rerun adds trials
to it. The best trial's values become the row `<method>_r_<block>` ("<Method> (R)") in the table's data file
conf/tables/selected/<table>.yaml, with the study's summary as its comment; the preset reads it where its rows list
`(R)`, and the other blocks skip it. The preset itself is never edited. The table then evaluates the row on the
test set like any other (`make table13`).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml
from filelock import FileLock

from unlearn.paths import CONF
from unlearn.tables.preset import PRESETS, SELECTED, for_data, load, selected_file, slug
from unlearn.cli import override_key, split_argv

ORDER = ("ft", "ga", "iu", "rl", "be", "bs", "l1_sparse", "scrub", "ff", "salun", "neggrad_plus", "ugradsl",
         "ugradsl_plus", "ugradsl_no_retain")  # the paper's row order (arXiv Table 13)
LABELS = {"ft": "FT", "ga": "GA", "iu": "IU", "rl": "RL", "be": "BE", "bs": "BS", "l1_sparse": "l1-sparse",
          "scrub": "SCRUB", "ff": "FF", "salun": "SalUn", "neggrad_plus": "NegGrad+", "ugradsl": "UGradSL",
          "ugradsl_plus": "UGradSL+", "ugradsl_no_retain": "UGradSL w/o D_r"}
PAPER_LABELS = {**LABELS, "l1_sparse": "-sparse"}  # as paper_values.csv names the rows (the arXiv text lost the l1)
SEARCH = CONF / "hparams_search"


def study_name(table: str, block: str, method: str, scale: str) -> str:
    return f"r-{table}-{slug(block)}-{method}-{scale}"


def default_storage() -> str:
    path = Path("results/optuna.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def study_command(method: str, block_overrides: list[str], *, table: str, name: str, storage: str, trials: int,
                  seed: int, results: str, extra: list[str]) -> list[str]:
    """The Hydra multirun of one study: the block's data, the method's search space, the validation split."""
    return [sys.executable, "-m", "unlearn.app", "-m", f"hparams_search={method}", *block_overrides,
            "eval.split=validation", "objective=avg_gap", f"seed={seed}", f"table={table}-selection",
            f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.study_name={name}",
            f"hydra.sweeper.storage={storage}", f"results_csv={results}", *extra]


def best(name: str, storage: str) -> tuple[dict, dict]:
    """The best trial's parameters and a summary of the study (trials, best value, direction)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"study {name!r} in {storage} has no completed trial")
    t = study.best_trial
    return dict(t.params), {"trials": len(done), "best_avg_gap": t.value, "direction": study.direction.name.lower(),
                            "best_trial": t.number}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def row_text(method: str, block: str, params: dict, summary: dict, *, scale: str, storage: str, name: str,
             seed: int) -> list[str]:
    rid = f"{method}_r_{slug(block)}"
    overrides = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items()))
    label, paper = LABELS.get(method, method), PAPER_LABELS.get(method, method)
    return [f"  # {label} (R) on {block}: Optuna study {name!r} ({shown(storage)}), {summary['trials']} completed trials, "
            f"best avg_gap {summary['best_avg_gap']:.3f} on the validation split (trial {summary['best_trial']}, "
            f"{summary['direction']}, {scale} scale, seed {seed})",
            f"  - {{id: {rid}, method: {method}, label: \"{label} (R)\", paper_row: \"{paper} (R)\", "
            f"selected_at: {scale}, overrides: [{overrides}]}}"]


def shown(storage: str) -> str:
    """A SQLite storage under the working folder as a relative URL, so a committed preset names no machine's paths."""
    prefix = "sqlite:///"
    if storage.startswith(prefix):
        try:
            return prefix + str(Path(storage[len(prefix):]).resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            pass
    return storage


def has_place(table: str) -> None:
    """Raise unless the preset of `table` lists `(R)` among its rows, where its (R) rows are read."""
    path = PRESETS / f"{table}.yaml"
    if SELECTED not in (yaml.safe_load(path.read_text())["rows"] or []):
        raise ValueError(f"{path} has no '- {SELECTED}' entry in its rows; add one where the (R) rows go")


def write_row(table: str, method: str, block: str, text: list[str]) -> Path:
    """Put the (R) row of (method, block) into the table's data file selected_file(table) (replacing an older one),
    in the paper's order. The preset is checked by loading it; on failure the file is left unchanged. A file lock
    makes the read-modify-write atomic, so selections of several methods running side by side (`make -j2 table13`)
    never drop each other's rows."""
    path = selected_file(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        return _write_row(path, table, method, block, text)


HEADER = ["# The (R) rows of {table} (conf/tables/{table}.yaml), selected toward Retrain: written by `make tune`",
          "# (unlearn/tables/select.py), one per (method, block) in the paper's order; a row runs on the block its id",
          "# ends in (the others skip it) and at the scale it was selected at. A new selection replaces its row."]


def _write_row(path: Path, table: str, method: str, block: str, text: list[str]) -> Path:
    original = path.read_text() if path.exists() else None
    entries: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in (original or "").splitlines():
        if not line.startswith("  "):  # the header (and `[]` of a file without rows)
            continue
        pending.append(line)
        m = re.match(r"\s*- \{id: (\w+),", line)
        if m:
            entries[m.group(1)] = pending
            pending = []
    blocks = list(yaml.safe_load((PRESETS / f"{table}.yaml").read_text())["blocks"])
    if block not in blocks:
        raise ValueError(f"block {block!r} is not in {table}; allowed: {blocks}")
    entries[f"{method}_r_{slug(block)}"] = text
    rank = {m: i for i, m in enumerate(ORDER)}

    def key(r):
        meth, _, blk = r.rpartition("_r_")
        return rank.get(meth, len(ORDER)), meth, [slug(x) for x in blocks].index(blk) if blk in map(slug, blocks) else 0
    body = [line for r in sorted(entries, key=key) for line in entries[r]]
    path.write_text("\n".join([h.format(table=table) for h in HEADER] + body) + "\n")
    try:
        for scale in ("cpu", "paper"):
            load(table, scale)
    except Exception:
        if original is None:
            path.unlink()
        else:
            path.write_text(original)
        raise
    return path


def missing_data(block_overrides: list[str], extra: list[str], scale: str) -> str | None:
    """The loader's message if the block's data set (after the user's overrides) is absent, else None; no compute."""
    from hydra import compose, initialize_config_dir

    from unlearn.tables.plan import missing_data as absent
    ours = [o for o in extra if not override_key(o).startswith("hydra")]  # launcher/sweeper settings are not data
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return absent(compose("config", overrides=[*block_overrides, *ours, f"scale={scale}"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method")
    ap.add_argument("table")
    ap.add_argument("--blocks", help="comma-separated blocks (default: the preset's select_blocks)")
    ap.add_argument("--scale", default="cpu", choices=("cpu", "paper"))
    ap.add_argument("--trials", type=int, default=12, help="trials this process adds to each block's study")
    ap.add_argument("--seed", type=int, default=0, help="the run seed of every trial (split, init, sampler)")
    ap.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///results/optuna.db)")
    ap.add_argument("--results", default="results/selection.csv", help="results CSV of the trials")
    ap.add_argument("--no-study", action="store_true", help="write the best trial of the existing study only")
    own, extra = split_argv(argv)
    args = ap.parse_args(own)
    if not (SEARCH / f"{args.method}.yaml").exists():
        print(f"error: method={args.method!r} has no search space; allowed: "
              f"{sorted(p.stem for p in SEARCH.glob('*.yaml'))}", file=sys.stderr)
        return 2
    if args.trials < 1:
        print(f"error: --trials={args.trials}; allowed: an integer >= 1", file=sys.stderr)
        return 2
    try:
        preset = load(args.table, args.scale)
        text = (PRESETS / f"{args.table}.yaml").read_text()
        has_place(args.table)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    selectable = yaml.safe_load(text).get("select_blocks") or []
    wanted = args.blocks.split(",") if args.blocks else selectable
    unknown = [b for b in wanted if b not in selectable]
    if unknown or not wanted:
        print(f"error: blocks {unknown or wanted}; allowed: {selectable} (select_blocks of {args.table}: the blocks "
              f"whose (R) rows the paper reports)", file=sys.stderr)
        return 2
    overrides = {b.name: None if b.overrides is None else for_data(b.overrides, extra) for b in preset.blocks}
    no_preset = [block for block in wanted if overrides[block] is None]
    if no_preset:
        print(f"error: blocks {no_preset} have no {args.scale}-scale preset", file=sys.stderr)
        return 2
    # a study needs the block's data; --no-study only reads a stored study
    absent = {} if args.no_study else {b: why for b in wanted if (why := missing_data(overrides[b], extra, args.scale))}
    for block, why in absent.items():
        print(f"{args.table} block {block!r} will not be selected: {why}", file=sys.stderr)
    if len(absent) == len(wanted):
        print(f"error: no block of {args.table} to select on has its data (see above)", file=sys.stderr)
        return 2
    storage = args.storage or default_storage()
    for block in (b for b in wanted if b not in absent):
        name = study_name(args.table, block, args.method, args.scale)
        if not args.no_study:
            cmd = study_command(args.method, overrides[block], table=args.table, name=name, storage=storage,
                                trials=args.trials, seed=args.seed, results=args.results,
                                extra=[f"scale={args.scale}", *extra])
            print(" ".join(cmd[3:]), file=sys.stderr)
            if subprocess.run(cmd).returncode != 0:
                print(f"error: the study {name} failed. If Optuna said 'Cannot set different distribution kind', "
                      f"the stored study was made with another search space: delete it (optuna delete-study "
                      f"--study-name {name} --storage {storage}) or pass another --storage", file=sys.stderr)
                return 1
        params, summary = best(name, storage)
        path = write_row(args.table, args.method, block,
                         row_text(args.method, block, params, summary, scale=args.scale, storage=storage, name=name,
                                  seed=args.seed))
        print(f"{args.table} {block}: {args.method} (R) = {params} (avg_gap {summary['best_avg_gap']:.3f} on "
              f"validation, {summary['trials']} trials) -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
