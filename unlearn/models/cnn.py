"""A small conv net: fast on CPU, a sanity baseline next to ResNet-18."""
import torch
from torch import nn


class CNN(nn.Module):
    """Three conv-BN-ReLU blocks (width, 2*width, 4*width channels), global pooling, linear head."""

    def __init__(self, num_classes: int, input_shape: tuple, *, width: int):
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width={width} must be a positive channel count")

        def block(i, o, pool):
            layers = [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        small = min(input_shape[1:]) < 16  # 8x8 inputs can afford only one halving
        self.body = nn.Sequential(*block(input_shape[0], width, True), *block(width, 2 * width, not small),
                                  *block(2 * width, 4 * width, False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
