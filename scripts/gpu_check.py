"""A first GPU run that says what breaks, in under 10 minutes on one GPU (run it before a paper-scale table):

    bash scripts/gpu_check.sh [--cifar ROOT] [--newsgroups ROOT] [--out results/gpu_check]

1. the machine: torch, CUDA, the GPU, its memory, bf16 support;
2. step throughput at the paper's shapes on synthetic tensors on the device (images or posts per second, peak
   memory): ResNet-18 (width 64, 32x32, batch 256) in fp32, bf16 and bf16 + channels_last, VGG-16-BN, the ViT, and
   BERT-base (random weights, batch 32 x 256 tokens, bf16);
3. a shortened paper-scale block through `run.py`: CIFAR-shaped synthetic data (10 classes x 500 images, 32x32x3)
   with the full-width ResNet-18, 2 training epochs of the original and Retrain, random forgetting, and the
   methods whose memory or speed is most at risk (UGradSL, UGradSL+, IU, FF, SCRUB): each job's first-epoch
   curves, its RTE and its metrics;
4. with `--cifar ROOT` (cifar-10-batches-py/) the same block on real CIFAR-10; with `--newsgroups ROOT` (the 20
   Newsgroups bydate folders) BERT-base with random weights through IU, FF and UGradSL;
5. with `--cifar ROOT`, Table 8's CIFAR-10 block as `make table8 SCALE=paper` runs it, through the table runner
   (`--blocks CIFAR-10`, one seed, rows Retrain, FT, GA, IU, FF, UGradSL, UGradSL+; references shortened to 2
   epochs, the methods at the paper's recipes, the MIA's binned solver): ~10-15 more minutes on one GPU.

Every result lands in `--out` (runs.csv, each job's folder, summary.txt): send summary.txt with a bug report.
`--smoke` runs the same steps on the CPU at toy sizes (the test suite does, to keep this script working).
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("ugradsl", "ugradsl_plus", "iu", "ff", "scrub")


def say(out: Path, text: str) -> None:
    print(text, flush=True)
    with open(out / "summary.txt", "a", encoding="utf-8") as f:
        f.write(text + "\n")


def machine(out: Path, device: str) -> None:
    import torch
    say(out, f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {device}")
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        say(out, f"GPU {p.name}: {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}, "
                 f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}, {torch.cuda.device_count()} GPU(s)")


def step_throughput(out: Path, device: str, smoke: bool) -> None:
    """Forward + backward + SGD step on random tensors of the paper's shapes; items/s over timed steps."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    dev = torch.device(device)
    batch, size, steps = (8, 8, 2) if smoke else (256, 32, 20)
    cases = [("resnet18", {"width": 4 if smoke else 64}, "fp32", False), ("resnet18", {"width": 4 if smoke else 64},
             "bf16", False), ("resnet18", {"width": 4 if smoke else 64}, "bf16", dev.type == "cuda"),
             ("vgg16_bn", {"width": 4 if smoke else 64}, "fp32", False), ("vit", {"depth": 1} if smoke else {}, "fp32", False)]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        specs = {name: OmegaConf.to_container(compose("config", overrides=[f"model={name}"]).model, resolve=False)
                 for name in ("resnet18", "vgg16_bn", "vit")}
    for name, keys, precision, channels_last in cases:
        spec = {k: v for k, v in specs[name].items() if k not in ("name", "modality", "num_classes", "input_shape")}
        model = instantiate({**spec, **keys}, num_classes=10, input_shape=[3, size, size]).to(dev)
        x = torch.randn(batch, 3, size, size, device=dev)
        if channels_last:
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        rate, peak = _time_steps(model, x, torch.randint(0, 10, (batch,), device=dev), precision, steps)
        label = f"{name} {keys or ''} {precision}{' channels_last' if channels_last else ''}, batch {batch}"
        say(out, f"step {label}: {rate:,.0f} images/s, peak {peak}")
    if not smoke:  # BERT-base with random weights, the paper's 20 Newsgroups shapes
        from transformers import BertConfig, BertForSequenceClassification
        model = BertForSequenceClassification(BertConfig(num_labels=20)).to(dev)
        ids = torch.randint(1000, 2000, (32, 256), device=dev)

        class Wrap(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, t):
                return self.m(input_ids=t).logits
        rate, peak = _time_steps(Wrap(model), ids, torch.randint(0, 20, (32,), device=dev), "bf16", 10)
        say(out, f"step bert-base bf16, batch 32 x 256 tokens: {rate:,.1f} posts/s, peak {peak}")


def _time_steps(model, x, y, precision: str, steps: int) -> tuple[float, str]:
    import torch
    dev = x.device
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    dtype = {"bf16": torch.bfloat16, "fp32": None}[precision]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step()  # warm-up (cuDNN algorithm choice, allocator)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    rate = steps * x.shape[0] / (time.perf_counter() - start)
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if dev.type == "cuda" else "n/a on CPU"
    return rate, peak


ONE_SHOT = {"iu", "ff"}  # no epochs; their per-sample work is what may run out of memory


def block(out: Path, name: str, overrides: list[str], methods, device: str, method_keys: dict) -> bool:
    """One run per method with `overrides` (the references trained by the first, cached for the others); prints
    each job's first-epoch curves, its RTE and its metrics."""
    ok = True
    for method in methods:
        keys = method_keys["one_shot" if method in ONE_SHOT else "loop"]
        run_dir = out / name / method
        cmd = [sys.executable, str(ROOT / "run.py"), f"method={method}", *overrides, *keys, f"device={device}",
               "wandb.mode=disabled", f"cache_dir={out}/cache", f"results_csv={out}/runs.csv", "table=gpu_check",
               f"run_dir={run_dir}", f"hydra.run.dir={run_dir}"]
        say(out, f"\n== {name} / {method}: {' '.join(cmd[2:])}")
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
        (out / f"{name}-{method}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        say(out, f"exit {done.returncode} after {time.perf_counter() - start:.0f} s (log: {name}-{method}.log)")
        if done.returncode != 0:
            ok = False
            say(out, "\n".join(done.stderr.strip().splitlines()[-15:]))
            continue
        m = json.loads((run_dir / "metrics.json").read_text())
        k = m["metrics"]
        say(out, f"  UA {k['UA']:.2f} MIA {k['MIA']:.2f} RA {k['RA']:.2f} TA {k['TA']:.2f} RTE {k['RTE_s']:.1f} s; "
                 f"original TA {k['original/TA']:.2f}, Retrain TA {k['retrain/TA']:.2f}")
        curves = run_dir / "curves.csv"
        if curves.exists():
            with open(curves, encoding="utf-8") as f:
                first = [r for r in csv.DictReader(f) if r["epoch"] in ("0", "1")]
            say(out, "  first epoch: " + ", ".join(f"{r['phase']}/{r['metric']}={float(r['value']):.4g}"
                                                  for r in first[:12]))
    return ok


TABLE_ROWS = "retrain,ft,ga,iu,ff,ugradsl,ugradsl_plus"  # a paper block's rows most at risk, and its reference


def table_block(out: Path, device: str, scale: str, block: str, rows: str, extra: list[str]) -> bool:
    """Table 8's `block` through the table runner (`unlearn.tables run table8 --blocks`), one seed, shortened by
    `extra`: the runner's planning, its jobs, the shared references and the printed table, as `make table8` runs
    them; the block's printed rows go to the summary."""
    cmd = [sys.executable, "-m", "unlearn.tables", "run", "table8", "--scale", scale, "--blocks", block,
           "--rows", rows, "--seeds", "0", "--results", str(out / "table_runs.csv"), "--out", str(out / "tables"),
           "--", *extra, f"device={device}", "wandb.mode=disabled", f"cache_dir={out}/cache",
           f"hydra.sweep.dir={out}/table_sweep"]
    say(out, f"\n== table8 / {block} ({scale} scale) through the table runner: {' '.join(cmd[2:])}")
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    (out / "table8-block.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    table = out / "tables" / f"table8_{scale}.md"
    say(out, f"exit {done.returncode} after {time.perf_counter() - start:.0f} s (log: table8-block.log)")
    if done.returncode != 0 or not table.is_file():
        say(out, "\n".join(done.stderr.strip().splitlines()[-15:]))
        return False
    section = table.read_text(encoding="utf-8").split(f"**{block}**", 1)[1].split("\n**", 1)[0]
    say(out, f"**{block}**{section.rstrip()}")
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/gpu_check", help="folder of every result (created)")
    ap.add_argument("--device", default=None, help="default: cuda when present")
    ap.add_argument("--cifar", default=None, help="a folder holding cifar-10-batches-py/: the block on real data")
    ap.add_argument("--newsgroups", default=None, help="the 20 Newsgroups bydate folder: BERT through IU, FF, UGradSL")
    ap.add_argument("--smoke", action="store_true", help="CPU, toy sizes: checks this script, measures nothing")
    args = ap.parse_args(argv)
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device={device} but torch sees no CUDA device; allowed: cpu (with --smoke)", file=sys.stderr)
        return 2
    if device == "cpu" and not args.smoke:
        print("error: no GPU here; this check measures a GPU (use --smoke to check the script on the CPU)",
              file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.txt").write_text("", encoding="utf-8")
    machine(out, device)
    step_throughput(out, device, args.smoke)
    keys = ({"loop": ["method.epochs=1"], "one_shot": ["method.num_samples=8"]} if args.smoke else
            {"loop": ["method.epochs=1"], "one_shot": []})
    small = (["dataset.num_classes=4", "dataset.per_class=20", "dataset.size=8", "model=cnn", "train.epochs=1"]
             if args.smoke else ["dataset.num_classes=10", "dataset.per_class=500", "dataset.size=32",
                                 "dataset.channels=3", "model=resnet18", "model.width=64", "train.epochs=2"])
    ok = block(out, "synthetic_block", ["dataset=synthetic", "paradigm=random", *small],
               ["ugradsl", "iu", "ff"] if args.smoke else METHODS, device, keys)
    if args.cifar:
        ok &= block(out, "cifar10_block", ["dataset=cifar10", f"dataset.root={args.cifar}", "paradigm=random",
                                            "model=resnet18", "train.epochs=2"], METHODS, device, keys)
    if args.newsgroups:
        ok &= block(out, "bert_block", ["experiment=newsgroups20_paper", f"dataset.root={args.newsgroups}",
                                         "model.random_init=true", "dataset.per_class_train=50", "train.epochs=1",
                                         "paradigm=classwise"], ["iu", "ff", "ugradsl"], device, keys)
    if args.smoke:  # the SVHN block's CPU stand-in (digits), small
        ok &= table_block(out, device, "cpu", "SVHN", "retrain,ga,ugradsl", ["model=cnn", "train.epochs=1"])
    elif args.cifar:  # the paper's CIFAR-10 block, references shortened to 2 epochs, the MIA's fast solver
        ok &= table_block(out, device, "paper", "CIFAR-10", TABLE_ROWS,
                          [f"dataset.root={args.cifar}", "train.epochs=2", "eval.mia_solver=binned"])
    else:
        say(out, "\n== table8 / CIFAR-10 through the table runner: skipped (give --cifar ROOT)")
    say(out, f"\n{'all steps ran' if ok else 'some step FAILED (see above)'}; summary in {out / 'summary.txt'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
