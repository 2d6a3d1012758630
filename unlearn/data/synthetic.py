"""A tiny generated data set for tests: Gaussian blobs shaped as small images, with superclasses."""
import torch

from unlearn.data.base import Data


def load_synthetic(num_classes: int = 4, per_class: int = 40, test_per_class: int = 10,
                   channels: int = 1, size: int = 8, num_coarse: int = 2, noise: float = 0.6,
                   seed: int = 0) -> Data:
    """Each class is a fixed random image plus Gaussian noise; class c belongs to superclass c % num_coarse."""
    if num_classes < 2 or num_coarse < 1 or num_coarse > num_classes:
        raise ValueError(f"synthetic: need num_classes >= 2 and 1 <= num_coarse <= num_classes, "
                         f"got num_classes={num_classes}, num_coarse={num_coarse}")
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(num_classes, channels, size, size, generator=g)

    def draw(n):
        y = torch.arange(num_classes).repeat_interleave(n)
        x = protos[y] + noise * torch.randn(len(y), channels, size, size, generator=g)
        return x, y

    x_tr, y_tr = draw(per_class)
    x_te, y_te = draw(test_per_class)
    coarse = torch.arange(num_classes) % num_coarse
    return Data("synthetic", x_tr, y_tr, x_te, y_te, num_classes,
                classes=[f"c{i}" for i in range(num_classes)], coarse_of=coarse)
