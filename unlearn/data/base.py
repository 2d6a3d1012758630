"""The in-memory data set every method works on: train/test tensors plus label metadata."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from unlearn.data.lazy import LazyImages


@dataclass
class Data:
    """Train/test tensors kept whole in memory (and on the device) so batches are index lookups.

    `x_*` are float inputs or uint8 images (normalised on the fly by `prepare`), or a `LazyImages`
    store for data too large for memory (indexing it stays lazy; `prepare` decodes the batch);
    `y_*` are the labels the model is trained on. `coarse_of` maps a fine label to its superclass
    (named in `coarse_classes`); `group_*` hold subgroup ids (fine labels after `to_coarse`, or
    identities) for group forgetting.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    classes: list[str] = field(default_factory=list)
    coarse_of: Tensor | None = None  # [num_classes] fine label -> superclass id
    coarse_classes: list[str] = field(default_factory=list)  # superclass names, by superclass id
    group_train: Tensor | None = None  # [n_train] subgroup id per training sample
    group_test: Tensor | None = None
    mean: tuple[float, ...] | None = None  # per-channel normalisation for uint8 images
    std: tuple[float, ...] | None = None
    augment: bool = False  # random crop (pad `crop_pad`) + horizontal flip on training batches (a LazyImages
    # store with random_resized: its random resized crop + flip instead)
    crop_pad: int = 4  # pixels of padding around an image before its random crop (0 = flips only)
    crop_mode: str = "zeros"  # how the padding is filled: zeros | reflect (mirrors the border pixels)

    def __post_init__(self):
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError(f"{self.name}: inputs and labels differ in length")
        if not (isinstance(self.crop_pad, int) and not isinstance(self.crop_pad, bool) and self.crop_pad >= 0):
            raise ValueError(f"dataset.crop_pad={self.crop_pad!r} is invalid; allowed: an integer >= 0 (pixels)")
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"dataset.crop_mode={self.crop_mode!r} is invalid; allowed: one of {tuple(CROP_MODES)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def has_groups(self) -> bool:
        return self.coarse_of is not None or self.group_train is not None

    def to_coarse(self) -> "Data":
        """Relabel with superclasses and keep the fine labels as groups (group forgetting)."""
        if self.coarse_of is None:
            if self.group_train is not None:
                return self  # labels are already the superclass; groups are given (e.g. identities)
            raise ValueError(f"paradigm=group forgets a subgroup of a superclass, but dataset={self.name} has no "
                             f"coarse (superclass) labels or groups; allowed: a data set with them (synthetic, "
                             f"cifar100, cifar100_super, celeba, newsgroups20, an imagefolder with superclasses)")
        k = int(self.coarse_of.max()) + 1
        return replace(
            self, y_train=self.coarse_of[self.y_train], y_test=self.coarse_of[self.y_test],
            group_train=self.y_train, group_test=self.y_test, num_classes=k,
            classes=self.coarse_classes or [f"super{i}" for i in range(k)], coarse_of=None, coarse_classes=[],
        )

    def take(self, train_idx: Tensor, test_idx: Tensor) -> "Data":
        """The data set restricted to training samples `train_idx` and test samples `test_idx`."""
        pick = lambda t, i: None if t is None else t[i]  # noqa: E731
        return replace(self, x_train=self.x_train[train_idx], y_train=self.y_train[train_idx],
                       x_test=self.x_test[test_idx], y_test=self.y_test[test_idx],
                       group_train=pick(self.group_train, train_idx), group_test=pick(self.group_test, test_idx))

    def subsample(self, per_class_train: int | None, per_class_test: int | None, seed: int = 0) -> "Data":
        """At most `per_class_*` random samples of every class (null = all), fixed by `seed`: CPU-scale copies."""
        for key, n in (("per_class_train", per_class_train), ("per_class_test", per_class_test)):
            if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
                raise ValueError(f"dataset.{key}={n!r} is invalid; allowed: null (all) or an integer >= 1")
        rng = np.random.default_rng(seed)
        return self.take(_per_class(self.y_train, per_class_train, rng), _per_class(self.y_test, per_class_test, rng))

    def holdout(self, fraction: float, seed: int = 0) -> "Data":
        """A validation split: a stratified `fraction` of every class of D_tr becomes the evaluation set, the rest
        stays D_tr; the test set is left out entirely, so choices made on it never see test data."""
        if not (isinstance(fraction, float) and 0 < fraction < 1):
            raise ValueError(f"eval.validation_fraction={fraction!r} is invalid; allowed: a number in (0, 1)")
        strata = (self.group_train if self.group_train is not None else self.y_train).cpu().numpy()
        rng = np.random.default_rng(seed)
        val = np.sort(np.concatenate([rng.choice(np.flatnonzero(strata == c), size=max(1, round(fraction * n)),
                                                 replace=False)
                                      for c, n in zip(*np.unique(strata, return_counts=True)) if n > 1]))
        keep = np.setdiff1d(np.arange(len(strata)), val)
        val_t, keep_t = torch.as_tensor(val), torch.as_tensor(keep)
        pick = lambda t, i: None if t is None else t[i.to(t.device)]  # noqa: E731
        return replace(self, x_train=pick(self.x_train, keep_t), y_train=pick(self.y_train, keep_t),
                       x_test=pick(self.x_train, val_t), y_test=pick(self.y_train, val_t),
                       group_train=pick(self.group_train, keep_t), group_test=pick(self.group_train, val_t))

    def to(self, device: torch.device) -> "Data":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(self, x_train=move(self.x_train), y_train=move(self.y_train),
                       x_test=move(self.x_test), y_test=move(self.y_test),
                       group_train=move(self.group_train), group_test=move(self.group_test))

    def prepare(self, x: Tensor, train: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Turn a stored batch into model input: uint8 -> normalised float, plus augmentation."""
        if isinstance(x, LazyImages):  # decode the batch's files (worker threads or the GPU) onto the store's device
            boxed = train and self.augment and x.random_resized  # the store draws the crops and flips itself
            x = x.load(train=boxed, generator=generator)
            train = train and not boxed
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
            if self.mean is not None:
                mean, std = _on_device(tuple(self.mean), tuple(self.std), x.device)
                x = (x - mean) / std
        if train and self.augment:
            x = crop_flip(x, generator, self.crop_pad, self.crop_mode)
        return x


def _per_class(y: Tensor, n: int | None, rng: np.random.Generator) -> Tensor:
    """Sorted indices of at most `n` random samples of every label in `y` (all when n is None)."""
    if n is None:
        return torch.arange(len(y))
    labels = y.cpu().numpy()
    keep = [rng.choice(np.flatnonzero(labels == c), size=min(n, int((labels == c).sum())), replace=False)
            for c in np.unique(labels)]
    return torch.as_tensor(np.sort(np.concatenate(keep)))


@functools.lru_cache(maxsize=16)
def _on_device(mean: tuple, std: tuple, device: torch.device) -> tuple[Tensor, Tensor]:
    """Normalisation constants [1, C, 1, 1] made once per device: a fresh host-to-device copy every batch would
    wait for the GPU's queue to drain (a sync per step)."""
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    """A CPU tensor on `device` without a sync: a copy from pinned memory is queued, not waited for (a copy
    from pageable memory drains the stream first)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


CROP_MODES = {"zeros": "constant", "reflect": "reflect"}  # dataset.crop_mode -> torch.nn.functional.pad's mode


def crop_flip(x: Tensor, generator: torch.Generator | None = None, pad: int = 4, mode: str = "zeros") -> Tensor:
    """Random crop of the image padded by `pad` pixels (`mode`: zeros | reflect) and horizontal flip, batch-wise.

    The offsets and flips are drawn on the CPU from `generator` (the same numbers on every device, so a seed
    means the same augmentation on CPU and GPU) and sent in one asynchronous copy.
    """
    n, _, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode=CROP_MODES[mode])
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu")
    coin = torch.rand(n, generator=generator, device="cpu")
    dx, dy, coin = _to_device(torch.stack([dx.float(), dy.float(), coin]), dev)  # offsets <= 2 pad: exact in fp32
    dx, dy = dx.long(), dy.long()
    rows = (dy.view(n, 1) + torch.arange(h, device=dev).view(1, h))  # [n, h]
    cols = (dx.view(n, 1) + torch.arange(w, device=dev).view(1, w))  # [n, w]
    flip = coin < 0.5
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    idx_n = torch.arange(n, device=dev).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()
