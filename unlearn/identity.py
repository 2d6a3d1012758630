"""What a result is: the hyperparameters that actually ran, flattened, and a `config_id` hash of them.

Two runs with the same `config_id` differ only by their seed (and the machine, whose number-changing facts are
the `ENVIRONMENT` columns of every row), so a report may average them; two with different ids never are.
Top-level sweep axes (`smooth_rate`, `p`) enter only through the method's own keys, so a method that ignores
them is not split (or labelled) by them. The step mechanics (`precision`, `channels_last`, `compile`, `cudnn`)
enter the id when they differ from the plain fp32 loop, so the plain loop keeps the ids it always had; `fast=true`
enters it as `fast` (`fast_compute`), whether or not the job has yet written what it set into the config.
`code_digest` says which code computed a result: the runners' "already done" test, never git's dirty flag.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from unlearn.paths import PACKAGE, conf_dir

SECTIONS = ("dataset", "model", "paradigm", "train", "method", "eval")  # what determines a result
NOT_IDENTITY = {"dataset": {"cache_dir", "num_workers", "download"},  # where/how data is read, not what it is
                "model": {"num_classes", "input_shape"}, "paradigm": {"_target_"},
                # IU's and FF's memory bound: bit-identical while every per-sample gradient fits one panel (every
                # CPU-scale model), float summation order otherwise (like `chunk`'s effect on vmap batches)
                "method": {"_target_", "max_grad_mb"},
                "eval": {"every_epoch"}}  # per-epoch probes only add curves; they change no result
META = ("name", "modality")  # labels in group configs that are not constructor arguments
# Keys added after results existed: they enter the id only away from their default, so every result computed
# before keeps its id (and its cache entries).
AT_DEFAULT = {"eval": {"mia_solver": "svc"}, "train": {"accumulate": 1},
              "method": {"accumulate": 1, "without": None,  # Retrain's recipe fields of the tier's recipe:
                         "clean_epochs": 0, "nesterov": False, "label_smoothing": 0.0, "lookahead": False,
                         "bias_lr_scale": 1.0},
              "dataset": {"crop_pad": 4, "crop_mode": "zeros"}}
COMPUTE = {"precision": "fp32", "channels_last": False, "compile": False, "cudnn": "deterministic"}  # the plain loop
ENVIRONMENT = ("device", "threads", "cpu_capability", "torch")  # row columns of the machine that change numbers

# Paths of the code digest, under the package (the config folder as conf/, wherever it lives).
# Never imported or composed by a job: launching, printing and searching. Their edits change no result.
OUTSIDE_JOBS = ("tables/", "figures/", "report.py", "conf/hparams_search/", "conf/hydra/", "conf/tables/",
                "conf/figures/")


def config_hash(obj) -> str:
    """A short, stable hash of a JSON-able object (dict key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cell(v):
    """A CSV-friendly scalar: lists and dicts as compact JSON, so every value fits one cell."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def params(cfg: DictConfig) -> dict:
    """Flattened `section.key` values of what ran, resolved (`method.lr`, `paradigm.forget_class`, ...)."""
    out = {}
    for section in SECTIONS:
        node = cfg[section]
        resolved = OmegaConf.to_container(node, resolve=True)  # one pass per section (the planner asks per job)
        for k in sorted(resolved):
            if OmegaConf.is_missing(node, k) or k in NOT_IDENTITY.get(section, ()) or k in META or (
                    k == "_target_" and section == "dataset"):
                continue
            v = resolved[k]
            if k in AT_DEFAULT.get(section, {}) and v == AT_DEFAULT[section][k]:
                continue
            out[f"{section}.{k}"] = _cell(v)
    return out


def compute(cfg: DictConfig) -> dict:
    """The step mechanics the run used (`precision`, `channels_last`, `compile`, `cudnn`): columns of every row."""
    return {k: cfg.get(k, default) for k, default in COMPUTE.items()}


def fast_compute(changed: dict) -> dict:
    """The step mechanics of a fast=true run in its id: `fast` and the precision it runs at. channels_last and cudnn
    follow from the device under fast (a column of every row), so they are left out."""
    precision = "fp16" if changed.get("precision") == "fp16" else "bf16"
    return {"fast": True, "precision": precision, **({"compile": True} if changed.get("compile") else {})}


def config_id(cfg: DictConfig) -> str:
    """Hash of everything that determines a result except the seed: group choices, `params(cfg)`, the step
    mechanics that differ from the plain loop (bf16 and fp32 runs of one seed give other numbers) and an
    original model given from outside (`original.checkpoint`)."""
    names = {s: cfg[s].get("name") for s in SECTIONS if s != "train" and s != "eval"}
    ident = {"names": names, "params": params(cfg)}
    changed = {k: v for k, v in compute(cfg).items() if v != COMPUTE[k]}
    if cfg.get("fast", False) is True:  # the same id before and after the job writes what fast set (steps.apply_fast)
        changed = fast_compute(changed)
    if changed:  # only then: the plain loop keeps its ids, and the committed results found by them
        ident["compute"] = changed
    checkpoint = OmegaConf.select(cfg, "original.checkpoint", default=None)
    if checkpoint is not None:  # an original model from outside (a file or torchvision:<weights>), not trained
        ident["original"] = str(checkpoint)
    return config_hash(ident)[:10]


@functools.lru_cache(maxsize=None)
def _sources(root: Path) -> tuple[tuple[str, str], ...]:
    """(path, SHA-256) of every .py and .yaml file a job may import or compose, read once per process (so a job's
    digest is the code it started with); paths are under the package `root`, its config folder's under conf/
    whether it sits inside the package (a wheel) or beside it (a checkout)."""
    conf = conf_dir(root)
    files = [(p, p.relative_to(root).as_posix()) for p in root.rglob("*") if not p.is_relative_to(conf)]
    files += [(p, "conf/" + p.relative_to(conf).as_posix()) for p in conf.rglob("*")]
    out = []
    for path, rel in sorted(files, key=lambda f: f[1].split("/")):  # the order of one folder's sorted walk
        if path.suffix in (".py", ".yaml") and "__pycache__" not in rel and not rel.startswith(OUTSIDE_JOBS):
            out.append((rel, hashlib.sha256(path.read_bytes()).hexdigest()))
    return tuple(out)


def _method_modules(root: Path, module: str) -> set[str]:
    """Stems of methods/<stem>.py that `module` (a file of methods/) is or imports, transitively."""
    seen, todo = set(), [module]
    while todo:
        stem = todo.pop()
        path = root / "methods" / f"{stem}.py"
        if stem in seen or not path.exists():
            continue
        seen.add(stem)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            todo += [n.split(".")[2] for n in names if n.startswith("unlearn.methods.") and n.count(".") >= 2]
    return seen


def code_digest(cfg: DictConfig, root: Path = PACKAGE) -> str:
    """A hash of the package's code and configs that can change this job's result: every .py and .yaml file of
    unlearn/ except the launching and printing layers and the files of other methods (methods/<m>.py,
    conf/method/<m>.yaml, conf/tuned/*/<m>.yaml) and the values tuned for other paradigms
    (conf/tuned/*/<paradigm>/*.yaml), so adding or editing one method's values reruns only its rows."""
    target = str(cfg.method.get("_target_") or "")
    module = target.split(".")[2] if target.startswith("unlearn.methods.") and target.count(".") >= 3 else ""
    mine = _method_modules(root, module) | {cfg.method.get("name")}
    others = {p.stem for p in (conf_dir(root) / "method").glob("*.yaml")} - mine
    paradigm = cfg.get("paradigm", {}).get("name")

    def other_method(rel: str) -> bool:
        stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        tuned = rel.startswith("conf/tuned/") and rel.count("/") in (3, 4)
        return (stem in others and (rel.startswith(("methods/", "conf/method/")) or tuned)) or (
            tuned and rel.count("/") == 4 and rel.split("/")[3] != paradigm)
    files = [(rel, digest) for rel, digest in _sources(root) if not other_method(rel)]
    return config_hash(files)


def axes(cfg: DictConfig) -> dict:
    """The paper's sweep axes as the method used them: blank (None) for a method without alpha or p."""
    return {"smooth_rate": cfg.method.get("smooth_rate"), "p": cfg.method.get("p")}


def dirname(overrides: str, limit: int = 120) -> str:
    """A safe folder name from Hydra's `override_dirname`: no path separators or `..`, bounded length."""
    name = re.sub(r"[^A-Za-z0-9._,=+-]+", "_", overrides).replace("..", "_").strip("._") or "default"
    if len(name) > limit:
        name = f"{name[:limit - 11]}_{config_hash(overrides)[:10]}"
    return name


def register_resolvers() -> None:
    """`${unlearn.dirname:...}` for Hydra's run and sweep folder names (conf/config.yaml)."""
    if not OmegaConf.has_resolver("unlearn.dirname"):
        OmegaConf.register_new_resolver("unlearn.dirname", dirname)
