"""CelebA (Liu et al. 2015): one binary attribute as the label, identities as groups (paper Table 4)."""
from __future__ import annotations

from pathlib import Path

from hydra.utils import to_absolute_path
from torchvision import datasets

from unlearn.data.base import Data
from unlearn.data.download import fetch
from unlearn.data.store import ToUint8, cached_images, decode_all, fingerprint, require_files

CELEBA_STATS = ((0.5063, 0.4258, 0.3832), (0.3107, 0.2904, 0.2897))
SPLITS = ("train", "valid", "test")


def load_celeba(root: str, download: bool = False, cache_dir: str | None = None, attribute: str = "Smiling",
                image_size: int = 64, test_split: str = "test", augment: bool = True, num_workers: int = 2,
                mean=CELEBA_STATS[0], std=CELEBA_STATS[1], per_class_train: int | None = None, per_class_test: int | None = None, subsample_seed: int = 0) -> Data:
    """Aligned faces resized (shorter side) and centre-cropped to `image_size`; label = `attribute` (0/1).

    `group_*` are the CelebA identity ids, so paradigm=group with forget_group_fraction forgets whole
    identities (smiling and non-smiling images alike); the training labels stay the attribute.
    """
    if test_split not in SPLITS[1:]:
        raise ValueError(f"dataset.test_split={test_split!r}; allowed: 'valid', 'test'")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"dataset.image_size={image_size!r} must be an integer >= 8 (pixels)")
    base = Path(to_absolute_path(root))
    folder = base / datasets.CelebA.base_folder
    txt = [folder / f for _, _, f in datasets.CelebA.file_list if f.endswith(".txt")]
    if download and not all(p.exists() for p in txt):
        fetch("celeba", "https://drive.google.com (torchvision's CelebA file ids)", base,  # needs gdown; Google
              lambda: datasets.CelebA(str(base), download=True))  # Drive often rate-limits it
    require_files("celeba", base, [*txt, folder / "img_align_celeba"],
                  f"Expected torchvision's CelebA layout: {folder}/img_align_celeba/*.jpg plus the annotation files "
                  "above. Get them with dataset.download=true (needs `pip install gdown`) or from "
                  "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped images and Anno/, Eval/).")

    def build():
        out = {}
        for part, split in (("train", "train"), ("test", test_split)):
            ds = datasets.CelebA(str(base), split=split, target_type=["attr", "identity"],
                                 transform=ToUint8(image_size))  # verifies the annotation files' MD5
            if attribute not in ds.attr_names:
                raise ValueError(f"dataset.attribute={attribute!r}; allowed: {ds.attr_names}")
            out[f"x_{part}"] = decode_all(ds, num_workers)
            out[f"y_{part}"] = ds.attr[:, ds.attr_names.index(attribute)].long()
            out[f"group_{part}"] = ds.identity[:, 0].long()
        return out

    key = {"source": "celeba", "root": str(folder), "files": fingerprint(txt), "attribute": attribute,
           "image_size": image_size, "test_split": test_split}
    d = cached_images(cache_dir, key, build)
    return Data("celeba", d["x_train"], d["y_train"], d["x_test"], d["y_test"], num_classes=2,
                classes=[f"not_{attribute}", attribute], group_train=d["group_train"], group_test=d["group_test"],
                mean=tuple(mean), std=tuple(std), augment=augment).subsample(
        per_class_train, per_class_test, subsample_seed)
