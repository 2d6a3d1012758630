"""`unlearn dashboard`: one W&B Report per paper table, built with the Reports API (`pip install 'unlearn[dashboard]'`).

    unlearn dashboard --entity ME --project unlearn --table table2 [--table ...|--all]
    make dashboard TABLE=table2 ENTITY=me          (needs `wandb login` and synced runs: `wandb sync results/wandb`)

A report holds one section per block of the paper table (a data set; the blocks and metric columns are read
from unlearn/tables/paper_values.csv, the transcribed paper numbers): that block's runs with `table=<table>`,
grouped by method; bar charts of UA / MIA / RA / TA (mean ± std over seeds) beside Retrain's value on the
same splits (`retrain/<metric>`, logged by every run), RTE, the smooth-rate (alpha) and p sweep panels, and
the per-epoch unlearning curves. `--dry-run` builds and describes the reports without uploading.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from unlearn.paths import CONF

PACKAGE = Path(__file__).resolve().parent  # the installed package: its paper values ship with it
PAPER_VALUES = PACKAGE / "tables" / "paper_values.csv"
DATASETS = CONF / "dataset"
# the paper's block names and the data set configs they cover (the longest matching prefix of a config name:
# cifar100_super_cpu is CIFAR-100, cifar10_jpg is CIFAR-10)
FAMILIES = {"CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "SVHN": "svhn", "ImageNet": "imagenet",
            "20 Newsgroups": "newsgroups20", "CelebA": "celeba"}
BARS = ("UA", "MIA", "RA", "TA")  # compared with Retrain's value on the same split
SWEEPS = {"smooth_rate": "alpha (smooth_rate)", "p": "p (weight of the retain term)"}  # top-level config keys
EXTRA_SWEEPS = {"table14": {"params.method.epochs": "unlearning epochs"}}  # the arXiv epoch sweep


def dataset_names(block: str, available: list[str]) -> list[str]:
    """The data set configs of a paper block: those whose longest matching family prefix is the block's."""
    def family(name):
        hits = [f for f in FAMILIES.values() if name == f or name.startswith(f + "_")]
        return max(hits, key=len) if hits else None
    return sorted(n for n in available if family(n) == FAMILIES[block])


def table_specs(path: Path = PAPER_VALUES) -> dict[str, dict]:
    """{table: {"blocks": [...], "columns": [...]}} from the transcribed paper values, in table order."""
    values = pd.read_csv(path)
    specs = {}
    for table, g in values.groupby("table", sort=False):
        specs[table] = {"blocks": list(dict.fromkeys(g["block"])), "columns": list(dict.fromkeys(g["column"])),
                        "paper_table": sorted(set(g["paper_table"].astype(str) + " (" + g["version"] + ")"))}
    return dict(sorted(specs.items(), key=lambda kv: int(kv[0].removeprefix("table"))))


def block_grid(wr, expr, entity: str, project: str, table: str, block: str, datasets: list[str], columns):
    """The runs of one block grouped by method, with bars against Retrain, RTE, sweeps and curves."""
    runset = wr.Runset(entity=entity, project=project, name=f"{table} {block}",
                       filters=[expr.Config("table") == table, expr.Config("dataset").isin(datasets)],
                       groupby=["config.method"])
    by_method = dict(groupby=wr.Config("method"), groupby_aggfunc="mean", groupby_rangefunc="stddev")
    panels = [wr.BarPlot(title=f"{m}: method (mean ± std over seeds) and Retrain on the same split",
                         metrics=[wr.SummaryMetric(m), wr.SummaryMetric(f"retrain/{m}")], **by_method)
              for m in BARS if m in columns]
    panels.append(wr.BarPlot(title="RTE (minutes): method and Retrain",
                             metrics=[wr.SummaryMetric("RTE_min"), wr.SummaryMetric("retrain/RTE_min")], **by_method))
    panels += [wr.BarPlot(title=m, metrics=[wr.SummaryMetric(m)], **by_method)
               for m in ("H", "avg_gap", "sum") if m in columns]
    panels += [wr.ScatterPlot(title=f"{m} vs {label}", x=wr.Config(axis), y=wr.SummaryMetric(m))
               for axis, label in {**SWEEPS, **EXTRA_SWEEPS.get(table, {})}.items() for m in ("UA", "TA")]
    panels.append(wr.ParallelCoordinatesPlot(columns=[wr.ParallelCoordinatesPlotColumn(c) for c in (
        wr.Config("smooth_rate"), wr.Config("p"), *(wr.SummaryMetric(m) for m in BARS))]))
    panels.append(wr.LinePlot(title="UA / RA per unlearning epoch (eval.every_epoch=true)", x="unlearn/epoch",
                              y=["unlearn/UA", "unlearn/RA"], groupby=wr.Config("method")))
    panels.append(wr.LinePlot(title="unlearning loss per epoch", x="unlearn/epoch", y=["unlearn/loss"],
                              groupby=wr.Config("method")))
    return wr.PanelGrid(runsets=[runset], panels=panels)


def build_report(table: str, spec: dict, entity: str, project: str, available: list[str]):
    """The Report object of one paper table (nothing is uploaded)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    blocks = [wr.H1(f"{table}: paper Table {', '.join(spec['paper_table'])}"),
              wr.P(f"Runs with table={table} in {entity}/{project}, grouped by method (mean ± std over seeds); "
                   "each bar chart shows the method and Retrain (the exact-unlearning reference) on the same "
                   "split. Written by `unlearn dashboard`."),
              wr.TableOfContents()]
    for block in spec["blocks"]:
        datasets = dataset_names(block, available)
        blocks += [wr.H2(f"{block} ({', '.join(datasets)})"),
                   block_grid(wr, expr, entity, project, table, block, datasets, spec["columns"])]
    return wr.Report(project=project, entity=entity, title=f"unlearn {table}", width="fluid",
                     description=f"Paper table {table}: every block's runs grouped by method, against Retrain.",
                     blocks=blocks)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="unlearn dashboard", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entity", required=True, help="W&B user or team that holds the synced runs")
    ap.add_argument("--project", default="unlearn", help="W&B project (wandb.project of the runs)")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", action="append", help="a paper table, table1 ... table14 (repeatable)")
    which.add_argument("--all", action="store_true", help="every paper table")
    ap.add_argument("--dry-run", action="store_true", help="build and describe the reports; upload nothing")
    args = ap.parse_args(argv)
    specs = table_specs()
    tables = list(specs) if args.all else args.table
    unknown = [t for t in tables if t not in specs]
    if unknown:
        ap.error(f"unknown table(s) {unknown}; allowed: {', '.join(specs)}")
    available = sorted(p.stem for p in DATASETS.glob("*.yaml"))
    for table in tables:
        report = build_report(table, specs[table], args.entity, args.project, available)
        grids = [b for b in report.blocks if type(b).__name__ == "PanelGrid"]
        if args.dry_run:
            print(f"{table}: {len(grids)} blocks, {sum(len(g.panels) for g in grids)} panels (not uploaded)")
            continue
        report.save()
        print(f"{table}: {report.url}")


if __name__ == "__main__":
    sys.exit(main())
