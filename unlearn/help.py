"""The `unlearn --help` page: conf/hydra/help/unlearn.yaml, whose lists of groups, options and keys are read
from the config folder and the command's sub-commands when the page is printed (`${unlearn.help_groups:}`, ...).

Light on purpose (no torch): the console command prints the page without composing the config.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from unlearn.paths import CONF

TEMPLATE = CONF / "hydra" / "help" / "unlearn.yaml"
WIDTH = 118  # the page fits a 120-column terminal
# The groups a user picks from, in the order a run is described; the others (regime_model, dataset_model, tuned/*,
# optim) are selected by these and are left out of the page.
GROUPS = {
    "dataset": "what data (it picks its regime, regime=...)",
    "regime": "the scale: recipe of the original and Retrain models, the methods' values for it",
    "model": "architecture",
    "paradigm": "what is forgotten: a class, a random share, a share of one class, subgroups",
    "method": "the unlearning method",
    "experiment": "a paper table's block or a setting (data, model, paradigm): overrides the groups above",
    "train": "recipe of the original and Retrain models (default: the regime's)",
    "ablation": "a row of paper Table 6 (with experiment=ablation)",
    "hparams_search": "an Optuna search of a method's values (with -m; pip install 'unlearn[optuna]')",
    "hydra/launcher": "where the jobs of -m run (pip install 'unlearn[launchers]')",
}
SUBCOMMANDS = {  # `unlearn <name> ARGS`: the module whose main(argv) runs it
    "collect": "unlearn.collect",  # a runs CSV (or run folders, or W&B) to the long CSV and mean ± std
    "dashboard": "unlearn.dashboard",  # one W&B Report per paper table
    "table": "unlearn.tables.__main__",  # run / print the paper's tables (make table1 ...)
    "figure": "unlearn.figures.__main__",  # run / draw the paper's figures (make fig1 ...)
    "report": "unlearn.collect",  # `make report`: the same as collect (mean ± std over seeds of a results CSV)
    "select": "unlearn.tables.select",  # a table's (R) rows toward Retrain on the validation split (make tune TABLE=)
    "tune-regime": "unlearn.tune_regime",  # a method's values for a CPU regime, written to conf/tuned/<regime>/
    "tune": "unlearn.tune",  # select a method's values for your data on a validation split (docs/own-data.md)
    "compare": "unlearn.compare",  # every method on your data with seeds: tune, run, the Retrain-relative table
    "new-method": "unlearn.new_method",  # a method's YAML, class and mechanism test from the template
}
KEYS = ("smooth_rate", "p", "seed", "device", "threads", "stage", "objective", "results_csv")  # from config.yaml


def options(group: str, conf: Path = CONF) -> list[str]:
    return sorted(p.stem for p in (conf / group).glob("*.yaml"))


def help_groups(conf: Path = CONF) -> str:
    """Each user-facing group, what it chooses, and its options (the YAML files of its folder)."""
    lines = []
    for group, what in GROUPS.items():
        lines.append(f"  {group}: {what}")
        lines += textwrap.wrap(", ".join(options(group, conf)), WIDTH, initial_indent="      ",
                               subsequent_indent="      ", break_on_hyphens=False)
    return "\n".join(lines)


def key_comments(config: Path) -> dict[str, tuple[str, str]]:
    """{key: (default, comment)} of the top-level keys of a config file, a comment's continuation lines joined."""
    found, last = {}, None
    for line in config.read_text().splitlines():
        top = re.match(r"^(\w+): (.*?)\s+# (.*)$", line)
        more = re.match(r"^\s+# (.*)$", line)
        if top:
            last = top.group(1)
            found[last] = (top.group(2), top.group(3))
        elif more and last:
            default, comment = found[last]
            found[last] = (default, f"{comment} {more.group(1)}")
        else:
            last = None
    return found


def help_keys(conf: Path = CONF) -> str:
    """The main top-level keys with their default and the first clause of their comment in config.yaml."""
    comments = key_comments(conf / "config.yaml")
    lines = []
    for key in KEYS:
        default, comment = comments[key]
        first = comment.split("; ")[0]
        line = f"  {key}={default}".ljust(30) + " " + first
        lines.append(line if len(line) <= WIDTH else line[:line.rfind(" ", 0, WIDTH - 4)] + " ...")
    return "\n".join(lines)


def help_commands() -> str:
    """The sub-commands of the console command, comma-separated, wrapped under the help page's column 55."""
    indent = " " * 55  # the template places the list at column 55
    return "\n".join(textwrap.wrap(", ".join(SUBCOMMANDS), WIDTH, initial_indent=indent, subsequent_indent=indent,
                                   break_on_hyphens=False)).lstrip()


def page() -> str:
    """The help text exactly as Hydra prints it from the template (its `$` placeholders are not used)."""
    return str(OmegaConf.load(TEMPLATE).template)


for _name, _fn in (("unlearn.help_groups", help_groups), ("unlearn.help_keys", help_keys),
                   ("unlearn.help_commands", help_commands)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, lambda _fn=_fn: _fn())
