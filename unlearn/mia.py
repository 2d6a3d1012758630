"""Membership inference as an unlearning metric.

- MIA-efficacy (Jia et al. 2023, following Song & Mittal 2021): an SVM is fit on shadow data (members: retain
  samples, non-members: test samples) using one feature of the model's softmax output; MIA-efficacy is the
  percentage of D_f it calls non-member.
- Threshold attacks scored as Carlini et al. 2022 ("Membership inference attacks from first principles")
  report them: the ROC AUC and the TPR at 1% FPR over the same shadow members and non-members, for the
  per-sample loss (Yeom et al. 2018) and the label-free confidence, the top softmax probability (Salem et al.
  2019). These measure how much the model still leaks membership in general, not D_f alone.
- The arXiv version's "additional MIA" (its Table 5): how well an adversary tells D_f from the test set.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # scikit-learn (with SciPy, ~1.3 s) loads when an attack is fitted, not when the app starts:
    from sklearn.svm import SVC  # a refused command line answers without it

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


SOLVERS = ("svc", "binned")  # how the attack SVC is fitted: exactly (reference) or on binned shadow data
BINS = 1024  # solver=binned: quantile bins of a 1-D feature (clusters per class for `prob`)


def _binned(x: np.ndarray, label: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, labels, counts): per quantile bin of the 1-D feature and per label, the mean and the count."""
    v = x.ravel()
    edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)))
    key = 2 * np.clip(np.searchsorted(edges, v, side="right") - 1, 0, max(len(edges) - 2, 0)) + label.astype(int)
    count = np.bincount(key, minlength=2 * max(len(edges) - 1, 1))
    total = np.bincount(key, weights=v, minlength=len(count))
    keep = count > 0
    return (total[keep] / count[keep])[:, None], (np.arange(len(count)) % 2)[keep], count[keep].astype(float)


def _clustered(x: np.ndarray, label: np.ndarray, bins: int, seed: int):
    """(points, labels, counts) of k-means clusters of each label's points (multi-dimensional features)."""
    from sklearn.cluster import MiniBatchKMeans
    pts, lab, cnt = [], [], []
    for c in (0, 1):
        xc = x[label == c]
        km = MiniBatchKMeans(n_clusters=min(bins, len(xc)), random_state=seed, n_init=1, batch_size=4096).fit(xc)
        n = np.bincount(km.labels_, minlength=km.n_clusters)
        pts.append(km.cluster_centers_[n > 0]), lab.append(np.full((n > 0).sum(), c)), cnt.append(n[n > 0])
    return np.concatenate(pts), np.concatenate(lab), np.concatenate(cnt).astype(float)


def fit_attack(x: np.ndarray, label: np.ndarray, solver: str = "svc", bins: int = BINS, seed: int = 0) -> SVC:
    """The MIA's RBF SVC (C=3, gamma=1/#features) on shadow features `x` with member labels.

    solver=svc fits every point (libsvm: time grows ~n^2; the reference). solver=binned fits the same SVC on at
    most 2 * `bins` weighted points (a point of weight w is w coincident points, so the only change is moving
    each point to its bin's mean): quantile bins of a 1-D feature, whose width is ~0 where points are dense;
    k-means clusters for the `prob` vector (an approximation: up to ~0.6 points off in our checks). Linear in n
    plus a fixed-size fit.
    """
    from sklearn.svm import SVC
    if solver not in SOLVERS:
        raise ValueError(f"MIA solver {solver!r}; allowed: {SOLVERS}")
    if solver == "svc" or len(x) <= 2 * bins:
        return SVC(C=3, gamma="auto", kernel="rbf").fit(x, label)
    pts, lab, weight = _binned(x, label, bins) if x.shape[1] == 1 else _clustered(x, label, bins, seed)
    return SVC(C=3, gamma="auto", kernel="rbf").fit(pts, lab, sample_weight=weight)


def mia_efficacy(member: tuple[Tensor, Tensor], nonmember: tuple[Tensor, Tensor],
                 target: tuple[Tensor, Tensor], kind: str = "confidence", solver: str = "svc") -> float:
    """Percent of `target` samples (probs, labels) that an SVC trained on shadow data calls non-member.

    `correctness` needs no fit: a sample is called a member when the model classifies it correctly.
    `solver`: see `fit_attack`.
    """
    if kind == "correctness":
        probs, y = target
        return 100.0 * (probs.argmax(1) != y).double().mean().item()
    x = np.concatenate([features(*member, kind), features(*nonmember, kind)])
    label = np.concatenate([np.ones(len(member[1])), np.zeros(len(nonmember[1]))])
    pred = fit_attack(x, label, solver).predict(features(*target, kind))
    return 100.0 * float(1 - pred.mean())


THRESHOLD_SCORES = ("loss", "confidence")  # attack scores of `threshold_attack`
LOW_FPR = 0.01  # the false-positive rate at which the TPR is reported


def per_sample_loss(probs: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of each sample, -log p_y (nats), from softmax outputs."""
    return -torch.log(probs.gather(1, y.view(-1, 1)).squeeze(1).clamp_min(_EPS))


def attack_score(probs: Tensor, y: Tensor, kind: str) -> np.ndarray:
    """Per-sample membership score, higher = more likely a member: minus the loss, or the top softmax
    probability (label-free confidence; not `features(..., "confidence")`, which is p_y and ranks samples
    exactly as the loss does)."""
    if kind == "loss":
        s = -per_sample_loss(probs, y)
    elif kind == "confidence":
        s = probs.max(1).values
    else:
        raise ValueError(f"threshold attack score {kind!r}; allowed: {THRESHOLD_SCORES}")
    return s.double().cpu().numpy()


def threshold_attack(member: tuple[Tensor, Tensor], nonmember: tuple[Tensor, Tensor], kind: str) -> dict[str, float]:
    """AUC and TPR at 1% FPR (both in %) of the attack "member when score >= t" over every threshold t.

    TPR at 1% FPR is the largest TPR whose FPR is <= 1% on the ROC curve (no interpolation), so with fewer than
    100 non-members it is the TPR at zero false positives.
    """
    from sklearn.metrics import roc_auc_score, roc_curve
    s = np.concatenate([attack_score(*member, kind), attack_score(*nonmember, kind)])
    label = np.concatenate([np.ones(len(member[1])), np.zeros(len(nonmember[1]))])
    fpr, tpr, _ = roc_curve(label, s)
    return {"auc": 100.0 * float(roc_auc_score(label, s)), "tpr@1%fpr": 100.0 * float(tpr[fpr <= LOW_FPR].max())}


def forget_vs_test(forget: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], seed: int, folds: int = 5) -> float:
    """The arXiv version's "additional MIA" (its Table 5, A:158), in %: how accurately an adversary tells D_f
    ("seen", positives) from the test set ("unseen", negatives); 50 = indistinguishable.

    The paper's formula and attack were lost from the text; the text describes an accuracy over true positives
    (D_f called seen) and true negatives (test called unseen), and its Figure 7 shows per-sample loss
    histograms. Our choice: a logistic regression on the log of the per-sample loss (a threshold on the loss
    whose side is learnt, so over-forgetting, D_f lossier than test, is detected as well), with balanced
    class weights, scored by balanced accuracy (mean of TPR on D_f and TNR on test, so chance is 50 whatever
    the sizes) under `folds`-fold stratified cross-validation (seeded), so each sample is judged by an attack
    that did not see it.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    x = np.log(np.concatenate([per_sample_loss(*forget).double().cpu().numpy(),
                               per_sample_loss(*test).double().cpu().numpy()]).clip(1e-12, None)).reshape(-1, 1)
    label = np.concatenate([np.ones(len(forget[1])), np.zeros(len(test[1]))]).astype(int)
    folds = min(folds, len(forget[1]), len(test[1]))
    if folds < 2:
        raise ValueError(f"additional MIA needs at least 2 samples in D_f and in the test set; got "
                         f"{len(forget[1])} and {len(test[1])}")
    pred = np.empty_like(label)
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, label):
        clf = LogisticRegression(class_weight="balanced").fit(x[train], label[train])
        pred[held] = clf.predict(x[held])
    return 50.0 * float((pred[label == 1] == 1).mean() + (pred[label == 0] == 0).mean())
