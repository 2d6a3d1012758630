"""A compact CIFAR network for fast training on a CPU, in the style of the fast-training recipes
(Page's ResNet-9 for DAWNBench, Jordan's airbench): few, wide 3x3 convolutions, each block pooling right
after its first convolution, so most compute runs at 16x16 and below."""
import torch
from torch import nn


class Block(nn.Module):
    """conv 3x3 -> max-pool 2 (when the map is still at least 2 px) -> BN -> GELU -> conv 3x3 -> BN -> GELU."""

    def __init__(self, c_in: int, c_out: int, pool: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.norm1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class FastCNN(nn.Module):
    """A 2x2 stem convolution (no padding) of stride `stem_stride`, pooling blocks of `widths` channels, global
    max-pool, and a linear head. Stride 2 runs every block at half the resolution: 4x fewer operations per
    channel, which pays for wider blocks. Pools are skipped once the map is 1 px, so 8x8 inputs also work."""

    def __init__(self, num_classes: int, input_shape: tuple, *, widths: list, stem_width: int, stem_stride: int):
        super().__init__()
        widths = list(widths)
        if len(widths) < 1 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"model.widths={widths!r}; allowed: a non-empty list of positive channel counts")
        if not isinstance(stem_width, int) or stem_width < 1:
            raise ValueError(f"model.stem_width={stem_width!r}; allowed: a positive channel count")
        if stem_stride not in (1, 2) or isinstance(stem_stride, bool):
            raise ValueError(f"model.stem_stride={stem_stride!r}; allowed: 1 or 2")
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], stem_width, 2, stem_stride, bias=False), nn.BatchNorm2d(stem_width),
                                  nn.GELU())
        size, blocks, c_in = (min(input_shape[1:]) - 2) // stem_stride + 1, [], stem_width
        for w in widths:
            blocks.append(Block(c_in, w, pool=size >= 2))
            size, c_in = (size // 2 if size >= 2 else size), w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.blocks(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
