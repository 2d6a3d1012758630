"""UA, RA, TA, MIA-efficacy, entropy H and the summary scores (Avg. Gap to Retrain, Sum)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.mia import FEATURES, entropy, mia_efficacy

HEADLINE = ("UA", "MIA", "RA", "TA", "H", "RTE_min", "avg_gap", "sum")
GAP_KEYS = ("UA", "MIA", "RA", "TA")


@torch.no_grad()
def predict_probs(model: nn.Module, data, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Softmax outputs in eval mode, without augmentation."""
    model.eval()
    out = [F.softmax(model(data.prepare(x[i:i + batch_size])).float(), -1) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


def accuracy(probs: Tensor, y: Tensor) -> float:
    return 100.0 * (probs.argmax(1) == y).double().mean().item()


def shadow_members(retain: Tensor, n: int, seed: int) -> Tensor:
    """A fixed random subset of D_r of size n (MIA shadow members), the same for every model of a run."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(retain), size=min(n, len(retain)), replace=False)
    return retain[torch.as_tensor(np.sort(pick), device=retain.device)]


def evaluate(model: nn.Module, data, split, seed: int, batch_size: int = 1024,
             mia_shadow_size: int | None = None) -> dict[str, float]:
    """All per-model metrics: headline UA/MIA/RA/TA/H and finer `split/kind` and `mia/feature` keys."""
    yf, yr, yt = data.y_train[split.forget], data.y_train[split.retain], data.y_test[split.test]
    pf = predict_probs(model, data, data.x_train[split.forget], batch_size)
    pr = predict_probs(model, data, data.x_train[split.retain], batch_size)
    pt = predict_probs(model, data, data.x_test[split.test], batch_size)
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
    for kind in FEATURES:
        m[f"mia/{kind}"] = mia_efficacy((pr[pos], yr[pos]), (pt[nonmember_pick], yt[nonmember_pick]),
                                        (pf, yf), kind)
    m["MIA"] = m["mia/confidence"]
    return m


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
