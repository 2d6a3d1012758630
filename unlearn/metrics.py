"""UA, RA, TA, MIA-efficacy and the stronger attacks, entropy H, the summary scores (Avg. Gap to Retrain, Sum),
and the per-sample predictions a run saves for its figures (predictions.npz)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.mia import FEATURES, THRESHOLD_SCORES, entropy, forget_vs_test, mia_efficacy, per_sample_loss, \
    threshold_attack
from unlearn.progress import Progress

HEADLINE = ("UA", "MIA", "RA", "TA", "H", "RTE_min", "avg_gap", "sum")
GAP_KEYS = ("UA", "MIA", "RA", "TA")
# The version of `evaluate`'s output: part of the cache key of the reference models' metrics, so a cached dict
# from before a change of keys or definitions is recomputed. 2: + threshold attacks and mia/forget_vs_test_acc.
METRICS_VERSION = 2
ADDITIONAL_MIA = "mia/forget_vs_test_acc"  # the arXiv Table 5 "Additional MIA" column
ATTACK_KEYS = tuple(f"mia/{s}_{m}" for s in THRESHOLD_SCORES for m in ("auc", "tpr@1%fpr"))


@torch.no_grad()
def predict_probs(model: nn.Module, data, x: Tensor, batch_size: int = 1024,
                  progress: Progress | None = None) -> Tensor:
    """Softmax outputs in eval mode, without augmentation (`progress`: counts one unit per batch). Lazily decoded
    images (ImageNet) decode the next batch in the background while this one computes."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        if hasattr(x, "prefetch") and i + batch_size < len(x):
            x[i + batch_size:i + 2 * batch_size].prefetch()
        out.append(F.softmax(model(data.prepare(x[i:i + batch_size])).float(), -1))
        if progress is not None:
            progress.done()
    return torch.cat(out) if out else torch.empty(0, 0)


def accuracy(probs: Tensor, y: Tensor) -> float:
    return 100.0 * (probs.argmax(1) == y).double().mean().item()


def shadow_members(retain: Tensor, n: int, seed: int) -> Tensor:
    """A fixed random subset of D_r of size n (MIA shadow members), the same for every model of a run."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(retain), size=min(n, len(retain)), replace=False)
    return retain[torch.as_tensor(np.sort(pick), device=retain.device)]


@dataclass
class Outputs:
    """Softmax outputs of one model on D_f, D_r and the evaluation set (test, or validation), in split order."""
    forget: Tensor
    retain: Tensor
    test: Tensor


def outputs(model: nn.Module, data, split, batch_size: int = 1024) -> Outputs:
    """One pass over D_f, D_r and the evaluation set; a bar in a terminal, log lines only when it runs long."""
    sets = (data.x_train[split.forget], data.x_train[split.retain], data.x_test[split.test])
    total = sum(math.ceil(len(x) / batch_size) for x in sets)
    with Progress("evaluate", total, unit="batch", quiet=True) as progress:
        return Outputs(*(predict_probs(model, data, x, batch_size, progress) for x in sets))


def evaluate(model: nn.Module, data, split, seed: int, batch_size: int = 1024,
             mia_shadow_size: int | None = None, probs: Outputs | None = None,
             mia_solver: str = "svc") -> dict[str, float]:
    """All per-model metrics: headline UA/MIA/RA/TA/H and finer `split/kind` and `mia/...` keys (`probs`: the
    model's outputs when already computed)."""
    yf, yr, yt = data.y_train[split.forget], data.y_train[split.retain], data.y_test[split.test]
    o = outputs(model, data, split, batch_size) if probs is None else probs
    pf, pr, pt = o.forget, o.retain, o.test
    n_shadow = len(split.test) if mia_shadow_size is None else min(mia_shadow_size, len(split.test))
    members = shadow_members(split.retain, n_shadow, seed)
    pos = torch.searchsorted(split.retain, members)  # members are sorted retain indices
    nonmember_pick = torch.as_tensor(np.sort(np.random.default_rng(seed + 1).choice(
        len(split.test), size=n_shadow, replace=False)), device=pt.device)
    m = {
        "UA": 100.0 - accuracy(pf, yf),
        "RA": accuracy(pr, yr),
        "TA": accuracy(pt, yt),
        "H": entropy(pf).mean().item(),
        "forget/loss": F.nll_loss(torch.log(pf.clamp_min(1e-30)), yf).item(),
        "retain/loss": F.nll_loss(torch.log(pr.clamp_min(1e-30)), yr).item(),
        "test/loss": F.nll_loss(torch.log(pt.clamp_min(1e-30)), yt).item(),
        "forget/size": float(len(yf)),
        "retain/size": float(len(yr)),
    }
    shadow_in, shadow_out = (pr[pos], yr[pos]), (pt[nonmember_pick], yt[nonmember_pick])
    for kind in FEATURES:
        m[f"mia/{kind}"] = mia_efficacy(shadow_in, shadow_out, (pf, yf), kind, mia_solver)
    m["MIA"] = m["mia/confidence"]
    for kind in THRESHOLD_SCORES:  # the attack's strength on the shadow data, as Carlini et al. 2022 report it
        m.update({f"mia/{kind}_{k}": v for k, v in threshold_attack(shadow_in, shadow_out, kind).items()})
    m[ADDITIONAL_MIA] = forget_vs_test((pf, yf), (pt, yt), seed)
    return m


PREDICTION_SETS = ("forget", "test")


def predictions(probs: Outputs, data, split) -> dict[str, Tensor]:
    """What the figures need per sample of D_f and of the evaluation set, in compact dtypes: `<set>_pred` (int16
    class), `<set>_loss` (float32: memorised samples have losses far below float16's normal range),
    `<set>_prob` (float16 true-class probability, in [0, 1])."""
    out = {}
    for name in PREDICTION_SETS:
        p, y = getattr(probs, name), (data.y_train[split.forget] if name == "forget" else data.y_test[split.test])
        out[f"{name}_pred"] = p.argmax(1).to(torch.int16).cpu()
        out[f"{name}_loss"] = per_sample_loss(p, y).float().cpu()
        out[f"{name}_prob"] = p.gather(1, y.view(-1, 1)).squeeze(1).to(torch.float16).cpu()
    return out


def prediction_labels(data, split) -> dict[str, Tensor]:
    """The part of predictions.npz shared by every model: true classes (int16) and sample indices (int32: into
    D_tr for D_f, into the evaluation set for test), so runs can be matched sample by sample."""
    return {"forget_true": data.y_train[split.forget].to(torch.int16).cpu(),
            "forget_index": split.forget.to(torch.int32).cpu(),
            "test_true": data.y_test[split.test].to(torch.int16).cpu(),
            "test_index": split.test.to(torch.int32).cpu(),
            "num_classes": torch.tensor(int(data.num_classes), dtype=torch.int16)}


def original_train_accuracy(m: dict[str, float]) -> float | None:
    """Accuracy (%) of the original model on its whole training set D_f + D_r, from a run's metrics (`original/UA`,
    `original/RA` and the split sizes); None when they are absent."""
    keys = ("original/UA", "original/RA", "forget/size", "retain/size")
    if not all(k in m for k in keys):
        return None
    f, r = m["forget/size"], m["retain/size"]
    return ((100.0 - m["original/UA"]) * f + m["original/RA"] * r) / (f + r)


def regime_note(metrics: dict[str, float], threshold: float) -> str | None:
    """One line when the original model does not fit its training set (train accuracy below `threshold` %):
    the paper's effect needs one that does, so the run's numbers are outside its regime."""
    acc = original_train_accuracy(metrics)
    if acc is None or acc >= threshold:
        return None
    return (f"outside the paper's regime: the original model fits only {acc:.1f}% of its training set (below "
            f"min_train_acc={threshold:g}); unlearning numbers here do not measure what the paper's tables do")


def summarize(m: dict[str, float], retrain: dict[str, float]) -> dict[str, float]:
    """Add avg_gap (mean |m - m_retrain| over UA, MIA, RA, TA) and sum (UA + MIA + RA + TA)."""
    m = dict(m)
    m["avg_gap"] = float(np.mean([abs(m[k] - retrain[k]) for k in GAP_KEYS]))
    m["sum"] = float(sum(m[k] for k in GAP_KEYS))
    return m


def score(rows: dict[str, tuple[dict[str, float], float]]) -> dict[str, float]:
    """All metrics of the run from `{"original"|"retrain"|"unlearned": (metrics, seconds)}`: RTE from the
    seconds, avg_gap and sum against Retrain; the references' keys prefixed `original/` and `retrain/`."""
    ref = rows["retrain"][0]
    out = {}
    for name, (m, seconds) in rows.items():
        m = summarize({**m, "RTE_s": seconds, "RTE_min": seconds / 60}, ref)
        out.update(m if name == "unlearned" else {f"{name}/{k}": v for k, v in m.items()})
    return out
