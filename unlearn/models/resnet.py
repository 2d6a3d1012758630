"""ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool) and a width knob for CPU runs."""
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) built from torchvision's BasicBlock.

    `width` is the channel count of the first stage (64 = the standard network); later stages
    double it. `stem="cifar"` suits 32x32 (and smaller) inputs, `stem="imagenet"` is the
    7x7/stride-2 stem with max-pool of torchvision's version for 224x224 inputs.
    """

    def __init__(self, num_classes: int, input_shape: tuple, *, width: int, stem: str):
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width={width} must be a positive channel count")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"model.stem={stem!r}; allowed: 'cifar', 'imagenet'")
        in_ch = input_shape[0]
        if stem == "cifar":
            self.stem = nn.Sequential(nn.Conv2d(in_ch, width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_ch, width, 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
        self.inplanes = width
        self.layer1 = self._make_layer(width, stride=1)
        self.layer2 = self._make_layer(width * 2, stride=2)
        self.layer3 = self._make_layer(width * 4, stride=2)
        self.layer4 = self._make_layer(width * 8, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes))
        blocks = [BasicBlock(self.inplanes, planes, stride, down), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*blocks)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
