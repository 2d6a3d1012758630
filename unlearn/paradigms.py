"""Forgetting paradigms: which training samples form D_f, and which test samples measure TA.

Splits depend only on the data, the paradigm and `seed`, so every method of a sweep sees the same D_f.
"""
from __future__ import annotations

import difflib
import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from unlearn.checks import finite
from unlearn.data import Data

log = logging.getLogger("unlearn")


@dataclass
class Split:
    forget: Tensor  # sorted indices into the training set (D_f)
    retain: Tensor  # sorted indices into the training set (D_r = D_tr minus D_f)
    test: Tensor  # indices into the test set used for TA and as MIA non-members
    info: dict = field(default_factory=dict)  # what was drawn for this seed, e.g. {"forget_class": 3}

    def to(self, device) -> "Split":
        return Split(self.forget.to(device), self.retain.to(device), self.test.to(device), self.info)

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for t in (self.forget, self.retain, self.test):
            h.update(t.cpu().numpy().astype(np.int64).tobytes()); h.update(b"|")
        return h.hexdigest()[:16]


RANDOM = "random"  # draw the class / group from the run's seed


def _check_fraction(fraction: float, key: str = "forget_fraction") -> float:
    if not (finite(fraction) and 0 < fraction < 1):
        raise ValueError(f"{key}={fraction!r} is invalid; allowed: a number in (0, 1)")
    return fraction


def _pick_class(c: int | str, k: int, rng: np.random.Generator, names: list[str] = ()) -> int:
    """`forget_class` as given (a class id, or a class name of the data set), or drawn from the run's seed when
    it is "random" (the paper: "we select the class randomly"). Logs the id -> name map it chose from."""
    if c == RANDOM:
        chosen = int(rng.integers(k))
    elif isinstance(c, int) and not isinstance(c, bool) and 0 <= c < k:
        chosen = c
    elif isinstance(c, str) and c in names:
        chosen = list(names).index(c)
    else:
        near = difflib.get_close_matches(str(c), [str(n) for n in names], n=3)
        raise ValueError(f"paradigm.forget_class={c!r} is invalid; allowed: an integer in [0, {k}) for this data set "
                         f"(a class id), " + (f"a class name ({_shown(names)}), " if names else "")
                         + f"or {RANDOM!r} (drawn per seed)" + (f"; did you mean {', '.join(map(repr, near))}?"
                                                                 if near else ""))
    named = len(names) == k and list(names) != [str(i) for i in range(k)]  # digits' names are their ids
    log.info("forget_class=%s: class %d%s", c, chosen,
             f" ({names[chosen]}); classes: {class_map(names)}" if named else "")
    return chosen


def _shown(names, limit: int = 30) -> str:
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f", ... ({len(names)} names)" if len(names) > limit else "")


def class_map(names: list[str], limit: int = 20) -> str:
    """`0 airplane, 1 automobile, ...` on one line; past `limit` classes the first and last few."""
    pairs = [f"{i} {n}" for i, n in enumerate(names)]
    return ", ".join(pairs if len(pairs) <= limit else [*pairs[:limit - 3], "...", *pairs[-2:]])


class Paradigm:
    """Base: `split(data, seed)` returns a `Split`; `labels` says whether training uses coarse labels."""

    labels = "fine"

    def split(self, data: Data, seed: int) -> Split:
        rng = np.random.default_rng(seed)
        choice = self.choose(data, np.random.default_rng([seed, 1]))  # its own stream: D_f draws stay as before
        forget = torch.as_tensor(np.sort(self.forget_indices(data, rng, choice)), dtype=torch.long)
        if len(forget) == 0:
            raise ValueError(f"{type(self).__name__}: the forget set is empty for this data set "
                             f"and configuration ({vars(self)}); choose a larger fraction or another class")
        mask = torch.ones(len(data.y_train), dtype=torch.bool)
        mask[forget] = False
        retain = torch.nonzero(mask).flatten()
        if len(retain) == 0:
            raise ValueError(f"{type(self).__name__}: the forget set is all of D_tr ({len(forget)} samples), so "
                             f"D_r is empty and nothing could be retained or retrained ({vars(self)}); forget less")
        test = self.test_indices(data, choice)
        if len(test) == 0:
            raise ValueError(f"{type(self).__name__}: no test samples remain for TA ({vars(self)})")
        return Split(forget, retain, test, choice)

    def choose(self, data: Data, rng: np.random.Generator) -> dict:
        """What this seed forgets when the config leaves it to chance (a class, a group); {} otherwise."""
        return {}

    def forget_indices(self, data: Data, rng: np.random.Generator, choice: dict) -> np.ndarray:
        raise NotImplementedError

    def test_indices(self, data: Data, choice: dict) -> Tensor:
        return torch.arange(len(data.y_test))


class Classwise(Paradigm):
    """Forget every training sample of one class; TA is measured on the test set without it."""

    def __init__(self, forget_class: int | str):
        self.forget_class = forget_class  # a class id, a class name of the data set, or "random"

    def choose(self, data, rng):
        return {"forget_class": _pick_class(self.forget_class, data.num_classes, rng, data.classes)}

    def forget_indices(self, data, rng, choice):
        return np.flatnonzero(data.y_train.cpu().numpy() == choice["forget_class"])

    def test_indices(self, data, choice):
        return torch.nonzero(data.y_test.cpu() != choice["forget_class"]).flatten()


class Random(Paradigm):
    """Forget `forget_fraction` of every class (stratified, so every class is represented)."""

    def __init__(self, forget_fraction: float):
        self.forget_fraction = _check_fraction(forget_fraction)

    def forget_indices(self, data, rng, choice):
        y = data.y_train.cpu().numpy()
        picks = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            picks.append(rng.choice(idx, size=int(round(self.forget_fraction * len(idx))), replace=False))
        return np.concatenate(picks)


class RandomInClass(Paradigm):
    """Forget `forget_fraction` of the samples of class `forget_class`; the test set is unchanged."""

    def __init__(self, forget_class: int | str, forget_fraction: float):
        self.forget_class = forget_class
        self.forget_fraction = _check_fraction(forget_fraction)

    def choose(self, data, rng):
        return {"forget_class": _pick_class(self.forget_class, data.num_classes, rng, data.classes)}

    def forget_indices(self, data, rng, choice):
        idx = np.flatnonzero(data.y_train.cpu().numpy() == choice["forget_class"])
        return rng.choice(idx, size=int(round(self.forget_fraction * len(idx))), replace=False)


class Group(Paradigm):
    """Train on superclasses and forget whole subgroups (a fine class inside its superclass, or identities).

    D_f = every training sample whose group id is `forget_group`: an int or a list, "random" (one group
    drawn per seed: paper Table 3, one subclass of one superclass) or "one_per_superclass" (one group of
    every superclass drawn per seed: Table 9); or, when `forget_group_fraction` is set, a random fraction of
    all groups (identities, Table 4). The test set is unchanged.
    """

    labels = "coarse"
    DRAWS = (RANDOM, "one_per_superclass")

    def __init__(self, forget_group: int | list[int] | str | None, forget_group_fraction: float | None):
        if forget_group is None and forget_group_fraction is None:
            raise ValueError("paradigm: set paradigm.forget_group or paradigm.forget_group_fraction")
        if isinstance(forget_group, str) and forget_group not in self.DRAWS:
            raise ValueError(f"forget_group={forget_group!r} is invalid; allowed: a group id, a list of ids, "
                             f"or one of {self.DRAWS}")
        self.forget_group = forget_group
        self.forget_group_fraction = (None if forget_group_fraction is None
                                      else _check_fraction(forget_group_fraction, "forget_group_fraction"))

    def choose(self, data, rng):
        if data.group_train is None:
            raise ValueError(f"paradigm=group needs group labels; dataset {data.name!r} has none")
        groups, coarse = data.group_train.cpu().numpy(), data.y_train.cpu().numpy()
        present = np.unique(groups)
        if self.forget_group_fraction is not None:
            chosen = rng.choice(present, size=max(1, int(round(self.forget_group_fraction * len(present)))),
                                replace=False)
        elif self.forget_group == RANDOM:
            chosen = rng.choice(present, size=1)
        elif self.forget_group == "one_per_superclass":
            chosen = np.array([rng.choice(np.unique(groups[coarse == c])) for c in np.unique(coarse)])
        else:
            chosen = np.atleast_1d(np.asarray(self.forget_group))
            bad = [int(g) for g in chosen if g not in present]
            if bad:
                raise ValueError(f"paradigm.forget_group={self.forget_group}: groups {bad} do not exist; "
                                 f"allowed group ids are {int(present.min())}..{int(present.max())}")
        return {"forget_group": sorted(int(g) for g in chosen)}

    def forget_indices(self, data, rng, choice):
        return np.flatnonzero(np.isin(data.group_train.cpu().numpy(), choice["forget_group"]))
