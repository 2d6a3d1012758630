"""SVHN (Netzer et al. 2011), cropped 32x32 digits, read from torchvision's .mat files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path
from torchvision import datasets

from unlearn.data.base import Data
from unlearn.data.download import fetch
from unlearn.data.store import cached_images, fingerprint, require_files

SVHN_STATS = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


def load_svhn(root: str, download: bool = False, cache_dir: str | None = None, augment: bool = False,
              mean=SVHN_STATS[0], std=SVHN_STATS[1], per_class_train: int | None = None, per_class_test: int | None = None, subsample_seed: int = 0) -> Data:
    """73,257 train / 26,032 test digits; label 10 of the files is digit 0 (torchvision's convention).

    No flip augmentation by default: mirrored digits are other digits.
    """
    folder = Path(to_absolute_path(root))
    splits = ("train", "test")
    paths = [folder / datasets.SVHN.split_list[s][1] for s in splits]
    for s, p in zip(splits, paths):
        if download and not p.exists():
            fetch("svhn", datasets.SVHN.split_list[s][0], folder,
                  lambda s=s: datasets.SVHN(str(folder), split=s, download=True))
    require_files("svhn", folder, paths,
                  "Expected torchvision's SVHN files train_32x32.mat and test_32x32.mat directly in root. Get them "
                  "with dataset.download=true, or from http://ufldl.stanford.edu/housenumbers/ (format 2).")

    def build():
        out = {}
        for s in splits:
            ds = datasets.SVHN(str(folder), split=s, download=False)  # verifies the MD5 of the .mat file
            out[f"x_{s}"] = torch.from_numpy(np.ascontiguousarray(ds.data))  # already [N, 3, 32, 32] uint8
            out[f"y_{s}"] = torch.as_tensor(ds.labels, dtype=torch.long)
        return out

    d = cached_images(cache_dir, {"source": "svhn", "root": str(folder), "files": fingerprint(paths)}, build)
    return Data("svhn", d["x_train"], d["y_train"], d["x_test"], d["y_test"], num_classes=10,
                classes=[str(i) for i in range(10)], mean=tuple(mean), std=tuple(std), augment=augment).subsample(
        per_class_train, per_class_test, subsample_seed)
