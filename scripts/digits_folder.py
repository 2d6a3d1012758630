"""Write scikit-learn's 8x8 digits as an image folder (train/<class>/*.png, test/<class>/*.png), the small folder
the "Your own data" page runs its complete example on:

    .venv/bin/python scripts/digits_folder.py /tmp/digits-folder [--test-size 0.2]

Classes are named zero ... nine, so class names can be used (`paradigm.forget_class=three`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write(root: Path, test_size: float = 0.2, seed: int = 0) -> dict[str, int]:
    """The folder at `root`; returns the number of images per split."""
    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)  # 0..16 grey levels to 8-bit
    idx = np.arange(len(images))
    train, test = train_test_split(idx, test_size=test_size, stratify=digits.target, random_state=seed)
    for split, ids in (("train", train), ("test", test)):
        for i in ids:
            folder = root / split / NAMES[digits.target[i]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")
    return {"train": len(train), "test": len(test)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--test-size", type=float, default=0.2)
    args = ap.parse_args()
    print(write(Path(args.root), args.test_size))
