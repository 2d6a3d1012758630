"""The printer shows one version of the paper per table (never ICLR cells beside arXiv's gap), maps ICLR's unnamed
BU row only where the numbers identify it, writes the runs behind every table, and the README's sentences and
claims are computed from the table files (checked on small fixture tables)."""
import math

import numpy as np
import pandas as pd
import pytest

from unlearn.tables import claims, printer, sentences
from unlearn.tables import plan as planning
from unlearn.tables.__main__ import main
from unlearn.tables.paper import bu_stands_for, paper_cell
from unlearn.tables.preset import load

PAPER = printer.paper_values()


def _versions(df):
    """{(block, row): set of paper versions its printed cells come from}."""
    src = df[df["paper_source"].astype(bool)]
    return src.groupby(["block", "row"])["paper_source"].agg(lambda s: {x.split()[0] for x in s})


def test_a_printed_row_takes_every_paper_cell_from_one_version():
    """T1 CIFAR-10 UGradSL printed ICLR's UA 91.33 beside arXiv's gap 4.38 (computed from arXiv's UA 94.99)."""
    df = printer.frame(load("table1", "cpu"), [], pd.DataFrame())
    assert (_versions(df).map(len) == 1).all()
    assert set().union(*_versions(df)) == {"iclr"}
    cell = df[(df["block"] == "CIFAR-10") & (df["row"] == "ugradsl")].set_index("column")
    assert cell.loc["UA", "paper"] == 91.33
    iclr = {c: cell.loc[c, "paper"] for c in ("UA", "MIA", "RA", "TA")}
    retrain = {"UA": 100.0, "MIA": 100.0, "RA": 98.19, "TA": 94.5}  # ICLR Table 1, line 195
    assert math.isclose(cell.loc["avg_gap", "paper"], np.mean([abs(iclr[c] - retrain[c]) for c in iclr]))
    assert math.isclose(cell.loc["sum", "paper"], sum(iclr.values()))
    assert cell.loc["avg_gap", "paper"] != 4.38 and "computed" in cell.loc["avg_gap", "paper_source"]


def test_the_arxiv_version_is_printed_whole_on_request():
    df = printer.frame(load("table1", "cpu"), [], pd.DataFrame(), version="arxiv")
    assert set().union(*_versions(df)) == {"arxiv"}
    cell = df[(df["block"] == "CIFAR-10") & (df["row"] == "ugradsl")].set_index("column")
    assert (cell.loc["UA", "paper"], cell.loc["avg_gap", "paper"]) == (94.99, 4.38)
    assert math.isnan(cell.loc["H", "paper"])  # arXiv prints no H: nothing borrowed from ICLR


def test_a_table_one_version_lacks_prints_the_other_and_says_so():
    df = printer.frame(load("table14", "cpu"), [], pd.DataFrame())  # arXiv only
    assert set(df["paper_version"]) == {"arxiv"}
    assert "the paper's arXiv version (T14;" in printer.markdown(df, load("table14", "cpu"), {})
    with pytest.raises(ValueError, match="allowed"):
        printer.frame(load("table1", "cpu"), [], pd.DataFrame(), version="neurips")


def test_iclr_bu_row_stands_for_the_boundary_method_its_numbers_match():
    assert bu_stands_for(PAPER, "table8", "CIFAR-10") == "bs"  # ICLR T8 BU = arXiv T10 BS, cell for cell
    assert bu_stands_for(PAPER, "table7", "SVHN") == "be"  # ICLR T7 BU = arXiv T9 BE
    assert bu_stands_for(PAPER, "table1", "CIFAR-10") is None  # matches neither
    assert bu_stands_for(PAPER, "table10", "CIFAR-10") is None  # ICLR only: unidentified
    # the old printer gave BS the H of any ICLR BU row (here Table 1's, which is neither BE nor BS)
    assert paper_cell(PAPER, "table1", "CIFAR-10", "bs", "bs", None, "H") is None
    assert paper_cell(PAPER, "table7", "SVHN", "be", "be", None, "H", "iclr")[0] == 1.42
    assert paper_cell(PAPER, "table7", "SVHN", "bs", "bs", None, "H", "iclr") is None
    assert paper_cell(PAPER, "table8", "CIFAR-10", "bs", "bs", None, "H", "iclr")[0] == 0.02
    md = printer.markdown(printer.frame(load("table10", "cpu"), [], pd.DataFrame()), load("table10", "cpu"), {})
    assert "the paper's BU row (ICLR, line 567: UA 78.33" in md  # shown, compared with neither


def test_computed_gap_and_sum_follow_the_rule_arxiv_prints():
    printed = paper_cell(PAPER, "table8", "CIFAR-10", "ugradsl", "ugradsl", None, "avg_gap", "arxiv")[0]
    bare = PAPER[~PAPER["column"].isin(["avg_gap", "sum"])]
    gap, _, source = paper_cell(bare, "table8", "CIFAR-10", "ugradsl", "ugradsl", None, "avg_gap", "arxiv")
    assert abs(gap - printed) < 0.01 and "computed with Retrain's line" in source
    total = paper_cell(bare, "table8", "CIFAR-10", "ugradsl", "ugradsl", None, "sum", "arxiv")[0]
    assert abs(total - paper_cell(PAPER, "table8", "CIFAR-10", "ugradsl", "ugradsl", None, "sum", "arxiv")[0]) < 0.02


def _fake_runs(jobs):
    rows = []
    for j in jobs:
        for stamp, ua in (("2026-01-01", 99.0), ("2026-01-02", 10.0 + j.seed)):  # an older run of the same job
            rows.append({"table": "fig3" if stamp.endswith("1") else "table8", "dataset": "cifar10_cpu",
                         "model": "resnet18", "paradigm": "random", "method": j.row.method, "smooth_rate": "",
                         "p": "", "seed": j.seed, "config_id": j.config_id, "timestamp": stamp, "UA": ua,
                         "MIA": 5.0, "git_commit": "abc"})
    return pd.DataFrame(rows)


def test_the_runs_behind_a_table_are_written_beside_it(tmp_path):
    preset = load("table8", "cpu", ["retrain", "ga"])
    jobs = [j for j in planning.plan(preset, [0, 1]) if j.block.name == "CIFAR-10"]
    runs = _fake_runs(jobs)
    behind = printer.table_runs(preset, jobs, runs)
    assert len(behind) == len(jobs) == 4 and set(behind["ran_as"]) == {"table8"}  # the latest run of each job
    assert {"block", "row", "config_id", "seed", "UA", "MIA", "git_commit"} <= set(behind.columns)
    df = printer.frame(preset, jobs, runs)
    ua = df[(df["row"] == "ga") & (df["column"] == "UA") & (df["block"] == "CIFAR-10")]["mean"].iloc[0]
    assert ua == behind[behind["row"] == "ga"]["UA"].mean() == 10.5  # the cell is the mean of the rows written
    paths = printer.write(df, preset, {}, tmp_path, behind)
    back = pd.read_csv(paths["runs"])
    assert paths["runs"].name == "table8_cpu.runs.csv" and len(back) == 4
    assert set(back["config_id"]) == {j.config_id for j in jobs}
    assert not list(tmp_path.glob(".*.tmp"))  # written through temp files, renamed


def test_reprint_replaces_the_paper_cells_of_a_written_table(tmp_path):
    preset = load("table8", "cpu", ["retrain", "bs"])
    df = printer.frame(preset, [], pd.DataFrame())
    printer.write(df, preset, {"CIFAR-10": "original model: train accuracy 100.0%"}, tmp_path)
    assert main(["reprint", "table8", "--out", str(tmp_path), "--paper", "arxiv"]) == 0
    again = pd.read_csv(tmp_path / "table8_cpu.csv", keep_default_na=False, na_values=[""])
    assert set(again["paper_version"]) == {"arxiv"}
    assert {s.split()[0] for s in again["paper_source"].dropna()} == {"arxiv"}
    md = (tmp_path / "table8_cpu.md").read_text()
    assert "**CIFAR-10**: original model: train accuracy 100.0%" in md and "arXiv version" in md


def _table(folder, table, means, block="CIFAR-10"):
    """A written table (as printer.write leaves it) with one cell per {row: {column: mean}}, std 0, 3 seeds."""
    preset = load(table, "cpu")
    rows = {r.id: r for r in preset.rows}
    out = [{"table": table, "scale": "cpu", "block": block, "row": rid, "label": rows[rid].label,
            "method": rows[rid].method, "column": col, "mean": v, "std": 0.0, "n": 3, "expected": 3, "unit": "",
            "bold": False} for rid, cols in means.items() for col, v in cols.items()]
    pd.DataFrame(out).to_csv(folder / f"{table}_cpu.csv", index=False)


def test_the_closest_row_named_is_the_minimum_gap(tmp_path):
    """Table 10's hand-written sentence named FT and RL closest while BS (9.30) had the smallest gap."""
    gaps = {"retrain": 0.0, "ft": 10.15, "ga": 30.77, "bs": 9.30, "rl": 10.98, "ugradsl": 12.32}
    _table(tmp_path, "table10", {r: {"avg_gap": g, "UA": 50.0} for r, g in gaps.items()})
    line = sentences.render(tmp_path, tables=["table10"])
    assert "closest to Retrain (smallest Avg. Gap): BS 9.30, FT 10.2, RL 11.0; farthest: GA 30.8" in line
    # the paper (ICLR T10, gaps computed from its cells) has GA closest among the rows both print; ours has FT
    assert "the paper (ICLR T10) has GA closest" in line and "ours has FT (10.2) and GA 3rd" in line
    assert "**disagrees**" in line
    _table(tmp_path, "table10", {r: {"avg_gap": 1.0 if r == "ga" else g, "UA": 50.0} for r, g in gaps.items()})
    assert "**agrees**" in sentences.render(tmp_path, tables=["table10"])


def test_the_ablation_sentence_states_ua_against_the_papers(tmp_path):
    ua = {"ga": 0.0, "ugradsl_no_retain_nls": 0.0, "ugradsl_no_nls": 4.0, "ugradsl_nls": 70.7, "ugradsl_pls": 1.1,
          "ugradsl_plus_no_nls": 6.3, "ugradsl_plus_nls": 76.0, "ugradsl_plus_pls": 1.1}
    _table(tmp_path, "table6", {r: {"UA": v, "avg_gap": 40 - v / 2} for r, v in ua.items()})
    line = sentences.render(tmp_path, tables=["table6"])
    assert "NLS forgets most with gradient mixing (**agrees**)" in line
    assert "UGradSL w/o D_r + NLS: UA 0.00 against the paper's 25.2 (it does not forget here)" in line
    # the opposite failure: UA far above the paper's because the model forgets everything, D_r included
    ua["ugradsl_no_retain_nls"] = 99.4
    _table(tmp_path, "table6", {r: {"UA": v, "RA": 1.2 if r == "ugradsl_no_retain_nls" else 99.0,
                                    "avg_gap": 40 - v / 2} for r, v in ua.items()})
    line = sentences.render(tmp_path, tables=["table6"])
    assert "UGradSL w/o D_r + NLS: UA 99.4 against the paper's 25.2 (it forgets D_r too: RA 1.20 against" in line


def test_claims_are_judged_from_the_tables(tmp_path):
    _table(tmp_path, "table8", {"retrain": {"avg_gap": 0.0, "UA": 60.0, "RTE": 2.0},
                                "ga": {"avg_gap": 30.0, "UA": 0.0, "RTE": 0.1},
                                "ugradsl": {"avg_gap": 9.0, "UA": 70.0, "RTE": 0.2},
                                "rl": {"avg_gap": 12.0, "UA": 50.0, "RTE": 0.5}})
    _table(tmp_path, "table6", {"ugradsl_nls": {"UA": 70.0, "avg_gap": 9.0},
                                "ugradsl_pls": {"UA": 1.0, "avg_gap": 35.0},
                                "ugradsl_plus_nls": {"UA": 1.0, "avg_gap": 36.0},
                                "ugradsl_plus_pls": {"UA": 2.0, "avg_gap": 35.0}})
    got = claims.claims(tmp_path).set_index("claim")["verdict"]
    assert got["UGradSL forgets more than GA at a similar RTE"] == "holds"
    assert got["UGradSL or UGradSL+ is closest to Retrain on random forgetting"] == "holds"
    assert got["NLS beats PLS with gradient mixing (Table 6)"] == "holds in 1 of 2"  # UGradSL+ fails
    assert got["More epochs forget more (Table 14)"] == "not measured"
    _table(tmp_path, "table8", {"retrain": {"avg_gap": 0.0, "UA": 60.0, "RTE": 2.0},
                                "ga": {"avg_gap": 30.0, "UA": 0.0, "RTE": 0.1},
                                "ugradsl": {"avg_gap": 9.0, "UA": 70.0, "RTE": 0.9},
                                "rl": {"avg_gap": 8.0, "UA": 50.0, "RTE": 0.5}})
    table = claims.render(tmp_path)
    assert "T8 CIFAR-10: UA 70.0 vs 0.00, RTE ×9.0 ✗ RTE" in table
    assert "T8 CIFAR-10: closest RL 8.00 (ranks: UGradSL 2 of 3) ✗" in table
    _table(tmp_path, "table8", {"retrain": {"avg_gap": 0.0, "UA": 60.0, "RTE": 2.0},  # an (R) row aims at the gap:
                                "ugradsl_r_cifar10": {"avg_gap": 1.0, "UA": 58.0, "RTE": 0.2},  # not counted
                                "ugradsl": {"avg_gap": 9.0, "UA": 70.0, "RTE": 0.2},
                                "rl": {"avg_gap": 8.0, "UA": 50.0, "RTE": 0.5}})
    assert "T8 CIFAR-10: closest RL 8.00 (ranks: UGradSL 2 of 2) ✗" in claims.render(tmp_path)


def test_the_sentences_command_writes_the_markdown_beside_the_tables(tmp_path, capsys):
    _table(tmp_path, "table10", {"retrain": {"avg_gap": 0.0}, "ft": {"avg_gap": 3.0}, "bs": {"avg_gap": 2.0}})
    assert main(["sentences", "--out", str(tmp_path)]) == 0
    written = (tmp_path / "sentences_cpu.md").read_text()
    assert written == capsys.readouterr().out
    assert "- **Table 10**, CIFAR-10: closest to Retrain (smallest Avg. Gap): BS 2.00, FT 3.00" in written
    assert "Not written at cpu scale: table1, table2" in written


def test_print_takes_the_paper_version_from_the_command_line(tmp_path):
    out = tmp_path / "tables"
    (tmp_path / "none.csv").write_text("")  # no runs yet (a missing --results is refused as a typo)
    args = ["print", "table8", "--rows", "retrain,ugradsl", "--results", str(tmp_path / "none.csv"), "--out", str(out)]
    assert main([*args, "--paper", "arxiv"]) == 0
    df = pd.read_csv(out / "table8_cpu.csv", keep_default_na=False, na_values=[""])
    assert {s.split()[0] for s in df["paper_source"].dropna()} == {"arxiv"}
    gap = df[(df["block"] == "CIFAR-10") & (df["row"] == "ugradsl") & (df["column"] == "avg_gap")]["paper"]
    assert gap.iloc[0] == paper_cell(PAPER, "table8", "CIFAR-10", "ugradsl", "ugradsl", None, "avg_gap", "arxiv")[0]
    assert pd.read_csv(out / "table8_cpu.runs.csv").empty  # no runs yet: a header only
    assert main(args) == 0  # the default: ICLR
    assert "the paper's ICLR version (T8;" in (out / "table8_cpu.md").read_text()


def test_the_arxiv_variant_runs_the_adaptive_alpha_and_prints_beside_arxiv_only(tmp_path, capsys):
    """VARIANT=arxiv: every UGradSL/UGradSL+ job (and only those) runs smooth_rate_mode=adaptive, under its own
    config id (never mistaken for the fixed-alpha run), and the table goes to <table>_<scale>_arxiv.* beside arXiv."""
    rows = [r.id for r in load("table8", "cpu").rows if r.method in ("ugradsl", "ugradsl_plus") or r.id in (
        "retrain", "ga", "iu")]  # every UGradSL row ((R) rows too) and three others, not the whole table's 20
    plain, arxiv = load("table8", "cpu", rows), load("table8", "cpu", rows, variant="arxiv")
    assert {r.method for r in plain.rows} >= {"ugradsl", "ugradsl_plus", "retrain", "ga", "iu"}
    jobs = {v: {(j.block.name, j.row.id): j for j in planning.plan(p, [0])} for v, p in (("iclr", plain), ("arxiv", arxiv))}
    for key, job in jobs["arxiv"].items():
        mode = job.cfg.method.get("smooth_rate_mode")
        if job.row.method in ("ugradsl", "ugradsl_plus"):
            assert mode == "adaptive" and job.config_id != jobs["iclr"][key].config_id, key
        else:
            assert job.config_id == jobs["iclr"][key].config_id, key
    assert arxiv.stem == "table8_cpu_arxiv" and plain.stem == "table8_cpu"
    out = tmp_path / "tables"
    (tmp_path / "none.csv").write_text("")
    args = ["print", "table8", "--rows", "retrain,ugradsl", "--results", str(tmp_path / "none.csv"), "--out", str(out)]
    assert main([*args, "--variant", "arxiv"]) == 0
    df = pd.read_csv(out / "table8_cpu_arxiv.csv", keep_default_na=False, na_values=[""])
    assert {s.split()[0] for s in df["paper_source"].dropna()} == {"arxiv"} and not (out / "table8_cpu.csv").exists()
    with pytest.raises(SystemExit) as stop:
        main([*args, "--variant", "arxiv", "--paper", "iclr"])
    assert stop.value.code == 2 and "--variant arxiv --paper iclr" in capsys.readouterr().err
    with pytest.raises(ValueError, match="variant='icml' is invalid; allowed: \\('iclr', 'arxiv'\\)"):
        load("table8", "cpu", variant="icml")
