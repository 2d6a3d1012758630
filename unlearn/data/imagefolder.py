"""Any image data set in the ImageFolder layout (`root/train/<class>/*`, `root/test|val/<class>/*`):
ImageNet, the CIFAR-10 JPEG copy, or a user's own, with an optional class -> superclass map."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import yaml
from hydra.utils import to_absolute_path

from unlearn.data.base import Data
from unlearn.data.lazy import LazyImages
from unlearn.data.store import IMAGE_EXTENSIONS, MissingDataError, cached_images, decode_files, fingerprint

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
LAYOUT = "Expected root/train/<class>/<image> and root/test/<class>/<image> (or root/val/<class>/<image>)."


def _list(folder: Path) -> dict[str, list[Path]]:
    found = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
             for d in sorted(folder.iterdir()) if d.is_dir()}
    for path in (p for files in found.values() for p in files):
        try:
            str(path).encode("utf-8")  # its name goes into the cache key and the messages
        except UnicodeEncodeError:
            raise ValueError(f"image file {os.fsencode(path)!r} has a name that is not UTF-8; allowed: UTF-8 file "
                             f"and folder names (rename it, e.g. convmv -f latin1 -t utf8 --notest)") from None
        if not path.is_file():
            what = f"a broken symlink (to {os.readlink(path)})" if path.is_symlink() else "not a file"
            raise ValueError(f"image file {path} is {what}; allowed: image files (fix or remove it)")
    return found


def _subsample(files: list[Path], n: int | None, rng: np.random.Generator, key: str) -> list[Path]:
    if n is None or n >= len(files):
        return files
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"dataset.{key}={n!r} must be null or an integer >= 1 (images per class)")
    return [files[i] for i in np.sort(rng.choice(len(files), size=n, replace=False))]


def read_superclasses(spec: str | Mapping | None, classes: list[str]) -> tuple[torch.Tensor, list[str]] | None:
    """`coarse_of` and superclass names from a {class: superclass} mapping or a YAML/JSON file holding one."""
    if spec is None:
        return None
    if isinstance(spec, str):
        path = Path(to_absolute_path(spec))
        if not path.is_file():
            raise MissingDataError(f"dataset.superclasses={spec!r}: no such file (a YAML/JSON map class -> superclass)")
        spec = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    if not isinstance(spec, Mapping):
        raise ValueError(f"dataset.superclasses must map class name -> superclass name, got {type(spec).__name__}")
    missing = [c for c in classes if c not in spec]
    if missing:
        raise ValueError(f"dataset.superclasses has no superclass for classes {missing[:10]}; "
                         f"every class folder needs one")
    names = sorted({str(spec[c]) for c in classes})
    return torch.tensor([names.index(str(spec[c])) for c in classes]), names


def load_imagefolder(root: str, train_dir: str = "train", test_dir: str | None = None,
                     per_class_train: int | None = None, per_class_test: int | None = None,
                     subsample_seed: int = 0, image_size: int | None = None, superclasses=None,
                     in_memory: bool = True, cache_dir: str | None = None, num_workers: int = 2,
                     augment: bool = True, crop_pad: int = 4, crop_mode: str = "zeros",
                     mean=IMAGENET_STATS[0], std=IMAGENET_STATS[1]) -> Data:
    """Class folders become labels (sorted by name); `per_class_*` keep at most that many random images
    per class; `image_size` resizes the shorter side and centre-crops (null keeps the files' size).

    `in_memory=false` keeps paths only and decodes each batch on demand (`LazyImages`), for ImageNet.
    """
    base = Path(to_absolute_path(root))
    if test_dir is None:
        test_dir = "test" if (base / "test").is_dir() or not (base / "val").is_dir() else "val"
    for sub in (train_dir, test_dir):
        if not (base / sub).is_dir():
            raise MissingDataError(f"dataset {base.name}: folder {base / sub} does not exist. {LAYOUT} "
                                   f"Point dataset.root at such a folder (no download exists for ImageFolder data).")
    train, test = _list(base / train_dir), _list(base / test_dir)
    classes = list(train)
    empty = [c for c, f in train.items() if not f]
    unknown = sorted(set(test) - set(train))
    if not classes or empty or unknown:
        raise MissingDataError(f"dataset {base.name}: incomplete ImageFolder at {base}: classes "
                               f"{classes[:5]}{'...' if len(classes) > 5 else ''}, empty training classes {empty}, "
                               f"test classes without training folder {unknown}. {LAYOUT}")
    rng = np.random.default_rng(subsample_seed)
    picks = {}
    for part, folders, n in (("train", train, per_class_train), ("test", test, per_class_test)):
        files, labels = [], []
        for c, fs in folders.items():
            fs = _subsample(fs, n, rng, f"per_class_{part}")
            files += fs
            labels += [classes.index(c)] * len(fs)
        picks[part] = (files, torch.tensor(labels, dtype=torch.long))
    coarse = read_superclasses(superclasses, classes)
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"dataset.image_size={image_size!r} must be null or a positive integer (pixels)")

    if in_memory:
        def build():
            return {f"x_{p}": decode_files(picks[p][0], image_size, num_workers) for p in picks}
        key = {"source": base.name, "root": str(base), "image_size": image_size,
               **{p: fingerprint(picks[p][0]) for p in picks}}
        x = cached_images(cache_dir, key, build)
    else:
        x = {f"x_{p}": LazyImages(picks[p][0], image_size, num_workers) for p in picks}
    return Data(base.name, x["x_train"], picks["train"][1], x["x_test"], picks["test"][1], num_classes=len(classes),
                classes=classes, coarse_of=None if coarse is None else coarse[0],
                coarse_classes=[] if coarse is None else coarse[1], mean=tuple(mean), std=tuple(std), augment=augment,
                crop_pad=crop_pad, crop_mode=crop_mode)
