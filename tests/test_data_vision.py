"""Vision loaders on tiny generated fixtures in each data set's real on-disk format, read through the same
code path as real files; plus the shared CIFAR-10 JPEG copy when it is present."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision import datasets

from tests.conftest import HANG_GUARD, ROOT, SHARED_DATA, compose_cfg
from unlearn.data import cifar
from unlearn.data.celeba import load_celeba
from unlearn.data.cifar import CIFAR100_COARSE, load_cifar10, load_cifar100
from unlearn.data.imagefolder import load_imagefolder
from unlearn.data.lazy import LazyImages
from unlearn.data.store import MissingDataError
from unlearn.data.svhn import load_svhn
from unlearn.paradigms import Group
from unlearn.workspace import build, run_experiment

RNG = np.random.default_rng(0)
VISION = ("cifar10", "cifar100", "cifar100_super", "svhn", "celeba", "imagefolder", "imagenet", "cifar10_jpg")


def _images(n, size=32):
    return RNG.integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def _dump(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root, per_class=(2, 1)):
    """torchvision's cifar-10-batches-py: five training batches, a test batch, batches.meta."""
    folder = root / "cifar-10-batches-py"
    y = np.repeat(np.arange(10), per_class[0])
    x = _images(len(y))
    for b, part in enumerate(np.array_split(np.arange(len(y)), 5), 1):
        _dump(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5",
                                           "data": x[part].reshape(len(part), -1), "labels": y[part].tolist()})
    yt = np.repeat(np.arange(10), per_class[1])
    _dump(folder / "test_batch", {"data": _images(len(yt)).reshape(len(yt), -1), "labels": yt.tolist()})
    _dump(folder / "batches.meta", {"label_names": [f"k{i}" for i in range(10)], "num_cases_per_batch": 10})
    return x, y


def write_cifar100(root, coarse_map=CIFAR100_COARSE):
    """torchvision's cifar-100-python: train, test (fine and coarse labels) and meta."""
    folder = root / "cifar-100-python"
    for part, n in (("train", 2), ("test", 1)):
        fine = np.repeat(np.arange(100), n)
        _dump(folder / part, {"data": _images(len(fine)).reshape(len(fine), -1), "fine_labels": fine.tolist(),
                              "coarse_labels": [coarse_map[f] for f in fine]})
    _dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                            "coarse_label_names": [f"c{i}" for i in range(20)]})


def write_svhn(root):
    """train_32x32.mat / test_32x32.mat: X is [32, 32, 3, N], y is [N, 1] with digit 0 stored as 10."""
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", 20), ("test", 10)):
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)
        scipy.io.savemat(root / f"{name}_32x32.mat", {"X": _images(n).transpose(2, 3, 1, 0), "y": y})


ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling", "Young"]


def write_celeba(root, identities=12, per_identity=3):
    """celeba/: img_align_celeba/*.jpg plus the five annotation text files, in torchvision's format."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    rows = []
    for i in range(identities * per_identity):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(_images(1, 24)[0].transpose(1, 2, 0)[:, :20]).save(folder / "img_align_celeba" / name)
        ident = i // per_identity + 1
        part = 0 if ident <= identities - 4 else (1 if ident <= identities - 2 else 2)  # identity-disjoint
        rows.append((name, ident, part, [1 if (i + a) % 2 else -1 for a in range(len(ATTRS))]))
    n = len(rows)
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n{' '.join(ATTRS)}\n" + "".join(f"{r[0]} " + " ".join(f"{v:2d}" for v in r[3]) + "\n" for r in rows))
    (folder / "identity_CelebA.txt").write_text("".join(f"{r[0]} {r[1]}\n" for r in rows))
    (folder / "list_eval_partition.txt").write_text("".join(f"{r[0]} {r[2]}\n" for r in rows))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{r[0]} 1 2 3 4\n" for r in rows))
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
        f"rightmouth_y\n" + "".join(f"{r[0]} " + " ".join(["5"] * 10) + "\n" for r in rows))
    return rows


def write_imagefolder(root, classes=("cat", "dog", "car"), n=(4, 2), test="test", size=(12, 10)):
    for part, k in (("train", n[0]), (test, n[1])):
        for c in classes:
            (root / part / c).mkdir(parents=True)
            for i in range(k):
                Image.fromarray(_images(1, 16)[0].transpose(1, 2, 0)[:size[1], :size[0]]).save(root / part / c / f"{i}.png")


@pytest.fixture
def no_md5(monkeypatch):
    """Fixture files cannot match the real archives' MD5 sums: only here is torchvision's check skipped."""
    exists = lambda self: True  # noqa: E731
    monkeypatch.setattr(datasets.CIFAR10, "_check_integrity", exists)
    monkeypatch.setattr(datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    monkeypatch.setattr(datasets.SVHN, "_check_integrity", exists)
    monkeypatch.setattr(datasets.CelebA, "_check_integrity", exists)


def test_cifar10_fixture_and_cache(tmp_path, no_md5, monkeypatch):
    x, y = write_cifar10(tmp_path / "data")
    d = load_cifar10(str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    assert d.x_train.dtype == torch.uint8 and d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (10, 3, 32, 32)
    assert d.classes == [f"k{i}" for i in range(10)] and d.num_classes == 10
    assert sorted(d.y_train.tolist()) == sorted(y.tolist())
    i = int(np.flatnonzero(y == 3)[0])  # batches keep the order in which they were written
    assert torch.equal(d.x_train[i], torch.from_numpy(x[i])) and d.y_train[i] == 3
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 1
    monkeypatch.setattr(cifar, "_read", lambda *a: pytest.fail("decoded again instead of using the cache"))
    again = load_cifar10(str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)


def test_cifar100_fine_coarse_and_super(tmp_path, no_md5):
    write_cifar100(tmp_path)
    d = load_cifar100(str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert d.num_classes == 100 and d.x_train.shape == (200, 3, 32, 32)
    assert d.coarse_of.tolist() == list(CIFAR100_COARSE) and d.coarse_classes == [f"c{i}" for i in range(20)]
    s = load_cifar100(str(tmp_path), cache_dir=str(tmp_path / "cache"), coarse=True)
    assert s.name == "cifar100_super" and s.num_classes == 20 and s.classes[3] == "c3"
    assert torch.equal(s.group_train, d.y_train) and torch.equal(s.y_train, d.coarse_of[d.y_train])
    # paradigm=group forgets fine class 7 (superclass 7) only; its superclass keeps other fine classes
    split = Group(forget_group=7, forget_group_fraction=None).split(s.to_coarse(), seed=0)
    assert set(s.group_train[split.forget].tolist()) == {7} and len(split.forget) == 2
    assert (s.y_train[split.retain] == CIFAR100_COARSE[7]).sum() == 2 * 4  # superclass 7 has 5 fine classes


def test_cifar100_wrong_coarse_map_is_rejected(tmp_path, no_md5):
    wrong = list(CIFAR100_COARSE)
    wrong[0], wrong[1] = wrong[1], wrong[0]
    write_cifar100(tmp_path, wrong)
    with pytest.raises(ValueError, match="official CIFAR-100 map at fine classes \\[0, 1\\]"):
        load_cifar100(str(tmp_path))


def test_svhn_fixture(tmp_path, no_md5):
    write_svhn(tmp_path / "svhn")
    d = load_svhn(str(tmp_path / "svhn"), cache_dir=str(tmp_path / "cache"))
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (10, 3, 32, 32)
    assert d.y_train[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # label 10 is digit 0
    assert not d.augment


def test_celeba_smiling_and_identities(tmp_path, no_md5):
    rows = write_celeba(tmp_path)
    d = load_celeba(str(tmp_path), cache_dir=str(tmp_path / "cache"), image_size=8, num_workers=0)
    train = [r for r in rows if r[2] == 0]
    assert d.x_train.shape == (len(train), 3, 8, 8) and d.x_test.shape == (6, 3, 8, 8)
    assert d.y_train.tolist() == [(r[3][2] + 1) // 2 for r in train]  # the Smiling column, -1/1 -> 0/1
    assert d.group_train.tolist() == [r[1] for r in train] and d.classes == ["not_Smiling", "Smiling"]
    assert d.to_coarse() is d  # labels are already what is trained on; identities are the groups
    split = Group(forget_group=None, forget_group_fraction=0.2).split(d.to_coarse(), seed=0)
    forgotten = set(d.group_train[split.forget].tolist())
    assert len(forgotten) == 2 and not forgotten & set(d.group_train[split.retain].tolist())
    assert set(d.y_train[split.forget].tolist()) == {0, 1}  # smiling and non-smiling images alike
    with pytest.raises(ValueError, match="attribute='Smiles'"):
        load_celeba(str(tmp_path), attribute="Smiles", image_size=8, num_workers=0)


def test_imagefolder_subsample_superclasses_and_cache(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "set", test="val")
    (tmp_path / "super.yaml").write_text("cat: animal\ndog: animal\ncar: vehicle\n")
    kw = dict(root=str(tmp_path / "set"), image_size=8, cache_dir=str(tmp_path / "cache"), num_workers=0)
    d = load_imagefolder(**kw, per_class_train=3, superclasses=str(tmp_path / "super.yaml"))
    assert d.classes == ["car", "cat", "dog"] and d.x_train.shape == (9, 3, 8, 8) and d.x_test.shape == (6, 3, 8, 8)
    assert d.y_train.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert d.coarse_of.tolist() == [1, 0, 0] and d.coarse_classes == ["animal", "vehicle"]
    c = d.to_coarse()
    assert c.classes == ["animal", "vehicle"] and torch.equal(c.group_train, d.y_train)
    monkeypatch.setattr("unlearn.data.imagefolder.decode_files", lambda *a: pytest.fail("decoded again"))
    again = load_imagefolder(**kw, per_class_train=3, superclasses={"cat": "a", "dog": "a", "car": "v"})
    assert torch.equal(again.x_train, d.x_train) and again.coarse_classes == ["a", "v"]
    with pytest.raises(ValueError, match="no superclass for classes \\['dog'\\]"):
        load_imagefolder(**kw, superclasses={"cat": "a", "car": "v"})


def test_imagefolder_lazy_store(tmp_path):
    write_imagefolder(tmp_path / "set")
    d = load_imagefolder(str(tmp_path / "set"), image_size=8, in_memory=False, num_workers=2)
    assert isinstance(d.x_train, LazyImages) and d.input_shape == (3, 8, 8) and len(d.x_train) == 12
    eager = load_imagefolder(str(tmp_path / "set"), image_size=8, num_workers=0)
    idx = torch.tensor([5, 0, 11])
    view = d.to(torch.device("cpu")).x_train[idx]
    assert isinstance(view, LazyImages) and len(view[1:]) == 2  # indexing stays lazy
    assert torch.equal(view.load(), eager.x_train[idx])
    torch.testing.assert_close(d.prepare(view), eager.prepare(eager.x_train[idx]))
    with pytest.raises(ValueError, match="image_size=None"):
        load_imagefolder(str(tmp_path / "set"), in_memory=False)


def test_imagefolder_mixed_sizes_need_image_size(tmp_path):
    write_imagefolder(tmp_path / "set")
    Image.new("RGB", (5, 7)).save(tmp_path / "set" / "train" / "cat" / "odd.png")
    with pytest.raises(ValueError, match="dataset.image_size"):
        load_imagefolder(str(tmp_path / "set"), num_workers=0)


@pytest.mark.parametrize("load, kw, expect", [
    (load_cifar10, {}, "cifar-10-batches-py/data_batch_1"),
    (load_cifar100, {}, "cifar-100-python/train"),
    (load_svhn, {}, "train_32x32.mat"),
    (load_celeba, {}, "celeba/list_attr_celeba.txt"),
    (load_imagefolder, {}, "train does not exist"),
], ids=["cifar10", "cifar100", "svhn", "celeba", "imagefolder"])
def test_missing_root_says_what_and_how(tmp_path, load, kw, expect):
    with pytest.raises(MissingDataError, match=expect) as err:
        load(str(tmp_path / "nowhere"), **kw)
    assert str(tmp_path / "nowhere") in str(err.value)
    assert "download=true" in str(err.value) or "Point dataset.root" in str(err.value)


def test_incomplete_cifar_root_lists_the_missing_file(tmp_path):
    write_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(MissingDataError, match="test_batch") as err:
        load_cifar10(str(tmp_path))
    assert "data_batch_1" not in str(err.value)


def _write(name, root):
    if name.startswith("cifar100"):
        write_cifar100(root)
    elif name == "cifar10":
        write_cifar10(root)
    elif name == "svhn":
        write_svhn(root)
    elif name == "celeba":
        write_celeba(root)
    else:
        write_imagefolder(root)


E2E = [
    ("cifar10", ["paradigm=classwise"]),
    ("cifar100_super", ["paradigm=group", "paradigm.forget_group=3"]),
    ("svhn", ["paradigm=random", "paradigm.forget_fraction=0.5"]),
    ("celeba", ["paradigm=group", "paradigm.forget_group=null", "paradigm.forget_group_fraction=0.2",
                "dataset.image_size=8", "dataset.num_workers=0"]),
    ("imagefolder", ["paradigm=group", "paradigm.forget_group=1", "dataset.image_size=8",
                     "dataset.superclasses={cat:a,dog:a,car:v}"]),
    ("imagenet", ["paradigm=random", "paradigm.forget_fraction=0.25", "dataset.image_size=8", "dataset.test_dir=test"]),
]


@pytest.mark.parametrize("name, extra", E2E, ids=[e[0] for e in E2E])
def test_dataset_config_runs_end_to_end(tmp_path, no_md5, name, extra):
    root = tmp_path / "data"
    _write(name, root)
    cfg = compose_cfg([f"dataset={name}", f"dataset.root={root}", "model=cnn", "model.width=4", "device=cpu",
                       "wandb.mode=disabled", "train.epochs=1", "train.batch_size=16", "method.epochs=1",
                       "eval.mia_shadow_size=4", *extra], tmp_path)
    m = run_experiment(cfg)
    assert all(np.isfinite(m[k]) for k in ("UA", "RA", "TA", "original/TA"))


def test_every_dataset_yaml_builds_or_says_where(tmp_path):
    """Each config composes and, pointed at an empty folder, fails with the missing-data message."""
    for name in VISION:
        cfg = compose_cfg([f"dataset={name}", f"dataset.root={tmp_path}/empty"], tmp_path)
        assert cfg.dataset.name == name
        with pytest.raises(Exception) as err:  # Hydra wraps the loader's error, keeping it as the cause
            build(cfg.dataset)
        assert isinstance(err.value.__cause__ or err.value, MissingDataError), err.value


@pytest.mark.shared_data
def test_cifar10_jpg_subsample_and_superclasses(tmp_path):
    cfg = compose_cfg(["dataset=cifar10_jpg", f"dataset.root={SHARED_DATA}/cifar10-jpg",
                       "dataset.per_class_train=7", "dataset.per_class_test=3"], tmp_path)
    d = build(cfg.dataset)
    assert d.x_train.shape == (70, 3, 32, 32) and d.x_test.shape == (30, 3, 32, 32)
    assert d.classes[0] == "airplane" and d.coarse_classes == ["animal", "vehicle"]
    assert [d.classes[i] for i in torch.nonzero(d.coarse_of).flatten()] == ["airplane", "automobile", "ship", "truck"]
    assert torch.bincount(d.y_train).tolist() == [7] * 10


@pytest.mark.shared_data
@pytest.mark.slow  # ~15 s alone, ~50 s on a loaded 2-core machine (startup, decode, 3 trainings)
def test_run_py_on_real_cifar10_subset(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [sys.executable, "run.py", "dataset=cifar10_jpg", f"dataset.root={SHARED_DATA}/cifar10-jpg",
         "dataset.per_class_train=20", "dataset.per_class_test=10", "model=cnn", "model.width=8",
         "paradigm=group", "train.epochs=2", "method.epochs=1", "wandb.mode=disabled", f"cache_dir={tmp_path}/cache",
         f"results_csv={tmp_path}/runs.csv", f"run_dir={tmp_path}/run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").exists() and list((tmp_path / "cache" / "data").glob("cifar10-jpg-*.pt"))


def test_lazy_images_prefetch_the_next_evaluation_batch_and_the_paired_mate_batch(tmp_path, monkeypatch):
    """Evaluation decodes batch i+1 while batch i computes; UGradSL+'s forget mate decodes beside its retain
    batch whenever the next draw needs no reshuffle (peeking draws nothing): the numbers stay those of the eager
    store, bit for bit."""
    from tests.conftest import compose_cfg
    from unlearn.metrics import predict_probs
    from unlearn.models.cnn import CNN
    from unlearn.train import Cycler
    from unlearn.workspace import run_experiment
    write_imagefolder(tmp_path / "set", n=(6, 2))
    lazy = load_imagefolder(str(tmp_path / "set"), image_size=8, in_memory=False, num_workers=2)
    eager = load_imagefolder(str(tmp_path / "set"), image_size=8, num_workers=0)
    seen, real = [], LazyImages.prefetch
    monkeypatch.setattr(LazyImages, "prefetch", lambda self: (seen.append(list(self.files)), real(self))[1])
    torch.manual_seed(0)
    model = CNN(3, (3, 8, 8), width=4)
    assert torch.equal(predict_probs(model, lazy, lazy.x_train, 5), predict_probs(model, eager, eager.x_train, 5))
    files = list(lazy.x_train.files)
    assert seen == [files[5:10], files[10:15], files[15:18]]  # each next batch, never the first

    peeked, real_peek = [], Cycler.peek
    monkeypatch.setattr(Cycler, "peek", lambda self, n: (peeked.append(real_peek(self, n)), peeked[-1])[1])

    def run(in_memory: bool) -> dict:
        seen.clear()
        peeked.clear()
        cfg = compose_cfg(["dataset=imagefolder", f"dataset.root={tmp_path / 'set'}", "dataset.image_size=8",
                           f"dataset.in_memory={str(in_memory).lower()}", "dataset.num_workers=1", "model=cnn",
                           "method=ugradsl_plus", "method.epochs=3", "method.batch_size=4", "train.epochs=2",
                           "paradigm=random", "paradigm.forget_fraction=0.3", "device=cpu", "wandb.mode=disabled",
                           f"cache_dir={tmp_path / ('cache_m' if in_memory else 'cache_l')}"], tmp_path)
        return run_experiment(cfg)
    lazy_metrics = run(False)
    mates = [files[i] for ahead in peeked if ahead is not None for i in ahead.tolist()]
    assert mates and all(any(f in batch for batch in seen) for f in mates)  # every peeked mate was prefetched
    assert any(ahead is None for ahead in peeked)  # at a reshuffle it waits for the draw
    eager_metrics = run(True)
    assert not peeked  # an in-memory store has nothing to prefetch: the loop does not even peek
    same = [k for k in lazy_metrics if not any(t in k for t in ("RTE", "seconds", "time"))]  # all but wall times
    assert {"UA", "RA", "TA", "MIA", "retrain/UA"} <= set(same)
    assert {k: lazy_metrics[k] for k in same} == {k: eager_metrics[k] for k in same}


def test_peeking_a_cycler_draws_nothing_and_shows_the_next_take():
    from unlearn.train import Cycler
    a, b = (Cycler(torch.arange(10), torch.Generator().manual_seed(3)) for _ in range(2))
    assert a.peek(4) is None  # nothing drawn yet: the first take shuffles
    takes = []
    for n in (4, 4, 4, 4):
        ahead = a.peek(n)
        got = a.take(n)
        takes.append(got)
        assert ahead is None or torch.equal(ahead, got)
    assert [t.tolist() for t in takes] == [b.take(n).tolist() for n in (4, 4, 4, 4)]  # peeking changed no draw
    assert a.peek(3) is not None and a.peek(3).tolist() == a.take(3).tolist()
