"""`LazyImages`: an indexable store that decodes image files per batch, for data sets too large for memory
(ImageNet), with decoding ahead of use on worker threads and batched JPEG decoding on a GPU."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from unlearn.data.store import (DRAWS, UnreadableImageError, _to_8bit, _to_tensor, load_image, random_resized_box,
                                resized_shape)

_POOLS: dict[int, ThreadPoolExecutor] = {}
_PENDING: dict[tuple[str, int], Future] = {}  # (file, size) -> its decode started ahead of use (`prefetch`)
MAX_PENDING = 4096  # images decoded ahead and not yet used, at most (oldest dropped first)


JPEG = (".jpg", ".jpeg")
DECODERS = ("auto", "pil")  # auto = nvJPEG on a CUDA device for JPEG files, PIL otherwise | pil = PIL everywhere


def _open_rgb(path: str) -> Image.Image:
    """The decoded 8-bit RGB image of a file (loaded, file closed); UnreadableImageError names a bad file."""
    try:
        with Image.open(path) as im:
            return _to_8bit(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UnreadableImageError(f"image file {path} cannot be decoded ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'}); "
                                   f"replace or remove it") from None


def _resize(img: Tensor, height: int, width: int) -> Tensor:
    """Bilinear with antialiasing, as PIL's BILINEAR resize, on uint8 [3, H, W] (any device)."""
    out = torch.nn.functional.interpolate(img[None].float(), size=(height, width), mode="bilinear",
                                          antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


def transform_tensor(img: Tensor, size: int, resize: int | None = None, box=None) -> Tensor:
    """`_to_tensor`'s transform on a decoded uint8 [3, H, W] tensor, on its device (GPU-decoded batches)."""
    if box is not None:
        top, left, h, w, flip = box(img.shape[1], img.shape[2]) if callable(box) else box
        img = _resize(img[:, top:top + h, left:left + w], size, size)
        return img.flip(-1) if flip else img
    if tuple(img.shape[1:]) != (size, size) or (resize or size) != size:
        h, w = resized_shape(img.shape[1], img.shape[2], resize or size)
        img = _resize(img, h, w)
        top, left = (h - size) // 2, (w - size) // 2
        img = img[:, top:top + size, left:left + size]
    return img.contiguous()


def decode_jpegs(data: list[Tensor], files: Sequence[str], device: torch.device) -> list[Tensor]:
    """uint8 RGB [3, H, W] images on `device` from the bytes of JPEG files, decoded there in one batched call
    (nvJPEG on a GPU); a file the batch decoder refuses (CMYK, a PNG named .JPEG) is decoded alone, by PIL if
    need be."""
    from torchvision.io import ImageReadMode, decode_jpeg
    try:
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        out = []
        for d, f in zip(data, files):
            try:
                out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(load_image(f).to(device))
        return out


def _read(path: str) -> Tensor:
    try:
        return torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    except OSError as e:
        raise UnreadableImageError(f"image file {path} cannot be read ({e})") from None


class LazyImages:
    """Image files decoded on demand, for data sets too large for memory (ImageNet).

    Quacks like the uint8 tensor it stands for where `Data` and the methods use one: `len`, `shape`,
    `store[index_tensor or slice]` returns a lazy view, `.to(device)` records the target device;
    `load()` (called by `Data.prepare`) decodes a view with a pool of worker threads, and `prefetch()` starts
    that decoding in the background (the training loops call it for the next batch, `unlearn.train.prefetched`),
    so decoding overlaps the current batch's compute instead of alternating with it.

    Evaluation views resize the shorter side to `resize` (default `size`) and centre-crop `size`; with
    `random_resized`, training views (`load(train=True)`) take a random 8-100% box of each image (aspect 3/4 to
    4/3) resized to `size` and flip it half the time, drawn from the run's generator. On a CUDA device JPEG files
    are read by the worker threads and decoded on the GPU in one batched call (`decoder`: auto), else by PIL.
    """

    dtype = torch.uint8

    def __init__(self, files: Sequence, size: int, num_workers: int = 4, device: str | torch.device = "cpu",
                 resize: int | None = None, random_resized: bool = False, decoder: str = "auto"):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"dataset.image_size={size!r}: a lazily decoded data set needs one square size")
        if resize is not None and not (isinstance(resize, int) and resize >= size):
            raise ValueError(f"resize={resize!r} is invalid; allowed: null or an integer >= image_size={size} "
                             f"(shorter side before the centre crop)")
        if decoder not in DECODERS:
            raise ValueError(f"decoder={decoder!r} is invalid; allowed: one of {DECODERS}")
        self.files = np.asarray([str(f) for f in files], dtype=object)
        self.size, self.num_workers, self.device = size, max(1, num_workers), torch.device(device)
        self.resize, self.random_resized, self.decoder = resize, random_resized, decoder

    def _view(self, files, device) -> "LazyImages":
        return LazyImages(files, self.size, self.num_workers, device, self.resize, self.random_resized, self.decoder)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), 3, self.size, self.size)

    def __getitem__(self, index) -> "LazyImages":
        if isinstance(index, Tensor):
            index = index.cpu().numpy()
        return self._view(np.atleast_1d(self.files[index]), self.device)

    def to(self, device) -> "LazyImages":
        return self._view(self.files, device)

    @property
    def gpu_decode(self) -> bool:
        """Decode on the device (nvJPEG): a CUDA store of JPEG files with decoder=auto."""
        return (self.decoder == "auto" and self.device.type == "cuda"
                and all(str(f).lower().endswith(JPEG) for f in self.files))

    def _pool(self) -> ThreadPoolExecutor:
        if self.num_workers not in _POOLS:
            _POOLS[self.num_workers] = ThreadPoolExecutor(self.num_workers)
        return _POOLS[self.num_workers]

    def _ahead(self) -> tuple[object, Callable]:
        """What `prefetch` prepares per file: its bytes (GPU decode), its full decoded image (random boxes are
        drawn at `load`), or the finished evaluation view."""
        if self.gpu_decode:
            return "bytes", _read
        if self.random_resized:
            return "raw", _open_rgb
        kind = self.size if self.resize in (None, self.size) else (self.size, self.resize)
        return kind, partial(load_image, size=self.size, resize=self.resize)

    def prefetch(self) -> None:
        """Start decoding this view's files on the worker threads; a later `load` of them waits for that."""
        pool, (kind, work) = self._pool(), self._ahead()
        for f in self.files:
            if (f, kind) not in _PENDING:
                _PENDING[(f, kind)] = pool.submit(work, f)
        while len(_PENDING) > MAX_PENDING:  # decoded ahead but never used (an interrupted pass)
            _PENDING.pop(next(iter(_PENDING)))

    def load(self, train: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """The view's images as uint8 [n, 3, size, size] on the device; `train` with `random_resized` draws each
        image's random box and flip from `generator` (DRAWS uniforms per image, whatever its size)."""
        pool, (kind, work) = self._pool(), self._ahead()
        boxes = [None] * len(self.files)
        if train and self.random_resized:
            u = torch.rand(len(self.files), DRAWS, generator=generator).tolist()
            boxes = [partial(random_resized_box, ui) for ui in u]
        ahead = [_PENDING.pop((f, kind), None) or pool.submit(work, f) for f in self.files]
        if self.gpu_decode:
            images = decode_jpegs([a.result() for a in ahead], list(self.files), self.device)
            return torch.stack([transform_tensor(im, self.size, self.resize, b) for im, b in zip(images, boxes)])
        if kind == "raw":  # the box is applied to the decoded image by a worker (queued after the decodes)
            ahead = [pool.submit(lambda a, b: _to_tensor(a.result(), self.size, self.resize, b), a, b)
                     for a, b in zip(ahead, boxes)]
        shape = (len(ahead), 3, self.size, self.size)
        pinned = self.device.type == "cuda"  # page-locked host memory: the copy below runs asynchronously
        out = torch.empty(shape, dtype=torch.uint8, pin_memory=pinned)
        if ahead:
            torch.stack([f.result() for f in ahead], out=out)
        return out.to(self.device, non_blocking=True)
