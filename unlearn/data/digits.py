"""scikit-learn's 8x8 handwritten digits: the embedded default that needs no download."""
import numpy as np
import torch
from sklearn.datasets import load_digits as _sk_load_digits
from sklearn.model_selection import train_test_split

from unlearn.data.base import Data


def load_digits(test_size: float = 0.2, split_seed: int = 0) -> Data:
    """1,797 grey 8x8 digits (scaled to [0, 1]) in a fixed stratified train/test split."""
    if not 0 < test_size < 1:
        raise ValueError(f"dataset.test_size={test_size} must be in (0, 1)")
    bunch = _sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8], pixel values 0..16
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y,
                                              random_state=split_seed)
    return Data("digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te),
                torch.from_numpy(y_te), num_classes=10, classes=[str(i) for i in range(10)])
