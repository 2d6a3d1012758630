"""Forgetting paradigms: which training samples form D_f, and which test samples measure TA.

Splits depend only on the data, the paradigm and `seed`, so every method of a sweep sees the same D_f.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from unlearn.data import Data


@dataclass
class Split:
    forget: Tensor  # sorted indices into the training set (D_f)
    retain: Tensor  # sorted indices into the training set (D_r = D_tr minus D_f)
    test: Tensor  # indices into the test set used for TA and as MIA non-members

    def to(self, device) -> "Split":
        return Split(self.forget.to(device), self.retain.to(device), self.test.to(device))

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for t in (self.forget, self.retain, self.test):
            h.update(t.cpu().numpy().astype(np.int64).tobytes()); h.update(b"|")
        return h.hexdigest()[:16]


def _check_fraction(fraction: float) -> float:
    if not 0 < fraction < 1:
        raise ValueError(f"paradigm.forget_fraction={fraction} must be in (0, 1)")
    return fraction


def _check_class(c: int, k: int) -> int:
    if not (isinstance(c, int) and 0 <= c < k):
        raise ValueError(f"paradigm.forget_class={c} is outside [0, {k}) for this data set")
    return c


class Paradigm:
    """Base: `split(data, seed)` returns a `Split`; `labels` says whether training uses coarse labels."""

    labels = "fine"

    def split(self, data: Data, seed: int) -> Split:
        forget = torch.as_tensor(np.sort(self.forget_indices(data, np.random.default_rng(seed))), dtype=torch.long)
        if len(forget) == 0:
            raise ValueError(f"{type(self).__name__}: the forget set is empty for this data set "
                             f"and configuration ({vars(self)}); choose a larger fraction or another class")
        mask = torch.ones(len(data.y_train), dtype=torch.bool)
        mask[forget] = False
        retain = torch.nonzero(mask).flatten()
        if len(retain) == 0:
            raise ValueError(f"{type(self).__name__}: the forget set is all of D_tr ({len(forget)} samples), so "
                             f"D_r is empty and nothing could be retained or retrained ({vars(self)}); forget less")
        test = self.test_indices(data)
        if len(test) == 0:
            raise ValueError(f"{type(self).__name__}: no test samples remain for TA ({vars(self)})")
        return Split(forget, retain, test)

    def forget_indices(self, data: Data, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def test_indices(self, data: Data) -> Tensor:
        return torch.arange(len(data.y_test))


class Classwise(Paradigm):
    """Forget every training sample of one class; TA is measured on the test set without it."""

    def __init__(self, forget_class: int = 0):
        self.forget_class = forget_class

    def forget_indices(self, data, rng):
        c = _check_class(self.forget_class, data.num_classes)
        return np.flatnonzero(data.y_train.cpu().numpy() == c)

    def test_indices(self, data):
        return torch.nonzero(data.y_test.cpu() != self.forget_class).flatten()


class Random(Paradigm):
    """Forget `forget_fraction` of every class (stratified, so every class is represented)."""

    def __init__(self, forget_fraction: float = 0.1):
        self.forget_fraction = _check_fraction(forget_fraction)

    def forget_indices(self, data, rng):
        y = data.y_train.cpu().numpy()
        picks = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            picks.append(rng.choice(idx, size=int(round(self.forget_fraction * len(idx))), replace=False))
        return np.concatenate(picks)


class RandomInClass(Paradigm):
    """Forget `forget_fraction` of the samples of class `forget_class`; the test set is unchanged."""

    def __init__(self, forget_class: int = 0, forget_fraction: float = 0.1):
        self.forget_class = forget_class
        self.forget_fraction = _check_fraction(forget_fraction)

    def forget_indices(self, data, rng):
        c = _check_class(self.forget_class, data.num_classes)
        idx = np.flatnonzero(data.y_train.cpu().numpy() == c)
        return rng.choice(idx, size=int(round(self.forget_fraction * len(idx))), replace=False)


class Group(Paradigm):
    """Train on superclasses and forget whole subgroups (a fine class inside its superclass, or identities).

    D_f = every training sample whose group id is `forget_group` (an int or a list), or, when
    `forget_group_fraction` is set, a random fraction of all groups. The test set is unchanged.
    """

    labels = "coarse"

    def __init__(self, forget_group: int | list[int] | None = 0, forget_group_fraction: float | None = None):
        if forget_group is None and forget_group_fraction is None:
            raise ValueError("paradigm: set paradigm.forget_group or paradigm.forget_group_fraction")
        self.forget_group = forget_group
        self.forget_group_fraction = None if forget_group_fraction is None else _check_fraction(forget_group_fraction)

    def forget_indices(self, data, rng):
        if data.group_train is None:
            raise ValueError(f"paradigm=group needs group labels; dataset {data.name!r} has none")
        groups = data.group_train.cpu().numpy()
        present = np.unique(groups)
        if self.forget_group_fraction is not None:
            chosen = rng.choice(present, size=max(1, int(round(self.forget_group_fraction * len(present)))),
                                replace=False)
        else:
            chosen = np.atleast_1d(np.asarray(self.forget_group))
            bad = [int(g) for g in chosen if g not in present]
            if bad:
                raise ValueError(f"paradigm.forget_group={self.forget_group}: groups {bad} do not exist; "
                                 f"allowed group ids are {int(present.min())}..{int(present.max())}")
        return np.flatnonzero(np.isin(groups, chosen))
