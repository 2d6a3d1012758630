"""Time the MIA's attack fits (`eval.mia_solver=svc`, the reference, and `binned`) side by side, and write the
measured cost per feature to results/bench/mia.csv, which `python -m unlearn.tables estimate` reads to count the
MIA's CPU hours at the paper's scale (unlearn/tables/mia_cost.py).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_mia.py [--sizes 2000,4000,8000] [--classes 10,100]

Shadow members and non-members are softmax outputs of random logits, members a little more confident (an attack
well above chance, as on a memorising model); the target set is 1,000 samples. libsvm fits on one core whatever
torch's thread count, so the times hold for one core; the machine's load at the time is printed and written.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from unlearn.mia import FEATURES, mia_efficacy

OUT = Path(__file__).resolve().parents[1] / "results" / "bench" / "mia.csv"
FITTED = [f for f in FEATURES if f != "correctness"]  # correctness needs no fit


def outputs(n: int, k: int, boost: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax probs, labels) of n samples over k classes; the true class's logit raised by `boost`."""
    y = torch.randint(k, (n,), generator=generator)
    logits = torch.randn(n, k, generator=generator)
    logits[torch.arange(n), y] += boost
    return logits.softmax(1), y


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,4000,8000", help="shadow members (= non-members) per side")
    ap.add_argument("--classes", default="10,100", help="numbers of classes K (the prob feature is K-dimensional)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    classes = [int(k) for k in args.classes.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch threads {torch.get_num_threads()}, load average {load:.2f} on {os.cpu_count()} cores")
    rows = []
    for k in classes:
        for n in sizes:
            g = torch.Generator().manual_seed(n * 1000 + k)
            member, nonmember = outputs(n, k, 4.0, g), outputs(n, k, 3.0, g)
            target = outputs(1000, k, 3.5, g)
            for kind in FITTED:
                row = {"classes": k, "per_side": n, "feature": kind}
                for solver in ("svc", "binned"):
                    start = time.perf_counter()
                    mia_efficacy(member, nonmember, target, kind, solver)
                    row[f"{solver}_s"] = time.perf_counter() - start
                rows.append(row)
                print(f"K={k:<5} n={n:<6} {kind:<11} svc {row['svc_s']:7.2f} s   binned {row['binned_s']:6.2f} s   "
                      f"ratio {row['svc_s'] / row['binned_s']:6.1f}")
    df = pd.DataFrame(rows)
    df["load"] = round(load, 2)
    df["machine"] = platform.processor() or platform.machine()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    big = df[df["per_side"] == max(sizes)]
    small = df[df["per_side"] == min(sizes)]
    growth = big["svc_s"].sum() / small["svc_s"].sum()
    print(f"svc time from {min(sizes)} to {max(sizes)} per side: x{growth:.1f} (n^2 would be "
          f"x{(max(sizes) / min(sizes)) ** 2:.0f}); written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
