"""A small Vision Transformer (Dosovitskiy et al. 2021) for 32x32 inputs, built on torchvision's."""
import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from unlearn.checks import require


class ViT(VisionTransformer):
    """Patch embedding (any channel count), class token, `depth` pre-norm encoder blocks; the class
    token's final embedding is `features(x)` and `fc` is the linear head (torchvision's `heads` removed).
    """

    def __init__(self, num_classes: int, input_shape: tuple, *, patch_size: int, depth: int, width: int,
                 heads: int, mlp_dim: int, dropout: float):
        c, h, w = input_shape
        checks = [("patch_size", isinstance(patch_size, int) and patch_size >= 1 and h == w and h % patch_size == 0,
                   f"a positive divisor of the (square) image side, input is {h}x{w}"),
                  ("depth", isinstance(depth, int) and depth >= 1, "an integer >= 1"),
                  ("heads", isinstance(heads, int) and heads >= 1, "an integer >= 1"),
                  ("width", isinstance(width, int) and width >= 1 and width % max(1, heads) == 0,
                   f"a positive multiple of model.heads={heads}"),
                  ("mlp_dim", isinstance(mlp_dim, int) and mlp_dim >= 1, "an integer >= 1"),
                  ("dropout", 0 <= dropout < 1, "in [0, 1)")]
        require(checks, locals(), "model.")
        super().__init__(image_size=h, patch_size=patch_size, num_layers=depth, num_heads=heads,
                         hidden_dim=width, mlp_dim=mlp_dim, dropout=dropout, num_classes=num_classes)
        if c != 3:  # torchvision's patch embedding assumes RGB
            self.conv_proj = nn.Conv2d(c, width, kernel_size=patch_size, stride=patch_size)
            nn.init.trunc_normal_(self.conv_proj.weight, std=(1 / (c * patch_size ** 2)) ** 0.5)
            nn.init.zeros_(self.conv_proj.bias)
        del self.heads
        self.fc = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.encoder(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
