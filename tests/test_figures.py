"""What the figures read: every run saves per-sample predictions (predictions.npz) of the unlearned model and
its two references, consistent with its metrics; the reference models' cached metrics carry a version."""
import numpy as np
import pytest

import unlearn.references
from tests.conftest import TINY, compose_cfg
from unlearn.workspace import run_experiment


def test_a_run_saves_per_sample_predictions_matching_its_metrics(tmp_path):
    cfg = compose_cfg([*TINY, "method=ga", "paradigm=random"], tmp_path)
    m = run_experiment(cfg)
    run_dir = next(p for p in tmp_path.iterdir() if (p / "metrics.json").exists())
    z = np.load(run_dir / "predictions.npz")
    assert z["forget_true"].dtype == np.int16 and z["forget_index"].dtype == np.int32
    assert len(z["forget_true"]) == m["forget/size"]
    for model, prefix in (("unlearned", ""), ("original", "original/"), ("retrain", "retrain/")):
        for split, metric in (("forget", "UA"), ("test", "TA")):
            pred, true = z[f"{model}_{split}_pred"], z[f"{split}_true"]
            assert pred.dtype == np.int16 and z[f"{model}_{split}_prob"].dtype == np.float16
            acc = 100 * (pred == true).mean()
            assert (100 - acc if metric == "UA" else acc) == pytest.approx(m[prefix + metric]), (model, split)
        assert z[f"{model}_forget_loss"].mean() == pytest.approx(m[prefix + "forget/loss"], rel=1e-4)
        assert np.allclose(np.exp(-z[f"{model}_test_loss"]), z[f"{model}_test_prob"], atol=1e-3)


def test_cached_reference_metrics_are_recomputed_when_their_version_changes(tmp_path, monkeypatch):
    run_experiment(compose_cfg([*TINY, "method=ga"], tmp_path))
    cached = lambda: sorted(p.name for p in (tmp_path / "cache").glob("metrics-*.pt"))  # noqa: E731
    first = cached()
    run_experiment(compose_cfg([*TINY, "method=ga"], tmp_path))
    assert cached() == first  # reused
    monkeypatch.setattr(unlearn.references, "METRICS_VERSION", 10 ** 6)
    run_experiment(compose_cfg([*TINY, "method=ga"], tmp_path))
    assert len(cached()) == 2 * len(first)  # a new key: old dicts without the new metrics are not reused
