"""Paper-table presets (`conf/tables/<table>.yaml`): rows, blocks and columns of one table.

A row is a method (or a method plus overrides, e.g. an ablation row or an epoch count), a block is one data
set of the table with its overrides at each scale (`paper`: the paper's recipe, `cpu`: what 2 CPU cores run
in minutes), and the columns are the metrics printed in the paper's order.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from unlearn.cli import override_key
from unlearn.paths import CONF, PRESETS

SCALES = ("cpu", "paper")
COLUMNS = ("UA", "MIA", "RA", "TA", "H", "RTE", "avg_gap", "sum", "additional_mia")
KEYS = ("title", "rows", "columns", "blocks", "select_blocks")  # a preset file's keys; all but the last required
ROW_KEYS = ("id", "method", "label", "overrides", "paper_row", "selected_at")  # a row given as a mapping
BLOCK_KEYS = (*SCALES, "paper_block", "note", "rte_unit", "skip_rows", "rte_like")
SELECTED = "(R)"  # the entry of a preset's rows where its (R) rows go, read from selected_file(table)
# VARIANT=arxiv: the arXiv version's Algorithm 1 computes a per-sample alpha (smooth_rate_mode=adaptive) in every run
# of UGradSL and UGradSL+ (plain, (R) and ablation rows alike); the table prints beside arXiv's numbers only.
VARIANTS = ("iclr", "arxiv")
ADAPTIVE = ("ugradsl", "ugradsl_plus")
ADAPTIVE_OVERRIDE = "method.smooth_rate_mode=adaptive"


@dataclass
class Row:
    id: str  # unique within the table; also the paper's `method` id for ablation rows
    method: str  # conf/method/<method>.yaml
    label: str  # as printed
    overrides: list[str] = field(default_factory=list)
    paper_row: str | None = None  # the paper's printed row label when `id` alone does not identify it
    selected_at: str | None = None  # an "(R)" row: the scale its values were selected at (runs at that scale only)


@dataclass
class Block:
    name: str  # the paper's block (data set) name
    overrides: list[str] | None  # None: no preset at this scale
    paper_block: str  # the block of paper_values.csv to compare with
    note: str = ""
    rte_unit: str = "min"
    skip_rows: list[str] = field(default_factory=list)  # rows that cannot run on this block (printed as n/a)
    rte_like: str | None = None  # a table with the same experiment's published RTEs (GPU-hour estimates)
    foreign_rows: list[str] = field(default_factory=list)  # (R) rows selected on another block: skipped, not printed


@dataclass
class Preset:
    table: str
    title: str
    scale: str
    rows: list[Row]
    blocks: list[Block]
    columns: list[str]
    source: str  # the preset file's leading comment
    elsewhere: dict[str, str] = field(default_factory=dict)  # (R) rows left out: {row id: scale selected at}
    variant: str = "iclr"  # VARIANTS: which version of the method the UGradSL rows run (and the paper printed)

    @property
    def stem(self) -> str:
        """The written table's file stem: <table>_<scale>, and _arxiv for the arXiv variant."""
        return f"{self.table}_{self.scale}" + ("" if self.variant == "iclr" else f"_{self.variant}")


def _check_keys(path: Path, where: str, spec, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """A mapping of the preset holds only known keys and the required ones, else ValueError naming the file, where
    in it, the key and the nearest allowed one (a typo such as `cpuu:` would otherwise drop a block silently)."""
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: {where} is {type(spec).__name__}, not a mapping; allowed keys: {list(allowed)}")
    for key in spec:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"{path}: {where} has the unknown key {key!r}{hint}; allowed: {list(allowed)}")
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"{path}: {where} lacks the keys {missing}; allowed: {list(allowed)}")


def read(path: Path) -> dict:
    """The preset file's mapping, its keys checked; YAML that does not parse is named with its line."""
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML ({getattr(e, 'problem', None) or e}{where})") from None
    _check_keys(path, "the preset", spec, KEYS, KEYS[:4])
    for row in spec["rows"] or []:
        if not isinstance(row, str):
            _check_keys(path, f"row {row.get('id') if isinstance(row, dict) else row!r}", row, ROW_KEYS, ROW_KEYS[:2])
    if not isinstance(spec["blocks"], dict):
        raise ValueError(f"{path}: blocks is {type(spec['blocks']).__name__}, not a mapping of block name -> block")
    for name, block in spec["blocks"].items():
        _check_keys(path, f"block {name!r}", block, BLOCK_KEYS)
        for scale in SCALES:  # the regime is the one choice behind a block's scale: named, not implied by the data
            overrides = block.get(scale)
            if overrides is not None and not str((overrides or [""])[0]).startswith("regime="):
                from unlearn.validate import regimes
                raise ValueError(f"{path}: block {name!r} at {scale} scale names no regime first ({overrides}); "
                                 f"allowed: regime=<one of {', '.join(regimes())}> as its first override")
    return spec


def for_data(overrides: list[str], extra: list[str]) -> list[str]:
    """A block's overrides as the user's `extra` leave them: the block's regime is for the block's data, so a
    `dataset=` or `experiment=` in `extra` without a `regime=` drops it (that data set's own regime follows)."""
    chosen = {override_key(o) for o in extra}
    if "regime" in chosen or not chosen & {"dataset", "experiment"}:
        return list(overrides)
    return [o for o in overrides if override_key(o) != "regime"]


def _row(spec) -> Row:
    if isinstance(spec, str):
        return Row(id=spec, method=spec, label=spec, overrides=[])
    return Row(id=spec["id"], method=spec["method"], label=spec.get("label", spec["id"]),
               overrides=list(spec.get("overrides", [])), paper_row=spec.get("paper_row"),
               selected_at=spec.get("selected_at"))


def slug(block: str) -> str:
    """A block name as (R) row ids end in it: `ga_r_cifar10` is GA (R) of block CIFAR-10."""
    return re.sub(r"[^a-z0-9]+", "", block.lower())


def selected_file(table: str) -> Path:
    """The (R) rows of `table`: a list of rows that `make tune` (unlearn.tables.select) writes, never the preset."""
    return PRESETS / "selected" / f"{table}.yaml"


def selected_rows(table: str) -> list:
    """The rows of selected_file(table), their keys checked; [] before any selection."""
    path = selected_file(table)
    if not path.exists():
        return []
    rows = yaml.safe_load(path.read_text()) or []
    if not isinstance(rows, list):
        raise ValueError(f"{path}: a list of (R) rows, not a {type(rows).__name__}")
    for row in rows:
        _check_keys(path, f"row {row.get('id') if isinstance(row, dict) else row!r}", row, ROW_KEYS, ROW_KEYS[:2])
    return rows


def available() -> list[str]:
    return sorted((p.stem for p in PRESETS.glob("*.yaml")), key=lambda t: int(t.removeprefix("table")))


def load(table: str, scale: str, only: list[str] | None = None, variant: str = "iclr") -> Preset:
    """The preset of `table` at `scale` (only the rows `only`, when given), checked: every row's method exists,
    every column is known. variant=arxiv runs UGradSL and UGradSL+ with the per-sample adaptive alpha."""
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is invalid; allowed: {SCALES}")
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is invalid; allowed: {VARIANTS}")
    path = PRESETS / f"{table}.yaml"
    if not path.exists():
        raise ValueError(f"table={table!r} has no preset; allowed: {available()}")
    text = path.read_text()
    spec = read(path)
    selected = selected_rows(table) if SELECTED in spec["rows"] else []
    rows = [_row(r) for entry in spec["rows"] for r in (selected if entry == SELECTED else [entry])]
    if only:
        unknown = [r for r in only if r not in {x.id for x in rows}]
        if unknown:
            raise ValueError(f"rows {unknown} are not in {table}; allowed: {[x.id for x in rows]}")
        rows = [r for r in rows if r.id in only]
    bad_scale = {r.id: r.selected_at for r in rows if r.selected_at not in (None, *SCALES)}
    if bad_scale:
        raise ValueError(f"{path}: rows {bad_scale} have an invalid selected_at; allowed: {SCALES}")
    elsewhere = {r.id: r.selected_at for r in rows if r.selected_at not in (None, scale)}
    if only and elsewhere:
        raise ValueError(f"rows {sorted(elsewhere)} of {table} hold values selected toward Retrain at "
                         f"{sorted(set(elsewhere.values()))} scale, not {scale}; select them at {scale} scale first "
                         f"(make tune METHOD=<method> TABLE={table} SCALE={scale})")
    rows = [r for r in rows if r.id not in elsewhere]  # hyperparameters chosen for other data sizes and models
    if variant == "arxiv":
        rows = [replace(r, overrides=[*r.overrides, ADAPTIVE_OVERRIDE]) if r.method in ADAPTIVE else r for r in rows]
    methods = {p.stem for p in (CONF / "method").glob("*.yaml")}
    bad = [r.method for r in rows if r.method not in methods]
    if bad or len({r.id for r in rows}) != len(rows):
        raise ValueError(f"{path}: unknown methods {bad} or duplicate row ids")
    unknown = [c for c in spec["columns"] if c not in COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown columns {unknown}; allowed: {COLUMNS}")
    def foreign(name: str) -> list[str]:  # the (R) rows selected on the other blocks
        return sorted(r["id"] for r in selected if r["id"].rpartition("_r_")[2] != slug(name))
    blocks = [Block(name=name, overrides=b.get(scale), paper_block=b.get("paper_block", name), note=b.get("note", ""),
                    rte_unit=b.get("rte_unit", "min"), skip_rows=[*b.get("skip_rows", []), *foreign(name)],
                    rte_like=b.get("rte_like"), foreign_rows=foreign(name))
              for name, b in spec["blocks"].items()]
    source = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    title = spec["title"] + (" [arXiv variant: UGradSL and UGradSL+ with the adaptive per-sample alpha]"
                             if variant == "arxiv" else "")
    return Preset(table=table, title=title, scale=scale, rows=rows, blocks=blocks,
                  columns=list(spec["columns"]), source=source, elsewhere=elsewhere, variant=variant)
