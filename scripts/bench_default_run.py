"""Time the default experiment cold (original + Retrain trained) and warm (both loaded from the cache).

    .venv/bin/python scripts/bench_default_run.py [extra Hydra overrides]

Prints the wall time of each phase and the warm/cold ratio, measured side by side in one process.
"""
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from unlearn.workspace import Workspace

CONF = Path(__file__).resolve().parents[1] / "conf"


def timed_run(cfg) -> dict[str, float]:
    t = {"start": time.perf_counter()}
    ws = Workspace(cfg); t["setup"] = time.perf_counter()
    original, _ = ws.refs.original(); t["original"] = time.perf_counter()
    ws.refs.retrain(); t["retrain"] = time.perf_counter()
    unlearned, _ = ws.unlearn(original); t["unlearn"] = time.perf_counter()
    ws.evaluate(unlearned)
    for name in ("original", "retrain"):
        ws.refs.metrics(name, ws.evaluate)
    t["evaluate"] = time.perf_counter()
    keys = list(t)
    out = {k: t[k] - t[p] for p, k in zip(keys, keys[1:])}
    out["total"] = t["evaluate"] - t["start"]
    return out


def main(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[f"cache_dir={tmp}/cache", f"results_csv={tmp}/runs.csv",
                                               f"run_dir={tmp}/run", f"wandb.dir={tmp}", *overrides])
        cold, warm = timed_run(cfg), timed_run(cfg)
    print(f"{'phase':<10}{'cold s':>10}{'warm s':>10}")
    for k in cold:
        print(f"{k:<10}{cold[k]:>10.2f}{warm[k]:>10.2f}")
    print(f"warm/cold total ratio: {warm['total'] / cold['total']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
