"""The CIFAR-10 tier's training step in bf16 autocast (its step mechanics, experiment/cifar10_random_fast_cpu.yaml)
and in fp32, side by side on this CPU, and what that makes one training of the original model cost here:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tier_precision.py [--steps 5] [--repeats 3]

FastCNN as the tier builds it (conf/model/fastcnn.yaml; whitening fitted before the first step), the tier's optimiser
(conf/train/cifar_fast_cpu.yaml) at its batch of 256, on synthetic normalised 32x32 images (a step's cost depends on
shapes only). Each repeat times `--steps` steps of each precision after one warm-up step, the two interleaved; the
best repeat counts. A CPU with avx512_bf16 or amx_bf16 runs bf16 in hardware; one without emulates it (steps.py).
Writes results/bench/tier_precision.csv (one row per CPU model, capability and precision: a rerun on another machine
adds its rows, the same machine replaces its own) and .md.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch
from hydra import compose, initialize_config_dir

from unlearn.groups import build
from unlearn.identity import register_resolvers
from unlearn.paths import CONF
from unlearn.steps import Compute, bf16_native
from unlearn.train import Recipe

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench" / "tier_precision.csv"
KEYS = ["cpu", "cpu_capability", "bf16_instructions", "threads", "precision"]


def tier():
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["experiment=cifar10_random_fast_cpu", "method=ga", "wandb.mode=disabled"])


def cpu_name() -> str:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return "unknown"


def build_model(cfg):
    torch.manual_seed(0)
    model = build(cfg.model, num_classes=10, input_shape=[3, 32, 32])
    model.init_from_data(torch.randn(1000, 3, 32, 32))
    return model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per precision and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="images per step (default: the tier's recipe's)")
    ap.add_argument("--out", type=Path, default=OUT, help="the CSV (a .md beside it)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or (args.batch is not None and args.batch < 1):
        raise SystemExit(f"--steps {args.steps} --repeats {args.repeats} --batch {args.batch}: allowed integers >= 1")
    cfg = tier()
    recipe = Recipe(**cfg.train)
    batch = args.batch or recipe.batch_size
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)
    tier_compute = Compute(**{k: cfg[k] for k in ("precision", "channels_last", "compile", "cudnn")})
    steppers = {}
    for precision in ("bf16", "fp32"):
        model = build_model(cfg)
        compute = dataclasses.replace(tier_compute, precision=precision)
        steppers[precision] = (model, compute.stepper(model, recipe.optimizer_for(model.parameters())))

    def step(precision):
        model, stepper = steppers[precision]
        with stepper.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        stepper(loss)

    best = {p: float("inf") for p in steppers}
    for p in steppers:
        step(p)  # warm-up: kernel selection, allocations
    for _ in range(args.repeats):
        for p in steppers:
            start = time.perf_counter()
            for _ in range(args.steps):
                step(p)
            best[p] = min(best[p], (time.perf_counter() - start) / args.steps)
    images = int(cfg.dataset.per_class_train) * 10
    epochs = int(cfg.train.epochs)
    native = bf16_native(torch.device("cpu"))
    rows = [{"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
             "bf16_instructions": {True: "yes", False: "no", None: "unknown"}[native],
             "threads": torch.get_num_threads(), "precision": p, "seconds_per_step": round(s, 4),
             "images_per_s": round(batch / s, 1),
             "original_minutes": round(images * epochs / (batch / s) / 60, 1)} for p, s in best.items()]
    ratio = best["bf16"] / best["fp32"]
    for r in rows:
        r["bf16_over_fp32_time"] = round(ratio, 2)
    new = pd.DataFrame(rows)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file():
        old = pd.read_csv(out)
        mine = old[KEYS].astype(str).apply(tuple, axis=1).isin(new[KEYS].astype(str).apply(tuple, axis=1))
        new = pd.concat([old[~mine], new], ignore_index=True)
    new.to_csv(out, index=False)
    md = out.with_suffix(".md")
    md.write_text(f"Measured by `OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tier_precision.py --steps "
                  f"{args.steps} --repeats {args.repeats}{f' --batch {batch}' if args.batch else ''}`: FastCNN training steps of the CIFAR-10 tier (batch {batch}),"
                  f" best of the repeats; `original_minutes` = {images:,} images x {epochs} epochs at that rate (steps "
                  f"only, no evaluation).\n\n" + new.to_markdown(index=False) + "\n")
    print(new.to_string(index=False))
    print(f"bf16 takes {ratio:.2f}x the time of fp32 per step on this CPU (bf16 instructions: "
          f"{rows[0]['bf16_instructions']}); written {out} and {md}")


if __name__ == "__main__":
    main()
