"""Kept for old commands: the dashboards are `unlearn dashboard` (unlearn/dashboard.py), installed with the package."""
import sys

from unlearn.dashboard import build_report, dataset_names, main, table_specs  # noqa: F401  (for callers loading this file)

if __name__ == "__main__":
    sys.exit(main())
