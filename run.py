"""Run one unlearning experiment (or a sweep with -m): python run.py method=ugradsl smooth_rate=-0.5 p=0.8"""
import hydra
from omegaconf import DictConfig

from unlearn.workspace import Workspace


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    ws = Workspace(cfg)  # validates everything before any compute
    original = ws.original_model()  # trained once per (data, model, recipe, seed), then cached
    retrain = ws.retrain_model()  # the exact-unlearning reference, cached per split
    unlearned, seconds = ws.unlearn(original, retrain)
    metrics = ws.evaluate(original, retrain, unlearned, seconds)
    ws.log(metrics)
    return metrics["avg_gap"]  # the headline for sweepers: lower is closer to Retrain


if __name__ == "__main__":
    main()
