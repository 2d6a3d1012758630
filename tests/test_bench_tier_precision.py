"""scripts/bench_tier_precision.py: both precisions timed side by side, one row per (CPU, precision), a rerun on
the same machine replacing its rows, and bad arguments refused before any step."""
import importlib.util

import pandas as pd
import pytest

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_tier_precision", ROOT / "scripts" / "bench_tier_precision.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_precisions_side_by_side_and_a_rerun_replaces_this_machines_rows(tmp_path, capsys):
    bench, out = _bench(), tmp_path / "tier_precision.csv"
    pd.DataFrame([{"cpu": "another CPU", "cpu_capability": "AVX512", "bf16_instructions": "yes", "threads": 1,
                   "precision": "bf16", "seconds_per_step": 0.3}]).to_csv(out, index=False)
    for _ in range(2):
        bench.main(["--steps", "1", "--repeats", "1", "--batch", "4", "--out", str(out)])
    rows = pd.read_csv(out)
    mine = rows[rows["cpu"] != "another CPU"]
    assert sorted(mine["precision"]) == ["bf16", "fp32"] and len(rows) == 3  # the other machine's row is kept
    assert (mine["images_per_s"] > 0).all() and mine["bf16_over_fp32_time"].nunique() == 1
    assert (mine["original_minutes"] > 0).all()
    assert "--batch 4" in out.with_suffix(".md").read_text() and "x the time of fp32" in capsys.readouterr().out


def test_bad_arguments_are_refused_before_any_step(tmp_path):
    with pytest.raises(SystemExit, match="--steps 0"):
        _bench().main(["--steps", "0", "--out", str(tmp_path / "x.csv")])
    assert not (tmp_path / "x.csv").exists()
