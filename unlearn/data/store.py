"""Image storage shared by the vision loaders: a decode-once uint8 cache on disk for data that fits in
memory, and `LazyImages`, an indexable store that decodes files per batch for data that does not."""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from unlearn.cache import cached

log = logging.getLogger("unlearn")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
FORMAT = 2  # bump when decoding changes, so caches written by older code are not reused (2: 16-bit
# grey scaled by range)


class MissingDataError(FileNotFoundError):
    """A data set's files are not where the config points; the message says what and how to get them."""


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def require_files(name: str, root: Path, paths: Sequence[Path], how: str) -> None:
    """Fail before any compute when expected files are absent, listing them and how to obtain them."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise MissingDataError(f"dataset {name}: files missing under root={root}:\n  "
                               + "\n  ".join(missing[:10]) + more + f"\n{how}")


def fingerprint(paths: Sequence[Path]) -> str:
    """Hash of file names, sizes and modification times: a changed source invalidates its cache."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def cached_images(cache_dir: str | Path | None, key: dict, build: Callable[[], dict]) -> dict:
    """`build()` (a dict of tensors and label names) decoded once, then read from `<cache_dir>/<source>-<hash>.pt`.

    `key` names the source files and every preprocessing choice; `cache_dir=None` disables caching.
    """
    return cached(key["source"], {**key, "format": FORMAT}, cache_dir, build)


def load_image(path: str | Path | Image.Image, size: int | None = None) -> Tensor:
    """RGB uint8 [3, H, W]; with `size`, the shorter side is resized to it and the centre cropped square.
    A file that cannot be decoded raises UnreadableImageError naming it."""
    if isinstance(path, Image.Image):
        return _to_tensor(path, size)
    try:
        with Image.open(path) as im:
            return _to_tensor(im, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # PIL's ways of failing
        raise UnreadableImageError(f"image file {path} cannot be decoded ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'}); "
                                   f"replace or remove it") from None


def _to_8bit(im: Image.Image) -> Image.Image:
    """8-bit RGB; 16-bit grey (PNG `I;16`, `I` holding 0..65535) scaled by range, 65535 -> 255: PIL's own
    convert clips it to 0 and 255. Float images are refused (their range is not known)."""
    if im.mode.startswith("I"):
        a = np.asarray(im).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(f"{im.mode} image with values in [{a.min()}, {a.max()}]; allowed: 8-bit images or 16-bit "
                             f"grey (0..65535)")
        im = Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8))
    elif im.mode == "F":
        raise ValueError("32-bit float image (mode F); allowed: 8-bit images or 16-bit grey (0..65535)")
    return im.convert("RGB")


def _to_tensor(im: Image.Image, size: int | None) -> Tensor:
    im = _to_8bit(im)
    if size is not None and im.size != (size, size):
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


class ToUint8:
    """Picklable transform (DataLoader workers) turning a PIL image into a uint8 tensor of fixed size."""

    def __init__(self, size: int | None):
        self.size = size

    def __call__(self, img) -> Tensor:
        return load_image(img, self.size)


class _Files(torch.utils.data.Dataset):
    def __init__(self, files, size):
        self.files, self.size = files, size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        try:
            return load_image(self.files[i], self.size)
        except UnreadableImageError as e:  # returned, not raised: a worker's exception reaches the caller
            return e  # wrapped in a traceback text, and decode_all raises it as it was


def _as_list(items):  # module-level so worker processes can pickle it
    return items


def decode_all(dataset: torch.utils.data.Dataset, num_workers: int = 2, batch_size: int = 256) -> Tensor:
    """Stack a whole data set of uint8 images (items are tensors or (tensor, target)) with worker processes."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=_as_list)
    out = []
    for items in loader:
        for it in items:
            if isinstance(it, UnreadableImageError):
                raise it
        imgs = [it[0] if isinstance(it, tuple) else it for it in items]
        shapes = {tuple(t.shape) for t in imgs}
        if len(shapes) > 1 or (out and tuple(out[0].shape[1:]) not in shapes):
            raise ValueError(f"images differ in size ({sorted(shapes)[:3]} ...); set dataset.image_size "
                             f"to resize them to one square size")
        out.append(torch.stack(imgs))
    return torch.cat(out) if out else torch.empty(0, 3, 1, 1, dtype=torch.uint8)


def decode_files(files: Sequence[Path], size: int | None, num_workers: int = 2) -> Tensor:
    """Decode image files into one uint8 tensor [N, 3, H, W]."""
    return decode_all(_Files([str(f) for f in files], size), num_workers)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_PENDING: dict[tuple[str, int], Future] = {}  # (file, size) -> its decode started ahead of use (`prefetch`)
MAX_PENDING = 4096  # images decoded ahead and not yet used, at most (oldest dropped first)


class LazyImages:
    """Image files decoded on demand, for data sets too large for memory (ImageNet).

    Quacks like the uint8 tensor it stands for where `Data` and the methods use one: `len`, `shape`,
    `store[index_tensor or slice]` returns a lazy view, `.to(device)` records the target device;
    `load()` (called by `Data.prepare`) decodes a view with a pool of worker threads, and `prefetch()` starts
    that decoding in the background (the training loops call it for the next batch, `unlearn.train.prefetched`),
    so decoding overlaps the current batch's compute instead of alternating with it.
    """

    dtype = torch.uint8

    def __init__(self, files: Sequence, size: int, num_workers: int = 4, device: str | torch.device = "cpu"):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"dataset.image_size={size!r}: a lazily decoded data set needs one square size")
        self.files = np.asarray([str(f) for f in files], dtype=object)
        self.size, self.num_workers, self.device = size, max(1, num_workers), torch.device(device)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), 3, self.size, self.size)

    def __getitem__(self, index) -> "LazyImages":
        if isinstance(index, Tensor):
            index = index.cpu().numpy()
        return LazyImages(np.atleast_1d(self.files[index]), self.size, self.num_workers, self.device)

    def to(self, device) -> "LazyImages":
        return LazyImages(self.files, self.size, self.num_workers, device)

    def _pool(self) -> ThreadPoolExecutor:
        if self.num_workers not in _POOLS:
            _POOLS[self.num_workers] = ThreadPoolExecutor(self.num_workers)
        return _POOLS[self.num_workers]

    def prefetch(self) -> None:
        """Start decoding this view's files on the worker threads; a later `load` of them waits for that."""
        pool = self._pool()
        for f in self.files:
            if (f, self.size) not in _PENDING:
                _PENDING[(f, self.size)] = pool.submit(load_image, f, size=self.size)
        while len(_PENDING) > MAX_PENDING:  # decoded ahead but never used (an interrupted pass)
            _PENDING.pop(next(iter(_PENDING)))

    def load(self) -> Tensor:
        pool = self._pool()
        decode = partial(load_image, size=self.size)  # PIL decodes without the GIL
        futures = [_PENDING.pop((f, self.size), None) or pool.submit(decode, f) for f in self.files]
        shape = (len(futures), 3, self.size, self.size)
        pinned = self.device.type == "cuda"  # page-locked host memory: the copy below runs asynchronously
        out = torch.empty(shape, dtype=torch.uint8, pin_memory=pinned)
        if futures:
            torch.stack([f.result() for f in futures], out=out)
        return out.to(self.device, non_blocking=True)
