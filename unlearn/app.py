"""The Hydra application behind `run.py` and the `unlearn` console command (configs ship in unlearn/conf)."""
import hydra
from omegaconf import DictConfig

from unlearn.cli import rejecting_bad_config
from unlearn.workspace import run_experiment


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@rejecting_bad_config  # a rejected config prints one line, leaves no run folder behind and exits 2
def main(cfg: DictConfig) -> float:
    """Train-or-load the original and Retrain models, unlearn, evaluate, record; returns avg_gap for sweepers."""
    metrics = run_experiment(cfg)
    return metrics["avg_gap"]  # lower is closer to Retrain


if __name__ == "__main__":
    main()
