"""BERT-style sequence classifiers from Hugging Face, wrapped to expose `features` and a head `fc`."""
from __future__ import annotations

from torch import Tensor, nn

from unlearn.text import attention_mask, not_loaded, resolve_path, token_info, trim


class Bert(nn.Module):
    """`AutoModelForSequenceClassification` (e.g. bert-base-uncased); `features` = pooled [CLS] after dropout.

    `random_init` builds the architecture of `pretrained` (plus `config_overrides`) without its
    weights: tiny offline test models, or training from scratch.
    """

    def __init__(self, num_classes: int, input_shape: tuple, *, pretrained: str, tokenizer: str | None,
                 random_init: bool, config_overrides: dict | None, embedded_by: str | None):
        super().__init__()
        from transformers import AutoConfig, AutoModelForSequenceClassification
        if embedded_by is not None:
            raise ValueError(f"model=bert needs token ids, but dataset.encoder={embedded_by!r} gives sentence "
                             f"embeddings; set dataset.encoder=null")
        vocab, self.pad_id = token_info(tokenizer, "bert")
        kwargs = {"num_labels": num_classes, **(config_overrides or {})}
        try:
            if random_init:
                hf = AutoModelForSequenceClassification.from_config(
                    AutoConfig.from_pretrained(resolve_path(pretrained), **kwargs))
            else:
                hf = AutoModelForSequenceClassification.from_pretrained(resolve_path(pretrained), **kwargs)
        except OSError as e:
            raise ValueError(not_loaded("model.pretrained", pretrained, e)) from None
        cfg = hf.config
        if not isinstance(getattr(hf, "classifier", None), nn.Linear) or getattr(hf.base_model, "pooler", None) is None:
            raise ValueError(f"model.pretrained={pretrained!r} is a {type(hf).__name__}; this wrapper needs a "
                             f"BERT-style encoder with a pooler and a linear `classifier`")
        if vocab > cfg.vocab_size or input_shape[0] > cfg.max_position_embeddings:
            raise ValueError(f"model=bert: tokenizer vocabulary {vocab} / length {input_shape[0]} exceed the "
                             f"model's {cfg.vocab_size} / {cfg.max_position_embeddings}")
        self.encoder, self.dropout, self.fc = hf.base_model, hf.dropout, hf.classifier

    def features(self, x: Tensor) -> Tensor:
        ids, mask = trim(x, self.pad_id)
        out = self.encoder(input_ids=ids, attention_mask=attention_mask(mask, self.encoder.dtype))
        return self.dropout(out.pooler_output)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
