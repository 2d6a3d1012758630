"""dataset=imagenet: the standard augmentation (random resized crop + flip; resize 256 -> centre crop 224 for
evaluation) on a tiny fixture in ImageNet's layout, and the decoder a batch is decoded with."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from PIL import Image

from tests.conftest import compose_cfg
from unlearn.workspace import build
from unlearn.data.lazy import LazyImages, _read, decode_jpegs, transform_tensor
from unlearn.data.store import DRAWS, load_image, random_resized_box

WNIDS = ("n01440764", "n01443537")  # tench, goldfish
SIZES = [(40, 30), (24, 36), (50, 50)]  # (width, height): landscape, portrait, square


def _picture(w: int, h: int, rng) -> Image.Image:
    """Smooth gradients plus noise: JPEG-like content whose crops and resizes are easy to tell apart."""
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 128 / (w + h)], -1) + rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


@pytest.fixture
def imagenet(tmp_path):
    """root/train/<wnid>/<wnid>_<n>.JPEG and root/val/<wnid>/ILSVRC2012_val_<n>.JPEG (valprep.sh's layout), one
    grey-scale JPEG among them as ImageNet has."""
    rng, root, n = np.random.default_rng(0), tmp_path / "imagenet", 0
    for wnid in WNIDS:
        for part in ("train", "val"):
            (root / part / wnid).mkdir(parents=True)
            for w, h in SIZES:
                n += 1
                name = f"{wnid}_{n}.JPEG" if part == "train" else f"ILSVRC2012_val_{n:08d}.JPEG"
                im = _picture(w, h, rng)
                (im.convert("L") if n == 2 else im).save(root / part / wnid / name, quality=90)
    return root


def _data(imagenet, tmp_path, *extra):
    cfg = compose_cfg(["dataset=imagenet", f"dataset.root={imagenet}", "dataset.image_size=16",
                       "dataset.test_resize=18", "dataset.num_workers=2", *extra], tmp_path)
    return build(cfg.dataset)


def _centre(path, size: int, shorter: int) -> torch.Tensor:
    """The evaluation view written out with PIL: shorter side to `shorter`, centre crop `size`."""
    im = Image.open(path).convert("RGB")
    scale = shorter / min(im.size)
    im = im.resize((max(shorter, round(im.width * scale)), max(shorter, round(im.height * scale))), Image.BILINEAR)
    left, top = (im.width - size) // 2, (im.height - size) // 2
    return torch.from_numpy(np.asarray(im.crop((left, top, left + size, top + size))).copy()).permute(2, 0, 1)


def test_evaluation_images_are_resized_then_centre_cropped(imagenet, tmp_path):
    data = _data(imagenet, tmp_path)
    assert data.num_classes == 2 and data.classes == list(WNIDS) and data.x_test.shape == (6, 3, 16, 16)
    for store in (data.x_test, data.x_train):  # D_f and D_r are evaluated (UA, RA, MIA) as the test set
        got = store.load()
        want = torch.stack([_centre(f, 16, 18) for f in store.files])
        assert torch.equal(got, want)
    x = data.prepare(data.x_train[torch.arange(3)])  # train=False: no augmentation
    assert torch.allclose(x, (want[:3].float() / 255 - torch.tensor(data.mean).view(1, 3, 1, 1))
                          / torch.tensor(data.std).view(1, 3, 1, 1), atol=1e-6)


def test_training_images_get_a_seeded_random_resized_crop_and_flip(imagenet, tmp_path):
    data = _data(imagenet, tmp_path)
    idx = torch.arange(6)
    views = [data.prepare(data.x_train[idx], train=True, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert views[0].shape == (6, 3, 16, 16) and torch.equal(views[0], views[1])  # the seed fixes the crops
    assert not torch.equal(views[0], views[2])
    assert not torch.allclose(views[0], data.prepare(data.x_train[idx]))  # not the evaluation view
    # no zero padding as the pad-4 crop would leave: every pixel comes from the picture
    raw = data.x_train[idx].load(train=True, generator=torch.Generator().manual_seed(0))
    assert raw.float().mean() > 30 and (raw == 0).all(1).float().mean() < 0.05
    # the crop is the store's own: it draws DRAWS uniforms per image from the generator, and nothing else does
    g = torch.Generator().manual_seed(0)
    data.prepare(data.x_train[idx], train=True, generator=g)
    h = torch.Generator().manual_seed(0)
    torch.rand(6, DRAWS, generator=h)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=h))


def test_pad_flip_and_bad_values(imagenet, tmp_path):
    data = _data(imagenet, tmp_path, "dataset.train_crop=pad_flip")
    assert not data.x_train.random_resized and data.x_train.resize == 18
    for extra, match in ((["dataset.train_crop=centre"], r"dataset.train_crop='centre' is invalid"),
                         (["dataset.test_resize=8"], r"dataset.resize=8 is invalid; allowed: null or an integer >= "),
                         (["dataset.decoder=nvjpeg"], r"dataset.decoder='nvjpeg' is invalid"),
                         (["dataset.in_memory=true"], r"in_memory must be false")):
        with pytest.raises(Exception, match=match):
            _data(imagenet, tmp_path, *extra)


def test_random_resized_box_stays_in_the_standard_range():
    g = torch.Generator().manual_seed(0)
    for height, width in [(30, 40), (36, 24), (500, 375), (1, 100), (100, 1)]:
        for u in torch.rand(200, DRAWS, generator=g).tolist():
            top, left, h, w, flip = random_resized_box(u, height, width)
            assert 0 <= top and top + h <= height and 0 <= left and left + w <= width and h >= 1 and w >= 1
            if min(height, width) > 1 and (h, w) != (height, width):  # a drawn box, not the fallback
                assert 0.08 - 0.05 <= h * w / (height * width) <= 1 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    flips = [random_resized_box(u, 30, 40)[4] for u in torch.rand(400, DRAWS, generator=g).tolist()]
    assert 0.4 < np.mean(flips) < 0.6


def test_the_decoder_is_the_gpu_for_cuda_jpegs_only(imagenet):
    jpegs = sorted(str(p) for p in (imagenet / "train").rglob("*.JPEG"))
    assert LazyImages(jpegs, 16, device="cuda").gpu_decode  # the device type is all it reads: no GPU needed
    assert LazyImages(jpegs, 16, device="cuda")[torch.arange(2)].gpu_decode  # views keep it
    assert not LazyImages(jpegs, 16, device="cpu").gpu_decode
    assert not LazyImages(jpegs, 16, device="cuda", decoder="pil").gpu_decode
    assert not LazyImages([*jpegs, "x.png"], 16, device="cuda").gpu_decode  # PIL decodes what nvJPEG cannot


def test_batched_jpeg_decoding_matches_pil(imagenet):
    """The GPU path's code (batched decode_jpeg, crop and antialiased resize as tensors), run on the CPU, against
    PIL: the same decoded pixels (libjpeg-turbo both), resized within a few levels."""
    files = sorted(str(p) for p in imagenet.rglob("*.JPEG"))
    images = decode_jpegs([_read(f) for f in files], files, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    for f, im in zip(files, images):
        assert im.shape[0] == 3 and torch.equal(im, load_image(f))  # grey-scale JPEGs too, as RGB
        diff = (transform_tensor(im, 16, 18).int() - load_image(f, 16, 18).int()).abs()
        assert diff.float().mean() <= 1 and diff.max() <= 4
        box = random_resized_box(torch.rand(DRAWS, generator=g).tolist(), im.shape[1], im.shape[2])
        diff = (transform_tensor(im, 16, box=box).int() - load_image(f, 16, box=box).int()).abs()
        assert diff.float().mean() <= 2 and diff.max() <= 24  # upsampling a small box: PIL's edges differ


def test_the_gpu_path_of_load_on_the_cpu_equals_the_pil_path(imagenet, monkeypatch):
    """`load` through the batched decoder (forced, as on a CUDA device) gives PIL's batch within tolerance."""
    files = sorted(str(p) for p in (imagenet / "val").rglob("*.JPEG"))
    store = LazyImages(files, 16, 2, resize=18)
    want = store.load()
    monkeypatch.setattr(LazyImages, "gpu_decode", property(lambda self: True))
    got = store.load()
    assert got.shape == want.shape and got.dtype == torch.uint8
    assert (got.int() - want.int()).abs().float().mean() <= 1 and not math.isnan(float(got.float().mean()))
