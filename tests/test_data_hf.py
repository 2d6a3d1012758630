"""dataset=hf: an image data set in Hugging Face `datasets`' own formats, on small fixtures the test writes (a
parquet folder as the hub stores it, and a save_to_disk folder); nothing downloads."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

datasets = pytest.importorskip("datasets")

from tests.conftest import TINY, compose_cfg  # noqa: E402
from unlearn.data.hf import load_hf  # noqa: E402
from unlearn.data.store import MissingDataError  # noqa: E402
from unlearn.workspace import run_experiment  # noqa: E402

NAMES = ["cat", "dog", "frog"]


def _split(n_per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(len(NAMES)):
        for _ in range(n_per_class):
            a = np.clip(rng.normal(60 + 70 * c, 20, size=(8, 8, 3)), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format="PNG")
            images.append({"bytes": buf.getvalue(), "path": None})
            labels.append(c)
    features = datasets.Features({"img": datasets.Image(), "fine": datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({"img": images, "fine": labels}, features=features)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    dd = datasets.DatasetDict({"train": _split(12, 0), "test": _split(4, 1)})
    parquet = root / "parquet" / "data"
    parquet.mkdir(parents=True)
    for split, ds in dd.items():  # the hub's layout: data/<split>-00000-of-00001.parquet
        ds.to_parquet(str(parquet / f"{split}-00000-of-00001.parquet"))
    dd.save_to_disk(str(root / "saved"))
    return root


@pytest.mark.parametrize("layout", ["parquet", "saved"])
def test_both_formats_load_with_class_names(folders, layout, tmp_path):
    data = load_hf(str(folders / layout), image_key="img", label_key="fine", cache_dir=str(tmp_path / "c"))
    assert data.classes == NAMES and data.num_classes == 3
    assert tuple(data.x_train.shape) == (36, 3, 8, 8) and data.x_train.dtype.is_floating_point is False
    assert data.y_train.tolist() == [0] * 12 + [1] * 12 + [2] * 12 and len(data.y_test) == 12
    sub = load_hf(str(folders / layout), image_key="img", label_key="fine", per_class_train=5, cache_dir=None)
    assert np.bincount(sub.y_train.numpy()).tolist() == [5, 5, 5]


def test_bad_names_are_refused_naming_what_exists(folders):
    with pytest.raises(ValueError, match=r"image_key='image' is not a column.*\['img', 'fine'\]"):
        load_hf(str(folders / "saved"))
    with pytest.raises(MissingDataError, match=r"test_split='validation'.*\['test', 'train'\]"):
        load_hf(str(folders / "saved"), image_key="img", label_key="fine", test_split="validation")
    with pytest.raises(MissingDataError, match="cannot be loaded here"):
        load_hf("no-such-user/no-such-dataset-here")


def test_a_run_on_it_forgets_a_class_by_name(folders, tmp_path):
    cfg = compose_cfg([*TINY[1:], "dataset=hf", f"dataset.name_or_path={folders / 'parquet'}", "dataset.image_key=img",
                       "dataset.label_key=fine", "train.epochs=2", "paradigm.forget_class=dog", "method=ga"], tmp_path)
    out = run_experiment(cfg)
    assert out["forget/size"] == 12.0 and np.isfinite(out["UA"])
