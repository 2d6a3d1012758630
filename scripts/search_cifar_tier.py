"""Search the CIFAR-10 CPU tier (issue 19): train each candidate's original model and Retrain (random 10% D_f,
seed 0) through the real pipeline and record what they reach and cost.

    .venv/bin/python scripts/search_cifar_tier.py [--only NAME ...] [--out results/tier/cifar10_tier_search.csv]

Each candidate is a list of Hydra overrides of experiment=cifar10_random_fast_cpu. A row per candidate: images,
epochs, threads, minutes per training (original and Retrain, one torch thread), train / test accuracy of the
original, Retrain's UA on D_f, the original's MIA-efficacy on D_f, and the machine's load average (1 min)
around the training, since the machine is shared. Rows already in the CSV are kept; a candidate is rerun only
when named with --only. Trained models go to the run cache (cache_dir), so a rerun of the same candidate is
free and `run.py experiment=cifar10_random_fast_cpu` reuses the chosen tier's models.
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from unlearn.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
BASE = ["experiment=cifar10_random_fast_cpu", "method=retrain", "seed=0", "threads=1", "device=cpu",
        "wandb.mode=disabled", "checkpoint_every=1"]  # the resume file keeps the curve
# name -> overrides of BASE; the chosen tier is the experiment's defaults ("airbench_20k"). Rows of the first
# FastCNN (conv stem, plain SGD; before the airbench recipe) are kept in cifar10_tier_search_v1.csv.
CANDIDATES = {
    "airbench_20k": [],  # 20,000 images x 16 passes (6 clean)
    "airbench_20k_ls02": ["train.label_smoothing=0.2"],  # airbench's label smoothing in the augmented passes
    "airbench_10k_no_lookahead": ["dataset.per_class_train=1000", "train.lookahead=false"],  # the averaging's share
    "airbench_10k": ["dataset.per_class_train=1000"],  # half the images: half the minutes
    "airbench_40k": ["dataset.per_class_train=4000", "train.epochs=14"],  # accuracy at ~2x the minutes
    "airbench_20k_wide": ["model.widths=[32,128,128]"],  # wider blocks 2 and 3: ~1.5x the minutes
    "resnet18_w8": ["model=resnet18"],  # regime_model/cifar_fast_cpu_resnet18.yaml: width 8, its own recipe
    "airbench_20k_fp32": ["precision=fp32"],  # the tier's recipe in fp32: what a CPU without bf16 instructions runs
    # at full speed (another configuration: other cache keys and numbers; docs/tier.md)
}
COLUMNS = ["candidate", "model", "images", "epochs", "clean_epochs", "precision", "threads", "original_minutes",
           "retrain_minutes", "original_cpu_minutes", "retrain_cpu_minutes", "train_acc", "test_acc", "original_UA", "retrain_UA", "retrain_TA", "original_MIA",
           "load_before", "load_after", "cpu", "overrides"]


def cpu() -> str:
    """The instruction set torch runs on and whether it has bf16 instructions: minutes depend on both."""
    from unlearn.steps import bf16_native
    native = bf16_native(torch.device("cpu"))
    return f"{torch.backends.cpu.get_cpu_capability()}, bf16 {'yes' if native else 'no' if native is False else '?'}"


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def timed(train) -> tuple:
    """(model, info, CPU minutes of this process), the minutes blank when the model came from the cache."""
    cpu, wall = time.process_time(), time.perf_counter()
    model, info = train()
    trained_here = time.perf_counter() - wall >= info["train_seconds"]
    return model, info, f"{(time.process_time() - cpu) / 60:.2f}" if trained_here else ""


def run(name: str, overrides: list[str], cache_dir: str, retrain_first: bool = False) -> dict:
    """Train (or load from the cache) one candidate's original and Retrain models and evaluate both.

    `retrain_first`: a second process started with it trains Retrain while the first trains the original (the two
    do not depend on each other), so a candidate costs one training of wall time on two cores."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*BASE, f"cache_dir={cache_dir}", "results_csv=null",
                                           f"run_dir={tempfile.mkdtemp(prefix=f'tier-{name}-')}", *overrides])
    before = load()
    ws = Workspace(cfg)
    if retrain_first:
        retrain, r_info, cpu_retrain = timed(ws.refs.retrain)
        original, o_info, cpu_original = timed(ws.refs.original)
    else:
        original, o_info, cpu_original = timed(ws.refs.original)
        retrain, r_info, cpu_retrain = timed(ws.refs.retrain)
    after = load()
    m, r = ws.evaluate(original), ws.evaluate(retrain)
    n_f, n_r = m["forget/size"], m["retain/size"]
    train_acc = ((100.0 - m["UA"]) * n_f + m["RA"] * n_r) / (n_f + n_r)
    return {"candidate": name, "model": cfg.model.name, "images": int(n_f + n_r), "epochs": cfg.train.epochs,
            "clean_epochs": cfg.train.get("clean_epochs", 0), "precision": cfg.precision,
            "threads": torch.get_num_threads(), "original_minutes": f"{o_info['train_seconds'] / 60:.2f}",
            "retrain_minutes": f"{r_info['train_seconds'] / 60:.2f}",
            "original_cpu_minutes": cpu_original, "retrain_cpu_minutes": cpu_retrain, "train_acc": f"{train_acc:.2f}",
            "test_acc": f"{m['TA']:.2f}", "original_UA": f"{m['UA']:.2f}", "retrain_UA": f"{r['UA']:.2f}",
            "retrain_TA": f"{r['TA']:.2f}", "original_MIA": f"{m['MIA']:.2f}", "load_before": before,
            "load_after": after, "cpu": cpu(), "overrides": " ".join(overrides)}


def flops(overrides: list[str], images: int = 50_000) -> str:
    """FLOPs of one training step per sample (forward + backward, torch's FlopCounterMode) and of one training of
    the candidate's recipe on `images` images (the paper-scale option: all of CIFAR-10)."""
    from torch.utils.flop_counter import FlopCounterMode
    from unlearn.workspace import build
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*BASE, *overrides])
    model = build(cfg.model, num_classes=10, input_shape=[3, 32, 32])
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    per_sample = counter.get_total_flops() / len(x)
    total = per_sample * images * cfg.train.epochs
    return (f"{cfg.model.name}: {per_sample / 1e6:.1f} MFLOP per training sample; {cfg.train.epochs} passes over "
            f"{images:,} images = {total:.2e} FLOPs per training")


def markdown(rows: list[dict]) -> str:
    """The README's search table from the CSV rows."""
    head = ["candidate", "model", "images", "epochs (clean)", "min/training wall (CPU)", "train acc", "test acc",
            "Retrain UA", "original MIA", "load", "CPU", "overrides"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        minutes = (f"{r['original_minutes']} / {r['retrain_minutes']} "
                   f"({r['original_cpu_minutes']} / {r['retrain_cpu_minutes']})")
        cells = [r["candidate"], r["model"], r["images"], f"{r['epochs']} ({r['clean_epochs']})", minutes,
                 r["train_acc"], r["test_acc"], r["retrain_UA"], r["original_MIA"],
                 f"{r['load_before']}-{r['load_after']}", r.get("cpu") or "not recorded",
                 f"`{r['overrides']}`" if r["overrides"] else ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="candidates to (re)run; default: those not in the CSV")
    ap.add_argument("--out", default=str(ROOT / "results" / "tier" / "cifar10_tier_search.csv"))
    ap.add_argument("--cache-dir", default=str(ROOT / "results" / "cache"))
    ap.add_argument("--retrain-first", action="store_true", help="train Retrain before the original (run beside "
                    "a process without it: one trains each model, and the CSV merges their CPU minutes)")
    ap.add_argument("--markdown", action="store_true", help="print the CSV as the README's table and stop")
    ap.add_argument("--flops", action="store_true", help="print each candidate's FLOPs per training on all 50,000 "
                    "images (the GPU estimate of the paper-scale option) and stop")
    args = ap.parse_args()
    if args.flops:
        for name in args.only or CANDIDATES:
            print(f"{name}: {flops(CANDIDATES[name])}")
        return
    if args.markdown:
        with open(args.out) as f:
            print(markdown(list(csv.DictReader(f))))
        return
    unknown = sorted(set(args.only or []) - set(CANDIDATES))
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; allowed: {sorted(CANDIDATES)}")
    out = Path(args.out)
    rows = {}
    if out.exists():
        with out.open() as f:
            rows = {r["candidate"]: r for r in csv.DictReader(f)}
    todo = args.only if args.only is not None else [c for c in CANDIDATES if c not in rows]
    for name in todo:
        print(f"{name}: {' '.join(CANDIDATES[name]) or '(tier defaults)'} ...", flush=True)
        row = run(name, CANDIDATES[name], args.cache_dir, args.retrain_first)
        print({k: row[k] for k in COLUMNS[:-1]}, flush=True)
        if out.exists():  # the process beside this one may have written the candidate since: keep its CPU minutes
            with out.open() as f:
                rows.update({r["candidate"]: r for r in csv.DictReader(f)})
        old = rows.get(name, {})
        for key in ("original_cpu_minutes", "retrain_cpu_minutes"):
            row[key] = row[key] or old.get(key, "")
        rows[name] = row
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows[c] for c in CANDIDATES if c in rows)
        tmp.replace(out)


if __name__ == "__main__":
    main()
