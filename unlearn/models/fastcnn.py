"""A compact CIFAR network for fast training on a CPU, after the fast-training recipes (Page's ResNet-9 for
DAWNBench; Jordan's airbench, whose layout and tricks this follows: a fixed whitening stem, few wide 3x3
convolutions each block pooling right after its first one, identity-initialised convolutions, batch norms
that only shift, a linear head at temperature 9). Most compute runs at 15x15 and below."""
import torch
from torch import nn
from torch.nn import functional as F


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 convolution whose first `c_in` filters start as the identity (Dirac): every block starts by passing
    its input through, which lets the high learning rates of short schedules work from the first step."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:min(c_in, c_out)])
    return conv


class ShiftNorm(nn.Module):
    """Batch norm without a learned scale (a learned shift only): the next convolution's weights carry the
    scale, so the scale would only add a redundant direction; airbench trains these shifts at a higher rate."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False, momentum=0.4)  # tracks the last few batches
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) + self.bias.view(1, -1, 1, 1)


class Block(nn.Module):
    """conv 3x3 -> max-pool 2 (when the map is still at least 2 px) -> norm -> GELU -> conv 3x3 -> norm -> GELU."""

    def __init__(self, c_in: int, c_out: int, pool: bool):
        super().__init__()
        self.conv1 = _conv(c_in, c_out)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.norm1 = ShiftNorm(c_out)
        self.conv2 = _conv(c_out, c_out)
        self.norm2 = ShiftNorm(c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class Whiten(nn.Module):
    """2x2 convolution (no padding) whose filters are the training images' 2x2-patch principal directions,
    each scaled to unit variance, with their negatives (2 * C * 4 channels): decorrelated input in one cheap
    layer. The filters are fixed (a buffer, set by `init_from_data` before training); the bias is learned."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        width = 2 * channels * 4
        self.stride = stride
        self.register_buffer("weight", torch.zeros(width, channels, 2, 2))
        nn.init.kaiming_uniform_(self.weight)  # until fitted (a model built to load a state dict)
        self.bias = nn.Parameter(torch.zeros(width))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        c = x.shape[1]
        patches = x.float().unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
        cov = patches.T @ patches / len(patches)
        values, vectors = torch.linalg.eigh(cov)  # ascending; the order of filters does not matter
        filters = (vectors.T / torch.sqrt(values.clamp_min(0) + eps).view(-1, 1)).reshape(-1, c, 2, 2)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), stride=self.stride)


class FastCNN(nn.Module):
    """Whitening stem of stride `stem_stride`, pooling blocks of `widths` channels, global max-pool, and a
    linear head (no bias) whose logits are divided by `temperature`. Stride 2 runs every block at half the
    resolution (4x fewer operations per channel). Pools are skipped once the map is 1 px (8x8 inputs work)."""

    def __init__(self, num_classes: int, input_shape: tuple, *, widths: list, stem_stride: int,
                 temperature: float):
        super().__init__()
        widths = list(widths)
        if len(widths) < 1 or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise ValueError(f"model.widths={widths!r}; allowed: a non-empty list of positive channel counts")
        if stem_stride not in (1, 2) or isinstance(stem_stride, bool):
            raise ValueError(f"model.stem_stride={stem_stride!r}; allowed: 1 or 2")
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 < temperature < 1e6:
            raise ValueError(f"model.temperature={temperature!r}; allowed: a number in (0, 1e6)")
        self.stem = Whiten(input_shape[0], stem_stride)
        self.act = nn.GELU()
        size, blocks, c_in = (min(input_shape[1:]) - 2) // stem_stride + 1, [], 2 * input_shape[0] * 4
        for w in widths:
            blocks.append(Block(c_in, w, pool=size >= 2))
            size, c_in = (size // 2 if size >= 2 else size), w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c_in, num_classes, bias=False)
        self.temperature = float(temperature)

    def init_from_data(self, x: torch.Tensor) -> None:
        """Fit the whitening filters to training images `x` (normalised, not augmented); `train.fit` calls it
        before the first epoch, so Retrain's filters come from D_r alone."""
        self.stem.fit(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # the temperature sits here, so `fc(features(x))` are the logits (methods edit the head through `fc`)
        return torch.flatten(self.pool(self.blocks(self.act(self.stem(x)))), 1) / self.temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
