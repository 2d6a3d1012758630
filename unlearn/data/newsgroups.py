"""20 Newsgroups: raw posts from a local "bydate" folder or the HF hub, tokenised once and cached."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path

from unlearn.cache import cached
from unlearn.identity import config_hash
from unlearn.checks import require
from unlearn.data.base import Data
from unlearn.text import MINILM, encode, load_tokenizer, resolve_path, tokenize

log = logging.getLogger("unlearn")
GROUPS = ("alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
          "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
          "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med", "sci.space",
          "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast", "talk.politics.misc",
          "talk.religion.misc")
SPLITS = {"train": "20news-bydate-train", "test": "20news-bydate-test"}
SOURCES = ("bydate", "hf")
REMOVE = ("headers", "footers", "quotes")
HOW_TO_GET = ("get it with `curl -O http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz` and "
              "`tar xzf 20news-bydate.tar.gz -C <root>` (set dataset.root, default "
              "$UNLEARN_SHARED_DATA/20news-bydate), or use dataset.source=hf when online")
# A quoting line: an attribution ("... writes:") or a line quoted with > or |  (as scikit-learn strips them).
_QUOTE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_text(text: str, remove: tuple[str, ...]) -> str:
    """Drop the header block, the signature after the last blank/`--` line, and quoted lines (sklearn's order)."""
    if "headers" in remove:
        text = text.partition("\n\n")[2]
    if "footers" in remove:
        lines = text.strip().split("\n")
        cut = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip().strip("-") == ""), 0)
        text = "\n".join(lines[:cut]) if cut > 0 else text
    if "quotes" in remove:
        text = "\n".join(line for line in text.split("\n") if not _QUOTE.search(line))
    return text


def read_bydate(root: Path) -> tuple[dict, list[str]]:
    """{split: (texts, labels)} and the group names, read as latin-1 like the original posts."""
    expected = f"{root}/{{{','.join(SPLITS.values())}}}/<group>/<id> for the 20 groups {GROUPS[0]} ... {GROUPS[-1]}"
    if not root.is_dir():
        raise ValueError(f"newsgroups20: root {root} does not exist; expected {expected}; {HOW_TO_GET}")
    out = {}
    for split, folder in SPLITS.items():
        missing = [g for g in GROUPS if not (root / folder / g).is_dir()]
        if missing:
            raise ValueError(f"newsgroups20: {root / folder} lacks {len(missing)} group folder(s) "
                             f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                             f"expected {expected}; {HOW_TO_GET}")
        texts, labels = [], []
        for label, group in enumerate(GROUPS):
            files = sorted((f for f in (root / folder / group).iterdir() if f.is_file()), key=lambda f: f.name)
            if not files:
                raise ValueError(f"newsgroups20: {root / folder / group} holds no posts; expected {expected}; "
                                 f"{HOW_TO_GET}")
            texts += [f.read_bytes().decode("latin-1") for f in files]
            labels += [label] * len(files)
        out[split] = (texts, labels)
    return out, list(GROUPS)


def read_hf(name: str) -> tuple[dict, list[str]]:
    """A hub data set (e.g. SetFit/20_newsgroups: text, label, label_text) or a `save_to_disk` folder."""
    import datasets
    local = Path(to_absolute_path(name))
    try:
        ds = datasets.load_from_disk(str(local)) if local.is_dir() else datasets.load_dataset(name)
    except Exception as e:  # offline hub lookups raise several types (ConnectionError, OSError, ...)
        raise ValueError(f"newsgroups20: HF data set {name!r} could not be loaded ({type(e).__name__}: "
                         f"{str(e)[:200]}); it needs the network (HF_DATASETS_OFFLINE unset) or a local "
                         f"`save_to_disk` folder; offline, use dataset.source=bydate") from None
    if set(SPLITS) - set(ds):
        raise ValueError(f"newsgroups20: HF data set {name!r} has splits {list(ds)}; need 'train' and 'test'")
    names = {}
    for split in SPLITS:
        if "label_text" in ds[split].column_names:
            for y, t in zip(ds[split]["label"], ds[split]["label_text"]):
                names.setdefault(int(y), t)
        else:  # a ClassLabel column carries the names itself
            names.update(enumerate(ds[split].features["label"].names))
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"newsgroups20: HF labels {sorted(names)} are not 0..K-1")
    return {s: (list(ds[s]["text"]), [int(y) for y in ds[s]["label"]]) for s in SPLITS}, \
        [names[i] for i in range(len(names))]


def subsample(labels: list[int], per_class: int | None, seed: int) -> np.ndarray:
    """Indices of at most `per_class` random posts per class (all when None), in file order."""
    y = np.asarray(labels)
    if per_class is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(y == c), min(per_class, int((y == c).sum())), replace=False)
            for c in np.unique(y)]
    return np.sort(np.concatenate(keep))


def superclasses(classes: list[str]) -> tuple[torch.Tensor, list[str]]:
    """Group-name prefix (comp, rec, sci, talk, alt, misc, soc) -> superclass id, names sorted."""
    prefix = [c.split(".")[0] for c in classes]
    names = sorted(set(prefix))
    return torch.tensor([names.index(p) for p in prefix]), names


def load_newsgroups20(source: str = "bydate", root: str = "../shared/data/20news-bydate",
                      hf_name: str = "SetFit/20_newsgroups", remove: list[str] | tuple = (),
                      per_class: int | None = None, test_per_class: int | None = None, subsample_seed: int = 0,
                      tokenizer: str = MINILM, max_length: int = 256, encoder: str | None = None,
                      encode_batch_size: int = 64, cache_dir: str | None = None) -> Data:
    """20 groups as token ids [N, max_length] (int64), or frozen sentence embeddings when `encoder` is set.

    Posts are read and hashed each time (cheap); tokenising and encoding are cached in `cache_dir`
    under that hash, the tokenizer, `max_length` and the encoder.
    """
    remove = tuple(remove)
    checks = [("source", source in SOURCES, f"one of {SOURCES}"),
              ("remove", set(remove) <= set(REMOVE), f"a subset of {list(REMOVE)}"),
              ("per_class", per_class is None or per_class >= 1, "null or >= 1"),
              ("test_per_class", test_per_class is None or test_per_class >= 1, "null or >= 1"),
              ("max_length", isinstance(max_length, int) and 8 <= max_length <= 512, "an integer in [8, 512]"),
              ("encode_batch_size", encode_batch_size >= 1, ">= 1")]
    require(checks, locals(), "dataset.")
    if source == "bydate":
        splits, classes = read_bydate(Path(to_absolute_path(root)))
    else:
        splits, classes = read_hf(hf_name)
    texts, labels = {}, {}
    for split, n in (("train", per_class), ("test", test_per_class)):
        t, y = splits[split]
        keep = subsample(y, n, subsample_seed)
        texts[split] = [strip_text(t[i], remove) for i in keep]
        labels[split] = torch.tensor([y[i] for i in keep], dtype=torch.long)
    digest = config_hash({s: [texts[s], labels[s].tolist()] for s in SPLITS})
    key = {"source": source, "content": digest, "classes": classes, "tokenizer": tokenizer,
           "tokenizer_path": resolve_path(tokenizer), "max_length": max_length}
    cache = None if cache_dir is None else to_absolute_path(cache_dir)

    def tokens():
        tok = load_tokenizer(tokenizer)
        log.info("newsgroups20: tokenising %d + %d posts (max_length %d)", len(texts["train"]),
                 len(texts["test"]), max_length)
        return {s: tokenize(texts[s], tok, max_length) for s in SPLITS}

    x = cached("newsgroups20-tokens", key, cache, tokens)
    if encoder is not None:
        def embeddings():
            pad = load_tokenizer(tokenizer).pad_token_id
            return {s: encode(x[s], resolve_path(encoder), pad, encode_batch_size) for s in SPLITS}

        x = cached("newsgroups20-embeddings", {**key, "encoder": resolve_path(encoder),
                                                      "pooling": "mean+l2"}, cache, embeddings)
    coarse_of, coarse_names = superclasses(classes)
    return Data("newsgroups20", x["train"], labels["train"], x["test"], labels["test"], num_classes=len(classes),
                classes=classes, coarse_of=coarse_of, coarse_classes=coarse_names)
