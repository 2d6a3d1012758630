"""VGG-16 with batch norm (Simonyan & Zisserman 2015), CIFAR variant: one linear head after global pooling."""
import torch
from torch import nn
from torchvision.models.vgg import cfgs


class VGG16BN(nn.Module):
    """torchvision's configuration "D" (13 conv-BN-ReLU layers, 5 max-pools) with channels scaled by
    `width / 64` (64 = the standard network). The 4096-unit classifier of the ImageNet version is
    replaced by global average pooling and one linear layer, as usual for 32x32 inputs; pools that
    would shrink the map below 1x1 (inputs smaller than 32x32) are skipped.
    """

    def __init__(self, num_classes: int, input_shape: tuple, *, width: int):
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"model.width={width!r} must be a positive channel count")
        layers, ch, size = [], input_shape[0], min(input_shape[1:])
        for v in cfgs["D"]:
            if v == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            out = max(1, v * width // 64)
            layers += [nn.Conv2d(ch, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            ch = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
