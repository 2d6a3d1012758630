"""Training-loop throughput side by side, on the same model and the same CIFAR-10 JPEG images (one process):

  bare       the compute alone: normalised float tensors in memory, forward + cross-entropy + backward + SGD step
  GA         the project's GA (unlearn.methods: shared loop, uint8 batches normalised and augmented on the device)
  UGradSL    the project's UGradSL (each forget batch paired with a retain batch: two forward passes per step)
  GA lazy    GA on lazily decoded JPEGs (dataset in_memory=false, ImageNet's path), the next batch decoded in the
             background (prefetch) and, for comparison, without prefetch (decode and compute alternate)
  public     the public codes' loop: torchvision ImageFolder + per-sample PIL transforms (RandomCrop(32, 4),
             RandomHorizontalFlip, ToTensor, Normalize) + DataLoader

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_loops.py [--images 1280] [--batch 64] [--repeats 3]

Images/s of one pass over D_f (best of --repeats passes, after one warm-up pass); UGradSL's row also gives its
time per forget epoch relative to GA's. Needs ../shared/data/cifar10-jpg (or $UNLEARN_SHARED_DATA); exits 0 with
a note when it is absent.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torchvision
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torchvision import transforms

from unlearn.data.base import Data
from unlearn.data.lazy import LazyImages
from unlearn.data.store import decode_files
from unlearn.methods.base import Task
from unlearn.paradigms import Split

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("UNLEARN_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cifar10-jpg"
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # conf/dataset/cifar10_jpg.yaml
MODELS = {"ResNet-18 w16": ("resnet18", {"width": 16, "stem": "cifar"}), "CNN w32": ("cnn", {"width": 32})}


def pick_files(n: int) -> list[tuple[str, int]]:
    """The first n / 10 training JPEGs of every class (sorted names), with their labels: 2n for D_f + D_r."""
    classes = sorted(p.name for p in (DATA / "train").iterdir() if p.is_dir())
    per = n // len(classes)
    return [(str(f), c) for c, name in enumerate(classes) for f in sorted((DATA / "train" / name).iterdir())[:per]]


def model_for(name: str):
    target, sizing = MODELS[name]
    spec = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / f"{target}.yaml"))
    for meta in ("name", "modality", "num_classes", "input_shape"):
        spec.pop(meta)
    torch.manual_seed(0)
    return instantiate({**spec, **sizing}, num_classes=10, input_shape=[3, 32, 32])


def method(name: str, batch: int):
    """The method as configured (conf/method/<name>.yaml), one epoch at `batch` samples per step."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        node = compose("config", overrides=[f"method={name}", "dataset=synthetic"]).method
    spec = OmegaConf.to_container(node, resolve=True)
    spec.pop("name")
    return instantiate({**spec, "epochs": 1, "batch_size": batch})


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bare(model, x: torch.Tensor, y: torch.Tensor, batch: int):
    def run():
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            b = perm[i:i + batch]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return run


def public(model, files: list[tuple[str, int]], batch: int, workers: int):
    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    folder = torchvision.datasets.ImageFolder(str(DATA / "train"), transform=tf)
    wanted = {f for f, _ in files}
    subset = torch.utils.data.Subset(folder, [i for i, (f, _) in enumerate(folder.samples) if f in wanted])
    loader = torch.utils.data.DataLoader(subset, batch_size=batch, shuffle=True, num_workers=workers)

    def run():
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return run


def project(name: str, model, data: Data, split: Split, batch: int):
    m, task = method(name, batch), Task(data, split, torch.device("cpu"), 0)
    return lambda: m(model, task)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1280, help="|D_f| (D_r is as large; a multiple of 10)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the public loop (0 = in process)")
    ap.add_argument("--decode-threads", type=int, default=2, help="LazyImages decoding threads (GA lazy)")
    args = ap.parse_args()
    if not (DATA / "train").is_dir():
        print(f"skipped: {DATA} is absent (set UNLEARN_SHARED_DATA to the folder holding cifar10-jpg/)")
        return
    files = pick_files(2 * args.images)
    n = len(files) // 2
    x = decode_files([f for f, _ in files], None)  # the project's decoder: uint8 [N, 3, 32, 32]
    y = torch.tensor([c for _, c in files])
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))
    split = Split(forget=order[:n].sort().values, retain=order[n:].sort().values, test=torch.arange(10))
    common = dict(name="cifar10_jpg", y_train=y, x_test=x[:10], y_test=y[:10], num_classes=10, mean=MEAN, std=STD,
                  augment=True)
    data = Data(x_train=x, **common)
    lazy = Data(x_train=LazyImages([f for f, _ in files], 32, args.decode_threads), **common)
    xf, yf = data.prepare(x[split.forget]), y[split.forget]  # bare: normalised floats of D_f, no augmentation
    print(f"{n} forget images (+{n} retain), batch {args.batch}, torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, best of {args.repeats}")
    header = f"{'model':<15}{'bare':>8}{'GA':>8}{'UGradSL':>9}{'GA lazy':>9}{'no prefetch':>12}{'public':>8}" \
             f"{'GA/bare':>9}{'GA/public':>10}{'UGradSL/GA time':>16}"
    print(header + "\n" + "-" * len(header))
    for label in MODELS:
        model = model_for(label)
        seconds = {
            "bare": timed(bare(model, xf, yf, args.batch), args.repeats),
            "GA": timed(project("ga", model, data, split, args.batch), args.repeats),
            "UGradSL": timed(project("ugradsl", model, data, split, args.batch), args.repeats),
            "GA lazy": timed(project("ga", model, lazy, split, args.batch), args.repeats),
        }
        prefetch = LazyImages.prefetch
        LazyImages.prefetch = lambda self: None  # decode each batch when it is used: decode and compute alternate
        try:
            seconds["no prefetch"] = timed(project("ga", model, lazy, split, args.batch), args.repeats)
        finally:
            LazyImages.prefetch = prefetch
        seconds["public"] = timed(public(model, [files[i] for i in split.forget.tolist()], args.batch,
                                         args.workers), args.repeats)
        ips = {k: n / s for k, s in seconds.items()}
        print(f"{label:<15}{ips['bare']:>8.0f}{ips['GA']:>8.0f}{ips['UGradSL']:>9.0f}{ips['GA lazy']:>9.0f}"
              f"{ips['no prefetch']:>12.0f}{ips['public']:>8.0f}{ips['GA'] / ips['bare']:>9.2f}"
              f"{ips['GA'] / ips['public']:>10.2f}{seconds['UGradSL'] / seconds['GA']:>16.2f}", flush=True)
    print("images/s of one forget epoch; GA/bare and GA/public: throughput ratios; UGradSL/GA: time per forget epoch")


if __name__ == "__main__":
    sys.exit(main())
