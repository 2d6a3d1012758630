"""A multilayer perceptron on flattened inputs."""
import math

import torch
from torch import nn


class MLP(nn.Module):
    """`depth` hidden ReLU layers of `hidden` units on the flattened input, then a linear head."""

    def __init__(self, num_classes: int, input_shape: tuple, *, hidden: int, depth: int):
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError(f"model.hidden={hidden} and model.depth={depth} must both be >= 1")
        dims = [math.prod(input_shape)] + [hidden] * depth
        layers = [nn.Flatten()]
        for i, o in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(i, o), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
