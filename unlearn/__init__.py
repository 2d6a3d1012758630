"""unlearn: machine unlearning of classifiers (UGradSL and baselines), driven by Hydra configs."""
from unlearn.identity import register_resolvers
from unlearn import help as _help  # noqa: F401  (registers ${unlearn.help_groups:}, ${unlearn.help_keys:})

__version__ = "0.1.0"
register_resolvers()  # ${unlearn.dirname:...} in conf/config.yaml's run folder names
