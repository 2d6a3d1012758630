"""CIFAR-10 and CIFAR-100 (fine labels, with the official 20 superclasses) read through torchvision."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path
from torchvision import datasets

from unlearn.data.base import Data
from unlearn.data.download import fetch
from unlearn.data.store import cached_images, fingerprint, require_files

# The official CIFAR-100 fine -> coarse map (fine label i belongs to superclass CIFAR100_COARSE[i]), as
# stored in the `coarse_labels` of the dataset's pickles; used to validate the files we read.
CIFAR100_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


def _files(cls) -> list[str]:
    return [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]


def _locate(cls, name: str, root: str, download: bool) -> Path:
    """Check the extracted batches are in `root/<base_folder>`, downloading them only when asked."""
    folder = Path(to_absolute_path(root)) / cls.base_folder
    paths = [folder / f for f in _files(cls)]
    if download and not all(p.exists() for p in paths):
        fetch(name, cls.url, folder.parent, lambda: cls(str(folder.parent), train=True, download=True))
    require_files(name, folder.parent, paths,
                  f"Expected the extracted python version ({cls.filename}) at {folder}/. Get it with "
                  f"dataset.download=true (fetches {cls.url} into root), or download and extract it there "
                  f"yourself, or point dataset.root at the folder that contains {cls.base_folder}/.")
    return folder


def _read(cls, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    ds = cls(str(root), train=train, download=False)  # torchvision verifies every file's MD5 here
    x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # [N, 32, 32, 3] -> NCHW uint8
    return x, torch.as_tensor(ds.targets, dtype=torch.long), list(ds.classes)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def load_cifar10(root: str, download: bool = False, cache_dir: str | None = None, augment: bool = True,
                 mean=CIFAR10_STATS[0], std=CIFAR10_STATS[1], per_class_train: int | None = None, per_class_test: int | None = None, subsample_seed: int = 0) -> Data:
    """CIFAR-10: 50,000 / 10,000 colour 32x32 images of 10 classes (Krizhevsky 2009)."""
    folder = _locate(datasets.CIFAR10, "cifar10", root, download)

    def build():
        x_tr, y_tr, classes = _read(datasets.CIFAR10, folder.parent, True)
        x_te, y_te, _ = _read(datasets.CIFAR10, folder.parent, False)
        return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te, "classes": classes}

    key = {"source": "cifar10", "root": str(folder), "files": fingerprint([folder / f for f in _files(datasets.CIFAR10)])}
    d = cached_images(cache_dir, key, build)
    return Data("cifar10", d["x_train"], d["y_train"], d["x_test"], d["y_test"], num_classes=10,
                classes=d["classes"], mean=tuple(mean), std=tuple(std), augment=augment).subsample(
        per_class_train, per_class_test, subsample_seed)


def fine_to_coarse(fine: np.ndarray, coarse: np.ndarray, where: str) -> np.ndarray:
    """The fine -> coarse map implied by paired labels; it must be a function and agree with the official map."""
    out = np.full(100, -1)
    for f, c in set(zip(fine.tolist(), coarse.tolist())):
        if out[f] not in (-1, c):
            raise ValueError(f"{where}: fine class {f} appears with two superclasses ({out[f]} and {c})")
        out[f] = c
    bad = [f for f in range(100) if out[f] not in (-1, CIFAR100_COARSE[f])]
    if bad:
        raise ValueError(f"{where}: coarse_labels disagree with the official CIFAR-100 map at fine classes {bad}")
    return out


def load_cifar100(root: str, download: bool = False, cache_dir: str | None = None, augment: bool = True,
                  mean=CIFAR100_STATS[0], std=CIFAR100_STATS[1], coarse: bool = False,
                  per_class_train: int | None = None, per_class_test: int | None = None, subsample_seed: int = 0) -> Data:
    """CIFAR-100 with fine labels and the official 20 superclasses (`coarse_of`, for paradigm=group).

    `coarse=True` (cifar100_super) trains on the 20 superclasses and keeps the fine labels as groups.
    """
    cls = datasets.CIFAR100
    folder = _locate(cls, "cifar100", root, download)

    def build():
        x_tr, y_tr, classes = _read(cls, folder.parent, True)
        x_te, y_te, _ = _read(cls, folder.parent, False)
        # torchvision keeps only fine labels; the superclasses come from the same pickles
        c_tr = np.asarray(_unpickle(folder / "train")["coarse_labels"])
        c_te = np.asarray(_unpickle(folder / "test")["coarse_labels"])
        fine_to_coarse(np.concatenate([y_tr.numpy(), y_te.numpy()]), np.concatenate([c_tr, c_te]), str(folder))
        names = list(_unpickle(folder / "meta")["coarse_label_names"])
        return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te, "classes": classes,
                "coarse_classes": names}

    key = {"source": "cifar100", "root": str(folder), "files": fingerprint([folder / f for f in _files(cls)])}
    d = cached_images(cache_dir, key, build)
    data = Data("cifar100", d["x_train"], d["y_train"], d["x_test"], d["y_test"], num_classes=100,
                classes=d["classes"], coarse_of=torch.tensor(CIFAR100_COARSE), coarse_classes=d["coarse_classes"],
                mean=tuple(mean), std=tuple(std), augment=augment).subsample(
        per_class_train, per_class_test, subsample_seed)  # per fine class
    if coarse:
        data = data.to_coarse()
        data.name = "cifar100_super"
    return data
