"""Run one unlearning experiment, or a sweep with -m.

    python run.py method=ugradsl paradigm=random smooth_rate=-0.5 p=0.8 seed=1
    python run.py -m method=ga,ugradsl seed=1,2,3
"""
import hydra
from omegaconf import DictConfig

from unlearn.cli import rejecting_bad_config
from unlearn.workspace import run_experiment


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@rejecting_bad_config  # a rejected config prints one line, leaves no run folder behind and exits 2
def main(cfg: DictConfig) -> float:
    metrics = run_experiment(cfg)  # train-or-load original and Retrain, unlearn, evaluate, log
    return metrics["avg_gap"]  # the headline for sweepers: lower is closer to Retrain


if __name__ == "__main__":
    main()
