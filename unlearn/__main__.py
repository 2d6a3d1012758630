"""The `unlearn` console command (and `run.py`, `python -m unlearn`): sub-commands, the help page, the Hydra app.

    unlearn [run] key=value ...     the Hydra app (unlearn.app); -m for a sweep
    unlearn TOOL ...                the other tools (unlearn.help.SUBCOMMANDS), each with its own --help

A rejected config is one line on stderr, exit status 2, no folder left. Imports stay light until a command
runs, so `unlearn --help` and a missing launcher plugin answer without loading torch.
"""
from __future__ import annotations

import importlib
import os
import sys

from unlearn.cli import check_plugins, one_line_errors, override_problem, refuse
from unlearn.help import SUBCOMMANDS, page


def main(argv: list[str] | None = None):
    """`unlearn ...`: a sub-command, the help page, or the Hydra app with the remaining arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        saved, sys.argv = sys.argv, [f"unlearn {argv[0]}", *argv[1:]]  # argparse names the sub-command in its usage
        try:  # line; restored after, for a caller in the same process (tests, notebooks)
            command = importlib.import_module(SUBCOMMANDS[argv[0]]).main
            sys.exit(one_line_errors(lambda: command(argv[1:])) or 0)
        finally:
            sys.argv = saved
    if argv and argv[0] == "run":
        argv = argv[1:]
    elif argv and not argv[0].startswith(("-", "+", "~")) and "=" not in argv[0]:
        refuse(f"unknown command {argv[0]!r}; allowed: run, {', '.join(SUBCOMMANDS)}, or key=value overrides "
               f"of a run (unlearn --help)")
    if {"-h", "--help"} & set(argv) and "--hydra-help" not in argv:
        try:
            print(page(), flush=True)  # Hydra's page from conf/hydra/help/unlearn.yaml, without composing the config
        except BrokenPipeError:  # `unlearn --help | head`: the reader left; nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return None
    check_plugins(argv)
    if (problem := override_problem(argv)) is not None:
        refuse(problem)
    sys.argv = [sys.argv[0], *argv]
    from unlearn.app import main as app  # torch and the rest load here
    return app()


if __name__ == "__main__":
    main()
