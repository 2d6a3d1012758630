"""A bag-of-embeddings text classifier (fastText-style): seconds per epoch on CPU."""
from __future__ import annotations

from torch import Tensor, nn

from unlearn.text import token_info

MODES = ("mean", "sum", "max")


class BoW(nn.Module):
    """`nn.EmbeddingBag` over the token ids (pad tokens excluded) -> `features`; linear head `fc`."""

    def __init__(self, num_classes: int, input_shape: tuple, *, tokenizer: str | None, dim: int, mode: str,
                 embedded_by: str | None):
        super().__init__()
        if embedded_by is not None:
            raise ValueError(f"model=bow needs token ids, but dataset.encoder={embedded_by!r} gives sentence "
                             f"embeddings; set dataset.encoder=null")
        if dim < 1:
            raise ValueError(f"model.dim={dim} must be >= 1")
        if mode not in MODES:
            raise ValueError(f"model.mode={mode!r}; allowed: {MODES}")
        vocab, pad_id = token_info(tokenizer, "bow")  # first: the clearest message on a non-text data set
        if len(input_shape) != 1:
            raise ValueError(f"model=bow expects token ids [N, L], got input_shape={list(input_shape)}")
        self.embed = nn.EmbeddingBag(vocab, dim, mode=mode, padding_idx=pad_id)
        self.fc = nn.Linear(dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.embed(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
