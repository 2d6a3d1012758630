"""Values for your own data: select a method's hyperparameters on a validation split of D_tr, store them under the
setting's identity, and let every later run of that setting pick them up.

    unlearn tune method=ugradsl dataset=imagefolder dataset.root=/data/x paradigm=classwise [--trials 12]
        [--minutes 30] [--storage sqlite:///results/optuna.db] [--tuned-dir results/tuned]
        [budget.minutes=15 budget.apply=true]

The search is the method's Optuna study (`hparams_search=<method>`: search space and its source in
conf/hparams_search/<method>.yaml), minimising the Avg. Gap to Retrain measured with
`eval.split=validation` (TA and the MIA's non-members on a stratified 10% of D_tr held out of training; the test
set is never read). Trials run one process at a time until `--trials` are done or `--minutes` have passed, so a
budget in minutes stops between trials. The best trial is written to `<tuned-dir>/<setting>/<method>.yaml`, where
<setting> is a hash of what the values were chosen for (the data set's own parameters, e.g. its folder, not its
name; the model; the training recipe; the paradigm): a later run with the same setting applies them, unless the
command line sets the same key.

With `budget.minutes=M budget.apply=true` among the overrides, one timed probe (unlearn/budget.py) picks the
recipe that fits M minutes per run (fewer train.epochs, a narrower model, fewer images per class) before the first
trial; every trial runs that recipe, the tuned file is keyed by it, and the printed command names it.
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from omegaconf import DictConfig

from unlearn.checks import ConfigError
from unlearn.cli import override_key
from unlearn.paths import CONF
from unlearn.tuned import setting, setting_key, tuned_file

if TYPE_CHECKING:
    from unlearn.budget import Fit

log = logging.getLogger("unlearn")
SEARCH = CONF / "hparams_search"
def compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def resolve_budget(overrides: list[str], extra: tuple[str, ...] = ()) -> tuple[list[str], Fit | None]:
    """`overrides` with budget.apply's recipe written out as key=value (budget.apply dropped), from one probe of the
    run they describe (with `extra` and eval.split=validation): for `unlearn tune`, whose trials must all run one
    recipe (each trial probing for itself could pick another)."""
    import tempfile

    from unlearn.workspace import Workspace
    kept = [o for o in overrides if override_key(o) != "budget.apply"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose([*kept, *extra, "eval.split=validation", f"run_dir={tmp}/run", "results_csv=null",
                       "wandb.mode=disabled", "progress.warn_hours=1e9"])
        ws = Workspace(cfg)
        ws.claim.abandon()
    fit = ws.budget
    if fit is not None and not fit.fits:
        raise ConfigError(f"{fit.line()}; allowed: a larger budget.minutes, or no budget.apply")
    return [*kept, *(fit.overrides() if fit else [])], fit


def write(path: Path, values: dict, summary: dict, cfg: DictConfig, command: str) -> None:
    """The tuned file: values first, then what they were chosen for and how (a record, not read back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"values": values,
           "selected": {**summary, "criterion": "min Avg. Gap to Retrain on the validation split (eval.split=validation)",
                        "command": command},
           "setting": setting(cfg)}
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(f"# Values of {cfg.method.name} for one setting, chosen by `unlearn tune`; runs of this setting "
                   f"apply `values` (the command line wins).\n" + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="unlearn tune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="the run's overrides: method=..., dataset=..., paradigm=...")
    ap.add_argument("--trials", type=int, default=12, help="trials to run (default 12)")
    ap.add_argument("--minutes", type=float, default=None, help="stop starting trials after this many minutes")
    ap.add_argument("--seed", type=int, default=0, help="the run seed of every trial (split, init)")
    ap.add_argument("--storage", default="sqlite:///results/optuna.db", help="Optuna storage URL")
    ap.add_argument("--tuned-dir", default=None, help="where tuned files go (default: the config's tuned_dir)")
    ap.add_argument("--results", default="results/tune.csv", help="results CSV of the trials")
    args = ap.parse_args(argv)
    if args.trials < 1 or (args.minutes is not None and not args.minutes > 0):
        print(f"error: --trials={args.trials} --minutes={args.minutes}; allowed: trials >= 1, minutes > 0",
              file=sys.stderr)
        return 2
    bad = [o for o in args.overrides if "=" not in o or override_key(o) in ("hparams_search", "seed", "eval.split")]
    if bad:
        print(f"error: {bad}: allowed: key=value overrides of a run other than hparams_search, seed and eval.split "
              f"(set by tune; --seed sets the seed)", file=sys.stderr)
        return 2
    overrides = [*args.overrides, f"seed={args.seed}"]
    try:
        cfg = compose(overrides)
    except Exception as e:  # an unknown group or key: Hydra's own message, one line
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    method = cfg.method.name
    if not (SEARCH / f"{method}.yaml").exists():
        print(f"error: method={method} has no search space; allowed: "
              f"{sorted(p.stem for p in SEARCH.glob('*.yaml'))}", file=sys.stderr)
        return 2
    from unlearn import budget
    try:
        budget.check_keys(cfg)
        if cfg.budget.minutes is not None and cfg.budget.apply:  # one recipe for every trial, priced once
            args.overrides, fit = resolve_budget(args.overrides, (f"seed={args.seed}",))
    except ValueError as e:  # ConfigError included: a bad value, or a budget nothing fits
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.budget.minutes is not None and cfg.budget.apply:
        print(f"tune: {fit.line()}; every trial runs it", file=sys.stderr)
        cfg = compose([*args.overrides, f"seed={args.seed}"])  # the setting the values are chosen for
    tuned_dir = args.tuned_dir or str(cfg.tuned_dir)
    cfg.tuned_dir = tuned_dir
    if args.storage.startswith("sqlite:///"):
        Path(args.storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    from unlearn.tables import select  # the (R) selection's study command and best trial; not on a run's start-up
    name = f"tune-{setting_key(cfg)}-{cfg.paradigm.name}-{method}"
    start, done = time.monotonic(), 0
    while done < args.trials:
        if args.minutes is not None and (time.monotonic() - start) / 60 >= args.minutes:
            print(f"tune: {args.minutes} minutes spent; stopping after {done} trials", file=sys.stderr)
            break
        # one trial per process, each with its own sampler seed (a fresh sampler with one seed would propose the
        # same start-up point every time); the study in `storage` keeps every trial
        cmd = select.study_command(method, args.overrides, table="tune", name=name, storage=args.storage, trials=1,
                                   seed=args.seed, results=args.results,
                                   extra=[f"hydra.sweeper.sampler.seed={args.seed * 1000 + done}",
                                          f"tuned_dir={tuned_dir}"])
        print(f"tune: trial {done + 1}/{args.trials}: {' '.join(cmd[3:])}", file=sys.stderr)
        if subprocess.run(cmd).returncode != 0:
            print(f"error: trial {done + 1} of study {name} failed (its message is above)", file=sys.stderr)
            return 1
        done += 1
    values, summary = select.best(name, args.storage)
    path = tuned_file(cfg)
    command = "unlearn tune " + " ".join(args.overrides)
    write(path, values, {"study": name, "storage": args.storage, **summary}, cfg, command)
    reuse = " ".join(o for o in args.overrides)
    print(f"tuned {method}: {values} (validation avg_gap {summary['best_avg_gap']:.3f}, {summary['trials']} trials) "
          f"-> {path}\nrun with them: unlearn {reuse}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
