"""Any image classification data set that Hugging Face `datasets` can load without the network: a hub name already
in the local cache (`HF_DATASETS_OFFLINE=1`, as the Makefile sets), a folder of parquet / arrow files, or a folder
written by `Dataset.save_to_disk`. Images are decoded once to uint8 tensors and cached like an image folder's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path

from unlearn.data.base import Data
from unlearn.data.imagefolder import IMAGENET_STATS, read_superclasses
from unlearn.data.store import MissingDataError, cached_images, load_image

HOW = ("Give a hub name that is in the local Hugging Face cache (load it once online with `datasets.load_dataset`), "
       "a folder of parquet/arrow files, or a folder written by `Dataset.save_to_disk`")


def _open(name: str, revision: str | None):
    """The DatasetDict behind `name`, without the network (offline mode is the caller's environment)."""
    import datasets
    local = Path(to_absolute_path(name))
    try:
        if (local / "dataset_dict.json").is_file() or (local / "dataset_info.json").is_file():
            return datasets.load_from_disk(str(local))
        return datasets.load_dataset(str(local) if local.is_dir() else name, revision=revision)
    except (FileNotFoundError, ConnectionError, ValueError, OSError) as e:
        raise MissingDataError(f"dataset.name_or_path={name!r} cannot be loaded here ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}). {HOW}") from None


def _decode(split, image_key: str, image_size: int | None) -> torch.Tensor:
    images = [load_image(im, image_size) for im in split[image_key]]
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise ValueError(f"images of {len(shapes)} sizes {sorted(shapes)[:3]}...; allowed: one size, or set "
                         f"dataset.image_size to resize them")
    return torch.stack(images) if images else torch.zeros(0, 3, 1, 1, dtype=torch.uint8)


def load_hf(name_or_path: str, image_key: str = "image", label_key: str = "label", train_split: str = "train",
            test_split: str = "test", revision: str | None = None, image_size: int | None = None,
            per_class_train: int | None = None, per_class_test: int | None = None, subsample_seed: int = 0,
            superclasses=None, cache_dir: str | None = None, augment: bool = True, crop_pad: int = 4,
            crop_mode: str = "zeros", mean=IMAGENET_STATS[0],
            std=IMAGENET_STATS[1]) -> Data:
    """`name_or_path`'s `train_split` and `test_split`: images in column `image_key`, integer labels in `label_key` (class
    names from its ClassLabel feature when it has one); `per_class_*` keep at most that many random samples."""
    name = name_or_path
    dd = _open(name, revision)
    for key, split in (("train_split", train_split), ("test_split", test_split)):
        if split not in dd:
            raise MissingDataError(f"dataset.{key}={split!r} is not a split of {name}; allowed: {sorted(dd)}")
    train, test = dd[train_split], dd[test_split]
    for key, column in (("image_key", image_key), ("label_key", label_key)):
        if column not in train.column_names:
            raise ValueError(f"dataset.{key}={column!r} is not a column of {name}; allowed: {train.column_names}")
    feature = train.features[label_key]
    names = list(getattr(feature, "names", None) or [])
    rng = np.random.default_rng(subsample_seed)

    def pick(split, n, key):
        labels = np.asarray(split[label_key])
        if n is None:
            return split, labels
        keep = []
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            keep += sorted(rng.choice(idx, size=min(n, len(idx)), replace=False).tolist())
        if not keep:
            raise ValueError(f"dataset.{key}={n!r} leaves no sample")
        keep = sorted(keep)
        return split.select(keep), labels[keep]

    train, y_train = pick(train, per_class_train, "per_class_train")
    test, y_test = pick(test, per_class_test, "per_class_test")
    k = max(int(y_train.max()) + 1 if len(y_train) else 0, len(names))
    if len(y_test) and int(y_test.max()) >= k or min(y_train.min(initial=0), y_test.min(initial=0)) < 0:
        raise ValueError(f"labels in {label_key!r} must be integers in [0, {k}) in both splits")
    classes = names or [str(c) for c in range(k)]
    key = {"source": "hf", "name": name, "revision": revision, "fingerprints": [train._fingerprint, test._fingerprint],
           "image_key": image_key, "image_size": image_size}
    x = cached_images(cache_dir, key, lambda: {"x_train": _decode(train, image_key, image_size),
                                               "x_test": _decode(test, image_key, image_size)})
    coarse = read_superclasses(superclasses, classes)
    return Data(Path(name).name, x["x_train"], torch.as_tensor(y_train, dtype=torch.long), x["x_test"],
                torch.as_tensor(y_test, dtype=torch.long), num_classes=k, classes=classes,
                coarse_of=None if coarse is None else coarse[0], coarse_classes=[] if coarse is None else coarse[1],
                mean=tuple(mean), std=tuple(std), augment=augment, crop_pad=crop_pad, crop_mode=crop_mode)
