"""The shared results CSV: one row per run, appended under a file lock by parallel jobs.

A torn last line (a crash or a full disk; a torn header alone included) is moved aside to `<csv>.torn`
before the next append, while a last line that holds all its fields but lost its line end (an editor's
save) is kept as a row; a row that carries the identity columns is refused by a file whose header lacks
them, and a file that is not a results CSV at all (JSON, prose, a FIFO, a device) is refused before it is
opened for writing: another program's file is never rewritten. A header is only ever widened by rewriting
the whole file through a temp file and a rename (`cache.atomic_write`: through a symlink to its target,
the file's mode kept), old values kept as the text they were; `read_runs` skips and reports malformed
lines instead of failing on the whole file.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import re
import stat
from pathlib import Path

import pandas as pd

from unlearn import stages
from unlearn.cache import DISK_FULL, atomic_write, disk_full
from unlearn.locks import locked

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


COLUMN = re.compile(r'[^\s"{}\[\]<>]*')  # a column name of ours (`method.lr`, `mia/loss_tpr@1%fpr`): no
# white space, quotes, braces or brackets, which prose and JSON have


def check_regular(path: Path) -> None:
    """`path` is absent or (through symlinks) a regular file: a FIFO would block the job forever, a device or
    socket is nobody's results CSV. Checked with stat, never by opening the file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise ForeignCSVError(f"results_csv={str(path)!r} is not a readable and writable file: it is {kind}; "
                              f"allowed: a regular file (or a new path)")


def tail_state(data: bytes, header: list[str] | None) -> str:
    """How the file's bytes end: `whole` (a line end), `cr` (cut between a row's \\r and \\n), `unended` (a last
    row with all the header's fields, its line end lost), `torn` (a partial last line or a partial header
    alone) or `foreign` (one line without a line end that is no header of ours: JSON, prose)."""
    if not data or data.endswith(b"\n"):
        return "whole"
    if data.endswith(b"\r"):
        return "cr"
    cut = data.rfind(b"\n") + 1
    last = data[cut:].decode("utf-8-sig" if cut == 0 else "utf-8", errors="replace")  # a spreadsheet's BOM
    if cut == 0:  # the header itself lacks its line end: a cut first write, or not a CSV of ours
        fields = next(csv.reader([last]), [])
        return "torn" if fields and all(COLUMN.fullmatch(f) for f in fields) else "foreign"
    fields = next(csv.reader([last]), [])
    whole_row = header is not None and len(fields) == len(header) and last.count('"') % 2 == 0  # odd: cut in quotes
    return "unended" if whole_row else "torn"


def _set_aside_torn_tail(path: Path, data: bytes, header: list[str] | None) -> None:
    """Make the file end with a line end: a whole last row gets its lost one, a partial last line is moved to
    `<path>.torn`."""
    state = tail_state(data, header)
    if state == "whole":
        return
    if state in ("cr", "unended"):  # the row is whole
        with path.open("ab") as f:
            f.write(b"\n" if state == "cr" else b"\r\n")
        if state == "unended":
            log.warning("results CSV %s ended without a line end after a whole row; added it", path)
        return
    if state == "foreign":
        raise ForeignCSVError(f"results_csv={str(path)!r} is not a results CSV (one line without a line end that "
                              f"is no CSV header: {data[:60]!r}); it was not written by unlearn. Use another "
                              f"results_csv or move the file")
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


def header_of(data: bytes) -> list[str] | None:
    """The header's fields, None while the header lacks its line end (a torn header, or not a CSV)."""
    end = data.find(b"\n")
    return None if end < 0 else next(csv.reader([data[:end + 1].decode("utf-8-sig", errors="replace")]), [])


def check_file(path: Path, row: dict | None = None) -> None:
    """Refuse (ForeignCSVError) what the next append must not touch: a file that is not regular, not a CSV
    of ours (JSON, prose), or whose header lacks the identity columns (with `row`: when the row has them)."""
    check_regular(path)
    if not path.exists():
        return
    data = path.read_bytes()
    header = header_of(data)
    if header is not None and not all(COLUMN.fullmatch(f) for f in header):
        raise ForeignCSVError(f"results_csv={str(path)!r} is not a results CSV (its first line is no CSV header of "
                              f"column names: {data[:60]!r}); it was not written by unlearn. Use another "
                              f"results_csv or move the file")
    if header is not None and (row is None or all(c in row for c in IDENTITY)):
        if (error := foreign_header(path, header)) is not None:
            raise error
    if tail_state(data, header) == "foreign":
        _set_aside_torn_tail(path, data, header)  # raises: it never writes a foreign file


def append_row(path: str | Path, row: dict) -> None:
    """Append `row` to the CSV at `path` under a file lock; widen the header if new columns appear.

    A symlink at `path` is followed: the lock, the rows and a widened header go to the file it points at.
    A run's row (one with every identity column) is refused, with ForeignCSVError, by an existing header
    without them; a file that is not a CSV of ours is refused before anything is written."""
    path = Path(os.path.realpath(path))  # one lock per shared file, however it is reached
    check_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {k: ("" if v is None else v) for k, v in row.items()}
    with locked(path, what="results CSV"):
        check_file(path, row)  # before any change: a foreign file is left exactly as it was
        if path.exists():
            data = path.read_bytes()
            _set_aside_torn_tail(path, data, header_of(data))
        if not path.exists() or path.stat().st_size == 0:  # created as open() creates files: the umask's mode
            _append(path, _line(list(row)) + _line(list(row.values())))
            stages.reached("csv")
            return
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
        if set(row) <= set(header):
            _append(path, _line([row.get(k, "") for k in header]))
            stages.reached("csv")
            return
        _widen(path, header, row)
        stages.reached("csv")


def _append(path: Path, text: str) -> None:
    """Append whole lines; a write that fails (a full disk) is cut back off, and a full disk is named."""
    size = path.stat().st_size if path.exists() else 0
    try:
        with path.open("a", newline="", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        try:
            with path.open("r+b") as f:  # no partial row left behind (the next append would set it aside)
                f.truncate(size)
        except OSError:
            pass
        if e.errno in DISK_FULL:
            raise disk_full(path, e) from None
        raise


def _widen(path: Path, header: list[str], row: dict) -> None:
    """Rewrite the CSV with new columns appended to the header (temp file + rename, the file's mode kept): old
    lines keep their text, padded with empty cells; a malformed line (another field count) is kept as it was."""
    fields = header + [k for k in row if k not in header]
    with path.open(newline="", encoding="utf-8-sig") as f:
        old = list(csv.reader(f))[1:]
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(fields)
    w.writerows(r + [""] * (len(fields) - len(header)) if len(r) == len(header) else r for r in old)
    w.writerow([row.get(k, "") for k in fields])
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))


def read_runs(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The results CSV as a frame, skipping (and reporting) torn or malformed lines instead of failing."""
    text = Path(path).read_bytes().decode("utf-8-sig", errors="replace")
    problems = []
    if text.endswith("\r"):  # cut between a row's \r and \n: the row is whole
        text += "\n"
    state = tail_state(text.encode("utf-8"), header_of(text.encode("utf-8")))
    if state == "unended":  # a whole last row that lost its line end
        text += "\r\n"
    elif text and not text.endswith("\n"):
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
