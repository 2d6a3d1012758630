"""Kept for old commands: the collector is `unlearn collect` (unlearn/collect.py), installed with the package."""
from unlearn.collect import main, read_run_dirs  # noqa: F401  (read_run_dirs: for callers that load this file)

if __name__ == "__main__":
    from unlearn.cli import one_line_errors
    one_line_errors(main)  # a full disk: one line, exit status 2
