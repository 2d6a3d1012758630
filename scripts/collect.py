"""Kept for old commands: the collector is `unlearn collect` (unlearn/collect.py), installed with the package."""
from unlearn.collect import main, read_run_dirs  # noqa: F401  (read_run_dirs: for callers that load this file)

if __name__ == "__main__":
    import sys

    from unlearn.cli import one_line_errors
    sys.exit(one_line_errors(main))
