"""How many CPU cores a paper-scale ImageNet job needs to keep its GPU fed: images/s per core of each part of the
lazily decoded pipeline (`unlearn.data.lazy.LazyImages`), measured side by side on ImageNet-sized JPEGs, and the
cores each path needs at the GPU's training rate. Writes results/bench/decode.csv (and .md, which
docs/scaling-out.md includes).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_decode.py [--images 200] [--speedups 1,4]   # or: make bench-decode

Paths, one image at a time on one thread (the preset's decoding threads each do this):
- read: the file's bytes only, the CPU's whole share when the GPU decodes (decoder=auto on CUDA, nvJPEG);
- pil_train: PIL decode + the random resized crop to 224 and flip (the CPU path of a training batch);
- pil_eval: PIL decode + resize 256 and centre crop 224 (evaluation passes);
- tv_cpu: torchvision's libjpeg-turbo decode on the CPU + the same crop as tensor ops;
- gpu: nvJPEG batched decode + crop on the device, per image (only where CUDA is present; not measured here).

The GPU's rate is the paper's own: ImageNet Retrain took 26.18 GPU-hours for 90 epochs over D_r (Table 1,
`unlearn/tables/paper_values.csv`), about 1,200 images/s; `--speedups` scales it for newer GPUs (4: an H100-class
GPU in bf16, an assumption, not a measurement). The images are synthetic (smooth colour fields with grain, 500x375,
JPEG quality 92, ~ImageNet's mean file size), so decoding costs what real photographs of that size cost.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from PIL import Image

from unlearn.data.lazy import _open_rgb, _read, decode_jpegs, transform_tensor
from unlearn.data.store import DRAWS, _to_tensor, load_image, random_resized_box
from unlearn.paths import CONF
from unlearn.tables.limits import paper_minutes
from unlearn.tables.paper import paper_values
from unlearn.tables.preset import load

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench" / "decode.csv"
IMAGENET_TRAIN = 1_281_167  # ILSVRC-2012 training images; class-wise D_f is one class of 1,000


def paper_rate() -> float:
    """Training images/s of the paper's GPU: Table 1's ImageNet Retrain RTE (as `estimate` reads it) over the
    ImageNet recipe's epochs of D_r."""
    preset = load("table1", "paper")
    block = next(b for b in preset.blocks if b.name == "ImageNet")
    minutes = paper_minutes(preset, block, paper_values())[0]["retrain"]
    epochs = OmegaConf.load(CONF / "train" / "imagenet_paper.yaml").epochs
    return epochs * IMAGENET_TRAIN * (1 - 1 / 1000) / (minutes * 60)


def write_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        field = rng.random((12, 16, 3)) * 255  # a smooth colour field, upsampled, with grain: photo-like entropy
        im = Image.fromarray(field.astype(np.uint8)).resize((500, 375), Image.BICUBIC)
        grain = rng.normal(0, 16, (375, 500, 3))
        im = Image.fromarray(np.clip(np.asarray(im) + grain, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=92)
        path = folder / f"{i:05d}.JPEG"
        path.write_bytes(buf.getvalue())
        files.append(path)
    return files


def per_second(fn, items) -> float:
    fn(items[0])  # warm-up (library loading)
    start = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200, help="synthetic JPEGs to decode (each path decodes all)")
    ap.add_argument("--speedups", default="1,4", help="GPU rates as multiples of the paper's GPU")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    if args.images < 2:
        ap.error(f"--images={args.images} is invalid; allowed: an integer >= 2")
    speedups = [float(s) for s in args.speedups.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_images(Path(tmp), args.images)
        kb = sum(f.stat().st_size for f in files) / len(files) / 1024
        boxes = torch.rand(len(files), DRAWS, generator=g).tolist()
        names = [str(f) for f in files]
        pairs = list(zip(names, boxes))
        cpu = torch.device("cpu")
        rates = {
            "read": per_second(_read, names),
            "pil_train": per_second(lambda fb: _to_tensor(_open_rgb(fb[0]), 224, None,
                                                          lambda h, w: random_resized_box(fb[1], h, w)), pairs),
            "pil_eval": per_second(lambda f: load_image(f, size=224, resize=256), names),
            "tv_cpu": per_second(lambda fb: transform_tensor(decode_jpegs([_read(fb[0])], [fb[0]], cpu)[0], 224, None,
                                                             lambda h, w: random_resized_box(fb[1], h, w)), pairs),
        }
        if torch.cuda.is_available():
            dev = torch.device("cuda")
            data = [_read(f) for f in names]
            decode_jpegs(data[:2], names[:2], dev)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(0, len(data), 64):
                imgs = decode_jpegs(data[i:i + 64], names[i:i + 64], dev)
                torch.stack([transform_tensor(im, 224, None, (0, 0, 224, 224, False)) for im in imgs])
            torch.cuda.synchronize()
            rates["gpu"] = len(data) / (time.perf_counter() - start)
    gpu = paper_rate()
    print(f"{args.images} JPEGs of 500x375, {kb:.0f} KB on average; one thread; load average {load:.2f} on "
          f"{os.cpu_count()} cores; {platform.processor() or platform.machine()}")
    print(f"the paper's GPU trains {gpu:,.0f} images/s (Table 1's ImageNet Retrain RTE)")
    rows = []
    for path, rate in rates.items():
        need = {f"cores_at_x{s:g}": ("n/a" if path == "gpu" else math.ceil(gpu * s / rate)) for s in speedups}
        rows.append({"path": path, "images_per_s_per_core": round(rate, 1), **need, "mean_kb": round(kb),
                     "load": round(load, 2), "threads": 1, "torch": torch.__version__})
        print(f"{path:<10} {rate:9.1f} images/s per core   " + "   ".join(
            f"x{s:g}: {need[f'cores_at_x{s:g}']} cores" for s in speedups))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out, index=False)
    head = (f"Measured by `OMP_NUM_THREADS=1 scripts/bench_decode.py --images {args.images}` on one thread "
            f"(load average {load:.2f} on {os.cpu_count()} cores, torch {torch.__version__}): {args.images} JPEGs of "
            f"500x375, {kb:.0f} KB on average; the paper's GPU trains {gpu:,.0f} images/s. Cores needed = that rate "
            f"(x the speedup) / images/s per core, rounded up.")
    cols = ["path", "images_per_s_per_core", *[c for c in table.columns if c.startswith("cores_at_")]]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
             *["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]]
    out.with_suffix(".md").write_text(head + "\n\n" + "\n".join(lines) + "\n")
    print(f"written: {out}, {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)  # the decoding threads' view: one core each
    raise SystemExit(main())
