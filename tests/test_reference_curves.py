"""A run whose reference models come from the cache still records their training curves (curves.csv, W&B)."""
from __future__ import annotations

import pandas as pd

from tests.conftest import TINY, compose_cfg
from unlearn.workspace import run_experiment


def test_cached_references_replay_their_curves(tmp_path):
    cache = f"cache_dir={tmp_path}/shared_cache"
    first = compose_cfg([*TINY, "method=ga", cache], tmp_path)
    run_experiment(first)
    second = compose_cfg([*TINY, "method=ft", cache], tmp_path)  # another method: both references from the cache
    run_experiment(second)
    trained = pd.read_csv(f"{first.run_dir}/curves.csv")
    replayed = pd.read_csv(f"{second.run_dir}/curves.csv")
    for phase in ("original", "retrain"):
        a = trained[trained["phase"] == phase].reset_index(drop=True)
        b = replayed[replayed["phase"] == phase].reset_index(drop=True)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b)  # the same points, epochs as integers
    assert set(replayed["phase"]) >= {"original", "retrain", "unlearn"}
