"""Membership inference as an unlearning metric: MIA-efficacy (Jia et al. 2023, following Song & Mittal 2021).

An SVM is fit on shadow data (members: retain samples, non-members: test samples) using one feature
of the model's softmax output; MIA-efficacy is the percentage of D_f it calls non-member.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.svm import SVC
from torch import Tensor

FEATURES = ("confidence", "entropy", "m_entropy", "prob", "correctness")
_EPS = 1e-30


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy (nats) of each row of `probs`."""
    return -(probs * torch.log(probs.clamp_min(_EPS))).sum(-1)


def modified_entropy(probs: Tensor, y: Tensor) -> Tensor:
    """Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)   (Song & Mittal 2021, Eq. 7)."""
    py = probs.gather(1, y.view(-1, 1)).squeeze(1)
    log_1mp = torch.log((1 - probs).clamp_min(_EPS))
    true_term = -(1 - py) * torch.log(py.clamp_min(_EPS))
    others = -(probs * log_1mp).sum(-1) + py * log_1mp.gather(1, y.view(-1, 1)).squeeze(1)
    return true_term + others


def features(probs: Tensor, y: Tensor, kind: str) -> np.ndarray:
    if kind == "confidence":
        f = probs.gather(1, y.view(-1, 1))
    elif kind == "entropy":
        f = entropy(probs).view(-1, 1)
    elif kind == "m_entropy":
        f = modified_entropy(probs, y).view(-1, 1)
    elif kind == "prob":
        f = probs
    else:
        raise ValueError(f"MIA feature {kind!r}; allowed: {FEATURES}")
    return f.double().cpu().numpy()


def mia_efficacy(member: tuple[Tensor, Tensor], nonmember: tuple[Tensor, Tensor],
                 target: tuple[Tensor, Tensor], kind: str = "confidence") -> float:
    """Percent of `target` samples (probs, labels) that an SVC trained on shadow data calls non-member.

    `correctness` needs no fit: a sample is called a member when the model classifies it correctly.
    """
    if kind == "correctness":
        probs, y = target
        return 100.0 * (probs.argmax(1) != y).double().mean().item()
    x = np.concatenate([features(*member, kind), features(*nonmember, kind)])
    label = np.concatenate([np.ones(len(member[1])), np.zeros(len(nonmember[1]))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, label)
    pred = clf.predict(features(*target, kind))
    return 100.0 * float(1 - pred.mean())
