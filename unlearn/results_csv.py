"""The shared results CSV: one row per run, appended under a file lock by parallel jobs.

A torn last line (a crash or a full disk) is moved aside to `<csv>.torn` before the next append, a header
is only ever widened by rewriting the whole file through a temp file (old values kept as the text they
were), and `read_runs` skips and reports malformed lines instead of failing on the whole file.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd
from filelock import FileLock

log = logging.getLogger("unlearn")


def _set_aside_torn_tail(path: Path) -> None:
    """If the file does not end with a newline, move its last partial line to `<path>.torn`."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(str(path) + ".torn", "ab") as f:
        f.write(data[cut:] + b"\n")
    with path.open("r+b") as f:
        f.truncate(cut)
    log.warning("results CSV %s ended in a torn line (%d bytes); moved it to %s.torn", path, len(data) - cut, path)


def append_row(path: str | Path, row: dict) -> None:
    """Append `row` to the CSV at `path` under a file lock; widen the header if new columns appear."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {k: ("" if v is None else v) for k, v in row.items()}
    with FileLock(str(path) + ".lock"):
        if path.exists():
            _set_aside_torn_tail(path)
        if not path.exists() or path.stat().st_size == 0:
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(row))
                w.writeheader()
                w.writerow(row)
            return
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if set(row) <= set(header):
            with path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=header).writerow(row)
            return
        with path.open(newline="") as f:  # widen: every old value kept as the text it was
            old = list(csv.DictReader(f))
        fields = header + [k for k in row if k not in header]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields, restval="")
                w.writeheader()
                w.writerows(old + [row])
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def read_runs(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The results CSV as a frame, skipping (and reporting) torn or malformed lines instead of failing."""
    text = Path(path).read_text()
    problems = []
    if text and not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        problems.append(f"torn last line dropped: {text[cut:][:80]!r}")
        text = text[:cut]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return pd.DataFrame(), problems
    header, good = rows[0], [rows[0]]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) == len(header):
            good.append(r)
        elif r:
            problems.append(f"line {i}: {len(r)} fields instead of {len(header)}, dropped")
    buf = io.StringIO()
    csv.writer(buf).writerows(good)
    buf.seek(0)
    return pd.read_csv(buf), problems
