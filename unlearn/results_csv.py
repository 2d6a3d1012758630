"""The shared results CSV: one row per run, appended under a file lock by parallel jobs.

A torn last line (a crash or a full disk; a torn header alone included) is moved aside to `<csv>.torn`
before the next append; a row that carries the identity columns is refused by a file whose header lacks
them (a foreign CSV is never rewritten); a header is only ever widened by rewriting the whole file through
a temp file and a rename, old values kept as the text they were; `read_runs` skips and reports malformed
lines instead of failing on the whole file.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from unlearn.cache import fault, locked

log = logging.getLogger("unlearn")
IDENTITY = ("table", "dataset", "model", "paradigm", "method", "seed", "config_id")  # what names a run's row


class ForeignCSVError(ValueError):
    """The results CSV's header lacks the identity columns: another program's file, never rewritten."""


def foreign_header(path: Path, header: list[str]) -> ForeignCSVError | None:
    """The error to raise if `header` (of the CSV at `path`) lacks identity columns, else None."""
    missing = [c for c in IDENTITY if c not in header]
    if not missing:
        return None
    return ForeignCSVError(f"results_csv={str(path)!r} has another header (no identity columns {missing}); it was "
                           f"not written by unlearn. Use another results_csv or move the file")


def _set_aside_torn_tail(path: Path) -> None:
    """If the file does not end with a newline, move its last partial line to `<path>.torn`."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    if data.endswith(b"\r"):  # cut between a row's \r and \n: the row is whole
        with path.open("ab") as f:
            f.write(b"\n")
        return
    cut = data.rfind(b"\n") + 1
    with open(str(path) + ".torn", "ab") as f:
        f.write(data[cut:] + b"\n")
    with path.open("r+b") as f:
        f.truncate(cut)
    log.warning("results CSV %s ended in a torn line (%d bytes); moved it to %s.torn", path, len(data) - cut, path)


def _line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()


def append_row(path: str | Path, row: dict) -> None:
    """Append `row` to the CSV at `path` under a file lock; widen the header if new columns appear.

    A run's row (one with every identity column) is refused, with ForeignCSVError, by an existing header
    without them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {k: ("" if v is None else v) for k, v in row.items()}
    with locked(path, what="results CSV"):
        if path.exists():
            _set_aside_torn_tail(path)
        if not path.exists() or path.stat().st_size == 0:
            with path.open("w", newline="") as f:
                f.write(_line(list(row)) + _line(list(row.values())))
            fault("csv")
            return
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if all(c in row for c in IDENTITY) and (error := foreign_header(path, header)) is not None:
            raise error
        if set(row) <= set(header):
            with path.open("a", newline="") as f:
                f.write(_line([row.get(k, "") for k in header]))
            fault("csv")
            return
        _widen(path, header, row)
        fault("csv")


def _widen(path: Path, header: list[str], row: dict) -> None:
    """Rewrite the CSV with new columns appended to the header (temp file + rename): old lines keep their text,
    padded with empty cells; a malformed line (another field count) is kept as it was."""
    fields = header + [k for k in row if k not in header]
    with path.open(newline="") as f:
        old = list(csv.reader(f))[1:]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(fields)
            w.writerows(r + [""] * (len(fields) - len(header)) if len(r) == len(header) else r for r in old)
            w.writerow([row.get(k, "") for k in fields])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_runs(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The results CSV as a frame, skipping (and reporting) torn or malformed lines instead of failing."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    problems = []
    if text.endswith("\r"):  # cut between a row's \r and \n: the row is whole
        text += "\n"
    if text and not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        problems.append(f"torn {'last line' if cut else 'header'} dropped: {text[cut:][:80]!r}")
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
