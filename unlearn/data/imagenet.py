"""ImageNet-1k from its ImageFolder layout with the standard augmentation: a random resized crop (8-100% of the
area, aspect 3/4 to 4/3) to 224 and a flip for training, the shorter side resized to 256 and a centre crop of 224
for evaluation; decoded per batch (on the GPU for a CUDA run, `LazyImages`)."""
from __future__ import annotations

from dataclasses import replace

from unlearn.data.base import Data
from unlearn.data.imagefolder import load_imagefolder
from unlearn.data.lazy import LazyImages

TRAIN_CROPS = ("random_resized", "pad_flip")


def load_imagenet(*, test_resize: int, train_crop: str, decoder: str, **imagefolder) -> Data:
    """`load_imagefolder` (in_memory=false) whose stores crop as ImageNet training does: `train_crop`
    random_resized (the standard) or pad_flip (a 4-pixel padded crop and flip, as the CIFAR recipe);
    `test_resize` is the shorter side before the centre crop of `image_size` pixels (256 for 224)."""
    if train_crop not in TRAIN_CROPS:
        raise ValueError(f"dataset.train_crop={train_crop!r} is invalid; allowed: one of {TRAIN_CROPS}")
    if imagefolder.get("in_memory", True) is not False:
        raise ValueError("dataset=imagenet decodes per batch: in_memory must be false (an in-memory copy of "
                         "ImageNet is dataset=imagenet_cpu, a plain image folder)")
    data = load_imagefolder(**imagefolder)
    try:
        def store(x: LazyImages, random_resized: bool) -> LazyImages:
            return LazyImages(x.files, x.size, x.num_workers, x.device, test_resize, random_resized, decoder)
        return replace(data, x_train=store(data.x_train, train_crop == "random_resized"),
                       x_test=store(data.x_test, False))
    except ValueError as e:  # name the key as the user sets it
        raise ValueError(f"dataset.{e}") from None
