"""Paper-table presets (`unlearn/tables/presets/<table>.yaml`): rows, blocks and columns of one table.

A row is a method (or a method plus overrides, e.g. an ablation row or an epoch count), a block is one data
set of the table with its overrides at each scale (`paper`: the paper's recipe, `cpu`: what 2 CPU cores run
in minutes), and the columns are the metrics printed in the paper's order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

PRESETS = Path(__file__).parent / "presets"
SCALES = ("cpu", "paper")
COLUMNS = ("UA", "MIA", "RA", "TA", "H", "RTE", "avg_gap", "sum", "additional_mia")


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


def _row(spec) -> Row:
    if isinstance(spec, str):
        return Row(id=spec, method=spec, label=spec, overrides=[])
    return Row(id=spec["id"], method=spec["method"], label=spec.get("label", spec["id"]),
               overrides=list(spec.get("overrides", [])), paper_row=spec.get("paper_row"),
               selected_at=spec.get("selected_at"))


def available() -> list[str]:
    return sorted((p.stem for p in PRESETS.glob("*.yaml")), key=lambda t: int(t.removeprefix("table")))


def load(table: str, scale: str, only: list[str] | None = None) -> Preset:
    """The preset of `table` at `scale` (only the rows `only`, when given), checked: every row's method exists,
    every column is known."""
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is invalid; allowed: {SCALES}")
    path = PRESETS / f"{table}.yaml"
    if not path.exists():
        raise ValueError(f"table={table!r} has no preset; allowed: {available()}")
    text = path.read_text()
    spec = yaml.safe_load(text)
    rows = [_row(r) for r in spec["rows"]]
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
    methods = {p.stem for p in (Path(__file__).parents[1] / "conf" / "method").glob("*.yaml")}
    bad = [r.method for r in rows if r.method not in methods]
    if bad or len({r.id for r in rows}) != len(rows):
        raise ValueError(f"{path}: unknown methods {bad} or duplicate row ids")
    unknown = [c for c in spec["columns"] if c not in COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown columns {unknown}; allowed: {COLUMNS}")
    blocks = [Block(name=name, overrides=b.get(scale), paper_block=b.get("paper_block", name), note=b.get("note", ""),
                    rte_unit=b.get("rte_unit", "min"), skip_rows=list(b.get("skip_rows", [])),
                    rte_like=b.get("rte_like"))
              for name, b in spec["blocks"].items()]
    source = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    return Preset(table=table, title=spec["title"], scale=scale, rows=rows, blocks=blocks,
                  columns=list(spec["columns"]), source=source, elsewhere=elsewhere)
