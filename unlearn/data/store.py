"""Image storage shared by the vision loaders: a decode-once uint8 cache on disk for data that fits in
memory, and the decoding and box drawing that `unlearn.data.lazy.LazyImages` (data that does not fit) shares."""
from __future__ import annotations

import hashlib
import logging
import math
import os
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


def load_image(path: str | Path | Image.Image, size: int | None = None, resize: int | None = None,
               box: tuple | None = None) -> Tensor:
    """RGB uint8 [3, H, W]; with `size`, the shorter side is resized to `resize` (default `size`) and the centre
    cropped square. With `box` (top, left, height, width, flip) that box is cut, resized to size x size and, if
    `flip`, mirrored (`random_resized_box`). A file that cannot be decoded raises UnreadableImageError naming it."""
    if isinstance(path, Image.Image):
        return _to_tensor(path, size, resize, box)
    try:
        with Image.open(path) as im:
            return _to_tensor(im, size, resize, box)
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


def resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(height, width) with the shorter side scaled to `shorter` (neither below it)."""
    scale = shorter / min(width, height)
    return max(shorter, round(height * scale)), max(shorter, round(width * scale))


def _to_tensor(im: Image.Image, size: int | None, resize: int | None = None, box: tuple | None = None) -> Tensor:
    im = _to_8bit(im)
    if box is not None:
        top, left, h, w, flip = box(im.height, im.width) if callable(box) else box
        im = im.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
        if flip:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
    elif size is not None and (im.size != (size, size) or (resize or size) != size):
        h, w = resized_shape(im.height, im.width, resize or size)
        im = im.resize((w, h), Image.BILINEAR)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


SCALE, RATIO, ATTEMPTS = (0.08, 1.0), (3 / 4, 4 / 3), 10  # the standard ImageNet RandomResizedCrop
DRAWS = 4 * ATTEMPTS + 1  # uniforms per image: (area, aspect, top, left) per attempt, and the flip


def random_resized_box(u: list[float], height: int, width: int) -> tuple[int, int, int, int, bool]:
    """(top, left, h, w, flip) of a random crop covering 8-100% of the image's area with aspect ratio in [3/4, 4/3]
    (log-uniform), tried up to 10 times, else the centre with the aspect clamped; `u` holds DRAWS uniforms in [0, 1)
    drawn before the image's size is known, so a batch draws the same numbers whatever its images' sizes."""
    lo, hi = math.log(RATIO[0]), math.log(RATIO[1])
    for a in range(ATTEMPTS):
        ua, ur, ut, ul = u[4 * a:4 * a + 4]
        area = height * width * (SCALE[0] + ua * (SCALE[1] - SCALE[0]))
        aspect = math.exp(lo + ur * (hi - lo))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(ut * (height - h + 1)), int(ul * (width - w + 1)), h, w, u[-1] < 0.5
    ratio = width / height
    w, h = ((width, round(width / RATIO[0])) if ratio < RATIO[0] else
            (round(height * RATIO[1]), height) if ratio > RATIO[1] else (width, height))
    return (height - h) // 2, (width - w) // 2, h, w, u[-1] < 0.5


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
