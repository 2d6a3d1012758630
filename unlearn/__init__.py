"""unlearn: machine unlearning of classifiers (UGradSL and baselines), driven by Hydra configs."""

__version__ = "0.1.0"
